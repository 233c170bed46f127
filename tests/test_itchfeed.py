"""The reference decoder against an independent ITCH 5.0 decoder (``itchfeed``), field by field.

Message blocks are cut out of the frames by the project's Python frame walker
(:func:`wiretick.host.frames.parse_frame`, not the decoder's kernel), decoded by itchfeed, and every field of every tick is checked
against the itchfeed object through the expectation table below, which
restates the tick contract (docs/tick.md, ``formats.TICK_MAP``) in itchfeed's
attribute names.  Fields a type does not fill must be zero.
"""

from __future__ import annotations

import os

os.environ["ITCH_NO_CPP"] = "1"  # the pure-Python itchfeed, not the itchcpp backend

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import itch
from itch.parser import MessageParser

from wiretick.host.capture import FrameBatch, read_frames
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.contract.formats import COUNTERS, MESSAGES, Flag
from wiretick.host.frames import MoldFrame, encode_message, mold_packet, parse_frame, udp_frame
from wiretick.host.tick import TICK_DTYPE

PARSER = MessageParser()
U32_MAX = 0xFFFF_FFFF

# ------------------------------------------------------------------ the expectation table
#
# tick field -> (rule, itchfeed attribute, ...).  Rules:
#   int   the attribute's integer value
#   chr   a one-byte code: its byte value
#   text  the attributes' bytes concatenated, as they lie in the tick (raw copy):
#         the little-endian integer of those bytes
#   lo32 / hi32   the low / high 32 bits of a 64-bit value spanning price+shares
#   pair32        first | second << 32 (two u32 in one u64 field)
#   sat           min(value, 2^32-1)
#   sat_flag      Flag.SATURATED when the value exceeds 2^32-1
#   printable     Flag.PRINTABLE when the byte is 'Y'
# Every field not named is zero.  NOT_CARRIED lists the itchfeed attributes the
# tick leaves out by contract; together the two must name every attribute.

EXPECT: dict[str, dict[str, tuple[str, ...]]] = {
    "S": {"side": ("chr", "event_code")},
    "R": {"ref2": ("text", "stock"), "side": ("chr", "market_category"), "shares": ("int", "round_lot_size"),
          "order_ref": ("text", "round_lots_only", "issue_classification", "issue_sub_type", "authenticity",
                        "short_sale_threshold_indicator", "ipo_flag", "luld_ref"),
          "price": ("int", "etp_leverage_factor")},
    "H": {"ref2": ("text", "stock"), "side": ("chr", "trading_state"), "price": ("text", "reason")},
    "Y": {"ref2": ("text", "stock"), "side": ("chr", "reg_sho_action")},
    "L": {"ref2": ("text", "stock"), "price": ("text", "mpid"),
          "order_ref": ("text", "primary_market_maker", "market_maker_mode", "market_participant_state")},
    "V": {"order_ref": ("int", "level1_price"), "ref2": ("int", "level2_price"),
          "price": ("lo32", "level3_price"), "shares": ("hi32", "level3_price")},
    "W": {"side": ("chr", "breached_level")},
    "K": {"ref2": ("text", "stock"), "shares": ("int", "ipo_release_time"),
          "side": ("chr", "ipo_release_qualifier"), "price": ("int", "ipo_price")},
    "J": {"ref2": ("text", "stock"), "price": ("int", "auction_collar_reference_price"),
          "order_ref": ("pair32", "upper_auction_collar_price", "lower_auction_collar_price"),
          "shares": ("int", "auction_collar_extention")},
    "h": {"ref2": ("text", "stock"), "side": ("chr", "market_code"), "order_ref": ("text", "operational_halt_action")},
    "A": {"order_ref": ("int", "order_reference_number"), "side": ("chr", "buy_sell_indicator"),
          "shares": ("int", "shares"), "price": ("int", "price")},
    "F": {"order_ref": ("int", "order_reference_number"), "side": ("chr", "buy_sell_indicator"),
          "shares": ("int", "shares"), "price": ("int", "price"), "ref2": ("text", "attribution")},
    "E": {"order_ref": ("int", "order_reference_number"), "shares": ("int", "executed_shares"),
          "ref2": ("int", "match_number")},
    "C": {"order_ref": ("int", "order_reference_number"), "shares": ("int", "executed_shares"),
          "ref2": ("int", "match_number"), "price": ("int", "execution_price"),
          "flags": ("printable", "printable")},
    "X": {"order_ref": ("int", "order_reference_number"), "shares": ("int", "cancelled_shares")},
    "D": {"order_ref": ("int", "order_reference_number")},
    "U": {"order_ref": ("int", "order_reference_number"), "ref2": ("int", "new_order_reference_number"),
          "shares": ("int", "shares"), "price": ("int", "price")},
    "P": {"order_ref": ("int", "order_reference_number"), "side": ("chr", "buy_sell_indicator"),
          "shares": ("int", "shares"), "price": ("int", "price"), "ref2": ("int", "match_number")},
    "Q": {"shares": ("sat", "shares"), "flags": ("sat_flag", "shares"), "price": ("int", "cross_price"),
          "ref2": ("int", "match_number"), "side": ("chr", "cross_type")},
    "B": {"ref2": ("int", "match_number")},
    "I": {"order_ref": ("int", "paired_shares"), "ref2": ("int", "imbalance_shares"),
          "side": ("chr", "imbalance_direction"), "price": ("int", "current_reference_price"),
          "shares": ("int", "near_price")},
    "N": {"ref2": ("text", "stock"), "side": ("chr", "interest_flag")},
    "O": {"ref2": ("text", "stock"), "side": ("chr", "open_eligibility_status"),
          "price": ("int", "near_execution_price"), "order_ref": ("int", "near_execution_time")},
}

