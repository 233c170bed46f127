"""The ECP5 I/O primitive wrappers: each behavioural model alone in Amaranth's simulator
(against the timing TN1265 gives), and the Lattice cell each becomes on an ECP5 platform."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest
from amaranth.hdl import Fragment, Instance
from amaranth.sim import Simulator

from wiretick.hdl.ecp5io import DELAYG, EHXPLLL, IDDRX1F, ODDRX1F, pll_dividers

PERIOD = 8e-9          # 125 MHz: rising edges at 4 + 8k ns, falling at 8k ns (Amaranth's default phase)
Q = PERIOD / 4


def _run(dut, bench, *, clocks=("sync",)):
    sim = Simulator(dut)
    for d in clocks:
        sim.add_clock(PERIOD, domain=d)
    sim.add_testbench(bench)
    sim.run()


def _instances(fragment):
    """Every Instance in an elaborated fragment tree."""
    out = []
    stack = [fragment]
    while stack:
        f = stack.pop()
        if isinstance(f, Instance):
            out.append(f)
        for sub, _name, _loc in getattr(f, "subfragments", []):
            stack.append(sub)
    return out


def _ecp5_platform():
    from amaranth_boards.versa_ecp5_5g import VersaECP55GPlatform
    return VersaECP55GPlatform()


def test_oddrx1f_model_sends_d0_in_high_half_d1_in_low_half_one_cycle_later():
    rng = random.Random(1)
    dut = ODDRX1F(2)
    seq = [(rng.randrange(4), rng.randrange(4)) for _ in range(40)]
    got = []

    async def bench(ctx):
        for d0, d1 in seq + [(0, 0)]:
            await ctx.tick()
            ctx.set(dut.d0, d0)
            ctx.set(dut.d1, d1)
            await ctx.delay(Q)            # SCLK high
            hi = ctx.get(dut.q)
            await ctx.delay(2 * Q)        # SCLK low
            got.append((hi, ctx.get(dut.q)))

    _run(dut, bench)
    assert got[1:] == seq


def test_oddrx1f_forwards_the_clock():
    """ODDRX1F(D0=1, D1=0) is how an RGMII transmitter makes TX_CLK: the pin follows SCLK."""
    dut = ODDRX1F(1)
    samples = []

    async def bench(ctx):
        ctx.set(dut.d0, 1)
        ctx.set(dut.d1, 0)
        await ctx.tick()
        await ctx.tick()
        await ctx.delay(Q / 4)
        for _ in range(8):
            samples.append(ctx.get(dut.q))
            await ctx.delay(Q / 2)

    _run(dut, bench)
    # From just after a rising edge, in steps of an eighth of a period: four high, four low.
    assert samples == [1, 1, 1, 1, 0, 0, 0, 0]


def test_iddrx1f_model_presents_the_rising_then_falling_sample_aligned_one_cycle_later():
    rng = random.Random(2)
    dut = IDDRX1F(4)
    rise = [rng.randrange(16) for _ in range(40)]
    fall = [rng.randrange(16) for _ in range(40)]
    got = []

    async def bench(ctx):
        # Data moves a quarter period away from every edge (what the delayed RGMII
        # signals look like at the flip-flop): r[k] around rising edge k, f[k] around
        # the falling edge after it.
        await ctx.tick()
        await ctx.delay(3 * Q)
        ctx.set(dut.d, rise[0])
        for k in range(len(rise)):
            await ctx.tick()                       # rising edge k samples rise[k]
            await ctx.delay(Q)
            got.append((ctx.get(dut.q0), ctx.get(dut.q1)))
            ctx.set(dut.d, fall[k])
            await ctx.delay(2 * Q)                 # (the falling edge is between here and there)
            ctx.set(dut.d, rise[k + 1] if k + 1 < len(rise) else 0)

    _run(dut, bench)
    # After rising edge k+1: Q0 = the bit of rising edge k, Q1 = the falling edge between.
    assert got[1:] == list(zip(rise, fall))[:-1]


def test_delayg_model_passes_through_and_checks_its_taps():
    dut = DELAYG(4, taps=80)
    assert dut.delay_ps == 2000
    seen = []

    async def bench(ctx):
        for v in (0, 5, 15, 9):
            ctx.set(dut.a, v)
            seen.append(ctx.get(dut.z))

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0, 5, 15, 9]
    with pytest.raises(ValueError, match="0..127"):
        DELAYG(1, taps=128)
    with pytest.raises(ValueError, match="0..127"):
        DELAYG(1, taps=-1)


def test_primitives_become_lattice_cells_on_ecp5():
    plat = _ecp5_platform()
    iddr = _instances(Fragment.get(IDDRX1F(4, domain="rx"), plat))
    assert [i.type for i in iddr] == ["IDDRX1F"] * 4
    assert {"SCLK", "D", "Q0", "Q1", "RST"} <= set(iddr[0].ports)
    oddr = _instances(Fragment.get(ODDRX1F(3, domain="tx"), plat))
    assert [i.type for i in oddr] == ["ODDRX1F"] * 3
    assert {"SCLK", "D0", "D1", "Q", "RST"} <= set(oddr[0].ports)
    dly = _instances(Fragment.get(DELAYG(2, taps=80), plat))
    assert [i.type for i in dly] == ["DELAYG"] * 2
    assert dly[0].parameters["DEL_MODE"] == "USER_DEFINED"
    assert dly[0].parameters["DEL_VALUE"] == 80


def test_primitives_refuse_other_platforms():
    from amaranth.vendor import XilinxPlatform

    class _Xilinx(XilinxPlatform):
        device, package, speed = "xc7a35t", "csg324", "1"
        resources, connectors = [], []

    with pytest.raises(TypeError, match="ECP5 primitive"):
        Fragment.get(ODDRX1F(1), _Xilinx())


@pytest.mark.parametrize("f_in, outs", [(100, (125, 50)), (25, (125, 50)), (25, (125, Fraction(125, 2))),
                                        (100, (50,))])
def test_pll_dividers_are_exact_and_within_limits(f_in, outs):
    cfg = pll_dividers(f_in, outs)
    assert cfg.f_out == tuple(Fraction(f) for f in outs)
    assert 400 <= cfg.f_vco <= 800
    assert Fraction(3125, 1000) <= Fraction(f_in) / cfg.clki_div <= 400


def test_pll_dividers_refuse_the_impossible():
    with pytest.raises(ValueError, match="outside"):
        pll_dividers(25, (500,))
    with pytest.raises(ValueError, match="exactly"):
        pll_dividers(25, (125, 49.9))
    with pytest.raises(ValueError, match="1 to 4"):
        pll_dividers(25, (125, 50, 25, 10, 5))


def test_pll_model_locks_after_lock_cycles_and_on_release_of_reset():
    pll = EHXPLLL(25, {"sync": 125}, lock_cycles=10)
    trace = []

    async def bench(ctx):
        for _ in range(14):
            trace.append(ctx.get(pll.lock))
            await ctx.tick()
        ctx.set(pll.rst, 1)
        await ctx.tick()
        trace.append(ctx.get(pll.lock))
        ctx.set(pll.rst, 0)
        for _ in range(12):
            await ctx.tick()
            trace.append(ctx.get(pll.lock))

    sim = Simulator(pll)
    pll.add_sim_clocks(sim)
    sim.add_testbench(bench)
    sim.run()
    assert trace[:14] == [0] * 10 + [1] * 4
    assert trace[14] == 0
    assert trace[15:] == [0] * 9 + [1] * 3      # counting from the reset's own edge


def test_pll_on_ecp5_is_an_ehxplll_with_the_computed_dividers():
    pll = EHXPLLL(100, {"tx": 125, "sync": 50})
    inst = [i for i in _instances(Fragment.get(pll, _ecp5_platform())) if i.type == "EHXPLLL"]
    assert len(inst) == 1
    p = inst[0].parameters
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"], p["CLKOS_DIV"]) == (
        pll.config.clki_div, pll.config.clkfb_div, *pll.config.out_divs)
    assert float(Fraction(100) / p["CLKI_DIV"] * p["CLKFB_DIV"]) == 125.0
    assert p["FEEDBK_PATH"] == "CLKOP"
    assert pll.frequencies == {"tx": 125, "sync": 50}
