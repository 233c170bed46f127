"""``wiretick bench sim``: the simulators' speed on the same capture, measured in one run.

- ``sim.cycles_per_s.fast``, ``sim.msgs_per_s.fast``: the fast engine
  (:func:`wiretick.sim.fast.simulate`) on a generated feed of ``messages``
  messages (at most :data:`FAST_MAX_MESSAGES`); wall time of the replay itself
  (build cached beforehand, the ring reader included: it is part of the run);
- ``sim.cycles_per_s.cocotb``: the cocotb whole path with Verilator on the same
  feed recipe, :data:`SMALL_MESSAGES` messages long;
- ``sim.cycles_per_s.cocotb_python_transactors``: the same testbench with the
  cycle-by-cycle Python MAC driver and AXI slave instead of the harness's bulk
  buffers, on the same feed;
- ``sim.cycles_per_s.amaranth``: Amaranth's own simulator running the same top
  (registers over AXI4-Lite, an always-ready host memory, :mod:`wiretick.sim.hostmem`)
  on that recipe, :data:`AMARANTH_MESSAGES` messages long (cycles/s do not depend on
  the length);
- ``sim.fast_over_cocotb``, ``sim.fast_over_amaranth``: ratios of the above.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TextIO

__all__ = ["bench_sim", "amaranth_cycles_per_s", "FAST_MAX_MESSAGES", "SMALL_MESSAGES"]

#: Most messages the fast engine replays in the bench (its run time stays under a minute).
FAST_MAX_MESSAGES = 1_000_000
#: Messages of the capture the cocotb whole path runs (about a second of its time: a steadier figure).
SMALL_MESSAGES = 20_000
#: Messages of the slice Amaranth's simulator runs (it is the slowest by far).
AMARANTH_MESSAGES = 500


def amaranth_cycles_per_s(capture: str | Path, gap: int = 3) -> dict[str, float]:
    """Amaranth's simulator running the whole top on ``capture``: cycles, wall seconds, cycles/s."""
    from wiretick.hdl.top import WiretickTop
    from wiretick.host.capture import read_frames

    from .amaranth_tb import LiteMaster, frame_beats
    from .hostmem import HostMemory, simulate_with_memory

    batch = read_frames(capture)
    words = [[b.word(8) for b in frame_beats(batch.frame(i), 8, bool(batch.bad[i]))] for i in range(len(batch))]
    dut = WiretickTop()
    host = LiteMaster(dut.s_axil)
    base, log2 = 1 << 32, 12
    out: dict[str, float] = {}

    mem = HostMemory()
    mem.add_ring(base, 1 << log2, base - 64)

    async def drive(ctx):
        await host.write_reg(ctx, "RING_BASE", base)
        await host.write_reg(ctx, "RING_LOG2", log2)
        await host.write_reg(ctx, "SHADOW_ADDR", base - 64)
        await host.write_reg(ctx, "SHADOW_INTERVAL", 64)
        await host.write_reg(ctx, "ENABLE", 1)
        mac_valid, mac_payload = dut.mac.valid, dut.mac.payload.as_value()
        t0 = time.perf_counter()
        cycles = 0
        for fw in words:
            ctx.set(mac_valid, 1)
            for w in fw:
                ctx.set(mac_payload, w)
                await ctx.tick()
            ctx.set(mac_valid, 0)
            await ctx.tick().repeat(gap)
            cycles += len(fw) + gap
        await ctx.tick().repeat(32)
        cycles += 32
        out["wall_s"] = time.perf_counter() - t0
        out["cycles"] = cycles

    simulate_with_memory(dut, dut.m_axi, mem, drive, 6.4e-9)
    clean = mem.clean()
    mem.close()
    if not clean:
        raise RuntimeError("Amaranth's simulation of the top wrote outside its ring and shadow word")
    out["cycles_per_s"] = out["cycles"] / out["wall_s"]
    return out


def bench_sim(messages: int, log: TextIO | None = None, *, small: int = SMALL_MESSAGES,
              tiny: int = AMARANTH_MESSAGES) -> dict[str, float]:
    """The figures of the module doc, every one measured in this run.

    ``small`` and ``tiny`` are the messages of the cocotb and the Amaranth feeds
    (smaller only to test this function quickly).
    """
    from wiretick.host.gen import GenConfig, generate_to_file

    from .cocotb_run import measure_cycles_per_s, simulator_available
    from .fast import FastSim, simulate

    n_fast = max(small, min(messages, FAST_MAX_MESSAGES))
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wiretick-bench-sim-") as tmp:
        feed = Path(tmp) / "feed.pcap"
        small_feed, tiny_feed = Path(tmp) / "small.pcap", Path(tmp) / "tiny.pcap"
        # One feed recipe at three lengths: the slow simulators get the same kind of traffic.
        for path, n in ((feed, n_fast), (small_feed, small), (tiny_feed, tiny)):
            generate_to_file(path, GenConfig(messages=n, symbols=50, seed=1))

        with FastSim(log=log) as sim:                 # builds (or finds) the library outside the timing
            run = simulate(feed, sim=sim)
        figures["sim.cycles_per_s.fast"] = round(run.cycles / run.wall_s)
        figures["sim.msgs_per_s.fast"] = round(run.counters["messages"] / run.wall_s)
        figures["sim.fast.messages"] = run.counters["messages"]
        if log:
            print(f"fast: {run.cycles} cycles, {run.counters['messages']} messages in {run.wall_s:.2f} s "
                  f"({run.cycles / run.wall_s / 1e6:.2f} M cycles/s)", file=log)

        why = simulator_available("verilator")
        if why is None:
            c = measure_cycles_per_s(small_feed, simulator="verilator")
            figures["sim.cycles_per_s.cocotb"] = round(c["cycles_per_s"])
            # The classic testbench (Python awaits every clock edge) on the same feed, for comparison.
            p = measure_cycles_per_s(small_feed, simulator="verilator", transactors="python")
            figures["sim.cycles_per_s.cocotb_python_transactors"] = round(p["cycles_per_s"])
            if log:
                print(f"cocotb: {c['cycles']} cycles in {c['wall_s']:.2f} s; with Python transactors "
                      f"{p['cycles']} cycles in {p['wall_s']:.2f} s", file=log)
        elif log:
            print(f"cocotb: skipped: {why}", file=log)

        a = amaranth_cycles_per_s(tiny_feed)
        figures["sim.cycles_per_s.amaranth"] = round(a["cycles_per_s"])
        if log:
            print(f"amaranth: {a['cycles']} cycles in {a['wall_s']:.2f} s", file=log)

    fast_rate = figures["sim.cycles_per_s.fast"]
    if "sim.cycles_per_s.cocotb" in figures:
        figures["sim.fast_over_cocotb"] = round(fast_rate / figures["sim.cycles_per_s.cocotb"], 1)
    figures["sim.fast_over_amaranth"] = round(fast_rate / figures["sim.cycles_per_s.amaranth"], 1)
    return figures
