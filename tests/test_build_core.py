"""The core (WiretickTop: parser, DMA, registers; no board I/O) placed and routed out of context.

The figure of issue 9: the core meets the 10GbE datapath clock, ``CORE_CLOCK_MHZ``
(156.25 MHz), on the LFE5U-85F, speed 8.  It does not yet (docs/timing.md says how
far it is and what limits it), so that goal is an expected failure, strict: the day
the core meets it, the suite fails until the marker goes.  Meanwhile the Fmax the
core has reached is a floor a change must not fall below.  One seed, one synthesis,
shared by both tests: a few minutes (``wiretick bench build`` takes the median of
several seeds).
"""

from __future__ import annotations

import pytest

from wiretick.hdl.flow import CORE_CLOCK_MHZ, OOC_PART, Progress, build_ooc
from wiretick.hdl.top import WiretickTop

#: The core reached 149.9 MHz at seed 1 after the fourth pass (c88a902, the gateware of
#: fa0d6f5; docs/timing.md has every seed), 136.5 after the third (ab32eb9); over this
#: pass's last states seed 1 gave 134.2-157.3: a seed places a changed netlist anew, so
#: a single seed moves by 10% between commits that do not change the design's speed.
#: Below this floor a change has made timing worse (the margin is also for tool
#: versions: the wheels are not pinned).
CORE_FMAX_FLOOR_MHZ = 130.0


@pytest.fixture(scope="module")
def core_build(tmp_path_factory):
    (build,) = build_ooc(WiretickTop(), tmp_path_factory.mktemp("core"), freq_mhz=CORE_CLOCK_MHZ, seeds=(1,),
                         name="top", progress=Progress(quiet=True))
    return build.report


def _where(rep) -> str:
    cp = rep.critical_path
    return f"on {OOC_PART}; critical path {cp.describe() if cp else '-'}"


@pytest.mark.slow
def test_core_keeps_its_fmax_out_of_context(core_build):
    rep = core_build
    assert set(rep.clocks) == {"clk"}
    clk = rep.clocks["clk"]
    assert clk.constraint_mhz == pytest.approx(CORE_CLOCK_MHZ)
    assert clk.achieved_mhz >= CORE_FMAX_FLOOR_MHZ, (
        f"core Fmax {clk.achieved_mhz:.2f} MHz fell below {CORE_FMAX_FLOOR_MHZ} MHz {_where(rep)}")
    assert 0 < rep.luts.used <= rep.luts.available and rep.luts.available == 83640
    assert rep.ffs.used > 0


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 9: the core does not meet 156.25 MHz yet (docs/timing.md)")
def test_core_meets_its_clock_out_of_context(core_build):
    clk = core_build.clocks["clk"]
    assert clk.met, f"core Fmax {clk.achieved_mhz:.2f} MHz < {CORE_CLOCK_MHZ} MHz {_where(core_build)}"
