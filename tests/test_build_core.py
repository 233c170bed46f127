"""The core (WiretickTop: parser, DMA, registers; no board I/O) placed and routed out of context.

The figure of issue 9: the core meets the 10GbE datapath clock, ``CORE_CLOCK_MHZ``
(156.25 MHz), on the LFE5U-85F, speed 8.  One seed, one synthesis: a few minutes
here (see docs/timing.md for the time and the figures; ``wiretick bench build`` takes
the median of several seeds).
"""

from __future__ import annotations

import pytest

from wiretick.hdl.flow import CORE_CLOCK_MHZ, OOC_PART, Progress, build_ooc
from wiretick.hdl.top import WiretickTop


@pytest.mark.slow
def test_core_meets_its_clock_out_of_context(tmp_path):
    (build,) = build_ooc(WiretickTop(), tmp_path, freq_mhz=CORE_CLOCK_MHZ, seeds=(1,), name="top",
                         progress=Progress(quiet=True))
    rep = build.report
    assert set(rep.clocks) == {"clk"}
    clk = rep.clocks["clk"]
    assert clk.constraint_mhz == pytest.approx(CORE_CLOCK_MHZ)
    cp = rep.critical_path
    assert clk.met, (f"core Fmax {clk.achieved_mhz:.2f} MHz < {CORE_CLOCK_MHZ} MHz on {OOC_PART}; "
                     f"critical path {cp.describe() if cp else '-'}")
    assert 0 < rep.luts.used <= rep.luts.available and rep.luts.available == 83640
    assert rep.ffs.used > 0
