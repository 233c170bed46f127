"""The counter bank: one register per :data:`wiretick.host.contract.formats.COUNTERS` entry.

Each counter is no wider than its register in the map (:mod:`wiretick.host.contract.registers`):
32 bits for the event counters, which wrap and which the host extends to 64
(:data:`wiretick.host.contract.registers.COUNTER_NOTE`), 64 for ``gap_messages``, which grows by
a whole gap at once.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from wiretick.host.contract.formats import COUNTERS
from wiretick.host.contract.registers import counter_register


__all__ = ["CounterBank"]


class CounterBank(wiring.Component):
    """Accumulate per-cycle increments into counters, in :data:`COUNTERS` order.

    The increments are read from the stages' ``o_count`` ports, given at construction
    (an increment is a value of any width, added every cycle), through a register:
    a counter shows an event two cycles after the stage reports it.

    Parameters
    ----------
    sources : dict[str, Value]
        The increment of every counter (every name of ``COUNTERS``, nothing else).
    counter_bits : int
        Width of the ``counters`` port.  Each counter keeps
        ``min(counter_bits, its register's width)`` bits and wraps there; the port
        zero-extends it.

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
        # The increments are registered first: they come out of the stages' last logic
        # (the sequencer's tick decision), and a counter's carry chain after that logic
        # was the core's critical path.  Counters therefore trail the stages by a cycle.
        for i, name in enumerate(self.names):
            count = Signal(min(len(self.counters[i]), counter_register(name).width), name=f"count_{name}")
            inc = Signal(Value.cast(self.sources[name]).shape(), name=f"inc_{name}")
            m.d.sync += [inc.eq(self.sources[name]), count.eq(count + inc)]
            m.d.comb += self.counters[i].eq(count)
        return m
