"""The strategy API, and strategy building blocks that consume tick batches in place.

One API, two styles, any source (:func:`run`):

- **batch**: subclass :class:`Strategy` and write ``on_batch(ticks, update,
  books)``: ``ticks`` is each new batch as a zero-copy view, ``books`` the
  order books *after* it, ``update`` its BBO rows and trade prints; vectorise
  with numpy or compile with numba;
- **event**: subclass :class:`EventStrategy` and write ``on_A(tick, books)``,
  ``on_E``, ... (one method per ITCH type you care about), ``on_bbo(row,
  books)`` and ``on_gap(tick, books)``; each sees the books right after its
  message.  It costs a Python call per event (docs/strategies.md).

The same strategy object runs on a live ring, on the software replay device,
on a capture file or on ticks in memory (:mod:`wiretick.host.sources`).

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

:class:`Vwap` has two engines that give the same results.  ``"numba"`` (the
default) is one compiled pass over the batch in tick order: each tick's
64-byte line is read once, the type is classified through a 256-entry table,
and the order book is written without a branch (ticks that add no order write
a scratch entry), so the mix of message types costs no mispredictions.
``"numpy"`` is the vectorized reference: a few passes over the batch, which
apply a batch's adds and replaces before its executions (the same thing on
any feed where an order is added before it executes, as ITCH guarantees).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numba
import numpy as np

from .contract.formats import Flag
from .tick import TICK_DTYPE

__all__ = ["Vwap", "ScalarVwap", "TICK_STRUCT", "ENGINES", "Strategy", "EventStrategy", "RunResult", "run"]

_A, _F, _U, _E, _C, _P = (ord(c) for c in "AFUECP")

#: ``Vwap(engine=...)``: the compiled single pass (default) and the numpy reference.
ENGINES = ("numba", "numpy")

# What the compiled pass does with each msg_type.
_OTHER, _ADD, _REPLACE, _EXEC, _EXEC_PRICED, _TRADE = range(6)
_CLASS = np.zeros(256, np.uint8)
_CLASS[[_A, _F]] = _ADD            # order_ref -> price
_CLASS[_U] = _REPLACE              # ref2 (the new reference) -> price
_CLASS[_E] = _EXEC                 # shares at the book's price of order_ref
_CLASS[_C] = _EXEC_PRICED          # shares at price, when printable
_CLASS[_P] = _TRADE                # shares at price
_CLASS.flags.writeable = False

_PRINTABLE_BIT = 32 + (Flag.PRINTABLE.bit_length() - 1)   # flags is bits 32..47 of word 7


@numba.njit(cache=True, nogil=True)
def _vwap_pass(w, cls, book, notional, volume):  # pragma: no cover - compiled
    """Fold ticks (``w``: their uint64 words, 8 per tick) in, in tick order; returns the unpriced shares.

    ``book`` holds one price per tracked order reference plus, last, a scratch
    entry: every tick stores into the book (the scratch entry unless it adds an
    order), which costs less than a branch on a message type that is
    unpredictable from one tick to the next.  A one-entry book tracks nothing.
    """
    n = w.shape[0] // 8
    scratch = np.uint64(book.shape[0] - 1)      # references below this are tracked
    lo32 = np.uint64(0xFFFF_FFFF)
    unpriced = np.uint64(0)
    for i in range(n):
        o = i * 8
        w7 = w[o + 7]                           # locate, tracking, flags, msg_type, side
        c = cls[(w7 >> np.uint64(48)) & np.uint64(0xFF)]
        ref = w[o + 5] if c == _REPLACE else w[o + 4]
        w6 = w[o + 6]                           # price (low half), shares (high half)
        known = ref < scratch
        adds = (c == _ADD) | (c == _REPLACE)
        book[ref if adds & known else scratch] = np.uint32(w6 & lo32)
        if c >= _EXEC:
            if c == _EXEC:
                price = book[ref] if known else np.uint32(0)
            elif c == _EXEC_PRICED and not (w7 >> np.uint64(_PRINTABLE_BIT)) & np.uint64(1):
                continue
            else:
                price = np.uint32(w6 & lo32)
            shares = w6 >> np.uint64(32)
            if price == 0:
                unpriced += shares
                continue
            loc = w7 & np.uint64(0xFFFF)
            volume[loc] += np.int64(shares)
            notional[loc] += float(shares) * float(price)
    return unpriced

#: ``struct`` layout of one tick (little-endian), for code that copies ticks out one by one.
TICK_STRUCT = struct.Struct("<QQQQQQIIHHHBB")


class Vwap:
    """Per-locate VWAP of executions, updated batch by batch in place (see the module doc).

    Parameters
    ----------
    track_orders : keep the order price book that prices ``E`` executions.  It is
        most of the cost (adds are ~40% of a feed's ticks, executions ~8%);
        without it ``E`` volume goes to ``unpriced`` and the VWAP is of ``C``/``P``.
    max_orders : order references the book tracks: a uint32 array of this many
        entries, allocated zeroed, so the operating system backs its pages only
        once they are written (order references are dense: a day of 2M orders
        touches 8 MB of the default 256 MB of address space).
    engine : ``"numba"`` (one compiled pass, the default) or ``"numpy"`` (the
        vectorized reference); both give the same results (module doc).

    Attributes
    ----------
    notional : float64[65536], sum of shares * Price(4) per locate (Price(4) units).
    volume : int64[65536], executed shares per locate.
    unpriced : executed shares whose order price was unknown.
    """

    def __init__(self, *, track_orders: bool = True, max_orders: int = 1 << 26, engine: str = "numba"):
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if int(max_orders) < 0:
            raise ValueError(f"max_orders must be >= 0, got {max_orders}")
        self.track_orders = track_orders
        self.max_orders = int(max_orders)
        self.engine = engine
        self.notional = np.zeros(1 << 16, np.float64)
        self.volume = np.zeros(1 << 16, np.int64)
        self.unpriced = 0
        # one entry per tracked reference, then the compiled pass's scratch entry
        self._book = np.zeros((self.max_orders if track_orders else 0) + 1, np.uint32)
        self._tracked = len(self._book) - 1

    def update(self, ticks: np.ndarray) -> None:
        """Fold one batch of ticks (a 1-D array of the tick dtype, such as a ring view) in, in place."""
        if not len(ticks):
            return
        if not ticks.flags.c_contiguous:        # e.g. a strided slice: both engines read whole records
            ticks = np.ascontiguousarray(ticks)
        if self.engine == "numba":
            self._update_numba(ticks)
        else:
            self._update_numpy(ticks)

    def _update_numba(self, ticks: np.ndarray) -> None:
        if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
            raise ValueError(f"ticks must be a 1-D array of the tick dtype, got {ticks.dtype}")
        w = ticks.view(np.uint64)
        if w.flags.writeable:                   # one compiled signature: ring views are read-only
            w = w.view()
            w.flags.writeable = False
        self.unpriced += int(_vwap_pass(w, _CLASS, self._book, self.notional, self.volume))

    def _remember(self, refs: np.ndarray, prices: np.ndarray) -> None:
        if int(refs.max()) >= self._tracked:
            keep = refs < self._tracked
            refs, prices = refs[keep], prices[keep]
        # int64 indices: numpy indexes with uint64 arrays through a cast ~8x slower
        self._book[refs.view(np.int64)] = prices

    def _update_numpy(self, ticks: np.ndarray) -> None:
        """Only the type byte of every tick and the fields of the ticks that matter are read."""
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
                inside = refs < self._tracked
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


# ------------------------------------------------------------------ the strategy API


class Strategy:
    """Batch style: override :meth:`on_batch` (and :meth:`on_start`, :meth:`on_end`, :meth:`on_stale` if needed)."""

    def on_start(self, books) -> None:
        """Before the first batch."""

    def on_batch(self, ticks: np.ndarray, update, books) -> None:
        """One new batch: ``ticks`` (a zero-copy view: use in place, copy what you keep), ``update``
        (:class:`~wiretick.host.book.BookUpdate`: its BBO rows and trade prints) and ``books`` after it."""

    def on_stale(self, books, reason: str) -> None:
        """The books may be wrong from here on (``reason``: ``"gap"``, ``"lapped"`` or ``"overwritten"``);
        they stay marked (``books.stale``) until ``books.recover()``.  Default: nothing."""

    def on_end(self, books) -> None:
        """After the last batch."""


class EventStrategy(Strategy):
    """Event style: define ``on_<type>(tick, books)`` for the ITCH types you want (``on_A``, ``on_E``,
    ``on_H``, ...), ``on_bbo(row, books)`` for changes of a best bid or offer and ``on_gap(tick, books)``
    for gap/abort/drop events.  Each runs right after its message was applied to ``books``."""

    def handlers(self) -> dict[int, object]:
        from .contract.formats import MESSAGES
        out = {m.type_byte: getattr(self, f"on_{m.code}") for m in MESSAGES if hasattr(self, f"on_{m.code}")}
        if hasattr(self, "on_gap"):
            out[0] = self.on_gap
        return out

    def on_batch(self, ticks: np.ndarray, update, books) -> None:  # pragma: no cover - never called
        pass


@dataclass
class RunResult:
    """What :func:`run` saw: ``ticks`` and ``batches`` delivered, ``lost`` (a lapped ring reader),
    ``overwritten`` (batches a ring overwrote while in use), ``seconds`` of wall time."""

    books: object
    ticks: int = 0
    batches: int = 0
    lost: int = 0
    overwritten: int = 0
    seconds: float = 0.0


def run(strategy: Strategy, source, *, books=None, **source_kwargs) -> RunResult:
    """Feed ``strategy`` every batch of ``source`` (a Ring, a Device, a capture path, a ``.npy``, a tick
    array or a :class:`~wiretick.host.sources.TickSource`), books first.

    A ring reader that is lapped, or whose batch was overwritten while the
    strategy used it, marks every book stale and tells the strategy
    (:meth:`Strategy.on_stale`): the books missed messages.  The source is
    closed when the run ends (a Ring passed in directly is left open).
    """
    import time

    from .book import Books
    from .sources import open_source

    books = books if books is not None else Books()
    res = RunResult(books)
    t0 = time.perf_counter()
    src = open_source(source, **source_kwargs)
    try:
        event = isinstance(strategy, EventStrategy)
        if event:
            handlers = strategy.handlers()
            on_bbo = getattr(strategy, "on_bbo", None)
            stops = sorted(handlers)
        strategy.on_start(books)
        lost = src.lost
        for batch in src.batches():
            if src.lost != lost:
                lost = src.lost
                books.stale[:] = 1
                strategy.on_stale(books, "lapped")
            gaps = books.counters["gap_events"]
            if not event:
                update = books.update(batch, copy=False)
                strategy.on_batch(batch, update, books)
            elif stops or on_bbo is not None:
                for i, up in books.events(batch, stops, bbo=on_bbo is not None):
                    tick = batch[i]
                    h = handlers.get(int(tick["msg_type"]))
                    if h is not None:
                        h(tick, books)
                    if on_bbo is not None:
                        for row in up.bbo:
                            on_bbo(row, books)
            else:
                books.update(batch, copy=False)
            if books.counters["gap_events"] != gaps:
                strategy.on_stale(books, "gap")
            if not src.intact(batch):
                res.overwritten += 1
                books.stale[:] = 1
                strategy.on_stale(books, "overwritten")
            res.ticks += len(batch)
            res.batches += 1
        strategy.on_end(books)
        res.lost = src.lost
    finally:
        # A source is read to its end here, so it is closed here too (a ReplaySource's device and ring
        # file go with it); a Ring given directly stays open: the RingSource around it does not own it.
        src.close()
    res.seconds = time.perf_counter() - t0
    return res
