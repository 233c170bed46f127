"""Progress of long-running commands on a terminal, through tqdm.

Every command that can run for a while (``wiretick gen``, ``decode``, ``sim``,
``replay``, a build) shows its progress the same way: a tqdm bar on stderr,
drawn only when stderr is a terminal and the user did not ask for ``--quiet``.
Logs, pipes and CI get nothing from it, so what they read stays the command's
own lines (counters, "wrote ..."); a bar that finishes leaves no line behind.

Library functions do not draw: they take an optional ``progress`` object
(anything with tqdm's ``update(n)``; ``None`` for none) and the command line
makes it with :func:`progress`.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

__all__ = ["shows", "progress", "activity", "through_batch"]

#: Seconds between redraws: often enough to look alive, rarely enough to cost nothing.
MIN_INTERVAL = 0.25


def shows(stream: TextIO | None = None, quiet: bool = False) -> bool:
    """Whether progress is drawn on ``stream`` (default stderr): a terminal, and not ``quiet``."""
    if quiet:
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:            # a closed stream
        return False


def progress(total: int | float | None, desc: str, quiet: bool = False, *, unit: str = "it",
             stream: TextIO | None = None, unit_scale: bool = False) -> tqdm:
    """A progress bar of ``total`` units named ``desc``, on ``stream`` (default stderr).

    Parameters
    ----------
    total : number or None
        The amount of work (frames, bytes, messages).  ``None`` when it is not
        known: the bar then shows the count so far, the rate and the elapsed time.
    desc : str
        What is running ("decode", "sim", "fast engine build").
    quiet : bool
        Draw nothing (``--quiet``).  Nothing is drawn either when ``stream`` is
        not a terminal.
    unit, unit_scale
        As tqdm's (``unit="B", unit_scale=True`` shows bytes as kB, MB, ...).

    Returns
    -------
    tqdm
        Call ``update(n)`` as work is done, and ``close()`` (or use it as a context
        manager).  A disabled bar accepts the same calls and does nothing.
    """
    stream = sys.stderr if stream is None else stream
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=stream,
                disable=not shows(stream, quiet), leave=False, mininterval=MIN_INTERVAL)


def activity(desc: str, quiet: bool = False, *, stream: TextIO | None = None) -> tqdm:
    """An indeterminate task: which tool is running and for how long (``"yosys core 1:02"``).

    tqdm redraws on updates only; a caller waiting for a tool (polling a
    subprocess) calls ``refresh()`` now and then to move the elapsed time on.
    Silent under the same conditions as :func:`progress`.
    """
    stream = sys.stderr if stream is None else stream
    return tqdm(total=None, desc=desc, file=stream, bar_format="{desc} {elapsed}", disable=not shows(stream, quiet),
                leave=False, mininterval=MIN_INTERVAL)


def through_batch(bar, batch) -> None:
    """Advance ``bar`` (counting a capture's bytes) to just past ``batch``'s last frame.

    A batch's offsets are file offsets (:class:`wiretick.host.capture.FrameBatch`),
    so the bar's total is the file's size; record headers and padding count as
    read once the frame after them is.
    """
    if bar is not None and len(batch.offset):
        bar.update(int(batch.offset[-1]) + int(batch.length[-1]) - bar.n)
