"""Frames to MAC beats, vectorised: what a simulator's MAC driver plays, one entry per cycle.

A frame of ``n`` bytes is ``ceil(n / 8)`` beats of
:func:`wiretick.hdl.common.mac_beat_layout` (byte 0 in the lowest lane; ``nbytes``
8 but on the last beat; ``first``/``last``; ``error`` on the last beat of a frame
the capture marks bad), followed by ``gap`` idle cycles: the 12-byte inter-frame
gap and 8-byte preamble of Ethernet are 20 bytes, 2.5 beats, hence the default 3.

An entry is 9 bytes: the 8 data bytes, then one control byte
``nbytes | first << 4 | last << 5 | error << 6 | valid << 7`` -- as an integer,
bits 0..70 are the 71-bit beat and bit 71 is ``valid`` (the cocotb feeder's entry,
:mod:`wiretick.sim.cocotb_harness`).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["IFG_BEATS", "ENTRY_BYTES", "frame_cycles", "frames_to_entries"]

#: Idle beats between frames: (12-byte IFG + 8-byte preamble) / 8 bytes a beat, rounded up.
IFG_BEATS = 3
ENTRY_BYTES = 9


def frame_cycles(length: np.ndarray, gap: int = IFG_BEATS) -> np.ndarray:
    """Cycles each frame occupies the MAC (its beats and the gap after it)."""
    return (np.asarray(length, np.int64) + 7) // 8 + gap


@numba.njit(cache=True)
def _entries(buf, off, length, bad, gap, out):
    p = 0
    for i in range(off.shape[0]):
        o = off[i]
        n = length[i]
        for b in range(0, n, 8):
            k = min(8, n - b)
            for j in range(k):
                out[p + j] = buf[o + b + j]
            for j in range(k, 8):
                out[p + j] = 0
            last = b + 8 >= n
            ctl = k | (16 if b == 0 else 0) | (32 if last else 0) | (64 if (last and bad[i]) else 0) | 128
            out[p + 8] = ctl
            p += 9
        for _ in range(gap):
            for j in range(9):
                out[p + j] = 0
            p += 9
    return p


def frames_to_entries(buf: np.ndarray, offset: np.ndarray, length: np.ndarray, bad: np.ndarray,
                      gap: int = IFG_BEATS) -> np.ndarray:
    """The entries (uint8, 9 bytes each) of frames ``buf[offset[i]:offset[i]+length[i]]`` and their gaps."""
    length = np.asarray(length, np.int64)
    if len(length) and int(length.min()) < 1:
        raise ValueError("a frame has at least one byte")
    total = int(frame_cycles(length, gap).sum())
    out = np.empty(total * ENTRY_BYTES, np.uint8)
    p = _entries(np.asarray(buf, np.uint8), np.asarray(offset, np.int64), length, np.asarray(bad, np.bool_),
                 int(gap), out)
    assert p == len(out)
    return out
