"""The tick record in gateware: an Amaranth ``data.StructLayout`` derived from the
one description in :mod:`wiretick.host.contract.formats`.

Amaranth lays struct fields out from the least significant bit in declaration
order; the tick fields are declared in byte order, so bit ``8*i`` of a tick
value is the lowest bit of byte ``i`` of the little-endian record in memory.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data

from wiretick.host.contract.formats import TICK_FIELDS, TICK_SIZE

__all__ = ["TickLayout", "TICK_BITS"]

TICK_BITS = 8 * TICK_SIZE


def _layout() -> data.StructLayout:
    fields = {}
    pos = 0
    for f in TICK_FIELDS:
        if f.offset != pos:
            raise AssertionError(f"tick field {f.name} leaves a hole at byte {pos}")
        fields[f.name] = unsigned(8 * f.size)
        pos += f.size
    layout = data.StructLayout(fields)
    assert layout.size == TICK_BITS
    return layout


#: The 512-bit tick record.
TickLayout: data.StructLayout = _layout()
