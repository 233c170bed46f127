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

from .contract.formats import COUNTERS
from .contract.registers import (COUNTER_BASE, DMA_DRAINING, DMA_OFF, DMA_REFUSED, DMA_RUNNING, MAP_SIZE,
                                 REG_BY_NAME, REGISTERS, words)
from .contract.ring import DATA_OFFSET, OFF_HEAD, SLOT_SIZE, check_nslots, ring_bytes
from .decode import DecodeConfig, Decoder, format_counters
from .device import Backend, DeviceError, DmaBuffer, FileDma
from .ring import RingWriter, ring_path

__all__ = ["Pacing", "replay_capture", "cmd_replay", "ReplayBackend"]



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
                   batch_frames: int = 1 << 16, decoder: Decoder | None = None, progress=None) -> Decoder:
    """Decode ``capture`` and write its ticks into ``writer``'s ring; returns the decoder (its counters).

    Ticks are numbered by the ring (a ring that already holds ticks is
    continued), so a fresh ring holds exactly what ``decode_file`` returns.
    Pass ``decoder`` to keep hold of it (and its counters) if the replay stops
    early.  ``progress``: a bar of the capture's bytes
    (:func:`wiretick.host.progress.progress`), advanced as each batch is written.
    """
    from .capture import open_capture
    from .progress import through_batch

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
            through_batch(progress, batch)
    writer.publish()
    return dec


def cmd_replay(capture: str | os.PathLike, ring_name: str | os.PathLike, rate: float | None = None,
               nslots: int = 1 << 20, config: DecodeConfig | None = None, *, capture_timing: bool = False,
               speed: float = 1.0, interval: int | None = None, overwrite: bool = True, force: bool = False,
               log: TextIO | None = sys.stderr, quiet: bool = False) -> dict[str, int]:
    """``wiretick replay``: decode ``capture`` into the ring ``ring_name``.

    ``ring_name`` is a name (``/dev/shm/<name>``, a ``str``) or a path (a
    ``PathLike``), see :func:`~wiretick.host.ring.ring_path`.  The ring is
    created, replacing a ring of that name only if no process uses it (with
    ``overwrite``) or with ``force`` (readers that have the old one mapped keep
    it); a file that is not a ring is never replaced.  It is left in place
    when the replay ends, its writer marked stopped so that readers finish; if
    the replay fails, the ring it made is removed.  Every argument and the
    capture's header are checked before the ring is created.  Paced at
    ``rate`` messages (ticks) per second, or at the capture's timestamps sped
    up by ``speed`` with ``capture_timing``; otherwise at full speed.
    ``interval``: shadow-head interval (default: the writer's chunk, see
    :class:`~wiretick.host.ring.RingWriter`).  The capture's bytes replayed show
    as a bar on ``log`` when it is a terminal, unless ``quiet``.

    Returns the decoder's counters.
    """
    from .capture import open_capture
    from .progress import progress

    pacing = Pacing(rate, capture_timing, speed)
    check_nslots(nslots)
    ring_path(ring_name)
    with open_capture(capture):          # a bad capture fails here, before the ring exists
        pass
    t0 = time.perf_counter()
    writer = RingWriter.create(ring_name, nslots, overwrite=overwrite, force=force, interval=interval)
    made = os.stat(writer.path)
    try:
        with progress(os.path.getsize(capture), "replay", quiet or log is None, unit="B", unit_scale=True,
                      stream=log) as bar:
            dec = replay_capture(capture, writer, config=config, pacing=pacing, progress=bar)
        written = writer.next_seq - 1
        writer.close()
    except BaseException as e:
        writer.close()
        if not isinstance(e, KeyboardInterrupt):  # an interrupted replay keeps what it wrote, marked stopped
            _remove_if_same(writer.path, made)
        raise
    counters = dec.counters
    if log is not None:
        dt = time.perf_counter() - t0
        print(format_counters(counters), file=log)
        print(f"replayed {written} ticks into {writer.path} ({nslots} slots, {pacing}) in {dt:.2f} s",
              file=log)
    return counters


