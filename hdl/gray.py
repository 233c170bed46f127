"""Gray-coded FIFO pointers across two clock domains, shared by the RGMII front ends' FIFOs.

A FIFO between two clocks keeps a binary pointer on each side (one more bit than the
address: full and empty differ by it) and a Gray-coded copy of it, which changes one
bit at a step and so crosses to the other side through a plain two-flip-flop
synchroniser without ever being seen half-updated.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Cat, Signal, Value
from amaranth.lib.cdc import FFSynchronizer

__all__ = ["gray_encode", "gray_decode", "GrayPointers", "gray_pointers"]


def gray_encode(x: Value) -> Value:
    """The Gray code of ``x``."""
    return x ^ (x >> 1)


def gray_decode(gray: Value, *, balanced: bool = False) -> Value:
    """Binary of a Gray-coded value: each bit the XOR of the Gray bits at and above it.

    By default a chain, each bit from the one above: few LUTs, but as deep as it is
    long (6 LUTs for 10 bits, a receive clock's path on the Colorlight).  ``balanced``
    makes each bit its own XOR reduction, a tree of LUTs: shallow, for a FIFO pointer
    on a fast clock, but larger (the receive front ends' 32-bit counters, decoded at the
    core clock where depth does not matter, took 34 LUT4 more that way out of context
    and some 850 more in the Colorlight's build).
    """
    if balanced:
        return Cat(*(gray[i:].xor() for i in range(len(gray))))
    bits = [gray[-1]]
    for i in range(len(gray) - 2, -1, -1):
        bits.insert(0, bits[0] ^ gray[i])
    return Cat(*bits)


@dataclass(frozen=True)
class GrayPointers:
    """A FIFO's pointers: each side's binary and Gray pointer, and the other side's Gray
    pointer as synchronised into it (``r_gry_w`` in the write domain, ``w_gry_r`` in the read)."""
    w_bin: Signal
    w_gry: Signal
    r_bin: Signal
    r_gry: Signal
    r_gry_w: Signal
    w_gry_r: Signal


def gray_pointers(m, bits: int, *, w_domain: str, r_domain: str) -> GrayPointers:
    """The pointers of a FIFO of ``2**(bits-1)`` entries, their synchronisers added to ``m``
    (``r_to_w``, ``w_to_r``).  The caller drives ``w_bin``/``w_gry`` in ``w_domain`` and
    ``r_bin``/``r_gry`` in ``r_domain``."""
    p = GrayPointers(*(Signal(bits, name=n) for n in ("w_bin", "w_gry", "r_bin", "r_gry", "r_gry_w", "w_gry_r")))
    m.submodules.r_to_w = FFSynchronizer(p.r_gry, p.r_gry_w, o_domain=w_domain)
    m.submodules.w_to_r = FFSynchronizer(p.w_gry, p.w_gry_r, o_domain=r_domain)
    return p