NOT_CARRIED: dict[str, set[str]] = {
    "R": {"financial_status_indicator", "etp_flag", "inverse_indicator"},
    "H": {"reserved"},
    "A": {"stock"}, "F": {"stock"}, "P": {"stock"}, "Q": {"stock"},  # resolved from R by locate
    "I": {"stock", "far_price", "cross_type", "variation_indicator"},
    "O": {"minimum_allowable_price", "maximum_allowable_price", "lower_price_range_collar",
          "upper_price_range_collar"},
}

# Attributes every itchfeed message has that are not message content (or are checked as common fields).
ITCHFEED_META = {"description", "message_format", "message_pack_format", "message_size", "price_precision",
                 "message_type", "timestamp", "stock_locate", "tracking_number"}

MESSAGE_FIELDS = ("feed_seq", "ts_exch", "order_ref", "ref2", "price", "shares", "locate", "tracking",
                  "flags", "msg_type", "side")


def _rule(rule: str, obj, attrs: tuple[str, ...]) -> int:
    vals = [getattr(obj, a) for a in attrs]
    if rule == "int":
        return int(vals[0])
    if rule == "chr":
        assert isinstance(vals[0], bytes) and len(vals[0]) == 1, (attrs, vals)
        return vals[0][0]
    if rule == "text":
        return int.from_bytes(b"".join(vals), "little")
    if rule == "lo32":
        return vals[0] & U32_MAX
    if rule == "hi32":
        return vals[0] >> 32
    if rule == "pair32":
        return vals[0] | (vals[1] << 32)
    if rule == "sat":
        return min(vals[0], U32_MAX)
    if rule == "sat_flag":
        return Flag.SATURATED if vals[0] > U32_MAX else 0
    if rule == "printable":
        return Flag.PRINTABLE if vals[0] == b"Y" else 0
    raise AssertionError(f"unknown rule {rule}")


def expected_tick(obj, feed_seq: int) -> dict[str, int]:
    """Every message field of the tick (all but seq and ts_rx) from an itchfeed object."""
    code = obj.message_type.decode()
    exp = dict.fromkeys(MESSAGE_FIELDS, 0)
    exp.update(feed_seq=feed_seq, ts_exch=obj.timestamp, locate=obj.stock_locate,
               tracking=obj.tracking_number, msg_type=obj.message_type[0])
    for field, (rule, *attrs) in EXPECT[code].items():
        exp[field] = _rule(rule, obj, tuple(attrs))
    return exp


def check_message_ticks(ticks: np.ndarray, messages: list["Message"]) -> None:
    """``ticks`` (message ticks only, in order) against itchfeed's decoding of ``messages``."""
    assert len(ticks) == len(messages), (len(ticks), len(messages))
    for k, (t, m) in enumerate(zip(ticks, messages)):
        obj = PARSER.get_message_type(m.block)
        assert obj.message_size == len(m.block)
        exp = expected_tick(obj, m.feed_seq)
        exp["ts_rx"] = m.ts_ns
        got = {name: int(t[name]) for name in exp}
        assert got == exp, (
            f"message {k} ({m.block[:1]!r}, feed_seq {m.feed_seq}): "
            f"{ {f: (got[f], exp[f]) for f in exp if got[f] != exp[f]} } (got, itchfeed)")


