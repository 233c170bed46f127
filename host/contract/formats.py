"""The one description of every wire format and of the normalized tick.

Everything else derives from the tables in this module: the numpy tick dtype
(:mod:`wiretick.host.tick`), the Amaranth ``data.StructLayout`` of the tick
(:mod:`wiretick.hdl.tick`), the reference decoder's field extraction
(:mod:`wiretick.host.decode`), the generator's message encoder and the table
in ``docs/tick.md``.  This module is plain Python data with no dependencies so
that both sides can import it.

Wire integers are big-endian; the tick is little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Field", "MessageType", "MESSAGES", "MESSAGE_BY_CODE", "MIN_MESSAGE_LENGTH", "COMMON_FIELDS",
    "TickField", "TICK_FIELDS", "TICK_SIZE", "TICK_FIELD_BY_NAME",
    "Copy", "TICK_MAP", "Flag", "FLAG_DOCS", "Event",
    "MOLD_HEADER_SIZE", "MOLD_SESSION_SIZE", "MOLD_HEARTBEAT", "MOLD_END_OF_SESSION",
    "MOLD_FIELDS", "QTY_SATURATED", "Counter", "COUNTERS", "COUNTER_INDEX",
    "SATURATE_RULES", "PRINTABLE_RULES", "ETHERTYPE_IPV4", "ETHERTYPE_VLAN", "MAX_VLAN_TAGS", "IP_PROTO_UDP",
]

# --------------------------------------------------------------------------- ITCH 5.0

Kind = Literal["u", "c", "s", "price4", "price8"]


@dataclass(frozen=True)
class Field:
    """One field of an ITCH message: ``name`` at byte ``offset``, ``size`` bytes.

    ``kind`` is ``u`` (big-endian unsigned), ``price4``/``price8`` (unsigned
    fixed point with 4/8 implied decimals), ``c`` (one ASCII byte) or ``s``
    (ASCII text, space padded).
    """

    name: str
    offset: int
    size: int
    kind: Kind


@dataclass(frozen=True)
class MessageType:
    """One ITCH 5.0 message type: its type byte, name, fixed length and fields."""

    code: str
    name: str
    length: int
    fields: tuple[Field, ...]

    @property
    def type_byte(self) -> int:
        return ord(self.code)

    def field_at(self, offset: int) -> Field:
        for f in self.fields:
            if f.offset == offset:
                return f
        raise KeyError(f"ITCH message {self.code!r} has no field at byte {offset}")

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"ITCH message {self.code!r} has no field {name!r}")


COMMON_FIELDS = (
    Field("message_type", 0, 1, "c"),
    Field("stock_locate", 1, 2, "u"),
    Field("tracking_number", 3, 2, "u"),
    Field("timestamp", 5, 6, "u"),
)

_SIZES = {"u32": ("u", 4), "u64": ("u", 8), "c": ("c", 1), "price4": ("price4", 4),
          "price8": ("price8", 8), "8s": ("s", 8), "4s": ("s", 4), "2s": ("s", 2)}


def _msg(code: str, name: str, length: int, spec: str) -> MessageType:
    # spec mirrors shared/docs/itch50.md: "name@offset:type, ..."
    fields = list(COMMON_FIELDS)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        fname, rest = item.split("@")
        off, typ = rest.split(":")
        kind, size = _SIZES[typ]
        fields.append(Field(fname, int(off), size, kind))  # type: ignore[arg-type]
    end = max(f.offset + f.size for f in fields)
    if end != length:
        raise AssertionError(f"ITCH {code}: fields end at {end}, length is {length}")
    return MessageType(code, name, length, tuple(fields))


MESSAGES: tuple[MessageType, ...] = (
    _msg("S", "System Event", 12, "event_code@11:c"),
    _msg("R", "Stock Directory", 39,
         "stock@11:8s, market_category@19:c, financial_status@20:c, round_lot_size@21:u32,"
         "round_lots_only@25:c, issue_classification@26:c, issue_subtype@27:2s,"
         "authenticity@29:c, short_sale_threshold@30:c, ipo_flag@31:c,"
         "luld_ref_price_tier@32:c, etp_flag@33:c, etp_leverage_factor@34:u32,"
         "inverse_indicator@38:c"),
    _msg("H", "Stock Trading Action", 25,
         "stock@11:8s, trading_state@19:c, reserved@20:c, reason@21:4s"),
    _msg("Y", "Reg SHO Restriction", 20, "stock@11:8s, reg_sho_action@19:c"),
    _msg("L", "Market Participant Position", 26,
         "mpid@11:4s, stock@15:8s, primary_market_maker@23:c, market_maker_mode@24:c,"
         "market_participant_state@25:c"),
    _msg("V", "MWCB Decline Level", 35, "level1@11:price8, level2@19:price8, level3@27:price8"),
    _msg("W", "MWCB Status", 12, "breached_level@11:c"),
    _msg("K", "IPO Quoting Period Update", 28,
         "stock@11:8s, ipo_release_time@19:u32, ipo_release_qualifier@23:c, ipo_price@24:price4"),
    _msg("J", "LULD Auction Collar", 35,
         "stock@11:8s, ref_price@19:price4, upper_price@23:price4, lower_price@27:price4,"
         "extension@31:u32"),
    _msg("h", "Operational Halt", 21, "stock@11:8s, market_code@19:c, halt_action@20:c"),
    _msg("A", "Add Order (no MPID)", 36,
         "order_ref@11:u64, side@19:c, shares@20:u32, stock@24:8s, price@32:price4"),
    _msg("F", "Add Order (MPID)", 40,
         "order_ref@11:u64, side@19:c, shares@20:u32, stock@24:8s, price@32:price4,"
         "attribution@36:4s"),
    _msg("E", "Order Executed", 31, "order_ref@11:u64, executed_shares@19:u32, match_number@23:u64"),
    _msg("C", "Order Executed With Price", 36,
         "order_ref@11:u64, executed_shares@19:u32, match_number@23:u64, printable@31:c,"
         "execution_price@32:price4"),
    _msg("X", "Order Cancel", 23, "order_ref@11:u64, cancelled_shares@19:u32"),
    _msg("D", "Order Delete", 19, "order_ref@11:u64"),
    _msg("U", "Order Replace", 35,
         "original_order_ref@11:u64, new_order_ref@19:u64, shares@27:u32, price@31:price4"),
    _msg("P", "Trade (non-cross)", 44,
         "order_ref@11:u64, side@19:c, shares@20:u32, stock@24:8s, price@32:price4,"
         "match_number@36:u64"),
    _msg("Q", "Cross Trade", 40,
         "shares@11:u64, stock@19:8s, cross_price@27:price4, match_number@31:u64, cross_type@39:c"),
    _msg("B", "Broken Trade", 19, "match_number@11:u64"),
    _msg("I", "NOII", 50,
         "paired_shares@11:u64, imbalance_shares@19:u64, imbalance_direction@27:c, stock@28:8s,"
         "far_price@36:price4, near_price@40:price4, current_ref_price@44:price4,"
         "cross_type@48:c, price_variation@49:c"),
    _msg("N", "Retail Interest (RPII)", 20, "stock@11:8s, interest_flag@19:c"),
    _msg("O", "Direct Listing with Capital Raise", 48,
         "stock@11:8s, open_eligibility@19:c, min_allowable_price@20:price4,"
         "max_allowable_price@24:price4, near_exec_price@28:price4, near_exec_time@32:u64,"
         "lower_price_collar@40:price4, upper_price_collar@44:price4"),
)

MESSAGE_BY_CODE: dict[str, MessageType] = {m.code: m for m in MESSAGES}

#: The shortest ITCH 5.0 message (bytes, type byte included).  A block of an unknown
#: type shorter than this is malformed (``bad_block_length``), so every block the
#: walk goes past is at least ``2 + MIN_MESSAGE_LENGTH`` bytes long: a 64-bit
#: datapath sees at most one block start a beat (docs/reference-model.md).
MIN_MESSAGE_LENGTH = min(m.length for m in MESSAGES)

# --------------------------------------------------------------------------- MoldUDP64

MOLD_SESSION_SIZE = 10
MOLD_HEADER_SIZE = 20
MOLD_HEARTBEAT = 0
MOLD_END_OF_SESSION = 0xFFFF
MOLD_FIELDS = (
    Field("session", 0, 10, "s"),
    Field("sequence", 10, 8, "u"),
    Field("count", 18, 2, "u"),
)

# --------------------------------------------------------------------------- the tick


@dataclass(frozen=True)
class TickField:
    """One field of the 64-byte normalized tick: little-endian unsigned ``size`` bytes."""

    name: str
    offset: int
    size: int
    doc: str


# Ordered by offset; every field is naturally aligned.  The order puts the
# 64-bit words first so that the record needs no padding.
TICK_FIELDS: tuple[TickField, ...] = (
    TickField("seq", 0, 8, "position in the tick stream: 1-based, +1 per tick, never reused"),
    TickField("ts_rx", 8, 8, "receive time, ns (device clock in hardware, capture time in software)"),
    TickField("feed_seq", 16, 8, "MoldUDP64 sequence number of the message"),
    TickField("ts_exch", 24, 8, "ITCH timestamp, ns since midnight"),
    TickField("order_ref", 32, 8, "order reference number (see the per-type map)"),
    TickField("ref2", 40, 8, "second reference: match number, new order reference, ..."),
    TickField("price", 48, 4, "Price(4) as on the wire"),
    TickField("shares", 52, 4, "shares / quantity"),
    TickField("locate", 56, 2, "ITCH stock locate"),
    TickField("tracking", 58, 2, "ITCH tracking number"),
    TickField("flags", 60, 2, "bit flags, see Flag"),
    TickField("msg_type", 62, 1, "ITCH type byte; 0 for a device event (kind in flags)"),
    TickField("side", 63, 1, "ASCII B/S; a one-byte code for other types; 0 where none"),
)
TICK_SIZE = 64
TICK_FIELD_BY_NAME: dict[str, TickField] = {f.name: f for f in TICK_FIELDS}


class Flag:
    """Bits of the tick's ``flags`` field; what each means is :data:`FLAG_DOCS`."""

    PRINTABLE = 0x0001
    SATURATED = 0x0002
    EVENT_GAP = 0x0100
    EVENT_ABORT = 0x0200
    EVENT_DROP = 0x0400
    #: Reserved: bits 12..15 carry the ring's lap tag (docs/ring.md).  The parser
    #: leaves them 0, the ring writer overwrites them, so on a ring view ``flags``
    #: is ``parser flags | lap tag << 12``: never assign a flag here.
    LAP_TAG = 0xF000
    #: The parser's bits: compare ``flags & Flag.MASK`` (never ``flags`` itself) on a ring view.
    MASK = 0xFFFF & ~LAP_TAG


