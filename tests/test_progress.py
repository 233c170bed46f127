"""Progress of long commands (wiretick.host.progress): drawn on a terminal only, never with --quiet."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.host.progress import activity, progress, shows


def _pty_stream():
    """A text stream on the slave side of a new pseudo-terminal, and the master's fd to read what it shows."""
    master, slave = pty.openpty()
    return os.fdopen(slave, "w", buffering=1), master


def _drain(master: int) -> str:
    out = b""
    os.set_blocking(master, False)
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace")


def _run(bar) -> None:
    with bar:
        for _ in range(5):
            bar.update(2)


def test_a_bar_is_drawn_on_a_terminal_and_cleared():
    stream, master = _pty_stream()
    try:
        assert shows(stream)
        _run(progress(10, "decode", stream=stream, unit="frames"))
        text = _drain(master)
    finally:
        stream.close()
        os.close(master)
    assert "decode:" in text and "/10 " in text and "frames/s" in text
    assert text.endswith(" \r")          # cleared: a finished bar leaves no line behind


def test_nothing_is_drawn_off_a_terminal_or_when_quiet():
    log = io.StringIO()
    assert not shows(log)
    _run(progress(10, "decode", stream=log))
    assert log.getvalue() == ""
    stream, master = _pty_stream()
    try:
        assert not shows(stream, quiet=True)
        _run(progress(10, "decode", quiet=True, stream=stream))
        _run(activity("yosys core", quiet=True, stream=stream))
        text = _drain(master)
    finally:
        stream.close()
        os.close(master)
    assert text == ""


def test_an_indeterminate_task_shows_what_runs_and_its_elapsed_time():
    stream, master = _pty_stream()
    try:
        with activity("nextpnr-ecp5 core", stream=stream) as bar:
            bar.refresh()
        text = _drain(master)
    finally:
        stream.close()
        os.close(master)
    assert "nextpnr-ecp5 core 00:00" in text


def _cli_on_a_terminal(args: list[str], cwd) -> tuple[int, str]:
    """Run ``wiretick args`` with stderr on a pseudo-terminal; its exit status and what the terminal showed."""
    master, slave = pty.openpty()
    # A terminal has a size (a new pseudo-terminal has 0 columns, and tqdm fits its bar into none).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "wiretick.host.cli", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:           # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(), out.decode(errors="replace")


def test_gen_shows_its_bar_on_a_terminal_and_not_with_quiet(tmp_path):
    args = ["gen", "-o", "feed.pcap", "--messages", "200000", "--symbols", "20"]
    code, shown = _cli_on_a_terminal(args, tmp_path)
    assert code == 0 and "gen:" in shown and "B/s" in shown, shown
    code, shown = _cli_on_a_terminal(args + ["--quiet"], tmp_path)
    assert code == 0 and "gen:" not in shown and shown.startswith("wrote feed.pcap"), shown


def test_decode_off_a_terminal_prints_its_summary_only(tmp_path):
    generate_to_file(tmp_path / "feed.pcap", GenConfig(messages=5000, symbols=5, seed=2))
    res = subprocess.run([sys.executable, "-m", "wiretick.host.cli", "decode", "feed.pcap", "-o", "t.npy"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0
    assert "\r" not in res.stderr and "decode:" not in res.stderr
    assert res.stderr.splitlines()[-1].startswith("wrote ")
