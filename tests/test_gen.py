"""The synthetic feed generator (wiretick.host.gen).

Frames are checked with a parser written here (struct, byte by byte) and ITCH
messages decoded with ``itchfeed``, an independent decoder, so that the
generator is not checked against code that shares its assumptions.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass, field

os.environ.setdefault("ITCH_NO_CPP", "1")  # keep itchfeed pure Python (and independent)

import numpy as np
import pytest
from itch.parser import MessageParser

from wiretick.host.contract import formats as F
from wiretick.host import frames, gen
from wiretick.host.capture import write_pcap
from wiretick.host.gen import (EXTRA_TYPES, MIN_MTU, GenConfig, generate, generate_to_file,
                               generate_with_stats, min_messages)

ALL_TYPES = "SRHYLVWKJhAFECXDUPQBINO"


# --------------------------------------------------------------------------- frame parser


@dataclass
class Packet:
    """One frame, parsed down to its MoldUDP64 blocks."""

    ts: int
    frame_len: int
    tags: list[tuple[int, int]]
    dst_mac: bytes
    ip: bytes
    ip_total: int
    ip_id: int
    src_ip: int
    dst_ip: int
    src_port: int
    dst_port: int
    udp_len: int
    udp_csum: int
    session: bytes
    seq: int
    count: int
    blocks: list[bytes] = field(default_factory=list)
    padding: bytes = b""


def parse_frame(f: bytes, ts: int) -> Packet:
    m = frames.parse_frame(f)
    assert m is not None
    ip = f[m.ip:m.udp]
    vihl, _tos, total, ip_id, frag, ttl, proto, _csum, src, dst = struct.unpack(">BBHHHBBHII", ip)
    assert vihl == 0x45 and proto == 17 and ttl > 0
    assert frag == 0x4000, "DF set, not a fragment"
    sport, dport, ulen, ucsum = struct.unpack_from(">HHHH", f, m.udp)
    assert m.complete and m.tail == m.end, "blocks fill the UDP payload exactly"
    return Packet(ts, len(f), list(m.tags), f[:6], ip, total, ip_id, src, dst, sport, dport, ulen, ucsum,
                  m.session, m.seq, m.count, list(m.blocks), f[m.end:])


def parse_batch(batch) -> list[Packet]:
    return [parse_frame(batch.frame(i), int(batch.ts_ns[i])) for i in range(len(batch))]


# --------------------------------------------------------------------------- ITCH checks

PARSER = MessageParser()


def decode_all(blocks: list[bytes]) -> list:
    out = []
    for b in blocks:
        code = chr(b[0])
        assert len(b) == F.MESSAGE_BY_CODE[code].length, f"{code}: wrong length {len(b)}"
        out.append(PARSER.get_message_type(b))
    return out


def assert_text_is_ascii(blocks: list[bytes]) -> None:
    """Every text field of every message is printable ASCII (no hole left unwritten)."""
    for b in blocks:
        for f in F.MESSAGE_BY_CODE[chr(b[0])].fields:
            if f.kind in ("s", "c"):
                raw = b[f.offset:f.offset + f.size]
                assert all(0x20 <= c < 0x7F for c in raw), (chr(b[0]), f.name, raw)


def check_book(msgs: list) -> Counter:
    """Replay the order book from decoded messages; assert it stays consistent."""
    live: dict[int, list] = {}          # ref -> [locate, side, shares, price]
    max_ref = 0
    matches = []
    stocks = {}
    seen = Counter()
    for m in msgs:
        t = m.message_type.decode()
        seen[t] += 1
        if t == "R":
            stocks[m.stock_locate] = m.stock
        if t in "AF":
            ref = m.order_reference_number
            assert ref not in live and ref > max_ref, "new order references are unique and increasing"
            max_ref = ref
            assert m.buy_sell_indicator in (b"B", b"S") and m.shares > 0
            assert m.price > 0 and m.price % 100 == 0, "on the $0.01 grid"
            assert m.stock == stocks[m.stock_locate], "symbol matches the directory"
            live[ref] = [m.stock_locate, m.buy_sell_indicator, m.shares, m.price]
        elif t in "ECXDU":
            ref = m.order_reference_number
            assert ref in live, f"{t} refers to a live order ({ref})"
            o = live[ref]
            assert m.stock_locate == o[0], "same stock as the order"
            if t in "EC":
                assert 0 < m.executed_shares <= o[2], "never executes more than remain"
                o[2] -= m.executed_shares
                matches.append(m.match_number)
                if t == "C":
                    assert m.printable in (b"Y", b"N") and m.execution_price % 100 == 0
            elif t == "X":
                assert 0 < m.cancelled_shares < o[2], "a cancel is partial (a full one is a D)"
                o[2] -= m.cancelled_shares
            elif t == "D":
                o[2] = 0
            else:
                new = m.new_order_reference_number
                assert new not in live and new > max_ref
                max_ref = new
                assert m.shares > 0 and m.price > 0 and m.price % 100 == 0
                live[new] = [o[0], o[1], m.shares, m.price]
                o[2] = 0
            if o[2] == 0:
                del live[ref]
        elif t == "P":
            assert m.order_reference_number == 0 and m.price % 100 == 0
            matches.append(m.match_number)
        elif t == "Q":
            assert m.cross_price % 100 == 0
            matches.append(m.match_number)
        elif t == "B":
            assert m.match_number in matches, "breaks an earlier execution"
    assert matches == sorted(set(matches)), "match numbers unique and increasing"
    return seen


def check_day(msgs: list, symbols: int) -> None:
    """Start and end of day, in NASDAQ's order."""
    codes = [m.message_type.decode() for m in msgs]
    assert codes[0] == "S" and msgs[0].event_code == b"O"
    assert codes[1:1 + symbols] == ["R"] * symbols
    assert [m.stock_locate for m in msgs[1:1 + symbols]] == list(range(1, symbols + 1))
    syms = [m.stock for m in msgs[1:1 + symbols]]
    assert syms == sorted(syms) and len(set(syms)) == symbols, "locates assigned alphabetically"
    for s in syms:
        assert len(s) == 8 and s.rstrip(b" ").isalpha() and s == s.rstrip(b" ").ljust(8)
    k = 1 + symbols
    assert codes[k] == "S" and msgs[k].event_code == b"S"
    assert all(m.trading_state == b"T" for m in msgs[k + 1:k + 1 + symbols])
    k += 1 + symbols
    assert codes[k] == "S" and msgs[k].event_code == b"Q"
    opens = msgs[k + 1:k + 1 + symbols]
    assert all(m.message_type == b"Q" and m.cross_type == b"O" for m in opens)
    closes = msgs[-3 - symbols:-3]
    assert all(m.message_type == b"Q" and m.cross_type == b"C" for m in closes)
    assert [m.event_code for m in msgs[-3:]] == [b"M", b"E", b"C"]
    ts = [m.timestamp for m in msgs]
    assert all(a < b for a, b in zip(ts, ts[1:])), "timestamps increase"
    assert 9 * 3600e9 + 29 * 60e9 <= ts[0] and ts[-1] < 24 * 3600e9


