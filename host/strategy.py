"""Strategy building blocks that consume tick batches in place.

:class:`Vwap` keeps a per-symbol (stock locate) volume-weighted average price
of executions, one numpy pass per batch: no tick is copied out of the ring.
:class:`ScalarVwap` is the same computation fed one tick at a time (the way a
strategy that copies ticks out of a socket works); the benchmark compares the
two and the tests check that they agree.

Which ticks count (NASDAQ's rules for printed volume):

- ``E`` (Order Executed): ``shares`` at the price of the resting order, which
  the E message does not carry: it is looked up by ``order_ref`` in a price
  book kept from ``A``/``F`` (add, key ``order_ref``) and ``U`` (replace, key
  ``ref2`` = the new reference);
- ``C`` (Executed With Price): ``shares`` at ``price``, only when printable;
- ``P`` (Trade, non-cross): ``shares`` at ``price``.

Order references index a dense array (they are small, increasing integers
for the day); references at or past ``max_orders`` are not tracked, and
executions against orders the book does not know (added before the reader
joined, or untracked) are counted in ``unpriced`` instead of the VWAP.
"""

from __future__ import annotations

import struct

import numpy as np

from .formats import Flag

__all__ = ["Vwap", "ScalarVwap", "TICK_STRUCT"]

_A, _F, _U, _E, _C, _P = (ord(c) for c in "AFUECP")

#: ``struct`` layout of one tick (little-endian), for code that copies ticks out one by one.
TICK_STRUCT = struct.Struct("<QQQQQQIIHHHBB")


class Vwap:
    """Per-locate VWAP of executions, updated batch by batch with numpy (see the module doc).

    Parameters
    ----------
    track_orders : keep the order price book that prices ``E`` executions.  It is
        most of the cost (adds are ~40% of a feed's ticks, executions ~8%);
        without it ``E`` volume goes to ``unpriced`` and the VWAP is of ``C``/``P``.
    max_orders : order references the book tracks (a dense uint32 array grown on
        demand up to this many entries).

    Attributes
    ----------
    notional : float64[65536], sum of shares * Price(4) per locate (Price(4) units).
    volume : int64[65536], executed shares per locate.
    unpriced : executed shares whose order price was unknown.
    """

    def __init__(self, *, track_orders: bool = True, max_orders: int = 1 << 26):
        self.track_orders = track_orders
        self.max_orders = int(max_orders)
        self.notional = np.zeros(1 << 16, np.float64)
        self.volume = np.zeros(1 << 16, np.int64)
        self.unpriced = 0
        self._book = np.zeros(1 << 16 if track_orders else 1, np.uint32)

    def _grow(self, top: int) -> None:
        size = len(self._book)
        while size <= top and size < self.max_orders:
            size *= 2
        size = min(size, self.max_orders)
        if size > len(self._book):
            book = np.zeros(size, np.uint32)
            book[:len(self._book)] = self._book
            self._book = book

    def _remember(self, refs: np.ndarray, prices: np.ndarray) -> None:
        top = int(refs.max())
        if top >= len(self._book):
            self._grow(top)
            if top >= len(self._book):
                keep = refs < len(self._book)
                refs, prices = refs[keep], prices[keep]
        # int64 indices: numpy indexes with uint64 arrays through a cast ~8x slower
        self._book[refs.view(np.int64)] = prices

    def update(self, ticks: np.ndarray) -> None:
        """Fold one batch of ticks in.  A view into a ring is read in place: only the
        type byte of every tick and the fields of the ticks that matter are touched."""
        if not len(ticks):
            return
        m = ticks["msg_type"].copy()      # one strided pass; the compares then run on packed bytes
        if self.track_orders:
            # Adds and replaces first: an order is always added before it executes.
            sel = m == _A
            sel |= m == _F
            add = np.flatnonzero(sel)
            if len(add):
                self._remember(ticks["order_ref"][add], ticks["price"][add])
            rep = np.flatnonzero(m == _U)
            if len(rep):
                self._remember(ticks["ref2"][rep], ticks["price"][rep])
        sel = m == _E
        sel |= m == _C
        sel |= m == _P
        idx = np.flatnonzero(sel)
        if not len(idx):
            return
        typ = m[idx]
        # price (u32 at 48) and shares (u32 at 52) are one 8-byte word: one gather for both
        w6 = ticks.view(np.uint64).reshape(-1, 8)[:, 6][idx]
        price = (w6 & np.uint64(0xFFFF_FFFF)).astype(np.float64)
        shares = (w6 >> np.uint64(32)).astype(np.float64)
        e = np.flatnonzero(typ == _E)
        if len(e):
            price[e] = 0.0
            if self.track_orders:
                refs = ticks["order_ref"][idx[e]]
                inside = refs < len(self._book)
                price[e[inside]] = self._book[refs[inside].view(np.int64)]
        c = np.flatnonzero(typ == _C)
        if len(c):
            # C counts only when printable (PRINTABLE is only ever set on C)
            shares[c[(ticks["flags"][idx[c]] & Flag.PRINTABLE) == 0]] = 0.0
        unknown = price == 0.0
        if unknown.any():
            self.unpriced += int(shares[unknown].sum())
            shares[unknown] = 0.0
        loc = ticks["locate"][idx]
        notional = np.bincount(loc, weights=price * shares)
        vol = np.bincount(loc, weights=shares)
        k = len(notional)
        self.notional[:k] += notional
        self.volume[:k] += vol.astype(np.int64)

    def vwap(self) -> np.ndarray:
        """float64[65536]: VWAP in dollars per locate (NaN where nothing traded)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.notional / self.volume / 10_000.0

    def result(self) -> dict[int, tuple[int, float]]:
        """{locate: (volume, notional in Price(4) units)} for every locate that traded."""
        return {int(i): (int(self.volume[i]), float(self.notional[i])) for i in np.flatnonzero(self.volume)}


class ScalarVwap:
    """:class:`Vwap` one tick at a time in plain Python: the copying reference (same rules, same results)."""

    def __init__(self, *, track_orders: bool = True, max_orders: int = 1 << 26):
        self.track_orders = track_orders
        self.max_orders = int(max_orders)
        self.book: dict[int, int] = {}
        self.volume: dict[int, int] = {}
        self.notional: dict[int, float] = {}
        self.unpriced = 0

    def update_one(self, raw: bytes) -> None:
        """Fold in one tick given as its 64 bytes (copied out of the ring)."""
        (_seq, _ts, _fs, _te, order_ref, ref2, price, shares, locate, _trk, flags, typ,
         _side) = TICK_STRUCT.unpack(raw)
        if typ == _A or typ == _F:
            if self.track_orders and order_ref < self.max_orders:
                self.book[order_ref] = price
            return
        if typ == _U:
            if self.track_orders and ref2 < self.max_orders:
                self.book[ref2] = price
            return
        if typ == _E:
            price = self.book.get(order_ref, 0)
        elif typ == _C:
            if not flags & Flag.PRINTABLE:
                return
        elif typ != _P:
            return
        if not price:
            self.unpriced += shares
            return
        self.volume[locate] = self.volume.get(locate, 0) + shares
        self.notional[locate] = self.notional.get(locate, 0.0) + shares * float(price)

    def result(self) -> dict[int, tuple[int, float]]:
        """{locate: (volume, notional in Price(4) units)} for every locate that traded."""
        return {k: (v, self.notional[k]) for k, v in sorted(self.volume.items()) if v}
