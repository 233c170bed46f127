"""Timing helpers the benchmark suites share: median rates and the machine's load.

Kept apart from :mod:`.bench` (which registers and runs every suite, so imports
them all) so that a suite can use them without importing the registry.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable

__all__ = ["median_rate", "median_cpu_rate", "loadavg"]


def median_rate(fn: Callable[[], int], repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    """Items/s of the median of ``repeats`` runs of ``fn`` (which returns the items it did): the machine is shared.

    ``clock`` measures the time (wall time by default).
    """
    rates = []
    for _ in range(repeats):
        t0 = clock()
        items = fn()
        rates.append(items / (clock() - t0))
    return statistics.median(rates)


def median_cpu_rate(fn: Callable[[], int], repeats: int) -> float:
    """Items per second of this process's CPU time, median of ``repeats``: what other jobs' load does not take."""
    return median_rate(fn, repeats, time.process_time)


def loadavg() -> float:
    """The 1-minute load average (0.0 where the OS has none): recorded beside every timing."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return 0.0
