"""The reference feed handler against its contract (docs/reference-model.md), case by case.

Every case asserts the exact ticks (every field) and the exact counters (every
counter not listed must be zero).  Frames are built with
:mod:`wiretick.host.frames`; the expected ticks are written out here from the
values put into the messages.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretick.host import cli
from wiretick.host.capture import CaptureError, FrameBatch, read_frames, write_pcap, write_pcapng
from wiretick.host.decode import DecodeConfig, Decoder, decode_batch, decode_file
from wiretick.host.contract.formats import COUNTERS, Flag
from wiretick.host.frames import DEFAULT_SESSION, encode_message, mold_packet, udp_frame
from wiretick.host.tick import TICK_DTYPE

SESSION = DEFAULT_SESSION
OTHER_SESSION = b"000010060C"
DST_IP = 0xE9360C6F          # udp_frame's default destination (233.54.12.111)
DST_PORT = 26477             # udp_frame's default destination port
T0 = 1_700_000_000_000_000_000
NO_CHECKS = DecodeConfig(check_ip_checksum=False, sequence_check=False)
FIELDS = TICK_DTYPE.names


def ts_of(frame_index: int) -> int:
    """Capture time given to frame ``frame_index`` by :func:`decode`."""
    return T0 + 1000 * frame_index


# ------------------------------------------------------------------ messages and ticks

def add(ref: int) -> bytes:
    """Add Order number ``ref``: every field derived from ``ref`` (see :func:`add_tick`)."""
    return encode_message("A", stock_locate=ref % 50 + 1, tracking_number=ref % 7 + 3, timestamp=34_200_000_000_000 + ref,
                          order_ref=1_000_000 + ref, side="B" if ref % 2 else "S", shares=100 * ref,
                          stock="AAPL", price=1_500_000 + ref)


def tick(**fields: int) -> dict[str, int]:
    t = dict.fromkeys(FIELDS, 0)
    assert set(fields) <= set(FIELDS), set(fields) - set(FIELDS)
    t.update(fields)
    return t


def add_tick(ref: int, seq: int, frame: int = 0, feed_seq: int | None = None) -> dict[str, int]:
    """The tick of ``add(ref)``: tick number ``seq``, from frame index ``frame``, message number ``ref``."""
    return tick(seq=seq, ts_rx=ts_of(frame), feed_seq=ref if feed_seq is None else feed_seq,
                ts_exch=34_200_000_000_000 + ref, order_ref=1_000_000 + ref, price=1_500_000 + ref,
                shares=100 * ref, locate=ref % 50 + 1, tracking=ref % 7 + 3, msg_type=ord("A"),
                side=ord("B" if ref % 2 else "S"))


def gap_tick(seq: int, first: int, count: int, frame: int) -> dict[str, int]:
    return tick(seq=seq, ts_rx=ts_of(frame), feed_seq=first, ref2=count, flags=Flag.EVENT_GAP)


def abort_tick(seq: int, first: int, last: int, frame: int) -> dict[str, int]:
    return tick(seq=seq, ts_rx=ts_of(frame), order_ref=first, ref2=last, flags=Flag.EVENT_ABORT)


def data(seq: int, n: int = 1, *, session: bytes = SESSION, **frame_kw) -> bytes:
    """A frame whose packet starts at ``seq`` and carries messages add(seq) .. add(seq + n - 1)."""
    return udp_frame(mold_packet(seq, [add(r) for r in range(seq, seq + n)], session=session), **frame_kw)


def heartbeat(seq: int, *, session: bytes = SESSION, **frame_kw) -> bytes:
    return udp_frame(mold_packet(seq, heartbeat=True, session=session), **frame_kw)


def patch(frame: bytes, pos: int, new: bytes) -> bytes:
    return frame[:pos] + new + frame[pos + len(new):]


def counts(frames: int, packets: int = 0, msgs: int = 0, **other: int) -> dict[str, int]:
    """The expected non-zero counters; ``msgs`` Add Order messages delivered, ``ticks`` derived."""
    d = dict(frames=frames, packets=packets, messages=msgs, msg_A=msgs, **other)
    d.setdefault("ticks", msgs + other.get("gaps", 0) + other.get("aborts", 0))
    return {k: v for k, v in d.items() if v}


def decode(frames: list[bytes], config: DecodeConfig | None = None, bad: list[int] = ()):
    """Decode ``frames`` (frame i captured at ts_of(i); indices in ``bad`` flagged bad by the MAC)."""
    batch = FrameBatch.from_frames(frames, ts_ns=[ts_of(i) for i in range(len(frames))],
                                   bad=[i in bad for i in range(len(frames))])
    res = decode_batch(batch, config)
    assert set(res.counters) == {c.name for c in COUNTERS}
    assert res.ticks.dtype == TICK_DTYPE
    ticks = [{f: int(t[f]) for f in FIELDS} for t in res.ticks]
    return ticks, {k: v for k, v in res.counters.items() if v}


def check(frames, ticks, counters, config=None, bad=()):
    got_ticks, got_counters = decode(frames, config, bad)
    assert got_counters == counters
    assert len(got_ticks) == len(ticks), got_ticks
    for k, (g, e) in enumerate(zip(got_ticks, ticks)):
        assert g == e, f"tick {k}: " + str({f: (g[f], e[f]) for f in FIELDS if g[f] != e[f]}) + " (got, expected)"


# ------------------------------------------------------------------ frame checks: every drop reason

GOOD = data(1)                     # one 802.1Q tag (the shared captures' layout), IPv4 header at 18
IP = 18
UDP = IP + 20
MOLD = UDP + 8
ARP = (b"\xff" * 6 + bytes.fromhex("d4aff7cb20d5") + b"\x08\x06" + bytes(28)).ljust(60, b"\0")
IPV6 = (bytes.fromhex("333300000001d4aff7cb20d5") + b"\x86\xdd" + bytes([0x60]) + bytes(39)
        + bytes(8) + mold_packet(1, [add(1)]))
FCS = b"\xde\xad\xbe\xef"

DROPS = [
    # (id, frame, counter, config)
    ("arp", ARP, "drop_not_ipv4", None),
    ("ipv6", IPV6, "drop_not_ipv4", None),
    ("ipv6-in-vlan", patch(GOOD, 16, b"\x86\xdd"), "drop_not_ipv4", None),
    ("802.3-length", patch(GOOD, 12, b"\x00\x2e"), "drop_not_ipv4", None),
    ("three-vlan-tags", data(1, vlans=(1, 2, 3)), "drop_not_ipv4", None),
    ("three-tags-88a8", patch(data(1, vlans=(1, 2, 3)), 12, b"\x88\xa8"), "drop_not_ipv4", None),
    ("ip-version-6", patch(GOOD, IP, b"\x65"), "drop_not_ipv4", None),
    ("ip-version-0", patch(GOOD, IP, b"\x05"), "drop_not_ipv4", None),
    ("ihl-4", patch(GOOD, IP, b"\x44"), "drop_not_ipv4", None),
    ("ihl-0", patch(GOOD, IP, b"\x40"), "drop_not_ipv4", None),
    ("ihl-4-truncated", patch(GOOD, IP, b"\x44")[:IP + 1], "drop_not_ipv4", None),  # version byte decides
    # truncated at each header
    *[(f"cut-{n}", GOOD[:n], "drop_truncated", None)
      for n in (0, 1, 12, 13, 14, 17, IP, IP + 1, UDP - 1, UDP, UDP + 7, MOLD, MOLD + 19)],
    *[(f"untagged-cut-{n}", data(1, vlans=())[:n], "drop_truncated", None) for n in (13, 14, 33, 41, 61)],
    *[(f"ihl-{5 + k}-cut-in-options-{n}", data(1, ip_options=bytes([1]) * (4 * k))[:IP + n], "drop_truncated", None)
      for k, n in ((1, 20), (1, 23), (3, 31), (10, 20), (10, 59))],
    ("ihl-15-cut-in-udp", data(1, ip_options=bytes(40))[:IP + 60 + 7], "drop_truncated", None),
    *[(f"two-tags-cut-{n}", data(1, vlans=(1, 2))[:n], "drop_truncated", None) for n in (18, 21, 22, 41)],
    ("checksum", data(1, bad_checksum=True), "drop_ip_checksum", None),
    ("checksum-in-options", patch(data(1, ip_options=bytes(8)), IP + 23, b"\x01"), "drop_ip_checksum", None),
    ("checksum-before-fragment", data(1, bad_checksum=True, fragment=0x2000), "drop_ip_checksum", None),
    ("fragment-mf", data(1, fragment=0x2000), "drop_fragment", None),
    ("fragment-offset-1", data(1, fragment=0x0001), "drop_fragment", None),
    ("fragment-offset-max", data(1, fragment=0x1FFF), "drop_fragment", None),
    ("fragment-mf-df", data(1, fragment=0x6000), "drop_fragment", None),
    ("fragment-unchecked-csum", data(1, bad_checksum=True, fragment=0x0010), "drop_fragment", NO_CHECKS),
    ("fragment-before-protocol", data(1, fragment=0x2000, protocol=6), "drop_fragment", None),
    ("tcp", data(1, protocol=6), "drop_not_udp", None),
    ("icmp", data(1, protocol=1), "drop_not_udp", None),
    ("protocol-0", data(1, protocol=0), "drop_not_udp", None),
    ("not-udp-before-dst", data(1, protocol=6, dst_ip=DST_IP + 1), "drop_not_udp", DecodeConfig(ip_dst=DST_IP)),
    ("ip-dst", data(1, dst_ip=DST_IP + 1), "drop_ip_dst", DecodeConfig(ip_dst=DST_IP)),
    ("ip-dst-before-udp-length", data(1, dst_ip=DST_IP + 1, udp_length=7), "drop_ip_dst", DecodeConfig(ip_dst=DST_IP)),
    ("udp-length-0", data(1, udp_length=0), "drop_udp_length", None),
    ("udp-length-7", data(1, udp_length=7), "drop_udp_length", None),
    ("udp-length-past-ip", data(1, udp_length=8 + 58 + 1), "drop_udp_length", None),
    ("ip-total-below-headers", data(1, ip_total_length=27), "drop_udp_length", None),
    ("ip-total-0", data(1, ip_total_length=0), "drop_udp_length", None),
    ("ip-total-below-udp", data(1, ip_total_length=20 + 8 + 20), "drop_udp_length", None),
    ("ip-total-below-udp-options", data(1, ip_options=bytes(12), ip_total_length=20 + 8 + 20 + 38),
     "drop_udp_length", None),  # fits without options, not with them: IHL*4 is used
    ("udp-length-before-port", data(1, udp_length=7, dst_port=1), "drop_udp_length", DecodeConfig(port=DST_PORT)),
    ("port", data(1, dst_port=DST_PORT + 1), "drop_port", DecodeConfig(port=DST_PORT)),
    ("port-before-mold-short", udp_frame(b"x" * 19, dst_port=1), "drop_port", DecodeConfig(port=DST_PORT)),
    ("mold-empty", udp_frame(b""), "drop_mold_short", None),
    ("mold-19", udp_frame(b"x" * 19), "drop_mold_short", None),
    ("mold-udp-length-19", data(1, udp_length=8 + 19), "drop_mold_short", None),
    # 52 bytes padded to 60 plus an FCS: 22 bytes after UDP, but the UDP length says 10
    ("mold-short-padded-fcs", udp_frame(b"\x00" * 10, vlans=()) + FCS, "drop_mold_short", None),
    ("mold-short-before-truncated", udp_frame(b"x" * 19)[:UDP + 10], "drop_mold_short", None),
]


@pytest.mark.parametrize("frame,counter,config", [d[1:] for d in DROPS], ids=[d[0] for d in DROPS])
def test_dropped_frame_then_a_good_one(frame, counter, config):
    """The frame is dropped whole for ``counter`` (the first failing check) and the next one decodes."""
    config = config or DecodeConfig()
    check([frame, GOOD], [add_tick(1, seq=1, frame=1)],
          counts(2, packets=1, msgs=1, sessions=int(config.sequence_check), **{counter: 1}), config)


def test_drop_table_hits_every_drop_counter():
    assert {d[2] for d in DROPS} == {c.name for c in COUNTERS if c.name.startswith("drop_")}


def test_checksum_check_off_accepts_bad_checksum():
    frames = [data(1, bad_checksum=True), data(2, bad_checksum=True, ip_options=bytes(8))]
    check(frames, [], counts(2, drop_ip_checksum=2))
    check(frames, [add_tick(1, 1, 0), add_tick(2, 2, 1)], counts(2, 2, 2, sessions=1),
          config=DecodeConfig(check_ip_checksum=False))


ACCEPTED = [
    ("untagged", data(1, vlans=())),
    ("one-tag", data(1)),
    ("vlan-0", data(1, vlans=(0,))),
    ("two-tags", data(1, vlans=(100, 200))),
    ("88a8", patch(data(1), 12, b"\x88\xa8")),
    ("88a8-8100", patch(data(1, vlans=(100, 200)), 12, b"\x88\xa8")),
    ("8100-88a8", patch(data(1, vlans=(100, 200)), 16, b"\x88\xa8")),
    ("88a8-88a8", patch(patch(data(1, vlans=(100, 200)), 12, b"\x88\xa8"), 16, b"\x88\xa8")),
    *[(f"ihl-{5 + k}", data(1, ip_options=bytes([1]) * (4 * k))) for k in range(1, 11)],
    *[(f"ihl-{5 + k}-untagged", data(1, vlans=(), ip_options=bytes([1]) * (4 * k))) for k in (1, 2, 3, 10)],
    ("df", data(1, fragment=0x4000)),
    ("reserved-flag", data(1, fragment=0x8000)),
    ("ip-dst-match", data(1)),
    ("ip-total-above-udp", data(1, ip_total_length=20 + 8 + 58 + 40) + bytes(40)),
    ("fcs-after-payload", data(1) + FCS),
    ("garbage-after-payload", data(1) + struct.pack(">H", 36) + add(2)),
    ("udp-checksum-nonzero", patch(data(1), UDP + 6, b"\x12\x34")),
    ("any-src-port", data(1, src_port=1)),
    ("ttl-0", data(1, ttl=0)),
]


@pytest.mark.parametrize("frame", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
@pytest.mark.parametrize("config", [DecodeConfig(), DecodeConfig(ip_dst=DST_IP, port=DST_PORT)],
                         ids=["any", "filtered"])
def test_accepted_framing(frame, config):
    check([frame, data(2)], [add_tick(1, 1, 0), add_tick(2, 2, 1)], counts(2, 2, 2, sessions=1), config)


def test_port_and_ip_dst_zero_accept_anything():
    frames = [data(1, dst_port=1, dst_ip=0x01020304), data(2, dst_port=65535, dst_ip=0xFFFFFFFF)]
    check(frames, [add_tick(1, 1, 0), add_tick(2, 2, 1)], counts(2, 2, 2, sessions=1))


def test_ethernet_padding_is_not_payload():
    """A frame padded to 60 bytes: its padding is not read as MoldUDP64 bytes."""
    short = udp_frame(b"\x00" * 18, vlans=())           # 14+20+8+18 = 60: no padding needed
    padded = udp_frame(b"\x00" * 12, vlans=())          # padded to 60 with zeros
    assert len(short) == len(padded) == 60
    nonzero_pad = padded[:54] + b"\xff" * 6
    check([short, padded, nonzero_pad, GOOD], [add_tick(1, 1, 3)],
          counts(4, 1, 1, sessions=1, drop_mold_short=3))


# ------------------------------------------------------------------ the MoldUDP64 packet: blocks


def test_block_length_bytes_past_payload():
    """Count 2 but one block: block 2's length bytes lie past the UDP payload (even with bytes in the frame)."""
    short = udp_frame(mold_packet(1, [add(1)], count=2))
    with_trailer = short + struct.pack(">H", 36) + add(2)   # the frame holds it, the UDP length does not
    check([short, with_trailer, data(2)], [add_tick(1, 1, 0), add_tick(2, 2, 2)],
          counts(3, 3, 2, sessions=1, duplicates=1, bad_block_overrun=2))


