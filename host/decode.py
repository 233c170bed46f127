"""The software reference feed handler: frames in, normalized ticks out.

It is the model the gateware is verified against, so it walks every frame in
wire order and makes each check when a cut-through parser could
(docs/reference-model.md).  That walk is inherently serial (each header's and
block's position depends on the lengths before it), so it is one small numba
kernel; which bytes land where in a tick is not written here but compiled into
lookup tables from :data:`wiretick.host.contract.formats.TICK_MAP`.

Where the time goes (BENCHMARKS.md): the per-frame header checks and the
per-block walk (every per-block check is in the one loop at the end of
:func:`_frame`), then writing each tick as 8 words, each field one unaligned
load and a byte swap (:func:`_emit_message`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

from .contract import formats as F
from .capture import FrameBatch
from .tick import TICK_DTYPE

__all__ = ["DecodeConfig", "DecodeResult", "SequenceState", "Decoder", "decode_batch", "decode_file", "max_ticks",
           "NpyTickWriter", "format_counters"]


@dataclass(frozen=True)
class DecodeConfig:
    """Feed-handler configuration (the same knobs the gateware has as registers).

    Parameters
    ----------
    ip_dst : accept only this IPv4 destination address (0 = any).
    port : accept only this UDP destination port (0 = any).
    check_ip_checksum : drop frames whose IPv4 header checksum is wrong.
    sequence_check : MoldUDP64 sequence processing (duplicates dropped, gaps reported).
    """

    ip_dst: int = 0
    port: int = 0
    check_ip_checksum: bool = True
    sequence_check: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.ip_dst <= 0xFFFF_FFFF:
            raise ValueError(f"ip_dst must be an IPv4 address (0..2^32-1), got {self.ip_dst}")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port must be 0..65535, got {self.port}")

    def as_array(self) -> np.ndarray:
        return np.array([self.ip_dst, self.port, int(self.check_ip_checksum),
                         int(self.sequence_check)], dtype=np.int64)


@dataclass(frozen=True)
class SequenceState:
    """Where a feed handler is in a feed: what a late join loads (docs/reference-model.md).

    Parameters
    ----------
    has_session : a MoldUDP64 session is tracked (else the next packet starts tracking its own).
    session : the tracked session, its 10 wire bytes.
    expected : the next message number not yet delivered.
    next_seq : the ``seq`` of the next tick.

    The default is a fresh feed handler's state.  The device takes the same
    state in its ``JOIN_*`` registers (:meth:`wiretick.host.device.Device.join`).
    """

    has_session: bool = False
    session: bytes = bytes(10)
    expected: int = 0
    next_seq: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.session, (bytes, bytearray)) or len(self.session) != 10:
            raise ValueError(f"session must be 10 bytes, got {self.session!r}")
        if not 0 <= self.expected < 1 << 64:
            raise ValueError(f"expected must be a 64-bit message number, got {self.expected}")
        if not 1 <= self.next_seq < 1 << 64:
            raise ValueError(f"next_seq must be 1..2^64-1, got {self.next_seq}")


@dataclass
class DecodeResult:
    """Ticks (tick dtype) and counters (name -> value, every name of formats.COUNTERS)."""

    ticks: np.ndarray
    counters: dict[str, int] = field(default_factory=dict)


def format_counters(counters: dict[str, int]) -> str:
    """A short human summary of the non-zero counters, grouped the way people read them."""
    msgs = ", ".join(f"{c.name[4:]}={counters[c.name]}" for c in F.COUNTERS
                     if c.name.startswith("msg_") and counters.get(c.name))
    drops = ", ".join(f"{c.name}={counters[c.name]}" for c in F.COUNTERS
                      if c.name.startswith(("drop_", "bad_")) and counters.get(c.name))
    other = ", ".join(f"{k}={counters[k]}" for k in ("frames", "packets", "messages", "ticks", "heartbeats",
                                                        "end_of_session", "duplicates", "gaps", "gap_messages",
                                                        "aborts", "unknown_type", "sessions"))
    lines = [other, f"by type: {msgs or 'none'}", f"dropped: {drops or 'none'}"]
    return "\n".join(lines)


# ------------------------------------------------------------- tables from the one map

def _tables() -> tuple[np.ndarray, ...]:
    msg_len = np.zeros(256, np.int64)
    type_counter = np.full(256, -1, np.int64)
    sat = np.full(256, -1, np.int64)
    printable = np.full(256, -1, np.int64)
    for t in range(256):
        code = chr(t)
        if code not in F.MESSAGE_BY_CODE:
            continue
        msg_len[t] = F.MESSAGE_BY_CODE[code].length
        type_counter[t] = F.COUNTER_INDEX[f"msg_{code}"]
    for code, off in F.SATURATE_RULES:
        sat[ord(code)] = off
    for code, off in F.PRINTABLE_RULES:
        printable[ord(code)] = off
    return msg_len, type_counter, sat, printable


_MSG_LEN, _TYPE_COUNTER, _SAT, _PRINTABLE = _tables()


_HEAD = ((0, 1, "msg_type"), (1, 2, "locate"), (3, 2, "tracking"), (5, 6, "ts_exch"))


def _copy_tables() -> tuple[np.ndarray, np.ndarray]:
    """TICK_MAP as word operations, for :func:`_emit_message`.

    Every message starts with the same four copies (type, locate, tracking,
    timestamp: ``_HEAD``, checked here), which the kernel makes in fixed
    places.  For the rest, per type: how many copies, and for each (src, size,
    word, bit in the word, raw, right shift after the byte swap, mask).  Every
    copy lands inside one 8-byte word of the tick (checked here), so a field
    is one unaligned load, a byte swap and two shifts.
    """
    head = tuple(F.Copy(src, size, F.TICK_FIELD_BY_NAME[name].offset, "be") for src, size, name in _HEAD)
    ncopies = np.zeros(256, np.int64)
    width = max(len(v) for v in F.TICK_MAP.values())
    ops = np.zeros((256, width, 7), np.int64)
    for code, copies in F.TICK_MAP.items():
        t = ord(code)
        if tuple(copies[:4]) != head:
            raise AssertionError(f"TICK_MAP[{code!r}] does not start with type, locate, tracking, timestamp")
        copies = copies[4:]
        ncopies[t] = len(copies)
        for j, c in enumerate(copies):
            if c.dst // 8 != (c.dst + c.size - 1) // 8:
                raise AssertionError(f"TICK_MAP[{code!r}] copy {c} straddles a tick word")
            raw = c.kind == "raw"
            mask = (1 << 8 * c.size) - 1
            ops[t, j] = (c.src, c.size, c.dst // 8, 8 * (c.dst % 8), raw, 0 if raw else 64 - 8 * c.size,
                         mask if mask < 1 << 63 else -1)
    return ncopies, ops


_OPS = _copy_tables()
_MIN_LEN = F.MIN_MESSAGE_LENGTH

# Counter indices and tick offsets as module constants: numba freezes them at compile time.
_C = F.COUNTER_INDEX
C_FRAMES, C_NOT_IPV4, C_TRUNC = _C["frames"], _C["drop_not_ipv4"], _C["drop_truncated"]
C_CSUM, C_FRAG, C_NOT_UDP, C_IP_DST = _C["drop_ip_checksum"], _C["drop_fragment"], _C["drop_not_udp"], _C["drop_ip_dst"]
C_UDP_LEN, C_PORT, C_MOLD_SHORT, C_BAD_FCS = _C["drop_udp_length"], _C["drop_port"], _C["drop_mold_short"], _C["bad_fcs"]
C_PACKETS, C_HEARTBEATS, C_EOS = _C["packets"], _C["heartbeats"], _C["end_of_session"]
C_OVERRUN, C_BLOCK_LEN, C_BAD_TRUNC, C_UNKNOWN = _C["bad_block_overrun"], _C["bad_block_length"], _C["bad_truncated"], _C["unknown_type"]
C_MESSAGES, C_DUPS, C_GAPS, C_GAP_MSGS = _C["messages"], _C["duplicates"], _C["gaps"], _C["gap_messages"]
C_ABORTS, C_SESSIONS, C_TICKS = _C["aborts"], _C["sessions"], _C["ticks"]
N_COUNTERS = len(F.COUNTERS)

_T = F.TICK_FIELD_BY_NAME
T_SEQ, T_TS_RX, T_FEED_SEQ = _T["seq"].offset, _T["ts_rx"].offset, _T["feed_seq"].offset
T_ORDER_REF, T_REF2, T_SHARES, T_FLAGS = _T["order_ref"].offset, _T["ref2"].offset, _T["shares"].offset, _T["flags"].offset
T_TS_EXCH = _T["ts_exch"].offset
# the last word of a tick: bit positions of the header fields every message fills
B_MSG_TYPE, B_LOCATE, B_TRACKING = (8 * (_T[f].offset - 56) for f in ("msg_type", "locate", "tracking"))
assert T_TS_EXCH == 24 and all(56 <= _T[f].offset < 64 for f in ("msg_type", "locate", "tracking", "flags"))
FLAG_SATURATED, FLAG_PRINTABLE = F.Flag.SATURATED, F.Flag.PRINTABLE
FLAG_GAP, FLAG_ABORT = F.Flag.EVENT_GAP, F.Flag.EVENT_ABORT
QTY_MAX = F.QTY_SATURATED
MOLD_HB, MOLD_EOS = F.MOLD_HEARTBEAT, F.MOLD_END_OF_SESSION

# Decoder state, carried across batches: the tracked session and the next numbers.
S_HAS_SESSION, S_EXPECTED, S_NEXT_SEQ = 0, 1, 2
MIN_MESSAGE_BLOCK = 2 + min(m.length for m in F.MESSAGES)


@intrinsic
def _load_le64(typingctx, arr, idx):
    """The 8 bytes at ``arr[idx]`` as one unaligned little-endian load (the caller checks the bounds)."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.uint8 and arr.layout == "C"
            and isinstance(idx, types.Integer)):
        return None                     # strided bytes: no such load (a typing error, not a wrong value)

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], sig.args[1], types.intp)
        ptr = builder.bitcast(builder.gep(ary.data, [i]), ir.IntType(64).as_pointer())
        return builder.load(ptr, align=1)

    return types.uint64(arr, idx), codegen


