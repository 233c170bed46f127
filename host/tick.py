"""The tick record on the host: a numpy structured dtype derived from :mod:`.formats`."""

from __future__ import annotations

import numpy as np

from .contract.formats import TICK_FIELDS, TICK_SIZE

__all__ = ["TICK_DTYPE", "empty_ticks"]


def _dtype() -> np.dtype:
    dt = np.dtype({
        "names": [f.name for f in TICK_FIELDS],
        "formats": [f"<u{f.size}" for f in TICK_FIELDS],
        "offsets": [f.offset for f in TICK_FIELDS],
        "itemsize": TICK_SIZE,
    }, align=True)
    if dt.itemsize != TICK_SIZE or dt.alignment != 8:
        raise AssertionError(f"tick dtype is {dt.itemsize} bytes, aligned {dt.alignment}")
    return dt


#: The 64-byte normalized tick, little-endian, naturally aligned.
TICK_DTYPE: np.dtype = _dtype()


def empty_ticks(n: int) -> np.ndarray:
    """A zeroed array of ``n`` ticks."""
    return np.zeros(n, dtype=TICK_DTYPE)
