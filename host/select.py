"""Select ticks by type, symbol, side and time at memory speed.

numpy filters a structured array field by field: ``ticks[ticks["msg_type"] ==
ord("A")]`` reads the type column with a strided pass, builds a mask, then
gathers every one of the 13 fields of the chosen rows separately (tens of
millions of ticks a second).  :func:`select` does the same in one compiled pass
that reads each tick's 64-byte line once, tests all the criteria on two of its
words, and copies a chosen tick as eight 64-bit words: the first filter a
strategy writes runs at the speed of memory.

>>> adds = select(ticks, types="AF")                            # doctest: +SKIP
>>> aapl_bids = select(ticks, types="AFU", locates=[13], side="B", ts_from=34_200 * 10**9)  # doctest: +SKIP

Every criterion is optional; given together they all must hold.  ``symbols``
need a directory that knows them (a :class:`~wiretick.host.book.Books` or a
:class:`~wiretick.host.symbols.SymbolDirectory` that has seen the ``R`` ticks).
"""

from __future__ import annotations

from typing import Iterable

import numba
import numpy as np

from .tick import TICK_DTYPE

__all__ = ["select", "where", "mask", "count"]


@numba.njit(cache=True, nogil=True)
def _scan(w, types, locs, side, t_word, t0, t1, out, idx, mode):  # pragma: no cover - compiled
    """mode 0: copy matches into ``out`` (uint64 words); 1: their indices into ``idx``; 2: a mask into ``idx``; 3: count.

    Without a branch on the outcome: every tick is written at the result's next
    slot and the slot advances only if it matched (selection is unpredictable
    tick to tick, a branch on it would mispredict half the time).
    """
    n = w.shape[0] // 8
    k = 0
    for i in range(n):
        o = i * 8
        w7 = w[o + 7]
        t = w[o + t_word]
        ok = np.int64(types[(w7 >> np.uint64(48)) & np.uint64(0xFF)]) & np.int64(locs[w7 & np.uint64(0xFFFF)])
        ok &= np.int64((side == 0) | (((w7 >> np.uint64(56)) & np.uint64(0xFF)) == side))
        ok &= np.int64(t >= t0) & np.int64(t < t1)
        if mode == 0:
            d = k * 8
            for j in range(8):
                out[d + j] = w[o + j]
        elif mode == 1:
            idx[k] = i
        elif mode == 2:
            idx[i] = ok
        k += ok
    return k


def _criteria(types, locates, symbols, directory, side, ts_from, ts_to, time_field):
    tt = np.ones(256, np.uint8)
    if types is not None:
        codes = [ord(c) if isinstance(c, str) else int(c) for c in types]
        if not codes:
            raise ValueError("types is empty: give message type letters such as 'AF'")
        tt[:] = 0
        tt[codes] = 1
    lt = np.ones(1 << 16, np.uint8)
    if locates is not None or symbols is not None:
        lt[:] = 0
        if locates is not None:
            lt[np.asarray(locates, np.int64)] = 1
        if symbols is not None:
            if directory is None:
                raise ValueError("selecting by symbol needs directory= (a Books or a SymbolDirectory)")
            table = getattr(directory, "symbols", directory)
            lt[table.locates(symbols).astype(np.int64)] = 1
    if side is None:
        sb = 0
    elif side in ("B", "S"):
        sb = ord(side)
    else:
        raise ValueError(f"side must be 'B' or 'S', got {side!r}")
    words = {"ts_exch": 3, "ts_rx": 1, "seq": 0, "feed_seq": 2}
    if time_field not in words:
        raise ValueError(f"time_field must be one of {sorted(words)}, got {time_field!r}")
    t0 = np.uint64(0 if ts_from is None else ts_from)
    t1 = np.uint64((1 << 64) - 1 if ts_to is None else ts_to)
    return tt, lt, np.uint64(sb), words[time_field], t0, t1


def _words(ticks: np.ndarray) -> np.ndarray:
    if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
        raise ValueError(f"ticks must be a 1-D array of the tick dtype, got {ticks.dtype}")
    if not ticks.flags.c_contiguous:
        ticks = np.ascontiguousarray(ticks)
    w = ticks.view(np.uint64)
    if w.flags.writeable:                       # one compiled signature for ring views and arrays
        w = w.view()
        w.flags.writeable = False
    return w


def select(ticks: np.ndarray, *, types: str | Iterable | None = None, locates=None, symbols=None, directory=None,
           side: str | None = None, ts_from: int | None = None, ts_to: int | None = None,
           time_field: str = "ts_exch", out: np.ndarray | None = None) -> np.ndarray:
    """The ticks that meet every criterion, copied into a new tick array, in order.

    types : message type letters (``"AF"``, ``["E", "C"]``; 0 selects device events).
    locates, symbols : stock locates, or symbols resolved through ``directory``.
    side : ``"B"`` or ``"S"`` (the side byte; meaningful for A F P).
    ts_from, ts_to : a half-open range ``[ts_from, ts_to)`` of ``time_field`` (ns since
        midnight for ``ts_exch``; ``ts_rx``, ``seq`` and ``feed_seq`` work too).
    out : a tick array to fill (at least as long as ``ticks``), reused from call to call;
        the result is then a view of its start.  Fresh memory costs a page fault per
        4 KiB on first touch, which is most of the time of a selective filter.
    """
    w = _words(ticks)
    crit = _criteria(types, locates, symbols, directory, side, ts_from, ts_to, time_field)
    n = w.shape[0] // 8
    if out is None:
        buf = np.empty(n * 8, np.uint64)     # pages are touched only as far as the result goes
    else:
        if out.dtype != TICK_DTYPE or out.ndim != 1 or not out.flags.c_contiguous or len(out) < n:
            raise ValueError(f"out must be a contiguous tick array of at least {n} ticks")
        buf = out.view(np.uint64)
    k = _scan(w, *crit, buf, np.empty(0, np.int64), 0)
    return buf[:k * 8].view(TICK_DTYPE)


def where(ticks: np.ndarray, **criteria) -> np.ndarray:
    """int64 indices of the ticks that meet every criterion (same keywords as :func:`select`)."""
    w = _words(ticks)
    idx = np.empty(w.shape[0] // 8, np.int64)
    k = _scan(w, *_criteria(**_defaults(criteria)), np.empty(0, np.uint64), idx, 1)
    return idx[:k]


def mask(ticks: np.ndarray, **criteria) -> np.ndarray:
    """A bool mask of the ticks that meet every criterion (same keywords as :func:`select`)."""
    w = _words(ticks)
    m = np.empty(w.shape[0] // 8, np.int64)
    _scan(w, *_criteria(**_defaults(criteria)), np.empty(0, np.uint64), m, 2)
    return m.astype(bool)


def count(ticks: np.ndarray, **criteria) -> int:
    """How many ticks meet every criterion, without copying any."""
    w = _words(ticks)
    return int(_scan(w, *_criteria(**_defaults(criteria)), np.empty(0, np.uint64), np.empty(0, np.int64), 3))


def _defaults(criteria: dict) -> dict:
    known = ("types", "locates", "symbols", "directory", "side", "ts_from", "ts_to", "time_field")
    unknown = set(criteria) - set(known)
    if unknown:
        raise TypeError(f"unknown selection criteria {sorted(unknown)}; use {', '.join(known)}")
    out = dict.fromkeys(known)
    out["time_field"] = "ts_exch"
    out.update(criteria)
    return out
