"""Stages 3 and 4: the message assembler and the tick builder, each on its own."""

from __future__ import annotations

import random

import numpy as np
from amaranth.sim import Simulator

from wiretick.hdl.assembler import MessageAssembler, kind_bits, message_layout, sel_bits, tick_byte_sources
from wiretick.hdl.builder import TickBuilder, built_layout
from wiretick.hdl.common import MAX_MSG_LEN
from wiretick.hdl.splitter import slot_layout, split_beat_layout
from wiretick.host.capture import FrameBatch
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.contract.formats import MESSAGES, TICK_MAP
from wiretick.host.frames import encode_message, make_frame, random_message
from wiretick.host.tick import TICK_DTYPE
from wiretick.sim.amaranth_tb import pack, unpack

W = 8


def test_tick_byte_sources_cover_the_map():
    for code, copies in TICK_MAP.items():
        assert len(tick_byte_sources(code)) == sum(c.size for c in copies)


def test_builder_matches_reference_for_every_type():
    rng = random.Random(2)
    msgs = [random_message(rng, m.code) for m in MESSAGES for _ in range(3)]
    msgs += [encode_message("Q", shares=s) for s in (0, 2**32 - 1, 2**32, 2**64 - 1)]
    msgs += [encode_message("C", printable=p) for p in "YN"]
    ref = decode_batch(FrameBatch.from_frames([make_frame(msgs, seq=1)]), DecodeConfig())
    dut = TickBuilder()
    got = []

    async def tb(ctx):
        for k, msg in enumerate(msgs):
            word = pack(message_layout(), bytes=int.from_bytes(msg.ljust(MAX_MSG_LEN, b"\0"), "little"),
                        type=msg[0], index=k, kind=kind_bits(msg[0]), sel=sel_bits(msg[0]))
            ctx.set(dut.i_msg.valid, 1)
            ctx.set(dut.i_msg.payload.as_value(), word)
            out = unpack(built_layout(), ctx.get(dut.o_built.payload.as_value()))
            assert ctx.get(dut.o_built.valid) and out["index"] == k
            got.append(out["tick"].to_bytes(64, "little"))

    sim = Simulator(dut)
    sim.add_testbench(tb)
    sim.run()
    ticks = np.frombuffer(b"".join(got), TICK_DTYPE)
    for name in TICK_DTYPE.names:
        if name in ("seq", "ts_rx", "feed_seq"):
            assert not ticks[name].any()
        else:
            assert (ticks[name] == ref.ticks[name]).all(), name


def _assembler_beats(rng, n_msgs):
    """A byte stream with messages at random places and the slots describing them."""
    stream = bytearray()
    placed = []                       # (body start, bytes, index)
    for i in range(n_msgs):
        stream += rng.randbytes(rng.randrange(2, 12))
        body = random_message(rng)
        placed.append((len(stream), body, i))
        stream += body
    stream += bytes(-len(stream) % W)
    sl, layout = slot_layout(W), split_beat_layout(W)
    words = []
    for base in range(0, len(stream), W):
        # As the splitter gives them: ``msg`` a body that began in an earlier beat,
        # ``nxt`` one that begins in this beat.
        slots = {}
        for b, m, i in placed:
            if b < base + W and b + len(m) > base:
                name = "nxt" if b >= base else "msg"
                assert name not in slots
                fit = sum(1 << j for j in range(W) if j + b % W < W) if name == "nxt" else 0
                slots[name] = pack(sl, valid=1, rot=b % W, off=(base - b) & 0xFF,
                                   done=int(b + len(m) <= base + W), type=m[0], index=i, fit=fit,
                                   sel=1 << b % W)
        words.append(pack(layout, data=int.from_bytes(stream[base:base + W], "little"),
                          msg=slots.get("msg", 0), nxt=slots.get("nxt", 0)))
    return words, placed


def test_assembler_rebuilds_messages_at_any_alignment():
    rng = random.Random(3)
    words, placed = _assembler_beats(rng, 60)
    dut = MessageAssembler(W)
    got = []

    async def tb(ctx):
        for w in words:
            ctx.set(dut.i_blk.valid, 1)
            ctx.set(dut.i_blk.payload.as_value(), w)
            await ctx.tick()
            if ctx.get(dut.o_msg.valid):          # registered: the message of the beat just taken
                got.append(unpack(message_layout(), ctx.get(dut.o_msg.payload.as_value())))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert len(got) == len(placed)
    for g, (_, body, index) in zip(got, placed):
        assert g["index"] == index and g["type"] == body[0]
        assert g["bytes"].to_bytes(MAX_MSG_LEN, "little")[:len(body)] == body