#: Every bit of :class:`Flag` and what it means (docs/tick.md's table).
FLAG_DOCS: dict[str, str] = {
    "PRINTABLE": "C: printable = 'Y' (count the execution in volume)",
    "SATURATED": "Q: the 64-bit share count was clipped to 2^32-1",
    "EVENT_GAP": "event: `feed_seq` = first missing sequence number, `ref2` = how many",
    "EVENT_ABORT": "event: the MAC flagged the frame bad: discard ticks `seq` in `order_ref`..`ref2`",
    "EVENT_DROP": "event: `ref2` ticks were dropped (DMA overflow) before this one",
    "LAP_TAG": "reserved: the ring's lap tag (bits 12..15, docs/ring.md); the parser leaves them 0",
}


class Event:
    """``msg_type`` of a device event tick."""

    TYPE = 0


QTY_SATURATED = 0xFFFF_FFFF

# ----------------------------------------------------------------- message -> tick map

CopyKind = Literal["be", "raw"]


@dataclass(frozen=True)
class Copy:
    """Copy ``size`` bytes of a message at ``src`` into tick bytes ``[dst, dst+size)``.

    ``be`` converts a big-endian wire integer into the little-endian tick
    (the tick bytes are the wire bytes reversed); ``raw`` copies the bytes as
    they are, so ASCII text reads back with ``ticks[name].view("S<n>")``.  A
    ``be`` copy narrower than its destination field is zero-extended.  The
    destination is a byte range, not a field, so one wire value may span two
    adjacent tick fields (``V``'s third level fills price and shares).
    """

    src: int
    size: int
    dst: int
    kind: CopyKind = "be"


