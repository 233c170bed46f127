"""The control plane: one :class:`Device` API over interchangeable backends.

A backend is a register file (32-bit reads and writes at byte offsets of
BAR0, :data:`REGISTERS`) plus DMA memory (buffers the device writes ticks
into).  :class:`Device` programs either through the same register map:

- :class:`wiretick.host.replay.ReplayBackend`: the software reference feed
  handler replays a capture into the ring (no hardware needed);
- a simulator backend (another issue) plugs in by subclassing :class:`Backend`;
- :class:`PcieBackend`: real hardware, BAR0 as an :class:`MmioRegion` and DMA
  buffers from a :class:`DmaAllocator` (VFIO design in docs/host-driver.md).

The register map is data (:data:`REGISTERS`, :data:`COUNTER_BASE`) so that
the gateware, the simulator and this driver can all be generated from, or
checked against, one description.
"""

from __future__ import annotations

import mmap
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from .decode import DecodeConfig
from .formats import COUNTERS
from .ring import (
    DATA_OFFSET, OFF_DROPPED, OFF_HEAD, OFF_STATE, STATE_RUNNING, STATE_STOPPED, Ring, _check_nslots,
    _writer_knobs, init_ring, ring_bytes,
)

__all__ = [
    "Register", "REGISTERS", "REG", "COUNTER_BASE", "COUNTER_STRIDE", "BAR_SIZE", "DEVICE_ID", "DEVICE_VERSION",
    "CTRL_ENABLE", "CTRL_CLEAR_COUNTERS", "STATUS_RUNNING", "STATUS_DONE", "STATUS_ERROR",
    "PARSER_CHECK_IP_CHECKSUM", "PARSER_SEQUENCE_CHECK", "ERROR_TEXT", "ERROR_TEXT_SIZE",
    "DeviceError", "MmioRegion", "DmaBuffer", "Backend", "DmaAllocator", "FileDma", "PcieBackend",
    "DeviceInfo", "RingSetup", "Device", "register_table_markdown",
]

# ---------------------------------------------------------------- the register map

Access = Literal["ro", "rw", "wo"]


@dataclass(frozen=True)
class Register:
    """One register of BAR0: ``width`` bits at byte ``offset``.

    64-bit registers are two 32-bit words, low word first; reading the low word
    latches the high word, so ``lo`` then ``hi`` is one consistent value.
    """

    name: str
    offset: int
    width: Literal[32, 64]
    access: Access
    doc: str
    reset: int = 0


DEVICE_ID = 0x5754_4B31          #: "WTK1"
DEVICE_VERSION = 0x0001_0000     #: major 1, minor 0: this driver accepts major 1

CTRL_ENABLE = 1 << 0             #: CONTROL: parse and write ticks while set
CTRL_CLEAR_COUNTERS = 1 << 1     #: CONTROL: write 1 to zero every counter (self-clearing)
STATUS_RUNNING = 1 << 0          #: STATUS: the tick writer is active
STATUS_DONE = 1 << 1             #: STATUS: the input ended (replay: end of capture)
STATUS_ERROR = 1 << 2            #: STATUS: stopped on an error (text at ERROR_TEXT)
PARSER_CHECK_IP_CHECKSUM = 1 << 0
PARSER_SEQUENCE_CHECK = 1 << 1

REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x000, 32, "ro", "device identifier, 0x57544B31 ('WTK1')", DEVICE_ID),
    Register("VERSION", 0x004, 32, "ro", "register map version: major << 16 | minor", DEVICE_VERSION),
    Register("CONTROL", 0x008, 32, "rw", "bit 0 ENABLE; bit 1 CLEAR_COUNTERS (self-clearing)"),
    Register("STATUS", 0x00C, 32, "ro", "bit 0 RUNNING; bit 1 DONE (input ended); bit 2 ERROR"),
    Register("RING_BASE", 0x010, 64, "rw", "bus address of slot 0 (64-byte aligned)"),
    Register("RING_SLOTS", 0x018, 32, "rw", "number of slots: a power of two >= 64"),
    Register("SHADOW_INTERVAL", 0x01C, 32, "rw", "write the shadow head at least every N ticks (and when idle)"),
    Register("SHADOW_ADDR", 0x020, 64, "rw", "bus address of the shadow head word (control page + 64)"),
    Register("IP_DST", 0x028, 32, "rw", "accept only this IPv4 destination (0 = any)"),
    Register("UDP_PORT", 0x02C, 32, "rw", "accept only this UDP destination port, bits 0..15 (0 = any)"),
    Register("PARSER", 0x030, 32, "rw", "bit 0 CHECK_IP_CHECKSUM; bit 1 SEQUENCE_CHECK", 0b11),
    Register("SNAPSHOT", 0x034, 32, "wo", "write 1: latch every counter into the counter bank at once"),
    Register("CLOCK_NS", 0x038, 64, "ro", "free-running clock, ns (the ts_rx time base)"),
    Register("WRITE_SEQ", 0x040, 64, "ro", "seq of the last tick written to the ring"),
    Register("DROPPED", 0x048, 64, "ro", "ticks dropped because the DMA FIFO overflowed"),
    Register("SNAPSHOT_NS", 0x050, 64, "ro", "CLOCK_NS when the counter bank was latched"),
)
REG: dict[str, Register] = {r.name: r for r in REGISTERS}
COUNTER_BASE = 0x100             #: counter i (formats.COUNTERS order) at COUNTER_BASE + 8*i, 64-bit, latched
COUNTER_STRIDE = 8
ERROR_TEXT = 0xC00               #: UTF-8 text of the last error, NUL-padded
ERROR_TEXT_SIZE = 0x400
BAR_SIZE = 0x1000