def data_messages(packets: list[Packet]) -> dict[int, bytes]:
    """Sequence number -> message, over the data packets (copies must agree)."""
    out: dict[int, bytes] = {}
    for p in packets:
        for i, b in enumerate(p.blocks):
            assert out.setdefault(p.seq + i, b) == b
    return out


def checked_day(packets: list[Packet], cfg: GenConfig) -> tuple[list, Counter]:
    """The day's messages 1..cfg.messages decoded by itchfeed, checked as a day and as books;
    returns them and the messages seen per type."""
    by_seq = data_messages(packets)
    blocks = [by_seq[s] for s in range(1, cfg.messages + 1)]
    assert_text_is_ascii(blocks)
    msgs = decode_all(blocks)
    check_day(msgs, cfg.symbols)
    return msgs, check_book(msgs)


# --------------------------------------------------------------------------- fixtures

BASE = GenConfig(messages=20_000, symbols=40, seed=3, heartbeat_interval_ns=20_000_000)


@pytest.fixture(scope="module")
def base():
    batch, stats = generate_with_stats(BASE)
    return batch, stats, parse_batch(batch)


# --------------------------------------------------------------------------- tests


def test_deterministic_for_a_seed():
    cfg = GenConfig(messages=3_000, symbols=10, seed=11, ab=True, gap_rate=0.05, all_types=True)
    a, b = generate(cfg), generate(cfg)
    assert np.array_equal(a.buf, b.buf) and np.array_equal(a.ts_ns, b.ts_ns)
    c = generate(GenConfig(messages=3_000, symbols=10, seed=12, ab=True, gap_rate=0.05, all_types=True))
    assert not np.array_equal(a.buf[:min(len(a.buf), len(c.buf))], c.buf[:min(len(a.buf), len(c.buf))])


