"""The counter bank: one register per :data:`wiretick.host.formats.COUNTERS` entry."""

from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from wiretick.host.formats import COUNTERS


__all__ = ["CounterBank"]


class CounterBank(wiring.Component):
    """Accumulate per-cycle increments into counters, in :data:`COUNTERS` order.

    The increments are read straight from the stages' ``o_count`` ports, given at
    construction (an increment is a value of any width, added every cycle).

    Parameters
    ----------
    sources : dict[str, Value]
        The increment of every counter (every name of ``COUNTERS``, nothing else).
    counter_bits : int
        Width of each counter (they wrap).

    Attributes
    ----------
    counters : Out(ArrayLayout(counter_bits, len(COUNTERS)))
        Counter values, element ``formats.COUNTER_INDEX[name]``.
    """

    def __init__(self, sources: dict, counter_bits: int = 64):
        names = [c.name for c in COUNTERS]
        if set(sources) != set(names):
            raise ValueError(f"counters without a source: {sorted(set(names) - set(sources))}; "
                             f"unknown: {sorted(set(sources) - set(names))}")
        self.names = names
        self.sources = sources
        super().__init__({
            "counters": Out(data.ArrayLayout(unsigned(counter_bits), len(names))),
        })

    def elaborate(self, platform):
        m = Module()
        for i, name in enumerate(self.names):
            inc = self.sources[name]
            with m.If(inc != 0):
                m.d.sync += self.counters[i].eq(self.counters[i] + inc)
        return m
