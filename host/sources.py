"""Where ticks come from, as one thing a strategy runner iterates: batches of zero-copy tick views.

Every source yields 1-D arrays of the tick dtype (read-only views where the
source is a ring) and says, after a batch was used, whether it was still
intact (:meth:`TickSource.intact`) and how many ticks it lost (``lost``):

- :class:`RingSource`: a :class:`~wiretick.host.ring.Ring` (a live device, ``wiretick
  sim --ring``, ``wiretick replay --ring``): laps and overwrites are reported;
- :class:`ReplaySource`: the software replay device
  (:class:`~wiretick.host.replay.ReplayBackend` behind :class:`~wiretick.host.device.Device`),
  set up, started and stopped by the source itself;
- :class:`CaptureSource`: a pcap/pcapng file decoded by the reference feed handler, batch by batch;
- :class:`ArraySource`: ticks already in memory (a ``.npy`` is memory-mapped).

:func:`open_source` picks one from what it is given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np

from .tick import TICK_DTYPE

__all__ = ["TickSource", "RingSource", "ReplaySource", "CaptureSource", "ArraySource", "open_source"]


class TickSource:
    """Batches of ticks.  ``lost``: ticks the source skipped (a lapped ring reader); 0 elsewhere."""

    lost = 0

    def batches(self) -> Iterator[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def intact(self, batch: np.ndarray) -> bool:
        """After using ``batch``: True if it was not overwritten meanwhile (only a ring can overwrite)."""
        return True

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RingSource(TickSource):
    """Follow a ring until its writer stops (or ``timeout`` idle seconds); ``ring`` is a Ring or its name/path."""

    def __init__(self, ring, *, max_ticks: int = 1 << 15, timeout: float | None = None):
        from .ring import Ring
        self._own = not isinstance(ring, Ring)
        self.ring = Ring(ring) if self._own else ring
        self.max_ticks = max_ticks
        self.timeout = timeout

    @property
    def lost(self) -> int:
        return self.ring.lost

    def batches(self) -> Iterator[np.ndarray]:
        return self.ring.batches(max_ticks=self.max_ticks, timeout=self.timeout)

    def intact(self, batch: np.ndarray) -> bool:
        return self.ring.recheck(batch)

    def close(self) -> None:
        if self._own:
            self.ring.close()


class ReplaySource(RingSource):
    """A capture replayed by the software device into a ring this process follows, as on hardware.

    ``rate`` paces the replay (messages/s; default full speed).  The ring (in
    ``dma_dir``, /dev/shm by default) is removed when the source closes.
    """

    def __init__(self, capture: str | os.PathLike, *, rate: float | None = None, config=None,
                 nslots: int = 1 << 20, max_ticks: int = 1 << 14, dma_dir: str | os.PathLike = "/dev/shm"):
        from .decode import DecodeConfig
        from .device import Device
        from .replay import ReplayBackend

        self.device = Device(ReplayBackend(capture, rate=rate, dma_dir=dma_dir))
        try:
            self.device.configure(config or DecodeConfig())
            self.device.setup_ring(nslots)
            ring = self.device.open_ring()
            self.device.start()
        except BaseException:
            self.device.close()
            raise
        super().__init__(ring, max_ticks=max_ticks)
        self._own = True
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            super().close()
            if self.device.enabled or self.device.running:
                self.device.stop()
        finally:
            self.device.close()             # frees the ring file


class CaptureSource(TickSource):
    """A capture file decoded batch by batch by the reference feed handler (nothing held whole in memory)."""

    def __init__(self, capture: str | os.PathLike, *, config=None, batch_frames: int = 1 << 14):
        from .capture import open_capture
        from .decode import Decoder

        self.path = Path(capture)
        with open_capture(self.path):            # a bad capture fails here, naming the offset
            pass
        self.decoder = Decoder(config)
        self._batch_frames = batch_frames

    @property
    def counters(self) -> dict[str, int]:
        return self.decoder.counters

    def batches(self) -> Iterator[np.ndarray]:
        from .capture import open_capture
        with open_capture(self.path, batch_frames=self._batch_frames) as cap:
            for frames in cap:
                for chunk in self.decoder.feed(frames):
                    if len(chunk):
                        yield chunk


class ArraySource(TickSource):
    """Ticks in memory, or a ``.npy`` of them (memory-mapped), in batches of ``max_ticks``."""

    def __init__(self, ticks, *, max_ticks: int = 1 << 16):
        if isinstance(ticks, (str, os.PathLike)):
            ticks = np.load(ticks, mmap_mode="r")
        if ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
            raise ValueError(f"not an array of ticks: dtype {ticks.dtype}, {ticks.ndim} dims")
        self.ticks = ticks
        self.max_ticks = max_ticks

    def batches(self) -> Iterator[np.ndarray]:
        for i in range(0, len(self.ticks), self.max_ticks):
            yield self.ticks[i:i + self.max_ticks]


def open_source(source, **kwargs) -> TickSource:
    """A :class:`TickSource` for ``source``: a TickSource, a Ring, a Device (its ring), a tick array, a
    ``.npy`` path, or a capture path (pcap/pcapng)."""
    from .device import Device
    from .ring import Ring

    if isinstance(source, TickSource):
        return source
    if isinstance(source, Ring):
        return RingSource(source, **kwargs)
    if isinstance(source, Device):
        return RingSource(source.open_ring(), **kwargs)
    if isinstance(source, np.ndarray):
        return ArraySource(source, **kwargs)
    if isinstance(source, (str, os.PathLike)):
        if str(source).endswith(".npy"):
            return ArraySource(source, **kwargs)
        return CaptureSource(source, **kwargs)
    raise TypeError(f"cannot read ticks from {type(source).__name__}: give a Ring, a Device, a capture path, "
                    "a .npy path, a tick array or a TickSource")