def test_frames_are_well_formed(base):
    batch, stats, packets = base
    assert len(packets) == stats.frames == stats.packets
    assert np.all(np.diff(batch.ts_ns.astype(np.int64)) > 0), "capture timestamps increase"
    for p in packets:
        assert p.tags == [(0x8100, 141)]
        assert p.dst_mac == bytes.fromhex("01005e") + bytes([54 & 0x7F, 12, 111])
        assert p.dst_ip == 0xE9360C6F and p.dst_port == 26477
        assert frames.ip_checksum(p.ip) == 0, "IPv4 header checksum"
        assert p.ip_total == 20 + p.udp_len and p.udp_csum == 0
        assert p.ip_total <= BASE.mtu
        assert p.frame_len == max(60, 18 + p.ip_total)
        assert p.padding == bytes(len(p.padding))
        assert p.session == b"WIRETICK01"
    ids = [p.ip_id for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(ids, ids[1:])), "one IP id per packet"


def test_sequence_numbers_heartbeats_and_end_of_session(base):
    _, stats, packets = base
    expected = 1
    beats = 0
    last_send = None
    for p in packets[:-1]:
        assert p.seq == expected, "continuous from 1; a heartbeat carries the next number"
        if p.count == 0:
            beats += 1
            assert last_send is not None and p.ts - last_send >= BASE.heartbeat_interval_ns * 0.99
        else:
            assert 1 <= p.count <= BASE.max_messages_per_packet
            expected += p.count
        last_send = p.ts
    assert beats == stats.heartbeats > 0
    assert packets[-1].count == 0xFFFF and packets[-1].seq == BASE.messages + 1
    assert expected == BASE.messages + 1
    sizes = Counter(p.count for p in packets if 0 < p.count < 0xFFFF)
    assert sizes[1] > sizes[8] > 0, "mostly small packets, some larger"


def test_itch_messages_decode_and_the_book_is_consistent(base):
    batch, stats, packets = base
    msgs, seen = checked_day(packets, BASE)
    assert dict(seen) == stats.per_type
    assert set(seen) == set("SRHAFECXDUPQ"), "no rarer types unless all_types"
    body = BASE.messages - min_messages(BASE.symbols)
    assert 0.33 < seen["A"] / body < 0.47 and 0.28 < seen["D"] / body < 0.42
    assert 0.06 < seen["U"] / body < 0.14
    printable = Counter(m.printable for m in msgs if m.message_type == b"C")
    assert printable[b"Y"] > 4 * printable[b"N"] > 0
    # A frame is captured after the newest message it carries was stamped.
    for p in packets:
        if p.blocks:
            newest = struct.unpack(">Q", b"\0\0" + p.blocks[-1][5:11])[0]
            assert p.ts > BASE.start_ns + newest


def test_all_types():
    cfg = GenConfig(messages=2_000, symbols=8, seed=5, all_types=True)
    batch, stats = generate_with_stats(cfg)
    msgs, seen = checked_day(parse_batch(batch), cfg)
    assert set(seen) == set(ALL_TYPES) == set(stats.per_type)
    for m in msgs:
        t = m.message_type
        if t == b"V":
            assert m.level1_price > m.level2_price > m.level3_price > 0
        elif t == b"J":
            assert m.lower_auction_collar_price < m.auction_collar_reference_price \
                < m.upper_auction_collar_price
        elif t == b"I" and m.imbalance_direction == b"N":
            assert m.imbalance_shares == 0


