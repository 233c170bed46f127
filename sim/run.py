"""``wiretick sim``: a capture through the simulated device, with ``wiretick decode``'s output contract.

Two engines run the same Verilog of :class:`wiretick.hdl.top.WiretickTop`:

- ``fast`` (default): Verilator with the C++ harness, in-process
  (:func:`wiretick.sim.fast.simulate`), for captures of any size;
- ``cocotb``: the cocotb testbench (:mod:`wiretick.sim.cocotb_tb`) on Verilator or
  Icarus, the register accesses going through cocotbext-axi.

Either way the device is programmed through :class:`wiretick.host.device.Device`,
its DMA writes land in a ring file under ``/dev/shm`` that other processes can
follow while the run goes on (``--ring NAME``: ``wiretick.host.ring.Ring("NAME")``),
and the ticks a ring reader saw are written to the ``.npy`` output, all or
nothing, with the counters summary on stderr as ``wiretick decode`` prints it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

__all__ = ["ENGINES", "SimResult", "count_frames", "run_sim"]

ENGINES = ("fast", "cocotb")


@dataclass
class SimResult:
    """What a ``wiretick sim`` run produced."""

    ticks: int
    counters: dict[str, int]
    cycles: int
    wall_s: float
    guards_intact: bool
    violations: list


def count_frames(capture: str | os.PathLike) -> int:
    """Frames in ``capture`` (one walk of its index; raises CaptureError on a bad file)."""
    from wiretick.host.capture import open_capture
    with open_capture(capture) as cap:
        return sum(len(b) for b in cap)


def _check_output(output: str | os.PathLike) -> Path:
    out = Path(output)
    if out.is_dir():
        raise ValueError(f"output {out} is a directory; give a .npy file name")
    if not out.parent.is_dir():
        raise ValueError(f"output directory {out.parent} does not exist")
    return out


def run_sim(capture: str | os.PathLike, output: str | os.PathLike, config=None, *, engine: str = "fast",
            simulator: str = "verilator", waves: str | os.PathLike | None = None, ring: str | None = None,
            nslots: int = 1 << 16, log: TextIO | None = sys.stderr, quiet: bool = False) -> SimResult:
    """Simulate ``capture`` through the device; write the ticks to ``output`` (.npy).

    Everything that can be refused is refused before a simulator starts: an
    unknown engine or simulator, a bad capture (its byte offset named), an
    unwritable output, a bad ring size or name.  The output is written under
    a temporary name and renamed into place only when the run passed its
    bounds checks (see :func:`commit`); a failed run leaves neither it nor the
    ring or waves file it made behind.
    """
    from wiretick.host.decode import DecodeConfig
    from wiretick.host.progress import progress
    from wiretick.host.contract.ring import check_nslots

    config = config or DecodeConfig()
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    out = _check_output(output)
    if waves is not None and not Path(waves).resolve().parent.is_dir():
        raise ValueError(f"the waves directory {Path(waves).resolve().parent} does not exist")
    check_nslots(nslots)
    if engine == "fast" and simulator != "verilator":
        raise ValueError("the fast engine is Verilator only; --simulator icarus needs --engine cocotb")
    total = count_frames(capture)
    if engine == "cocotb":
        from .cocotb_run import SIMULATORS, check_waves, simulator_available
        if simulator not in SIMULATORS:
            raise ValueError(f"unknown simulator {simulator!r}; choose from {', '.join(SIMULATORS)}")
        why = simulator_available(simulator)
        if why:
            raise ValueError(why)
        if waves is not None:
            check_waves(waves, simulator)
    from wiretick.host.ring import ring_path
    ring_file = ring_path(ring) if ring is not None else None      # a bad name is refused here
    ring_before = _identity(ring_file)
    waves_file = Path(waves) if waves is not None else None
    waves_before = _identity(waves_file)
    # The output appears only once the run is over and its bounds checks passed.
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.npy")
    bar = progress(total, "sim", quiet or log is None, unit="frames", stream=log)
    try:
        if engine == "fast":
            res = _run_fast(capture, tmp, config, waves=waves, ring=ring, nslots=nslots, progress=bar,
                            log=None if quiet else log)
        else:
            res = _run_cocotb(capture, tmp, config, simulator=simulator, waves=waves, ring=ring, nslots=nslots,
                              progress=bar)
        commit(tmp, out, res)
    except BaseException:
        tmp.unlink(missing_ok=True)
        # what this run made (a new inode where there was none or another): nothing outlives a failed run
        for made, before in ((ring_file, ring_before), (waves_file, waves_before)):
            if made is not None and _identity(made) not in (None, before):
                made.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    return res


def _identity(path: Path | None) -> tuple[int, int] | None:
    """(device, inode) of ``path``, or None when there is no file."""
    if path is None:
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def commit(tmp: Path, out: Path, res: SimResult) -> None:
    """Rename the run's output ``tmp`` into place, or, if the device wrote outside its ring, remove it and raise.

    Raises
    ------
    wiretick.sim.fast.SimError
        The guard bytes around the ring changed, or writes landed outside it.
    """
    from .fast import SimError
    if not res.guards_intact or res.violations:
        tmp.unlink(missing_ok=True)
        raise SimError(f"the device wrote outside its ring: {res.violations or 'guard bytes changed'}; "
                       f"no output written")
    os.replace(tmp, out)


def _run_fast(capture, out: Path, config, *, waves, ring, nslots, progress, log) -> SimResult:
    from .fast import simulate
    run = simulate(capture, config, out=out, ring=ring, nslots=nslots, waves=waves, keep_ring=ring is not None,
                   progress=progress, build_log=log)
    violations = [] if not run.stats.get("outside") and not run.stats.get("unmapped") else [
        {k: run.stats[k] for k in ("outside", "unmapped", "guard_hits")}]
    written = len(np.load(out, mmap_mode="r"))
    return SimResult(written, run.counters, run.cycles, run.wall_s, run.guards_intact, violations)


def _run_cocotb(capture, out: Path, config, *, simulator, waves, ring, nslots, progress) -> SimResult:
    from .cocotb_run import make_case, run_job
    work = Path(tempfile.mkdtemp(prefix="wiretick-sim-"))
    progress_file = work / "progress"
    stop = threading.Event()

    def watch() -> None:
        # The simulator runs in a child process; it reports frames done through a file.
        while not stop.wait(0.5):
            try:
                progress.update(int(progress_file.read_text() or 0) - progress.n)
            except (OSError, ValueError):
                pass

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        try:
            case = make_case("run", capture, config, nslots=nslots, ring=ring, lap_tags=False)
            res = run_job([case], simulator=simulator, out=work / "out", waves=waves, keep_rings=ring is not None,
                          progress_file=str(progress_file), log_file=work / "sim.log")["run"]
        finally:
            stop.set()
            watcher.join()
        shutil.move(str(work / "out" / "run" / "ticks.npy"), out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    r = res.result
    return SimResult(len(res.ticks), res.counters, int(r["cycles"]), float(r["wall_s"]), bool(r["guards_intact"]),
                     list(r.get("violations", [])))


def ticks_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal tick arrays, ``ts_rx`` aside (a simulation's clock is not the capture's).

    A ring's lap tag (``flags`` bits 12..15) is ignored too: ticks read straight
    from a ring carry it, decoded ones do not.
    """
    from wiretick.host.contract.ring import LAP_BITS

    if len(a) != len(b):
        return False
    keep = np.uint16(~LAP_BITS & 0xFFFF)
    names = [n for n in a.dtype.names if n not in ("ts_rx", "flags")]
    return all(np.array_equal(a[n], b[n]) for n in names) and np.array_equal(a["flags"] & keep, b["flags"] & keep)