# ------------------------------------------------------------------ the messages as itchfeed gets them


@dataclass(frozen=True)
class Message:
    feed_seq: int
    ts_ns: int
    block: bytes


def walk_frame(frame: bytes) -> MoldFrame:
    """The project's frame walker (not the decoder under test), on a well-formed frame only."""
    m = parse_frame(frame)
    assert m is not None, "an IPv4/UDP frame"
    assert m.complete and m.end <= len(frame), "frame cut short"
    return m


def messages_of(batch: FrameBatch) -> list[Message]:
    out = []
    for i in range(len(batch)):
        pkt = walk_frame(batch.frame(i))
        assert pkt is not None
        out += [Message(pkt.seq + k, int(batch.ts_ns[i]), b) for k, b in enumerate(pkt.blocks)]
    return out


# ------------------------------------------------------------------ the table itself


def test_pure_python_itchfeed():
    assert not itch.USING_CPP_BACKEND


@pytest.mark.parametrize("code", [m.code for m in MESSAGES])
def test_table_names_every_itchfeed_attribute(code):
    obj = PARSER.get_message_type(encode_message(code))
    attrs = set(obj.get_attributes()) - ITCHFEED_META
    used = {a for _, *names in EXPECT[code].values() for a in names}
    assert used | NOT_CARRIED.get(code, set()) == attrs
    assert not used & NOT_CARRIED.get(code, set())


def test_table_covers_every_type_and_field():
    assert set(EXPECT) == {m.code for m in MESSAGES} == {c.decode() for c in itch.messages.messages}
    assert set(MESSAGE_FIELDS) | {"seq", "ts_rx"} == set(TICK_DTYPE.names)


# ------------------------------------------------------------------ the shared real captures


def _nonzero(counters: dict[str, int]) -> dict[str, int]:
    assert set(counters) == {c.name for c in COUNTERS}
    return {k: v for k, v in counters.items() if v}


def test_shared_capture_against_itchfeed(shared_capture: Path):
    batch = read_frames(shared_capture)
    msgs = messages_of(batch)
    assert msgs, "every shared capture carries messages"
    live = shared_capture.name.startswith("live-")
    config = DecodeConfig() if live else DecodeConfig(check_ip_checksum=False, sequence_check=False)
    res = decode_batch(batch, config)
    is_msg = res.ticks["msg_type"] != 0
    check_message_ticks(res.ticks[is_msg], msgs)
    assert list(res.ticks["seq"]) == list(range(1, len(res.ticks) + 1))
    c = res.counters
    assert c["frames"] == c["packets"] == len(batch)
    assert c["messages"] == len(msgs) and c["ticks"] == len(res.ticks)
    for m in MESSAGES:
        assert c[f"msg_{m.code}"] == sum(x.block[:1] == m.code.encode() for x in msgs)
    # The only events are gaps, exactly where a packet starts past the expected number.
    events = res.ticks[~is_msg]
    assert (events["flags"] == Flag.EVENT_GAP).all()
    if live:
        expect_gaps, expected = [], None
        for i in range(len(batch)):
            pkt = walk_frame(batch.frame(i))
            if expected is not None and pkt.seq > expected:
                expect_gaps.append((expected, pkt.seq - expected))
            expected = max(expected or 0, pkt.seq + len(pkt.blocks))
        assert [(int(e["feed_seq"]), int(e["ref2"])) for e in events] == expect_gaps
        assert c["gaps"] == len(expect_gaps) and c["sessions"] == 1
    else:
        assert len(events) == 0 and c["gaps"] == c["duplicates"] == c["sessions"] == 0


def test_shared_sanitized_captures_are_counted_not_silent(captures_dir: Path):
    files = sorted(captures_dir.glob("sanitized-*.pcap"))
    assert files
    for f in files:
        batch = read_frames(f)
        res = decode_batch(batch)  # checksum verification on: the zeroed checksums fail
        assert len(res.ticks) == 0
        assert _nonzero(res.counters) == {"frames": len(batch), "drop_ip_checksum": len(batch)}, f.name


def test_shared_captures_cover_the_readme_types(captures_dir: Path):
    seen = set()
    for f in captures_dir.glob("*.pcap"):
        seen |= {m.block[:1].decode() for m in messages_of(read_frames(f))}
    assert seen == set("SHYLJIAFECXDUPQ")