@pytest.mark.parametrize("length", [37, 0xFFFF])
def test_block_runs_past_payload(length):
    payload = mold_packet(1, [add(1)], count=2) + struct.pack(">H", length) + add(2)
    check([udp_frame(payload), data(1, 2)], [add_tick(1, 1, 0), add_tick(2, 2, 1)],
          counts(2, 2, 2, sessions=1, duplicates=1, bad_block_overrun=1))


def test_udp_length_cuts_the_blocks_not_the_frame():
    """The UDP length ends the payload one byte into block 2: overrun, though the frame holds it all."""
    frame = data(1, 2, udp_length=8 + 20 + 38 + 1, ip_total_length=20 + 8 + 20 + 38 + 1)
    check([frame, data(2)], [add_tick(1, 1, 0), add_tick(2, 2, 1)],
          counts(2, 2, 2, sessions=1, bad_block_overrun=1))


def test_overrun_is_checked_before_zero_length():
    payload = mold_packet(1, [add(1)], count=2) + b"\x00"   # half a length field
    check([udp_frame(payload)], [add_tick(1, 1, 0)], counts(1, 1, 1, sessions=1, bad_block_overrun=1))


def test_zero_length_block():
    frame = udp_frame(mold_packet(1, [add(1), b"", add(3)]))
    check([frame, data(2, 2)], [add_tick(1, 1, 0), add_tick(2, 2, 1), add_tick(3, 3, 1)],
          counts(2, 2, 3, sessions=1, bad_block_length=1))


