"""Capture reading: classic pcap and pcapng, real captures, round trips, errors, batching."""

from __future__ import annotations

import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretick.host.capture import (
    MAX_RECORD, Capture, CaptureError, FrameBatch, open_capture, read_frames, write_pcap, write_pcapng,
)

# Frame lengths per shared capture, counted by hand from the files' record headers.
SHARED = {
    "live-AddOrderNoMpidAttributionMessage.pcap": [104],
    "live-MarketParticipantPositionMessage.pcap": [94],
    "live-Multiple.Packets.pcap": [87, 1518],
    "live-NetOrderImbalanceIndicatorMessage.pcap": [118],
    "live-OrderDeleteMessage.pcap": [87],
    "live-OrderExecutedMessage.pcap": [99],
    "live-OrderReplaceMessage.pcap": [103],
    "live-StockTradingActionMessage.pcap": [93],
    "sanitized-AddOrderNoMPID.pcap": [104] * 5,
    "sanitized-AddOrderWithMPID.pcap": [108] * 5,
    "sanitized-CrossTrade.pcap": [108] * 5,
    "sanitized-LULDAuctionCollar.pcap": [103] * 5,
    "sanitized-MarketParticipantPosition.pcap": [94] * 5,
    "sanitized-NetOrderImbalanceIndicator.pcap": [118] * 5,
    "sanitized-NonCrossTrade.pcap": [112] * 5,
    "sanitized-OrderCancel.pcap": [91] * 5,
    "sanitized-OrderDelete.pcap": [87] * 5,
    "sanitized-OrderExecuted.pcap": [99] * 5,
    "sanitized-OrderExecutedWithPrice.pcap": [104] * 5,
    "sanitized-OrderReplace.pcap": [103] * 5,
    "sanitized-RegSHORestriction.pcap": [88] * 5,
    "sanitized-StockTradingAction.pcap": [93] * 5,
    "sanitized-SystemEvent.pcap": [80],
}


def frames_of(batch: FrameBatch) -> list[bytes]:
    return [batch.frame(i) for i in range(len(batch))]


def read_all(path, **kw) -> tuple[list[bytes], list[int], list[bool]]:
    frames, ts, bad = [], [], []
    with open_capture(path, **kw) as cap:
        for b in cap:
            frames += frames_of(b)
            ts += [int(t) for t in b.ts_ns]
            bad += [bool(x) for x in b.bad]
    return frames, ts, bad


def sample_frames(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, int(rng.integers(14, 200)), dtype=np.uint8).tobytes() for _ in range(n)]


def raw_error(path) -> CaptureError:
    """The error reading ``path`` raises, whether at open or while walking."""
    with pytest.raises(CaptureError) as ei:
        read_frames(path)
    e = ei.value
    assert "\n" not in str(e) and str(path) in str(e)
    return e


# ---- building captures by hand (so the reader is not only checked against our writers)

def pcap_bytes(records, *, be=False, ns=True, linktype=1, version=(2, 4)) -> bytes:
    """Classic pcap from ``(ts_sec, ts_frac, data, orig_len)`` records."""
    e = ">" if be else "<"
    out = struct.pack(e + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, *version, 0, 0, 65535, linktype)
    for sec, frac, data, orig in records:
        out += struct.pack(e + "IIII", sec, frac, len(data), orig) + data
    return out


def opt(code: int, value: bytes, e: str = "<") -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def shb(e: str = "<") -> bytes:
    return block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)


def idb(linktype: int = 1, opts: bytes = b"", e: str = "<") -> bytes:
    return block(1, struct.pack(e + "HHI", linktype, 0, 0) + (opts + opt(0, b"", e) if opts else b""), e)