# ------------------------------------------------------------------ generated captures


def test_generated_all_types_against_itchfeed():
    from wiretick.host.gen import GenConfig, generate

    batch = generate(GenConfig(messages=20000, symbols=20, seed=3, all_types=True))
    msgs = messages_of(batch)
    assert len(msgs) == 20000
    assert {m.block[:1].decode() for m in msgs} == {m.code for m in MESSAGES}
    res = decode_batch(batch)
    assert (res.ticks["msg_type"] != 0).all()  # one feed copy, no loss: no events
    check_message_ticks(res.ticks, msgs)
    assert res.counters["messages"] == 20000 and res.counters["unknown_type"] == 0


def _random_value(rng: np.random.Generator, code: str, field) -> int | bytes:
    if field.kind in ("c", "s"):
        if (code, field.name) == ("C", "printable"):
            return bytes([rng.choice([ord("Y"), ord("N")])])
        return bytes(rng.integers(0x20, 0x7F, field.size, dtype=np.uint8))
    if (code, field.name) == ("Q", "shares"):  # around the saturation point, and anywhere
        options = [0, 1, U32_MAX - 1, U32_MAX, U32_MAX + 1, 1 << 63, (1 << 64) - 1,
                   int.from_bytes(rng.bytes(8), "big")]
        return options[int(rng.integers(0, len(options)))]
    return int.from_bytes(rng.bytes(field.size), "big")


def test_random_messages_of_every_type_against_itchfeed():
    """Full-range field values (every bit of every field), across VLAN tags and IP options."""
    rng = np.random.default_rng(20240102)
    msgs, frames, ts, seq = [], [], [], 1
    for _ in range(60):
        codes = rng.choice([m.code for m in MESSAGES], size=int(rng.integers(1, 30)))
        blocks = []
        for code in codes:
            fields = [f for f in next(m for m in MESSAGES if m.code == code).fields if f.name != "message_type"]
            blocks.append(encode_message(str(code), **{f.name: _random_value(rng, str(code), f) for f in fields}))
        vlans = [(), (141,), (7, 300)][int(rng.integers(0, 3))]
        opts = bytes([1]) * (4 * int(rng.integers(0, 11)))
        t = 1_700_000_000_000_000_000 + int(rng.integers(0, 1 << 40))
        frames.append(udp_frame(mold_packet(seq, blocks), vlans=vlans, ip_options=opts))
        ts.append(t)
        msgs += [Message(seq + k, t, b) for k, b in enumerate(blocks)]
        seq += len(blocks)
    batch = FrameBatch.from_frames(frames, ts_ns=ts)
    assert messages_of(batch) == msgs  # the walker agrees with what was built
    res = decode_batch(batch)
    check_message_ticks(res.ticks, msgs)
    q = res.ticks[res.ticks["msg_type"] == ord("Q")]
    assert (q["flags"] == Flag.SATURATED).any() and (q["flags"] == 0).any()
    cx = res.ticks[res.ticks["msg_type"] == ord("C")]
    assert (cx["flags"] == Flag.PRINTABLE).any() and (cx["flags"] == 0).any()


def test_text_fields_read_back_as_text():
    """Raw copies: a symbol reads back with .view('S8'), a 4-byte code with .view('S4')."""
    frames = [udp_frame(mold_packet(1, [
        encode_message("H", stock="ZVZZT", trading_state="T", reason="IPO1"),
        encode_message("F", order_ref=5, side="S", shares=1, stock="AAPL", price=1, attribution="GSCO"),
        encode_message("L", mpid="NITE", stock="MSFT", primary_market_maker="Y", market_maker_mode="N",
                       market_participant_state="A"),
    ]))]
    t = decode_batch(FrameBatch.from_frames(frames)).ticks
    assert t["ref2"][0:1].view("S8")[0] == b"ZVZZT   "
    assert t["price"][0:1].view("S4")[0] == b"IPO1"
    assert t["ref2"][1:2].view("S8")[0] == b"GSCO"  # 4 bytes of text, then zeros
    assert t["price"][2:3].view("S4")[0] == b"NITE" and t["ref2"][2:3].view("S8")[0] == b"MSFT    "
    assert t["order_ref"][2:3].view("S8")[0] == b"YNA"
    for k in range(3):
        obj = PARSER.get_message_type(walk_frame(frames[0]).blocks[k])
        assert t["ref2"][k:k + 1].view("S8")[0].rstrip(b"\0") == (obj.attribution if k == 1 else obj.stock)