@pytest.mark.parametrize("block", [add(2)[:-1], add(2) + b"\x00", encode_message("D") + bytes(17),
                                   encode_message("Q")[:36], b"A"],
                         ids=["A-35", "A-37", "D-36", "Q-36", "A-1"])
def test_block_length_does_not_match_type(block):
    frame = udp_frame(mold_packet(1, [add(1), block, add(3)]))
    check([frame, data(2, 2)], [add_tick(1, 1, 0), add_tick(2, 2, 1), add_tick(3, 3, 1)],
          counts(2, 2, 3, sessions=1, bad_block_length=1))


BLOCK2 = MOLD + 20 + 38            # block 2 of data(1, 3): length bytes, type byte, 35 more


@pytest.mark.parametrize("cut", [BLOCK2, BLOCK2 + 1, BLOCK2 + 2, BLOCK2 + 3, BLOCK2 + 20, BLOCK2 + 37])
def test_frame_cut_mid_message(cut):
    """Cut inside block 2: message 1 delivered, the rest lost; expected stays at 2 so a later copy fills it."""
    frame = data(1, 3)
    assert len(frame) > cut
    check([frame[:cut], data(1, 3)], [add_tick(1, 1, 0), add_tick(2, 2, 1), add_tick(3, 3, 1)],
          counts(2, 2, 3, sessions=1, duplicates=1, bad_truncated=1))


