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

A buffer can also be anonymous memory (no file): a testbench's ring that no
reader follows.  :meth:`HostMemory.add_ring` maps a ring and its shadow-head word
and allows the device those bytes only.

:class:`AxiWriteChannels` is the AXI4 write slave (AW, W, B, no IDs) in front of
it, one clock edge at a time and independent of any simulator; the cocotb
testbench (``wiretick.sim.cocotb_tb.AxiWriteSlave``) and Amaranth's simulator
(:func:`serve_axi_writes`, :func:`simulate_with_memory`) sample their bus and
hand it each edge.  The fast
engine does the same in C++ (sim/cpp/harness.cpp).
"""

from __future__ import annotations

import mmap
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wiretick.host.contract.ring import SLOT_SIZE

__all__ = ["GUARD_BYTES", "GUARD_FILL", "Region", "HostMemory", "BusError", "AxiWriteChannels",
           "serve_axi_writes", "simulate_with_memory", "RESP_OKAY", "RESP_SLVERR"]

#: Bytes of guard zone before and after every DMA buffer.
GUARD_BYTES = 4096
#: What a guard zone holds until something writes there.
GUARD_FILL = 0xA5


class BusError(Exception):
    """A write to an address no buffer covers (the bus answers SLVERR/DECERR)."""


@dataclass
class Region:
    """One DMA buffer: ``size`` bytes of ``path`` (None: anonymous memory) mapped at bus address ``bus``."""

    bus: int
    size: int
    path: Path | None
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

    def add(self, bus: int, size: int, path: str | os.PathLike | None = None) -> Region:
        """Map ``size`` bytes of the file ``path`` (None: zeroed anonymous memory) at bus address ``bus``."""
        for r in self.regions:
            if bus - GUARD_BYTES < r.bus + r.size + GUARD_BYTES and r.bus - GUARD_BYTES < bus + size + GUARD_BYTES:
                raise ValueError(f"bus range 0x{bus:X}+{size} overlaps the buffer at 0x{r.bus:X}")
        if path is None:
            mm = mmap.mmap(-1, size)
        else:
            fd = os.open(path, os.O_RDWR)
            try:
                mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            finally:
                os.close(fd)
        region = Region(bus, size, None if path is None else Path(path), mm, memoryview(mm))
        self.regions.append(region)
        return region

    def add_ring(self, base: int, nslots: int, shadow: int) -> Region:
        """Anonymous memory for a ring of ``nslots`` slots at ``base`` and its 8-byte shadow head at ``shadow``.

        One buffer spans both, and the device may write only those bytes: any
        other write is recorded in the region's ``outside`` (or is a guard or
        unmapped violation), as :meth:`write` does for a ring file.
        """
        lo = min(base, shadow)
        hi = max(base + nslots * SLOT_SIZE, shadow + 8)
        region = self.add(lo, hi - lo)
        region.allowed = [(base - lo, base - lo + nslots * SLOT_SIZE), (shadow - lo, shadow - lo + 8)]
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

    def clean(self) -> bool:
        """No write went anywhere but where the device may write: guards intact, nothing outside, nothing unmapped."""
        return self.guards_intact() and not self.violations and not any(r.outside for r in self.regions)

    def guards_intact(self) -> bool:
        """No guard zone was written (every byte still ``GUARD_FILL``)."""
        fill = bytes([GUARD_FILL]) * GUARD_BYTES
        return all(bytes(r.guard_lo) == fill and bytes(r.guard_hi) == fill for r in self.regions)

    def close(self) -> None:
        for r in list(self.regions):
            self.remove(r.bus)


#: AXI responses (BRESP): OKAY, and SLVERR for a write the memory refused.
RESP_OKAY, RESP_SLVERR = 0, 2


class AxiWriteChannels:
    """An AXI4 write slave (AW, W, B; no IDs, like the DMA engine) storing into :class:`HostMemory`.

    Simulator-free: a testbench samples the bus at every rising clock edge (the
    values the edge takes) and calls :meth:`edge`, which says what to drive on B
    for the next cycle.  ``AWREADY``/``WREADY`` are taken to be high (memory that
    never stalls).  Beats are paired with their burst in order (W may come before
    its AW); a burst's B response is offered on the cycle after its last beat,
    ``SLVERR`` when the memory refused a beat (no buffer there: the DMA engine
    counts it in ``DMA_BUS_ERRORS``).  A ``WLAST`` out of place is recorded in the
    memory's ``violations``.

    Parameters
    ----------
    host : HostMemory
        Where beats are stored.
    lanes : int
        Bytes of ``wdata``.
    """

    def __init__(self, host: HostMemory, lanes: int):
        self.host = host
        self.lanes = lanes
        self.bursts = 0
        self._aw: deque[list[int]] = deque()      # [address of the next beat, beats left, beat bytes, refused]
        self._w: deque[tuple[int, int, int]] = deque()
        self._b: deque[int] = deque()

    def edge(self, aw: tuple[int, int, int] | None, w: tuple[int, int, int] | None, b_taken: bool) -> int | None:
        """Handshakes at one rising edge; returns the BRESP to offer next, or None (BVALID low).

        ``aw``: (awaddr, awlen, awsize) if AWVALID was high; ``w``: (wdata, wstrb,
        wlast) if WVALID was high; ``b_taken``: BVALID and BREADY were both high.
        """
        if b_taken and self._b:
            self._b.popleft()
        if aw is not None:
            addr, alen, size = aw
            self._aw.append([int(addr), int(alen) + 1, 1 << int(size), 0])
        if w is not None:
            self._w.append((int(w[0]), int(w[1]), int(w[2])))
        while self._w and self._aw:
            self._beat(*self._w.popleft())
        return self._b[0] if self._b else None

    def _beat(self, data: int, strb: int, last: int) -> None:
        aw = self._aw[0]
        addr, left, size, _ = aw
        try:
            self.host.write_strobed(addr - addr % self.lanes, data.to_bytes(self.lanes, "little"), strb)
        except BusError:
            aw[3] = 1                           # recorded in host.violations too
        aw[0] = addr - addr % size + size
        aw[1] = left - 1
        done = aw[1] == 0
        if done != bool(last):
            self.host.violations.append((addr, 0, f"WLAST {last} on a beat with {aw[1]} beats left"))
        if done or last:
            self._aw.popleft()
            self._b.append(RESP_SLVERR if aw[3] else RESP_OKAY)
            self.bursts += 1


async def serve_axi_writes(ctx, bus, host: HostMemory) -> None:
    """An Amaranth testbench (``sim.add_testbench(..., background=True)``) serving ``bus``'s writes from ``host``.

    ``bus``: an AXI4 write master's interface (:class:`wiretick.hdl.axi.AXI4WriteSignature`
    or the like: ``aw*``, ``w*``, ``b*``), seen from the memory's side.
    """
    slave = AxiWriteChannels(host, len(bus.wdata) // 8)
    ctx.set(bus.awready, 1)
    ctx.set(bus.wready, 1)
    async for _, _, awv, addr, alen, size, wv, data, strb, last, bv, br in ctx.tick().sample(
            bus.awvalid, bus.awaddr, bus.awlen, bus.awsize, bus.wvalid, bus.wdata, bus.wstrb, bus.wlast,
            bus.bvalid, bus.bready):
        resp = slave.edge((addr, alen, size) if awv else None, (data, strb, last) if wv else None, bool(bv and br))
        ctx.set(bus.bvalid, resp is not None)
        ctx.set(bus.bresp, resp or 0)


def simulate_with_memory(dut, bus, host: HostMemory, testbench, period: float) -> None:
    """Run ``testbench`` on ``dut`` in Amaranth's simulator, ``bus``'s writes served from ``host``.

    ``testbench``: an async function of the simulator context; the run ends when
    it returns.  ``period``: the clock's period in seconds.  Whether every write
    went where it may is ``host.clean()`` afterwards.
    """
    from amaranth.sim import Simulator

    async def memory(ctx) -> None:
        await serve_axi_writes(ctx, bus, host)

    sim = Simulator(dut)
    sim.add_clock(period)
    sim.add_testbench(testbench)
    sim.add_testbench(memory, background=True)
    sim.run()