def _to(field: str, src: int, size: int, kind: CopyKind = "be", sub: int = 0) -> Copy:
    return Copy(src, size, TICK_FIELD_BY_NAME[field].offset + sub, kind)


_COMMON_COPIES = (
    _to("msg_type", 0, 1),
    _to("locate", 1, 2),
    _to("tracking", 3, 2),
    _to("ts_exch", 5, 6),
)

# Every type's own fields, beyond the common ones.  Order-book types follow the
# tick contract; for the others the most useful content that fits is carried.
# Text (symbols, codes) is copied raw; a one-byte code goes into ``side``.
_TYPE_COPIES: dict[str, tuple[Copy, ...]] = {
    "S": (_to("side", 11, 1),),
    "R": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1), _to("shares", 21, 4),
          _to("order_ref", 25, 8, "raw"), _to("price", 34, 4)),
    "H": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1), _to("price", 21, 4, "raw")),
    "Y": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1)),
    "L": (_to("ref2", 15, 8, "raw"), _to("price", 11, 4, "raw"), _to("order_ref", 23, 3, "raw")),
    "V": (_to("order_ref", 11, 8), _to("ref2", 19, 8), _to("price", 27, 8)),
    "W": (_to("side", 11, 1),),
    "K": (_to("ref2", 11, 8, "raw"), _to("shares", 19, 4), _to("side", 23, 1), _to("price", 24, 4)),
    "J": (_to("ref2", 11, 8, "raw"), _to("price", 19, 4), _to("order_ref", 23, 4),
          _to("order_ref", 27, 4, sub=4), _to("shares", 31, 4)),
    "h": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1), _to("order_ref", 20, 1, "raw")),
    "A": (_to("order_ref", 11, 8), _to("side", 19, 1), _to("shares", 20, 4), _to("price", 32, 4)),
    "F": (_to("order_ref", 11, 8), _to("side", 19, 1), _to("shares", 20, 4), _to("price", 32, 4),
          _to("ref2", 36, 4, "raw")),
    "E": (_to("order_ref", 11, 8), _to("shares", 19, 4), _to("ref2", 23, 8)),
    "C": (_to("order_ref", 11, 8), _to("shares", 19, 4), _to("ref2", 23, 8), _to("price", 32, 4)),
    "X": (_to("order_ref", 11, 8), _to("shares", 19, 4)),
    "D": (_to("order_ref", 11, 8),),
    "U": (_to("order_ref", 11, 8), _to("ref2", 19, 8), _to("shares", 27, 4), _to("price", 31, 4)),
    "P": (_to("order_ref", 11, 8), _to("side", 19, 1), _to("shares", 20, 4), _to("price", 32, 4),
          _to("ref2", 36, 8)),
    # Q's shares are u64 on the wire: saturated into the u32 (see QTY_RULES).
    "Q": (_to("price", 27, 4), _to("ref2", 31, 8), _to("side", 39, 1)),
    "B": (_to("ref2", 11, 8),),
    "I": (_to("order_ref", 11, 8), _to("ref2", 19, 8), _to("side", 27, 1), _to("price", 44, 4),
          _to("shares", 40, 4)),
    "N": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1)),
    "O": (_to("ref2", 11, 8, "raw"), _to("side", 19, 1), _to("price", 28, 4),
          _to("order_ref", 32, 8)),
}

