"""Progress of long commands (wiretick.host.progress): drawn on a terminal only, never with --quiet."""

from __future__ import annotations

import io
import os
import pty

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
