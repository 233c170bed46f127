"""What the simulation engines share: DMA buffers that are ring files, and how frames are fed in chunks.

A simulated device's DMA engine writes host memory by bus address; each
simulator keeps its own model of that memory (C++ in the fast engine,
:class:`wiretick.sim.hostmem.HostMemory` under cocotb).  Both map every DMA
buffer, a file from :class:`~wiretick.host.device.FileDma` that a
:class:`~wiretick.host.ring.Ring` opens by name, at the buffer's bus address:
the device's writes land in the pages the strategy reads.

Both engines also feed frames in chunks small enough that the ring reader
following the ring, polled between chunks, is never lapped
(:func:`reader_safe_chunks`).
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterator

import numpy as np

from wiretick.host.decode import MIN_MESSAGE_BLOCK
from wiretick.host.device import Backend, DmaBuffer, FileDma

__all__ = ["SimBackend", "reader_safe_chunks"]


def reader_safe_chunks(length: np.ndarray, budget: int) -> Iterator[tuple[int, int]]:
    """Runs ``[lo, hi)`` of frames (``length``: their sizes) that release at most ``budget`` ticks each.

    A frame releases at most ``len // MIN_MESSAGE_BLOCK + 2`` ticks (its
    messages, a gap event and an abort event).  A run holds one frame at least,
    so a budget below one frame's worth still makes progress.  With ``budget``
    a quarter of the ring's slots and the reader polled after every run, at
    most two runs' ticks are unread at any time: the reader is never lapped.
    """
    bound = np.cumsum(np.asarray(length, np.int64) // MIN_MESSAGE_BLOCK + 2)
    lo = 0
    while lo < len(bound):
        base = int(bound[lo - 1]) if lo else 0
        hi = max(lo + 1, int(np.searchsorted(bound, base + budget, "right")))
        yield lo, hi
        lo = hi


class SimBackend(Backend):
    """A backend whose DMA buffers are files mapped into a simulator's memory at their bus addresses.

    Parameters
    ----------
    dma_dir : path
        Where the buffer files are made (``/dev/shm``: any process can open them).
    prefix : str
        The file names of unnamed buffers start with it.
    keep_rings : bool
        Leave the files behind when the device frees them (a named ring a user
        wants to read after the run).
    """

    def __init__(self, dma_dir: str | os.PathLike = "/dev/shm", *, prefix: str, keep_rings: bool = False):
        self._dma = FileDma(dma_dir, prefix=prefix)
        self._keep = keep_rings

    @abstractmethod
    def map_bus(self, bus_address: int, size: int, path: str | os.PathLike) -> None:
        """Make the file ``path`` the simulated memory at ``bus_address`` (``size`` bytes)."""

    @abstractmethod
    def unmap_bus(self, bus_address: int) -> None:
        """Take the buffer at ``bus_address`` off the simulated bus."""

    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        buf = self._dma.alloc(size, name)
        try:
            self.map_bus(buf.bus_address, buf.size, buf.path)
        except BaseException:
            self._dma.free(buf)
            raise
        return buf

    def free_dma(self, buf: DmaBuffer) -> None:
        self.unmap_bus(buf.bus_address)
        if not self._keep:
            self._dma.free(buf)
