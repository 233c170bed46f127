"""Order books per symbol from ticks: one compiled pass per batch, BBO rows and trade prints as numpy.

:class:`Books` applies the order-book messages exactly as ITCH defines them:

- ``A``/``F`` add a resting order (reference -> side, price, shares, locate);
- ``E``/``C``/``X`` take shares from it, ``D`` removes it; reaching 0 shares removes it;
- ``U`` kills the original reference and adds the new one with the new price and
  shares, keeping the **side and the locate of the order it replaces**;
- ``P``, ``Q`` and ``B`` change no book but are trade prints, as are ``E`` (at the
  resting order's price) and ``C`` (at its own price);
- ``R``, ``H``, ``h``, ``Y``, ``Q`` and ``S`` update the symbol directory and the
  trading state (:mod:`wiretick.host.symbols`).

Every book keeps its price levels per side (aggregate shares and order count);
after a book-changing message (A F E C X D U) a **BBO row** is emitted for the
order's locate when either side's presence, price or aggregate size changed (an
order count that changes alone emits nothing: itch-book's definition).

Inconsistencies never stop the feed: they are counted by reason in
:attr:`Books.counters` (:data:`INCONSISTENCIES`) and the message is applied as far
as it can be: an unknown reference changes nothing, an execution or cancel of more
shares than remain removes the order, an add onto a live reference replaces the
stale order, an add of 0 shares or price 0 is refused.

Gaps: a gap, abort or drop event tick (``msg_type`` 0) marks **every** book as
possibly stale (:attr:`Books.stale`, per locate), because the lost messages may have
touched any of them; the marks stay until the strategy calls :meth:`Books.recover`
(see docs/strategies.md for what to do meanwhile).

How it is fast: the pass is one numba loop over the ticks' 64-bit words (no per-tick
Python).  Orders live in a dense table indexed by reference (ITCH references are
day-unique, small and near-dense), 16 bytes per reference, grown on demand up to
``max_orders``.  Each side of each book is a sorted array of levels with the best
level last (asks keyed by the complement of the price, so both sides share one
order), in one arena: adds and removals near the touch find their level in a step
or two from the back; a deep level is found by binary search.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np
from llvmlite import ir
from numba import types as nt
from numba.core import cgutils
from numba.extending import intrinsic

from .errors import WiretickError
from .contract.formats import Flag
from .symbols import (D_ATTRS, D_ETP, D_LOT, D_MKT, D_SRC, D_SYMBOL, NLOC, S_CROSS, S_HALT_B,
                      S_HALT_Q, S_HALT_X, S_REGSHO, S_TRADING, SOURCE_OTHER, SOURCE_R, SymbolDirectory,
                      TradingState)
from .tick import TICK_DTYPE

__all__ = ["Books", "BookUpdate", "bbo_of", "UnknownSymbols", "concat_rows", "BBO_DTYPE", "TRADE_DTYPE", "LEVEL_DTYPE", "INCONSISTENCIES",
           "BOOK_TYPES", "bbo_table"]

#: One row per change of a symbol's best bid or offer.  Prices are Price(4)
#: integers; an empty side is price 0, size 0, count 0.  ``seq`` is the tick's.
BBO_DTYPE: np.dtype  # defined below, from the word layout the compiled pass writes

#: One row per trade print: ``E`` (at the resting order's price; 0 if the order is
#: unknown), ``C`` (its own price; ``printable``), ``P``, ``Q`` (``side`` = cross
#: type) and ``B`` (only ``match``).  ``side`` is the resting side for E and C.
TRADE_DTYPE: np.dtype

#: One price level of a depth query (both sides on one row, best first).
LEVEL_DTYPE = np.dtype([("bid_px", "<u4"), ("bid_sz", "<u8"), ("bid_ct", "<u4"),
                        ("ask_px", "<u4"), ("ask_sz", "<u8"), ("ask_ct", "<u4")], align=True)

#: Inconsistencies counted by reason (none stops the feed).
INCONSISTENCIES = (
    "unknown_ref",        # E C X D on a reference that is not live: nothing changes
    "replace_unknown",    # U of a dead or unknown order: nothing changes
    "shares_negative",    # E C X of more shares than remain: the order is removed
    "duplicate_ref",      # A F U onto a live reference: the stale order is removed first
    "add_rejected",       # A F U with 0 shares or price 0: not added
    "untracked_ref",      # a reference at or past max_orders: ignored
    "locate_mismatch",    # E C X D U whose locate is not its order's: the order's locate is used
    "gap_events",         # gap/abort/drop event ticks (each marks every book stale)
)

#: The messages that change a book (and may emit a BBO row).
BOOK_TYPES = "AFECXDU"

(_UNKNOWN_REF, _REPLACE_UNKNOWN, _SHARES_NEGATIVE, _DUPLICATE_REF, _ADD_REJECTED, _UNTRACKED_REF, _LOCATE_MISMATCH,
 _GAP_EVENTS) = range(len(INCONSISTENCIES))

# What the pass does with each msg_type.
(_OTHER, _ADD, _EXEC, _EXEC_PX, _CANCEL, _DELETE, _REPLACE, _TRADE, _CROSS, _BROKEN, _EVENT, _DIR, _HALT, _OPHALT,
 _REGSHO, _SYSTEM, _NAMES) = range(17)
_CLASS = np.zeros(256, np.uint8)
for _c, _v in (("A", _ADD), ("F", _ADD), ("E", _EXEC), ("C", _EXEC_PX), ("X", _CANCEL), ("D", _DELETE),
               ("U", _REPLACE), ("P", _TRADE), ("Q", _CROSS), ("B", _BROKEN), ("R", _DIR), ("H", _HALT),
               ("h", _OPHALT), ("Y", _REGSHO), ("S", _SYSTEM), ("L", _NAMES), ("K", _NAMES), ("J", _NAMES),
               ("N", _NAMES), ("O", _NAMES)):
    _CLASS[ord(_c)] = _v
_CLASS[0] = _EVENT
_CLASS.flags.writeable = False

# state[] slots
_ST_SYS, _ST_STALE_SEQ, _ST_MAXCAP, _ST_TOP, _ST_WANT, _ST_N = range(6)
_GROW_NONE, _GROW_ORDERS, _GROW_ARENA, _STOPPED = 0, 1, 2, 3
_NO_STOPS = np.zeros(257, np.uint8)
_NO_STOPS.flags.writeable = False
_MINCAP = 8
_STALE_EVENTS = Flag.EVENT_GAP | Flag.EVENT_ABORT | Flag.EVENT_DROP
_ASKKEY = 0xFFFF_FFFF
_PRINTABLE = Flag.PRINTABLE


# Output rows are written as eight 64-bit words each (the layouts below).
_BBO_OFFSETS = {"ts_exch": 0, "feed_seq": 8, "seq": 16, "locate": 24, "bid_px": 28, "bid_sz": 32, "bid_ct": 40,
                "ask_px": 44, "ask_sz": 48, "ask_ct": 56}
_TRADE_OFFSETS = {"ts_exch": 0, "feed_seq": 8, "seq": 16, "order_ref": 24, "match": 32, "price": 40,
                  "shares": 44, "locate": 48, "kind": 50, "side": 51, "printable": 52}


def _layout(fields: dict[str, str], offsets: dict[str, int]) -> np.dtype:
    return np.dtype({"names": list(fields), "formats": list(fields.values()),
                     "offsets": [offsets[k] for k in fields], "itemsize": 64})


BBO_DTYPE = _layout({"ts_exch": "<u8", "feed_seq": "<u8", "seq": "<u8", "locate": "<u2", "bid_px": "<u4",
                     "bid_sz": "<u8", "bid_ct": "<u4", "ask_px": "<u4", "ask_sz": "<u8", "ask_ct": "<u4"},
                    _BBO_OFFSETS)
TRADE_DTYPE = _layout({"ts_exch": "<u8", "feed_seq": "<u8", "seq": "<u8", "order_ref": "<u8", "match": "<u8",
                       "price": "<u4", "shares": "<u4", "locate": "<u2", "kind": "u1", "side": "u1",
                       "printable": "?"}, _TRADE_OFFSETS)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Ask the CPU to bring ``arr[idx]`` (a 1-D array) into cache: LLVM's ``prefetch`` (read, high locality)."""
    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        ptr = builder.bitcast(ptr, ir.IntType(8).as_pointer())   # one declaration for every element type
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [ptr.type, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [ptr, i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return nt.void(arr, idx), codegen


#: Ticks ahead whose order the pass prefetches: order lookups are random reads of a
#: table larger than the cache, so each would otherwise wait for DRAM.
_AHEAD = 16


@numba.njit(cache=True, nogil=True)
def _apply(w, i0, cls, orders, max_orders, seg, lv, state, last, counters, stale, dirs, tstate,
           bbo, nb0, trd, nt0, stops):  # pragma: no cover - compiled
    """Apply ticks from ``i0``; returns (next tick, BBO rows, trade rows, why it stopped: 0 done, 1/2 a grow
    request, 3 right after a tick whose type is set in ``stops[:256]``, or that emitted a BBO row if ``stops[256]``).

    One function with no calls: numba would count references on every array
    passed to a helper, atomically, several times per tick.  ``seg[b]`` is
    (start, length, capacity) of book side ``b = 2 * locate + (0 bid, 1 ask)``;
    ``lv[start + j]`` is (key, shares, orders) of its j-th level, ascending, the
    best last (bid key = price, ask key = 2^32-1 - price).
    """
    n = w.shape[0] // 8
    nb = nb0
    nt = nt0
    lo32 = np.uint64(0xFFFF_FFFF)
    cap_orders = np.uint64(orders.shape[0])
    lim = np.uint64(max_orders)
    arena = lv.shape[0]
    flat = orders.reshape(-1)
    for i in range(i0, n):
        if i > i0 and (stops[(w[i * 8 - 1] >> np.uint64(48)) & np.uint64(0xFF)] != 0
                       or (stops[256] != 0 and nb > nb0)):
            return i, nb, nt, 3
        if state[_ST_TOP] + 2 * state[_ST_MAXCAP] + _MINCAP > arena:
            return i, nb, nt, 2
        if i + _AHEAD < n:
            ahead = w[(i + _AHEAD) * 8 + 4]
            if ahead < cap_orders:
                _prefetch(flat, np.int64(ahead) * 4)
        o = i * 8
        w7 = w[o + 7]
        typ = (w7 >> np.uint64(48)) & np.uint64(0xFF)
        c = cls[typ]
        if c == _OTHER:
            continue
        loc = np.int64(w7 & np.uint64(0xFFFF))
        ref = w[o + 4]
        w6 = w[o + 6]
        px = np.int64(w6 & lo32)
        sh = np.int64(w6 >> np.uint64(32))
        if c <= _REPLACE:
            new = w[o + 5] if c == _REPLACE else ref
            if (ref < lim and ref >= cap_orders) or (c == _REPLACE and new < lim and new >= cap_orders):
                state[_ST_WANT] = np.int64(max(ref if ref < lim else np.uint64(0), new if new < lim else np.uint64(0)))
                return i, nb, nt, 1
            # Up to two level removals (the order the message takes shares from, and a
            # live order an add lands on), then up to one level addition.
            t_b0 = np.int64(-1)
            t_key0 = np.int64(0)
            t_sh0 = np.int64(0)
            t_gone0 = False
            t_b1 = np.int64(-1)
            t_key1 = np.int64(0)
            t_sh1 = np.int64(0)
            a_b = np.int64(-1)
            a_key = np.int64(0)
            touched0 = np.int64(-1)
            touched1 = np.int64(-1)
            oside = np.int64(0)
            opx = np.int64(0)
            side = np.int64(0)
            if c != _ADD:                                   # E C X D U: an existing order
                if ref >= lim:
                    counters[_UNTRACKED_REF] += 1
                    if c == _REPLACE:
                        continue
                elif orders[ref, 2] >> 16 == 0:
                    counters[_REPLACE_UNKNOWN if c == _REPLACE else _UNKNOWN_REF] += 1
                    if c == _REPLACE:
                        continue
                else:
                    oloc = np.int64(orders[ref, 2] & 0xFFFF)
                    oside = np.int64(orders[ref, 2] >> 16)
                    opx = np.int64(orders[ref, 0])
                    rem = np.int64(orders[ref, 1])
                    if oloc != loc:
                        counters[_LOCATE_MISMATCH] += 1
                        loc = oloc
                    take = sh
                    if c == _DELETE or c == _REPLACE:
                        take = rem
                    elif take > rem:
                        counters[_SHARES_NEGATIVE] += 1
                        take = rem
                    t_b0 = loc * 2 + oside - 1
                    t_key0 = opx if oside == 1 else 0xFFFF_FFFF - opx
                    t_sh0 = take
                    t_gone0 = take == rem
                    if t_gone0:
                        orders[ref, 2] = 0
                    else:
                        orders[ref, 1] = np.uint32(rem - take)
                    touched0 = loc
                    side = oside
            else:
                side = np.int64(1) if ((w7 >> np.uint64(56)) & np.uint64(0xFF)) == 66 else np.int64(2)
            if c == _ADD or c == _REPLACE:                         # add ``new`` on ``side`` of ``loc``
                if new >= lim:
                    counters[_UNTRACKED_REF] += 1
                elif sh == 0 or px == 0:
                    counters[_ADD_REJECTED] += 1
                else:
                    if orders[new, 2] >> 16 != 0:        # a live reference: the stale order goes first
                        counters[_DUPLICATE_REF] += 1
                        dside = np.int64(orders[new, 2] >> 16)
                        dloc = np.int64(orders[new, 2] & 0xFFFF)
                        dpx = np.int64(orders[new, 0])
                        t_b1 = dloc * 2 + dside - 1
                        t_key1 = dpx if dside == 1 else 0xFFFF_FFFF - dpx
                        t_sh1 = np.int64(orders[new, 1])
                        if dloc != loc:
                            touched1 = dloc
                    a_b = loc * 2 + side - 1
                    a_key = px if side == 1 else 0xFFFF_FFFF - px
                    orders[new, 0] = np.uint32(px)
                    orders[new, 1] = np.uint32(sh)
                    orders[new, 2] = np.uint32(loc | (side << 16))
                    touched0 = loc
            for k in range(2):
                b = t_b0 if k == 0 else t_b1
                if b < 0:
                    continue
                key = t_key0 if k == 0 else t_key1
                s = seg[b, 0]
                m = seg[b, 1]
                j = m - 1
                while j >= 0 and lv[s + j, 0] > key:
                    j -= 1
                if j < 0 or lv[s + j, 0] != key:         # cannot happen while orders and levels agree
                    continue
                lv[s + j, 1] -= t_sh0 if k == 0 else t_sh1
                if k == 1 or t_gone0:
                    lv[s + j, 2] -= 1
                    if lv[s + j, 2] == 0:
                        for q in range(j, m - 1):
                            lv[s + q, 0] = lv[s + q + 1, 0]
                            lv[s + q, 1] = lv[s + q + 1, 1]
                            lv[s + q, 2] = lv[s + q + 1, 2]
                        seg[b, 1] = m - 1
            if a_b >= 0:
                b = a_b
                key = a_key
                s = seg[b, 0]
                m = seg[b, 1]
                j = m - 1
                steps = 0
                while j >= 0 and lv[s + j, 0] > key:
                    j -= 1
                    steps += 1
                    if steps == 8 and j >= 0 and lv[s + j, 0] > key:    # deep: binary search the rest
                        lo = 0
                        hi = j
                        while lo < hi:
                            mid = (lo + hi) >> 1
                            if lv[s + mid, 0] <= key:
                                lo = mid + 1
                            else:
                                hi = mid
                        j = lo - 1
                        break
                if j >= 0 and lv[s + j, 0] == key:
                    lv[s + j, 1] += sh
                    lv[s + j, 2] += 1
                else:
                    if m == seg[b, 2]:                   # full: move to the arena's end, twice as large
                        cap = max(_MINCAP, 2 * m)
                        ns = state[_ST_TOP]
                        for q in range(m):
                            lv[ns + q, 0] = lv[s + q, 0]
                            lv[ns + q, 1] = lv[s + q, 1]
                            lv[ns + q, 2] = lv[s + q, 2]
                        state[_ST_TOP] = ns + cap
                        if cap > state[_ST_MAXCAP]:
                            state[_ST_MAXCAP] = cap
                        seg[b, 0] = ns
                        seg[b, 2] = cap
                        s = ns
                    q = m
                    while q > j + 1:
                        lv[s + q, 0] = lv[s + q - 1, 0]
                        lv[s + q, 1] = lv[s + q - 1, 1]
                        lv[s + q, 2] = lv[s + q - 1, 2]
                        q -= 1
                    lv[s + j + 1, 0] = key
                    lv[s + j + 1, 1] = sh
                    lv[s + j + 1, 2] = 1
                    seg[b, 1] = m + 1
            if c == _EXEC or c == _EXEC_PX:                         # E and C print
                trd[nt, 0] = w[o + 3]
                trd[nt, 1] = w[o + 2]
                trd[nt, 2] = w[o]
                trd[nt, 3] = ref
                trd[nt, 4] = w[o + 5]
                tpx = np.uint64(opx) if c == _EXEC else np.uint64(px)
                trd[nt, 5] = tpx | (np.uint64(sh) << np.uint64(32))
                tside = np.uint64(66 if oside == 1 else (83 if oside == 2 else 0))
                printable = np.uint64(1) if c == _EXEC else (w7 >> np.uint64(32)) & np.uint64(_PRINTABLE)
                trd[nt, 6] = (np.uint64(loc) | (typ << np.uint64(16)) | (tside << np.uint64(24))
                              | (np.uint64(1 if printable else 0) << np.uint64(32)))
                trd[nt, 7] = 0
                nt += 1
            for k in range(2):                           # BBO rows: an evicted order's other book first
                tl = touched1 if k == 0 else touched0
                if tl < 0:
                    continue
                bb = tl * 2
                bpx = np.int64(0)
                bsz = np.int64(0)
                bct = np.int64(0)
                m = seg[bb, 1]
                if m > 0:
                    t = seg[bb, 0] + m - 1
                    bpx = lv[t, 0]
                    bsz = lv[t, 1]
                    bct = lv[t, 2]
                apx = np.int64(0)
                asz = np.int64(0)
                act = np.int64(0)
                m = seg[bb + 1, 1]
                if m > 0:
                    t = seg[bb + 1, 0] + m - 1
                    apx = 0xFFFF_FFFF - lv[t, 0]
                    asz = lv[t, 1]
                    act = lv[t, 2]
                if bpx == last[tl, 0] and bsz == last[tl, 1] and apx == last[tl, 2] and asz == last[tl, 3]:
                    continue
                last[tl, 0] = bpx
                last[tl, 1] = bsz
                last[tl, 2] = apx
                last[tl, 3] = asz
                bbo[nb, 0] = w[o + 3]
                bbo[nb, 1] = w[o + 2]
                bbo[nb, 2] = w[o]
                bbo[nb, 3] = np.uint64(tl) | (np.uint64(bpx) << np.uint64(32))
                bbo[nb, 4] = np.uint64(bsz)
                bbo[nb, 5] = np.uint64(bct) | (np.uint64(apx) << np.uint64(32))
                bbo[nb, 6] = np.uint64(asz)
                bbo[nb, 7] = np.uint64(act)
                nb += 1
        elif c <= _BROKEN:                                     # P Q B: prints
            trd[nt, 0] = w[o + 3]
            trd[nt, 1] = w[o + 2]
            trd[nt, 2] = w[o]
            trd[nt, 3] = ref if c == _TRADE else np.uint64(0)
            trd[nt, 4] = w[o + 5]
            trd[nt, 5] = w6
            code = (w7 >> np.uint64(56)) & np.uint64(0xFF)
            trd[nt, 6] = (np.uint64(loc) | (typ << np.uint64(16)) | (code << np.uint64(24))
                          | (np.uint64(0 if c == _BROKEN else 1) << np.uint64(32)))
            trd[nt, 7] = 0
            nt += 1
            if c == _CROSS:
                tstate[loc, S_CROSS] = np.uint8(code)
        elif c == _EVENT:
            if (w7 >> np.uint64(32)) & np.uint64(_STALE_EVENTS):
                counters[_GAP_EVENTS] += 1
                stale[:] = 1
                state[_ST_STALE_SEQ] = np.int64(w[o])
        else:
            code8 = np.uint8((w7 >> np.uint64(56)) & np.uint64(0xFF))
            if c == _SYSTEM:
                state[_ST_SYS] = np.int64(code8)
                continue
            if c == _DIR:
                dirs[loc, D_SYMBOL] = w[o + 5]
                dirs[loc, D_MKT] = np.uint64(code8)
                dirs[loc, D_LOT] = np.uint64(sh)
                dirs[loc, D_ATTRS] = ref
                dirs[loc, D_ETP] = np.uint64(px)
                dirs[loc, D_SRC] = SOURCE_R
                continue
            if dirs[loc, D_SRC] == 0:                        # learn the name from any message that carries it
                dirs[loc, D_SYMBOL] = w[o + 5]
                dirs[loc, D_SRC] = SOURCE_OTHER
            if c == _HALT:
                tstate[loc, S_TRADING] = code8
            elif c == _REGSHO:
                tstate[loc, S_REGSHO] = code8
            elif c == _OPHALT:
                action = np.uint8(ref & np.uint64(0xFF))
                if code8 == 81:
                    tstate[loc, S_HALT_Q] = action
                elif code8 == 66:
                    tstate[loc, S_HALT_B] = action
                elif code8 == 88:
                    tstate[loc, S_HALT_X] = action
    return n, nb, nt, 0


@numba.njit(cache=True, nogil=True)
def _compact(seg, lv, nlv):  # pragma: no cover - compiled
    """Copy every side's levels into a new arena, packed; returns the new top."""
    top = 0
    for b in range(seg.shape[0]):
        cap = seg[b, 2]
        if cap == 0:
            continue
        s = seg[b, 0]
        for k in range(seg[b, 1]):
            nlv[top + k, 0] = lv[s + k, 0]
            nlv[top + k, 1] = lv[s + k, 1]
            nlv[top + k, 2] = lv[s + k, 2]
        seg[b, 0] = top
        top += cap
    return top


def _prefaulted(n: int, dtype: np.dtype) -> np.ndarray:
    a = np.empty(n, dtype)
    a.view(np.uint8)[::4096] = 0                 # touch every page once, now
    return a


def _copy_rows(rows: np.ndarray) -> np.ndarray:
    """A copy of structured rows as one memcpy (numpy copies structured arrays field by field, slowly)."""
    out = np.empty(len(rows), rows.dtype)
    out.view(np.uint8)[:] = rows.view(np.uint8)
    return out


@dataclass
class BookUpdate:
    """What one :meth:`Books.update` produced: BBO rows and trade prints of the batch, in tick order."""

    bbo: np.ndarray
    trades: np.ndarray


class Books:
    """Every symbol's order book, fed batch by batch (module doc).

    Parameters
    ----------
    max_orders : order references tracked; a reference at or past it is counted
        (``untracked_ref``) and ignored.  The order table grows on demand to the
        next power of two above the largest reference seen (16 bytes each).
    arena : initial number of price-level slots (grows on demand).

    Attributes
    ----------
    symbols : :class:`~wiretick.host.symbols.SymbolDirectory` (from R, and names in other messages).
    state : :class:`~wiretick.host.symbols.TradingState` (H h Y Q S).
    stale : uint8[65536], 1 where a gap (or abort, or drop) may have hidden messages from the book.
    """

    def __init__(self, *, max_orders: int = 1 << 30, arena: int = 1 << 16):
        if int(max_orders) < 1:
            raise ValueError(f"max_orders must be >= 1, got {max_orders}")
        self.max_orders = int(max_orders)
        self._orders = np.zeros((min(1 << 16, self.max_orders), 4), np.uint32)
        self._seg = np.zeros((2 * NLOC, 3), np.int64)     # per book side: start, levels, capacity
        self._lv = np.zeros((max(int(arena), 4 * _MINCAP), 3), np.int64)   # key, shares, orders
        self._state = np.zeros(_ST_N, np.int64)
        self._state[_ST_MAXCAP] = _MINCAP
        self._last = np.zeros((NLOC, 4), np.int64)
        self._counters = np.zeros(len(INCONSISTENCIES), np.int64)
        self.stale = np.zeros(NLOC, np.uint8)
        self._bbo = np.zeros(0, BBO_DTYPE)
        self._trd = np.zeros(0, TRADE_DTYPE)
        self.symbols = SymbolDirectory()
        self.state = TradingState()
        self.messages = 0

    # ------------------------------------------------------------------ feeding

    def update(self, ticks: np.ndarray, *, copy: bool = True) -> BookUpdate:
        """Apply one batch (a 1-D tick array, such as a read-only ring view, used in place).

        Returns the batch's BBO rows and trade prints.  With ``copy=False`` they are
        views of buffers the next ``update`` overwrites (no copy at all): use them
        before feeding the next batch.
        """
        run = self._begin(ticks)
        i, nb, nt, _ = self._run(run, 0, 0, 0, _NO_STOPS)
        bbo, trades = self._bbo[:nb], self._trd[:nt]
        if copy:
            return BookUpdate(_copy_rows(bbo), _copy_rows(trades))
        return BookUpdate(bbo, trades)

    def events(self, ticks: np.ndarray, types=(), *, bbo: bool = False) -> Iterator[tuple[int, BookUpdate]]:
        """Apply ``ticks`` stopping right after each tick of ``types`` (type bytes; 0 for device events) and,
        with ``bbo``, each tick that emitted a BBO row: yields (its index, the BBO rows and prints of the ticks
        since the previous stop), the books then being exactly as of that tick.  Rows are views valid until
        the next step."""
        stops = np.zeros(257, np.uint8)
        stops[np.asarray(list(types), np.int64)] = 1
        stops[256] = bbo
        stops.flags.writeable = False
        run = self._begin(ticks)
        n = len(run[0]) // 8
        i = nb = nt = 0
        while i < n:
            j, nb2, nt2, why = self._run(run, i, nb, nt, stops)
            if why == _STOPPED or stops[int(run[0][j * 8 - 1] >> np.uint64(48)) & 0xFF] or (bbo and nb2 > nb):
                yield j - 1, BookUpdate(self._bbo[nb:nb2], self._trd[nt:nt2])
            i, nb, nt = j, nb2, nt2

    def _begin(self, ticks: np.ndarray):
        if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
            raise ValueError(f"ticks must be a 1-D array of the tick dtype, got {ticks.dtype} with {ticks.ndim} dims")
        if not ticks.flags.c_contiguous:
            ticks = np.ascontiguousarray(ticks)
        n = len(ticks)
        # At most two BBO rows (an add evicting another book's order) and one print per tick.
        # The buffers are kept from batch to batch: fresh pages cost a fault on first touch
        # (~1.5 GB/s here), which would be most of the pass.
        if len(self._trd) < n:
            self._bbo = _prefaulted(2 * n, BBO_DTYPE)
            self._trd = _prefaulted(n, TRADE_DTYPE)
        w = ticks.view(np.uint64)
        if w.flags.writeable:                     # one compiled signature: ring views are read-only
            w = w.view()
            w.flags.writeable = False
        self.messages += n
        return w, self._bbo.view(np.uint64).reshape(-1, 8), self._trd.view(np.uint64).reshape(-1, 8)

    def _run(self, run, i: int, nb: int, nt: int, stops: np.ndarray) -> tuple[int, int, int, int]:
        w, bw, tw = run
        while True:
            i, nb, nt, why = _apply(w, i, _CLASS, self._orders, self.max_orders, self._seg, self._lv, self._state,
                                    self._last, self._counters, self.stale, self.symbols.table, self.state.table,
                                    bw, nb, tw, nt, stops)
            if why == _GROW_ORDERS:
                self._grow_orders(int(self._state[_ST_WANT]))
            elif why == _GROW_ARENA:
                self._grow_arena()
            else:
                self.state.system_event = int(self._state[_ST_SYS])
                return i, nb, nt, why

    def reserve(self, ticks: int, orders: int = 0) -> None:
        """Size (and touch) the buffers for batches of up to ``ticks`` ticks, and the order table for
        references below ``orders``, now rather than during the first batches."""
        if len(self._trd) < ticks:
            self._bbo = _prefaulted(2 * ticks, BBO_DTYPE)
            self._trd = _prefaulted(ticks, TRADE_DTYPE)
        if orders > len(self._orders):
            self._grow_orders(min(int(orders), self.max_orders) - 1)

    def _grow_orders(self, ref: int) -> None:
        cap = len(self._orders)
        while cap <= ref:
            cap *= 2
        cap = min(cap, self.max_orders)
        grown = np.zeros((cap, 4), np.uint32)     # calloc: pages of references never used stay untouched
        grown[:len(self._orders)] = self._orders
        self._orders = grown

    def _grow_arena(self) -> None:
        used = int(self._seg[:, 2].sum())
        size = max(2 * len(self._lv), 2 * used + 4 * int(self._state[_ST_MAXCAP]) + 4 * _MINCAP)
        grown = np.zeros((size, 3), np.int64)
        self._state[_ST_TOP] = _compact(self._seg, self._lv, grown)
        self._lv = grown

    # ------------------------------------------------------------------ reading

    @property
    def counters(self) -> dict[str, int]:
        """Inconsistencies by reason (:data:`INCONSISTENCIES`)."""
        return {k: int(v) for k, v in zip(INCONSISTENCIES, self._counters)}

    @property
    def any_stale(self) -> bool:
        return bool(self.stale.any())

    @property
    def stale_since(self) -> int:
        """``seq`` of the last gap/abort/drop event tick (0: none yet)."""
        return int(self._state[_ST_STALE_SEQ])

    def recover(self, locates=None) -> None:
        """Clear the stale marks (of ``locates``, or all): call it once the books are known good again."""
        if locates is None:
            self.stale[:] = 0
        else:
            self.stale[np.asarray(locates, np.int64)] = 0

    def live_orders(self) -> int:
        return int(np.count_nonzero(self._orders[:, 2] >> 16))

    def bbo(self, locates=None) -> np.ndarray:
        """The current best bid and offer of ``locates`` (default: every locate with a live level), as BBO rows.

        ``ts_exch``/``feed_seq``/``seq`` are 0: this is a snapshot, not an event.
        """
        if locates is None:
            locates = np.flatnonzero((self._seg[0::2, 1] > 0) | (self._seg[1::2, 1] > 0))
        loc = np.atleast_1d(np.asarray(locates, np.int64))
        out = np.zeros(len(loc), BBO_DTYPE)
        out["locate"] = loc
        for side, (px, sz, ct) in enumerate((("bid_px", "bid_sz", "bid_ct"), ("ask_px", "ask_sz", "ask_ct"))):
            b = loc * 2 + side
            n = self._seg[b, 1]
            has = n > 0
            top = (self._seg[b, 0] + n - 1)[has]
            key = self._lv[top, 0]
            out[px][has] = key if side == 0 else _ASKKEY - key
            out[sz][has] = self._lv[top, 1]
            out[ct][has] = self._lv[top, 2]
        return out

    def depth(self, locate: int, levels: int = 10) -> np.ndarray:
        """The top ``levels`` price levels of each side of ``locate``'s book, best first (LEVEL_DTYPE rows;
        a side with fewer levels is padded with zeros)."""
        out = np.zeros(levels, LEVEL_DTYPE)
        for side, (px, sz, ct) in enumerate((("bid_px", "bid_sz", "bid_ct"), ("ask_px", "ask_sz", "ask_ct"))):
            b = int(locate) * 2 + side
            s, n = int(self._seg[b, 0]), int(self._seg[b, 1])
            k = min(n, levels)
            idx = np.arange(s + n - 1, s + n - 1 - k, -1)
            key = self._lv[idx, 0]
            out[px][:k] = key if side == 0 else _ASKKEY - key
            out[sz][:k] = self._lv[idx, 1]
            out[ct][:k] = self._lv[idx, 2]
        return out

    def levels(self, locate: int) -> tuple[int, int]:
        """(bid levels, ask levels) of ``locate``'s book."""
        return int(self._seg[2 * int(locate), 1]), int(self._seg[2 * int(locate) + 1, 1])

    def crossed(self) -> np.ndarray:
        """Locates whose best bid is at or above their best offer (a symptom of a stale book)."""
        q = self.bbo()
        return q["locate"][(q["bid_px"] > 0) & (q["ask_px"] > 0) & (q["bid_px"] >= q["ask_px"])]


def bbo_table(ticks: np.ndarray, *, books: Books | None = None, locates=None) -> np.ndarray:
    """BBO rows of a whole tick array (one :class:`Books` pass), optionally kept only for ``locates``."""
    books = books or Books()
    rows = books.update(ticks).bbo
    if locates is not None:
        rows = rows[np.isin(rows["locate"], np.asarray(locates, np.uint16))]
    return rows


def concat_rows(parts: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Concatenate row arrays keeping ``dtype`` (np.concatenate would repack an offsets dtype), as bytes."""
    out = np.empty(sum(len(p) for p in parts), dtype)
    raw = out.view(np.uint8)
    k = 0
    for p in parts:
        b = p.view(np.uint8)
        raw[k:k + len(b)] = b
        k += len(b)
    return out


class UnknownSymbols(WiretickError):
    """None of the symbols asked for is in the feed's directory."""


def bbo_of(source, *, symbols=None, books: Books | None = None, **source_kwargs) -> tuple[np.ndarray, Books]:
    """Every BBO row of ``source`` (a capture path, a ring, ...: :func:`~wiretick.host.sources.open_source`),
    optionally only for ``symbols`` (every book is still kept: executions and replaces need their orders).

    Returns (rows, books).  Symbols the feed never names are left out with a warning; if none is
    known, :class:`UnknownSymbols` is raised.
    """
    import warnings

    from .sources import open_source
    from .symbols import parse_symbols

    books = books or Books()
    src = open_source(source, **source_kwargs)
    parts = []
    try:
        for batch in src.batches():
            parts.append(books.update(batch).bbo)
    finally:
        if src is not source:
            src.close()
    rows = concat_rows(parts, BBO_DTYPE)
    if symbols is not None:
        wanted = parse_symbols(symbols)
        locs = books.symbols.locates(wanted, strict=False)
        missing = [s for s in wanted if books.symbols.locate(s) is None]
        if missing and len(missing) == len(wanted):
            raise UnknownSymbols(f"none of {', '.join(wanted)} is in the feed's directory")
        if missing:
            warnings.warn(f"not in the feed's directory: {', '.join(missing)}", stacklevel=2)
        rows = rows[np.isin(rows["locate"], locs)]
    return rows, books