def test_frame_cut_at_block_end():
    frame = data(1, 3)[:BLOCK2 + 38]
    check([frame, data(3)], [add_tick(1, 1, 0), add_tick(2, 2, 0), add_tick(3, 3, 1)],
          counts(2, 2, 3, sessions=1, bad_truncated=1))


def test_frame_cut_after_mold_header():
    check([data(1, 2)[:MOLD + 20], data(1, 2)], [add_tick(1, 1, 1), add_tick(2, 2, 1)],
          counts(2, 2, 2, sessions=1, bad_truncated=1))


def test_overrun_before_truncation_when_length_is_past_payload():
    # Block 2's declared length runs past the UDP payload and the frame is cut: the length check comes first.
    payload = mold_packet(1, [add(1)], count=2) + struct.pack(">H", 200) + add(2)
    frame = udp_frame(payload)[:BLOCK2 + 10]
    check([frame], [add_tick(1, 1, 0)], counts(1, 1, 1, sessions=1, bad_block_overrun=1))


def test_unknown_type_is_skipped_and_counts_as_received():
    frame = udp_frame(mold_packet(1, [add(1), b"Z" + bytes(11), add(3)]))
    # add(2) numbered 2 arrives later: 2 was received (as the unknown block), so it is a duplicate.
    check([frame, data(2, 3)],
          [add_tick(1, 1, 0), add_tick(3, 2, 0), add_tick(4, 3, 1)],
          counts(2, 2, 3, sessions=1, unknown_type=1, duplicates=2))


def test_unknown_type_last_in_packet_counts_as_received():
    frame = udp_frame(mold_packet(1, [add(1), b"Z" + bytes(11)]))
    check([frame, data(2), data(3)], [add_tick(1, 1, 0), add_tick(3, 2, 2)],
          counts(3, 3, 2, sessions=1, unknown_type=1, duplicates=1))


def test_unknown_type_only_packet_then_gap():
    frame = udp_frame(mold_packet(1, [b"Z" + bytes(11), b"Z" + bytes(20)]))
    check([frame, data(5)], [gap_tick(1, 3, 2, 1), add_tick(5, 2, 1)],
          counts(2, 2, 1, sessions=1, unknown_type=2, gaps=1, gap_messages=2))


@pytest.mark.parametrize("block", [b"\x00" + bytes(11), b"Z" * 12, b"z" * 500, b"\xff" + bytes(35), b"a" + bytes(12)],
                         ids=["type-0", "shortest", "long", "type-ff", "lowercase"])
def test_unknown_types_of_any_valid_length(block):
    frame = udp_frame(mold_packet(1, [block, add(2)]))
    check([frame], [add_tick(2, 1, 0)], counts(1, 1, 1, sessions=1, unknown_type=1))


@pytest.mark.parametrize("block", [b"\x00", b"Z", b"a" + bytes(10)], ids=["type-0", "one-byte", "eleven-bytes"])
def test_unknown_type_shorter_than_any_message_is_malformed(block):
    # No ITCH message is shorter than 12 bytes: the block is bad and stops the walk,
    # and the message after it is not delivered (a later copy still can be).
    frame = udp_frame(mold_packet(1, [add(1), block, add(3)]))
    check([frame, data(2, 2)], [add_tick(1, 1, 0), add_tick(2, 2, 1), add_tick(3, 3, 1)],
          counts(2, 2, 3, sessions=1, bad_block_length=1))


def test_unknown_type_duplicates_are_not_counted():
    frame = udp_frame(mold_packet(1, [add(1), b"Z" + bytes(11), add(3)]))
    check([frame, frame], [add_tick(1, 1, 0), add_tick(3, 2, 0)],
          counts(2, 2, 2, sessions=1, unknown_type=2, duplicates=2))


def test_unknown_type_cut_short_counts_both():
    frame = udp_frame(mold_packet(1, [add(1), b"Z" + bytes(30), add(3)]))
    # Message 2 (the unknown block) was lost to the cut: data(3) reports it missing.
    check([frame[:BLOCK2 + 10], data(3)],
          [add_tick(1, 1, 0), gap_tick(2, 2, 1, 1), add_tick(3, 3, 1)],
          counts(2, 2, 2, sessions=1, unknown_type=1, bad_truncated=1, gaps=1, gap_messages=1))


def test_bytes_after_the_last_block_are_ignored():
    frame = udp_frame(mold_packet(1, [add(1), add(2)], count=1))
    check([frame, data(2)], [add_tick(1, 1, 0), add_tick(2, 2, 1)], counts(2, 2, 2, sessions=1))


# ------------------------------------------------------------------ heartbeats, end of session


def test_heartbeats_and_end_of_session():
    eos = udp_frame(mold_packet(3, end_of_session=True))
    frames = [heartbeat(1), data(1, 2), heartbeat(3), heartbeat(2), eos, data(3)]
    check(frames, [add_tick(1, 1, 1), add_tick(2, 2, 1), add_tick(3, 3, 5)],
          counts(6, 6, 3, sessions=1, heartbeats=3, end_of_session=1))


def test_heartbeat_ahead_reports_a_gap():
    frames = [data(1), heartbeat(5), data(5), heartbeat(5)]
    check(frames, [add_tick(1, 1, 0), gap_tick(2, 2, 3, 1), add_tick(5, 3, 2)],
          counts(4, 4, 2, sessions=1, heartbeats=2, gaps=1, gap_messages=3))


def test_end_of_session_ahead_reports_a_gap():
    frames = [data(1), udp_frame(mold_packet(4, end_of_session=True))]
    check(frames, [add_tick(1, 1, 0), gap_tick(2, 2, 2, 1)],
          counts(2, 2, 1, sessions=1, end_of_session=1, gaps=1, gap_messages=2))


def test_heartbeat_of_a_new_session_starts_it():
    frames = [data(1), heartbeat(50, session=OTHER_SESSION), data(50, session=OTHER_SESSION)]
    check(frames, [add_tick(1, 1, 0), add_tick(50, 2, 2)], counts(3, 3, 2, sessions=2, heartbeats=1))


def test_heartbeats_without_sequence_check():
    frames = [data(1), heartbeat(9), udp_frame(mold_packet(9, end_of_session=True))]
    check(frames, [add_tick(1, 1, 0)], counts(3, 3, 1, heartbeats=1, end_of_session=1), NO_CHECKS)


# ------------------------------------------------------------------ sequence processing


