"""Stage 4: tick builder (combinational).

Builds the message part of a tick from a complete ITCH message: every byte copy
of :data:`wiretick.host.contract.formats.TICK_MAP` for the message's type, plus the rules
that are not copies (:data:`~wiretick.host.contract.formats.SATURATE_RULES`,
:data:`~wiretick.host.contract.formats.PRINTABLE_RULES`).  Nothing here restates an offset:
for each tick byte the multiplexer over message types is generated from the map.
``seq``, ``ts_rx`` and ``feed_seq`` are left zero for the sequencer.
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import (PRINTABLE_RULES, QTY_SATURATED, SATURATE_RULES, TICK_FIELD_BY_NAME,
                                   TICK_MAP, TICK_SIZE, Flag)

from .assembler import KIND_CODES, SOURCE_GROUPS, message_layout, tick_byte_sources
from .common import be
from .tick import TickLayout

__all__ = ["TickBuilder", "built_layout"]


def built_layout() -> data.StructLayout:
    """A message tick before sequencing.

    Fields
    ------
    tick : TickLayout
        Every field but ``seq``, ``ts_rx`` and ``feed_seq`` (zero).
    index : 16
        Block number within the packet (for ``feed_seq``).
    kind : len(KIND_CODES)
        The message's type one-hot, as the assembler decoded it (for the per-type
        counters).
    """
    return data.StructLayout({"tick": TickLayout, "index": unsigned(16), "kind": unsigned(len(KIND_CODES))})


def _or(terms, width):
    """The OR of ``terms`` (0 when there are none)."""
    out = Const(0, width)
    for t in terms:
        out = out | t
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
        kind = {code: msg.kind[k] for k, code in enumerate(KIND_CODES)}
        flag_bytes = _field_bytes("flags")
        shares_bytes = _field_bytes("shares")
        sat = dict(SATURATE_RULES)
        printable = dict(PRINTABLE_RULES)
        sources = {code: tick_byte_sources(code) for code in TICK_MAP}
        written = sorted({d for src in sources.values() for d in src} | set(flag_bytes)
                         | (set(shares_bytes) if sat else set()))

        # Each tick byte is an AND-OR over the message bytes some type copies into it,
        # each selected by the assembler's register for the group of types that copy
        # it (``sel``): two LUT levels, no decoding of the type here.  A byte every type fills from the same
        # message byte needs no select at all.
        tick = {}
        for d in written:
            by_src = {}
            for code, src in sources.items():
                if d in src:
                    by_src.setdefault(src[d], []).append(code)
            if len(by_src) == 1 and len(next(iter(by_src.values()))) == len(sources):
                tick[d] = msg.bytes[next(iter(by_src))]
                continue
            terms = [Mux(msg.sel[SOURCE_GROUPS.index(frozenset(codes))], msg.bytes[src], 0)
                     for src, codes in by_src.items()]
            tick[d] = _or(terms, 8)

        for code, off in sat.items():
            assert not set(sources[code]) & set(shares_bytes), f"{code}: shares both copied and saturated"
            wide = be(msg.bytes[off + k] for k in range(8))
            clipped = wide[8 * len(shares_bytes):].any()
            value = Mux(clipped, QTY_SATURATED, wide[:8 * len(shares_bytes)])
            for k, b in enumerate(shares_bytes):
                tick[b] = tick[b] | Mux(kind[code], value[8 * k:8 * k + 8], 0) if b in tick else \
                    Mux(kind[code], value[8 * k:8 * k + 8], 0)
            saturated = kind[code] & clipped
        assert len(sat) == 1 and len(printable) == 1, "one saturate and one printable rule"
        (pcode, poff), = printable.items()
        printable_y = kind[pcode] & (msg.bytes[poff] == ord("Y"))
        for code in TICK_MAP:
            assert not set(sources[code]) & set(flag_bytes), f"{code}: a copy writes the flags"
        flags = Signal(8 * len(flag_bytes))
        m.d.comb += flags.eq(Mux(saturated, Flag.SATURATED, 0) | Mux(printable_y, Flag.PRINTABLE, 0))
        for k, b in enumerate(flag_bytes):
            tick[b] = flags[8 * k:8 * k + 8]

        m.d.comb += [
            self.o_built.valid.eq(self.i_msg.valid),
            self.o_built.payload.tick.as_value().eq(Cat(*[tick[d] if d in tick else Const(0, 8)
                                                          for d in range(TICK_SIZE)])),
            self.o_built.payload.index.eq(msg.index),
            self.o_built.payload.kind.eq(msg.kind),
        ]
        return m
