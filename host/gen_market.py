"""The generator's market model: a trading day of NASDAQ TotalView-ITCH 5.0 messages.

Start-of-day system events, a stock directory and a trading action per symbol,
opening crosses, then continuous trading on a consistent order book per symbol
(every execute, cancel, delete and replace refers to a live order and never takes
more shares than remain), closing crosses and end-of-day events; with
``all_types``, the rarer types too.  :func:`simulate_day` writes the messages,
each as its MoldUDP64 block, into one buffer; :mod:`.gen_packets` packs them.

The day is one serial walk, a numba kernel: nothing loops in Python per message.
Message layouts are never restated here: field offsets, sizes and message lengths
are compiled into lookup tables from :mod:`wiretick.host.contract.formats`; the
kernels name fields by id only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
from numba import types as nt

from .contract.formats import MESSAGES
from .gen_random import F64, F64A, I64, I64A, RS, U8A, VOID, expo, geom, randint, u01

__all__ = ["simulate_day", "Day", "min_messages", "EXTRA_TYPES", "MAX_BLOCK", "BLOCK_LEN", "SEC"]

# ------------------------------------------------------------------ time model (ns)

SEC = 1_000_000_000
_T_OPEN_MESSAGES = (9 * 3600 + 29 * 60 + 50) * SEC   # S 'O' at 09:29:50
_T_SYSTEM_HOURS = (9 * 3600 + 29 * 60 + 55) * SEC    # S 'S' at 09:29:55
_T_MARKET_OPEN = (9 * 3600 + 30 * 60) * SEC          # S 'Q' at 09:30:00
_P_QUIET = 2e-5          # per body message: a quiet period of 1.2..3.5 heartbeat intervals follows
_P_BURST = 0.9           # inter-arrival within a burst (mean 1.5 us), else between bursts (80 us)
_BURST_GAP = 1500.0
_IDLE_GAP = 80_000.0

# ------------------------------------------------------------------ market model

# Body event mix (continuous trading): cumulative thresholds of A D U E X P F C.
EV_A, EV_D, EV_U, EV_E, EV_X, EV_P, EV_F, EV_C = range(8)
_MIX = (0.40, 0.355, 0.10, 0.045, 0.04, 0.03, 0.02, 0.01)
_MIX_CUM = tuple(float(x) for x in np.cumsum(_MIX))
_P_EXTRA = 0.004         # all_types: share of body messages of the rarer types
_P_RECENT = 0.7          # most order events hit a recent order (HFT churn), else any live order
_RECENT_MEAN = 24.0
_P_MID_MOVE = 0.08       # per event on a symbol: its mid moves one step
_LIVE_PER_SYMBOL = 40    # resting orders per symbol the book hovers around

#: Rarer types sprinkled when ``all_types``; each appears at least once.
EXTRA_TYPES = "YLVWKJhBINO"
#: With ``all_types`` the trading body opens with these events, so every order-book
#: type occurs however short the day: four adds, then each event on the newest order
#: (X first, while its round lot is whole; E and C may fill an order, three remain).
_FORCED = (EV_A, EV_F, EV_A, EV_A, EV_X, EV_E, EV_C, EV_U, EV_D, EV_P)

# Type bytes (identifiers, not layout).
TY_S, TY_R, TY_H, TY_Y, TY_L, TY_V, TY_W, TY_K, TY_J, TY_h = (ord(c) for c in "SRHYLVWKJh")
TY_A, TY_F, TY_E, TY_C, TY_X, TY_D, TY_U, TY_P, TY_Q, TY_B, TY_I, TY_N, TY_O = (
    ord(c) for c in "AFECXDUPQBINO")
_EXTRA_TB = tuple(ord(c) for c in EXTRA_TYPES)

# Field values (ASCII codes) the kernels draw from.
_SIDES = (ord("B"), ord("S"))
_REG_SHO = tuple(ord(c) for c in "012")
_MM_MODE = tuple(ord(c) for c in "NPSRL")
_MP_STATE = tuple(ord(c) for c in "AAAAAEWSD")
_MWCB_LEVEL = tuple(ord(c) for c in "123")
_IPO_QUAL = tuple(ord(c) for c in "AC")
_HALT_MARKET = tuple(ord(c) for c in "QBX")
_HALT_ACTION = tuple(ord(c) for c in "HT")
_IMB_DIR = tuple(ord(c) for c in "BSNO")
_NOII_CROSS = tuple(ord(c) for c in "OCH")
_PRICE_VAR = tuple(ord(c) for c in "L123456789ABC ")
_RPII = tuple(ord(c) for c in "BSAN")
_CATEGORY = tuple(ord(c) for c in "QQQQGGGSSNAPZV")
_ISSUE_CLASS = tuple(ord(c) for c in "CCCCCCCCAFOU")
_YN = (ord("Y"), ord("N"))
# Single codes, by the character they are (numba freezes these globals).
CH_O, CH_S, CH_Q, CH_M, CH_E, CH_C, CH_T, CH_N, CH_P, CH_G, CH_Y, CH_SPACE, CH_1, CH_2 = (
    ord(c) for c in "OSQMECTNPGY 12")
# Text values as the big-endian integers of their bytes (how the encoder takes text).
_TXT_Z = int.from_bytes(b"Z ", "big")        # issue_subtype 'Z': not applicable
_TXT_BLANK4 = int.from_bytes(b"    ", "big")  # no trading action reason

# ------------------------------------------------------------------ message layout tables

# Field ids the kernels write, by name; offsets and sizes come from formats.py.
_FIELD_NAMES = (
    "message_type", "stock_locate", "tracking_number", "timestamp", "event_code",
    "stock", "market_category", "financial_status", "round_lot_size", "round_lots_only",
    "issue_classification", "issue_subtype", "authenticity", "short_sale_threshold", "ipo_flag",
    "luld_ref_price_tier", "etp_flag", "etp_leverage_factor", "inverse_indicator",
    "trading_state", "reserved", "reason", "reg_sho_action",
    "mpid", "primary_market_maker", "market_maker_mode", "market_participant_state",
    "level1", "level2", "level3", "breached_level",
    "ipo_release_time", "ipo_release_qualifier", "ipo_price",
    "ref_price", "upper_price", "lower_price", "extension", "market_code", "halt_action",
    "order_ref", "side", "shares", "price", "attribution",
    "executed_shares", "match_number", "printable", "execution_price", "cancelled_shares",
    "original_order_ref", "new_order_ref", "cross_price", "cross_type",
    "paired_shares", "imbalance_shares", "imbalance_direction", "far_price", "near_price",
    "current_ref_price", "price_variation", "interest_flag",
    "open_eligibility", "min_allowable_price", "max_allowable_price", "near_exec_price",
    "near_exec_time", "lower_price_collar", "upper_price_collar",
)
(F_MESSAGE_TYPE, F_STOCK_LOCATE, F_TRACKING_NUMBER, F_TIMESTAMP, F_EVENT_CODE,
 F_STOCK, F_MARKET_CATEGORY, F_FINANCIAL_STATUS, F_ROUND_LOT_SIZE, F_ROUND_LOTS_ONLY,
 F_ISSUE_CLASSIFICATION, F_ISSUE_SUBTYPE, F_AUTHENTICITY, F_SHORT_SALE_THRESHOLD, F_IPO_FLAG,
 F_LULD_REF_PRICE_TIER, F_ETP_FLAG, F_ETP_LEVERAGE_FACTOR, F_INVERSE_INDICATOR,
 F_TRADING_STATE, F_RESERVED, F_REASON, F_REG_SHO_ACTION,
 F_MPID, F_PRIMARY_MARKET_MAKER, F_MARKET_MAKER_MODE, F_MARKET_PARTICIPANT_STATE,
 F_LEVEL1, F_LEVEL2, F_LEVEL3, F_BREACHED_LEVEL,
 F_IPO_RELEASE_TIME, F_IPO_RELEASE_QUALIFIER, F_IPO_PRICE,
 F_REF_PRICE, F_UPPER_PRICE, F_LOWER_PRICE, F_EXTENSION, F_MARKET_CODE, F_HALT_ACTION,
 F_ORDER_REF, F_SIDE, F_SHARES, F_PRICE, F_ATTRIBUTION,
 F_EXECUTED_SHARES, F_MATCH_NUMBER, F_PRINTABLE, F_EXECUTION_PRICE, F_CANCELLED_SHARES,
 F_ORIGINAL_ORDER_REF, F_NEW_ORDER_REF, F_CROSS_PRICE, F_CROSS_TYPE,
 F_PAIRED_SHARES, F_IMBALANCE_SHARES, F_IMBALANCE_DIRECTION, F_FAR_PRICE, F_NEAR_PRICE,
 F_CURRENT_REF_PRICE, F_PRICE_VARIATION, F_INTEREST_FLAG,
 F_OPEN_ELIGIBILITY, F_MIN_ALLOWABLE_PRICE, F_MAX_ALLOWABLE_PRICE, F_NEAR_EXEC_PRICE,
 F_NEAR_EXEC_TIME, F_LOWER_PRICE_COLLAR, F_UPPER_PRICE_COLLAR) = range(len(_FIELD_NAMES))


def _layout_tables() -> tuple[np.ndarray, ...]:
    """Compile formats.MESSAGES into the encoder's lookup tables.

    Returns
    -------
    fields : int64 [256 * most fields]
        Field ``j`` of the message whose type byte is ``t`` at ``row[t] + j``, packed as
        generator field id | offset << 16 | size << 32 (one load per field; 2-D
        tables made the encoder several times slower).
    row : int64 [256]
        Where type ``t``'s fields start in ``fields``.
    count : int64 [256]
        How many fields type ``t`` has (0 for bytes that are no ITCH type).
    length : int64 [256]
        Each type's message length.
    """
    ids = {name: i for i, name in enumerate(_FIELD_NAMES)}
    for i, name in enumerate(_FIELD_NAMES):  # the unpacking above must follow the tuple
        assert globals()["F_" + name.upper()] == i, name
    most = max(len(m.fields) for m in MESSAGES)
    fields = np.zeros(256 * most, np.int64)
    row = np.arange(256, dtype=np.int64) * most
    count = np.zeros(256, np.int64)
    length = np.zeros(256, np.int64)
    for m in MESSAGES:
        t = m.type_byte
        length[t] = m.length
        count[t] = len(m.fields)
        for j, f in enumerate(m.fields):
            if f.name not in ids:  # a field formats.py gained that the generator cannot fill
                raise AssertionError(f"gen: ITCH {m.code!r} field {f.name!r} has no generator id")
            fields[row[t] + j] = ids[f.name] | f.offset << 16 | f.size << 32
        # _emit writes 8 bytes per field and relies on later fields overwriting the excess.
        assert m.fields[0].offset == 0 and all(
            a.offset + a.size == b.offset for a, b in zip(m.fields, m.fields[1:])), m.code
    return fields, row, count, length


_ENC = _layout_tables()
_TLEN = _ENC[3]
_MAX_MESSAGE = int(_TLEN.max())
BLOCK_LEN = 2  # MoldUDP64 message block length prefix (u16)
#: The longest message block (length prefix and message).
MAX_BLOCK = BLOCK_LEN + _MAX_MESSAGE
_T_OUT = nt.Tuple((U8A, I64A, I64A, U8A))                          # mbuf, mstart, mts, mtype
_T_ENC = nt.UniTuple(I64A, 4)                                        # _layout_tables()


def min_messages(symbols: int, all_types: bool = False) -> int:
    """The fewest messages a generated day can have.

    Start of day: S 'O', one R per symbol, S 'S', one H per symbol, S 'Q', an
    opening Q per symbol; end of day: a closing Q per symbol, S 'M', 'E', 'C';
    with ``all_types``, one of each order-book type (A F X E C U D P, and two more
    adds) and one of each type in :data:`EXTRA_TYPES`.
    """
    return 6 + 4 * symbols + (len(EXTRA_TYPES) + len(_FORCED) if all_types else 0)


# ------------------------------------------------------------------ kernels: messages

# A message is built in two steps: the kernel stores each field's value by id in
# ``vals`` (a plain array store), then ``_emit`` writes every field of the type where
# formats.py puts it, and sets each slot it used back to the sentinel -1 (every
# real value is >= 0).  A field the kernel forgot is therefore an error, never a
# stale value or a hole.
_NF = len(_FIELD_NAMES)
_UNSET = -1


@numba.njit(VOID(I64A, I64, I64, I64), cache=True)
def _head(vals, locate, tracking, ts):
    vals[F_STOCK_LOCATE] = locate
    vals[F_TRACKING_NUMBER] = tracking
    vals[F_TIMESTAMP] = ts


@numba.njit(cache=True, inline="always")
def _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb):
    """Encode message ``i`` of type ``tb`` from the values stored since the last one.

    It is stored as its MoldUDP64 block (u16 length, then the message), so that a
    packet's blocks are one contiguous run of ``mbuf``.  Inlined where messages are
    made in bulk: a call with the arrays as arguments cost more than the encoding.
    """
    vals[F_MESSAGE_TYPE] = tb
    mts[i] = vals[F_TIMESTAMP]
    ln = tlen[tb]
    p = mstart[i]
    mbuf[p] = (ln >> 8) & 0xFF    # block length, u16
    mbuf[p + 1] = ln & 0xFF
    base = p + BLOCK_LEN
    r = row[tb]
    for j in range(count[tb]):
        e = fields[r + j]
        fid = e & 0xFFFF
        v = vals[fid]
        if v < 0:
            raise ValueError("gen: a field of this ITCH message type was not set")
        # Every field is written as 8 bytes, the value left-aligned, which LLVM turns
        # into one byte-swapped 64-bit store (a byte loop of the field's own size cost
        # ~10 ns a field).  The bytes past the field are overwritten by the fields after
        # it (written in offset order) or, past the message, by the next message; mbuf
        # has 8 spare bytes at its end.
        q = base + ((e >> 16) & 0xFFFF)
        w = np.uint64(v) << np.uint64(64 - 8 * (e >> 32))
        mbuf[q] = (w >> np.uint64(56)) & 0xFF
        mbuf[q + 1] = (w >> np.uint64(48)) & 0xFF
        mbuf[q + 2] = (w >> np.uint64(40)) & 0xFF
        mbuf[q + 3] = (w >> np.uint64(32)) & 0xFF
        mbuf[q + 4] = (w >> np.uint64(24)) & 0xFF
        mbuf[q + 5] = (w >> np.uint64(16)) & 0xFF
        mbuf[q + 6] = (w >> np.uint64(8)) & 0xFF
        mbuf[q + 7] = w & 0xFF
        vals[fid] = _UNSET
    mstart[i + 1] = base + ln
    mtype[i] = tb


@numba.njit(VOID(_T_OUT, _T_ENC, I64A, I64, I64), cache=True)
def _emit(out, enc, vals, i, tb):
    """:func:`_encode` for the rarer messages (a call, with the arrays in tuples)."""
    mbuf, mstart, mts, mtype = out
    fields, row, count, tlen = enc
    _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb)


@numba.njit(I64(RS, F64A, I64A), cache=True)
def _pick_symbol(rs, cdf, guide):
    """A symbol by activity: the first ``k`` with ``cdf[k] > u`` for a uniform ``u``.

    ``guide[j]`` is that index for ``u = j / len(guide)``, so the scan from it is a
    step or two; a binary search (or np.searchsorted) was a large share of the
    kernel's time, its branches being unpredictable.
    """
    u = u01(rs)
    k = guide[np.int64(u * len(guide))]
    while cdf[k] <= u:
        k += 1
    return k


@numba.njit(I64(RS), cache=True)
def _shares(rs):
    # Mostly round lots, some odd lots, a few blocks.
    r = u01(rs)
    if r < 0.8:
        return 100 * geom(rs, 0.3)
    if r < 0.95:
        return randint(rs, 1, 100)
    return 100 * randint(rs, 10, 100)


@numba.njit(I64(RS, I64, nt.boolean), cache=True)
def _limit_price(rs, mid, side_is_buy):
    # Cents, on the $0.01 grid: bids strictly below the mid, asks strictly above,
    # most of them at or near the touch.
    off = geom(rs, 0.35) - 1
    if side_is_buy:
        return max(1, mid - 1 - off)
    return mid + 1 + off


@numba.njit(VOID(RS, I64A, I64), cache=True)
def _walk(rs, mid, s):
    # The mid of symbol s drifts: a random walk in steps of ~0.01% (at least a cent).
    if u01(rs) < _P_MID_MOVE:
        step = max(1, mid[s] // 10_000)
        if u01(rs) < 0.5:
            mid[s] = max(3, mid[s] - step)
        else:
            mid[s] += step


@numba.njit(I64(RS, I64), cache=True)
def _gap(rs, hb):
    r = u01(rs)
    if r < _P_QUIET:
        return int(hb * (1.2 + 2.3 * u01(rs)))
    if r < _P_BURST:
        return 1 + int(expo(rs, _BURST_GAP))
    return 1 + int(expo(rs, _IDLE_GAP))


@numba.njit(VOID(RS, _T_OUT, _T_ENC, I64A, I64, I64, I64, I64A, I64A, I64A, F64A, I64A,
                 I64A, I64A, I64, I64), cache=True)
def _extra(rs, out, enc, vals, i, tb, t, code, mid, trk, cdf, guide, mpids, ctr,
           last_match, last_match_sym):
    """Message ``i``: one of the rarer types, with valid field values for it."""
    if tb == TY_V or tb == TY_W:  # market-wide: locate 0
        ctr[0] = (ctr[0] + 1) & 0xFFFF
        _head(vals, 0, ctr[0], t)
        if tb == TY_V:
            # Circuit-breaker levels: 7/13/20% below an S&P 500 reference, Price(8).
            ref = randint(rs, 300_000, 600_000)  # cents
            vals[F_LEVEL1] = (ref * 93 // 100) * 1_000_000
            vals[F_LEVEL2] = (ref * 87 // 100) * 1_000_000
            vals[F_LEVEL3] = (ref * 80 // 100) * 1_000_000
        else:
            vals[F_BREACHED_LEVEL] = _MWCB_LEVEL[randint(rs, 0, len(_MWCB_LEVEL))]
        _emit(out, enc, vals, i, tb)
        return
    s = last_match_sym if tb == TY_B else _pick_symbol(rs, cdf, guide)
    trk[s] = (trk[s] + 1) & 0xFFFF
    _head(vals, s + 1, trk[s], t)
    m = mid[s]
    px = m * 100  # Price(4)
    if tb == TY_B:
        vals[F_MATCH_NUMBER] = last_match
        _emit(out, enc, vals, i, tb)
        return
    vals[F_STOCK] = code[s]
    if tb == TY_Y:
        vals[F_REG_SHO_ACTION] = _REG_SHO[randint(rs, 0, len(_REG_SHO))]
    elif tb == TY_L:
        vals[F_MPID] = mpids[randint(rs, 0, len(mpids))]
        vals[F_PRIMARY_MARKET_MAKER] = _YN[randint(rs, 0, len(_YN))]
        vals[F_MARKET_MAKER_MODE] = _MM_MODE[randint(rs, 0, len(_MM_MODE))]
        vals[F_MARKET_PARTICIPANT_STATE] = _MP_STATE[randint(rs, 0, len(_MP_STATE))]
    elif tb == TY_K:
        vals[F_IPO_RELEASE_TIME] = t // SEC + randint(rs, 60, 3600)  # seconds
        vals[F_IPO_RELEASE_QUALIFIER] = _IPO_QUAL[randint(rs, 0, len(_IPO_QUAL))]
        vals[F_IPO_PRICE] = px
    elif tb == TY_J:
        vals[F_REF_PRICE] = px
        vals[F_UPPER_PRICE] = (m * 105 // 100) * 100
        vals[F_LOWER_PRICE] = (m * 95 // 100) * 100
        vals[F_EXTENSION] = randint(rs, 0, 4)
    elif tb == TY_h:
        vals[F_MARKET_CODE] = _HALT_MARKET[randint(rs, 0, len(_HALT_MARKET))]
        vals[F_HALT_ACTION] = _HALT_ACTION[randint(rs, 0, len(_HALT_ACTION))]
    elif tb == TY_I:
        d = _IMB_DIR[randint(rs, 0, len(_IMB_DIR))]
        vals[F_PAIRED_SHARES] = 100 * randint(rs, 0, 20_000)
        vals[F_IMBALANCE_SHARES] = 0 if d == CH_N else 100 * randint(rs, 1, 5_000)
        vals[F_IMBALANCE_DIRECTION] = d
        vals[F_FAR_PRICE] = max(1, m + randint(rs, -20, 21)) * 100
        vals[F_NEAR_PRICE] = max(1, m + randint(rs, -5, 6)) * 100
        vals[F_CURRENT_REF_PRICE] = px
        vals[F_CROSS_TYPE] = _NOII_CROSS[randint(rs, 0, len(_NOII_CROSS))]
        vals[F_PRICE_VARIATION] = _PRICE_VAR[randint(rs, 0, len(_PRICE_VAR))]
    elif tb == TY_N:
        vals[F_INTEREST_FLAG] = _RPII[randint(rs, 0, len(_RPII))]
    elif tb == TY_O:
        vals[F_OPEN_ELIGIBILITY] = _YN[randint(rs, 0, len(_YN))]
        vals[F_MIN_ALLOWABLE_PRICE] = (m * 80 // 100) * 100
        vals[F_MAX_ALLOWABLE_PRICE] = (m * 120 // 100) * 100
        vals[F_NEAR_EXEC_PRICE] = px
        vals[F_NEAR_EXEC_TIME] = t - randint(rs, 0, 1_000_000)
        vals[F_LOWER_PRICE_COLLAR] = (m * 90 // 100) * 100
        vals[F_UPPER_PRICE_COLLAR] = (m * 110 // 100) * 100
    _emit(out, enc, vals, i, tb)


@numba.njit(VOID(RS, _T_OUT, _T_ENC, I64A, I64, I64, I64, I64A, I64A, I64A, I64, I64),
            cache=True)
def _cross(rs, out, enc, vals, i, t, s, code, mid, trk, match, cross_type):
    """Message ``i``: the opening or closing cross of symbol ``s``."""
    trk[s] = (trk[s] + 1) & 0xFFFF
    _head(vals, s + 1, trk[s], t)
    vals[F_SHARES] = 100 * randint(rs, 10, 50_000)
    vals[F_STOCK] = code[s]
    vals[F_CROSS_PRICE] = mid[s] * 100
    vals[F_MATCH_NUMBER] = match
    vals[F_CROSS_TYPE] = cross_type
    _emit(out, enc, vals, i, TY_Q)


@numba.njit(VOID(_T_OUT, _T_ENC, I64A, I64, I64, I64), cache=True)
def _system_event(out, enc, vals, i, t, event):
    _head(vals, 0, 0, t)
    vals[F_EVENT_CODE] = event
    _emit(out, enc, vals, i, TY_S)


# The live-order table: _O_W columns per order, flat (2-D indexing costs more in numba).
_O_REF, _O_SYM, _O_SIDE, _O_SHARES, _O_PRICE = range(5)
_O_W = 5


@numba.njit(cache=True)
def _simulate(n_body, code, mid, tier1, cdf, guide, mpids, all_types, hb, seed, live_cap, live_target,
              enc, out):
    """Write the day's messages (skeleton + ``n_body`` trading messages); returns how many."""
    rs = np.full(1, seed, np.uint64)
    vals = np.full(_NF, _UNSET, np.int64)
    mbuf, mstart, mts, mtype = out
    fields, row, count, tlen = enc
    ns = len(code)
    trk = np.zeros(ns, np.int64)
    ctr = np.zeros(1, np.int64)      # tracking number of market-wide messages
    book = np.empty(live_cap * _O_W, np.int64)
    n_live = 0
    next_ref = 1 + randint(rs, 0, 1000)
    next_match = 1 + randint(rs, 0, 1000)
    last_match = 0
    last_match_sym = 0
    i = 0
    t = _T_OPEN_MESSAGES

    # ---- start of day
    _system_event(out, enc, vals, i, t, CH_O)
    i += 1
    t += 100_000
    for s in range(ns):
        t += 1 + randint(rs, 0, 3000)
        trk[s] += 1
        _head(vals, s + 1, trk[s], t)
        cat = _CATEGORY[randint(rs, 0, len(_CATEGORY))]
        nasdaq = cat == CH_Q or cat == CH_G or cat == CH_S  # NASDAQ-listed tiers
        vals[F_STOCK] = code[s]
        vals[F_MARKET_CATEGORY] = cat
        vals[F_FINANCIAL_STATUS] = CH_N if nasdaq else CH_SPACE
        vals[F_ROUND_LOT_SIZE] = 100
        vals[F_ROUND_LOTS_ONLY] = CH_N
        vals[F_ISSUE_CLASSIFICATION] = _ISSUE_CLASS[randint(rs, 0, len(_ISSUE_CLASS))]
        vals[F_ISSUE_SUBTYPE] = _TXT_Z
        vals[F_AUTHENTICITY] = CH_P
        vals[F_SHORT_SALE_THRESHOLD] = CH_N
        vals[F_IPO_FLAG] = CH_N
        vals[F_LULD_REF_PRICE_TIER] = CH_1 if tier1[s] else CH_2
        vals[F_ETP_FLAG] = CH_N
        vals[F_ETP_LEVERAGE_FACTOR] = 0
        vals[F_INVERSE_INDICATOR] = CH_N
        _emit(out, enc, vals, i, TY_R)
        i += 1
    t = max(t + 1000, _T_SYSTEM_HOURS)
    _system_event(out, enc, vals, i, t, CH_S)
    i += 1
    for s in range(ns):
        t += 1 + randint(rs, 0, 3000)
        trk[s] += 1
        _head(vals, s + 1, trk[s], t)
        vals[F_STOCK] = code[s]
        vals[F_TRADING_STATE] = CH_T
        vals[F_RESERVED] = CH_SPACE
        vals[F_REASON] = _TXT_BLANK4  # no reason while trading
        _emit(out, enc, vals, i, TY_H)
        i += 1
    t = max(t + 1000, _T_MARKET_OPEN)
    _system_event(out, enc, vals, i, t, CH_Q)
    i += 1
    for s in range(ns):  # opening crosses
        t += 1 + randint(rs, 0, 2000)
        _cross(rs, out, enc, vals, i, t, s, code, mid, trk, next_match, CH_O)
        last_match, last_match_sym = next_match, s
        next_match += 1 + randint(rs, 0, 3)
        i += 1

    # ---- continuous trading
    # all_types: the body opens with _FORCED (every order-book type, each on the most
    # recent order), and one of each rarer type is spread over the rest of it.
    n_forced = len(_FORCED) if all_types else 0
    n_extra = len(_EXTRA_TB)
    g = 0                                  # rarer types placed so far (all_types)
    spread = n_body - n_forced
    next_slot = n_forced + spread // (n_extra + 1)
    for j in range(n_body):
        t += _gap(rs, hb)
        forced = j < n_forced
        if all_types and not forced and g < n_extra and (j >= next_slot or n_body - j <= n_extra - g):
            _extra(rs, out, enc, vals, i, _EXTRA_TB[g], t, code, mid, trk, cdf, guide, mpids,
                   ctr, last_match, last_match_sym)
            g += 1
            next_slot = n_forced + ((g + 1) * spread) // (n_extra + 1)
            i += 1
            continue
        if all_types and not forced and u01(rs) < _P_EXTRA:
            tb = _EXTRA_TB[randint(rs, 0, len(_EXTRA_TB))]
            _extra(rs, out, enc, vals, i, tb, t, code, mid, trk, cdf, guide, mpids, ctr,
                   last_match, last_match_sym)
            i += 1
            continue
        r = u01(rs)
        ev = EV_C
        for k in range(len(_MIX_CUM)):
            if r < _MIX_CUM[k]:
                ev = k
                break
        adds = ev == EV_A or ev == EV_F
        if forced:
            ev = _FORCED[j]
        elif n_live == 0 and not adds and ev != EV_P:
            ev = EV_A                       # nothing rests: an order event must be an add
        elif adds and n_live > 0 and (n_live >= live_cap
                                      or (n_live > live_target and u01(rs) < 0.5)):
            ev = EV_D                       # keep the book near its target depth
        if ev == EV_A or ev == EV_F or ev == EV_P:
            s = _pick_symbol(rs, cdf, guide)
            _walk(rs, mid, s)
            trk[s] = (trk[s] + 1) & 0xFFFF
            _head(vals, s + 1, trk[s], t)
            side = _SIDES[randint(rs, 0, len(_SIDES))]
            sh = 100 * geom(rs, 0.3) if forced else _shares(rs)  # forced: X can be partial
            vals[F_SIDE] = side
            vals[F_SHARES] = sh
            vals[F_STOCK] = code[s]
            if ev == EV_P:
                # A hidden order executed: NASDAQ reports it with order reference 0, at the mid.
                vals[F_ORDER_REF] = 0
                vals[F_PRICE] = mid[s] * 100
                vals[F_MATCH_NUMBER] = next_match
                last_match, last_match_sym = next_match, s
                next_match += 1 + randint(rs, 0, 3)
                tb = TY_P
            else:
                px = _limit_price(rs, mid[s], side == _SIDES[0])
                vals[F_ORDER_REF] = next_ref
                vals[F_PRICE] = px * 100
                if ev == EV_F:
                    vals[F_ATTRIBUTION] = mpids[randint(rs, 0, len(mpids))]
                tb = TY_A if ev == EV_A else TY_F
                book[n_live * _O_W + _O_REF] = next_ref
                book[n_live * _O_W + _O_SYM] = s
                book[n_live * _O_W + _O_SIDE] = side
                book[n_live * _O_W + _O_SHARES] = sh
                book[n_live * _O_W + _O_PRICE] = px
                n_live += 1
                # References increase; NASDAQ's skip numbers (other books, hidden orders).
                next_ref += 1 + (randint(rs, 1, 5) if u01(rs) < 0.3 else 0)
            _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb)
            i += 1
            continue
        # An event on a live order: mostly a recent one.
        if forced:
            k = n_live - 1
        elif u01(rs) < _P_RECENT:
            k = n_live - 1 - min(n_live - 1, int(expo(rs, _RECENT_MEAN)))
        else:
            k = randint(rs, 0, n_live)
        s = book[k * _O_W + _O_SYM]
        rem = book[k * _O_W + _O_SHARES]
        if ev == EV_X and rem < 2:
            ev = EV_D                       # a cancel of everything is a delete on NASDAQ
        _walk(rs, mid, s)
        trk[s] = (trk[s] + 1) & 0xFFFF
        _head(vals, s + 1, trk[s], t)
        gone = False
        if ev == EV_D:
            vals[F_ORDER_REF] = book[k * _O_W + _O_REF]
            tb = TY_D
            gone = True
        elif ev == EV_U:
            sh = _shares(rs)
            px = _limit_price(rs, mid[s], book[k * _O_W + _O_SIDE] == _SIDES[0])  # same side
            vals[F_ORIGINAL_ORDER_REF] = book[k * _O_W + _O_REF]
            vals[F_NEW_ORDER_REF] = next_ref
            vals[F_SHARES] = sh
            vals[F_PRICE] = px * 100
            tb = TY_U
            book[k * _O_W + _O_REF] = next_ref
            book[k * _O_W + _O_SHARES] = sh
            book[k * _O_W + _O_PRICE] = px
            next_ref += 1 + (randint(rs, 1, 5) if u01(rs) < 0.3 else 0)
        elif ev == EV_X:
            q = randint(rs, 1, rem)        # partial: 1..rem-1
            vals[F_ORDER_REF] = book[k * _O_W + _O_REF]
            vals[F_CANCELLED_SHARES] = q
            tb = TY_X
            book[k * _O_W + _O_SHARES] = rem - q
        else:  # E or C: all of it most of the time, else part
            q = rem if u01(rs) < 0.6 else randint(rs, 1, rem + 1)
            vals[F_ORDER_REF] = book[k * _O_W + _O_REF]
            vals[F_EXECUTED_SHARES] = q
            vals[F_MATCH_NUMBER] = next_match
            if ev == EV_C:
                vals[F_PRINTABLE] = CH_Y if u01(rs) < 0.9 else CH_N
                vals[F_EXECUTION_PRICE] = max(1, book[k * _O_W + _O_PRICE] + randint(rs, -2, 3)) * 100
                tb = TY_C
            else:
                tb = TY_E
            last_match, last_match_sym = next_match, s
            next_match += 1 + randint(rs, 0, 3)
            book[k * _O_W + _O_SHARES] = rem - q
            gone = rem == q
        # The one place the bulk of the messages is encoded (inlined: see _encode).
        _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb)
        i += 1
        if gone:  # swap-remove: the last live order takes its slot
            n_live -= 1
            for c in range(_O_W):
                book[k * _O_W + c] = book[n_live * _O_W + c]

    # ---- end of day
    t += SEC + randint(rs, 0, SEC)  # the market goes quiet before the close
    for s in range(ns):  # closing crosses
        t += 1 + randint(rs, 0, 2000)
        _cross(rs, out, enc, vals, i, t, s, code, mid, trk, next_match, CH_C)
        next_match += 1 + randint(rs, 0, 3)
        i += 1
    t += 1_000_000
    _system_event(out, enc, vals, i, t, CH_M)
    i += 1
    t += 5 * SEC
    _system_event(out, enc, vals, i, t, CH_E)
    i += 1
    t += SEC
    _system_event(out, enc, vals, i, t, CH_C)
    i += 1
    return i


