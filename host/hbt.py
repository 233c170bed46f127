"""Export one symbol's ticks to hftbacktest's L3 market-by-order events (hftbacktest 2.1 or newer).

hftbacktest backtests queue position and latency on a 64-byte ``event_dtype``
(``ev`` flags, ``exch_ts``, ``local_ts``, ``px``, ``qty``, ``order_id``,
``ival``, ``fval``).  The mapping:

=========  ==========================================================================
ITCH       hftbacktest events (every one flagged EXCH and LOCAL)
=========  ==========================================================================
A, F       ADD_ORDER (BUY or SELL), the order's price and shares
D          CANCEL_ORDER
X          MODIFY_ORDER to the shares left, or CANCEL_ORDER when none are
E, C       FILL (at the resting price for E, the message's for C; ``qty`` = executed),
           then MODIFY_ORDER to what is left or CANCEL_ORDER at 0 (a FILL does not
           shrink hftbacktest's book)
U          CANCEL_ORDER of the original, ADD_ORDER of the new reference (same side)
P          TRADE; side flag = the aggressor (the opposite of P's resting side)
=========  ==========================================================================

``exch_ts`` is the session date's midnight (epoch ns, in the exchange's time zone)
plus the ITCH timestamp; ``local_ts`` is the tick's ``ts_rx``, the receive time the
device measured, so the backtest sees the feed latency of the capture.  Executions,
cancels and deletes of orders the ticks never added (a capture that starts mid-day)
are left out and counted.  The conversion is one compiled pass; hftbacktest itself
is not imported here.
"""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np

from .select import select

__all__ = ["EVENT_DTYPE", "to_hftbacktest", "midnight_ns"]

#: hftbacktest's ``event_dtype`` (tests check they are the same).
EVENT_DTYPE = np.dtype([("ev", "<u8"), ("exch_ts", "<i8"), ("local_ts", "<i8"), ("px", "<f8"), ("qty", "<f8"),
                        ("order_id", "<u8"), ("ival", "<i8"), ("fval", "<f8")], align=True)

TRADE, ADD, CANCEL, MODIFY, FILL = 2, 10, 11, 12, 13
EXCH, LOCAL, BUY, SELL = 1 << 31, 1 << 30, 1 << 29, 1 << 28


def midnight_ns(date: dt.date, tz: str = "America/New_York") -> int:
    """Epoch nanoseconds of ``date``'s midnight in ``tz`` (ITCH timestamps count from it)."""
    from zoneinfo import ZoneInfo
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=ZoneInfo(tz)).timestamp()) * 1_000_000_000


@numba.njit(cache=True, nogil=True)
def _convert(typ, ids, ids2, side, px, sh, ts_exch, ts_rx, refs, refs2, midnight, o_px, o_sh, o_side, out):  # pragma: no cover
    k = 0
    skipped = 0
    both = np.uint64(EXCH | LOCAL)
    for i in range(typ.shape[0]):
        t = typ[i]
        e = midnight + np.int64(ts_exch[i])
        loc_ts = np.int64(ts_rx[i])
        r = ids[i]
        if t == 65 or t == 70:                                     # A F
            o_px[r] = px[i]
            o_sh[r] = sh[i]
            o_side[r] = 1 if side[i] == 66 else 2
            out[k].ev = np.uint64(ADD) | both | np.uint64(BUY if side[i] == 66 else SELL)
            out[k].exch_ts = e
            out[k].local_ts = loc_ts
            out[k].px = px[i] / 10_000.0
            out[k].qty = float(sh[i])
            out[k].order_id = refs[i]
            k += 1
            continue
        if t == 80:                                                # P: the aggressor is the other side
            out[k].ev = np.uint64(TRADE) | both | np.uint64(SELL if side[i] == 66 else BUY)
            out[k].exch_ts = e
            out[k].local_ts = loc_ts
            out[k].px = px[i] / 10_000.0
            out[k].qty = float(sh[i])
            out[k].order_id = 0
            k += 1
            continue
        if o_side[r] == 0:                                         # not live: added before the ticks began
            skipped += 1
            continue
        sflag = np.uint64(BUY if o_side[r] == 1 else SELL)
        left = o_sh[r]
        if t == 69 or t == 67:                                     # E C: a fill, then what is left
            left = max(left - sh[i], 0)
            out[k].ev = np.uint64(FILL) | both | sflag
            out[k].exch_ts = e
            out[k].local_ts = loc_ts
            out[k].px = (o_px[r] if t == 69 else px[i]) / 10_000.0
            out[k].qty = float(sh[i])
            out[k].order_id = refs[i]
            k += 1
        elif t == 88:                                              # X
            left = max(left - sh[i], 0)
        else:                                                      # D U
            left = 0
        if left > 0:
            out[k].ev = np.uint64(MODIFY) | both | sflag
            out[k].qty = float(left)
        else:
            out[k].ev = np.uint64(CANCEL) | both | sflag
            out[k].qty = 0.0
        out[k].exch_ts = e
        out[k].local_ts = loc_ts
        out[k].px = o_px[r] / 10_000.0
        out[k].order_id = refs[i]
        k += 1
        o_sh[r] = left
        if left == 0:
            o_side[r] = 0
        if t == 85:                                                # U: the new reference, same side
            r2 = ids2[i]
            o_px[r2] = px[i]
            o_sh[r2] = sh[i]
            o_side[r2] = 1 if sflag == np.uint64(BUY) else 2
            out[k].ev = np.uint64(ADD) | both | sflag
            out[k].exch_ts = e
            out[k].local_ts = loc_ts
            out[k].px = px[i] / 10_000.0
            out[k].qty = float(sh[i])
            out[k].order_id = refs2[i]
            k += 1
    return k, skipped


def to_hftbacktest(ticks: np.ndarray, locate: int, *, midnight: int | None = None,
                   date: dt.date | None = None) -> tuple[np.ndarray, int]:
    """hftbacktest L3 events of ``locate``'s book-changing ticks and P trades.

    Give the session's ``date`` (or ``midnight``, epoch ns).  Returns (events, skipped):
    ``skipped`` counts executions, cancels, deletes and replaces of orders the ticks never added.
    """
    if midnight is None:
        if date is None:
            raise ValueError("give the session date (date=) or its midnight in epoch ns (midnight=)")
        midnight = midnight_ns(date)
    t = select(ticks, types="AFECXDUP", locates=[int(locate)])
    # dense ids for the order references (real references are too sparse to index directly)
    keys = np.concatenate([t["order_ref"], t["ref2"][t["msg_type"] == ord("U")]])
    uniq = np.unique(keys)
    ids = np.searchsorted(uniq, t["order_ref"])
    ids2 = np.where(t["msg_type"] == ord("U"), np.searchsorted(uniq, t["ref2"]), 0)
    nref = max(len(uniq), 1)
    out = np.zeros(2 * len(t), EVENT_DTYPE)
    k, skipped = _convert(t["msg_type"], ids, ids2, t["side"], t["price"].astype(np.int64),
                          t["shares"].astype(np.int64), t["ts_exch"], t["ts_rx"], t["order_ref"],
                          t["ref2"], np.int64(midnight), np.zeros(nref, np.int64), np.zeros(nref, np.int64),
                          np.zeros(nref, np.int8), out)
    return out[:k], int(skipped)
