"""Stage 4: tick builder (combinational).

Builds the message part of a tick from a complete ITCH message: every byte copy
of :data:`wiretick.host.formats.TICK_MAP` for the message's type, plus the rules
that are not copies (:data:`~wiretick.host.formats.SATURATE_RULES`,
:data:`~wiretick.host.formats.PRINTABLE_RULES`).  Nothing here restates an offset:
for each tick byte the multiplexer over message types is generated from the map.
``seq``, ``ts_rx`` and ``feed_seq`` are left zero for the sequencer.
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import (MESSAGE_BY_CODE, PRINTABLE_RULES, QTY_SATURATED, SATURATE_RULES, TICK_FIELD_BY_NAME,
                                   TICK_MAP, TICK_SIZE, Flag)

from .assembler import message_layout
from .common import be
from .tick import TickLayout

__all__ = ["TickBuilder", "built_layout", "tick_byte_sources"]


def built_layout() -> data.StructLayout:
    """A message tick before sequencing.

    Fields
    ------
    tick : TickLayout
        Every field but ``seq``, ``ts_rx`` and ``feed_seq`` (zero).
    index : 16
        Block number within the packet (for ``feed_seq``).
    """
    return data.StructLayout({"tick": TickLayout, "index": unsigned(16)})


def tick_byte_sources(code: str) -> dict[int, int]:
    """``{tick byte: message byte}`` of the copies of ``TICK_MAP[code]``."""
    out = {}
    for c in TICK_MAP[code]:
        for k in range(c.size):
            out[c.dst + k] = c.src + (c.size - 1 - k if c.kind == "be" else k)
    return out


def _field_bytes(name: str) -> range:
    f = TICK_FIELD_BY_NAME[name]
    return range(f.offset, f.offset + f.size)


class TickBuilder(wiring.Component):
    """Map a complete ITCH message to the tick fields of its type.

    Attributes
    ----------
    i_msg : In(stream.Signature(message_layout(), always_ready=True))
        Complete messages from :class:`~wiretick.hdl.assembler.MessageAssembler`.
    o_built : Out(stream.Signature(built_layout(), always_ready=True))
        The message tick, combinationally (valid with ``i_msg.valid``).
    """

    i_msg: In(stream.Signature(message_layout(), always_ready=True))
    o_built: Out(stream.Signature(built_layout(), always_ready=True))

    def elaborate(self, platform):
        m = Module()
        msg = self.i_msg.payload
        saturated = Signal()
        printable_y = Signal()
        flag_bytes = _field_bytes("flags")
        shares_bytes = _field_bytes("shares")
        sat = dict(SATURATE_RULES)
        printable = dict(PRINTABLE_RULES)
        # The tick bytes some rule writes live in one signal; the others are constant zero.
        written = sorted({d for code in TICK_MAP for d in tick_byte_sources(code)} | set(flag_bytes)
                         | (set(shares_bytes) if sat else set()))
        tick_v = Signal(8 * len(written))
        tick = {d: tick_v[8 * k:8 * k + 8] for k, d in enumerate(written)}

        # A tick byte filled from the same message byte for every type needs no multiplexer.
        sources = {code: tick_byte_sources(code) for code in TICK_MAP}
        common = {d: src for d, src in sources[next(iter(sources))].items()
                  if all(s.get(d) == src for s in sources.values())}
        m.d.comb += [tick[d].eq(msg.bytes[src]) for d, src in common.items()]
        switched = sorted({d for s in sources.values() for d in s} - set(common))

        with m.Switch(msg.type):
            for code in TICK_MAP:
                with m.Case(MESSAGE_BY_CODE[code].type_byte):
                    src = sources[code]
                    assert not set(src) & set(flag_bytes), f"{code}: a copy writes the flags"
                    for dst, s in src.items():
                        if dst not in common:
                            m.d.comb += tick[dst].eq(msg.bytes[s])
                    if code in sat:
                        assert not set(src) & set(shares_bytes), f"{code}: shares both copied and saturated"
                        wide = be(msg.bytes[sat[code] + k] for k in range(8))
                        limit = QTY_SATURATED
                        clipped = wide > limit
                        value = Mux(clipped, limit, wide[:8 * len(shares_bytes)])
                        m.d.comb += [tick[b].eq(value[8 * k:8 * k + 8]) for k, b in enumerate(shares_bytes)]
                        m.d.comb += saturated.eq(clipped)
                    if code in printable:
                        m.d.comb += printable_y.eq(msg.bytes[printable[code]] == ord("Y"))
            with m.Default():
                # Not an ITCH type: no tick is made of it (zeros keep every case covered).
                m.d.comb += [tick[d].eq(0) for d in switched]
                m.d.comb += [saturated.eq(0), printable_y.eq(0)]
        flags = Mux(saturated, Flag.SATURATED, 0) | Mux(printable_y, Flag.PRINTABLE, 0)
        m.d.comb += [tick[b].eq(flags[8 * k:8 * k + 8]) for k, b in enumerate(flag_bytes)]

        m.d.comb += [
            self.o_built.valid.eq(self.i_msg.valid),
            self.o_built.payload.tick.as_value().eq(Cat(*[tick.get(d, Const(0, 8)) for d in range(TICK_SIZE)])),
            self.o_built.payload.index.eq(msg.index),
        ]
        return m
