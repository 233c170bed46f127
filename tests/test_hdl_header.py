"""Stage 1, the header parser, in Amaranth's simulator against the reference model."""

from __future__ import annotations

import random
import struct

import pytest
from amaranth.sim import Simulator

from wiretick.hdl.header import DROP_COUNT_DELAY, HEADER_COUNTERS, HeaderParser, frame_beat_layout
from wiretick.host.capture import FrameBatch
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.frames import encode_message, make_frame, parse_frame, random_frame, random_message
from wiretick.sim.amaranth_tb import frames_to_beats, unpack


def run_header(frames, bad=None, *, ip_dst=0, port=0, check_ip_checksum=True, gap_every=0, stray=(),
               events=None):
    """Drive frames back to back; return (starts, counters, out_beats).

    ``events``, if a list, receives ``(clock edge, counter name)`` for every counter
    increment, in order."""
    dut = HeaderParser()
    beats = list(stray) + frames_to_beats(frames, 8, bad)
    layout = frame_beat_layout(8)
    starts, out = [], []
    counts = {n: 0 for n in HEADER_COUNTERS}
    done = [False]

    async def drive(ctx):
        ctx.set(dut.ip_dst, ip_dst)
        ctx.set(dut.port, port)
        ctx.set(dut.check_ip_checksum, int(check_ip_checksum))
        for n, b in enumerate(beats):
            ctx.set(dut.timestamp, 1000 + n)
            ctx.set(dut.i_mac.valid, 1)
            ctx.set(dut.i_mac.payload.as_value(), b.word(8))
            await ctx.tick()
            if gap_every and n % gap_every == 0:
                ctx.set(dut.i_mac.valid, 0)
                await ctx.tick()
        ctx.set(dut.i_mac.valid, 0)
        await ctx.tick().repeat(3 + DROP_COUNT_DELAY)
        done[0] = True

    async def collect(ctx):
        cnt_layout = dut.o_count.shape()
        edge = 0
        async for _, _, valid, payload, cnt in ctx.tick().sample(
                dut.o_beat.valid, dut.o_beat.payload.as_value(), dut.o_count.as_value()):
            edge += 1
            for name, v in unpack(cnt_layout, cnt).items():
                counts[name] += v
                if v and events is not None:
                    events.append((edge, name))
            if valid:
                f = unpack(layout, payload)
                out.append(f)
                if f["start"]:
                    starts.append(f)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()
    return starts, counts, out


def expected(frames, bad=None, **cfg):
    res = decode_batch(FrameBatch.from_frames(frames, bad=bad), DecodeConfig(**cfg))
    return {n: res.counters[n] for n in HEADER_COUNTERS}


VERDICTS = [n for n in HEADER_COUNTERS if n not in ("frames", "bad_fcs")]


def verdicts_of(frames, **cfg):
    """The reference's verdict (``packets`` or the drop counter) of each frame alone."""
    out = []
    for f in frames:
        c = decode_batch(FrameBatch.from_frames([f]), DecodeConfig(**cfg)).counters
        [name] = [n for n in VERDICTS if c[n]]
        out.append(name)
    return out


def header_offsets(frame: bytes) -> tuple[int, int]:
    """(payload start, payload end) of a well-formed frame."""
    m = parse_frame(frame)
    return m.first_block, m.end


