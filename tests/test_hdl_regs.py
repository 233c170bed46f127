"""The AXI4-Lite register file built from the contract's map, and the nanosecond clock.

The map itself is tested with the contract (tests/test_contract.py)."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from amaranth.hdl import ResetInserter, Signal
from amaranth.sim import Simulator

from wiretick.hdl.clock import NsClock, period_fs
from wiretick.hdl.regs import RegisterFile
from wiretick.host.contract.formats import COUNTERS
from wiretick.host.contract.registers import MAP_SIZE, REG_BY_NAME, REG_ID, REG_VERSION, REGISTERS
from wiretick.sim.amaranth_tb import LiteMaster
from wiretick.sim.lint import REGS_WAIVERS, LintError, lint_hierarchy, lint_regs, regs_verilog

# --------------------------------------------------------------------------- AXI4-Lite master


def _run(dut, *benches, processes=()):
    sim = Simulator(dut)
    sim.add_clock(4e-9)
    for b in benches:
        sim.add_testbench(b)
    for p in processes:
        sim.add_process(p)
    sim.run()


# --------------------------------------------------------------------------- register file


def test_identification_and_build_constants():
    dut = RegisterFile(ns_per_cycle="6.4", dma_data_width=256, dma_fifo_depth=128, dma_max_log2=20)
    host = LiteMaster(dut.bus, random.Random(1), p=0.5)

    async def tb(ctx):
        expect = {"ID": REG_ID, "VERSION": REG_VERSION, "DMA_DATA_WIDTH": 256, "DMA_FIFO_DEPTH": 128,
                  "CLOCK_PERIOD_FS": 6_400_000, "N_COUNTERS": len(COUNTERS), "DMA_MAX_LOG2": 20}
        for name, value in expect.items():
            assert await host.read_reg(ctx, name) == value, name
        # constants ignore writes
        await host.write(ctx, 0x0, 0)
        assert await host.read_reg(ctx, "ID") == REG_ID
        # unmapped words read 0
        for off in (0x01C, 0x0FC, MAP_SIZE, 0xFFC):
            assert await host.read(ctx, off) == 0

    _run(dut, tb)


def test_rw_registers_reset_write_read_and_ports():
    dut = RegisterFile()
    host = LiteMaster(dut.bus, random.Random(2), p=0.6)
    rng = random.Random(3)
    rw = [r for r in REGISTERS if r.access == "rw"]

    async def tb(ctx):
        for r in rw:
            assert await host.read_reg(ctx, r.name) == r.init, r.name
            assert ctx.get(getattr(dut, r.name.lower())) == r.init
        values = {}
        for r in rw:
            v = rng.getrandbits(64)             # wider than the register: truncated
            await host.write_reg(ctx, r.name, v)
            values[r.name] = v & ((1 << r.width) - 1)
        for r in rw:
            assert await host.read_reg(ctx, r.name) == values[r.name], r.name
            assert ctx.get(getattr(dut, r.name.lower())) == values[r.name], r.name
        # byte strobes: change byte 2 of IP_DST only; the high word of RING_BASE only
        await host.write(ctx, REG_BY_NAME["IP_DST"].offset, 0xAABBCCDD, strb=0b0100)
        ip = (values["IP_DST"] & ~0x00FF0000) | 0x00BB0000
        assert await host.read_reg(ctx, "IP_DST") == ip
        await host.write(ctx, REG_BY_NAME["RING_BASE"].offset + 4, 0x1)
        rb = (values["RING_BASE"] & 0xFFFF_FFFF) | (1 << 32)
        assert await host.read_reg(ctx, "RING_BASE") == rb
        assert ctx.get(dut.ring_base) == rb
        # SNAPSHOT reads 0; the live DMA state follows its port
        assert await host.read_reg(ctx, "SNAPSHOT") == 0
        ctx.set(dut.dma_state, 2)
        assert await host.read_reg(ctx, "DMA_STATE") == 2

    _run(dut, tb)


def test_snapshot_is_consistent():
    # Every snap input moves every cycle; a snapshot must freeze all of them at
    # one cycle, however slowly and in whatever order they are read back.
    bits = 40
    dut = RegisterFile(counter_bits=bits)
    host = LiteMaster(dut.bus, random.Random(4), p=0.3)
    ports = ["dma_head", "dma_dropped", "dma_drop_events", "dma_bus_errors", "parser_lost"]

    def at(cycle: int) -> dict[str, int]:
        v = {f"CNT_{c.name}": (cycle * (i + 3) + (i << 30)) % (1 << bits) for i, c in enumerate(COUNTERS)}
        for j, p in enumerate(ports):
            v[p.upper()] = (cycle * (j + 1)) % (1 << REG_BY_NAME[p.upper()].width)
        return v

    async def drive(ctx):
        cycle = 0
        while True:
            v = at(cycle)
            for i, c in enumerate(COUNTERS):
                ctx.set(dut.counters[i], v[f"CNT_{c.name}"])
            for p in ports:
                ctx.set(getattr(dut, p), v[p.upper()])
            await ctx.tick()
            cycle += 1

    async def tb(ctx):
        snap_names = [r.name for r in REGISTERS if r.access == "snap"]
        assert all([await host.read_reg(ctx, n) == 0 for n in ("CLOCK", "CNT_frames")])
        clocks = []
        for _ in range(2):
            await host.write_reg(ctx, "SNAPSHOT", 1)
            order = snap_names[:]
            random.Random(len(clocks)).shuffle(order)
            got = {n: await host.read_reg(ctx, n) for n in order}
            # the cycle the snapshot froze, from one counter; every other value agrees
            frames = got["CNT_frames"]
            cycle = frames // 3
            # (40-bit counters: the registers hold their low 32 bits)
            assert {k: v & ((1 << REG_BY_NAME[k].width) - 1) for k, v in at(cycle).items()} == {
                k: v for k, v in got.items() if k != "CLOCK"}
            clocks.append((cycle, got["CLOCK"]))
        # the clock was latched on the same cycle (both count cycles from reset)
        assert all(t == 4 * c for c, t in clocks) and clocks[1][0] > clocks[0][0], clocks

    async def pulse(ctx):
        # the snapshot strobe is one cycle per SNAPSHOT write
        n = 0
        async for _, _, s in ctx.tick().sample(dut.snapshot):
            n += s
            assert n <= 2

    sim = Simulator(dut)
    sim.add_clock(4e-9)
    sim.add_testbench(tb)
    sim.add_testbench(drive, background=True)
    sim.add_testbench(pulse, background=True)
    sim.run()


def test_reset_clears_the_snapshot():
    # The snapshot copies live in memories, which a reset does not clear: reads
    # must still give 0 after a reset until the next SNAPSHOT, as reset registers would.
    dut = RegisterFile(counter_bits=40)
    rst = Signal()
    top = ResetInserter(rst)(dut)
    host = LiteMaster(dut.bus)

    async def tb(ctx):
        for i in range(len(COUNTERS)):
            ctx.set(dut.counters[i], 1000 + i)
        ctx.set(dut.parser_lost, 7)
        await host.write_reg(ctx, "SNAPSHOT", 1)
        assert await host.read_reg(ctx, "CNT_frames") == 1000
        assert await host.read_reg(ctx, "PARSER_LOST") == 7
        ctx.set(rst, 1)
        await ctx.tick()
        ctx.set(rst, 0)
        assert [await host.read_reg(ctx, n) for n in ("CNT_frames", "PARSER_LOST", "CLOCK")] == [0, 0, 0]
        await host.write_reg(ctx, "SNAPSHOT", 1)
        assert await host.read_reg(ctx, "CNT_frames") == 1000

    sim = Simulator(top)
    sim.add_clock(4e-9)
    sim.add_testbench(tb)
    sim.run()


@pytest.mark.parametrize("period", [4, "6.4", Fraction(10, 3), "2.5"])
def test_clock_counts_exact_nanoseconds(period):
    dut = NsClock(period)
    p = Fraction(period)

    async def tb(ctx):
        for n in range(1, 400):
            await ctx.tick()
            assert ctx.get(dut.ns) == (n * p.numerator) // p.denominator

    _run(dut, tb)
    assert period_fs(period) == round(p * 1_000_000)


def test_timestamp_port_is_the_clock():
    dut = RegisterFile(ns_per_cycle=4)

    async def tb(ctx):
        await ctx.tick().repeat(10)
        assert ctx.get(dut.timestamp) == 40

    _run(dut, tb)


# --------------------------------------------------------------------------- Verilog


def test_regs_lint_clean():
    lint_regs()
    lint_regs(ns_per_cycle="6.4", counter_bits=48, addr_width=16)


def test_regs_waivers_are_needed():
    # The register file's own waivers each cover a real finding (nothing else is hidden).
    text = regs_verilog("r")
    with pytest.raises(LintError) as e:
        lint_hierarchy(text, "r")
    found = str(e.value)
    for name in ("bus__awprot", "bus__arprot", "'bus__awaddr'[1:0]", "'bus__araddr'[1:0]"):
        assert name in found
    assert REGS_WAIVERS.count("lint_off") == 4


# --------------------------------------------------------------------------- counters and docs


def test_counters_narrower_than_the_registers_are_refused():
    # A 24-bit counter would wrap at 2**24, which the host could not tell from 2**32.
    with pytest.raises(ValueError, match="counter_bits"):
        RegisterFile(counter_bits=24)
