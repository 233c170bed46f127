"""The host link's gateware in Amaranth's simulator: packet buffer, request path, RGMII transmitter."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from wiretick.hdl.hostlink import HostLink, PacketBuffer
from wiretick.hdl.regs import RegisterFile
from wiretick.host.contract.registers import REG_BY_NAME, REG_ID
from wiretick.hdl.rgmii_tx import RGMIITransmitter
from wiretick.hdl.top import _LITE_ADDR_BITS
from wiretick.host.contract import linkproto as lp
from wiretick.host.hostlink import build_frame, parse_frame, parse_records
from wiretick.sim.rgmii import IFG, Decoder

ADDR = lp.DEFAULT_ADDRESSES


def collector(stream_, frames: list, rng=None, p_ready=1.0):
    """A testbench taking beats off a frame stream (ready with probability ``p_ready``) into whole frames."""
    async def run(ctx):
        await collect_frames(ctx, stream_, frames, rng, p_ready)
    return run


async def collect_frames(ctx, stream_, frames: list, rng=None, p_ready=1.0):
    cur = bytearray()
    while True:
        ready = rng is None or rng.random() < p_ready
        ctx.set(stream_.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream_.valid, stream_.payload)
        if valid and ready:
            if payload.first:
                assert not cur, "a frame started inside another"
            cur += int(payload.data).to_bytes(8, "little")[:payload.nbytes]
            if payload.last:
                frames.append(bytes(cur))
                cur = bytearray()


class AxiBursts:
    """AXI4 write master of a testbench: bursts in order, W after AW, responses counted."""

    def __init__(self, bus, rng: random.Random, p: float = 1.0):
        self.bus, self.rng, self.p = bus, rng, p
        self.responses: list[int] = []

    async def bursts(self, ctx, items):
        """``items``: (address, [(data word, strobes)], awsize, awburst)."""
        bus = self.bus
        ctx.set(bus.bready, 1)
        for addr, beats, size, burst in items:
            while self.rng.random() >= self.p:
                _, _, bv, br = await ctx.tick().sample(bus.bvalid, bus.bresp)
                if bv:
                    self.responses.append(br)
            ctx.set(bus.awaddr, addr)
            ctx.set(bus.awlen, len(beats) - 1)
            ctx.set(bus.awsize, size)
            ctx.set(bus.awburst, burst)
            ctx.set(bus.awvalid, 1)
            while True:
                _, _, ready, bv, br = await ctx.tick().sample(bus.awready, bus.bvalid, bus.bresp)
                if bv:
                    self.responses.append(br)
                if ready:
                    break
            ctx.set(bus.awvalid, 0)
            for k, (word, strb) in enumerate(beats):
                ctx.set(bus.wdata, word)
                ctx.set(bus.wstrb, strb)
                ctx.set(bus.wlast, k == len(beats) - 1)
                ctx.set(bus.wvalid, 1)
                while True:
                    _, _, ready, bv, br = await ctx.tick().sample(bus.wready, bus.bvalid, bus.bresp)
                    if bv:
                        self.responses.append(br)
                    if ready:
                        break
                ctx.set(bus.wvalid, 0)

    async def drain_responses(self, ctx, n):
        while len(self.responses) < n:
            _, _, bv, br = await ctx.tick().sample(self.bus.bvalid, self.bus.bresp)
            if bv:
                self.responses.append(br)


def _apply(records, mem: dict):
    for r in records:
        if r.kind in (lp.REC_WRITE, lp.REC_WRITE_STROBED):
            for i, b in enumerate(r.data):
                if r.strobes is None or r.strobes >> i & 1:
                    mem[r.address + i] = b


def _items(rng, n):
    """Ticks (8-beat bursts), shadow heads (one beat) and a few odd bursts; the memory they leave."""
    items, mem = [], {}
    for k in range(n):
        kind = rng.random()
        if kind < 0.6:
            addr = 0x1_0000_1000 + 64 * rng.randrange(64)
            beats = [(rng.getrandbits(64), 0xFF) for _ in range(8)]
        elif kind < 0.8:
            addr = 0x1_0000_0040
            beats = [(k, 0xFF)]
        elif kind < 0.9:
            addr = 0x1_0000_2000 + 8 * rng.randrange(32)
            beats = [(rng.getrandbits(64), rng.getrandbits(8)) for _ in range(rng.randrange(1, 20))]
        else:
            addr = 0x1_0000_3000 + 8 * rng.randrange(32)
            beats = [(rng.getrandbits(64), 0xFF) for _ in range(rng.randrange(9, 17))]
        for b, (word, strb) in enumerate(beats):
            for i in range(8):
                if strb >> i & 1:
                    mem[addr + 8 * b + i] = (word >> 8 * i) & 0xFF
        items.append((addr, beats, 3, 1))
    return items, mem


@pytest.mark.parametrize("p_ready,seed,n", [(1.0, 1, 60), (0.3, 2, 60), (0.02, 3, 40)])
def test_packet_buffer_carries_every_write_in_order(p_ready, seed, n):
    """Bursts become write records of well-formed frames; memory rebuilt from them is exact, seq gap-free;
    a transmitter that takes a beat 2% of the time back-pressures the bus instead of losing anything."""
    rng = random.Random(seed)
    dut = PacketBuffer(depth=256, max_payload_words=100)
    items, expect = _items(rng, n)
    frames: list[bytes] = []
    axi = AxiBursts(dut.s_axi, rng, p=0.8)
    stalled = {"w": 0}

    async def watch(ctx):
        async for _, _, v, r in ctx.tick().sample(dut.s_axi.wvalid, dut.s_axi.wready):
            stalled["w"] += bool(v and not r)

    def rebuilt():
        mem: dict = {}
        seqs = []
        for f in frames:
            assert len(f) >= 60 and len(f) - 42 <= 100 * 8
            seq, recs = parse_records(parse_frame(f, ADDR))
            seqs.append(seq)
            _apply(recs, mem)
        return seqs, mem

    async def master(ctx):
        await axi.bursts(ctx, items)
        await axi.drain_responses(ctx, len(items))
        for _ in range(2000):
            await ctx.tick().repeat(100)
            if rebuilt()[1] == expect:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(master)
    sim.add_testbench(collector(dut.o_frame, frames, rng, p_ready), background=True)
    sim.add_testbench(watch, background=True)
    sim.run()

    assert axi.responses == [0] * len(items)
    seqs, mem = rebuilt()
    assert seqs == list(range(1, len(frames) + 1))
    assert mem == expect
    if p_ready < 0.05:
        assert stalled["w"] > 0               # the slow transmitter did stall the bus
        assert len(frames) < len(items) / 2   # and records were packed several to a packet


def test_packet_buffer_refuses_unsupported_bursts():
    dut = PacketBuffer()
    rng = random.Random(4)
    axi = AxiBursts(dut.s_axi, rng)
    frames: list[bytes] = []
    items = [(0x1000, [(1, 0xFF), (2, 0xFF)], 2, 1),        # 4-byte beats
             (0x2000, [(3, 0xFF)], 3, 0),                    # FIXED burst
             (0x3000, [(4, 0xFF)], 3, 1)]

    async def master(ctx):
        await axi.bursts(ctx, items)
        await axi.drain_responses(ctx, 3)
        await ctx.tick().repeat(200)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(master)
    sim.add_testbench(collector(dut.o_frame, frames), background=True)
    sim.run()
    assert axi.responses == [2, 2, 0]
    recs = [r for f in frames for r in parse_records(parse_frame(f, ADDR))[1]]
    assert [(r.address, r.data) for r in recs] == [(0x3000, (4).to_bytes(8, "little"))]


class _LinkRegs(Elaboratable):
    def __init__(self):
        self.link = HostLink(lite_addr_width=_LITE_ADDR_BITS)
        self.regs = RegisterFile(dma_data_width=64, addr_width=_LITE_ADDR_BITS)

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = self.link
        m.submodules.regs = self.regs
        wiring.connect(m, self.link.m_axil, self.regs.bus)
        return m


def test_register_requests_over_the_link():
    """Requests in, answers out, through the real register file; bad frames are ignored and counted."""
    top = _LinkRegs()
    link = top.link
    frames: list[bytes] = []
    counts = {}
    off_log2 = REG_BY_NAME["RING_LOG2"].offset

    def req(tag, op, offset, value=0, **kw):
        return build_frame(lp.request_payload(tag, op, offset, value), ADDR, **kw)

    other_port = lp.LinkAddresses(device_port=1234)
    inputs = [
        (req(1, lp.OP_READ, 0), False),
        (req(2, lp.OP_WRITE, off_log2, 9), False),
        (req(3, lp.OP_READ, off_log2), False),
        (req(4, lp.OP_READ, 0), True),                       # bad FCS: dropped
        (build_frame(lp.request_payload(5, lp.OP_READ, 0), other_port), False),   # another port: ignored
        (req(6, lp.OP_READ, 0x1_0000), False),               # beyond the map: DECERR
        (req(7, lp.OP_READ, 4)[:60], False),                 # truncated: ignored
        (req(8, 9, 0), False),                               # unknown op: SLVERR
    ]

    async def rx(ctx):
        s = link.i_rx
        for frame, bad in inputs:
            for k in range(0, len(frame), 8):
                chunk = frame[k:k + 8]
                ctx.set(s.payload, {"data": int.from_bytes(chunk, "little"), "nbytes": len(chunk),
                                    "first": k == 0, "last": k + 8 >= len(frame), "error": bad and k + 8 >= len(frame)})
                ctx.set(s.valid, 1)
                await ctx.tick()
            ctx.set(s.valid, 0)
            await ctx.tick().repeat(60)
        await ctx.tick().repeat(100)
        for n in ("requests", "ignored", "bad", "busy_drops"):
            counts[n] = ctx.get(getattr(link, n))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(rx)
    sim.add_testbench(collector(link.o_tx, frames), background=True)
    sim.run()
    recs = [r for f in frames for r in parse_records(parse_frame(f, ADDR))[1]]
    got = [(r.kind, r.tag, r.status, r.offset, r.value) for r in recs]
    assert got == [
        (lp.REC_READ, 1, 0, 0, REG_ID),
        (lp.REC_WRITE_ACK, 2, 0, off_log2, 0),
        (lp.REC_READ, 3, 0, off_log2, 9),
        (lp.REC_READ, 6, 3, 0x1_0000, 0),
        (lp.REC_WRITE_ACK, 8, 2, 0, 0),
    ]
    assert counts == {"requests": 5, "ignored": 3, "bad": 1, "busy_drops": 0}


def _tx_sim(frames_in, *, p_valid=1.0, seed=0, slack=100):
    dut = RGMIITransmitter(domain="tx")
    rng = random.Random(seed)
    dec = Decoder()
    cycles = []

    async def feed(ctx):
        s = dut.i_frame
        for frame in frames_in:
            for k in range(0, len(frame), 8):
                while rng.random() >= p_valid:
                    ctx.set(s.valid, 0)
                    await ctx.tick()
                chunk = frame[k:k + 8]
                ctx.set(s.payload, {"data": int.from_bytes(chunk, "little"), "nbytes": len(chunk),
                                    "first": k == 0, "last": k + 8 >= len(frame), "error": 0})
                ctx.set(s.valid, 1)
                while True:
                    _, _, rdy = await ctx.tick().sample(s.ready)
                    if rdy:
                        break
            ctx.set(s.valid, 0)

    async def pins(ctx):
        while True:
            await ctx.tick("tx")
            await ctx.delay(2e-9)
            hi = (ctx.get(dut.tx_ctl), ctx.get(dut.txd), ctx.get(dut.txc))
            await ctx.delay(4e-9)
            lo = (ctx.get(dut.tx_ctl), ctx.get(dut.txd), ctx.get(dut.txc))
            cycles.append((hi[2], lo[2]))
            dec.feed(hi[0], hi[1], lo[0], lo[1])

    async def wait(ctx):
        total = sum(len(f) + 8 + 4 + IFG + 60 for f in frames_in)
        await ctx.tick("tx").repeat(total + slack)

    sim = Simulator(dut)
    sim.add_clock(6.4e-9)
    sim.add_clock(8e-9, domain="tx")
    sim.add_testbench(feed, background=True)
    sim.add_testbench(pins, background=True)
    sim.add_testbench(wait)
    sim.run()
    return dut, dec, cycles


def test_rgmii_transmitter_frames_on_the_pins():
    """Preamble, SFD, FCS, padding to 60 bytes, at least 12 idle bytes between frames, TXC a forwarded clock."""
    rng = random.Random(7)
    frames = [bytes(rng.getrandbits(8) for _ in range(n)) for n in (66, 64, 1514, 17, 100, 61)]
    _, dec, cycles = _tx_sim(frames, p_valid=0.9)
    assert [d.data for d in dec.frames] == [f if len(f) >= 60 else f + bytes(60 - len(f)) for f in frames]
    assert all(d.fcs_ok and d.preamble_ok and d.errors == 0 for d in dec.frames)
    assert all(d.gap_before >= IFG for d in dec.frames[1:])
    assert set(cycles) == {(1, 0)}           # TXC high in the first half of every cycle, low in the second


def test_rgmii_transmitter_sends_tx_er_when_its_fifo_runs_dry():
    """Beats offered 5% of the cycles of a 6.4 ns clock (one in 128 ns; the wire takes 8 bytes
    in 64 ns): the frame runs out of bytes mid-way, those cycles go out with TX_ER (the
    PHY corrupts the frame, so the host drops it); the frame still ends, and so does the next."""
    frames = [bytes(range(200)), bytes(range(100, 180))]
    _, dec, _ = _tx_sim(frames, p_valid=0.05, slack=2000)
    assert len(dec.frames) == 2
    assert all(d.preamble_ok and d.errors > 0 for d in dec.frames)
    # the bytes sent were the frame's, in order, with the starved cycles in between
    for d, f in zip(dec.frames, frames):
        it = iter(d.data)
        assert all(b in it for b in f)


class _DmaLink(Elaboratable):
    def __init__(self):
        from wiretick.hdl.dma import TickDMA
        self.dma = TickDMA(data_width=64, fifo_depth=8, max_outstanding=4, max_log2_slots=10)
        self.buf = PacketBuffer(depth=256, max_payload_words=100)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = self.dma
        m.submodules.buf = self.buf
        wiring.connect(m, self.dma.bus, self.buf.s_axi)
        return m


def test_a_slow_link_makes_the_dma_engine_drop_not_hang():
    """Ticks offered every cycle, a wire taking a beat 5% of the time: the back-pressure reaches TickDMA,
    which drops and reports (drop events in the ring); every slot it wrote arrives, in seq order."""
    from wiretick.hdl.dma import DMAState
    from wiretick.host.contract.formats import Flag
    from wiretick.host.tick import TICK_DTYPE

    top = _DmaLink()
    dma = top.dma
    rng = random.Random(9)
    frames: list[bytes] = []
    base, shadow, nslots, offered = 0x1_0000_1000, 0x1_0000_0040, 1024, 400
    state = {}

    async def run(ctx):
        ctx.set(dma.ring_base, base)
        ctx.set(dma.ring_log2, 10)
        ctx.set(dma.shadow_addr, shadow)
        ctx.set(dma.shadow_interval, 16)
        ctx.set(dma.enable, 1)
        while ctx.get(dma.state) != DMAState.RUN:   # the engine decodes its configuration first
            await ctx.tick()
        for k in range(offered):
            ctx.set(dma.i_ticks.valid, 1)
            ctx.set(dma.i_ticks.payload.order_ref, k + 1)
            await ctx.tick()
        ctx.set(dma.i_ticks.valid, 0)
        ctx.set(dma.enable, 0)
        for _ in range(400):
            await ctx.tick().repeat(100)
            if ctx.get(dma.state) == DMAState.OFF:
                break
        while ctx.get(top.buf.busy):             # the packets still buffered go out
            await ctx.tick().repeat(100)
        await ctx.tick().repeat(100)
        state.update(head=ctx.get(dma.head), dropped=ctx.get(dma.dropped), off=ctx.get(dma.state))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(run)
    sim.add_testbench(collector(top.buf.o_frame, frames, rng, 0.05), background=True)
    sim.run()

    mem: dict = {}
    for f in frames:
        _apply(parse_records(parse_frame(f, ADDR))[1], mem)
    assert state["off"] == DMAState.OFF and state["dropped"] > 0           # it dropped, and it stopped: no hang
    ring = bytes(mem.get(base + i, 0) for i in range(64 * state["head"]))
    ticks = np.frombuffer(ring, TICK_DTYPE)
    assert list(ticks["seq"]) == list(range(1, state["head"] + 1))
    events = (ticks["flags"] & Flag.EVENT_DROP) != 0
    assert events.any()
    # Every tick offered is in the ring or counted by a drop event.
    assert int((~events).sum()) + int(ticks["ref2"][events].sum()) == offered
    assert list(ticks["order_ref"][~events]) == sorted(ticks["order_ref"][~events])
    assert int.from_bytes(bytes(mem[shadow + i] for i in range(8)), "little") == state["head"]


def test_host_link_lints_clean():
    """verilator --lint-only -Wall on the host link's Verilog, with the project's waivers only."""
    from amaranth.back import verilog

    from wiretick.hdl.common import toplevel_ports
    from wiretick.sim.lint import lint_hierarchy

    d = HostLink(lite_addr_width=_LITE_ADDR_BITS)
    lint_hierarchy(verilog.convert(d, name="host_link", ports=toplevel_ports(d)), "host_link")