def test_ab_copies_interleaved_deliver_each_message_once():
    a = lambda s, n: data(s, n)                                            # noqa: E731
    b = lambda s, n: data(s, n, dst_ip=0xE931C46F, dst_port=26478, src_ip=0xCEC87F8B)  # noqa: E731
    frames = [a(1, 2), b(1, 2), b(3, 1), a(3, 1), a(4, 2), b(4, 2), b(6, 3), a(6, 3)]
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 0), add_tick(3, 3, 2), add_tick(4, 4, 4),
                add_tick(5, 5, 4), add_tick(6, 6, 6), add_tick(7, 7, 6), add_tick(8, 8, 6)]
    check(frames, expected, counts(8, 8, 8, sessions=1, duplicates=8))


def test_overlapping_packets_deliver_only_the_new_messages():
    check([data(1, 3), data(2, 3)], [add_tick(1, 1, 0), add_tick(2, 2, 0), add_tick(3, 3, 0), add_tick(4, 4, 1)],
          counts(2, 2, 4, sessions=1, duplicates=2))


def test_gap_event():
    frames = [data(1), data(4, 2), data(2, 2), data(10)]
    expected = [add_tick(1, 1, 0), gap_tick(2, 2, 2, 1), add_tick(4, 3, 1), add_tick(5, 4, 1),
                gap_tick(5, 6, 4, 3), add_tick(10, 6, 3)]
    # the late retransmission of 2..3 is behind: duplicates, not a fill
    check(frames, expected, counts(4, 4, 4, sessions=1, gaps=2, gap_messages=6, duplicates=2))


def test_gap_before_a_bad_block_stays():
    frame = udp_frame(mold_packet(3, [b""]))
    check([data(1), frame, data(3)], [add_tick(1, 1, 0), gap_tick(2, 2, 1, 1), add_tick(3, 3, 2)],
          counts(3, 3, 2, sessions=1, gaps=1, gap_messages=1, bad_block_length=1))


def test_session_change_resets_without_gap():
    frames = [data(5, 2), data(100, session=OTHER_SESSION), data(1, session=OTHER_SESSION),
              data(7), data(3, session=OTHER_SESSION)]
    # back to the first session: it is new again (one register set), so 7 starts it without a gap
    expected = [add_tick(5, 1, 0), add_tick(6, 2, 0), add_tick(100, 3, 1), add_tick(7, 4, 3),
                add_tick(3, 5, 4)]
    check(frames, expected, counts(5, 5, 5, sessions=4, duplicates=1))


def test_sequence_check_off_delivers_everything():
    frames = [data(1, 2), data(1, 2), data(10), data(2, 2, session=OTHER_SESSION), data(4)]
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 0), add_tick(1, 3, 1), add_tick(2, 4, 1), add_tick(10, 5, 2),
                add_tick(2, 6, 3), add_tick(3, 7, 3), add_tick(4, 8, 4)]
    check(frames, expected, counts(5, 5, 8), DecodeConfig(sequence_check=False))


def test_seq_is_one_based_and_contiguous_and_ts_rx_is_capture_time():
    frames = [data(1, 3), data(8, 2), data(2, 5), heartbeat(20)]
    ticks, c = decode(frames)
    assert [t["seq"] for t in ticks] == list(range(1, len(ticks) + 1)) == list(range(1, c["ticks"] + 1))
    assert [t["ts_rx"] for t in ticks] == [ts_of(f) for f in (0, 0, 0, 1, 1, 1, 3)]
    assert [t["feed_seq"] for t in ticks] == [1, 2, 3, 4, 8, 9, 10]
    assert [t["ref2"] for t in ticks if t["flags"] == Flag.EVENT_GAP] == [4, 10]


def test_decoder_state_continues_across_batches():
    dec = Decoder()
    t1 = dec.decode(FrameBatch.from_frames([data(1, 2)]))
    t2 = dec.decode(FrameBatch.from_frames([data(2, 2), data(6)]))
    assert list(t1["seq"]) == [1, 2] and list(t2["seq"]) == [3, 4, 5]
    assert list(t2["feed_seq"]) == [3, 4, 6] and list(t2["flags"]) == [0, Flag.EVENT_GAP, 0]
    assert dec.counters["duplicates"] == 1 and dec.counters["ticks"] == 5


# ------------------------------------------------------------------ frames flagged bad by the MAC


def test_abort_rolls_back_so_the_good_copy_is_delivered():
    frames = [data(1), data(2, 2), data(2, 2)]
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 1), add_tick(3, 3, 1), abort_tick(4, 2, 3, 1),
                add_tick(2, 5, 2), add_tick(3, 6, 2)]
    check(frames, expected, counts(3, 3, 5, sessions=1, bad_fcs=1, aborts=1), bad=[1])


def test_abort_covers_the_gap_event():
    frames = [data(1), data(4), data(4)]
    expected = [add_tick(1, 1, 0), gap_tick(2, 2, 2, 1), add_tick(4, 3, 1), abort_tick(4, 2, 3, 1),
                gap_tick(5, 2, 2, 2), add_tick(4, 6, 2)]
    check(frames, expected, counts(3, 3, 3, sessions=1, bad_fcs=1, aborts=1, gaps=2, gap_messages=4), bad=[1])


def test_abort_of_a_gap_only_frame():
    frames = [data(1), heartbeat(4), data(2, 2)]
    expected = [add_tick(1, 1, 0), gap_tick(2, 2, 2, 1), abort_tick(3, 2, 2, 1), add_tick(2, 4, 2),
                add_tick(3, 5, 2)]
    check(frames, expected, counts(3, 3, 3, sessions=1, heartbeats=1, bad_fcs=1, aborts=1, gaps=1,
                                   gap_messages=2), bad=[1])


def test_abort_of_a_session_start_restores_no_session():
    frames = [data(1, 2), data(1, 2)]
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 0), abort_tick(3, 1, 2, 0), add_tick(1, 4, 1), add_tick(2, 5, 1)]
    check(frames, expected, counts(2, 2, 4, sessions=2, bad_fcs=1, aborts=1), bad=[0])


def test_abort_of_a_session_change_restores_the_old_session():
    frames = [data(1), data(9, session=OTHER_SESSION), data(2)]
    expected = [add_tick(1, 1, 0), add_tick(9, 2, 1), abort_tick(3, 2, 2, 1), add_tick(2, 4, 2)]
    check(frames, expected, counts(3, 3, 3, sessions=2, bad_fcs=1, aborts=1), bad=[1])


