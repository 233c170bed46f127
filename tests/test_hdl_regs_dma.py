"""The register file drives the DMA engine: program over AXI4-Lite, run, read the status back."""

from __future__ import annotations

import random

from amaranth.hdl import Elaboratable, Module

from wiretick.sim.amaranth_tb import LiteMaster
from wiretick.hdl.dma import TickDMA
from wiretick.hdl.regs import RegisterFile
from wiretick.sim.hostmem import HostMemory, simulate_with_memory


class _Pair(Elaboratable):
    def __init__(self):
        self.regs = RegisterFile(dma_data_width=256, dma_fifo_depth=8, dma_max_log2=10)
        self.dma = TickDMA(data_width=256, fifo_depth=8, max_outstanding=4, max_log2_slots=10)

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = regs = self.regs
        m.submodules.dma = dma = self.dma
        m.d.comb += [
            dma.enable.eq(regs.enable), dma.ring_base.eq(regs.ring_base), dma.ring_log2.eq(regs.ring_log2),
            dma.shadow_addr.eq(regs.shadow_addr), dma.shadow_interval.eq(regs.shadow_interval),
            dma.timestamp.eq(regs.timestamp),
            regs.dma_state.eq(dma.state), regs.dma_head.eq(dma.head), regs.dma_dropped.eq(dma.dropped),
            regs.dma_drop_events.eq(dma.drop_events), regs.dma_bus_errors.eq(dma.bus_errors),
        ]
        return m


def test_program_run_and_read_status():
    top = _Pair()
    regs, dma = top.regs, top.dma
    host = LiteMaster(regs.bus, random.Random(5), p=0.7)
    base, shadow, n = 0x8000_0000_0000, 0x7FFF_FFFF_F040, 20
    mem = HostMemory()
    mem.add_ring(base, 8, shadow)
    state = {"done": False}

    async def tb(ctx):
        await host.write_reg(ctx, "RING_BASE", base)
        await host.write_reg(ctx, "RING_LOG2", 3)
        await host.write_reg(ctx, "SHADOW_ADDR", shadow)
        await host.write_reg(ctx, "SHADOW_INTERVAL", 0)
        await host.write_reg(ctx, "ENABLE", 1)
        assert await host.read_reg(ctx, "DMA_STATE") == 1
        for i in range(n):
            ctx.set(dma.i_ticks.valid, 1)
            ctx.set(dma.i_ticks.payload.as_value(), (i + 1) << 64)      # ts_rx = i + 1
            await ctx.tick()
            ctx.set(dma.i_ticks.valid, 0)           # 256-bit bus: a tick every other cycle
            await ctx.tick()
        ctx.set(dma.i_ticks.valid, 0)
        await ctx.tick().repeat(30)
        await host.write_reg(ctx, "SNAPSHOT", 1)
        assert await host.read_reg(ctx, "DMA_HEAD") == n
        assert await host.read_reg(ctx, "DMA_DROPPED") == 0
        assert await host.read_reg(ctx, "CLOCK") > 0
        await host.write_reg(ctx, "ENABLE", 0)
        await ctx.tick().repeat(5)
        assert await host.read_reg(ctx, "DMA_STATE") == 0
        state["done"] = True

    simulate_with_memory(top, dma.bus, mem, tb, 4e-9)
    assert state["done"]
    assert mem.clean(), (mem.violations, [r.outside for r in mem.regions])   # the ring and the shadow word only
    # the last lap of the 8-slot ring, and the shadow head
    assert int.from_bytes(mem.read(shadow, 8), "little") == n
    for seq in range(n - 7, n + 1):
        slot = mem.read(base + 64 * ((seq - 1) % 8), 64)
        assert int.from_bytes(slot[:8], "little") == seq
        assert int.from_bytes(slot[8:16], "little") == seq          # its ts_rx
        assert int.from_bytes(slot[60:62], "little") >> 12 == (seq - 1) // 8
    mem.close()