def test_smallest_day_with_all_types():
    cfg = GenConfig(messages=min_messages(3, True), symbols=3, all_types=True)
    batch, stats = generate_with_stats(cfg)
    assert set(stats.per_type) == set(ALL_TYPES) and stats.messages == cfg.messages


def test_ab_copies_every_packet():
    cfg = GenConfig(messages=5_000, symbols=20, seed=2, ab=True)
    batch, stats = generate_with_stats(cfg)
    packets = parse_batch(batch)
    assert stats.frames == 2 * stats.packets == len(packets)
    assert np.all(np.diff(batch.ts_ns.astype(np.int64)) > 0), "capture timestamps increase"
    a = [p for p in packets if p.dst_port == cfg.port]
    b = [p for p in packets if p.dst_port == cfg.port_b]
    assert len(a) == len(b) == stats.packets
    assert all(p.dst_ip == 0xE9360C6F for p in a) and all(p.dst_ip == 0xE931C46F for p in b)
    assert {p.src_ip for p in a}.isdisjoint({p.src_ip for p in b}), "two publishers"
    for pa, pb in zip(a, b):
        assert (pa.seq, pa.count, pa.blocks) == (pb.seq, pb.count, pb.blocks)
        assert 0 < pb.ts - pa.ts < 1_000_000, "B lags A by a little"
        assert frames.ip_checksum(pb.ip) == 0
    assert [p.seq for p in a] == sorted(p.seq for p in a)
    # Interleaved, not one line after the other.
    order = [p.dst_port == cfg.port for p in packets]
    assert sum(x != y for x, y in zip(order, order[1:])) > stats.packets // 2


def test_gap_rate_drops_packets_on_both_lines():
    cfg = GenConfig(messages=10_000, symbols=20, seed=4, ab=True, gap_rate=0.1)
    batch, stats = generate_with_stats(cfg)
    packets = parse_batch(batch)
    a = [p for p in packets if p.dst_port == cfg.port]
    b = [p for p in packets if p.dst_port == cfg.port_b]
    assert [p.seq for p in a] == [p.seq for p in b]
    got = set(data_messages(packets))
    missing = set(range(1, cfg.messages + 1)) - got
    assert len(missing) == stats.gap_messages > 0
    assert 0.05 < stats.gap_packets / (stats.packets - stats.heartbeats) < 0.15
    assert 1 in got, "the first packet is never lost"
    full = generate_with_stats(GenConfig(messages=10_000, symbols=20, seed=4, ab=True))[1]
    assert stats.packets == full.packets and stats.frames == 2 * (full.packets - stats.gap_packets)
    # A receiver sees one gap per run of lost packets.
    runs = sum(1 for s in missing if s - 1 not in missing)
    assert runs >= stats.gaps > 0


def test_reference_decoder_agrees():
    from wiretick.host.decode import DecodeConfig, decode_batch
    cfg = GenConfig(messages=8_000, symbols=15, seed=9, ab=True, gap_rate=0.03, all_types=True)
    batch, stats = generate_with_stats(cfg)
    c = decode_batch(batch, DecodeConfig()).counters
    assert c["messages"] + c["gap_messages"] == cfg.messages
    assert c["gaps"] == stats.gaps and c["gap_messages"] == stats.gap_messages
    assert c["duplicates"] == c["messages"], "every B copy is a duplicate"
    assert c["heartbeats"] == 2 * stats.heartbeats and c["end_of_session"] == 2
    assert not any(v for k, v in c.items() if k.startswith(("drop_", "bad_")))
    a_only = decode_batch(batch, DecodeConfig(port=cfg.port)).counters
    assert a_only["duplicates"] == 0 and a_only["messages"] == c["messages"]


@pytest.mark.parametrize("vlan, tags", [(None, []), (7, [(0x8100, 7)]),
                                        ((100, 200), [(0x88A8, 100), (0x8100, 200)])])
def test_vlan_tags(vlan, tags):
    cfg = GenConfig(messages=500, symbols=5, vlan=vlan)
    packets = parse_batch(generate(cfg))
    assert all(p.tags == tags for p in packets)
    assert all(p.frame_len == max(60, 14 + 4 * len(tags) + p.ip_total) for p in packets)