def test_abort_after_a_bad_block_keeps_its_messages_counted():
    frame = udp_frame(mold_packet(2, [add(2), b""]))
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 1), abort_tick(3, 2, 2, 1), add_tick(2, 4, 2), add_tick(3, 5, 2)]
    check([data(1), frame, data(2, 2)], expected,
          counts(3, 3, 4, sessions=1, bad_fcs=1, aborts=1, bad_block_length=1), bad=[1])


@pytest.mark.parametrize("frame", [ARP, data(1), heartbeat(2), GOOD[:30], udp_frame(mold_packet(2, [b""]))],
                         ids=["dropped", "duplicate", "heartbeat", "truncated", "bad-block"])
def test_bad_frame_without_ticks_gives_no_abort(frame):
    _, c0 = decode([data(1), frame, data(2)], bad=[])
    ticks, c = decode([data(1), frame, data(2)], bad=[1])
    assert [t["feed_seq"] for t in ticks] == [1, 2] and not any(t["flags"] for t in ticks)
    assert c == {**c0, "bad_fcs": 1}


def test_abort_without_sequence_check():
    frames = [data(1), data(1), data(1)]
    expected = [add_tick(1, 1, 0), add_tick(1, 2, 1), abort_tick(3, 2, 2, 1), add_tick(1, 4, 2)]
    check(frames, expected, counts(3, 3, 3, bad_fcs=1, aborts=1), NO_CHECKS, bad=[1])


def test_two_bad_copies_then_a_good_one():
    frames = [data(1), data(2), data(2), data(2)]
    expected = [add_tick(1, 1, 0), add_tick(2, 2, 1), abort_tick(3, 2, 2, 1), add_tick(2, 4, 2),
                abort_tick(5, 4, 4, 2), add_tick(2, 6, 3)]
    check(frames, expected, counts(4, 4, 4, sessions=1, bad_fcs=2, aborts=2), bad=[1, 2])


# ------------------------------------------------------------------ per-type rules


@pytest.mark.parametrize("shares,tick_shares,flags", [
    (0, 0, 0), (7, 7, 0), (0xFFFF_FFFE, 0xFFFF_FFFE, 0), (0xFFFF_FFFF, 0xFFFF_FFFF, 0),
    (1 << 32, 0xFFFF_FFFF, Flag.SATURATED), ((1 << 32) + 5, 0xFFFF_FFFF, Flag.SATURATED),
    ((1 << 64) - 1, 0xFFFF_FFFF, Flag.SATURATED)])
def test_cross_trade_shares_saturate(shares, tick_shares, flags):
    msg = encode_message("Q", stock_locate=12, tracking_number=3, timestamp=57_600_000_000_001, shares=shares,
                         stock="ZVZZT", cross_price=1_000_100, match_number=0x0102030405060708, cross_type="C")
    check([udp_frame(mold_packet(1, [msg]))],
          [tick(seq=1, ts_rx=ts_of(0), feed_seq=1, ts_exch=57_600_000_000_001, ref2=0x0102030405060708,
                price=1_000_100, shares=tick_shares, locate=12, tracking=3, flags=flags, msg_type=ord("Q"),
                side=ord("C"))],
          {"frames": 1, "packets": 1, "messages": 1, "msg_Q": 1, "sessions": 1, "ticks": 1})


@pytest.mark.parametrize("printable,flags", [("Y", Flag.PRINTABLE), ("N", 0), ("y", 0), (" ", 0), ("\x00", 0)])
def test_executed_with_price_printable_flag(printable, flags):
    msg = encode_message("C", stock_locate=2, tracking_number=9, timestamp=1, order_ref=77, executed_shares=300,
                         match_number=123456789, printable=printable, execution_price=2_500_000)
    check([udp_frame(mold_packet(1, [msg]))],
          [tick(seq=1, ts_rx=ts_of(0), feed_seq=1, ts_exch=1, order_ref=77, ref2=123456789, price=2_500_000,
                shares=300, locate=2, tracking=9, flags=flags, msg_type=ord("C"))],
          {"frames": 1, "packets": 1, "messages": 1, "msg_C": 1, "sessions": 1, "ticks": 1})


def test_order_replace_and_spanning_fields():
    msgs = [encode_message("U", stock_locate=1, timestamp=2, original_order_ref=11, new_order_ref=12, shares=5,
                           price=6),
            encode_message("V", level1=1, level2=2, level3=0x1122334455667788),
            encode_message("J", stock="AB", ref_price=3, upper_price=0xAAAA0001, lower_price=0xBBBB0002, extension=4)]
    common = dict(ts_rx=ts_of(0))
    check([udp_frame(mold_packet(1, msgs))],
          [tick(seq=1, feed_seq=1, ts_exch=2, locate=1, order_ref=11, ref2=12, shares=5, price=6,
                msg_type=ord("U"), **common),
           tick(seq=2, feed_seq=2, order_ref=1, ref2=2, price=0x55667788, shares=0x11223344, msg_type=ord("V"),
                **common),
           tick(seq=3, feed_seq=3, ref2=int.from_bytes(b"AB      ", "little"), price=3,
                order_ref=0xBBBB0002_AAAA0001, shares=4, msg_type=ord("J"), **common)],
          {"frames": 1, "packets": 1, "messages": 3, "msg_U": 1, "msg_V": 1, "msg_J": 1, "sessions": 1, "ticks": 3})


# ------------------------------------------------------------------ batches, files


def _mixed_capture() -> FrameBatch:
    """A generated A/B feed with losses, plus garbage frames and frames flagged bad, interleaved."""
    from wiretick.host.gen import GenConfig, generate

    gen = generate(GenConfig(messages=4000, symbols=8, seed=11, ab=True, gap_rate=0.05, all_types=True,
                             max_messages_per_packet=12))
    frames = [gen.frame(i) for i in range(len(gen))]
    ts = [int(t) for t in gen.ts_ns]
    garbage = [d[1] for d in DROPS] + [data(1, 3)[:BLOCK2 + 3], udp_frame(mold_packet(3, [b""]))]
    rng = np.random.default_rng(5)
    out_f, out_ts, out_bad = [], [], []
    for i, f in enumerate(frames):
        if rng.random() < 0.05:
            out_f.append(garbage[int(rng.integers(len(garbage)))])
            out_ts.append(ts[i])
            out_bad.append(bool(rng.random() < 0.3))
        out_f.append(f)
        out_ts.append(ts[i])
        out_bad.append(bool(rng.random() < 0.02))
    return FrameBatch.from_frames(out_f, ts_ns=out_ts, bad=out_bad)