#: The complete map: for every type code, the byte copies that build its tick.
TICK_MAP: dict[str, tuple[Copy, ...]] = {c: _COMMON_COPIES + _TYPE_COPIES[c] for c in MESSAGE_BY_CODE}

#: Rules that are not byte copies, each (type, source offset, meaning):
#:  - ("Q", 11, "saturate"): shares = min(u64 at 11, QTY_SATURATED), Flag.SATURATED when clipped.
#:  - ("C", 31, "printable"): Flag.PRINTABLE when the byte at 31 is 'Y'.
SATURATE_RULES = (("Q", 11),)
PRINTABLE_RULES = (("C", 31),)


def _check_map() -> None:
    for code, copies in TICK_MAP.items():
        msg = MESSAGE_BY_CODE[code]
        used = bytearray(TICK_SIZE)
        for c in copies:
            if c.src + c.size > msg.length:
                raise AssertionError(f"{code}: copy from {c.src}+{c.size} past length {msg.length}")
            for b in range(c.dst, c.dst + c.size):
                if used[b]:
                    raise AssertionError(f"{code}: tick byte {b} written twice")
                used[b] = 1
    assert sum(f.size for f in TICK_FIELDS) == TICK_SIZE
    for f in TICK_FIELDS:
        assert f.offset % f.size == 0, f"{f.name} not naturally aligned"
    bits = {n for n in vars(Flag) if n.isupper() and n != "MASK"}
    assert set(FLAG_DOCS) == bits, f"FLAG_DOCS must describe exactly the bits of Flag: {sorted(bits ^ set(FLAG_DOCS))}"
    assert not any(getattr(Flag, n) & Flag.LAP_TAG for n in bits - {"LAP_TAG"}), "a flag in the lap tag's bits"