def _remove_if_same(path: Path, made: os.stat_result) -> None:
    """Unlink ``path`` if it is still the file ``made`` describes (nobody replaced it meanwhile)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == (made.st_dev, made.st_ino):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the device backend

_N = len(COUNTERS)
# The backend's "BAR": one shared page.  The register map (contract.registers)
# occupies the start; past it, words private to the backend that the worker
# process publishes and the register side reads (never visible as registers).
_PAGE = 4096
_LIVE_GEN = 0x800        # sequence lock of the live counters: odd while the worker updates them
_LIVE_HEAD = 0x808       # seq of the last tick written in this run
_FLAGS = 0x810           # bit 0: input ended; bit 1: the worker failed
_LIVE_BANK = 0x840       # the decoder's counters, formats.COUNTERS order
_ERROR_TEXT = 0xC00      # UTF-8 text of the worker's failure
_FLAG_ENDED, _FLAG_FAILED = 1, 2
_MAX_LOG2 = 32           #: DMA_MAX_LOG2 of the software device
_WAIT_S = 10.0           #: the longest the register side waits for the worker (a lock, a stop)
assert MAP_SIZE <= _LIVE_GEN and _LIVE_BANK + 8 * _N <= _ERROR_TEXT


class ReplayBackend(Backend):
    """A software device: the reference feed handler replaying a capture, behind the register map.

    It behaves as the gateware's register file and DMA engine do
    (:mod:`wiretick.hdl.regs`, :mod:`wiretick.hdl.dma`) over the same map: ``ENABLE`` rising
    samples the configuration (parser registers, RING_BASE/RING_LOG2/
    SHADOW_ADDR/SHADOW_INTERVAL) and starts a run in a forked worker, with
    ``seq`` from 1 and counters from 0; ``SNAPSHOT`` latches CLOCK, DMA_HEAD
    and the counters at once; ``ENABLE`` falling stops the worker.  Unlike a
    live feed, a capture ends: the worker then marks the ring's writer stopped
    (readers finish) and :meth:`input_ended` turns true, while DMA_STATE stays
    "running" until ENABLE falls, as an idle engine's would.  DMA buffers are
    files in ``dma_dir`` with made-up bus addresses.

    Parameters
    ----------
    capture : pcap/pcapng to replay (checked now).
    rate : pace at this many messages (ticks) per second.
    capture_timing, speed : pace at the capture's timestamps, ``speed`` times faster.
    dma_dir : where ring files go (default /dev/shm).
    keep_rings : leave ring files in place on close (for readers in other processes).
    force : a named ring may replace one that processes still map (see :class:`~.device.FileDma`).
    """

    name = "replay"

    def __init__(self, capture: str | os.PathLike, *, rate: float | None = None, capture_timing: bool = False,
                 speed: float = 1.0, dma_dir: str | os.PathLike = "/dev/shm", keep_rings: bool = False,
                 batch_frames: int = 1 << 16, force: bool = False):
        from .capture import open_capture

        Pacing(rate, capture_timing, speed)                 # validates
        self.capture = Path(capture)
        with open_capture(self.capture):
            pass
        self._pacing_args = (rate, capture_timing, speed)
        self._batch_frames = batch_frames
        self._keep = keep_rings
        self._dma = FileDma(dma_dir, prefix="wiretick-replay", force=force)
        self._buffers: dict[int, DmaBuffer] = {}
        self._bar = mmap.mmap(-1, _PAGE)                     # MAP_SHARED|MAP_ANONYMOUS: the worker shares it
        self._u32 = memoryview(self._bar).cast("I")
        self._q = memoryview(self._bar).cast("Q")
        self._proc: mp.process.BaseProcess | None = None
        self._refusal: str | None = None
        self._word: dict[int, tuple] = {}                    # word offset -> (register, word index)
        for r in REGISTERS:
            for i, off in enumerate(words(r)):
                self._word[off] = (r, i)
            self._set(r.name, r.init)
        self._set("DMA_DATA_WIDTH", 512)
        self._set("DMA_FIFO_DEPTH", 0)                       # the software writer never drops
        self._set("CLOCK_PERIOD_FS", 1_000_000)              # time.monotonic_ns: 1 ns per count
        self._set("DMA_MAX_LOG2", _MAX_LOG2)

    def _set(self, name: str, value: int) -> None:
        for i, off in enumerate(words(REG_BY_NAME[name])):
            self._u32[off >> 2] = (value >> (32 * i)) & 0xFFFF_FFFF

    def _get(self, name: str) -> int:
        return sum(self._u32[off >> 2] << (32 * i) for i, off in enumerate(words(REG_BY_NAME[name])))

    # -------------------------------------------------------------- registers

    def read32(self, offset: int) -> int:
        hit = self._word.get(offset)
        if hit is None or hit[0].access == "wo":
            return 0                                         # unmapped words and commands read as 0
        return self._u32[offset >> 2]

    def write32(self, offset: int, value: int) -> None:
        hit = self._word.get(offset)
        if hit is None:
            return                                           # unmapped: ignored, as on the bus
        reg, i = hit
        if reg.name == "SNAPSHOT":
            self._snapshot()
        elif reg.name == "ENABLE":
            self._enable(value & 1)
        elif reg.access == "rw":
            bits = min(32, reg.width - 32 * i)
            self._u32[offset >> 2] = value & ((1 << bits) - 1)

    def _enable(self, on: int) -> None:
        was = self._get("ENABLE")
        self._set("ENABLE", on)
        if on and not was:
            self._start()
        elif not on and was:
            if self._get("DMA_STATE") == DMA_RUNNING:
                self._set("DMA_STATE", DMA_DRAINING)
            self._join()
            self._refusal = None
            self._set("DMA_STATE", DMA_OFF)

    def _ring(self) -> tuple[DmaBuffer, int] | str:
        """The sampled ring configuration, or why it is refused."""
        base, shadow = self._get("RING_BASE"), self._get("SHADOW_ADDR")
        log2 = min(self._get("RING_LOG2"), _MAX_LOG2)        # larger values are clamped
        if base % SLOT_SIZE or shadow % 8:
            return f"misaligned RING_BASE 0x{base:X} or SHADOW_ADDR 0x{shadow:X}"
        buf = self._buffers.get(base - DATA_OFFSET)
        if buf is None:
            return f"RING_BASE 0x{base:X} is not the slot area of a DMA buffer of this device"
        if shadow != buf.bus_address + OFF_HEAD:
            return "SHADOW_ADDR must be offset 64 of the ring's control page (this backend writes ring files)"
        nslots = 1 << log2
        try:
            check_nslots(nslots)
        except ValueError as e:
            return f"RING_LOG2 {log2}: {e}"
        if ring_bytes(nslots) > buf.size:
            return f"2^{log2} slots do not fit the {buf.size}-byte buffer at RING_BASE"
        return buf, nslots

    def _start(self) -> None:
        ring = self._ring()
        if isinstance(ring, str):
            self._refusal = ring
            self._set("DMA_STATE", DMA_REFUSED)              # as the engine does; nothing is written
            return
        buf, nslots = ring
        # The software writer publishes the head between chunks (and at the end of
        # each write: "when idle"), so the interval is honoured at chunk granularity.
        interval = self._get("SHADOW_INTERVAL")
        interval = nslots // 2 if interval == 0 else min(interval, nslots // 2)
        chunk = min(8192, nslots // 2)
        config = DecodeConfig(ip_dst=self._get("IP_DST"), port=self._get("PORT"),
                              check_ip_checksum=bool(self._get("CHECK_IP_CHECKSUM")),
                              sequence_check=bool(self._get("SEQUENCE_CHECK")))
        self._join()
        # a new run: counters and head from 0
        self._q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N] = memoryview(bytes(8 * _N)).cast("Q")
        self._q[_LIVE_HEAD // 8] = 0
        self._q[_FLAGS // 8] = 0
        self._set("DMA_STATE", DMA_RUNNING)
        ctx = mp.get_context("fork")                         # the worker shares the register page
        self._proc = ctx.Process(target=_worker, daemon=True, name="wiretick-replay",
                                 args=(self._bar, buf.path, interval, chunk, self.capture, config,
                                       self._pacing_args, self._batch_frames))
        self._proc.start()

    def _join(self) -> None:
        """Wait for the worker to end (ENABLE has fallen, or the input ended); kill it after ``_WAIT_S``."""
        proc = self._proc
        if proc is None:
            return
        proc.join(_WAIT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_WAIT_S)
            _fail(self._bar, f"replay worker (pid {proc.pid}) did not stop within {_WAIT_S:g} s of ENABLE "
                             f"falling: killed")
        elif proc.exitcode != 0 and not self._q[_FLAGS // 8] & _FLAG_FAILED:
            _fail(self._bar, f"replay worker exited with code {proc.exitcode}")
        if self._q[_LIVE_GEN // 8] & 1:
            # it died holding the counter lock: release it, so that a snapshot of the
            # (possibly torn) counters can be taken, with error() saying why
            self._q[_LIVE_GEN // 8] += 1
            if not self._q[_FLAGS // 8] & _FLAG_FAILED:
                _fail(self._bar, f"replay worker (pid {proc.pid}) died while publishing its counters")
        self._proc = None

    def _snapshot(self) -> None:
        """Latch CLOCK, DMA_HEAD and the counters at one instant (the worker's live counters under their lock).

        The worker holds the lock (an odd generation) for a few microseconds;
        if it died holding it, or holds it for ``_WAIT_S``, this raises
        :class:`~wiretick.host.device.DeviceError` instead of waiting forever.
        """
        q = self._q
        deadline = None
        while True:
            g1 = q[_LIVE_GEN // 8]
            if not g1 & 1:
                vals = q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N].tobytes()
                head = q[_LIVE_HEAD // 8]
                if q[_LIVE_GEN // 8] == g1:
                    break
                continue
            proc = self._proc
            now = time.monotonic()
            if deadline is None:
                deadline = now + _WAIT_S
            elif proc is None or not proc.is_alive() or now > deadline:
                if q[_LIVE_GEN // 8] != g1:
                    continue                         # it moved after all
                if proc is None or not proc.is_alive():
                    code = "" if proc is None else f", exit code {proc.exitcode}"
                    pid = "" if proc is None else f" (pid {proc.pid}{code})"
                    why = f"the replay worker{pid} died while publishing its counters"
                else:
                    why = f"the replay worker (pid {proc.pid}) held its counter lock for {_WAIT_S:g} s"
                raise DeviceError(f"snapshot failed: {why}; stop the device and start a new run")
            time.sleep(0)
        q[COUNTER_BASE // 8:COUNTER_BASE // 8 + _N] = memoryview(vals).cast("Q")
        self._set("DMA_HEAD", head)
        self._set("CLOCK", time.monotonic_ns())

    def input_ended(self) -> bool:
        return bool(self._q[_FLAGS // 8] & _FLAG_ENDED)

    def error(self) -> str | None:
        if self._q[_FLAGS // 8] & _FLAG_FAILED:
            return self._bar[_ERROR_TEXT:_PAGE].rstrip(b"\0").decode("utf-8", "replace")
        proc = self._proc
        if proc is not None and not proc.is_alive() and not self._q[_FLAGS // 8] & _FLAG_ENDED \
                and proc.exitcode != 0:
            # killed before it could say why: a waiter would otherwise wait for a run that is over
            return f"replay worker (pid {proc.pid}) died with exit code {proc.exitcode}"
        return self._refusal

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
            self._enable(0)
        for buf in list(self._buffers.values()):
            self.free_dma(buf)
        self._u32.release()
        self._q.release()
        self._bar.close()


def _fail(bar: mmap.mmap, text: str) -> None:
    raw = text.encode("utf-8", "replace")[:_PAGE - _ERROR_TEXT - 1]
    bar[_ERROR_TEXT:_PAGE] = raw.ljust(_PAGE - _ERROR_TEXT, b"\0")
    q = memoryview(bar).cast("Q")
    q[_FLAGS // 8] |= _FLAG_FAILED
    q.release()


def _worker(bar: mmap.mmap, ring: Path, interval: int, chunk: int, capture: Path, config: DecodeConfig,
            pacing_args: tuple, batch_frames: int) -> None:
    """The replay device's engine (a forked process): capture -> decoder -> ring; counters -> the page."""
    q = memoryview(bar).cast("Q")
    u32 = memoryview(bar).cast("I")
    enable = REG_BY_NAME["ENABLE"].offset >> 2

    def publish(dec: Decoder, w: RingWriter) -> None:
        vals = np.fromiter((dec.counters[c.name] for c in COUNTERS), np.uint64, _N)
        q[_LIVE_GEN // 8] += 1                   # odd: being updated
        q[_LIVE_BANK // 8:_LIVE_BANK // 8 + _N] = memoryview(vals.tobytes()).cast("Q")
        q[_LIVE_HEAD // 8] = w.next_seq - 1
        q[_LIVE_GEN // 8] += 1

    try:
        with RingWriter(ring, interval=interval, chunk=chunk) as w:
            dec = Decoder(config)
            try:
                replay_capture(capture, w, pacing=Pacing(*pacing_args), decoder=dec,
                               should_stop=lambda: not u32[enable] & 1, on_batch=publish,
                               batch_frames=batch_frames)
                ended = _FLAG_ENDED
            except _Stopped:
                ended = 0
            publish(dec, w)
        q[_FLAGS // 8] |= ended                  # after the writer closed: the ring is complete
    except Exception as e:                       # reported through Backend.error()
        _fail(bar, f"{type(e).__name__}: {e}")
    finally:
        q.release()
        u32.release()