@pytest.fixture(scope="module")
def mixed_capture() -> FrameBatch:
    return _mixed_capture()


def _slice(b: FrameBatch, i: int, j: int) -> FrameBatch:
    return FrameBatch(b.buf, b.offset[i:j], b.length[i:j], b.ts_ns[i:j], b.bad[i:j])


@pytest.mark.parametrize("config", [DecodeConfig(), NO_CHECKS], ids=["default", "no-checks"])
def test_batch_splitting_is_invisible(mixed_capture, config):
    whole = decode_batch(mixed_capture, config)
    c = whole.counters
    if config.sequence_check:
        assert c["gaps"] and c["duplicates"] and c["sessions"] > 1 and c["drop_ip_checksum"]
    assert c["aborts"] and c["bad_fcs"] and c["bad_truncated"] and c["bad_block_length"] and c["messages"] > 3000
    n = len(mixed_capture)
    for size in (1, 7, 1000):
        dec = Decoder(config)
        parts = [dec.decode(_slice(mixed_capture, i, min(i + size, n))) for i in range(0, n, size)]
        ticks = np.concatenate(parts)
        assert np.array_equal(ticks, whole.ticks), size
        assert dec.counters == c, size
    # a tiny output chunk forces the decoder to stop and resume inside a batch
    small = Decoder(config, chunk_ticks=1)
    parts = list(small.feed(mixed_capture))
    assert len(parts) > 100
    assert np.array_equal(np.concatenate(parts), whole.ticks) and small.counters == c


def test_generated_feed_counters_match_its_stats():
    from wiretick.host.gen import GenConfig, generate_with_stats

    batch, stats = generate_with_stats(GenConfig(messages=5000, symbols=10, seed=2, ab=True, gap_rate=0.1))
    res = decode_batch(batch)
    c = res.counters
    assert stats.gaps > 0
    assert (c["gaps"], c["gap_messages"]) == (stats.gaps, stats.gap_messages)
    assert c["messages"] == stats.messages - stats.gap_messages == c["duplicates"]
    assert c["frames"] == c["packets"] == stats.frames
    assert sorted(res.ticks["feed_seq"][res.ticks["msg_type"] != 0]) == list(
        np.setdiff1d(np.arange(1, stats.messages + 1), _lost(res.ticks)))


def _lost(ticks: np.ndarray) -> np.ndarray:
    gaps = ticks[ticks["flags"] == Flag.EVENT_GAP]
    return np.concatenate([np.arange(int(g["feed_seq"]), int(g["feed_seq"] + g["ref2"])) for g in gaps] or
                          [np.zeros(0, np.int64)])


def test_decode_file_writes_the_same_ticks(tmp_path, mixed_capture):
    pcapng = tmp_path / "mixed.pcapng"
    write_pcapng(pcapng, mixed_capture)
    want = decode_batch(mixed_capture)
    out = tmp_path / "ticks.npy"
    res = decode_file(pcapng, out, batch_frames=777)
    loaded = np.load(out)
    assert loaded.dtype == TICK_DTYPE and np.array_equal(loaded, want.ticks)
    mapped = np.load(out, mmap_mode="r")
    assert mapped.offset % 64 == 0 and np.array_equal(mapped, want.ticks)
    assert res.counters == want.counters and len(res.ticks) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed.pcapng", "ticks.npy"]
    in_memory = decode_file(pcapng)
    assert np.array_equal(in_memory.ticks, want.ticks) and in_memory.counters == want.counters


