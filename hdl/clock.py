"""A free-running 64-bit nanosecond clock for ``ts_rx``.

The clock adds the period of the system clock, in nanoseconds, every cycle.  The
period is a rational number, kept exactly: 4 ns at 250 MHz, 6.4 ns (= 32/5) at
156.25 MHz, 3.2 ns at 312.5 MHz.  A period ``p = q + r/d`` (``0 <= r < d``) adds ``q``
every cycle and one more nanosecond whenever the remainder accumulator, which
grows by ``r`` per cycle, reaches ``d``: after ``n`` cycles the clock reads
exactly ``floor(n * p)``.
"""

from __future__ import annotations

from fractions import Fraction

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["NsClock", "period_fs"]


def _period(ns_per_cycle) -> Fraction:
    p = Fraction(ns_per_cycle)
    if p <= 0:
        raise ValueError(f"the clock period must be positive, not {ns_per_cycle!r}")
    if p.denominator > 1 << 16:
        raise ValueError(f"the clock period {ns_per_cycle!r} needs a denominator <= 65536 "
                         "(give it as a Fraction or a short decimal string)")
    return p


def period_fs(ns_per_cycle) -> int:
    """The period in femtoseconds, rounded (the ``CLOCK_PERIOD_FS`` register)."""
    return round(_period(ns_per_cycle) * 1_000_000)


class NsClock(wiring.Component):
    """Free-running nanosecond counter.

    Parameters
    ----------
    ns_per_cycle : int, Fraction or str
        Period of the domain's clock in ns, e.g. ``4`` or ``"6.4"``.

    Attributes
    ----------
    ns : Out(64)
        Nanoseconds since reset: ``floor(cycles * ns_per_cycle)``; wraps after 584 years.
    """

    def __init__(self, ns_per_cycle=4):
        self.period = _period(ns_per_cycle)
        super().__init__({"ns": Out(64)})

    def elaborate(self, platform):
        m = Module()
        q, r = divmod(self.period.numerator, self.period.denominator)
        d = self.period.denominator
        if r == 0:
            m.d.sync += self.ns.eq(self.ns + q)
        else:
            # ``bump``: this cycle adds q + 1 (acc + r >= d), decided a cycle ahead by
            # comparing acc with constants, so that the 64-bit sum is one adder whose
            # second operand comes from a register.
            acc = Signal(range(d), name="ns_remainder")
            bump = Signal(name="ns_bump")
            lo, hi = d - 2 * r, 2 * d - 2 * r     # next bump: acc >= lo (no bump now), acc >= hi (bump now)
            m.d.sync += [
                acc.eq(Mux(bump, acc + r - d, acc + r)),
                bump.eq(Mux(bump, acc >= hi if hi < d else 0, acc >= lo if lo > 0 else 1)),
                self.ns.eq(self.ns + Mux(bump, q + 1, q)),
            ]
        return m
