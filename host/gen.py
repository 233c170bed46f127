"""A synthetic, realistic NASDAQ TotalView-ITCH 5.0 feed, deterministic for a seed.

A trading day in miniature: start-of-day system events, a stock directory and a
trading action per symbol, opening crosses, then continuous trading on a
consistent order book per symbol (every execute, cancel, delete and replace
refers to a live order and never takes more shares than remain), closing
crosses and end-of-day events.  The messages are packed into MoldUDP64 packets
(with heartbeats in quiet periods and an end-of-session packet) and framed in
UDP/IPv4/Ethernet (optionally 802.1Q tagged), optionally as two feed copies
(A and B) interleaved the way one capture port sees them, optionally with
lost packets (sequence gaps).

Speed matters (millions of messages for benchmarks), so the three serial walks
(book simulation, packing, framing) are numba kernels and nothing loops in
Python per message or per frame.  Message layouts are never restated here:
field offsets, sizes and message lengths are compiled into lookup tables from
:mod:`wiretick.host.contract.formats`; the kernels name fields by id only.

:func:`generate` returns a :class:`~wiretick.host.capture.FrameBatch` whose
buffer is the image of a classic nanosecond pcap file (frame ``i`` at
``offset[i]``, right after its 16-byte record header).  :func:`generate_to_file`
lays the same bytes out piece by piece and writes each piece as it is done, so
the capture is never held whole in memory: the file is byte for byte what
:func:`~wiretick.host.capture.write_pcap` writes for :func:`generate`'s batch
(tested), without write_pcap's per-byte scatter (~60 MB/s, several times the
capture's size in temporaries), which would dominate the time.
"""

from __future__ import annotations

import ipaddress
import math
import numbers
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np
from numba import types as nt

from .capture import FrameBatch
from .contract.formats import (
    ETHERTYPE_IPV4, ETHERTYPE_VLAN, IP_PROTO_UDP, MAX_VLAN_TAGS, MESSAGES,
    MOLD_END_OF_SESSION, MOLD_FIELDS, MOLD_HEADER_SIZE, MOLD_HEARTBEAT, MOLD_SESSION_SIZE,
)

__all__ = ["GenConfig", "GenStats", "generate", "generate_with_stats", "generate_to_file",
           "min_messages", "MIN_MTU", "MAX_MTU", "EXTRA_TYPES"]

# ------------------------------------------------------------------ framing constants

IPV4_HEADER = 20         # no options: what exchange publishers send
UDP_HEADER = 8
ETH_MIN_FRAME = 60       # without FCS: shorter frames are padded
MAX_MTU = 9216           # jumbo; keeps every frame within the pcap snaplen (65535)
_IP_DF = 0x4000          # don't fragment, offset 0
_IP_TOTAL_LENGTH, _IP_ID, _IP_CHECKSUM = 2, 4, 10   # byte offsets in the IPv4 header
_UDP_LENGTH = 4                                      # byte offset in the UDP header
_TTL = 59
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAP_SNAPLEN = 65535
_PCAP_LINKTYPE_ETHERNET = 1
_PCAP_RECORD = 16

# Publishers of the two feed copies (the A and B lines come from different hosts).
_SRC_IP = (0xCEC87F8A, 0xCEC87F8B)
_SRC_MAC = (bytes.fromhex("027774000a01"), bytes.fromhex("027774000b01"))
_SRC_PORT = (49653, 49654)

# ------------------------------------------------------------------ time model (ns)

_SEC = 1_000_000_000
_T_OPEN_MESSAGES = (9 * 3600 + 29 * 60 + 50) * _SEC   # S 'O' at 09:29:50
_T_SYSTEM_HOURS = (9 * 3600 + 29 * 60 + 55) * _SEC    # S 'S' at 09:29:55
_T_MARKET_OPEN = (9 * 3600 + 30 * 60) * _SEC          # S 'Q' at 09:30:00
_P_QUIET = 2e-5          # per body message: a quiet period of 1.2..3.5 heartbeat intervals follows
_P_BURST = 0.9           # inter-arrival within a burst (mean 1.5 us), else between bursts (80 us)
_BURST_GAP = 1500.0
_IDLE_GAP = 80_000.0
_BATCH_WINDOW = 50_000   # a publisher flushes a packet whose first message is 50 us old
_LATENCY_MIN = 4_000     # matching engine -> wire, plus exp(mean 3 us)
_LATENCY_MEAN = 3_000.0
_B_DELAY_MIN = 2_000     # the B copy lags A by 2..30 us
_B_DELAY_SPAN = 28_000
_EOS_DELAY = 1_000_000   # end of session 1 ms after the last event

# ------------------------------------------------------------------ market model

# Body event mix (continuous trading): cumulative thresholds of A D U E X P F C.
EV_A, EV_D, EV_U, EV_E, EV_X, EV_P, EV_F, EV_C = range(8)
_MIX = (0.40, 0.355, 0.10, 0.045, 0.04, 0.03, 0.02, 0.01)
_MIX_CUM = tuple(float(x) for x in np.cumsum(_MIX))
_P_EXTRA = 0.004         # all_types: share of body messages of the rarer types
_P_RECENT = 0.7          # most order events hit a recent order (HFT churn), else any live order
_RECENT_MEAN = 24.0
_P_MID_MOVE = 0.08       # per event on a symbol: its mid moves one step
_P_PKT = 0.3             # messages per packet ~ geometric(0.3): mostly small packets
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
_MOLD = {f.name: f for f in MOLD_FIELDS}
# Where _frames writes the per-packet MoldUDP64 fields: sequence and count (offset, size);
# the session comes with the frame header template.
_MOLD_OFF = np.array([_MOLD["sequence"].offset, _MOLD["count"].offset,
                      _MOLD["sequence"].size, _MOLD["count"].size], np.int64)
_BLOCK_LEN = 2  # MoldUDP64 message block length prefix (u16)
#: The smallest IP MTU that carries the longest ITCH message in one packet.
MIN_MTU = IPV4_HEADER + UDP_HEADER + MOLD_HEADER_SIZE + _BLOCK_LEN + _MAX_MESSAGE


