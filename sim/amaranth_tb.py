"""Testbench helpers for Amaranth's simulator: frames to MAC beats, packing/unpacking
layout values, the parser core run on frames, an AXI4-Lite master.

Used by the gateware tests (tests/test_hdl_*.py) and the parser bench
(:mod:`wiretick.sim.parser_bench`).  The frames themselves come from
:mod:`wiretick.host.frames`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from amaranth.lib import data

from wiretick.hdl.common import mac_beat_layout

__all__ = ["Beat", "frame_beats", "pack", "unpack", "frames_to_beats", "ParserRun", "run_parser", "LiteMaster"]


@dataclass(frozen=True)
class Beat:
    """One MAC beat as a testbench drives it."""

    data: int
    nbytes: int
    first: bool
    last: bool
    error: bool = False

    def word(self, width: int = 8) -> int:
        """The beat packed as an integer of :func:`~wiretick.hdl.common.mac_beat_layout`."""
        return pack(mac_beat_layout(width), data=self.data, nbytes=self.nbytes, first=int(self.first),
                    last=int(self.last), error=int(self.error))


def frame_beats(frame: bytes, width: int = 8, error: bool = False) -> list[Beat]:
    """Split ``frame`` into beats of ``width`` bytes, byte 0 in the lowest lane."""
    if not frame:
        raise ValueError("a frame has at least one byte")
    beats = []
    for o in range(0, len(frame), width):
        chunk = frame[o:o + width]
        last = o + width >= len(frame)
        beats.append(Beat(int.from_bytes(chunk, "little"), len(chunk), o == 0, last, error and last))
    return beats


def frames_to_beats(frames: list[bytes], width: int = 8, bad: list[bool] | None = None) -> list[Beat]:
    """Back-to-back beats of several frames."""
    out: list[Beat] = []
    for i, f in enumerate(frames):
        out += frame_beats(f, width, bool(bad[i]) if bad is not None else False)
    return out


def pack(layout: data.StructLayout, **fields: int) -> int:
    """An integer holding ``fields`` at their places in ``layout`` (missing fields are 0)."""
    v = 0
    for name, f in layout:
        x = int(fields.pop(name, 0))
        width = f.width
        if x < 0 or x >> width:
            raise ValueError(f"{name}={x} does not fit in {width} bits")
        v |= x << f.offset
    if fields:
        raise KeyError(f"not in layout: {sorted(fields)}")
    return v


def unpack(layout: data.StructLayout, value: int) -> dict[str, int]:
    """The fields of an integer laid out as ``layout`` (nested layouts stay integers)."""
    return {name: (value >> f.offset) & ((1 << f.width) - 1) for name, f in layout}


# --------------------------------------------------------------------------- the whole core

@dataclass
class ParserRun:
    """What a simulation of :class:`~wiretick.hdl.parser.ItchParser` produced.

    ``ticks`` has the host tick dtype; ``tick_cycles[k]`` is the clock edge at which
    tick ``k`` was taken from ``o_tick``; ``frame_beat_cycles[f][b]`` is the edge that
    accepted beat ``b`` of frame ``f``.
    """

    ticks: object
    counters: dict
    lost: int
    tick_cycles: list
    frame_beat_cycles: list
    cycles: int


def run_parser(frames: list[bytes], *, bad=None, ts_ns=None, ip_dst: int = 0, port: int = 0,
               check_ip_checksum: bool = True, sequence_check: bool = True, width: int = 8,
               idle_between: int = 0, ready=None, fifo_depth: int = 16, drain: int = 40) -> ParserRun:
    """Simulate the parser core on ``frames`` sent back to back (``idle_between`` idle
    cycles after each frame) and collect its ticks and counters.

    ``ready`` is an optional function of the cycle number giving ``o_tick.ready``
    (default: always 1).
    """
    import numpy as np
    from amaranth.sim import Simulator

    from wiretick.hdl.parser import ItchParser
    from wiretick.host.contract.formats import COUNTERS
    from wiretick.host.tick import TICK_DTYPE

    dut = ItchParser(width, fifo_depth=fifo_depth)
    beats = [frame_beats(f, width, bool(bad[i]) if bad is not None else False) for i, f in enumerate(frames)]
    words = [[b.word(width) for b in fb] for fb in beats]
    ts = [int(t) for t in ts_ns] if ts_ns is not None else [1_000_000 + 1000 * i for i in range(len(frames))]
    ticks_raw: list[int] = []
    tick_cycles: list[int] = []
    frame_beat_cycles: list[list[int]] = []
    result = {}

    async def drive(ctx):
        ctx.set(dut.ip_dst, ip_dst)
        ctx.set(dut.port, port)
        ctx.set(dut.check_ip_checksum, int(check_ip_checksum))
        ctx.set(dut.sequence_check, int(sequence_check))
        cycle = 0
        mac_valid, mac_payload = dut.i_mac.valid, dut.i_mac.payload.as_value()
        for f, fw in enumerate(words):
            ctx.set(dut.timestamp, ts[f])
            ctx.set(mac_valid, 1)
            cyc = []
            for w in fw:
                ctx.set(mac_payload, w)
                cyc.append(cycle)
                await ctx.tick()
                cycle += 1
            frame_beat_cycles.append(cyc)
            if idle_between:
                ctx.set(mac_valid, 0)
                await ctx.tick().repeat(idle_between)
                cycle += idle_between
        ctx.set(mac_valid, 0)
        await ctx.tick().repeat(drain)
        cycle += drain
        result["cycles"] = cycle
        result["counters"] = [ctx.get(dut.counters[i]) for i in range(len(COUNTERS))]
        result["lost"] = ctx.get(dut.lost)

    async def collect(ctx):
        cycle = 0
        o_valid, o_ready, o_payload = dut.o_tick.valid, dut.o_tick.ready, dut.o_tick.payload.as_value()
        ctx.set(o_ready, 1 if ready is None else int(ready(0)))
        async for _, _, v, r, p in ctx.tick().sample(o_valid, o_ready, o_payload):
            if v and r:
                ticks_raw.append(p)
                tick_cycles.append(cycle)
            cycle += 1
            if ready is not None:
                ctx.set(o_ready, int(ready(cycle)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()

    raw = b"".join(t.to_bytes(64, "little") for t in ticks_raw)
    ticks = np.frombuffer(raw, dtype=TICK_DTYPE).copy() if raw else np.zeros(0, TICK_DTYPE)
    counters = {c.name: v for c, v in zip(COUNTERS, result["counters"])}
    return ParserRun(ticks, counters, result["lost"], tick_cycles, frame_beat_cycles, result["cycles"])


class LiteMaster:
    """AXI4-Lite master for Amaranth async testbenches.

    Each channel waits a random number of cycles first (continue with
    probability ``p`` each cycle; ``p=1``: no delay), so a test explores the
    slave's handshakes; the bench uses ``p=1``.
    """

    def __init__(self, bus, rng: random.Random | None = None, p: float = 1.0):
        self.bus = bus
        self.rng = rng or random.Random(0)
        self.p = p

    async def _delay(self, ctx):
        while self.rng.random() >= self.p:
            await ctx.tick()

    async def write(self, ctx, addr: int, value: int, strb: int = 0xF):
        bus = self.bus
        await self._delay(ctx)
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.awvalid, 1)
        if self.rng.random() < 0.5:       # W may come later than AW (and the other way round)
            await self._delay(ctx)
        ctx.set(bus.wdata, value)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.wvalid, 1)
        aw = w = False
        while not (aw and w):
            _, _, awv, awr, wv, wr = await ctx.tick().sample(bus.awvalid, bus.awready, bus.wvalid, bus.wready)
            if awv and awr:
                aw = True
                ctx.set(bus.awvalid, 0)
            if wv and wr:
                w = True
                ctx.set(bus.wvalid, 0)
        await self._delay(ctx)
        ctx.set(bus.bready, 1)
        while True:
            _, _, bv, resp = await ctx.tick().sample(bus.bvalid, bus.bresp)
            if bv:
                break
        ctx.set(bus.bready, 0)
        assert resp == 0

    async def read(self, ctx, addr: int) -> int:
        bus = self.bus
        await self._delay(ctx)
        ctx.set(bus.araddr, addr)
        ctx.set(bus.arvalid, 1)
        while True:
            _, _, arr = await ctx.tick().sample(bus.arready)
            if arr:
                break
        ctx.set(bus.arvalid, 0)
        await self._delay(ctx)
        ctx.set(bus.rready, 1)
        while True:
            _, _, rv, data, resp = await ctx.tick().sample(bus.rvalid, bus.rdata, bus.rresp)
            if rv:
                break
        ctx.set(bus.rready, 0)
        assert resp == 0
        return data

    async def read_reg(self, ctx, name: str) -> int:
        from wiretick.hdl.regs import REG_BY_NAME, words
        value = 0
        for i, off in enumerate(words(REG_BY_NAME[name])):
            value |= await self.read(ctx, off) << (32 * i)
        return value

    async def write_reg(self, ctx, name: str, value: int):
        from wiretick.hdl.regs import REG_BY_NAME, words
        for i, off in enumerate(words(REG_BY_NAME[name])):
            await self.write(ctx, off, (value >> (32 * i)) & 0xFFFF_FFFF)
