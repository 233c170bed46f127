"""The control plane: one :class:`Device` API over interchangeable backends.

A backend is a register file (32-bit reads and writes at byte offsets, the
map of :mod:`wiretick.host.contract.registers`) plus DMA memory (buffers the device writes
ticks into).  :class:`Device` programs every backend through that one map:

- :class:`wiretick.host.replay.ReplayBackend`: the software reference feed
  handler replays a capture into the ring (no hardware needed);
- a simulator backend (another issue) plugs in by subclassing :class:`Backend`
  (``read32``/``write32`` onto the simulated AXI4-Lite bus, ``alloc_dma`` from
  the simulated host memory);
- :class:`PcieBackend`: real hardware, BAR0 as an :class:`MmioRegion` and DMA
  buffers from a :class:`DmaAllocator` (the VFIO design is in docs/host-driver.md).

Run semantics are the DMA engine's (:mod:`wiretick.hdl.dma`): ``ENABLE``
rising samples the ring configuration and starts a run whose ``seq`` restarts
at 1 and whose counters restart at 0; ``ENABLE`` falling drains and stops.
"""

from __future__ import annotations

import mmap
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from .contract.formats import COUNTERS
from .contract.registers import (COUNTER_BASE, DMA_DRAINING, DMA_REFUSED, DMA_RUNNING, DMA_STATE_NAMES, MAP_SIZE,
                                 REG_BY_NAME, REG_ID, REG_VERSION, REGISTERS, CounterExtender, RegisterClient)
from .contract.ring import (CONTROL_SIZE, DATA_OFFSET, OFF_DROPPED, OFF_HEAD, OFF_STATE, STATE_NEW, STATE_RUNNING,
                            STATE_STOPPED, check_nslots, ring_bytes)
from .decode import DecodeConfig, SequenceState
from .errors import WiretickError
from .ring import Ring, init_ring

__all__ = [
    "DeviceError", "MmioRegion", "DmaBuffer", "Backend", "DmaAllocator", "FileDma", "PcieBackend",
    "DeviceInfo", "RingSetup", "Device",
]

class DeviceError(WiretickError, RuntimeError):
    """The device is absent, in the wrong state, or reported an error."""


# ---------------------------------------------------------------- register access