def min_messages(symbols: int, all_types: bool = False) -> int:
    """The fewest messages a generated day can have.

    Start of day: S 'O', one R per symbol, S 'S', one H per symbol, S 'Q', an
    opening Q per symbol; end of day: a closing Q per symbol, S 'M', 'E', 'C';
    with ``all_types``, one of each order-book type (A F X E C U D P, and two more
    adds) and one of each type in :data:`EXTRA_TYPES`.
    """
    return 6 + 4 * symbols + (len(EXTRA_TYPES) + len(_FORCED) if all_types else 0)


# ------------------------------------------------------------------ configuration


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class GenConfig:
    """What to generate.  Invalid values raise ``ValueError`` on construction.

    Parameters
    ----------
    messages : int
        ITCH messages in the feed, exactly (sequence numbers 1..messages), at least
        :func:`min_messages` (the start- and end-of-day skeleton).
    symbols : int
        Stocks, 1..65535 (stock locate 1..symbols, assigned alphabetically as NASDAQ does).
    seed : int
        Random seed (>= 0): the same config gives the same bytes.
    vlan : int, tuple of int or None
        802.1Q VLAN id (one tag), a tuple of one or two ids (two = QinQ: an 0x88A8
        outer tag, then 0x8100), or None for untagged frames.
    ab : bool
        Also publish the B copy of every packet (to ``dst_ip_b``:``port_b``, from another
        host), lagging A by 2..30 us; both lines are interleaved in capture-time order.
    gap_rate : float
        Fraction of data packets lost before the capture (both copies), in [0, 1).
        The first packet is never lost, so every loss is a detectable gap.
    all_types : bool
        Also sprinkle the rarer types (:data:`EXTRA_TYPES`), so all 23 ITCH types occur.
    max_messages_per_packet : int
        Most messages in one MoldUDP64 packet (1..65534); the MTU may allow fewer.
    mtu : int
        IP MTU: IPv4 + UDP + MoldUDP64 header + blocks never exceed it (MIN_MTU..9216).
    heartbeat_interval_ns : int
        A heartbeat goes out whenever the feed has been silent this long (>= 1 ms).
    session : bytes
        MoldUDP64 session, 10 ASCII bytes.
    dst_ip, port : str, int
        The A feed's multicast group and UDP port.
    dst_ip_b, port_b : str, int
        The B feed's (used when ``ab``); must differ from A's in group or port.
    start_ns : int
        Epoch time (ns) of the trading day's midnight, the origin of ITCH timestamps:
        a frame's capture time is ``start_ns`` + its last message's timestamp + latency.
        Default 2024-01-02 00:00 US/Eastern.
    """

    messages: int
    symbols: int = 100
    seed: int = 0
    vlan: int | tuple[int, ...] | None = 141
    ab: bool = False
    gap_rate: float = 0.0
    all_types: bool = False
    max_messages_per_packet: int = 32
    mtu: int = 1500
    heartbeat_interval_ns: int = _SEC
    session: bytes = b"WIRETICK01"
    dst_ip: str = "233.54.12.111"
    port: int = 26477
    dst_ip_b: str = "233.49.196.111"
    port_b: int = 26478
    start_ns: int = 1_704_171_600 * _SEC

    def __post_init__(self) -> None:
        for name in ("messages", "symbols", "seed", "max_messages_per_packet", "mtu",
                     "heartbeat_interval_ns", "port", "port_b", "start_ns"):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("ab", "all_types"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.messages < 1:
            raise ValueError(f"messages must be >= 1, got {self.messages}")
        if not 1 <= self.symbols <= 0xFFFF:
            raise ValueError(f"symbols must be 1..65535 (stock locate is 16 bits, 0 is market-wide), "
                             f"got {self.symbols}")
        need = min_messages(self.symbols, self.all_types)
        if self.messages < need:
            raise ValueError(f"messages={self.messages} is too few for {self.symbols} symbols"
                             f"{' with all_types' if self.all_types else ''}: the start and end of "
                             f"the day alone take {need} (6 + 4 per symbol"
                             f"{f' + {len(EXTRA_TYPES) + len(_FORCED)}' if self.all_types else ''})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self._vlans()  # validates
        if not isinstance(self.gap_rate, numbers.Real) or isinstance(self.gap_rate, bool) \
                or not 0.0 <= float(self.gap_rate) < 1.0:
            raise ValueError(f"gap_rate must be a fraction in [0, 1), got {self.gap_rate!r}")
        if not 1 <= self.max_messages_per_packet < MOLD_END_OF_SESSION:
            raise ValueError(f"max_messages_per_packet must be 1..{MOLD_END_OF_SESSION - 1} "
                             f"(0 and 0xFFFF are heartbeat and end of session), "
                             f"got {self.max_messages_per_packet}")
        if not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ValueError(f"mtu must be {MIN_MTU}..{MAX_MTU} (IPv4 + UDP + MoldUDP64 header + "
                             f"the longest ITCH message block = {MIN_MTU}), got {self.mtu}")
        if self.heartbeat_interval_ns < 1_000_000:
            raise ValueError(f"heartbeat_interval_ns must be >= 1 ms (1000000), "
                             f"got {self.heartbeat_interval_ns}")
        if not isinstance(self.session, (bytes, bytearray)) or len(self.session) != MOLD_SESSION_SIZE \
                or not all(0x20 <= b < 0x7F for b in self.session):
            raise ValueError(f"session must be {MOLD_SESSION_SIZE} printable ASCII bytes, "
                             f"got {self.session!r}")
        for name in ("port", "port_b"):
            if not 1 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must be 1..65535, got {getattr(self, name)}")
        a, b = self._group("dst_ip"), self._group("dst_ip_b")
        if self.ab and (a, self.port) == (b, self.port_b):
            raise ValueError("the B feed must differ from the A feed in multicast group or port")
        last_ns = self.start_ns + 2 * 86_400 * _SEC
        if self.start_ns < 0 or last_ns // _SEC >= 1 << 32:
            raise ValueError(f"start_ns must be an epoch time in ns that pcap can hold "
                             f"(0 .. 2106), got {self.start_ns}")

    def _vlans(self) -> tuple[int, ...]:
        v = self.vlan
        tags = () if v is None else (v,) if _is_int(v) else v
        if not isinstance(tags, tuple) or not all(_is_int(t) for t in tags):
            raise ValueError(f"vlan must be None, a VLAN id or a tuple of ids, got {v!r}")
        if len(tags) > MAX_VLAN_TAGS:
            raise ValueError(f"vlan: at most {MAX_VLAN_TAGS} tags, got {len(tags)}")
        for t in tags:
            if not 0 <= t <= 4094:
                raise ValueError(f"vlan id must be 0..4094, got {t}")
        return tuple(int(t) for t in tags)

    def _group(self, name: str) -> int:
        value = getattr(self, name)
        try:
            addr = ipaddress.IPv4Address(value)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be an IPv4 address, got {value!r}") from None
        if not addr.is_multicast:
            raise ValueError(f"{name} must be a multicast group (224.0.0.0/4), got {value}")
        return int(addr)


@dataclass(frozen=True)
class GenStats:
    """What a generated capture holds.

    Parameters
    ----------
    messages : ITCH messages published (sequence numbers 1..messages), lost ones included.
    packets : MoldUDP64 packets published per feed copy (data, heartbeats, end of session).
    heartbeats : heartbeat packets among them.
    frames : frames in the capture (lost packets excluded; two per packet with ``ab``).
    bytes : size of the pcap file (or image).
    per_type : messages published per ITCH type code (types that occur).
    gaps : gap events a receiver reports (runs of consecutive lost packets).
    gap_packets : data packets lost (per copy).
    gap_messages : messages in the lost packets.
    """

    messages: int
    packets: int
    heartbeats: int
    frames: int
    bytes: int
    per_type: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    gap_packets: int = 0
    gap_messages: int = 0


# ------------------------------------------------------------------ kernels: randomness

# Helpers called from other kernels are compiled for one explicit signature:
# numba would otherwise compile a new specialization for every distinct literal
# argument (a global constant is a literal), which made the first run take minutes.
# With a signature, literal arguments simply convert.
_I64, _U64, _F64, _VOID = nt.int64, nt.uint64, nt.float64, nt.void
_RS = nt.uint64[::1]          # the random state
_U8A, _I64A, _F64A = nt.uint8[::1], nt.int64[::1], nt.float64[::1]
_T_OUT = nt.Tuple((_U8A, _I64A, _I64A, _U8A))                          # mbuf, mstart, mts, mtype
_T_ENC = nt.UniTuple(_I64A, 4)                                        # _layout_tables()

# The kernels draw from their own splitmix64 stream, state in a 1-element array:
# numba's np.random goes through thread-local state on every call, which made it
# most of the generator's time; this one is a few instructions, and its stream does
# not depend on the numba or numpy version (the log-based draws rest on libm).
_SM_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_SM_MUL1 = np.uint64(0xBF58476D1CE4E5B9)
_SM_MUL2 = np.uint64(0x94D049BB133111EB)
_TWO_M53 = 1.0 / 9007199254740992.0


@numba.njit(_U64(_RS), cache=True)
def _next(rs):
    z = rs[0] + _SM_GAMMA
    rs[0] = z
    z = (z ^ (z >> np.uint64(30))) * _SM_MUL1
    z = (z ^ (z >> np.uint64(27))) * _SM_MUL2
    return z ^ (z >> np.uint64(31))


@numba.njit(_F64(_RS), cache=True)
def _u01(rs):
    """Uniform in [0, 1), 53 random bits."""
    return np.float64(_next(rs) >> np.uint64(11)) * _TWO_M53


@numba.njit(_I64(_RS, _I64, _I64), cache=True)
def _randint(rs, lo, hi):
    """Uniform integer in [lo, hi)."""
    return lo + np.int64(_u01(rs) * (hi - lo))


@numba.njit(_I64(_RS, _F64), cache=True)
def _geom(rs, p):
    """Trials up to the first success (>= 1), by inversion: one draw, no data-dependent loop."""
    return 1 + np.int64(np.log(1.0 - _u01(rs)) / np.log(1.0 - p))


@numba.njit(_F64(_RS, _F64), cache=True)
def _expo(rs, mean):
    return -mean * np.log(1.0 - _u01(rs))


# ------------------------------------------------------------------ kernels: messages

# A message is built in two steps: the kernel stores each field's value by id in
# ``vals`` (a plain array store), then ``_emit`` writes every field of the type where
# formats.py puts it, and sets each slot it used back to the sentinel -1 (every
# real value is >= 0).  A field the kernel forgot is therefore an error, never a
# stale value or a hole.
_NF = len(_FIELD_NAMES)
_UNSET = -1


@numba.njit(_VOID(_U8A, _I64, _I64, _I64), cache=True)
def _put(buf, pos, value, size):
    # Big-endian: text fields are carried as the big-endian integer of their ASCII bytes,
    # so every field, number or text, is written the same way.
    v = value
    for k in range(size - 1, -1, -1):
        buf[pos + k] = v & 0xFF
        v >>= 8


@numba.njit(_VOID(_I64A, _I64, _I64, _I64), cache=True)
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
    base = p + _BLOCK_LEN
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


@numba.njit(_VOID(_T_OUT, _T_ENC, _I64A, _I64, _I64), cache=True)
def _emit(out, enc, vals, i, tb):
    """:func:`_encode` for the rarer messages (a call, with the arrays in tuples)."""
    mbuf, mstart, mts, mtype = out
    fields, row, count, tlen = enc
    _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb)


@numba.njit(_I64(_RS, _F64A, _I64A), cache=True)
def _pick_symbol(rs, cdf, guide):
    """A symbol by activity: the first ``k`` with ``cdf[k] > u`` for a uniform ``u``.

    ``guide[j]`` is that index for ``u = j / len(guide)``, so the scan from it is a
    step or two; a binary search (or np.searchsorted) was a large share of the
    kernel's time, its branches being unpredictable.
    """
    u = _u01(rs)
    k = guide[np.int64(u * len(guide))]
    while cdf[k] <= u:
        k += 1
    return k


@numba.njit(_I64(_RS), cache=True)
def _shares(rs):
    # Mostly round lots, some odd lots, a few blocks.
    r = _u01(rs)
    if r < 0.8:
        return 100 * _geom(rs, 0.3)
    if r < 0.95:
        return _randint(rs, 1, 100)
    return 100 * _randint(rs, 10, 100)


@numba.njit(_I64(_RS, _I64, nt.boolean), cache=True)
def _limit_price(rs, mid, side_is_buy):
    # Cents, on the $0.01 grid: bids strictly below the mid, asks strictly above,
    # most of them at or near the touch.
    off = _geom(rs, 0.35) - 1
    if side_is_buy:
        return max(1, mid - 1 - off)
    return mid + 1 + off


@numba.njit(_VOID(_RS, _I64A, _I64), cache=True)
def _walk(rs, mid, s):
    # The mid of symbol s drifts: a random walk in steps of ~0.01% (at least a cent).
    if _u01(rs) < _P_MID_MOVE:
        step = max(1, mid[s] // 10_000)
        if _u01(rs) < 0.5:
            mid[s] = max(3, mid[s] - step)
        else:
            mid[s] += step


@numba.njit(_I64(_RS, _I64), cache=True)
def _gap(rs, hb):
    r = _u01(rs)
    if r < _P_QUIET:
        return int(hb * (1.2 + 2.3 * _u01(rs)))
    if r < _P_BURST:
        return 1 + int(_expo(rs, _BURST_GAP))
    return 1 + int(_expo(rs, _IDLE_GAP))


@numba.njit(_VOID(_RS, _T_OUT, _T_ENC, _I64A, _I64, _I64, _I64, _I64A, _I64A, _I64A, _F64A, _I64A,
                 _I64A, _I64A, _I64, _I64), cache=True)
def _extra(rs, out, enc, vals, i, tb, t, code, mid, trk, cdf, guide, mpids, ctr,
           last_match, last_match_sym):
    """Message ``i``: one of the rarer types, with valid field values for it."""
    if tb == TY_V or tb == TY_W:  # market-wide: locate 0
        ctr[0] = (ctr[0] + 1) & 0xFFFF
        _head(vals, 0, ctr[0], t)
        if tb == TY_V:
            # Circuit-breaker levels: 7/13/20% below an S&P 500 reference, Price(8).
            ref = _randint(rs, 300_000, 600_000)  # cents
            vals[F_LEVEL1] = (ref * 93 // 100) * 1_000_000
            vals[F_LEVEL2] = (ref * 87 // 100) * 1_000_000
            vals[F_LEVEL3] = (ref * 80 // 100) * 1_000_000
        else:
            vals[F_BREACHED_LEVEL] = _MWCB_LEVEL[_randint(rs, 0, len(_MWCB_LEVEL))]
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
        vals[F_REG_SHO_ACTION] = _REG_SHO[_randint(rs, 0, len(_REG_SHO))]
    elif tb == TY_L:
        vals[F_MPID] = mpids[_randint(rs, 0, len(mpids))]
        vals[F_PRIMARY_MARKET_MAKER] = _YN[_randint(rs, 0, len(_YN))]
        vals[F_MARKET_MAKER_MODE] = _MM_MODE[_randint(rs, 0, len(_MM_MODE))]
        vals[F_MARKET_PARTICIPANT_STATE] = _MP_STATE[_randint(rs, 0, len(_MP_STATE))]
    elif tb == TY_K:
        vals[F_IPO_RELEASE_TIME] = t // _SEC + _randint(rs, 60, 3600)  # seconds
        vals[F_IPO_RELEASE_QUALIFIER] = _IPO_QUAL[_randint(rs, 0, len(_IPO_QUAL))]
        vals[F_IPO_PRICE] = px
    elif tb == TY_J:
        vals[F_REF_PRICE] = px
        vals[F_UPPER_PRICE] = (m * 105 // 100) * 100
        vals[F_LOWER_PRICE] = (m * 95 // 100) * 100
        vals[F_EXTENSION] = _randint(rs, 0, 4)
    elif tb == TY_h:
        vals[F_MARKET_CODE] = _HALT_MARKET[_randint(rs, 0, len(_HALT_MARKET))]
        vals[F_HALT_ACTION] = _HALT_ACTION[_randint(rs, 0, len(_HALT_ACTION))]
    elif tb == TY_I:
        d = _IMB_DIR[_randint(rs, 0, len(_IMB_DIR))]
        vals[F_PAIRED_SHARES] = 100 * _randint(rs, 0, 20_000)
        vals[F_IMBALANCE_SHARES] = 0 if d == CH_N else 100 * _randint(rs, 1, 5_000)
        vals[F_IMBALANCE_DIRECTION] = d
        vals[F_FAR_PRICE] = max(1, m + _randint(rs, -20, 21)) * 100
        vals[F_NEAR_PRICE] = max(1, m + _randint(rs, -5, 6)) * 100
        vals[F_CURRENT_REF_PRICE] = px
        vals[F_CROSS_TYPE] = _NOII_CROSS[_randint(rs, 0, len(_NOII_CROSS))]
        vals[F_PRICE_VARIATION] = _PRICE_VAR[_randint(rs, 0, len(_PRICE_VAR))]
    elif tb == TY_N:
        vals[F_INTEREST_FLAG] = _RPII[_randint(rs, 0, len(_RPII))]
    elif tb == TY_O:
        vals[F_OPEN_ELIGIBILITY] = _YN[_randint(rs, 0, len(_YN))]
        vals[F_MIN_ALLOWABLE_PRICE] = (m * 80 // 100) * 100
        vals[F_MAX_ALLOWABLE_PRICE] = (m * 120 // 100) * 100
        vals[F_NEAR_EXEC_PRICE] = px
        vals[F_NEAR_EXEC_TIME] = t - _randint(rs, 0, 1_000_000)
        vals[F_LOWER_PRICE_COLLAR] = (m * 90 // 100) * 100
        vals[F_UPPER_PRICE_COLLAR] = (m * 110 // 100) * 100
    _emit(out, enc, vals, i, tb)


@numba.njit(_VOID(_RS, _T_OUT, _T_ENC, _I64A, _I64, _I64, _I64, _I64A, _I64A, _I64A, _I64, _I64),
            cache=True)
def _cross(rs, out, enc, vals, i, t, s, code, mid, trk, match, cross_type):
    """Message ``i``: the opening or closing cross of symbol ``s``."""
    trk[s] = (trk[s] + 1) & 0xFFFF
    _head(vals, s + 1, trk[s], t)
    vals[F_SHARES] = 100 * _randint(rs, 10, 50_000)
    vals[F_STOCK] = code[s]
    vals[F_CROSS_PRICE] = mid[s] * 100
    vals[F_MATCH_NUMBER] = match
    vals[F_CROSS_TYPE] = cross_type
    _emit(out, enc, vals, i, TY_Q)


@numba.njit(_VOID(_T_OUT, _T_ENC, _I64A, _I64, _I64, _I64), cache=True)
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
    next_ref = 1 + _randint(rs, 0, 1000)
    next_match = 1 + _randint(rs, 0, 1000)
    last_match = 0
    last_match_sym = 0
    i = 0
    t = _T_OPEN_MESSAGES

    # ---- start of day
    _system_event(out, enc, vals, i, t, CH_O)
    i += 1
    t += 100_000
    for s in range(ns):
        t += 1 + _randint(rs, 0, 3000)
        trk[s] += 1
        _head(vals, s + 1, trk[s], t)
        cat = _CATEGORY[_randint(rs, 0, len(_CATEGORY))]
        nasdaq = cat == CH_Q or cat == CH_G or cat == CH_S  # NASDAQ-listed tiers
        vals[F_STOCK] = code[s]
        vals[F_MARKET_CATEGORY] = cat
        vals[F_FINANCIAL_STATUS] = CH_N if nasdaq else CH_SPACE
        vals[F_ROUND_LOT_SIZE] = 100
        vals[F_ROUND_LOTS_ONLY] = CH_N
        vals[F_ISSUE_CLASSIFICATION] = _ISSUE_CLASS[_randint(rs, 0, len(_ISSUE_CLASS))]
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
        t += 1 + _randint(rs, 0, 3000)
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
        t += 1 + _randint(rs, 0, 2000)
        _cross(rs, out, enc, vals, i, t, s, code, mid, trk, next_match, CH_O)
        last_match, last_match_sym = next_match, s
        next_match += 1 + _randint(rs, 0, 3)
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
        if all_types and not forced and _u01(rs) < _P_EXTRA:
            tb = _EXTRA_TB[_randint(rs, 0, len(_EXTRA_TB))]
            _extra(rs, out, enc, vals, i, tb, t, code, mid, trk, cdf, guide, mpids, ctr,
                   last_match, last_match_sym)
            i += 1
            continue
        r = _u01(rs)
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
                                      or (n_live > live_target and _u01(rs) < 0.5)):
            ev = EV_D                       # keep the book near its target depth
        if ev == EV_A or ev == EV_F or ev == EV_P:
            s = _pick_symbol(rs, cdf, guide)
            _walk(rs, mid, s)
            trk[s] = (trk[s] + 1) & 0xFFFF
            _head(vals, s + 1, trk[s], t)
            side = _SIDES[_randint(rs, 0, len(_SIDES))]
            sh = 100 * _geom(rs, 0.3) if forced else _shares(rs)  # forced: X can be partial
            vals[F_SIDE] = side
            vals[F_SHARES] = sh
            vals[F_STOCK] = code[s]
            if ev == EV_P:
                # A hidden order executed: NASDAQ reports it with order reference 0, at the mid.
                vals[F_ORDER_REF] = 0
                vals[F_PRICE] = mid[s] * 100
                vals[F_MATCH_NUMBER] = next_match
                last_match, last_match_sym = next_match, s
                next_match += 1 + _randint(rs, 0, 3)
                tb = TY_P
            else:
                px = _limit_price(rs, mid[s], side == _SIDES[0])
                vals[F_ORDER_REF] = next_ref
                vals[F_PRICE] = px * 100
                if ev == EV_F:
                    vals[F_ATTRIBUTION] = mpids[_randint(rs, 0, len(mpids))]
                tb = TY_A if ev == EV_A else TY_F
                book[n_live * _O_W + _O_REF] = next_ref
                book[n_live * _O_W + _O_SYM] = s
                book[n_live * _O_W + _O_SIDE] = side
                book[n_live * _O_W + _O_SHARES] = sh
                book[n_live * _O_W + _O_PRICE] = px
                n_live += 1
                # References increase; NASDAQ's skip numbers (other books, hidden orders).
                next_ref += 1 + (_randint(rs, 1, 5) if _u01(rs) < 0.3 else 0)
            _encode(mbuf, mstart, mts, mtype, fields, row, count, tlen, vals, i, tb)
            i += 1
            continue
        # An event on a live order: mostly a recent one.
        if forced:
            k = n_live - 1
        elif _u01(rs) < _P_RECENT:
            k = n_live - 1 - min(n_live - 1, int(_expo(rs, _RECENT_MEAN)))
        else:
            k = _randint(rs, 0, n_live)
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
            next_ref += 1 + (_randint(rs, 1, 5) if _u01(rs) < 0.3 else 0)
        elif ev == EV_X:
            q = _randint(rs, 1, rem)        # partial: 1..rem-1
            vals[F_ORDER_REF] = book[k * _O_W + _O_REF]
            vals[F_CANCELLED_SHARES] = q
            tb = TY_X
            book[k * _O_W + _O_SHARES] = rem - q
        else:  # E or C: all of it most of the time, else part
            q = rem if _u01(rs) < 0.6 else _randint(rs, 1, rem + 1)
            vals[F_ORDER_REF] = book[k * _O_W + _O_REF]
            vals[F_EXECUTED_SHARES] = q
            vals[F_MATCH_NUMBER] = next_match
            if ev == EV_C:
                vals[F_PRINTABLE] = CH_Y if _u01(rs) < 0.9 else CH_N
                vals[F_EXECUTION_PRICE] = max(1, book[k * _O_W + _O_PRICE] + _randint(rs, -2, 3)) * 100
                tb = TY_C
            else:
                tb = TY_E
            last_match, last_match_sym = next_match, s
            next_match += 1 + _randint(rs, 0, 3)
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
    t += _SEC + _randint(rs, 0, _SEC)  # the market goes quiet before the close
    for s in range(ns):  # closing crosses
        t += 1 + _randint(rs, 0, 2000)
        _cross(rs, out, enc, vals, i, t, s, code, mid, trk, next_match, CH_C)
        next_match += 1 + _randint(rs, 0, 3)
        i += 1
    t += 1_000_000
    _system_event(out, enc, vals, i, t, CH_M)
    i += 1
    t += 5 * _SEC
    _system_event(out, enc, vals, i, t, CH_E)
    i += 1
    t += _SEC
    _system_event(out, enc, vals, i, t, CH_C)
    i += 1
    return i


# ------------------------------------------------------------------ kernels: packets


@numba.njit(cache=True)
def _packetize(mstart, mts, max_per, max_payload, seed, p_first, p_count, p_send):
    """Group consecutive messages into data packets; returns how many."""
    rs = np.full(1, seed, np.uint64)
    n = len(mts)
    i = 0
    k = 0
    while i < n:
        target = min(max_per, _geom(rs, _P_PKT))
        first = i
        size = MOLD_HEADER_SIZE
        c = 0
        while i < n and c < target:
            blk = mstart[i + 1] - mstart[i]
            if size + blk > max_payload:
                break
            if c > 0 and mts[i] - mts[first] > _BATCH_WINDOW:
                break  # the publisher did not wait: the packet already left
            size += blk
            i += 1
            c += 1
        p_first[k] = first
        p_count[k] = c
        p_send[k] = mts[i - 1] + _LATENCY_MIN + int(_expo(rs, _LATENCY_MEAN))
        k += 1
    return k


@numba.njit(cache=True)
def _heartbeat_count(p_send, hb):
    n = 0
    for k in range(1, len(p_send)):
        d = p_send[k] - p_send[k - 1]
        if d > hb:
            n += (d - 1) // hb
    return n


@numba.njit(cache=True)
def _schedule(d_first, d_count, d_send, n_msgs, hb, mstart, k_kind, k_first, k_count, k_seq,
              k_send, k_plen):
    """The publisher's packet stream: data packets, heartbeats in the silences, end of session."""
    k = 0
    for d in range(len(d_first)):
        if d > 0:
            t = d_send[d - 1] + hb
            while t < d_send[d]:  # a heartbeat carries the next sequence number expected
                k_kind[k] = 1
                k_first[k] = d_first[d]
                k_count[k] = MOLD_HEARTBEAT
                k_seq[k] = d_first[d] + 1
                k_send[k] = t
                k_plen[k] = MOLD_HEADER_SIZE
                k += 1
                t += hb
        first = d_first[d]
        c = d_count[d]
        k_kind[k] = 0
        k_first[k] = first
        k_count[k] = c
        k_seq[k] = first + 1
        k_send[k] = d_send[d]
        k_plen[k] = MOLD_HEADER_SIZE + mstart[first + c] - mstart[first]
        k += 1
    k_kind[k] = 2
    k_first[k] = n_msgs
    k_count[k] = MOLD_END_OF_SESSION
    k_seq[k] = n_msgs + 1
    k_send[k] = d_send[len(d_send) - 1] + _EOS_DELAY
    k_plen[k] = MOLD_HEADER_SIZE
    return k + 1


@numba.njit(cache=True)
def _capture_order(k_kind, k_send, k_plen, eth_len, gap_rate, ab, seed, drop, f_pkt, f_copy, f_ts):
    """Which frames the capture holds, in capture order, and when each arrived.

    Each line (A, B) is a 10 GbE link: a frame cannot start before the previous one
    ended.  B lags A.  Lost data packets are lost on both lines.  The capture port
    merges both lines, timestamps strictly increasing.
    """
    rs = np.full(1, seed, np.uint64)
    n = len(k_kind)
    first_data = True
    for k in range(n):
        drop[k] = False
        if k_kind[k] == 0:
            if not first_data and gap_rate > 0.0 and _u01(rs) < gap_rate:
                drop[k] = True
            first_data = False
    ta = np.empty(n, np.int64)
    tb = np.empty(n, np.int64)
    wire_prev = 0
    for k in range(n):
        flen = max(ETH_MIN_FRAME, eth_len + IPV4_HEADER + UDP_HEADER + k_plen[k])
        wire = (flen + 24) * 4 // 5   # preamble 8 + FCS 4 + gap 12 bytes, 0.8 ns/byte
        if k == 0:
            ta[k] = k_send[k]
            tb[k] = k_send[k] + _B_DELAY_MIN + _randint(rs, 0, _B_DELAY_SPAN)
        else:
            ta[k] = max(k_send[k], ta[k - 1] + wire_prev)
            tb[k] = max(k_send[k] + _B_DELAY_MIN + _randint(rs, 0, _B_DELAY_SPAN),
                        tb[k - 1] + wire_prev)
        wire_prev = wire
    m = 0
    last = -1
    ia = 0
    ib = 0
    while ia < n or (ab and ib < n):
        if ia < n and drop[ia]:
            ia += 1
            continue
        if ab and ib < n and drop[ib]:
            ib += 1
            continue
        use_a = ia < n and (not ab or ib >= n or ta[ia] <= tb[ib])
        if use_a:
            f_pkt[m] = ia
            f_copy[m] = 0
            t = ta[ia]
            ia += 1
        else:
            f_pkt[m] = ib
            f_copy[m] = 1
            t = tb[ib]
            ib += 1
        t = max(t, last + 1)
        f_ts[m] = t
        last = t
        m += 1
    return m


@numba.njit(cache=True, inline="always")
def _be16(buf, pos, v):
    buf[pos] = (v >> 8) & 0xFF
    buf[pos + 1] = v & 0xFF


@numba.njit(cache=True)
def _frames(img, f_pkt, f_copy, f_ts, f_off, f_len, start_ns, k_first, k_count, k_seq, k_plen,
            mbuf, mstart, hdr, hsum, eth_len, ip_id0, mold):
    """Write each frame, after its pcap record header, into the capture image.

    ``hdr[c * len(hdr) // 2:]`` is feed copy ``c``'s frame header up to the MoldUDP64 sequence number
    with the per-packet fields zero; ``hsum[c]`` the ones'-complement sum of its IPv4
    header words, so a frame's checksum only adds its total length and id.
    """
    nh = len(hdr) // 2
    for j in range(len(f_pkt)):
        k = f_pkt[j]
        c = f_copy[j]
        r = f_off[j] - _PCAP_RECORD
        flen = f_len[j]
        ts = start_ns + f_ts[j]
        # pcap record header, little-endian: seconds, nanoseconds, captured and wire length
        sec = ts // 1_000_000_000
        nsec = ts - sec * 1_000_000_000
        for bb in range(4):
            img[r + bb] = (sec >> (8 * bb)) & 0xFF
            img[r + 4 + bb] = (nsec >> (8 * bb)) & 0xFF
            img[r + 8 + bb] = (flen >> (8 * bb)) & 0xFF
            img[r + 12 + bb] = (flen >> (8 * bb)) & 0xFF
        p = f_off[j]
        for q in range(nh):
            img[p + q] = hdr[c * nh + q]
        ip = p + eth_len
        plen = k_plen[k]
        total = IPV4_HEADER + UDP_HEADER + plen
        ip_id = (ip_id0[c] + k) & 0xFFFF          # one id per packet sent, lost ones too
        _be16(img, ip + _IP_TOTAL_LENGTH, total)
        _be16(img, ip + _IP_ID, ip_id)
        csum = hsum[c] + total + ip_id
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = (csum & 0xFFFF) + (csum >> 16)
        _be16(img, ip + _IP_CHECKSUM, (~csum) & 0xFFFF)
        _be16(img, ip + IPV4_HEADER + _UDP_LENGTH, UDP_HEADER + plen)
        m = ip + IPV4_HEADER + UDP_HEADER
        _put(img, m + mold[0], k_seq[k], mold[2])
        _put(img, m + mold[1], k_count[k], mold[3])
        w = m + MOLD_HEADER_SIZE
        if k_count[k] != MOLD_HEARTBEAT and k_count[k] != MOLD_END_OF_SESSION:
            a = mstart[k_first[k]]
            ln = mstart[k_first[k] + k_count[k]] - a
            for q in range(ln):                 # the blocks are already laid out
                img[w + q] = mbuf[a + q]
            w += ln
        for q in range(w, p + flen):  # Ethernet padding
            img[q] = 0


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


def _ethernet(dst_ip: int, src_mac: bytes, vlans: tuple[int, ...]) -> bytes:
    # An IPv4 multicast group maps to MAC 01:00:5e + its low 23 bits.
    dst_mac = bytes([0x01, 0x00, 0x5E, (dst_ip >> 16) & 0x7F, (dst_ip >> 8) & 0xFF, dst_ip & 0xFF])
    hdr = dst_mac + src_mac
    # Two tags = QinQ: the outer one is the service tag (0x88A8), the inner a C-tag (0x8100).
    tpids = (ETHERTYPE_VLAN[0],) if len(vlans) == 1 else (ETHERTYPE_VLAN[1], ETHERTYPE_VLAN[0])
    for tpid, vid in zip(tpids, vlans):
        hdr += struct.pack(">HH", tpid, vid)
    return hdr + struct.pack(">H", ETHERTYPE_IPV4)


def _frame_header(cfg: GenConfig, copy: int) -> tuple[bytes, int]:
    """Feed copy ``copy``'s frame header up to the MoldUDP64 sequence number, with total
    length, id, checksum and UDP length zero, and the ones'-complement sum of its IPv4 words."""
    dst = cfg._group("dst_ip" if copy == 0 else "dst_ip_b")
    eth = _ethernet(dst, _SRC_MAC[copy], cfg._vlans())
    ip = struct.pack(">BBHHHBBHII", 0x45, 0, 0, 0, _IP_DF, _TTL, IP_PROTO_UDP, 0, _SRC_IP[copy], dst)
    udp = struct.pack(">HHHH", _SRC_PORT[copy], cfg.port if copy == 0 else cfg.port_b, 0, 0)
    session = bytes(cfg.session)
    mold = bytearray(_MOLD["sequence"].offset)
    mold[_MOLD["session"].offset:_MOLD["session"].offset + len(session)] = session
    return eth + ip + udp + bytes(mold), sum(struct.unpack(">10H", ip))


def _pcap_header() -> bytes:
    """The classic pcap global header write_pcap writes: nanosecond, v2.4, Ethernet."""
    return struct.pack("<IHHiIII", _PCAP_MAGIC_NS, 2, 4, 0, 0, _PCAP_SNAPLEN, _PCAP_LINKTYPE_ETHERNET)


_PCAP_HEADER_SIZE = len(_pcap_header())


@dataclass
class _Plan:
    """Everything the frames are written from; frames ``a..b`` can be written alone."""

    cfg: GenConfig
    stats: GenStats
    mbuf: np.ndarray       # message blocks, contiguous per packet
    mstart: np.ndarray     # message i's block at mbuf[mstart[i]:mstart[i + 1]]
    k_first: np.ndarray    # per packet: first message, count field, sequence, payload length
    k_count: np.ndarray
    k_seq: np.ndarray
    k_plen: np.ndarray
    f_pkt: np.ndarray      # per frame, in capture order: packet, feed copy, capture time
    f_copy: np.ndarray
    f_ts: np.ndarray
    f_len: np.ndarray      # frame length
    f_off: np.ndarray      # offset of the frame in the pcap file (after its record header)
    hdr: np.ndarray        # the A then the B frame header template (see _frame_header)
    hsum: np.ndarray       # their IPv4 header word sums
    eth_len: int
    ip_id0: np.ndarray

    def render(self, out: np.ndarray, a: int, b: int, base: int) -> None:
        """Write frames ``a..b`` with their record headers into ``out`` (file bytes from ``base`` on)."""
        _frames(out, self.f_pkt[a:b], self.f_copy[a:b], self.f_ts[a:b], self.f_off[a:b] - base,
                self.f_len[a:b], np.int64(self.cfg.start_ns), self.k_first, self.k_count, self.k_seq,
                self.k_plen, self.mbuf, self.mstart, self.hdr, self.hsum, self.eth_len, self.ip_id0,
                _MOLD_OFF)


def _plan(cfg: GenConfig) -> _Plan:
    """Simulate the day, pack it into packets and lay out the capture (no frame written yet)."""
    # Independent streams per stage, so that e.g. gap_rate does not change the messages.
    seeds = [np.uint64(x) for x in np.random.SeedSequence(cfg.seed).generate_state(5, np.uint64)]
    rng = np.random.default_rng(int(seeds[0]))
    ns = cfg.symbols
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

    # ---- the messages
    n = cfg.messages
    n_body = n - min_messages(ns)   # the body includes the all_types sprinkles
    # Above the target, adds turn into deletes half the time, so the book stays well
    # below twice the target; the cap is a hard bound the kernel also enforces.
    live_target = _LIVE_PER_SYMBOL * ns + 100
    live_cap = min(n_body + 1, 2 * live_target)
    # Sized for the longest message; pages never written never become resident.
    mbuf = np.empty(n * (_BLOCK_LEN + _MAX_MESSAGE) + 8, np.uint8)
    mstart = np.zeros(n + 1, np.int64)
    mts = np.empty(n, np.int64)
    mtype = np.empty(n, np.uint8)
    written = _simulate(n_body, code, mid, tier1, cdf, guide, mpids, bool(cfg.all_types),
                        cfg.heartbeat_interval_ns, seeds[1], live_cap, live_target,
                        _ENC, (mbuf, mstart, mts, mtype))
    assert written == n, (written, n)
    per = np.bincount(mtype, minlength=256)
    del mtype

    # ---- MoldUDP64 packets: data, heartbeats in the silences, end of session
    (ha, sa), (hb, sb) = _frame_header(cfg, 0), _frame_header(cfg, 1)
    eth_len = len(ha) - IPV4_HEADER - UDP_HEADER - _MOLD["sequence"].offset
    max_payload = cfg.mtu - IPV4_HEADER - UDP_HEADER
    d_first, d_count, d_send = (np.empty(n, np.int64) for _ in range(3))
    nd = _packetize(mstart, mts, cfg.max_messages_per_packet, max_payload, seeds[2],
                    d_first, d_count, d_send)
    del mts
    d_first, d_count, d_send = d_first[:nd].copy(), d_count[:nd].copy(), d_send[:nd].copy()
    nk = nd + _heartbeat_count(d_send, cfg.heartbeat_interval_ns) + 1
    k_kind, k_first, k_count, k_seq, k_send, k_plen = (np.empty(nk, np.int64) for _ in range(6))
    got = _schedule(d_first, d_count, d_send, n, cfg.heartbeat_interval_ns, mstart,
                    k_kind, k_first, k_count, k_seq, k_send, k_plen)
    assert got == nk, (got, nk)
    del d_first, d_count, d_send

    # ---- which frames the capture holds, and when
    copies = 2 if cfg.ab else 1
    drop = np.empty(nk, np.bool_)
    f_pkt, f_copy, f_ts = (np.empty(copies * nk, np.int64) for _ in range(3))
    nf = _capture_order(k_kind, k_send, k_plen, eth_len, float(cfg.gap_rate), bool(cfg.ab), seeds[3],
                        drop, f_pkt, f_copy, f_ts)
    f_pkt, f_copy, f_ts = f_pkt[:nf], f_copy[:nf], f_ts[:nf]

    # ---- the pcap file's layout: global header, then (record header, frame) per frame
    f_len = np.maximum(ETH_MIN_FRAME, eth_len + IPV4_HEADER + UDP_HEADER + k_plen[f_pkt])
    f_off = _PCAP_HEADER_SIZE + _PCAP_RECORD * np.arange(1, nf + 1, dtype=np.int64)
    if nf:
        f_off[1:] += np.cumsum(f_len)[:-1]
    total = _PCAP_HEADER_SIZE + _PCAP_RECORD * nf + int(f_len.sum())

    lost = drop & (k_kind == 0)
    runs = int(lost[0]) + int(np.count_nonzero(lost[1:] & ~lost[:-1]))
    stats = GenStats(
        messages=n, packets=nk, heartbeats=int(np.count_nonzero(k_kind == 1)), frames=nf,
        bytes=total, per_type={m.code: int(per[m.type_byte]) for m in MESSAGES if per[m.type_byte]},
        gaps=runs, gap_packets=int(lost.sum()), gap_messages=int(k_count[lost].sum()))
    return _Plan(cfg, stats, mbuf, mstart, k_first, k_count, k_seq, k_plen, f_pkt, f_copy, f_ts,
                 f_len, f_off, np.frombuffer(ha + hb, np.uint8),
                 np.array([sa, sb], np.int64), eth_len,
                 np.array([int(seeds[4]) & 0xFFFF, (int(seeds[4]) >> 16) & 0xFFFF], np.int64))


def generate_with_stats(config: GenConfig) -> tuple[FrameBatch, GenStats]:
    """Generate the feed in memory.

    Returns
    -------
    batch : FrameBatch
        The capture's frames; ``batch.buf`` is the complete classic pcap image
        (nanosecond timestamps, Ethernet), frames pointing into it.
    stats : GenStats
        What the capture holds.
    """
    plan = _plan(config)
    img = np.empty(plan.stats.bytes, np.uint8)
    img[:_PCAP_HEADER_SIZE] = np.frombuffer(_pcap_header(), np.uint8)
    plan.render(img, 0, plan.stats.frames, 0)
    batch = FrameBatch(img, plan.f_off, plan.f_len,
                       (np.int64(config.start_ns) + plan.f_ts).astype(np.uint64),
                       np.zeros(plan.stats.frames, np.bool_))
    return batch, plan.stats


def generate(config: GenConfig) -> FrameBatch:
    """Generate the feed in memory (see :func:`generate_with_stats`)."""
    return generate_with_stats(config)[0]


#: generate_to_file writes the capture in pieces of about this many bytes.
_FILE_CHUNK = 64 << 20


def generate_to_file(path: str | os.PathLike, config: GenConfig) -> GenStats:
    """Generate the feed and write it as a classic nanosecond pcap.

    The bytes are those :func:`wiretick.host.capture.write_pcap` writes for
    :func:`generate`'s batch (tested), written in pieces as they are laid out, so
    the capture is never held whole in memory.  Like ``write_pcap``, the file
    appears under its name only once complete.

    Returns
    -------
    GenStats
        What the capture holds.
    """
    plan = _plan(config)
    nf = plan.stats.frames
    ends = plan.f_off + plan.f_len   # file offset just past each frame
    tmp = Path(str(path) + ".partial")
    try:
        with open(tmp, "wb") as fh:
            fh.write(_pcap_header())
            # One buffer, reused: a fresh one per piece would be page-faulted in anew.
            buf = np.empty(0, np.uint8)
            a, base = 0, _PCAP_HEADER_SIZE
            while a < nf:
                # Frames a..b fill about one chunk (at least one frame).
                b = max(a + 1, int(np.searchsorted(ends, base + _FILE_CHUNK, side="right")))
                size = int(ends[b - 1]) - base
                if size > len(buf):
                    buf = np.empty(size, np.uint8)
                plan.render(buf, a, b, base)
                buf[:size].tofile(fh)
                a, base = b, int(ends[b - 1])
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return plan.stats
