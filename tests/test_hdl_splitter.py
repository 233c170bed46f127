"""Stage 2, the block splitter, driven directly with annotated beats.

The messages it marks are rebuilt in Python from its slots (the way the assembler
reads them) and checked against the frame bytes; its counters against the
reference model (sequence checking off, so every well-formed message is delivered).
"""

from __future__ import annotations

import random
import struct

from amaranth.sim import Simulator

from wiretick.hdl.header import frame_beat_layout
from wiretick.hdl.splitter import SPLITTER_COUNTERS, BlockSplitter, ok_layout, slot_layout, split_beat_layout
from wiretick.host.capture import FrameBatch
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.frames import encode_message, make_frame, parse_frame, random_frame, random_message
from wiretick.sim.amaranth_tb import pack, unpack

W = 8


def _headers(frame: bytes):
    """(payload start, payload end, S, N, session) of a frame with good headers."""
    m = parse_frame(frame)
    return m.first_block, m.end, m.seq, m.count, m.session


def frame_words(frame: bytes, error=False):
    layout = frame_beat_layout(W)
    pay_start, pay_end, S, N, session = _headers(frame)
    words = []
    for o in range(0, len(frame), W):
        chunk = frame[o:o + W]
        start = o <= pay_start - 1 < o + W
        words.append(pack(layout, data=int.from_bytes(chunk, "little"), nbytes=len(chunk), first=o == 0,
                          last=o + W >= len(frame), error=error and o + W >= len(frame), offset=o, ts=o,
                          start=start, pay_start=pay_start, pay_end=pay_end,
                          session=int.from_bytes(session, "little"), sequence=S, count=N))
    return words


def run_splitter(frames, idle_every=0):
    dut = BlockSplitter(W)
    words = [w for f in frames for w in frame_words(f)]
    out_layout = split_beat_layout(W)
    cnt_layout = dut.o_count.shape()
    outs = []
    counts = {n: 0 for n in SPLITTER_COUNTERS}

    async def drive(ctx):
        for k, w in enumerate(words):
            ctx.set(dut.i_beat.valid, 1)
            ctx.set(dut.i_beat.payload.as_value(), w)
            await ctx.tick()
            if idle_every and k % idle_every == 0:
                ctx.set(dut.i_beat.valid, 0)
                await ctx.tick()
        ctx.set(dut.i_beat.valid, 0)
        await ctx.tick().repeat(2)

    async def collect(ctx):
        # Every cycle: the beat and slots it shows, and the confirmation (for the previous cycle's beat).
        async for _, _, v, p, ok, c in ctx.tick().sample(dut.o_blk.valid, dut.o_blk.payload.as_value(),
                                                         dut.o_ok.as_value(), dut.o_count.as_value()):
            for n, x in unpack(cnt_layout, c).items():
                counts[n] += x
            outs.append((v, unpack(out_layout, p), unpack(ok_layout, ok)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()
    return outs, counts


def rebuild_messages(outs):
    """Messages as the slots describe them and ``o_ok`` confirms them: [(frame number, index, type, bytes)]."""
    sl = slot_layout(W)
    done, frame_no, cur = [], -1, {}
    for t, (v, o, _) in enumerate(outs):
        if not v:
            continue
        if o["first"]:
            frame_no += 1
        lanes = o["data"].to_bytes(W, "little")
        for name in ("msg", "nxt"):
            s = unpack(sl, o[name])
            if not s["valid"]:
                continue
            off = s["off"] - 256 if s["off"] & 128 else s["off"]
            assert (off + s["rot"]) % W == 0, "rot is the body start modulo the width"
            assert s["sel"] == 1 << s["rot"], "sel is rot, one-hot"
            key = (frame_no, s["index"])
            if name == "nxt":                # a body begins here: what was kept under its key is stale
                assert s["fit"] == sum(1 << j for j in range(W) if j + s["rot"] < W), "fit is rot's lanes"
                cur[key] = {}
            buf = cur.setdefault(key, {})
            for lane in range(W):
                j = lane + off
                if j >= 0:
                    buf[j] = lanes[lane]
            if s["done"]:
                assert name == "msg", "only the first slot may end a message"
                if outs[t + 1][2]["msg"]:
                    body = bytes(buf[j] for j in range(len(buf)))
                    done.append((frame_no, s["index"], s["type"], body))
                del cur[key]
    return done


def expected(frames):
    ref = decode_batch(FrameBatch.from_frames(frames), DecodeConfig(sequence_check=False))
    return ref, {n: ref.counters[n] for n in SPLITTER_COUNTERS}


def _block_bytes(frame, index):
    pay_start, _, _, _, _ = _headers(frame)
    q = pay_start
    for _ in range(index):
        q += 2 + struct.unpack_from(">H", frame, q)[0]
    n = struct.unpack_from(">H", frame, q)[0]
    return frame[q + 2:q + 2 + n]


def check(frames, idle_every=0):
    outs, counts = run_splitter(frames, idle_every)
    ref, exp_counts = expected(frames)
    assert counts == exp_counts
    got = rebuild_messages(outs)
    assert len(got) == len(ref.ticks)
    starts = [_headers(f)[2] for f in frames]
    for (f, index, typ, body), tick in zip(got, ref.ticks):
        assert tick["feed_seq"] == starts[f] + index and tick["msg_type"] == typ
        want = _block_bytes(frames[f], index)
        assert body[:len(want)] == want
    return counts


def test_messages_at_every_alignment_and_width_of_gap():
    rng = random.Random(1)
    frames = []
    for shift in range(8):
        msgs = [b"u" * (12 + shift)] + [random_message(rng) for _ in range(6)]
        frames.append(make_frame(msgs, seq=1, vlans=shift % 3, ip_option_words=shift))
    counts = check(frames)
    assert counts["unknown_type"] == 8
    check(frames[:3], idle_every=2)


def test_dense_short_blocks_and_stops():
    D = encode_message("D")
    frames = [
        make_frame([b"a"] * 12 + [D] + [b"b", b"cc"] * 5 + [D], seq=1),
        make_frame([b"a", b"b", b"", D], seq=1),                      # zero length stops
        make_frame([D, D[:12]], seq=1),                                # D of the wrong length
        make_frame([D, b"\x00" * 3], seq=1, count=9),                  # count past the payload
        make_frame([], seq=1, heartbeat=True),
        make_frame([], seq=1, end_of_session=True),
        make_frame([D, D], seq=1, count=1),
        make_frame([D, D], seq=1, udp_length=8 + 20 + 21 + 12),        # second D overruns
    ]
    full = make_frame([b"x" * 12, D, b"yy" * 7, D, b"z"], seq=1, pad=False)
    frames += [full[:n] for n in range(_headers(full)[0], len(full))]   # cut at every payload byte
    counts = check(frames)
    for name in SPLITTER_COUNTERS:
        assert counts[name] > 0, name


def test_random_frames():
    rng = random.Random(7)
    frames = []
    while len(frames) < 60:
        f = random_frame(rng)
        ref = decode_batch(FrameBatch.from_frames([f]))     # the reference takes any frame: a crash fails
        if ref.counters["packets"]:      # the splitter only sees accepted frames' payloads
            frames.append(f)
    check(frames)
