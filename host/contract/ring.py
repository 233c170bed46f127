"""The tick ring's layout (docs/ring.md): what every writer writes and every reader reads.

A ring is a 4096-byte control page, then a power-of-two array of 64-byte slots.
Tick ``seq`` lives in slot ``(seq - 1) & (nslots - 1)``; its ``seq`` field is the
slot's generation, and bits 12..15 of its ``flags`` carry a lap tag so that a slot
whose two halves landed at different times is never taken.

The DMA engine (:mod:`wiretick.hdl.dma`) writes slots and the shadow head by these
numbers; the host (:mod:`wiretick.host.ring`, :mod:`wiretick.host.device`) maps,
initialises and follows rings by them; docs/ring.md's tables are generated from
:data:`CONTROL_PAGE`.  Nothing here maps memory: the constants and the pure
functions of them only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import WiretickError
from .formats import TICK_FIELD_BY_NAME, TICK_SIZE, Flag

__all__ = [
    "RingError", "ControlField", "CONTROL_PAGE", "MAGIC", "VERSION", "SLOT_SIZE", "SLOT_SHIFT", "CONTROL_SIZE",
    "DATA_OFFSET", "MIN_SLOTS", "MAX_SLOTS", "OFF_MAGIC", "OFF_VERSION", "OFF_SLOT_SIZE", "OFF_NSLOTS",
    "OFF_DATA", "OFF_HEAD", "OFF_STATE", "OFF_DROPPED", "STATE_NEW", "STATE_RUNNING", "STATE_STOPPED",
    "STATE_NAMES", "LAP_SHIFT", "LAP_WIDTH", "LAP_MASK", "LAP_BITS", "FRESH_LAP",
    "check_nslots", "ring_bytes", "device_writes", "lap_tag", "RingHeader", "header_bytes", "parse_header",
]


class RingError(WiretickError, ValueError):
    """A ring that cannot be used: a bad name, a bad control page or a bad configuration."""


# ---------------------------------------------------------------- slots

#: One slot holds one tick.
SLOT_SIZE = TICK_SIZE
SLOT_SHIFT = SLOT_SIZE.bit_length() - 1
#: 64 slots = one 4 KiB page: the least a reader can map twice, back to back.
MIN_SLOTS = 64
#: 2^40 slots = 64 TiB: anything larger is a mistake, not a ring.
MAX_SLOTS = 1 << 40

# The lap tag: the bits of flags that formats.Flag reserves for it (12..15), written
# by the ring writer over what the parser left 0 there.
LAP_BITS = Flag.LAP_TAG
LAP_SHIFT = (LAP_BITS & -LAP_BITS).bit_length() - 1
LAP_WIDTH = LAP_BITS.bit_count()
LAP_MASK = LAP_BITS >> LAP_SHIFT
#: The lap tag of every slot of a fresh ring (with seq 0): "lap -1", so that a torn
#: first-lap write (seq landed, second half not) reads as "not yet".
FRESH_LAP = LAP_MASK

# ---------------------------------------------------------------- the control page

CONTROL_SIZE = 4096
#: Where slot 0 starts in a ring buffer: right after the control page.
DATA_OFFSET = CONTROL_SIZE
MAGIC = b"WTRING01"
VERSION = 1
STATE_NEW, STATE_RUNNING, STATE_STOPPED = 0, 1, 2
STATE_NAMES = {STATE_NEW: "never started", STATE_RUNNING: "running", STATE_STOPPED: "stopped"}


@dataclass(frozen=True)
class ControlField:
    """One field of the control page: ``size`` bytes (little-endian) at byte ``offset``.

    ``kind`` is its type as docs/ring.md names it (``u64``, ...); ``writer`` is who writes it: ``init`` (once, when the ring is laid out), ``head``
    (the ring writer: the DMA engine in hardware), or ``driver`` (the software that
    owns the ring: the replay, or the host driver of a device).
    """

    name: str
    offset: int
    size: int
    kind: str
    writer: str
    doc: str


CONTROL_PAGE: tuple[ControlField, ...] = (
    ControlField("magic", 0, 8, "8 bytes", "init", f"`{MAGIC.decode()}`, written last: a half-made ring never "
                 "validates"),
    ControlField("version", 8, 4, "u32", "init", f"layout version ({VERSION})"),
    ControlField("slot_size", 12, 4, "u32", "init", f"bytes per slot ({SLOT_SIZE}: one tick)"),
    ControlField("nslots", 16, 8, "u64", "init", f"number of slots (a power of two, >= {MIN_SLOTS})"),
    ControlField("data_offset", 24, 8, "u64", "init", f"where slot 0 starts ({DATA_OFFSET}, a multiple of the "
                 "page size)"),
    ControlField("head", 64, 8, "u64", "head", "**shadow head**: the `seq` of the last tick written, mirrored "
                 "every `interval` ticks and when the writer idles"),
    ControlField("state", 128, 8, "u64", "driver", "writer state: " + ", ".join(
        f"{v} = {n}" for v, n in STATE_NAMES.items())),
    ControlField("dropped", 136, 8, "u64", "driver", "ticks the writer dropped (DMA FIFO overflow), also reported "
                 "in-band by drop events; for the hardware the driver writes it at stop, extended to 64 bits "
                 "from the 32-bit `DMA_DROPPED`"),
)
_FIELD = {f.name: f for f in CONTROL_PAGE}
OFF_MAGIC = _FIELD["magic"].offset
OFF_VERSION = _FIELD["version"].offset
OFF_SLOT_SIZE = _FIELD["slot_size"].offset
OFF_NSLOTS = _FIELD["nslots"].offset
OFF_DATA = _FIELD["data_offset"].offset
OFF_HEAD = _FIELD["head"].offset
OFF_STATE = _FIELD["state"].offset
OFF_DROPPED = _FIELD["dropped"].offset
#: The fixed fields, laid out once by :func:`header_bytes`, validated by :func:`parse_header`.
_HEADER_SIZE = OFF_DATA + 8


def _check_layout() -> None:
    if LAP_MASK != (1 << LAP_WIDTH) - 1:
        raise AssertionError("formats.Flag.LAP_TAG must be one run of bits")
    if TICK_FIELD_BY_NAME["seq"].offset != 0:
        raise AssertionError("the first half of a slot carries seq: it must be the tick's first field")
    if 1 << SLOT_SHIFT != SLOT_SIZE:
        raise AssertionError(f"slot size {SLOT_SIZE} is not a power of two")
    end = 0
    for f in sorted(CONTROL_PAGE, key=lambda f: f.offset):
        if f.offset < end or f.offset % min(f.size, 8):
            raise AssertionError(f"control page field {f.name} overlaps or is misaligned")
        end = f.offset + f.size
    if end > CONTROL_SIZE:
        raise AssertionError("the control page fields do not fit the control page")
    # The engine writes the shadow head as one 8-byte beat: alone in its word.
    if OFF_HEAD % 8 or _FIELD["head"].size != 8:
        raise AssertionError("the shadow head must be one aligned u64")


_check_layout()

# ---------------------------------------------------------------- functions of the layout


def check_nslots(nslots: object) -> int:
    """``nslots`` as an int if it is a valid ring size (a power of two, ``MIN_SLOTS`` or more)."""
    if isinstance(nslots, bool) or not isinstance(nslots, (int, np.integer)):
        raise RingError(f"nslots must be an integer, got {nslots!r}")
    n = int(nslots)
    if n < MIN_SLOTS or n & (n - 1):
        raise RingError(f"nslots must be a power of two >= {MIN_SLOTS} (one 4 KiB page of slots, so the slot "
                        f"area can be mapped twice), got {n}")
    if n > MAX_SLOTS:
        raise RingError(f"nslots {n} is absurdly large (more than 2^40 slots = 64 TiB)")
    return n


def ring_bytes(nslots: int) -> int:
    """Bytes a ring of ``nslots`` slots occupies (control page + slots)."""
    return DATA_OFFSET + check_nslots(nslots) * SLOT_SIZE


def device_writes(nslots: int) -> tuple[tuple[int, int], ...]:
    """The byte ranges ``[start, end)`` of a ring buffer that the device may write.

    Its slots and the shadow head; the rest of the control page is the driver's.
    Simulations check every DMA write against these.
    """
    head = _FIELD["head"]
    return (DATA_OFFSET, ring_bytes(nslots)), (head.offset, head.offset + head.size)


def lap_tag(seq: int | np.ndarray, nslots: int) -> int | np.ndarray:
    """The lap tag of tick ``seq`` in a ring of ``nslots`` slots: ``((seq-1) >> log2(nslots)) & 0xF``."""
    shift = check_nslots(nslots).bit_length() - 1
    if isinstance(seq, np.ndarray):
        return ((seq.astype(np.uint64) - np.uint64(1)) >> np.uint64(shift)) & np.uint64(LAP_MASK)
    return ((int(seq) - 1) >> shift) & LAP_MASK


@dataclass(frozen=True)
class RingHeader:
    """The validated fixed fields of a control page."""

    nslots: int
    data_offset: int
    version: int = VERSION

    @property
    def data_bytes(self) -> int:
        return self.nslots * SLOT_SIZE

    @property
    def total_bytes(self) -> int:
        return self.data_offset + self.data_bytes


def header_bytes(nslots: int) -> bytes:
    """The fixed fields of a fresh ring's control page (the magic first; write it last)."""
    head = bytearray(_HEADER_SIZE)
    head[OFF_MAGIC:OFF_MAGIC + 8] = MAGIC
    head[OFF_VERSION:OFF_VERSION + 4] = VERSION.to_bytes(4, "little")
    head[OFF_SLOT_SIZE:OFF_SLOT_SIZE + 4] = SLOT_SIZE.to_bytes(4, "little")
    head[OFF_NSLOTS:OFF_NSLOTS + 8] = check_nslots(nslots).to_bytes(8, "little")
    head[OFF_DATA:OFF_DATA + 8] = DATA_OFFSET.to_bytes(8, "little")
    return bytes(head)


