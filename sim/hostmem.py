"""The simulated host's memory: DMA buffers that ARE the ring files, plus guard zones.

The DMA engine of a simulated device writes host memory by bus address.  Here
each DMA buffer is a file (``/dev/shm/<name>``, what :class:`wiretick.host.ring.Ring`
maps) mapped shared at its bus address: a write from the simulated AXI bus is
a store into that mapping, i.e. into the very pages every ``Ring`` reader of the
file sees.  Nothing is copied between "simulated memory" and the strategy's view.

Around each buffer sits a guard zone (``GUARD_BYTES`` on each side, filled with
``GUARD_FILL``); the DMA engine must never write there (docs/ring.md: "the
hardware never writes outside [base, base + nslots*64) and the shadow-head
word").  A write into a guard zone lands in the guard (so it is caught), a write
anywhere else unmapped is refused; both are recorded in :attr:`HostMemory.violations`.

Used by the cocotb engine (the fast engine does the same in C++, sim/cpp/harness.cpp).
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["GUARD_BYTES", "GUARD_FILL", "Region", "HostMemory", "BusError"]

#: Bytes of guard zone before and after every DMA buffer.
GUARD_BYTES = 4096
#: What a guard zone holds until something writes there.
GUARD_FILL = 0xA5


class BusError(Exception):
    """A write to an address no buffer covers (the bus answers SLVERR/DECERR)."""


@dataclass
class Region:
    """One DMA buffer: ``size`` bytes of ``path`` mapped at bus address ``bus``."""

    bus: int
    size: int
    path: Path
    map: mmap.mmap
    mem: memoryview
    guard_lo: bytearray = field(default_factory=lambda: bytearray([GUARD_FILL]) * GUARD_BYTES)
    guard_hi: bytearray = field(default_factory=lambda: bytearray([GUARD_FILL]) * GUARD_BYTES)
    #: Offset ranges ``[lo, hi)`` the device may write (None: the whole buffer).
    allowed: list[tuple[int, int]] | None = None
    #: Writes inside the buffer but outside ``allowed``: [address, length, what].
    outside: list[list] = field(default_factory=list)


class HostMemory:
    """Bus address space of the simulated host: file-backed regions with guard zones."""

    def __init__(self):
        self.regions: list[Region] = []
        #: (address, length, what) of every write outside the buffers.
        self.violations: list[tuple[int, int, str]] = []
        self.writes = 0

    def add(self, bus: int, size: int, path: str | os.PathLike) -> Region:
        """Map ``size`` bytes of the file ``path`` at bus address ``bus``."""
        for r in self.regions:
            if bus - GUARD_BYTES < r.bus + r.size + GUARD_BYTES and r.bus - GUARD_BYTES < bus + size + GUARD_BYTES:
                raise ValueError(f"bus range 0x{bus:X}+{size} overlaps the buffer at 0x{r.bus:X}")
        fd = os.open(path, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        region = Region(bus, size, Path(path), mm, memoryview(mm))
        self.regions.append(region)
        return region

    def remove(self, bus: int) -> None:
        """Unmap the buffer at ``bus`` (its guard-zone record goes with it)."""
        for r in list(self.regions):
            if r.bus == bus:
                self.regions.remove(r)
                r.mem.release()
                r.map.close()

    def _find(self, addr: int, n: int):
        for r in self.regions:
            if r.bus <= addr and addr + n <= r.bus + r.size:
                return r, None
            if r.bus - GUARD_BYTES <= addr < r.bus + r.size + GUARD_BYTES:
                return r, "guard"
        return None, None

    def write(self, addr: int, data) -> None:
        """One write from the bus: into the buffer's file, or a recorded violation."""
        n = len(data)
        r, what = self._find(addr, n)
        self.writes += 1
        if r is not None and what is None:
            o = addr - r.bus
            if r.allowed is not None and not any(lo <= o and o + n <= hi for lo, hi in r.allowed):
                r.outside.append([addr, n, f"offset {o} of the buffer at 0x{r.bus:X}, "
                                           f"outside the ring and shadow word"])
            r.mem[o:o + n] = data
            return
        if r is not None:
            for k in range(n):       # byte by byte: a write may straddle a guard and a buffer
                a = addr + k
                if a < r.bus:
                    if a >= r.bus - GUARD_BYTES:
                        r.guard_lo[a - (r.bus - GUARD_BYTES)] = data[k]
                elif a >= r.bus + r.size:
                    if a < r.bus + r.size + GUARD_BYTES:
                        r.guard_hi[a - (r.bus + r.size)] = data[k]
                else:
                    r.mem[a - r.bus] = data[k]
            self.violations.append((addr, n, f"guard zone of the buffer at 0x{r.bus:X}"))
            return
        self.violations.append((addr, n, "no buffer"))
        raise BusError(f"write of {n} bytes at 0x{addr:X}: no buffer there")

    def write_strobed(self, addr: int, data, strb: int) -> None:
        """One bus beat: ``data`` at ``addr``, only the bytes whose bit is set in ``strb`` (bit i: byte i)."""
        n = len(data)
        strb &= (1 << n) - 1
        while strb:                             # one write per run of enabled byte lanes
            i = (strb & -strb).bit_length() - 1         # the run's first lane
            run = strb >> i
            j = i + ((run + 1) & ~run).bit_length() - 1  # past its last lane
            self.write(addr + i, data[i:j])
            strb &= ~((1 << j) - (1 << i))

    def write_beats(self, addrs, rows, strbs) -> int:
        """Bus beats in order: row ``k`` at ``addrs[k]``, byte lanes ``strbs[k]``; returns the beats refused.

        The same as :meth:`write_strobed` beat by beat (``addrs``, ``strbs``:
        uint64 arrays, ``rows``: a uint8 array of one row per beat), but the
        common beat (one run of lanes, inside a buffer, where the device may
        write: the DMA engine's tick and shadow-head writes) is classified for
        all beats at once and stored with one slice assignment.
        """
        n, width = rows.shape
        addrs = np.asarray(addrs, np.uint64)
        strbs = np.asarray(strbs, np.uint64) & np.uint64((1 << width) - 1)
        nz = strbs != 0
        low = strbs & (~strbs + np.uint64(1))                 # the lowest lane set
        # Powers of two are exact in float64: log2 gives lane numbers exactly.
        first = np.where(nz, np.log2(np.where(nz, low, 1).astype(np.float64)), 0).astype(np.int64)
        run = strbs >> first.astype(np.uint64)
        single = nz & ((run & (run + np.uint64(1))) == 0)     # lanes first .. first+size-1, no hole
        full = run == np.uint64((1 << 64) - 1)
        size = np.where(full, 64, np.log2(np.where(full, 1, run + np.uint64(1)).astype(np.float64))).astype(np.int64)
        start = addrs.astype(np.int64) + first
        region = np.full(n, -1, np.int64)
        offset = np.zeros(n, np.int64)
        for k, r in enumerate(self.regions):
            o = start - r.bus
            fit = single & (o >= 0) & (o + size <= r.size)
            if r.allowed is not None:
                ok = np.zeros(n, bool)
                for lo, hi in r.allowed:
                    ok |= (o >= lo) & (o + size <= hi)
                fit &= ok
            region[fit] = k
            offset[fit] = o[fit]
        refused = 0
        regions = self.regions
        for k, (reg, o, i, m) in enumerate(zip(region.tolist(), offset.tolist(), first.tolist(), size.tolist())):
            if reg >= 0:
                regions[reg].mem[o:o + m] = rows[k, i:i + m]
                self.writes += 1
                continue
            try:
                self.write_strobed(int(addrs[k]), rows[k], int(strbs[k]))
            except BusError:
                refused += 1
        return refused

    def read(self, addr: int, n: int) -> bytes:
        r, what = self._find(addr, n)
        if r is None or what is not None:
            raise BusError(f"read of {n} bytes at 0x{addr:X}: no buffer there")
        o = addr - r.bus
        return bytes(r.mem[o:o + n])

    def guards_intact(self) -> bool:
        """No guard zone was written (every byte still ``GUARD_FILL``)."""
        fill = bytes([GUARD_FILL]) * GUARD_BYTES
        return all(bytes(r.guard_lo) == fill and bytes(r.guard_hi) == fill for r in self.regions)

    def close(self) -> None:
        for r in list(self.regions):
            self.remove(r.bus)