# ------------------------------------------------------------------ Python side


def _symbols(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct 1..5-letter tickers, alphabetical, as big-endian 8-byte ints (space padded)."""
    out = np.zeros(0, np.int64)
    while len(out) < n:
        m = 2 * (n - len(out)) + 64
        lens = rng.choice(np.arange(1, 6), size=m, p=[0.01, 0.07, 0.32, 0.48, 0.12])
        letters = rng.integers(ord("A"), ord("Z") + 1, size=(m, 8), dtype=np.uint8)
        letters[np.arange(8)[None, :] >= lens[:, None]] = ord(" ")
        codes = letters.view(">u8").reshape(m).astype(np.int64)
        both = np.concatenate([out, codes])
        _, first = np.unique(both, return_index=True)
        out = both[np.sort(first)]  # keep earlier draws: the result depends only on the seed
    # NASDAQ assigns stock locates alphabetically; as big-endian ints, order is alphabetical.
    return np.sort(out[:n])


def _text_codes(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    letters = rng.integers(ord("A"), ord("Z") + 1, size=(n, size), dtype=np.uint8)
    return np.array([int.from_bytes(row.tobytes(), "big") for row in letters], np.int64)


@dataclass
class Day:
    """A simulated day's messages, in publication order."""

    mbuf: np.ndarray       # the messages as MoldUDP64 blocks, back to back
    mstart: np.ndarray     # message i's block at mbuf[mstart[i]:mstart[i + 1]]
    mts: np.ndarray        # message i's ITCH timestamp (ns since midnight)
    per_type: np.ndarray   # messages per type byte (256 counts)


def simulate_day(messages: int, symbols: int, *, all_types: bool, heartbeat_interval_ns: int,
                 rng: np.random.Generator, seed: np.uint64) -> Day:
    """The day's ``messages`` messages over ``symbols`` stocks.

    ``rng`` draws the symbols, their prices and activity; the kernel draws every
    event from its own stream seeded with ``seed``.  A quiet period of more than
    ``heartbeat_interval_ns`` follows now and then, so that heartbeats occur.
    """
    ns = symbols
    code = _symbols(ns, rng)
    # Prices: log-uniform $2..$500 mids, in cents; activity: Zipf-like over a random order.
    mid = np.exp(rng.uniform(math.log(200), math.log(50_000), ns)).astype(np.int64)
    weight = np.empty(ns)
    weight[rng.permutation(ns)] = 1.0 / np.arange(1, ns + 1) ** 0.9
    cdf = np.cumsum(weight / weight.sum())
    cdf[-1] = 1.0
    guide = np.searchsorted(cdf, np.arange(4 * ns) / (4 * ns), side="right").astype(np.int64)
    tier1 = weight >= np.quantile(weight, 0.8)     # the most active fifth: LULD tier 1
    mpids = _text_codes(rng, 16, 4)

    n = messages
    n_body = n - min_messages(ns)   # the body includes the all_types sprinkles
    # Above the target, adds turn into deletes half the time, so the book stays well
    # below twice the target; the cap is a hard bound the kernel also enforces.
    live_target = _LIVE_PER_SYMBOL * ns + 100
    live_cap = min(n_body + 1, 2 * live_target)
    # Sized for the longest message; pages never written never become resident.
    mbuf = np.empty(n * MAX_BLOCK + 8, np.uint8)
    mstart = np.zeros(n + 1, np.int64)
    mts = np.empty(n, np.int64)
    mtype = np.empty(n, np.uint8)
    written = _simulate(n_body, code, mid, tier1, cdf, guide, mpids, bool(all_types),
                        heartbeat_interval_ns, seed, live_cap, live_target,
                        _ENC, (mbuf, mstart, mts, mtype))
    assert written == n, (written, n)
    return Day(mbuf, mstart, mts, np.bincount(mtype, minlength=256))