class MmioRegion:
    """32-bit register access to a memory-mapped region: a PCIe BAR or any mmap-able file or buffer.

    For hardware the source is ``/sys/bus/pci/devices/<bdf>/resource0``, or a
    VFIO device fd with the BAR's region offset; in tests it is a plain file.
    Every access is one aligned 32-bit load or store (devices reject other
    widths; CPython's memoryview of format ``I`` copies exactly 4 aligned bytes).

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
    bus_address : the address the device uses (the IOVA under VFIO).
    size : bytes.
    path : a file that maps it (hugepage or /dev/shm file), so that any process
        can follow the ring; None when only ``buffer`` exists.
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
    """What a device looks like to :class:`Device`: the register map plus DMA memory.

    Subclasses implement register reads and writes with the device's side
    effects (a write to ``ENABLE`` starts a run, a write to ``SNAPSHOT``
    latches the ``snap`` registers) and DMA allocation.
    """

    name: str = "backend"

    @abstractmethod
    def read32(self, offset: int) -> int:
        """Read the 32-bit word at byte ``offset`` of the register map."""

    @abstractmethod
    def write32(self, offset: int, value: int) -> None:
        """Write the 32-bit word at byte ``offset`` of the register map."""

    @abstractmethod
    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        """Allocate ``size`` bytes the device can write (``name``: a hint for the file)."""

    def free_dma(self, buf: DmaBuffer) -> None:
        """Release a buffer from :meth:`alloc_dma` (the device must be stopped)."""

    def input_ended(self) -> bool:
        """Whether the input has run out (a replay's capture has); a live feed never does."""
        return False

    def error(self) -> str | None:
        """A backend-specific failure (a replay worker's exception), or None."""
        return None

    def close(self) -> None:
        """Release everything (the device must be stopped)."""


class DmaAllocator(ABC):
    """Where a hardware backend gets DMA memory and its bus address from."""

    @abstractmethod
    def alloc(self, size: int, name: str | None = None) -> DmaBuffer:
        ...

    def free(self, buf: DmaBuffer) -> None:
        ...


class FileDma(DmaAllocator):
    """DMA buffers as files in a directory (``/dev/hugepages`` for huge pages, ``/dev/shm``), with IOVAs.

    Bus addresses come from a bump allocator starting at ``iova_base``; under
    VFIO the container maps each buffer at that IOVA (``map_dma``: the
    VFIO_IOMMU_MAP_DMA step of docs/host-driver.md).  Without an IOMMU mapping
    the addresses are only labels, which is how the tests and the replay
    backend use them.  ``force``: a named buffer may replace a ring that
    processes still map (they keep the old one).
    """

    def __init__(self, directory: str | os.PathLike = "/dev/shm", *, iova_base: int = 1 << 32,
                 align: int = 2 << 20, map_dma=None, prefix: str = "wiretick-dma", force: bool = False):
        self.directory = Path(directory)
        self._force = force
        if not self.directory.is_dir():
            raise DeviceError(f"DMA directory {self.directory} does not exist")
        self._next = iova_base
        self._align = align
        self._map_dma = map_dma
        self._prefix = prefix
        self._count = 0

    def alloc(self, size: int, name: str | None = None) -> DmaBuffer:
        """A new file of ``size`` bytes (rounded up to the directory's page): ``name``, or a private one.

        ``name`` is a ring name (:func:`~wiretick.host.ring.check_ring_name`:
        one file name, never a path out of the directory).  A file already
        there is replaced only if it is a wiretick ring that no process has
        mapped or open (or with ``force``); anything else is an error.
        """
        from .ring import check_replaceable, check_ring_name
        self._count += 1
        if name:
            path = self.directory / check_ring_name(name)
            check_replaceable(path, force=self._force)
        else:
            path = self.directory / f"{self._prefix}-{os.getpid()}-{self._count}"
        block = max(os.statvfs(self.directory).f_bsize, mmap.PAGESIZE)
        size = -(-size // block) * block
        # A new inode, never a truncated old one: a reader may still map the old ring.
        tmp = self.directory / f".{path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            if name:
                os.replace(tmp, path)
            else:
                os.link(tmp, path)                # a private name: never clobber
                os.unlink(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
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
    """Real hardware: the register map through an :class:`MmioRegion` (BAR0), DMA memory from a :class:`DmaAllocator`.

    Nothing is simulated: register writes go to the BAR, and ticks appear only
    if a device is behind it.  Opening the BAR and setting up the IOMMU (VFIO)
    are described in docs/host-driver.md; tests run this class against a plain
    file standing in for BAR0.
    """

    name = "pcie"

    def __init__(self, bar: MmioRegion, dma: DmaAllocator):
        if bar.size < MAP_SIZE:
            raise DeviceError(f"BAR0 is {bar.size} bytes; the wiretick register map needs {MAP_SIZE}")
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
    """What the ``const`` registers say about the design."""

    id: int
    version: int
    backend: str
    max_log2_slots: int
    clock_period_fs: int
    dma_fifo_depth: int

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
    >>> ring = dev.open_ring(); dev.start()                  # doctest: +SKIP
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self.regs = RegisterClient(backend.read32, backend.write32)
        dev_id = self.regs.read("ID")
        if dev_id != REG_ID:
            raise DeviceError(f"no wiretick device behind {backend.name}: ID register reads 0x{dev_id:08X}, "
                              f"expected 0x{REG_ID:08X}")
        version = self.regs.read("VERSION")
        if version >> 16 != REG_VERSION >> 16:
            raise DeviceError(f"register map version {version >> 16}.{version & 0xFFFF} is not supported "
                              f"(this driver speaks {REG_VERSION >> 16}.x)")
        self.info = DeviceInfo(dev_id, version, backend.name, self.regs.read("DMA_MAX_LOG2"),
                               self.regs.read("CLOCK_PERIOD_FS"), self.regs.read("DMA_FIFO_DEPTH"))
        self.ring: RingSetup | None = None
        # The event counters are 32 bits on the device; counters() and snapshot()
        # extend them to 64 (docs/registers.md: read them at least every 5 s).
        self._counts = CounterExtender()

    # -------------------------------------------------------------- registers

    def read(self, name: str) -> int:
        """Read a register by name (``snap`` registers hold their value at the last :meth:`snapshot`)."""
        reg = self._reg(name)
        if reg.access == "wo":
            raise DeviceError(f"register {name} is write-only")
        return self.regs.read(name)

    def write(self, name: str, value: int) -> None:
        """Write a ``rw`` or ``wo`` register by name."""
        reg = self._reg(name)
        if reg.access not in ("rw", "wo"):
            raise DeviceError(f"register {name} is {reg.access}, not writable")
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << reg.width:
            raise DeviceError(f"{value!r} does not fit the {reg.width}-bit register {name}")
        self.regs.write(name, value)

    @staticmethod
    def _reg(name: str):
        try:
            return REG_BY_NAME[name]
        except KeyError:
            raise DeviceError(f"no register {name!r}; registers: {', '.join(r.name for r in REGISTERS)}") from None

    def snapshot(self) -> dict[str, int]:
        """Latch every ``snap`` register at one instant and read them all: {name: value}.

        Event counters (``wraps`` registers) come extended to 64 bits.
        """
        return self._counts.extend_all(self.regs.snapshot())

    # -------------------------------------------------------------- state

    @property
    def dma_state(self) -> int:
        """DMA_STATE: one of ``contract.registers.DMA_STATE_NAMES`` (0 off, 1 running, ...)."""
        return self.regs.read("DMA_STATE")

    @property
    def running(self) -> bool:
        return self.dma_state in (DMA_RUNNING, DMA_DRAINING)

    @property
    def enabled(self) -> bool:
        return bool(self.regs.read("ENABLE"))

    def clock_ns(self) -> int:
        """The device's nanosecond clock (the time base of ``ts_rx``), latched now."""
        self.regs.write("SNAPSHOT", 1)
        return self.regs.read("CLOCK")

    def counters(self) -> dict[str, int]:
        """Every parser counter (formats.COUNTERS names) of this run, as one consistent snapshot.

        The device counts modulo 2**32; the values are extended to 64 bits, exactly
        if this is called at least every 5 seconds (docs/registers.md).
        """
        self.regs.write("SNAPSHOT", 1)
        return {c.name: self._counts.extend(f"CNT_{c.name}", self.regs.read(f"CNT_{c.name}")) for c in COUNTERS}

    # -------------------------------------------------------------- configuration

    def configure(self, config: DecodeConfig) -> None:
        """Program the parser (IP/port filters, checksum and sequence checks); only while stopped."""
        if not isinstance(config, DecodeConfig):
            raise TypeError(f"configure takes a DecodeConfig, got {type(config).__name__}")
        self._require_stopped("change the parser configuration")
        self.write("IP_DST", config.ip_dst)
        self.write("PORT", config.port)
        self.write("CHECK_IP_CHECKSUM", int(config.check_ip_checksum))
        self.write("SEQUENCE_CHECK", int(config.sequence_check))

    @property
    def config(self) -> DecodeConfig:
        """The parser configuration, read back from the registers."""
        return DecodeConfig(ip_dst=self.read("IP_DST"), port=self.read("PORT"),
                            check_ip_checksum=bool(self.read("CHECK_IP_CHECKSUM")),
                            sequence_check=bool(self.read("SEQUENCE_CHECK")))

    def join(self, state: SequenceState | None) -> None:
        """Start every following run mid-feed, in ``state`` (None: fresh again); only while stopped.

        A feed handler resuming after it recovered from a snapshot loads where the
        feed is (the tracked session, the next expected message number) and the
        ``seq`` of its next tick: the ``JOIN_*`` registers, taken by the parser when
        a run starts (docs/registers.md).  The ring's ``seq`` still starts at 1;
        ``state.next_seq`` numbers the parser's ticks, the numbers abort events name.
        The reference model takes the same state: ``Decoder(initial=state)``.
        """
        self._require_stopped("change the late-join state")
        if state is None:
            self.write("JOIN", 0)
            return
        if not isinstance(state, SequenceState):
            raise TypeError(f"join takes a SequenceState or None, got {type(state).__name__}")
        session = int.from_bytes(state.session, "little")      # wire byte k in bits 8k..8k+7
        self.write("JOIN_HAS_SESSION", int(state.has_session))
        self.write("JOIN_SESSION", session & (2 ** 64 - 1))
        self.write("JOIN_SESSION_HI", session >> 64)
        self.write("JOIN_EXPECTED", state.expected)
        self.write("JOIN_SEQ", state.next_seq)
        self.write("JOIN", 1)

    @property
    def joined(self) -> SequenceState | None:
        """The late-join state runs start from (None: fresh), read back from the registers."""
        if not self.read("JOIN"):
            return None
        session = self.read("JOIN_SESSION") | self.read("JOIN_SESSION_HI") << 64
        return SequenceState(bool(self.read("JOIN_HAS_SESSION")), session.to_bytes(10, "little"),
                             self.read("JOIN_EXPECTED"), self.read("JOIN_SEQ"))

    def setup_ring(self, nslots: int, *, interval: int = 64, name: str | None = None) -> RingSetup:
        """Allocate a ring in DMA memory, lay it out, and point the device at it.

        The driver writes the control page (the device writes only slots and
        the shadow head), then programs RING_BASE (the slot area, 4 KiB
        aligned), RING_LOG2, SHADOW_ADDR (control page + 64) and SHADOW_INTERVAL
        (0: only when idle).  Everything is validated before anything is allocated.
        """
        nslots = check_nslots(nslots)
        log2 = nslots.bit_length() - 1
        if log2 > self.info.max_log2_slots:
            raise DeviceError(f"the device's DMA engine handles at most 2^{self.info.max_log2_slots} slots "
                              f"(DMA_MAX_LOG2); asked for {nslots}")
        if isinstance(interval, bool) or not isinstance(interval, int) or not 0 <= interval < 1 << 32:
            raise DeviceError(f"interval must be 0 (only when idle) or a number of slots, got {interval!r}")
        self._require_stopped("set up a ring")
        dma = self.backend.alloc_dma(ring_bytes(nslots), name=name)
        try:
            self._with_memory(dma, lambda mem: init_ring(mem, nslots))
        except BaseException:
            self.backend.free_dma(dma)
            raise
        if self.ring is not None:
            self.backend.free_dma(self.ring.dma)
        self.write("RING_BASE", dma.bus_address + DATA_OFFSET)
        self.write("RING_LOG2", log2)
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
        """Start a run: the device writes ticks into the ring from seq 1.

        A ring that an earlier run wrote is laid out afresh first (seq restarts
        at 1), so readers of an earlier run must open the ring again.
        """
        if self.ring is None:
            raise DeviceError("no ring: call setup_ring before start")
        if self.enabled or self.running:
            raise DeviceError("the device is already running")
        if self._ring_word(OFF_HEAD) or self._ring_word(OFF_STATE) != STATE_NEW:
            self._with_memory(self.ring.dma, lambda mem: init_ring(mem, self.ring.nslots))
        self._ring_word(OFF_STATE, STATE_RUNNING)
        self._counts.reset()                    # the run's counters start at 0
        self.write("ENABLE", 1)
        # ordering: a register read completes after the write before it
        if self.dma_state == DMA_REFUSED:
            detail = self.backend.error()
            self.write("ENABLE", 0)
            self._ring_word(OFF_STATE, STATE_NEW)
            raise DeviceError("the device refused the ring configuration (RING_BASE must be 64-byte aligned, "
                              f"SHADOW_ADDR 8-byte aligned){': ' + detail if detail else ''}")

    def stop(self, timeout: float = 10.0) -> None:
        """Drain and stop; then publish the final head and drops in the ring and mark its writer stopped."""
        if self.enabled:
            self.write("ENABLE", 0)
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() > deadline:
                raise DeviceError(f"the device did not stop within {timeout} s "
                                  f"(DMA_STATE {DMA_STATE_NAMES[self.dma_state]})")
            time.sleep(0.0005)
        if self.ring is not None and self._ring_word(OFF_STATE) == STATE_RUNNING:
            snap = self.snapshot()
            self._ring_word(OFF_HEAD, max(snap["DMA_HEAD"], self._ring_word(OFF_HEAD)))
            self._ring_word(OFF_DROPPED, snap["DMA_DROPPED"])
            self._ring_word(OFF_STATE, STATE_STOPPED)    # readers finish once they have read the head

    def wait_done(self, timeout: float | None = None) -> bool:
        """Wait until the input has ended (a replay's capture) or the device is off; raises on a backend error.

        Returns False on timeout.  A live feed never ends: this then waits for
        someone else to stop the device.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            err = self.backend.error()
            if err:
                raise DeviceError(f"device error: {err}")
            if self.backend.input_ended() or not self.running:
                return True
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.0005)

    def _require_stopped(self, what: str) -> None:
        if self.enabled or self.running:
            raise DeviceError(f"stop the device before you {what}")

    @staticmethod
    def _with_memory(dma: DmaBuffer, fn):
        if dma.path is None:
            return fn(dma.buffer)
        with open(dma.path, "r+b") as f, mmap.mmap(f.fileno(), os.fstat(f.fileno()).st_size) as mm:
            mem = memoryview(mm)
            try:
                return fn(mem)
            finally:
                mem.release()

    def _ring_word(self, offset: int, value: int | None = None) -> int:
        """Read or write one u64 of the ring's control page (the driver-owned words)."""
        def word(mem) -> int:
            words = memoryview(mem).cast("B")[:CONTROL_SIZE].cast("Q")
            try:
                if value is not None:
                    words[offset // 8] = value
                return words[offset // 8]
            finally:
                words.release()
        return self._with_memory(self.ring.dma, word)

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


assert COUNTER_BASE == REG_BY_NAME[f"CNT_{COUNTERS[0].name}"].offset