@pytest.mark.parametrize("mtu, per_packet", [(MIN_MTU, 32), (1500, 1), (9000, 500)])
def test_packet_limits(mtu, per_packet):
    cfg = GenConfig(messages=3_000, symbols=5, mtu=mtu, max_messages_per_packet=per_packet)
    packets = parse_batch(generate(cfg))
    assert all(p.ip_total <= mtu for p in packets)
    assert all(p.count <= per_packet for p in packets if p.count != 0xFFFF)
    assert sum(len(p.blocks) for p in packets) == cfg.messages


@pytest.mark.parametrize("chunk", [None, 5_000])
def test_file_is_what_write_pcap_writes(tmp_path, monkeypatch, chunk):
    if chunk:  # the file is written in pieces: make them small so that there are many
        monkeypatch.setattr(gen, "_FILE_CHUNK", chunk)
    cfg = GenConfig(messages=3_000, symbols=10, seed=1, ab=True, gap_rate=0.02)
    stats = generate_to_file(tmp_path / "gen.pcap", cfg)
    batch = generate(cfg)
    write_pcap(tmp_path / "ref.pcap", batch)
    data = (tmp_path / "gen.pcap").read_bytes()
    assert data == (tmp_path / "ref.pcap").read_bytes()
    assert stats.bytes == len(data) and stats.frames == len(batch)
    assert sum(stats.per_type.values()) == stats.messages == cfg.messages
    assert not (tmp_path / "gen.pcap.partial").exists()


@pytest.mark.parametrize("kwargs, match", [
    (dict(messages=0), "messages must be >= 1"),
    (dict(messages=100, symbols=100), "too few"),
    (dict(messages=10**6, symbols=0), "symbols must be 1..65535"),
    (dict(messages=10**6, symbols=70_000), "symbols must be 1..65535"),
    (dict(messages=1000, symbols=5, mtu=MIN_MTU - 1), "mtu must be"),
    (dict(messages=1000, symbols=5, mtu=20_000), "mtu must be"),
    (dict(messages=1000, symbols=5, gap_rate=1.0), "gap_rate"),
    (dict(messages=1000, symbols=5, gap_rate=-0.1), "gap_rate"),
    (dict(messages=1000, symbols=5, gap_rate=float("nan")), "gap_rate"),
    (dict(messages=1000, symbols=5, max_messages_per_packet=0), "max_messages_per_packet"),
    (dict(messages=1000, symbols=5, max_messages_per_packet=0xFFFF), "max_messages_per_packet"),
    (dict(messages=1000, symbols=5, vlan=4095), "vlan id"),
    (dict(messages=1000, symbols=5, vlan=(1, 2, 3)), "at most 2"),
    (dict(messages=1000, symbols=5, vlan="141"), "vlan must be"),
    (dict(messages=1000, symbols=5, session=b"SHORT"), "session"),
    (dict(messages=1000, symbols=5, session="WIRETICK01"), "session"),
    (dict(messages=1000, symbols=5, heartbeat_interval_ns=1000), "heartbeat_interval_ns"),
    (dict(messages=1000, symbols=5, dst_ip="10.0.0.1"), "multicast"),
    (dict(messages=1000, symbols=5, dst_ip="not an ip"), "IPv4 address"),
    (dict(messages=1000, symbols=5, port=0), "port must be"),
    (dict(messages=1000, symbols=5, ab=True, dst_ip_b="233.54.12.111", port_b=26477), "B feed"),
    (dict(messages=1000, symbols=5, seed=-1), "seed"),
    (dict(messages=1000.0, symbols=5), "integer"),
    (dict(messages=1000, symbols=5, ab=1), "True or False"),
    (dict(messages=1000, symbols=5, start_ns=-5), "start_ns"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GenConfig(**kwargs)


def test_min_messages_matches_the_skeleton():
    assert min_messages(1) == 10 and min_messages(1, True) == 10 + len(EXTRA_TYPES) + 10
    stats = generate_with_stats(GenConfig(messages=min_messages(4), symbols=4))[1]
    assert stats.per_type == {"S": 6, "R": 4, "H": 4, "Q": 8}
