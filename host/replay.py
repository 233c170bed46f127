"""Replay a capture into a tick ring with the software reference feed handler.

Two ways in:

- :func:`cmd_replay` (``wiretick replay CAPTURE --ring NAME``): decode a capture
  and write its ticks into a ring in this process, at full speed, at a rate,
  or at the capture's own timing;
- :class:`ReplayBackend`: the same, behind the device register map, so a
  strategy drives it through :class:`~wiretick.host.device.Device` exactly as
  it would drive the hardware (the replay then runs in a worker process).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path
from typing import Callable, TextIO

import numpy as np

from .decode import DecodeConfig, Decoder
from .device import (
    BAR_SIZE, COUNTER_BASE, COUNTER_STRIDE, CTRL_CLEAR_COUNTERS, CTRL_ENABLE, DATA_OFFSET, DEVICE_ID,
    DEVICE_VERSION, ERROR_TEXT, ERROR_TEXT_SIZE, PARSER_CHECK_IP_CHECKSUM, PARSER_SEQUENCE_CHECK, REG,
    STATUS_DONE, STATUS_ERROR, STATUS_RUNNING, Backend, DeviceError, DmaBuffer, FileDma, MmioRegion,
)
from .formats import COUNTERS
from .ring import RingError, RingWriter, _check_nslots, ring_bytes

__all__ = ["Pacing", "replay_capture", "cmd_replay", "ReplayBackend"]

_N = len(COUNTERS)
# Private to this backend (not part of the register map): the worker's live
# counters, published under a sequence lock, and its clear request.
_LIVE_GEN = 0x7F0
_CLEAR_REQ = 0x7F8
_LIVE_BANK = 0x800
assert _LIVE_BANK + 8 * _N <= ERROR_TEXT


class _Stopped(Exception):
    pass


class Pacing:
    """When each tick may be written: as fast as possible, at ``rate`` ticks/s, or at capture time / ``speed``."""

    def __init__(self, rate: float | None = None, capture_timing: bool = False, speed: float = 1.0):
        if rate is not None and capture_timing:
            raise ValueError("pace at a rate or at the capture's timing, not both")
        if rate is not None and (isinstance(rate, bool) or not rate > 0 or rate != rate or rate == float("inf")):
            raise ValueError(f"rate must be a positive number of messages per second, got {rate!r}")
        if not speed > 0 or speed == float("inf"):
            raise ValueError(f"speed must be a positive factor, got {speed!r}")
        self.rate = None if rate is None else float(rate)
        self.capture_timing = capture_timing
        self.speed = float(speed)
        self._t0: int | None = None
        self._first_ts: int | None = None
        self._written = 0

    @property
    def paced(self) -> bool:
        return self.rate is not None or self.capture_timing

    def due(self, ticks: np.ndarray) -> np.ndarray:
        """``time.monotonic_ns()`` at which each tick is due."""
        if self._t0 is None:
            self._t0 = time.monotonic_ns()
        n = len(ticks)
        if self.rate is not None:
            k = self._written + np.arange(n, dtype=np.float64)
            due = self._t0 + (k * (1e9 / self.rate)).astype(np.int64)
        else:
            ts = ticks["ts_rx"].astype(np.int64)
            if self._first_ts is None and n:
                self._first_ts = int(ts[0])
            due = self._t0 + ((ts - (self._first_ts or 0)) / self.speed).astype(np.int64)
        self._written += n
        return due

    def __repr__(self) -> str:
        if self.rate is not None:
            return f"{self.rate:g} msgs/s"
        return f"capture timing x{self.speed:g}" if self.capture_timing else "full speed"


def replay_capture(capture: str | os.PathLike, writer: RingWriter, *, config: DecodeConfig | None = None,
                   pacing: Pacing | None = None, should_stop: Callable[[], bool] | None = None,
                   on_batch: Callable[[Decoder, RingWriter], None] | None = None,
                   batch_frames: int = 1 << 16, decoder: Decoder | None = None) -> Decoder:
    """Decode ``capture`` and write its ticks into ``writer``'s ring; returns the decoder (its counters).

    Ticks are numbered by the ring (a ring that already holds ticks is
    continued), so a fresh ring holds exactly what ``decode_file`` returns.
    Pass ``decoder`` to keep hold of it (and its counters) if the replay stops
    early.
    """
    from .capture import open_capture

    pacing = pacing or Pacing()
    dec = decoder if decoder is not None else Decoder(config)
    # Slices bound how long a stop request or a progress report can wait.
    step = 4096 if pacing.paced else 1 << 16
    with open_capture(capture, batch_frames=batch_frames) as cap:
        for batch in cap:
            for chunk in dec.feed(batch):
                for i in range(0, len(chunk), step):
                    ticks = chunk[i:i + step]
                    if should_stop is not None and should_stop():
                        raise _Stopped
                    if pacing.paced:
                        done = writer.write_paced(ticks, pacing.due(ticks), renumber=True, should_stop=should_stop)
                        if done < len(ticks):
                            raise _Stopped
                    else:
                        writer.write(ticks, renumber=True)
                    if on_batch is not None:
                        on_batch(dec, writer)
    writer.publish()
    return dec


def cmd_replay(capture: str | os.PathLike, ring_name: str, rate: float | None = None, nslots: int = 1 << 20,
               config: DecodeConfig | None = None, *, capture_timing: bool = False, speed: float = 1.0,
               interval: int = 1024, overwrite: bool = True, log: TextIO | None = sys.stderr) -> dict[str, int]:
    """``wiretick replay``: decode ``capture`` into the ring ``ring_name`` (``/dev/shm/<name>`` or a path).

    The ring is created (replacing one of that name with ``overwrite``; readers
    that have the old one mapped keep it) and left in place when the replay
    ends, its writer marked stopped so that readers finish.  Every argument
    and the capture's header are checked before the ring is created.  Paced at
    ``rate`` messages (ticks) per second, or at the capture's timestamps sped
    up by ``speed`` with ``capture_timing``; otherwise at full speed.

    Returns the decoder's counters.
    """
    from .capture import open_capture

    pacing = Pacing(rate, capture_timing, speed)
    _check_nslots(nslots)
    with open_capture(capture):          # a bad capture fails here, before the ring exists
        pass
    t0 = time.perf_counter()
    writer = RingWriter.create(ring_name, nslots, overwrite=overwrite, interval=min(int(interval), nslots // 2))
    try:
        dec = replay_capture(capture, writer, config=config, pacing=pacing)
        written = writer.next_seq - 1
    finally:
        writer.close()
    counters = dec.counters
    if log is not None:
        from .cli import format_counters
        dt = time.perf_counter() - t0
        print(format_counters(counters), file=log)
        print(f"replayed {written} ticks into {writer.path} ({nslots} slots, {pacing}) in {dt:.2f} s",
              file=log)
    return counters


# ---------------------------------------------------------------- the device backend

class ReplayBackend(Backend):
    """A software device: the reference feed handler replaying a capture, behind the register map.

    Registers live in a shared anonymous page (the "BAR"); enabling the
    device forks a worker that decodes the capture into the ring the
    RING_BASE/RING_SLOTS registers point at, publishing WRITE_SEQ, STATUS and
    the counters there.  The parser registers are read when the device is
    enabled.  DMA buffers are files in ``dma_dir`` with made-up bus addresses.

    Parameters
    ----------
    capture : pcap/pcapng to replay (checked now).
    rate : pace at this many messages (ticks) per second.
    capture_timing, speed : pace at the capture's timestamps, ``speed`` times faster.
    dma_dir : where ring files go (default /dev/shm).
    keep_rings : leave ring files in place on close (for readers in other processes).
    """

    name = "replay"

    def __init__(self, capture: str | os.PathLike, *, rate: float | None = None, capture_timing: bool = False,
                 speed: float = 1.0, dma_dir: str | os.PathLike = "/dev/shm", keep_rings: bool = False,
                 batch_frames: int = 1 << 16):
        from .capture import open_capture

        Pacing(rate, capture_timing, speed)                 # validates
        self.capture = Path(capture)
        with open_capture(self.capture):
            pass
        self._pacing_args = (rate, capture_timing, speed)
        self._batch_frames = batch_frames
        self._keep = keep_rings
        self._dma = FileDma(dma_dir, prefix="wiretick-replay")
        self._buffers: dict[int, DmaBuffer] = {}
        self._bar = mmap.mmap(-1, BAR_SIZE)                  # MAP_SHARED|MAP_ANONYMOUS: the worker shares it
        self._mmio = MmioRegion(self._bar)
        self._q = memoryview(self._bar).cast("Q")
        self._latched: dict[int, int] = {}
        self._proc: mp.process.BaseProcess | None = None
        for r in REG.values():
            if r.reset:
                self._store(r.offset, r.width, r.reset)
        self._lo64 = {r.offset for r in REG.values() if r.width == 64}

    def _store(self, offset: int, width: int, value: int) -> None:
        if width == 64:
            self._q[offset // 8] = value
        else:
            self._mmio.write32(offset, value)

    # -------------------------------------------------------------- registers

    def read32(self, offset: int) -> int:
        if offset == REG["CLOCK_NS"].offset:
            now = time.monotonic_ns()
            self._latched[offset + 4] = now >> 32
            return now & 0xFFFF_FFFF
        if offset in self._lo64:                 # the low word latches the high word
            v = self._q[offset // 8]
            self._latched[offset + 4] = v >> 32
            return v & 0xFFFF_FFFF
        if offset in self._latched:
            return self._latched.pop(offset)
        if offset == REG["SNAPSHOT"].offset:
            return 0
        return self._mmio.read32(offset)

    def write32(self, offset: int, value: int) -> None:
        if offset == REG["CONTROL"].offset:
            self._control(value)
        elif offset == REG["SNAPSHOT"].offset:
            if value & 1:
                self._snapshot()
        elif offset in (REG["ID"].offset, REG["VERSION"].offset, REG["STATUS"].offset) or \
                offset >= REG["CLOCK_NS"].offset and offset < COUNTER_BASE + COUNTER_STRIDE * _N:
            pass                                  # read-only: writes are ignored, as on hardware
        else:
            self._mmio.write32(offset, value)

    def _control(self, value: int) -> None:
        ctrl = REG["CONTROL"].offset
        was = self._mmio.read32(ctrl) & CTRL_ENABLE
        if value & CTRL_CLEAR_COUNTERS:
            self._clear_counters(running=bool(was))
        self._mmio.write32(ctrl, value & CTRL_ENABLE)
        if value & CTRL_ENABLE and not was:
            try:
                self._start()
            except BaseException:
                self._mmio.write32(ctrl, 0)
                raise
        elif not value & CTRL_ENABLE and was:
            self._join()

    def _ring(self) -> tuple[DmaBuffer, int]:
        base = self._q[REG["RING_BASE"].offset // 8] - DATA_OFFSET
        nslots = self._mmio.read32(REG["RING_SLOTS"].offset)
        buf = self._buffers.get(base)
        if buf is None:
            raise DeviceError(f"RING_BASE 0x{base + DATA_OFFSET:X} is not in a DMA buffer of this device")
        try:
            _check_nslots(nslots)
        except RingError as e:
            raise DeviceError(f"RING_SLOTS: {e}") from None
        if ring_bytes(nslots) > buf.size:
            raise DeviceError(f"RING_SLOTS {nslots} does not fit the {buf.size}-byte buffer at RING_BASE")
        if self._q[REG["SHADOW_ADDR"].offset // 8] != base + 64:
            raise DeviceError("SHADOW_ADDR must point at offset 64 of the ring's control page")
        return buf, nslots

    def _start(self) -> None:
        buf, nslots = self._ring()
        interval = self._mmio.read32(REG["SHADOW_INTERVAL"].offset)
        if not 1 <= interval <= nslots // 2:
            raise DeviceError(f"SHADOW_INTERVAL must be 1..{nslots // 2}, got {interval}")
        parser = self._mmio.read32(REG["PARSER"].offset)
        config = DecodeConfig(ip_dst=self._mmio.read32(REG["IP_DST"].offset),
                              port=self._mmio.read32(REG["UDP_PORT"].offset) & 0xFFFF,
                              check_ip_checksum=bool(parser & PARSER_CHECK_IP_CHECKSUM),
                              sequence_check=bool(parser & PARSER_SEQUENCE_CHECK))
        self._join()
        self._mmio.write32(REG["STATUS"].offset, STATUS_RUNNING)
        ctx = mp.get_context("fork")            # the worker shares the register page
        self._proc = ctx.Process(target=_worker, daemon=True, name="wiretick-replay",
                                 args=(self._bar, buf.path, interval, self.capture, config, self._pacing_args,
                                       self._batch_frames))
        self._proc.start()

    def _join(self) -> None:
        if self._proc is not None:
            self._proc.join()
            if self._proc.exitcode not in (0, None) and not self._mmio.read32(REG["STATUS"].offset) & STATUS_ERROR:
                _fail(self._bar, f"replay worker exited with code {self._proc.exitcode}")
            self._proc = None
            st = REG["STATUS"].offset
            self._mmio.write32(st, self._mmio.read32(st) & ~STATUS_RUNNING & 0xFFFF_FFFF)

    def _clear_counters(self, running: bool) -> None:
        if running:
            self._q[_CLEAR_REQ // 8] = 1         # the worker zeroes its own baseline
        else:
            self._q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N] = memoryview(bytes(8 * _N)).cast("Q")
        self._q[COUNTER_BASE // 8:COUNTER_BASE // 8 + _N] = memoryview(bytes(8 * _N)).cast("Q")

    def _snapshot(self) -> None:
        """Copy the worker's live counters into the bank, consistently (sequence lock)."""
        q = self._q
        while True:
            g1 = q[_LIVE_GEN // 8]
            if g1 & 1:
                continue
            vals = q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N].tobytes()
            if q[_LIVE_GEN // 8] == g1:
                break
        q[COUNTER_BASE // 8:COUNTER_BASE // 8 + _N] = memoryview(vals).cast("Q")
        q[REG["SNAPSHOT_NS"].offset // 8] = time.monotonic_ns()

    # -------------------------------------------------------------- memory

    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        buf = self._dma.alloc(size, name)
        self._buffers[buf.bus_address] = buf
        return buf

    def free_dma(self, buf: DmaBuffer) -> None:
        self._buffers.pop(buf.bus_address, None)
        if not self._keep:
            self._dma.free(buf)

    def close(self) -> None:
        if self._proc is not None:
            self._mmio.write32(REG["CONTROL"].offset, 0)
            self._join()
        for buf in list(self._buffers.values()):
            self.free_dma(buf)
        self._q.release()
        self._mmio.close()
        self._bar.close()


def _fail(bar: mmap.mmap, text: str) -> None:
    mmio = MmioRegion(bar)
    raw = text.encode("utf-8", "replace")[:ERROR_TEXT_SIZE - 1]
    bar[ERROR_TEXT:ERROR_TEXT + ERROR_TEXT_SIZE] = raw.ljust(ERROR_TEXT_SIZE, b"\0")
    st = REG["STATUS"].offset
    mmio.write32(st, mmio.read32(st) | STATUS_ERROR)
    mmio.close()


def _worker(bar: mmap.mmap, ring: Path, interval: int, capture: Path, config: DecodeConfig,
            pacing_args: tuple, batch_frames: int) -> None:
    """The replay device's engine (a forked process): capture -> decoder -> ring, counters -> registers."""
    q = memoryview(bar).cast("Q")
    mmio = MmioRegion(bar)
    ctrl, st = REG["CONTROL"].offset, REG["STATUS"].offset
    base = np.frombuffer(q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N].tobytes(), np.int64).copy()

    def publish(dec: Decoder, w: RingWriter) -> None:
        nonlocal base
        now = np.fromiter((dec.counters[c.name] for c in COUNTERS), np.int64, _N)
        if q[_CLEAR_REQ // 8]:
            base = -now
            q[_CLEAR_REQ // 8] = 0
        vals = (base + now).astype(np.uint64)
        q[_LIVE_GEN // 8] += 1                   # odd: being updated
        q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N] = memoryview(vals.tobytes()).cast("Q")
        q[_LIVE_GEN // 8] += 1
        q[REG["WRITE_SEQ"].offset // 8] = w.next_seq - 1

    try:
        with RingWriter(ring, interval=interval) as w:
            dec = Decoder(config)
            try:
                replay_capture(capture, w, pacing=Pacing(*pacing_args), decoder=dec,
                               should_stop=lambda: not mmio.read32(ctrl) & CTRL_ENABLE,
                               on_batch=publish, batch_frames=batch_frames)
                done = STATUS_DONE
            except _Stopped:
                done = 0
            publish(dec, w)
            mmio.write32(st, mmio.read32(st) | done)
    except Exception as e:                       # reported through STATUS.ERROR and the error text
        _fail(bar, f"{type(e).__name__}: {e}")
    finally:
        mmio.write32(st, mmio.read32(st) & ~STATUS_RUNNING & 0xFFFF_FFFF)
        q.release()
        mmio.close()
