"""The counter bank: one register per :data:`wiretick.host.formats.COUNTERS` entry."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
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
        # One register per counter, its increment added every cycle (zero most cycles):
        # each counter is its own adder and register, with no enable to decode, and the
        # array port is only their wiring.  (Assigning the port's elements in the sync
        # domain would make the whole array one wide register, whose next value
        # Verilator copies and recomputes in full every cycle.)
        for i, name in enumerate(self.names):
            count = Signal(self.counters[i].shape(), name=f"count_{name}")
            m.d.sync += count.eq(count + self.sources[name])
            m.d.comb += self.counters[i].eq(count)
        return m
