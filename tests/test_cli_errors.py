"""Every subcommand's errors: one line on stderr, exit code 2, and no file left behind.

Each case runs ``wiretick`` in this process against a bad file, a bad option
or a missing tool, in an empty working directory, and checks that the
directory and /dev/shm hold exactly what they held before.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

from wiretick.host.cli import build_parser, main
from wiretick.host.gen import GenConfig, generate_to_file


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("feed") / "feed.pcap"
    generate_to_file(path, GenConfig(messages=3000, symbols=5, seed=1))
    return path


@pytest.fixture
def work(tmp_path, monkeypatch, feed) -> Path:
    """An empty working directory holding the inputs the cases name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "junk.pcap").write_bytes(b"\x00" * 64)
    raw = feed.read_bytes()
    (tmp_path / "cut.pcap").write_bytes(raw[:len(raw) // 2] + b"\xff" * 5)   # fine header, torn record
    (tmp_path / "feed.pcap").write_bytes(raw)
    (tmp_path / "notes.txt").write_text("precious\n")
    return tmp_path


def _files(*dirs: Path) -> set[str]:
    return {str(p) for d in dirs for p in d.rglob("*")}


def fails_cleanly(argv: list[str], work: Path, capsys, *, lines: int | None = 1) -> str:
    """Run ``wiretick argv``; assert exit 2, one ``error:`` line and nothing new on disk; return stderr.

    ``lines=None``: progress lines may come before the error (a build that starts, then fails).
    """
    shm = Path("/dev/shm")
    before = _files(work) | {p.name for p in shm.iterdir()}
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    out_lines = err.splitlines()
    if lines is not None:
        assert len(out_lines) == lines, err
    assert out_lines and "error:" in out_lines[-1] and sum("error:" in ln for ln in out_lines) == 1, err
    after = _files(work) | {p.name for p in shm.iterdir()}
    assert after == before, f"left behind: {after - before}"
    assert (work / "notes.txt").read_text() == "precious\n"
    return out_lines[-1]


CASES = {
    # bad files
    "decode-absent": (["decode", "absent.pcap", "-o", "t.npy"], "No such file"),
    "decode-junk": (["decode", "junk.pcap", "-o", "t.npy"], "byte 0"),
    "decode-cut": (["decode", "cut.pcap", "-o", "t.npy"], "byte"),
    "decode-nodir": (["decode", "feed.pcap", "-o", "nodir/t.npy"], "No such file"),
    "gen-nodir": (["gen", "-o", "nodir/f.pcap", "--messages", "1000", "--symbols", "2"], "No such file"),
    "replay-junk": (["replay", "junk.pcap", "--ring", "wt-err-{u}"], "byte 0"),
    "replay-cut": (["replay", "cut.pcap", "--ring", "wt-err-{u}", "--nslots", "1024"], "byte"),
    "replay-not-a-ring": (["replay", "feed.pcap", "--ring-path", "notes.txt", "--force"], "not a wiretick ring"),
    "sim-junk": (["sim", "junk.pcap", "-o", "t.npy"], "byte 0"),
    "sim-nodir": (["sim", "feed.pcap", "-o", "nodir/t.npy"], "does not exist"),
    "bench-json-nodir": (["bench", "decode", "--json", "nodir/b.json"], "does not exist"),
    # bad options
    "decode-port": (["decode", "feed.pcap", "-o", "t.npy", "--port", "70000"], "port"),
    "gen-messages": (["gen", "-o", "f.pcap", "--messages", "-5"], "messages"),
    "gen-mtu": (["gen", "-o", "f.pcap", "--messages", "1000", "--symbols", "2", "--mtu", "20"], "mtu"),
    "replay-nslots": (["replay", "feed.pcap", "--ring", "wt-err-{u}", "--nslots", "100"], "power of two"),
    "replay-ring-path": (["replay", "feed.pcap", "--ring", "../wt-err-{u}"], "not a name"),
    "replay-both": (["replay", "feed.pcap", "--ring", "a", "--ring-path", "b"], "not allowed with"),
    "replay-rate": (["replay", "feed.pcap", "--ring", "wt-err-{u}", "--rate", "0"], "positive"),
    "sim-nslots": (["sim", "feed.pcap", "-o", "t.npy", "--nslots", "1000"], "power of two"),
    "sim-ring": (["sim", "feed.pcap", "-o", "t.npy", "--ring", "../../wt-err-{u}"], "not a name"),
    "sim-engine": (["sim", "feed.pcap", "-o", "t.npy", "--engine", "warp"], "invalid choice"),
    "sim-icarus-fast": (["sim", "feed.pcap", "-o", "t.npy", "--simulator", "icarus"], "--engine cocotb"),
    "bench-suite": (["bench", "nosuch"], "unknown bench suite"),
    "bench-plot-no-host": (["bench", "decode", "--plot", "l.png"], "host suite"),
    "bench-plot-nodir": (["bench", "host", "--plot", "nodir/l.png"], "does not exist"),
    "bench-no-boards-no-build": (["bench", "decode", "--no-boards"], "build suite"),
    "no-command": ([], "required"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_error_is_one_line_and_leaves_nothing(case, work, capsys):
    argv, message = CASES[case]
    u = uuid.uuid4().hex[:10]
    line = fails_cleanly([a.format(u=u) for a in argv], work, capsys)
    assert message in line


def _subcommands() -> list[str]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sorted(sub.choices)


@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_reports_a_bad_option_in_one_line(command, work, capsys):
    line = fails_cleanly([command, "--no-such-option-here"], work, capsys)
    assert line.startswith("wiretick") and "--no-such-option-here" in line or "required" in line


def _bin_without(tmp_path: Path, *tools: str) -> str:
    """A PATH of one directory holding this Python and nothing else (so ``tools`` are missing)."""
    d = tmp_path.parent / f"{tmp_path.name}-bin"
    d.mkdir(exist_ok=True)
    link = d / "python3"
    if not link.exists():
        link.symlink_to(sys.executable)
    return str(d)


def test_sim_cocotb_without_icarus(work, capsys, monkeypatch):
    monkeypatch.setenv("PATH", _bin_without(work, "iverilog", "vvp"))
    line = fails_cleanly(["sim", "feed.pcap", "-o", "t.npy", "--engine", "cocotb", "--simulator", "icarus"],
                         work, capsys)
    assert "Icarus Verilog is not installed" in line


def test_sim_fast_build_without_its_tools(work, capsys, monkeypatch, tmp_path_factory):
    """The fast engine's first build needs Verilator's perl script, make and a compiler: without them,
    one error line (after the build's progress line), and no output."""
    monkeypatch.setenv("PATH", _bin_without(work, "perl", "make", "g++"))
    monkeypatch.setenv("WIRETICK_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    line = fails_cleanly(["sim", "feed.pcap", "-o", "t.npy"], work, capsys, lines=None)
    assert "fast engine build failed" in line


def test_sim_output_appears_only_after_the_bounds_checks(tmp_path):
    """A run whose device wrote outside its ring is an error (exit 2 through SimError), and its output goes."""
    from wiretick.host.errors import WiretickError
    from wiretick.sim.fast import SimError
    from wiretick.sim.run import SimResult, commit

    out, tmp = tmp_path / "o.npy", tmp_path / ".o.npy.tmp.npy"
    for res in (SimResult(1, {}, 10, 0.1, False, []), SimResult(1, {}, 10, 0.1, True, [{"outside": 3}])):
        tmp.write_bytes(b"ticks")
        with pytest.raises(SimError, match="outside its ring") as e:
            commit(tmp, out, res)
        assert isinstance(e.value, WiretickError)
        assert list(tmp_path.iterdir()) == []
    tmp.write_bytes(b"ticks")
    commit(tmp, out, SimResult(1, {}, 10, 0.1, True, []))
    assert [p.name for p in tmp_path.iterdir()] == ["o.npy"]