def epb(iface: int, ts: int, data: bytes, opts: bytes = b"", e: str = "<") -> bytes:
    pad = b"\0" * (-len(data) % 4)
    body = struct.pack(e + "IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)) + data + pad
    return block(6, body + (opts + opt(0, b"", e) if opts else b""), e)


def spb(data: bytes, e: str = "<") -> bytes:
    return block(3, struct.pack(e + "I", len(data)) + data, e)


# ---- the shared real captures

@pytest.mark.parametrize("name", sorted(SHARED))
def test_shared_captures(name, captures_dir):
    path = captures_dir / name
    raw = path.read_bytes()
    with open_capture(path) as cap:
        assert (cap.format, cap.linktype) == ("pcap", 1)
        batches = list(cap)
    assert len(batches) == 1
    b = batches[0]
    assert list(b.length) == SHARED[name]
    # Independent walk with struct: every record, its bytes and its ns timestamp.
    p = 24
    for i in range(len(b)):
        sec, nsec, incl, _orig = struct.unpack_from("<IIII", raw, p)
        assert (int(b.offset[i]), int(b.ts_ns[i])) == (p + 16, sec * 10**9 + nsec)
        assert b.frame(i) == raw[p + 16:p + 16 + incl]
        p += 16 + incl
    assert p == len(raw)
    # Every frame is VLAN-tagged Ethernet (README), so offsets really land on frame starts.
    assert all(f[12:14] == b"\x81\x00" for f in frames_of(b))
    assert not b.bad.any()


def test_shared_capture_is_zero_copy_and_read_only(captures_dir):
    b = read_frames(captures_dir / "live-Multiple.Packets.pcap")
    assert not b.buf.flags.writeable
    assert len(b.buf) == (captures_dir / "live-Multiple.Packets.pcap").stat().st_size
    base = b.buf
    while not isinstance(base, np.memmap) and base.base is not None:
        base = base.base
    assert isinstance(base, np.memmap)


# ---- round trips through our writers

def test_round_trip_pcap_ns_and_us(tmp_path):
    frames = sample_frames(50)
    ts = [1_692_711_000_000_000_000 + 1_234_567 * i for i in range(50)]
    batch = FrameBatch.from_frames(frames, ts)
    write_pcap(tmp_path / "ns.pcap", batch, nanosecond=True)
    assert read_all(tmp_path / "ns.pcap") == (frames, ts, [False] * 50)
    write_pcap(tmp_path / "us.pcap", batch, nanosecond=False)
    assert read_all(tmp_path / "us.pcap") == (frames, [t // 1000 * 1000 for t in ts], [False] * 50)
    assert (tmp_path / "us.pcap").read_bytes()[:4] == b"\xd4\xc3\xb2\xa1"


def test_round_trip_pcapng_with_bad_flags(tmp_path):
    frames = sample_frames(40, seed=3)
    ts = [(1 << 62) + 977 * i for i in range(40)]  # needs all 64 timestamp bits
    bad = [i % 7 == 2 for i in range(40)]
    write_pcapng(tmp_path / "x.pcapng", FrameBatch.from_frames(frames, ts, bad))
    with open_capture(tmp_path / "x.pcapng") as cap:
        assert (cap.format, cap.linktype) == ("pcapng", 1)
    assert read_all(tmp_path / "x.pcapng") == (frames, ts, bad)


def test_round_trip_empty_capture(tmp_path):
    for w, name in ((write_pcap, "e.pcap"), (write_pcapng, "e.pcapng")):
        w(tmp_path / name, FrameBatch.from_frames([]))
        assert len(read_frames(tmp_path / name)) == 0
        with open_capture(tmp_path / name) as cap:
            assert list(cap) == []


def test_write_pcap_refuses_timestamps_past_2106(tmp_path):
    with pytest.raises(ValueError, match="2106"):
        write_pcap(tmp_path / "x.pcap", FrameBatch.from_frames([b"x" * 60], [(1 << 32) * 10**9]))


frame_lists = st.lists(
    st.tuples(st.binary(min_size=0, max_size=300), st.integers(0, (1 << 32) * 10**9 - 1), st.booleans()),
    max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame_lists, st.integers(1, 8))
def test_round_trip_property(tmp_path, items, batch_frames):
    frames = [f for f, _, _ in items]
    ts = [t for _, t, _ in items]
    bad = [b for _, _, b in items]
    batch = FrameBatch.from_frames(frames, ts, bad)
    write_pcap(tmp_path / "p.pcap", batch)
    assert read_all(tmp_path / "p.pcap", batch_frames=batch_frames) == (frames, ts, [False] * len(items))
    write_pcap(tmp_path / "u.pcap", batch, nanosecond=False)
    assert read_all(tmp_path / "u.pcap", batch_frames=batch_frames)[1] == [t // 1000 * 1000 for t in ts]
    write_pcapng(tmp_path / "p.pcapng", batch)
    assert read_all(tmp_path / "p.pcapng", batch_frames=batch_frames) == (frames, ts, bad)


# ---- classic pcap variants

@pytest.mark.parametrize("ns", [True, False])
def test_big_endian_pcap(tmp_path, ns):
    frames = sample_frames(4, seed=5)
    recs = [(1_700_000_000 + i, 999_999 - i, f, len(f)) for i, f in enumerate(frames)]
    (tmp_path / "be.pcap").write_bytes(pcap_bytes(recs, be=True, ns=ns))
    got, ts, _ = read_all(tmp_path / "be.pcap")
    assert got == frames
    assert ts == [(1_700_000_000 + i) * 10**9 + (999_999 - i) * (1 if ns else 1000) for i in range(4)]


def test_snaplen_cut_frames_hold_captured_bytes(tmp_path):
    full = sample_frames(3, seed=7)
    recs = [(1, 0, f[:20], len(f)) for f in full]
    (tmp_path / "s.pcap").write_bytes(pcap_bytes(recs))
    b = read_frames(tmp_path / "s.pcap")
    assert list(b.length) == [20, 20, 20] and frames_of(b) == [f[:20] for f in full]


# ---- pcapng variants

def test_pcapng_us_default_two_interfaces_spb_and_unknown_blocks(tmp_path):
    f = sample_frames(5, seed=11)
    data = (shb()
            + idb()                                       # interface 0: no if_tsresol -> µs
            + block(0x0BAD, b"whatever a tool wants")     # unknown block: skipped by its length
            + idb(opts=opt(9, bytes([3])))                # interface 1: ms
            + epb(0, 1_700_000_000_123_456, f[0])
            + epb(1, 1_700_000_000_789, f[1], opt(2, struct.pack("<I", 1 << 24)))
            + block(5, b"\0" * 16)                        # interface statistics: skipped
            + spb(f[2])
            + epb(1, 5, f[3], opt(1, b"a comment") + opt(2, struct.pack("<I", 1)))  # flags without CRC bit
            + idb(opts=opt(9, bytes([0x80 | 10])) + opt(14, struct.pack("<q", 100)))  # 2^-10 s, +100 s
            + epb(2, (7 << 10) + 512, f[4]))
    (tmp_path / "x.pcapng").write_bytes(data)
    frames, ts, bad = read_all(tmp_path / "x.pcapng")
    assert frames == f
    assert ts == [1_700_000_000_123_456_000, 1_700_000_000_789_000_000, 0, 5_000_000, 107_500_000_000]
    assert bad == [False, True, False, False, False]


def test_pcapng_sections_of_both_byte_orders(tmp_path):
    f = sample_frames(4, seed=13)
    data = (shb(">") + idb(opts=opt(9, bytes([9]), ">"), e=">") + epb(0, 10, f[0], e=">")
            + epb(0, 11, f[1], opt(2, struct.pack(">I", 1 << 24), ">"), e=">")
            # The new section's interface 0 replaces the old one (µs, not ns).
            + shb("<") + idb() + epb(0, 12, f[2]) + epb(0, 13, f[3]))
    (tmp_path / "x.pcapng").write_bytes(data)
    with open_capture(tmp_path / "x.pcapng") as cap:
        assert cap.linktype == 1
    assert read_all(tmp_path / "x.pcapng") == (f, [10, 11, 12_000, 13_000], [False, True, False, False])
    for n in (1, 2, 3):
        assert read_all(tmp_path / "x.pcapng", batch_frames=n)[0] == f


def test_pcapng_simple_packet_cut_by_snaplen_and_fine_binary_resolution(tmp_path):
    f = sample_frames(2, seed=19)
    cut = block(3, struct.pack("<I", len(f[0]) + 50) + f[0])  # original longer than what was kept
    fine = idb(opts=opt(9, bytes([0x80 | 40])))  # 2^-40 s: the fraction times 1e9 overflows 64 bits
    (tmp_path / "x.pcapng").write_bytes(shb() + idb() + cut + fine + epb(1, (3 << 40) + (1 << 39) + 1, f[1]))
    b = read_frames(tmp_path / "x.pcapng")
    assert frames_of(b)[1] == f[1] and frames_of(b)[0][:len(f[0])] == f[0]
    # Captured length is what the block holds (data padded to 4), never the original length.
    assert int(b.length[0]) == len(f[0]) + (-len(f[0]) % 4)
    assert [int(t) for t in b.ts_ns] == [0, 3_500_000_000]


def test_pcapng_unused_non_ethernet_interface_is_fine(tmp_path):
    f = sample_frames(1)
    (tmp_path / "x.pcapng").write_bytes(shb() + idb(113) + idb(1) + epb(1, 0, f[0]))
    assert frames_of(read_frames(tmp_path / "x.pcapng")) == f
    with open_capture(tmp_path / "x.pcapng") as cap:
        assert cap.linktype == 113  # the first interface's, as documented


# ---- errors: each names the offset where the bad thing starts

def test_empty_file(tmp_path):
    (tmp_path / "e.pcap").write_bytes(b"")
    e = raw_error(tmp_path / "e.pcap")
    assert e.offset == 0 and "empty" in e.reason


@pytest.mark.parametrize("data", [b"\xd4\xc3", b"\x4d\x3c\xb2\xa1\x02\x00\x04\x00", b"\x0a\x0d\x0d\x0a\x1c\0\0\0"])
def test_short_file(tmp_path, data):
    (tmp_path / "s.pcap").write_bytes(data)
    e = raw_error(tmp_path / "s.pcap")
    assert e.offset == 0 and "bytes" in e.reason


def test_not_a_capture(tmp_path):
    (tmp_path / "x.pcap").write_bytes(b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 40)
    e = raw_error(tmp_path / "x.pcap")
    assert e.offset == 0 and "47 45 54 20" in e.reason and "not a pcap or pcapng" in e.reason


def test_compressed_capture_says_so(tmp_path):
    (tmp_path / "x.pcap.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 40)
    assert "gunzip" in raw_error(tmp_path / "x.pcap.gz").reason


def test_unsupported_pcap_version(tmp_path):
    (tmp_path / "x.pcap").write_bytes(pcap_bytes([], version=(1, 0)))
    e = raw_error(tmp_path / "x.pcap")
    assert e.offset == 0 and "version 1.0" in e.reason


def test_pcap_non_ethernet_linktype(tmp_path):
    (tmp_path / "x.pcap").write_bytes(pcap_bytes([(0, 0, b"x" * 40, 40)], linktype=113))
    e = raw_error(tmp_path / "x.pcap")
    assert e.offset == 0 and "113 (Linux cooked (SLL))" in e.reason and "Ethernet (1)" in e.reason


def test_pcap_record_truncated_mid_data(tmp_path):
    good = pcap_bytes([(0, 0, b"a" * 60, 60), (0, 0, b"b" * 100, 100)])
    (tmp_path / "t.pcap").write_bytes(good[:-30])
    e = raw_error(tmp_path / "t.pcap")
    start = 24 + 16 + 60
    assert e.offset == start
    assert e.reason == (f"record header at byte {start} declares 100 captured bytes, up to byte "
                        f"{len(good)}, but the file ends at {len(good) - 30} (truncated capture)")


def test_pcap_record_header_truncated(tmp_path):
    good = pcap_bytes([(0, 0, b"a" * 60, 60), (0, 0, b"b" * 100, 100)])
    (tmp_path / "t.pcap").write_bytes(good[:24 + 76 + 9])
    e = raw_error(tmp_path / "t.pcap")
    assert e.offset == 100 and "needs 16 bytes" in e.reason


def test_pcap_impossible_length(tmp_path):
    data = bytearray(pcap_bytes([(0, 0, b"a" * 60, 60), (0, 0, b"b" * 100, 100)]))
    struct.pack_into("<I", data, 100 + 8, 0x7FFFFFFF)
    (tmp_path / "c.pcap").write_bytes(bytes(data))
    e = raw_error(tmp_path / "c.pcap")
    assert e.offset == 100 and str(MAX_RECORD) in e.reason and "corrupt" in e.reason


def test_frames_before_an_error_are_still_delivered(tmp_path):
    recs = [(0, i, bytes([i]) * 60, 60) for i in range(10)]
    data = pcap_bytes(recs)
    (tmp_path / "t.pcap").write_bytes(data[:-1])
    got = []
    with open_capture(tmp_path / "t.pcap", batch_frames=4) as cap:
        with pytest.raises(CaptureError) as ei:
            for b in cap:
                got += frames_of(b)
    assert got == [r[2] for r in recs[:9]]
    assert ei.value.offset == 24 + 9 * 76


def pcapng_error(tmp_path, data: bytes) -> CaptureError:
    (tmp_path / "x.pcapng").write_bytes(data)
    return raw_error(tmp_path / "x.pcapng")


def test_pcapng_block_truncated(tmp_path):
    head = shb() + idb()
    pkt = epb(0, 0, b"z" * 64)
    e = pcapng_error(tmp_path, head + pkt + pkt[:50])
    assert e.offset == len(head) + len(pkt)
    assert f"declares {len(pkt)} bytes, up to byte {len(head) + 2 * len(pkt)}, but the file ends at " \
           f"{len(head) + len(pkt) + 50}" in e.reason


def test_pcapng_block_header_truncated(tmp_path):
    head = shb() + idb()
    e = pcapng_error(tmp_path, head + b"\x06\0\0\0\x20\0")
    assert e.offset == len(head) and "needs 12 bytes" in e.reason


@pytest.mark.parametrize("blen", [8, 30])
def test_pcapng_impossible_block_length(tmp_path, blen):
    head = shb() + idb()
    pkt = bytearray(epb(0, 0, b"z" * 64))
    struct.pack_into("<I", pkt, 4, blen)
    e = pcapng_error(tmp_path, head + bytes(pkt))
    assert e.offset == len(head) and f"length {blen}" in e.reason


def test_pcapng_trailer_mismatch(tmp_path):
    head = shb() + idb()
    pkt = bytearray(epb(0, 0, b"z" * 64))
    struct.pack_into("<I", pkt, len(pkt) - 4, 4)
    e = pcapng_error(tmp_path, head + epb(0, 0, b"y" * 60) + bytes(pkt))
    assert e.offset == len(head) + len(epb(0, 0, b"y" * 60)) and "ends with length 4" in e.reason


def test_pcapng_captured_length_past_block(tmp_path):
    head = shb() + idb()
    pkt = bytearray(epb(0, 0, b"z" * 64))
    struct.pack_into("<I", pkt, 8 + 12, 65)
    e = pcapng_error(tmp_path, head + bytes(pkt))
    assert e.offset == len(head) and "65 captured bytes" in e.reason


def test_pcapng_option_past_block(tmp_path):
    head = shb() + idb()
    pkt = bytearray(epb(0, 0, b"z" * 64, opt(2, struct.pack("<I", 0))))
    struct.pack_into("<H", pkt, 8 + 20 + 64 + 2, 200)
    e = pcapng_error(tmp_path, head + bytes(pkt))
    assert e.offset == len(head) and f"option at byte {len(head) + 92}" in e.reason


def test_pcapng_missing_interface(tmp_path):
    head = shb() + idb()
    e = pcapng_error(tmp_path, head + epb(1, 0, b"z" * 64))
    assert e.offset == len(head) and "interface 1" in e.reason and "describes only 1" in e.reason
    e = pcapng_error(tmp_path, shb() + spb(b"z" * 64))
    assert e.offset == len(shb()) and "describes only 0" in e.reason


def test_pcapng_non_ethernet_interface_names_its_idb(tmp_path):
    head = shb() + idb() + epb(0, 0, b"a" * 60)
    e = pcapng_error(tmp_path, head + idb(101) + epb(1, 0, b"z" * 64))
    assert e.offset == len(head)  # the IDB, not the packet
    assert "101 (raw IP)" in e.reason and f"packet at byte {len(head) + len(idb(101))}" in e.reason


def test_pcapng_bad_section_header(tmp_path):
    bad_bom = bytearray(shb())
    bad_bom[8:12] = b"\1\2\3\4"
    e = pcapng_error(tmp_path, bytes(bad_bom) + idb())
    assert e.offset == 0 and "01 02 03 04" in e.reason
    v2 = bytearray(shb())
    struct.pack_into("<H", v2, 12, 2)
    assert "version 2.0" in pcapng_error(tmp_path, bytes(v2)).reason
    # A second section cut short is reported where it starts.
    head = shb() + idb() + epb(0, 0, b"a" * 60)
    e = pcapng_error(tmp_path, head + shb()[:20])
    assert e.offset == len(head) and "needs 28 bytes" in e.reason
    big = bytearray(shb())
    struct.pack_into("<I", big, 4, 1000)
    e = pcapng_error(tmp_path, head + bytes(big) + idb())
    assert e.offset == len(head) and f"section header block at byte {len(head)} declares 1000 bytes" in e.reason


def test_pcapng_bad_idb(tmp_path):
    e = pcapng_error(tmp_path, shb() + idb(opts=opt(9, bytes([0x80 | 64]))))
    assert e.offset == len(shb()) and "if_tsresol" in e.reason
    bad = bytearray(idb(opts=opt(9, bytes([6]))))
    struct.pack_into("<H", bad, 16 + 2, 99)
    assert "option 9" in pcapng_error(tmp_path, shb() + bytes(bad)).reason


# ---- batching and lifetime

@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_batching(tmp_path, writer):
    frames = sample_frames(10, seed=17)
    ts = list(range(1000, 11000, 1000))
    writer(tmp_path / "b.cap", FrameBatch.from_frames(frames, ts))
    with open_capture(tmp_path / "b.cap", batch_frames=3) as cap:
        batches = list(cap)
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [f for b in batches for f in frames_of(b)] == frames
    assert [int(t) for b in batches for t in b.ts_ns] == ts
    assert all(b.buf is batches[0].buf for b in batches)  # one mapping, no copies
    assert frames_of(read_frames(tmp_path / "b.cap")) == frames


def test_close_and_reiterate(tmp_path):
    frames = sample_frames(5)
    write_pcap(tmp_path / "c.pcap", FrameBatch.from_frames(frames))
    cap = Capture(tmp_path / "c.pcap", batch_frames=2)
    assert [f for b in cap for f in frames_of(b)] == frames
    assert [f for b in cap for f in frames_of(b)] == frames  # each iteration starts over
    kept = next(iter(cap))
    cap.close()
    assert frames_of(kept) == frames[:2]  # batches outlive the capture
    with pytest.raises(ValueError, match="closed"):
        iter(cap)
    with pytest.raises(ValueError):
        Capture(tmp_path / "c.pcap", batch_frames=0)


def test_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_capture(tmp_path / "nope.pcap")


@pytest.mark.slow
def test_walk_speed(tmp_path):
    n = 500_000
    batch = FrameBatch(np.zeros(64 * n, np.uint8), np.arange(n, dtype=np.int64) * 64,
                       np.full(n, 64, np.int64), np.arange(n, dtype=np.uint64), np.zeros(n, bool))
    write_pcap(tmp_path / "big.pcap", batch)
    list(open_capture(tmp_path / "big.pcap", batch_frames=1000))  # compile/load the kernel
    t0 = time.perf_counter()
    count = sum(len(b) for b in open_capture(tmp_path / "big.pcap"))
    rate = count / (time.perf_counter() - t0)
    assert count == n
    # Tens of millions per second in practice; a Python per-record loop manages ~1M.
    assert rate > 3e6, f"{rate:.3g} frames/s"