def test_decode_file_on_a_bad_capture_leaves_no_output(tmp_path, mixed_capture):
    cap = tmp_path / "cut.pcap"
    write_pcap(cap, mixed_capture)
    cap.write_bytes(cap.read_bytes()[:-7])  # the last record is cut short
    out = tmp_path / "ticks.npy"
    with pytest.raises(CaptureError) as ei:
        decode_file(cap, out, batch_frames=100)
    assert str(cap) in str(ei.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.pcap"]


def test_decode_file_shared_capture(tmp_path, captures_dir):
    path = captures_dir / "live-Multiple.Packets.pcap"
    out = tmp_path / "t.npy"
    res = decode_file(path, out)
    want = decode_batch(read_frames(path))
    assert np.array_equal(np.load(out), want.ticks) and res.counters == want.counters
    assert res.counters["messages"] == 39


# ------------------------------------------------------------------ the command line


def test_cli_decode(tmp_path, captures_dir, capsys):
    path = captures_dir / "live-Multiple.Packets.pcap"
    out = tmp_path / "t.npy"
    assert cli.main(["decode", str(path), "-o", str(out)]) == 0
    assert np.array_equal(np.load(out), decode_batch(read_frames(path)).ticks)
    err = capsys.readouterr().err
    assert "frames=2" in err and "messages=39" in err and "gaps=1" in err and "A=36" in err


def test_cli_decode_options(tmp_path, captures_dir, capsys):
    path = captures_dir / "sanitized-OrderExecuted.pcap"
    out = tmp_path / "t.npy"
    assert cli.main(["decode", str(path), "-o", str(out)]) == 0
    assert len(np.load(out)) == 0 and "drop_ip_checksum=5" in capsys.readouterr().err
    assert cli.main(["decode", str(path), "-o", str(out), "--no-ip-checksum", "--no-sequence-check"]) == 0
    assert len(np.load(out)) == 5 and "messages=5" in capsys.readouterr().err
    assert cli.main(["decode", str(path), "-o", str(out), "--no-ip-checksum", "--port", "1"]) == 0
    assert len(np.load(out)) == 0 and "drop_port=5" in capsys.readouterr().err


def test_cli_decode_subprocess(tmp_path, captures_dir):
    path = captures_dir / "live-OrderExecutedMessage.pcap"
    out = tmp_path / "t.npy"
    p = subprocess.run([sys.executable, "-m", "wiretick.host.cli", "decode", str(path), "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "messages=1" in p.stderr and "E=1" in p.stderr
    assert np.array_equal(np.load(out), decode_batch(read_frames(path)).ticks)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (file, the byte offset the message must name, or None)."""
    text = tmp_path / "notes.txt"
    text.write_text("not a capture at all\n")
    cut = tmp_path / "cut.pcap"
    write_pcap(cut, FrameBatch.from_frames([data(1, 3), data(4, 3)]))
    cut.write_bytes(cut.read_bytes()[:-5])
    record2 = 24 + 16 + len(data(1, 3))
    return {"not-a-capture": (text, "byte 0"), "truncated": (cut, f"byte {record2}"),
            "missing": (tmp_path / "nope.pcap", None)}


@pytest.mark.parametrize("case", ["not-a-capture", "truncated", "missing"])
def test_cli_decode_errors(tmp_path, capsys, case):
    path, offset = _bad_inputs(tmp_path)[case]
    before = sorted(tmp_path.iterdir())
    out = tmp_path / "t.npy"
    assert cli.main(["decode", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and err.startswith("wiretick decode: error: ")
    if offset:
        assert offset in err
    assert sorted(tmp_path.iterdir()) == before


def test_cli_decode_error_subprocess(tmp_path):
    path, offset = _bad_inputs(tmp_path)["truncated"]
    out = tmp_path / "t.npy"
    exe = shutil.which("wiretick")
    cmd = [exe] if exe else [sys.executable, "-m", "wiretick.host.cli"]
    p = subprocess.run(cmd + ["decode", str(path), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and str(path) in p.stderr and offset in p.stderr
    assert not out.exists() and not Path(str(out) + ".partial").exists()


# ------------------------------------------------------------------ robustness (hypothesis)

TAIL_SESSION = b"TAILTAIL01"
TAIL = data(7, 2, session=TAIL_SESSION)


def _layout(tags: int, ihl: int) -> dict[str, int]:
    ip = 14 + 4 * tags
    udp = ip + 4 * ihl
    return {"ethertype": 12, "ihl": ip, "ip_total": ip + 2, "frag": ip + 6, "proto": ip + 8, "udp_len": udp + 4,
            "mold_seq": udp + 8 + 16, "mold_count": udp + 8 + 18, "block_len": udp + 8 + 20}


BASES = [
    (data(1, 3), _layout(1, 5)),
    (data(1, 2, vlans=()), _layout(0, 5)),
    (data(1, 2, vlans=(1, 2), ip_options=bytes([1]) * 12), _layout(2, 8)),
    (udp_frame(mold_packet(1, [add(1), b"Z" + bytes(5), encode_message("Q", shares=1 << 40)])), _layout(1, 5)),
    (heartbeat(3), _layout(1, 5)),
]

mutation = st.one_of(
    st.tuples(st.just("xor"), st.integers(0, 300), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 300)),
    st.tuples(st.just("set16"), st.sampled_from(sorted(_layout(0, 5))), st.integers(0, 0xFFFF)),
    st.tuples(st.just("set16at"), st.integers(0, 300), st.integers(0, 0xFFFF)),
    st.tuples(st.just("append"), st.binary(max_size=40)),
)


def _mutate(frame: bytes, layout: dict[str, int], ops) -> bytes:
    f = bytearray(frame)
    for op in ops:
        if op[0] == "xor" and f:
            f[op[1] % len(f)] ^= op[2]
        elif op[0] == "cut":
            del f[op[1]:]
        elif op[0] in ("set16", "set16at"):
            pos = layout[op[1]] if op[0] == "set16" else op[1]
            if op[1] == "ihl":
                if pos < len(f):
                    f[pos] = op[2] & 0xFF
            elif pos + 2 <= len(f):
                f[pos:pos + 2] = op[2].to_bytes(2, "big")
        elif op[0] == "append":
            f += op[1]
    return bytes(f)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=st.sampled_from(range(len(BASES))), ops=st.lists(mutation, min_size=1, max_size=6),
       bad=st.booleans(), seq_check=st.booleans(), csum=st.booleans())
def test_corrupted_frames_never_break_the_decoder(base, ops, bad, seq_check, csum):
    frame, layout = BASES[base]
    junk = _mutate(frame, layout, ops)
    config = DecodeConfig(check_ip_checksum=csum, sequence_check=seq_check)

    # The frame alone: its result must not depend on the bytes that follow it in memory.
    results = []
    for filler in (bytes(400), b"\xff" * 400, (b"\x00\x24" + add(1)) * 11):  # the last looks like blocks
        buf = np.frombuffer(junk + filler, np.uint8)
        fb = FrameBatch(buf, np.zeros(1, np.int64), np.array([len(junk)], np.int64), np.array([5], np.uint64),
                        np.array([bad]))
        r = decode_batch(fb, config)
        results.append((r.ticks.tobytes(), r.counters))
    assert results[0] == results[1] == results[2]

    # Followed by a valid frame of another session: that frame always decodes to its two messages.
    ticks, c = decode([junk, TAIL], config, bad=[0] if bad else [])
    n = len(ticks)
    assert [t["seq"] for t in ticks] == list(range(1, n + 1)) and c.get("ticks", 0) == n
    assert ticks[-2:] == [add_tick(7, n - 1, 1), add_tick(8, n, 1)]
    assert c["frames"] == 2
    assert sum(v for k, v in c.items() if k.startswith("drop_")) + c.get("packets", 0) == 2
    msgs = sum(t["msg_type"] != 0 for t in ticks)
    assert c.get("messages", 0) == msgs
    events = [t["flags"] for t in ticks if t["msg_type"] == 0]
    assert events.count(Flag.EVENT_GAP) == c.get("gaps", 0)
    assert events.count(Flag.EVENT_ABORT) == c.get("aborts", 0) <= 1
    assert len(events) == c.get("gaps", 0) + c.get("aborts", 0)
    if c.get("aborts"):
        a = next(t for t in ticks if t["flags"] == Flag.EVENT_ABORT)
        assert (a["order_ref"], a["ref2"]) == (1, a["seq"] - 1)
    if not seq_check:
        assert not c.get("gaps") and not c.get("duplicates") and not c.get("sessions")


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=120), tags=st.integers(0, 2), ihl=st.integers(5, 15))
def test_random_payloads_never_break_the_decoder(payload, tags, ihl):
    frame = udp_frame(payload, vlans=(5,) * tags, ip_options=bytes(4 * (ihl - 5)))
    ticks, c = decode([frame, TAIL])
    assert ticks[-2:] == [add_tick(7, len(ticks) - 1, 1), add_tick(8, len(ticks), 1)]
    assert sum(v for k, v in c.items() if k.startswith("drop_")) + c.get("packets", 0) == 2