def _check_map() -> None:
    end = COUNTER_BASE + COUNTER_STRIDE * len(COUNTERS)
    spans = sorted((r.offset, r.offset + r.width // 8, r.name) for r in REGISTERS)
    for (a0, a1, n0), (b0, _, n1) in zip(spans, spans[1:]):
        if a1 > b0:
            raise AssertionError(f"registers {n0} and {n1} overlap")
    if spans[-1][1] > COUNTER_BASE or end > ERROR_TEXT or ERROR_TEXT + ERROR_TEXT_SIZE > BAR_SIZE:
        raise AssertionError("register map does not fit BAR0")
    for r in REGISTERS:
        if r.offset % (r.width // 8):
            raise AssertionError(f"register {r.name} is not naturally aligned")


_check_map()


def register_table_markdown() -> str:
    """The register map as a Markdown table (for docs/host-driver.md)."""
    rows = ["| offset | register | bits | access | meaning |", "|---:|---|---:|---|---|"]
    rows += [f"| 0x{r.offset:03X} | `{r.name}` | {r.width} | {r.access} | {r.doc} |" for r in REGISTERS]
    rows.append(f"| 0x{COUNTER_BASE:03X} + 8*i | counter *i* | 64 | ro | `formats.COUNTERS[i]` as latched "
                f"by SNAPSHOT ({len(COUNTERS)} counters) |")
    rows.append(f"| 0x{ERROR_TEXT:03X} | error text | {8 * ERROR_TEXT_SIZE} | ro | UTF-8, why STATUS.ERROR is set |")
    return "\n".join(rows) + "\n"


class DeviceError(RuntimeError):
    """The device is absent, in the wrong state, or reported an error."""


# ---------------------------------------------------------------- register access

class MmioRegion:
    """32-bit register access to a memory-mapped region: a PCIe BAR or any mmap-able file or buffer.

    For hardware the source is ``/sys/bus/pci/devices/<bdf>/resource0`` or a
    VFIO device fd at its region offset; in tests it is a plain file.  Every
    access is one aligned 32-bit load or store (devices reject other widths).

    Parameters
    ----------
    source : path, file descriptor, or buffer (mmap, bytearray, ...).
    size : bytes to map (default: the whole file / buffer).
    offset : where the region starts in the file (page-aligned).
    writable : map read-write.
    """

    def __init__(self, source, *, size: int | None = None, offset: int = 0, writable: bool = True):
        self._map: mmap.mmap | None = None
        if isinstance(source, (str, os.PathLike, int)):
            fd = source if isinstance(source, int) else os.open(source, os.O_RDWR if writable else os.O_RDONLY)
            try:
                if size is None:
                    size = os.fstat(fd).st_size - offset
                if size <= 0 or size % 4:
                    raise DeviceError(f"MMIO region of {size} bytes: must be a positive multiple of 4")
                prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
                self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, prot, offset=offset)
            finally:
                if not isinstance(source, int):
                    os.close(fd)
            mem = memoryview(self._map)
        else:
            mem = memoryview(source).cast("B")
            if size is not None:
                mem = mem[offset:offset + size]
        if len(mem) % 4:
            raise DeviceError(f"MMIO region of {len(mem)} bytes: must be a multiple of 4")
        self.size = len(mem)
        self._u32 = mem.cast("I")

    def _index(self, offset: int) -> int:
        if offset % 4 or not 0 <= offset < self.size:
            raise DeviceError(f"register offset 0x{offset:X} is not an aligned 32-bit word of the "
                              f"{self.size}-byte region")
        return offset >> 2

    def read32(self, offset: int) -> int:
        return self._u32[self._index(offset)]

    def write32(self, offset: int, value: int) -> None:
        if not 0 <= value <= 0xFFFF_FFFF:
            raise DeviceError(f"0x{value:X} does not fit a 32-bit register")
        self._u32[self._index(offset)] = value

    def read_bytes(self, offset: int, n: int) -> bytes:
        """``n`` bytes as 32-bit reads (text registers)."""
        return b"".join(self.read32(offset + i).to_bytes(4, "little") for i in range(0, n, 4))[:n]

    def close(self) -> None:
        self._u32.release()
        if self._map is not None:
            self._map.close()


# ---------------------------------------------------------------- backends

@dataclass(frozen=True)
class DmaBuffer:
    """Memory the device writes into.

    Parameters
    ----------
    bus_address : the address the device uses (IOVA under VFIO).
    size : bytes.
    path : a file that maps it (hugepage or /dev/shm file), so any process can
        follow the ring; None when only ``buffer`` exists.
    buffer : the memory itself, when it is not a file.
    """

    bus_address: int
    size: int
    path: Path | None = None
    buffer: object | None = None

    def ring_source(self):
        """What :class:`~wiretick.host.ring.Ring` opens: the path, or the buffer."""
        return self.path if self.path is not None else self.buffer


class Backend(ABC):
    """What a device looks like to :class:`Device`: BAR0 registers plus DMA memory.

    Subclasses implement register reads and writes (with whatever side
    effects the device has: a write to CONTROL starts it, a read of CLOCK_NS
    returns the time) and DMA allocation.
    """

    name: str = "backend"

    @abstractmethod
    def read32(self, offset: int) -> int:
        """Read the 32-bit register at byte ``offset`` of BAR0."""

    @abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit register at byte ``offset`` of BAR0."""

    @abstractmethod
    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        """Allocate ``size`` bytes the device can write (``name``: a hint for the file)."""

    def free_dma(self, buf: DmaBuffer) -> None:
        """Release a buffer from :meth:`alloc_dma` (the device must be stopped)."""

    def close(self) -> None:
        """Release everything (the device must be stopped)."""

    def read_bytes(self, offset: int, n: int) -> bytes:
        return b"".join(self.read32(offset + i).to_bytes(4, "little") for i in range(0, n, 4))[:n]


class DmaAllocator(ABC):
    """Where a hardware backend gets DMA memory and its bus address from."""

    @abstractmethod
    def alloc(self, size: int, name: str | None = None) -> DmaBuffer:
        ...

    def free(self, buf: DmaBuffer) -> None:
        ...


class FileDma(DmaAllocator):
    """DMA buffers as files in a directory (``/dev/hugepages`` for huge pages, ``/dev/shm``), with IOVAs.

    Bus addresses come from a simple bump allocator starting at ``iova_base``;
    under VFIO the container maps each buffer at that IOVA (``map_dma``, the
    VFIO_IOMMU_MAP_DMA step of docs/host-driver.md).  Without an IOMMU mapping
    the addresses are only labels: that is how the tests use it.
    """

    def __init__(self, directory: str | os.PathLike = "/dev/shm", *, iova_base: int = 1 << 32,
                 align: int = 2 << 20, map_dma=None, prefix: str = "wiretick-dma"):
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise DeviceError(f"DMA directory {self.directory} does not exist")
        self._next = iova_base
        self._align = align
        self._map_dma = map_dma
        self._prefix = prefix
        self._count = 0

    def alloc(self, size: int, name: str | None = None) -> DmaBuffer:
        from .ring import ring_path
        self._count += 1
        path = ring_path(self.directory / name) if name else \
            self.directory / f"{self._prefix}-{os.getpid()}-{self._count}"
        block = max(os.statvfs(self.directory).f_bsize, mmap.PAGESIZE)
        size = -(-size // block) * block
        # A new inode, never a truncated old one: a reader may still map the old ring.
        path.unlink(missing_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)
        iova = self._next
        self._next += -(-size // self._align) * self._align
        buf = DmaBuffer(iova, size, path)
        if self._map_dma is not None:
            self._map_dma(buf)
        return buf

    def free(self, buf: DmaBuffer) -> None:
        if buf.path is not None:
            buf.path.unlink(missing_ok=True)


class PcieBackend(Backend):
    """Real hardware: BAR0 through an :class:`MmioRegion`, DMA memory from a :class:`DmaAllocator`.

    Nothing here is simulated: register writes go to the BAR, and ticks
    appear only if a device is behind it.  Opening the BAR and the IOMMU
    (VFIO) is described in docs/host-driver.md; tests run this class against
    a plain file standing in for BAR0.
    """

    name = "pcie"

    def __init__(self, bar: MmioRegion, dma: DmaAllocator):
        if bar.size < BAR_SIZE:
            raise DeviceError(f"BAR0 is {bar.size} bytes; the wiretick register map needs {BAR_SIZE}")
        self.bar = bar
        self.dma = dma

    def read32(self, offset: int) -> int:
        return self.bar.read32(offset)

    def write32(self, offset: int, value: int) -> None:
        self.bar.write32(offset, value)

    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        return self.dma.alloc(size, name)

    def free_dma(self, buf: DmaBuffer) -> None:
        self.dma.free(buf)

    def close(self) -> None:
        self.bar.close()


# ---------------------------------------------------------------- the device

@dataclass(frozen=True)
class DeviceInfo:
    id: int
    version: int
    backend: str

    @property
    def version_text(self) -> str:
        return f"{self.version >> 16}.{self.version & 0xFFFF}"


@dataclass(frozen=True)
class RingSetup:
    """The ring a device writes: its memory, size and shadow-head interval."""

    dma: DmaBuffer
    nslots: int
    interval: int

    @property
    def source(self):
        """What to pass to :class:`~wiretick.host.ring.Ring`."""
        return self.dma.ring_source()


class Device:
    """A wiretick feed handler, whichever backend implements it.

    Parameters
    ----------
    backend : a :class:`Backend`; its ID and major version are checked at once.

    Examples
    --------
    >>> dev = Device(ReplayBackend("feed.pcap"))            # doctest: +SKIP
    >>> dev.configure(DecodeConfig(port=26477))              # doctest: +SKIP
    >>> dev.setup_ring(1 << 20, name="feed")                 # doctest: +SKIP
    >>> dev.start(); ring = dev.open_ring()                  # doctest: +SKIP
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        dev_id = backend.read32(REG["ID"].offset)
        if dev_id != DEVICE_ID:
            raise DeviceError(f"no wiretick device behind {backend.name}: ID register reads 0x{dev_id:08X}, "
                              f"expected 0x{DEVICE_ID:08X}")
        version = backend.read32(REG["VERSION"].offset)
        if version >> 16 != DEVICE_VERSION >> 16:
            raise DeviceError(f"register map version {version >> 16}.{version & 0xFFFF} is not supported "
                              f"(this driver speaks {DEVICE_VERSION >> 16}.x)")
        self.info = DeviceInfo(dev_id, version, backend.name)
        self.ring: RingSetup | None = None

    # -------------------------------------------------------------- registers

    def read(self, name: str) -> int:
        """Read a register by name (64-bit ones: low word, which latches the high word, then high)."""
        r = self._reg(name)
        if r.access == "wo":
            raise DeviceError(f"register {name} is write-only")
        lo = self.backend.read32(r.offset)
        if r.width == 32:
            return lo
        return lo | (self.backend.read32(r.offset + 4) << 32)

    def write(self, name: str, value: int) -> None:
        """Write a register by name (64-bit ones: low word, then high word)."""
        r = self._reg(name)
        if r.access == "ro":
            raise DeviceError(f"register {name} is read-only")
        if not 0 <= value < 1 << r.width:
            raise DeviceError(f"0x{value:X} does not fit the {r.width}-bit register {name}")
        self.backend.write32(r.offset, value & 0xFFFF_FFFF)
        if r.width == 64:
            self.backend.write32(r.offset + 4, value >> 32)

    @staticmethod
    def _reg(name: str) -> Register:
        try:
            return REG[name]
        except KeyError:
            raise DeviceError(f"no register {name!r}; registers: {', '.join(REG)}") from None

    # -------------------------------------------------------------- state

    @property
    def status(self) -> int:
        return self.read("STATUS")

    @property
    def running(self) -> bool:
        return bool(self.status & STATUS_RUNNING)

    @property
    def enabled(self) -> bool:
        return bool(self.read("CONTROL") & CTRL_ENABLE)

    def clock_ns(self) -> int:
        """The device's free-running ns clock (the time base of ``ts_rx``)."""
        return self.read("CLOCK_NS")

    def error(self) -> str | None:
        """The device's error text when STATUS.ERROR is set."""
        if not self.status & STATUS_ERROR:
            return None
        return self.backend.read_bytes(ERROR_TEXT, ERROR_TEXT_SIZE).rstrip(b"\0").decode("utf-8", "replace")

    # -------------------------------------------------------------- configuration

    def configure(self, config: DecodeConfig) -> None:
        """Program the parser (IP/port filters, checksum and sequence checks); only while stopped."""
        if not isinstance(config, DecodeConfig):
            raise TypeError(f"configure takes a DecodeConfig, got {type(config).__name__}")
        self._require_stopped("change the parser configuration")
        self.write("IP_DST", config.ip_dst)
        self.write("UDP_PORT", config.port)
        self.write("PARSER", (PARSER_CHECK_IP_CHECKSUM if config.check_ip_checksum else 0)
                   | (PARSER_SEQUENCE_CHECK if config.sequence_check else 0))

    @property
    def config(self) -> DecodeConfig:
        """The parser configuration, read back from the registers."""
        parser = self.read("PARSER")
        return DecodeConfig(ip_dst=self.read("IP_DST"), port=self.read("UDP_PORT") & 0xFFFF,
                            check_ip_checksum=bool(parser & PARSER_CHECK_IP_CHECKSUM),
                            sequence_check=bool(parser & PARSER_SEQUENCE_CHECK))

    def setup_ring(self, nslots: int, *, interval: int | None = None, name: str | None = None) -> RingSetup:
        """Allocate and initialise a ring in DMA memory and point the device at it.

        The driver lays out the control page (the device only writes slots and
        the shadow head), then programs RING_BASE/RING_SLOTS/SHADOW_ADDR/
        SHADOW_INTERVAL (default: min(1024, nslots/2)).  Everything is validated
        before anything is allocated.
        """
        nslots = _check_nslots(nslots)
        interval, _ = _writer_knobs(nslots, interval, None)
        self._require_stopped("set up a ring")
        dma = self.backend.alloc_dma(ring_bytes(nslots), name=name)
        try:
            if dma.path is not None:
                with open(dma.path, "r+b") as f, mmap.mmap(f.fileno(), ring_bytes(nslots)) as mm:
                    init_ring(mm, nslots)
            else:
                init_ring(dma.buffer, nslots)
        except BaseException:
            self.backend.free_dma(dma)
            raise
        if self.ring is not None:
            self.backend.free_dma(self.ring.dma)
        self.write("RING_BASE", dma.bus_address + DATA_OFFSET)
        self.write("RING_SLOTS", nslots)
        self.write("SHADOW_ADDR", dma.bus_address + OFF_HEAD)
        self.write("SHADOW_INTERVAL", interval)
        self.ring = RingSetup(dma, nslots, interval)
        return self.ring

    def open_ring(self, **kwargs) -> Ring:
        """A new reader of the device's ring (any ``Ring`` keyword, e.g. ``start``, ``on_lap``)."""
        if self.ring is None:
            raise DeviceError("no ring: call setup_ring first")
        return Ring(self.ring.source, **kwargs)

    # -------------------------------------------------------------- start / stop

    def start(self) -> None:
        """Enable the device: it starts writing ticks into the ring."""
        if self.ring is None:
            raise DeviceError("no ring: call setup_ring before start")
        if self.enabled:
            raise DeviceError("the device is already running")
        self._ring_word(OFF_STATE, STATE_RUNNING)
        self.write("CONTROL", CTRL_ENABLE)

    def stop(self, timeout: float = 10.0) -> None:
        """Disable the device, wait until it is idle, and mark the ring's writer stopped."""
        if self.enabled:
            self.write("CONTROL", 0)
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                raise DeviceError(f"the device did not stop within {timeout} s")
            time.sleep(0.001)
        if self.ring is not None:
            # the device publishes its last seq and drop count; readers then finish
            self._ring_word(OFF_HEAD, max(self.read("WRITE_SEQ"), self._ring_word(OFF_HEAD)))
            self._ring_word(OFF_DROPPED, self.read("DROPPED"))
            self._ring_word(OFF_STATE, STATE_STOPPED)

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the input has ended (STATUS.DONE) or the device stopped; raises on STATUS.ERROR."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            st = self.status
            if st & STATUS_ERROR:
                raise DeviceError(f"device error: {self.error()}")
            if st & STATUS_DONE or not st & STATUS_RUNNING and not self.enabled:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def _require_stopped(self, what: str) -> None:
        if self.enabled or self.running:
            raise DeviceError(f"stop the device before you {what}")

    def _ring_word(self, offset: int, value: int | None = None) -> int:
        """Read or write one u64 of the ring's control page (driver-owned words)."""
        src = self.ring.source
        if isinstance(src, Path):
            with open(src, "r+b") as f, mmap.mmap(f.fileno(), 4096) as mm:
                return self._word(memoryview(mm), offset, value)
        return self._word(memoryview(src).cast("B"), offset, value)

    @staticmethod
    def _word(mem: memoryview, offset: int, value: int | None) -> int:
        words = mem[:4096].cast("Q")
        try:
            if value is not None:
                words[offset // 8] = value
            return words[offset // 8]
        finally:
            words.release()
            mem.release()

    # -------------------------------------------------------------- counters

    def counters(self) -> dict[str, int]:
        """Every counter (formats.COUNTERS names), as one consistent snapshot.

        Writing SNAPSHOT latches the whole bank at one instant; the bank is
        then read at leisure.
        """
        self.write("SNAPSHOT", 1)
        rd = self.backend.read32
        out = {}
        for i, c in enumerate(COUNTERS):
            off = COUNTER_BASE + COUNTER_STRIDE * i
            out[c.name] = rd(off) | (rd(off + 4) << 32)
        return out

    def clear_counters(self) -> None:
        self.write("CONTROL", (self.read("CONTROL") & CTRL_ENABLE) | CTRL_CLEAR_COUNTERS)

    # -------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Stop the device and release the backend (the ring's memory goes with it)."""
        try:
            if self.enabled or self.running:
                self.stop()
        finally:
            self.backend.close()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        ring = f", ring {self.ring.nslots} slots" if self.ring else ""
        return f"Device({self.info.backend}, id 0x{self.info.id:08X} v{self.info.version_text}{ring})"