def test_good_frames_every_alignment():
    frames = []
    for vlans in range(3):
        for words in range(11):
            frames.append(make_frame([encode_message("D", order_ref=vlans * 100 + words)],
                                     seq=7 + words, vlans=vlans, ip_option_words=words,
                                     tpid=0x88A8 if words % 2 else 0x8100))
    starts, counts, out = run_header(frames)
    assert counts == expected(frames)
    assert counts["packets"] == len(frames)
    assert len(out) == sum(-(-len(f) // 8) for f in frames)
    for f, s in zip(frames, starts):
        pay_start, pay_end = header_offsets(f)
        assert (s["pay_start"], s["pay_end"]) == (pay_start, pay_end)
        assert s["offset"] <= pay_start - 1 < s["offset"] + 8, "start on the beat of the last header byte"
        assert s["sequence"] == struct.unpack_from(">Q", f, pay_start - 10)[0]
        assert s["count"] == 1
        assert s["session"].to_bytes(10, "little") == f[pay_start - 20:pay_start - 10]


def test_each_drop_reason():
    base = dict(vlans=1)
    m = [encode_message("A")]
    frames = [
        make_frame(m, **base),
        make_frame(m, vlans=3),                                   # third tag: not IPv4
        make_frame(m, **base)[:12] + b"\x86\xdd" + bytes(60),     # IPv6
        make_frame(m, bad_checksum=True, **base),
        make_frame(m, fragment=0x2000, **base),                   # MF
        make_frame(m, fragment=5, **base),                        # offset
        make_frame(m, protocol=6, **base),
        make_frame(m, dst_ip=0xE9360C70, **base),
        make_frame(m, udp_length=7, **base),
        make_frame(m, udp_length=400, **base),
        make_frame(m, ip_total_length=27, **base),
        make_frame(m, dst_port=1, **base),
        make_frame([], udp_length=8 + 19, **base),
        make_frame(m, vlans=0)[:20],
        make_frame(m, vlans=2)[:21],
        make_frame(m, vlans=2)[:49],
        make_frame(m, vlans=0)[:3],
    ]
    # Version 6 with IHL 5, and IHL 4.
    for b0 in (0x65, 0x44):
        f = bytearray(make_frame(m, **base))
        f[18] = b0
        frames.append(bytes(f))
    cfg = dict(ip_dst=0xE9360C6F, port=26477)
    _, counts, _ = run_header(frames, **cfg)
    exp = expected(frames, **cfg)
    assert counts == exp
    assert all(exp[n] for n in HEADER_COUNTERS if n.startswith("drop_")), exp


def test_every_truncation_length():
    frames = []
    for vlans, words in ((0, 0), (1, 3), (2, 10)):
        f = make_frame([encode_message("S")], vlans=vlans, ip_option_words=words, pad=False)
        frames += [f[:n] for n in range(1, len(f) + 1)]
    _, counts, _ = run_header(frames, bad=[i % 3 == 0 for i in range(len(frames))])
    assert counts == expected(frames, bad=[i % 3 == 0 for i in range(len(frames))])


def test_checksum_off_and_idle_gaps():
    frames = [make_frame([encode_message("B")], bad_checksum=True, vlans=v) for v in range(3)]
    _, counts, out = run_header(frames, check_ip_checksum=False, gap_every=3)
    assert counts == expected(frames, check_ip_checksum=False)
    assert counts["packets"] == 3
    firsts = [b for b in out if b["first"]]
    assert len(firsts) == 3 and all(b["ts"] >= 1000 for b in firsts)


@pytest.mark.parametrize("seed", range(3))
def test_random_corruption(seed):
    rng = random.Random(seed)
    frames = [random_frame(rng) for _ in range(60)]
    bad = [rng.random() < 0.1 for _ in frames]
    cfg = dict(check_ip_checksum=bool(seed % 2), port=26477 if seed == 2 else 0)
    events = []
    _, counts, _ = run_header(frames, bad, events=events, gap_every=7 if seed == 1 else 0, **cfg)
    assert counts == expected(frames, bad, **cfg)
    assert [n for _, n in events if n in VERDICTS] == verdicts_of(frames, **cfg)


def test_beats_outside_frames_are_ignored():
    f = make_frame([random_message(random.Random(0), "P")])
    stray = frames_to_beats([f])[1:]   # a stream that starts mid-frame: no `first`
    starts, counts, out = run_header([f], stray=stray)
    assert counts == expected([f])
    assert len(out) == len(stray) + 1 and len(starts) == 1



@pytest.mark.parametrize("vlans", range(3))
def test_every_truncation_every_layout_frame_by_frame(vlans):
    # Every header layout this tag count allows (IHL 5..15), cut at every length, back to
    # back: one-beat frames, frames ending on every beat of the pipelined checks, each
    # followed at once by the next frame, whose first beats must not disturb the verdict
    # still being made on the previous one.  Verdicts are compared frame by frame, in order.
    frames = []
    for words in range(11):
        f = make_frame([encode_message("S")], vlans=vlans, ip_option_words=words, pad=False)
        mold_end = header_offsets(f)[0]
        frames += [f[:n] for n in range(1, mold_end + 2)]
    cfg = dict(port=26477)
    events = []
    _, counts, _ = run_header(frames, events=events, **cfg)
    assert [n for _, n in events if n in VERDICTS] == verdicts_of(frames, **cfg)
    assert counts == expected(frames, **cfg)


def test_each_check_fails_at_each_layout_frame_by_frame():
    # Every drop reason with every IPv4 header length and tag count, back to back.
    m = [encode_message("A")]
    cfg = dict(ip_dst=0xE9360C6F, port=26477)
    frames = []
    for vlans in range(3):
        for words in (0, 1, 2, 7, 10):
            base = dict(vlans=vlans, ip_option_words=words)
            frames += [
                make_frame(m, **base),
                make_frame(m, bad_checksum=True, **base),
                make_frame(m, fragment=0x2000, **base),
                make_frame(m, protocol=6, **base),
                make_frame(m, dst_ip=0xE9360C70, **base),
                make_frame(m, udp_length=7, **base),
                make_frame(m, ip_total_length=27, **base),
                make_frame(m, dst_port=1, **base),
                make_frame([], udp_length=8 + 19, **base),
            ]
    events = []
    _, counts, _ = run_header(frames, events=events, **cfg)
    assert [n for _, n in events if n in VERDICTS] == verdicts_of(frames, **cfg)
    assert counts == expected(frames, **cfg)


def test_truncations_with_idle_cycles_frame_by_frame():
    # Idle cycles inside and between frames stretch the pipeline's beats apart.
    frames = []
    for words in (0, 1, 4):
        f = make_frame([encode_message("S")], vlans=1, ip_option_words=words, pad=False)
        frames += [f[:n] for n in range(1, header_offsets(f)[0] + 2)]
    events = []
    _, counts, _ = run_header(frames, events=events, gap_every=3)
    assert [n for _, n in events if n in VERDICTS] == verdicts_of(frames)
    assert counts == expected(frames)


def test_width_other_than_8_is_refused():
    with pytest.raises(ValueError, match="8-byte beats"):
        HeaderParser(4)


def test_drop_counters_lag_by_drop_count_delay():
    # A frame that is not IPv4 is decided on its second beat (the EtherType), in the
    # contract; its counter rises DROP_COUNT_DELAY cycles after a counter of that beat would.
    ipv6 = make_frame([encode_message("A")], vlans=0)[:12] + b"\x86\xdd" + bytes(60)
    events = []
    run_header([ipv6], events=events)
    (frames_edge,) = [e for e, n in events if n == "frames"]      # registered from beat 0
    (drop_edge,) = [e for e, n in events if n == "drop_not_ipv4"]
    assert drop_edge - frames_edge == 1 + DROP_COUNT_DELAY