@intrinsic
def _bswap64(typingctx, v):
    if v != types.uint64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bswap(args[0])

    return types.uint64(v), codegen


@numba.njit(cache=True, inline="always")
def _field(b, p, n, raw):
    """The ``n``-byte field at ``b[p]``: big-endian, or (``raw``) as it is on the wire, little-endian."""
    if p + 8 <= len(b):
        v = _load_le64(b, p)
        if raw:
            return v if n == 8 else v & ((np.uint64(1) << np.uint64(8 * n)) - np.uint64(1))
        return _bswap64(v) >> np.uint64(64 - 8 * n)
    v = np.uint64(0)
    if raw:
        for k in range(n):
            v |= np.uint64(b[p + k]) << np.uint64(8 * k)
        return v
    for k in range(n):
        v = (v << np.uint64(8)) | np.uint64(b[p + k])
    return v


@numba.njit(cache=True, inline="always")
def _be(b, p, n):
    v = np.uint64(0)
    for k in range(n):
        v = (v << np.uint64(8)) | np.uint64(b[p + k])
    return v


@numba.njit(cache=True, inline="always")
def _put(t, off, v, n):
    for k in range(n):
        t[off + k] = np.uint8((v >> np.uint64(8 * k)) & np.uint64(0xFF))


@numba.njit(cache=True)
def _emit_event(out, n, st, ts, flags, feed_seq, order_ref, ref2):
    for k in range(8):
        out[n, k] = 0
    out[n, T_SEQ // 8] = st[S_NEXT_SEQ]
    st[S_NEXT_SEQ] += np.uint64(1)
    out[n, T_TS_RX // 8] = ts
    out[n, T_FEED_SEQ // 8] = feed_seq
    out[n, T_ORDER_REF // 8] = order_ref
    out[n, T_REF2 // 8] = ref2
    out[n, T_FLAGS // 8] = np.uint64(flags) << np.uint64(8 * (T_FLAGS % 8))


@numba.njit(cache=True, inline="always")
def _emit_message(out, n, st, ts, feed_seq, b, p, typ, ops, sat, printable):
    """Tick ``n`` (``out``: rows of 8 words) from the message at ``b[p]``: one load per field.

    ``ops`` is :func:`_copy_tables`: the common ITCH header (type, locate,
    tracking, timestamp) has fixed places; the type's other fields follow its row.
    """
    ncopies, op = ops
    out[n, T_SEQ // 8] = st[S_NEXT_SEQ]
    st[S_NEXT_SEQ] += np.uint64(1)
    out[n, T_TS_RX // 8] = ts
    out[n, T_FEED_SEQ // 8] = feed_seq
    out[n, T_TS_EXCH // 8] = _field(b, p + 5, 6, False)
    for k in range(T_TS_EXCH // 8 + 1, 7):
        out[n, k] = 0
    out[n, 7] = ((np.uint64(typ) << np.uint64(B_MSG_TYPE)) | (_field(b, p + 1, 2, False) << np.uint64(B_LOCATE))
                 | (_field(b, p + 3, 2, False) << np.uint64(B_TRACKING)))
    for j in range(ncopies[typ]):
        q = p + op[typ, j, 0]
        if q + 8 <= len(b):
            v = _load_le64(b, q)
            if op[typ, j, 4] == 0:
                v = _bswap64(v)
            v = (v >> np.uint64(op[typ, j, 5])) & np.uint64(op[typ, j, 6])
        else:
            v = _field(b, q, op[typ, j, 1], op[typ, j, 4] != 0)
        out[n, op[typ, j, 2]] |= v << np.uint64(op[typ, j, 3])
    flags = np.uint64(0)
    if sat[typ] >= 0:
        q = _field(b, p + sat[typ], 8, False)
        if q > np.uint64(QTY_MAX):
            q = np.uint64(QTY_MAX)
            flags |= np.uint64(FLAG_SATURATED)
        out[n, T_SHARES // 8] |= q << np.uint64(8 * (T_SHARES % 8))
    if printable[typ] >= 0 and b[p + printable[typ]] == 89:  # 'Y'
        flags |= np.uint64(FLAG_PRINTABLE)
    out[n, T_FLAGS // 8] |= flags << np.uint64(8 * (T_FLAGS % 8))


@numba.njit(cache=True, inline="always")
def _frame(b, o, flen, ts, cfg, st, sess, out, n, cnt, msg_len, type_counter, ops, sat, printable):
    """Process one frame; return the new tick count.  Checks follow byte order."""
    end = o + flen
    if flen < 14:
        cnt[C_TRUNC] += 1
        return n
    et = _be(b, o + 12, 2)
    p = o + 14
    tags = 0
    while et == 0x8100 or et == 0x88A8:
        if tags == 2:
            cnt[C_NOT_IPV4] += 1
            return n
        if p + 4 > end:
            cnt[C_TRUNC] += 1
            return n
        et = _be(b, p + 2, 2)
        p += 4
        tags += 1
    if et != 0x0800:
        cnt[C_NOT_IPV4] += 1
        return n
    if p + 1 > end:
        cnt[C_TRUNC] += 1
        return n
    vihl = b[p]
    if (vihl >> 4) != 4 or (vihl & 15) < 5:
        cnt[C_NOT_IPV4] += 1
        return n
    hl = (vihl & 15) * 4
    if p + hl > end:
        cnt[C_TRUNC] += 1
        return n
    if cfg[2]:
        if hl == 20 and p + 24 <= len(b):
            # The ones' complement sum does not depend on byte order: add little-endian
            # 32-bit halves of wide loads and fold; all ones either way.
            x = _load_le64(b, p)
            y = _load_le64(b, p + 8)
            z = _load_le64(b, p + 16) & np.uint64(0xFFFFFFFF)
            s = ((x & np.uint64(0xFFFFFFFF)) + (x >> np.uint64(32)) + (y & np.uint64(0xFFFFFFFF))
                 + (y >> np.uint64(32)) + z)
            while s > np.uint64(0xFFFF):
                s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
        else:
            s = np.uint64(0)
            for k in range(0, hl, 2):
                s += np.uint64((b[p + k] << 8) | b[p + k + 1])
            while s > np.uint64(0xFFFF):
                s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
        if s != np.uint64(0xFFFF):
            cnt[C_CSUM] += 1
            return n
    if _be(b, p + 6, 2) & 0x3FFF:
        cnt[C_FRAG] += 1
        return n
    if b[p + 9] != 17:
        cnt[C_NOT_UDP] += 1
        return n
    if cfg[0] != 0 and _be(b, p + 16, 4) != np.uint64(cfg[0]):
        cnt[C_IP_DST] += 1
        return n
    total = np.int64(_be(b, p + 2, 2))
    u = p + hl
    if u + 8 > end:
        cnt[C_TRUNC] += 1
        return n
    ulen = np.int64(_be(b, u + 4, 2))
    if total < hl + 8 or ulen < 8 or ulen > total - hl:
        cnt[C_UDP_LEN] += 1
        return n
    if cfg[1] != 0 and _be(b, u + 2, 2) != np.uint64(cfg[1]):
        cnt[C_PORT] += 1
        return n
    if ulen - 8 < 20:
        cnt[C_MOLD_SHORT] += 1
        return n
    m = u + 8
    if m + 20 > end:
        cnt[C_TRUNC] += 1
        return n
    cnt[C_PACKETS] += 1
    pay_end = m + (ulen - 8)
    S = _be(b, m + 10, 8)
    N = np.int64(_be(b, m + 18, 2))
    seq_check = cfg[3] != 0
    if seq_check:
        # m + 20 <= end: the session's 10 bytes are two overlapping 8-byte loads
        same = (st[S_HAS_SESSION] != 0 and _load_le64(b, m) == _load_le64(sess, 0)
                and _load_le64(b, m + 2) == _load_le64(sess, 2))
        if not same:
            for k in range(10):
                sess[k] = b[m + k]
            st[S_HAS_SESSION] = 1
            st[S_EXPECTED] = S
            cnt[C_SESSIONS] += 1
        if S > st[S_EXPECTED]:
            missing = S - st[S_EXPECTED]
            _emit_event(out, n, st, ts, FLAG_GAP, st[S_EXPECTED], np.uint64(0), missing)
            n += 1
            cnt[C_GAPS] += 1
            cnt[C_GAP_MSGS] += np.int64(missing)
            st[S_EXPECTED] = S
    if N == MOLD_HB or N == MOLD_EOS:
        cnt[C_HEARTBEATS if N == MOLD_HB else C_EOS] += 1
        return n
    q = m + 20
    for i in range(N):
        if q + 2 > pay_end:
            cnt[C_OVERRUN] += 1
            break
        if q + 2 > end:
            cnt[C_BAD_TRUNC] += 1
            break
        L = np.int64(_be(b, q, 2))
        if q + 2 + L > pay_end:
            cnt[C_OVERRUN] += 1
            break
        if L == 0:
            cnt[C_BLOCK_LEN] += 1
            break
        if q + 3 > end:
            cnt[C_BAD_TRUNC] += 1
            break
        typ = b[q + 2]
        ml = msg_len[typ]
        if (ml != 0 and ml != L) or (ml == 0 and L < _MIN_LEN):
            cnt[C_BLOCK_LEN] += 1
            break
        if ml == 0:
            cnt[C_UNKNOWN] += 1
        if q + 2 + L > end:
            cnt[C_BAD_TRUNC] += 1
            break
        num = S + np.uint64(i)
        if seq_check:
            if num < st[S_EXPECTED]:
                if ml != 0:
                    cnt[C_DUPS] += 1
                q += 2 + L
                continue
            st[S_EXPECTED] = num + np.uint64(1)
        if ml != 0:
            _emit_message(out, n, st, ts, num, b, q + 2, typ, ops, sat, printable)
            n += 1
            cnt[C_MESSAGES] += 1
            cnt[type_counter[typ]] += 1
        q += 2 + L
    return n


@numba.njit(cache=True)
def _decode(b, off, length, ts, bad, start, cfg, st, sess, out, cnt,
            msg_len, type_counter, ops, sat, printable):
    """Decode frames from ``start`` until done or ``out`` might overflow.

    Returns (next frame index, ticks written).
    """
    n = 0
    cap = out.shape[0]
    out = out.view(np.uint64)                   # a tick is 8 words
    saved_sess = np.empty(10, np.uint8)
    for i in range(start, len(off)):
        flen = length[i]
        if n + flen // MIN_MESSAGE_BLOCK + 2 > cap:
            return i, n
        cnt[C_FRAMES] += 1
        saved_has, saved_expected = st[S_HAS_SESSION], st[S_EXPECTED]
        if bad[i]:                                  # only a frame the MAC flagged can be rolled back
            saved_sess[:] = sess
        first = n
        n = _frame(b, off[i], flen, ts[i], cfg, st, sess, out, n, cnt,
                   msg_len, type_counter, ops, sat, printable)
        if bad[i]:
            cnt[C_BAD_FCS] += 1
            if n > first:
                first_seq = st[S_NEXT_SEQ] - np.uint64(n - first)
                _emit_event(out, n, st, ts[i], FLAG_ABORT, np.uint64(0), first_seq, st[S_NEXT_SEQ] - np.uint64(1))
                n += 1
                cnt[C_ABORTS] += 1
                # The frame's messages were not delivered after all: a good copy may follow.
                st[S_HAS_SESSION], st[S_EXPECTED] = saved_has, saved_expected
                sess[:] = saved_sess
    return len(off), n


class Decoder:
    """A stateful reference feed handler: feed it frame batches in order.

    State (the tracked MoldUDP64 session, the next expected sequence number,
    the next tick ``seq``) carries across batches, so a capture can be decoded
    batch by batch with results identical to decoding it whole.  ``initial``
    starts it mid-feed (a late join) instead of fresh; the counters still start
    at 0 (``ticks`` counts the ticks this decoder made).
    """

    def __init__(self, config: DecodeConfig | None = None, *, chunk_ticks: int = 1 << 18,
                 initial: SequenceState | None = None):
        self.config = config or DecodeConfig()
        self._cfg = self.config.as_array()
        initial = initial or SequenceState()
        self._state = np.array([int(initial.has_session), initial.expected, initial.next_seq], dtype=np.uint64)
        self._session = np.frombuffer(bytes(initial.session), np.uint8).copy()
        self._first_seq = initial.next_seq
        self._counters = np.zeros(N_COUNTERS, np.int64)
        self._chunk = chunk_ticks

    @property
    def counters(self) -> dict[str, int]:
        """Every counter of formats.COUNTERS by name (``ticks`` included)."""
        # Counts wrap at 2**64 (gap_messages after absurd sequence jumps): report them unsigned.
        d = {c.name: int(v) & 0xFFFF_FFFF_FFFF_FFFF for c, v in zip(F.COUNTERS, self._counters)}
        d["ticks"] = int(self._state[S_NEXT_SEQ]) - self._first_seq
        return d

    @property
    def state(self) -> SequenceState:
        """The sequence state now (where a late join of the rest of the feed starts)."""
        return SequenceState(bool(self._state[S_HAS_SESSION]), self._session.tobytes(),
                             int(self._state[S_EXPECTED]), int(self._state[S_NEXT_SEQ]))

    def feed(self, batch: FrameBatch) -> Iterable[np.ndarray]:
        """Decode one batch; yield tick arrays (each a fresh array, in order)."""
        i, total = 0, len(batch)
        while i < total:
            cap = max(self._chunk, int(batch.length[i]) // MIN_MESSAGE_BLOCK + 2)
            out = np.empty((cap, F.TICK_SIZE), np.uint8)
            i, n = _decode(batch.buf, batch.offset, batch.length, batch.ts_ns, batch.bad, i,
                           self._cfg, self._state, self._session, out, self._counters,
                           _MSG_LEN, _TYPE_COUNTER, _OPS, _SAT, _PRINTABLE)
            if n:
                yield out[:n].view(TICK_DTYPE).reshape(n)

    def decode_into(self, batch: FrameBatch, out: np.ndarray) -> int:
        """Decode a whole batch into ``out`` (rows of 64 bytes); return the ticks written.

        ``out`` must have at least :func:`max_ticks` ``(batch)`` rows; rows not
        written are left untouched, so a large ``np.empty`` costs no memory
        beyond what is written.
        """
        need = max_ticks(batch)
        if out.ndim != 2 or out.shape[1] != F.TICK_SIZE or out.shape[0] < need:
            raise ValueError(f"decode_into needs a ({need}, {F.TICK_SIZE}) uint8 buffer, got {out.shape}")
        _, n = _decode(batch.buf, batch.offset, batch.length, batch.ts_ns, batch.bad, 0,
                       self._cfg, self._state, self._session, out, self._counters,
                       _MSG_LEN, _TYPE_COUNTER, _OPS, _SAT, _PRINTABLE)
        return n

    def decode(self, batch: FrameBatch) -> np.ndarray:
        """Decode one batch into a single tick array."""
        parts = list(self.feed(batch))
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, TICK_DTYPE)


def max_ticks(batch: FrameBatch) -> int:
    """An upper bound on the ticks a batch can produce (messages, a gap and an abort per frame)."""
    return int((batch.length // MIN_MESSAGE_BLOCK + 2).sum())


def decode_batch(batch: FrameBatch, config: DecodeConfig | None = None) -> DecodeResult:
    """Decode a batch of frames from a fresh state."""
    dec = Decoder(config)
    ticks = dec.decode(batch)
    return DecodeResult(ticks, dec.counters)


class NpyTickWriter:
    """Write ticks to a .npy file as they come, without holding them all.

    The header is written with room for any count and rewritten at the end;
    the file appears under its name only when complete (``.partial`` before).
    """

    _HEADER_LEN = 512  # a multiple of 64 with room for the tick descr and any shape (the descr alone is ~290)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._tmp = Path(str(path) + ".partial")
        self._f = open(self._tmp, "wb")
        self.count = 0
        self._f.write(self._header(0))

    def _header(self, n: int) -> bytes:
        d = {"descr": np.lib.format.dtype_to_descr(TICK_DTYPE), "fortran_order": False, "shape": (n,)}
        text = repr(d).encode("latin1")
        pre = b"\x93NUMPY\x01\x00"
        body_len = self._HEADER_LEN - len(pre) - 2
        if len(text) + 1 > body_len:
            raise AssertionError(f".npy header needs {len(text) + 1} bytes, only {body_len} reserved")
        text = text + b" " * (body_len - len(text) - 1) + b"\n"
        return pre + body_len.to_bytes(2, "little") + text

    def write(self, ticks: np.ndarray) -> None:
        self._f.write(memoryview(np.ascontiguousarray(ticks)).cast("B"))
        self.count += len(ticks)

    def close(self) -> None:
        self._f.seek(0)
        self._f.write(self._header(self.count))
        self._f.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "NpyTickWriter":
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.abort() if exc_type else self.close()


def decode_file(path: str | os.PathLike, out: str | os.PathLike | None = None,
                config: DecodeConfig | None = None, *, batch_frames: int = 1 << 16,
                initial: SequenceState | None = None, progress=None) -> DecodeResult:
    """Decode a capture file, streaming it batch by batch.

    With ``out``, ticks are written to that .npy as they are decoded and the
    result's ``ticks`` is empty (the file may not fit in memory); without it,
    every tick is returned in memory.  ``initial``: join the feed in that state
    (:class:`SequenceState`) instead of fresh.  ``progress``: a bar of the file's
    bytes (:func:`wiretick.host.progress.progress`), advanced batch by batch.
    """
    from .capture import open_capture
    from .progress import through_batch

    dec = Decoder(config, initial=initial)
    with open_capture(path, batch_frames=batch_frames) as cap:
        if out is None:
            # One buffer for the whole capture, sized by a bound from the file size
            # (every frame costs >= 16 file bytes, every message >= MIN_MESSAGE_BLOCK):
            # pages never written are never touched, and no chunk is copied twice.
            size = os.path.getsize(path)
            buf = np.empty((size // MIN_MESSAGE_BLOCK + 2 * (size // 16) + 2, F.TICK_SIZE), np.uint8)
            n = 0
            for batch in cap:
                n += dec.decode_into(batch, buf[n:])
                through_batch(progress, batch)
            return DecodeResult(buf[:n].view(TICK_DTYPE).reshape(n), dec.counters)
        scratch = np.empty((0, F.TICK_SIZE), np.uint8)
        with NpyTickWriter(out) as w:
            for batch in cap:
                if scratch.shape[0] < max_ticks(batch):
                    scratch = np.empty((max_ticks(batch), F.TICK_SIZE), np.uint8)
                k = dec.decode_into(batch, scratch)
                w.write(scratch[:k].view(TICK_DTYPE).reshape(k))
                through_batch(progress, batch)
    return DecodeResult(np.zeros(0, TICK_DTYPE), dec.counters)
