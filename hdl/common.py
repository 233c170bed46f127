"""Definitions shared by the parser stages, all derived from :mod:`wiretick.host.contract.formats`.

The parser is a chain of stages (see :mod:`wiretick.hdl.parser`); the layouts of
the streams between them live next to the stage that produces them.  This module
holds what several stages need: the MAC beat layout, frame-offset widths and the
ITCH type-length lookup.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Signal, Value, unsigned
from amaranth.lib import data

from wiretick.host.contract.formats import (ETHERTYPE_VLAN, MAX_VLAN_TAGS, MESSAGES, MOLD_HEADER_SIZE)

__all__ = [
    "OFFSET_BITS", "MAX_MSG_LEN", "MIN_MSG_LEN", "HEADER_BYTES", "mac_beat_layout",
    "type_length", "be", "counter_events_layout", "toplevel_ports", "pick",
]

#: Width of a byte offset inside a frame.  UDP lengths are 16 bits and the
#: payload starts at most 82 bytes in, so sums such as ``block start + 2 + L``
#: stay below 2**18; frames longer than that saturate the beat counter.
OFFSET_BITS = 18

#: Longest / shortest ITCH message (bytes), from the one description.
MAX_MSG_LEN = max(m.length for m in MESSAGES)
MIN_MSG_LEN = min(m.length for m in MESSAGES)

# Ethernet (14) + VLAN tags + IPv4 with the largest IHL (60) + UDP (8) + MoldUDP64 header.
_LAST_HEADER_END = 14 + 4 * MAX_VLAN_TAGS + 60 + 8 + MOLD_HEADER_SIZE
#: Bytes at the start of a frame that can hold a header field (110).
HEADER_BYTES = _LAST_HEADER_END

assert all(t in (0x8100, 0x88A8) for t in ETHERTYPE_VLAN)


def mac_beat_layout(width: int = 8) -> data.StructLayout:
    """One beat of the MAC receive stream.

    Fields
    ------
    data : ``8*width`` bits
        Frame bytes, byte ``k`` of the beat in ``data[8k:8k+8]`` (little-endian lanes):
        byte 0 of the frame is ``data[0:8]`` of the first beat.
    nbytes : 0..width
        Valid bytes in this beat: ``width`` for every beat but the last.
    first, last : 1 bit each
        Beat opens / closes a frame (both set for a one-beat frame).
    error : 1 bit
        Valid with ``last``: the MAC found a bad FCS (or another receive error).
    """
    return data.StructLayout({
        "data": unsigned(8 * width),
        "nbytes": unsigned(range(width + 1).stop.bit_length()),
        "first": unsigned(1),
        "last": unsigned(1),
        "error": unsigned(1),
    })


def be(byte_values) -> Value:
    """The big-endian integer whose bytes (most significant first) are ``byte_values``."""
    return Cat(*reversed(list(byte_values)))


def type_length(m: Module, type_byte: Value, name: str = "type_len") -> Signal:
    """A combinational ROM: the ITCH message length for a type byte, 0 for an unknown type."""
    out = Signal(range(MAX_MSG_LEN + 1), name=name)
    with m.Switch(type_byte):
        for msg in MESSAGES:
            with m.Case(msg.type_byte):
                m.d.comb += out.eq(msg.length)
        with m.Default():
            m.d.comb += out.eq(0)
    return out


def counter_events_layout(widths: dict[str, int]) -> data.StructLayout:
    """Per-cycle counter increments a stage reports: ``{counter name: increment width}``."""
    return data.StructLayout({name: unsigned(w) for name, w in widths.items()})


def pick(candidates, sel: Value) -> Value:
    """``candidates[sel]`` as a multiplexer, padded to a power of two so that every
    value of ``sel`` selects something (the last candidate repeats)."""
    cands = list(candidates)
    n = 1 << len(sel)
    if len(cands) > n:
        raise ValueError(f"{len(cands)} candidates for a {len(sel)}-bit selector")
    cands += [cands[-1]] * (n - len(cands))
    return Array(cands)[sel]


def toplevel_ports(component) -> list[Signal]:
    """The signals of a component's interface, for ``verilog.convert(..., ports=...)``.

    Streams declared ``always_ready`` / ``always_valid`` hold a constant instead of
    a signal, which cannot be a port; they are left out.
    """
    from amaranth.hdl import Const
    ports = []
    for _path, _member, value in component.signature.flatten(component):
        v = value.as_value() if hasattr(value, "as_value") else value
        if isinstance(v, Const):
            continue
        ports.append(v)
    return ports