def parse_header(raw: bytes | memoryview, where: str, size: int | None = None, *,
                 page: int = CONTROL_SIZE) -> RingHeader:
    """Validate a control page (its fixed fields at least).

    Parameters
    ----------
    raw : the control page's bytes.
    where : what to name the ring by in an error.
    size : the bytes available (the file's or buffer's), checked against what the page describes.
    page : the page size the data offset must be a multiple of (the reader maps the slots).
    """
    if size is not None and size < CONTROL_SIZE:
        raise RingError(f"{where}: {size} bytes, too small for a ring (the control page alone is {CONTROL_SIZE})")
    raw = bytes(raw[:_HEADER_SIZE])
    magic = raw[OFF_MAGIC:OFF_MAGIC + 8]
    if magic != MAGIC:
        hint = " (all zero: not initialised yet?)" if not any(raw) else ""
        raise RingError(f"{where}: not a wiretick ring: magic is {magic!r}, expected {MAGIC!r}{hint}")
    version = int.from_bytes(raw[OFF_VERSION:OFF_VERSION + 4], "little")
    if version != VERSION:
        raise RingError(f"{where}: ring version {version} is not supported (this code speaks version {VERSION})")
    slot = int.from_bytes(raw[OFF_SLOT_SIZE:OFF_SLOT_SIZE + 4], "little")
    if slot != SLOT_SIZE:
        raise RingError(f"{where}: slot size is {slot} bytes, expected {SLOT_SIZE} (one tick)")
    nslots = int.from_bytes(raw[OFF_NSLOTS:OFF_NSLOTS + 8], "little")
    try:
        check_nslots(nslots)
    except RingError as e:
        raise RingError(f"{where}: bad control page: {e}") from None
    data = int.from_bytes(raw[OFF_DATA:OFF_DATA + 8], "little")
    if data < CONTROL_SIZE or data % page:
        raise RingError(f"{where}: data offset {data} must be a multiple of the {page}-byte page, "
                        f">= {CONTROL_SIZE}")
    hdr = RingHeader(nslots, data, version)
    if size is not None and size < hdr.total_bytes:
        raise RingError(f"{where}: {size} bytes, but its control page describes {nslots} slots at offset "
                        f"{data} = {hdr.total_bytes} bytes (truncated file?)")
    return hdr