_check_map()

# ------------------------------------------------------------------------- counters


@dataclass(frozen=True)
class Counter:
    """One feed-handler counter, kept identically by the reference model and the gateware."""

    name: str
    doc: str


#: Every counter, in register order.  ``drop_*`` count frames dropped whole
#: (no ticks) for that reason; ``bad_*`` count packets cut short at a bad
#: message block (earlier messages were delivered).  See docs/reference-model.md.
COUNTERS: tuple[Counter, ...] = (
    Counter("frames", "frames received"),
    Counter("drop_not_ipv4", "not IPv4: another EtherType, more than two VLAN tags, IP version != 4 or IHL < 5"),
    Counter("drop_truncated", "frame ended before its Ethernet, IPv4, UDP or MoldUDP64 header did"),
    Counter("drop_ip_checksum", "bad IPv4 header checksum (when checking is on)"),
    Counter("drop_fragment", "IPv4 fragment (MF set or fragment offset != 0)"),
    Counter("drop_not_udp", "IPv4 protocol is not UDP"),
    Counter("drop_ip_dst", "destination address is not the configured one"),
    Counter("drop_udp_length", "UDP length < 8, past the IPv4 payload, or IPv4 total length too small"),
    Counter("drop_port", "destination port is not the configured one"),
    Counter("drop_mold_short", "UDP payload shorter than the 20-byte MoldUDP64 header"),
    Counter("bad_fcs", "frames the MAC (or the capture) flagged bad at their end"),
    Counter("packets", "MoldUDP64 packets whose headers passed every check"),
    Counter("heartbeats", "MoldUDP64 heartbeats (count 0)"),
    Counter("end_of_session", "MoldUDP64 end-of-session packets (count 0xFFFF)"),
    Counter("bad_block_overrun", "a message block ran past the UDP payload; the rest of the packet is dropped"),
    Counter("bad_block_length", "a block's length does not match its type (or is 0); the rest is dropped"),
    Counter("bad_truncated", "the frame ended inside the UDP payload; the block cut short is lost"),
    Counter("unknown_type", "blocks of an unknown ITCH type, skipped"),
    Counter("messages", "message ticks delivered"),
    Counter("duplicates", "messages dropped because their sequence number was already delivered"),
    Counter("gaps", "gap event ticks"),
    Counter("gap_messages", "sequence numbers reported missing by gap events"),
    Counter("aborts", "frame-abort event ticks"),
    Counter("sessions", "MoldUDP64 session changes (the first session included)"),
    Counter("ticks", "ticks emitted, events included"),
) + tuple(Counter(f"msg_{m.code}", f"{m.name} messages delivered") for m in MESSAGES)

COUNTER_INDEX: dict[str, int] = {c.name: i for i, c in enumerate(COUNTERS)}

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_VLAN = (0x8100, 0x88A8)
MAX_VLAN_TAGS = 2
IP_PROTO_UDP = 17
