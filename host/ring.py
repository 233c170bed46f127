"""The tick ring on the host: zero-copy readers and the software writer.

The protocol is docs/ring.md; its layout (control page, slots, lap tag) is part
of the contract between the device and the host, :mod:`wiretick.host.contract.ring`.

:class:`Ring` follows a ring read-only.  Its slot area is mapped twice, back
to back (one anonymous reservation, the file's slot area mapped over each
half), so the ticks ``seq .. seq + n`` are always one contiguous numpy view,
even across the end of the ring.  Readers keep no state in the ring: any
number of processes follow one ring independently, and none can slow the
writer down.

:class:`RingWriter` is the software writer (replay, tests, benchmarks): it
creates ring files and writes tick arrays with plain numpy slice copies.

Memory ordering: the reader relies on x86-64 (TSO) ordering -- loads are not
reordered with loads, stores not with stores -- and on each numpy call being
a separate C function, so a pass over a chunk is complete before the next
pass starts.  On a weakly ordered CPU, fences would be needed where the
comments say "ordering".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import mmap
import os
import stat
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Literal

import numpy as np

from .contract.formats import TICK_FIELD_BY_NAME
from .contract.ring import (
    CONTROL_SIZE, DATA_OFFSET, FRESH_LAP, LAP_BITS, LAP_MASK, LAP_SHIFT, MAGIC, OFF_DROPPED, OFF_HEAD, OFF_STATE,
    SLOT_SIZE, STATE_NAMES, STATE_RUNNING, STATE_STOPPED, RingError, RingHeader, check_nslots, header_bytes,
    parse_header, ring_bytes,
)
from .tick import TICK_DTYPE

__all__ = [
    "without_lap_tags", "RingLapped", "LapEvent",
    "check_ring_name", "ring_path", "ring_users", "check_replaceable", "init_ring",
    "create_ring", "read_header",
    "Ring", "RingWriter",
]

# ---------------------------------------------------------------- the lap tag in a slot

# Readers and the writer test the lap tag in the slot's last 8-byte word (word 7),
# which holds flags: bits 44..47 of it (flags at byte 60, the word at byte 56).
_W7_TAG_SHIFT = 8 * (TICK_FIELD_BY_NAME["flags"].offset - 56) + LAP_SHIFT
_W7_KEEP = np.uint64(~(LAP_MASK << _W7_TAG_SHIFT) & 0xFFFF_FFFF_FFFF_FFFF)


def without_lap_tags(ticks: np.ndarray) -> np.ndarray:
    """A copy of ``ticks`` with the ring's lap tag cleared: the ticks as the parser made them."""
    out = np.array(ticks, copy=True)
    out["flags"] &= np.uint16(~LAP_BITS & 0xFFFF)
    return out


_FRESH_W7 = FRESH_LAP << _W7_TAG_SHIFT

_W_HEAD, _W_STATE, _W_DROPPED = OFF_HEAD // 8, OFF_STATE // 8, OFF_DROPPED // 8
_NEW, _NOT_YET, _LAPPED = 0, 1, 2

# Linux mmap flags (x86-64 and arm64 share these values); Python's mmap module
# has no MAP_FIXED, hence ctypes for the double mapping.
_PROT_NONE, _PROT_READ, _PROT_WRITE = 0, 1, 2
_MAP_SHARED, _MAP_PRIVATE, _MAP_FIXED, _MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
_MAP_NORESERVE, _MAP_POPULATE = 0x4000, 0x8000
_PAGE = mmap.PAGESIZE


@dataclass(frozen=True)
class LapEvent:
    """The writer overtook a reader: what was lost.

    Parameters
    ----------
    expected : the seq the reader was about to read.
    resumed : the seq it resynchronised to (its next tick).
    lost : ticks skipped, exactly ``resumed - expected``.
    newest : the newest seq the reader could see when it resynchronised.
    at_ns : ``time.monotonic_ns()`` when it was detected.
    """

    expected: int
    resumed: int
    lost: int
    newest: int
    at_ns: int


class RingLapped(Exception):
    """Raised by :meth:`Ring.poll` (with ``on_lap="raise"``) after a lap.

    The reader has already resynchronised: the next poll continues from
    ``event.resumed``.
    """

    def __init__(self, event: LapEvent):
        self.event = event
        super().__init__(f"ring reader lapped: expected seq {event.expected}, resumed at {event.resumed}, "
                         f"{event.lost} ticks lost")


def check_ring_name(name: str) -> str:
    """``name`` if it is a ring name: one file name, no separator, not ``.`` or ``..``.

    A name lives in a ring directory (``/dev/shm``); anything else is a path,
    which callers must pass explicitly (a :class:`pathlib.Path`, ``--ring-path``).
    """
    if not isinstance(name, str):
        raise RingError(f"a ring name is a str, got {type(name).__name__}")
    if not name:
        raise RingError("ring name is empty")
    if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise RingError(f"ring name {name!r} is not a name: no '/', '..' or NUL (to put a ring elsewhere, "
                        f"give a path explicitly: a pathlib.Path, or --ring-path on the command line)")
    return name


def ring_path(target: str | os.PathLike) -> Path:
    """The file of a ring: a name (a ``str``) is ``/dev/shm/<name>``; a path must be a ``PathLike``.

    A string with a separator or ``..`` is refused (:func:`check_ring_name`),
    so a name can never point out of the ring directory.
    """
    if isinstance(target, str):
        return Path("/dev/shm") / check_ring_name(target)
    if isinstance(target, os.PathLike):
        path = Path(target)
        if not str(path) or path == Path("."):
            raise RingError("ring path is empty")
        return path
    raise RingError(f"a ring is a name (str) or a path (PathLike), got {type(target).__name__}")


def ring_users(path: str | os.PathLike) -> list[int]:
    """Processes that have the file ``path`` mapped or open (from ``/proc``), this one included.

    Readers close their descriptor once the ring is mapped, so the mappings are
    what shows a live reader; processes whose ``/proc`` entries cannot be read
    (another user's, without privileges) are not seen.
    """
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    ino = str(st.st_ino)
    users = []
    try:
        pids = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return users
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps", "rb") as f:
                maps = f.read().decode("ascii", "replace")
        except OSError:
            continue
        hit = any(len(p) >= 5 and p[4] == ino and p[3] == dev for p in (line.split(None, 5)
                                                                     for line in maps.splitlines()))
        if not hit:
            try:
                for fd in os.scandir(f"/proc/{pid}/fd"):
                    try:
                        fst = os.stat(fd.path)
                    except OSError:
                        continue
                    if fst.st_ino == st.st_ino and fst.st_dev == st.st_dev:
                        hit = True
                        break
            except OSError:
                pass
        if hit:
            users.append(int(pid))
    return users


def check_replaceable(path: str | os.PathLike, *, force: bool = False) -> None:
    """Refuse to replace ``path`` unless it is a wiretick ring that nobody uses (or ``force``).

    A file that is not a ring (its first 8 bytes are not the magic) is never
    replaced, ``force`` or not; a ring that a process has mapped or open is
    replaced only with ``force`` (the processes keep the old one).  Nothing to
    do when ``path`` does not exist.
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise RingError(f"{path} exists and is not a regular file: not replacing it with a ring")
    try:
        with open(path, "rb") as f:
            magic = f.read(len(MAGIC))
    except OSError as e:
        raise RingError(f"{path} exists and cannot be read ({e.strerror}): not replacing it with a ring") from None
    if magic != MAGIC:
        raise RingError(f"{path} exists and is not a wiretick ring (it does not start with {MAGIC!r}): "
                        f"wiretick never replaces it; pick another ring name")
    if force:
        return
    users = [p for p in ring_users(path)]
    if users:
        who = ", ".join(str(p) for p in users[:8]) + (" ..." if len(users) > 8 else "")
        raise RingError(f"ring {path} is in use (mapped or open by process {who}): not replacing it; stop "
                        f"them, pick another name, or force it (wiretick replay --force, force=True in Python: "
                        f"they keep the old ring)")


def read_header(target: str | os.PathLike) -> RingHeader:
    """Read and validate the control page of a ring file."""
    path = ring_path(target)
    with open(path, "rb") as f:
        raw = f.read(CONTROL_SIZE)
        size = os.fstat(f.fileno()).st_size
    return parse_header(raw, str(path), size, page=_PAGE)


def init_ring(buffer, nslots: int) -> RingHeader:
    """Lay a fresh ring out in writable memory: control page, and every slot "lap -1, seq 0".

    This is what a driver does to a DMA buffer before it enables the device; it
    also touches every page (pre-faulting the ring).  The magic is written last.
    """
    nslots = check_nslots(nslots)
    mem = memoryview(buffer).cast("B")
    need = ring_bytes(nslots)
    if mem.readonly:
        raise RingError("init_ring needs writable memory")
    if len(mem) < need:
        raise RingError(f"a ring of {nslots} slots needs {need} bytes, the buffer has {len(mem)}")
    ctl = np.frombuffer(mem, np.uint8, CONTROL_SIZE)
    ctl[:] = 0
    words = np.frombuffer(mem, np.uint64, nslots * 8, DATA_OFFSET).reshape(nslots, 8)
    words[:, :7] = 0
    words[:, 7] = _FRESH_W7
    hdr = header_bytes(nslots)
    ctl[8:len(hdr)] = np.frombuffer(hdr[8:], np.uint8)
    ctl[0:8] = np.frombuffer(hdr[:8], np.uint8)   # magic last: a half-made ring never validates
    return RingHeader(nslots, DATA_OFFSET)


def create_ring(target: str | os.PathLike, nslots: int, *, overwrite: bool = False, force: bool = False) -> Path:
    """Create and initialise a ring file (``/dev/shm/<name>`` for a name, see :func:`ring_path`).

    The configuration is validated before anything is created.  The ring is
    built in a temporary file and renamed into place, so a reader never sees a
    half-made ring.  An existing file at the path is an error, except a
    wiretick ring with ``overwrite`` that no process has mapped or open, or
    with ``force`` (readers that have it mapped keep the old one); a file that
    is not a ring is never replaced (:func:`check_replaceable`).  Pages are
    allocated up front (``posix_fallocate``: no SIGBUS later when /dev/shm
    fills up) and touched.  On hugetlbfs the file size is rounded up to the
    huge page size.
    """
    nslots = check_nslots(nslots)
    path = ring_path(target)
    if not path.parent.is_dir():
        raise RingError(f"cannot create ring {path}: directory {path.parent} does not exist")
    replace = overwrite or force
    if os.path.lexists(path):
        if not replace:
            raise FileExistsError(errno.EEXIST, "ring already exists (replace it with overwrite, or pick another "
                                                "name)", str(path))
        check_replaceable(path, force=force)
    size = ring_bytes(nslots)
    block = os.statvfs(path.parent).f_bsize
    if block > _PAGE:                        # hugetlbfs: files are whole huge pages
        size = -(-size // block) * block
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
        except OSError as e:
            raise OSError(e.errno, f"cannot allocate {size} bytes for ring ({e.strerror})", str(path)) from None
        with mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE) as mm:
            init_ring(mm, nslots)
        if replace:
            if os.path.lexists(path):
                check_replaceable(path, force=force)     # again: the file may have changed meanwhile
            os.replace(tmp, path)
        else:
            os.link(tmp, path)               # fails if the name appeared meanwhile: never clobber
            os.unlink(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return path


# ---------------------------------------------------------------- mapping memory

@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int64]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    return libc


def _double_map(fd: int, offset: int, size: int, writable: bool, populate: bool) -> memoryview:
    """Map ``size`` bytes of ``fd`` at ``offset`` twice, back to back; a memoryview of the 2*size bytes.

    A PROT_NONE anonymous reservation of 2*size bytes is made first so that
    nothing else can land in the second half; each half is then replaced by a
    MAP_FIXED shared mapping of the same file range.  The memory is unmapped
    when the last view of it is garbage (a finalizer on the ctypes object that
    every view keeps alive), never under a live numpy array.
    """
    if not sys.platform.startswith("linux"):
        raise OSError(errno.ENOSYS, "double mapping is implemented for Linux only")
    libc = _libc()
    failed = ctypes.c_void_p(-1).value
    base = libc.mmap(None, 2 * size, _PROT_NONE, _MAP_PRIVATE | _MAP_ANONYMOUS | _MAP_NORESERVE, -1, 0)
    if base in (None, failed):
        e = ctypes.get_errno()
        raise OSError(e, f"reserving {2 * size} bytes of address space: {os.strerror(e)}")
    prot = _PROT_READ | (_PROT_WRITE if writable else 0)
    flags = _MAP_SHARED | _MAP_FIXED | (_MAP_POPULATE if populate else 0)
    try:
        for half in (0, 1):
            want = base + half * size
            got = libc.mmap(want, size, prot, flags, fd, offset)
            if got != want:
                e = ctypes.get_errno()
                raise OSError(e, f"mapping the slot area at offset {offset} ({os.strerror(e)})")
    except BaseException:
        libc.munmap(base, 2 * size)
        raise
    holder = (ctypes.c_char * (2 * size)).from_address(base)
    weakref.finalize(holder, libc.munmap, base, 2 * size)
    view = memoryview(holder).cast("B")
    return view if writable else view.toreadonly()


def _touch(arr: np.ndarray) -> None:
    """Pre-fault: read one byte per page (first touch costs a page fault each)."""
    flat = arr.reshape(-1).view(np.uint8)
    int(flat[::_PAGE].sum())


@dataclass
class _Mapped:
    """A ring's memory as the reader/writer sees it."""

    control: memoryview      # the control page, format 'Q'
    slots: memoryview        # the slot bytes: nslots*64, or 2*nslots*64 when doubled
    header: RingHeader
    doubled: bool
    why_single: str | None   # why the double mapping was not used
    path: Path | None
    fd: int | None           # kept open by writers (for the lock)
    keep: tuple              # objects that must outlive the views (mmaps)


def _map_ring(source, *, writable: bool, double_map: bool, prefault: bool) -> _Mapped:
    if isinstance(source, (str, os.PathLike)):
        return _map_file(ring_path(source), writable=writable, double_map=double_map, prefault=prefault)
    try:
        mem = memoryview(source).cast("B")
    except TypeError:
        raise RingError(f"a ring is a name, a path or a buffer; got {type(source).__name__}") from None
    hdr = parse_header(mem, f"ring buffer at {type(source).__name__}", len(mem), page=_PAGE)
    if writable and mem.readonly:
        raise RingError("the ring buffer is read-only; a writer needs writable memory")
    control = mem[:CONTROL_SIZE]
    slots = mem[hdr.data_offset:hdr.total_bytes]
    if not writable:
        control, slots = control.toreadonly(), slots.toreadonly()
    if prefault:
        _touch(np.frombuffer(slots, np.uint8))
    why = "a plain buffer has no file to map twice" if double_map else "double mapping disabled"
    return _Mapped(control.cast("Q"), slots, hdr, False, why, None, None, (source,))


def _map_file(path: Path, *, writable: bool, double_map: bool, prefault: bool) -> _Mapped:
    fd = os.open(path, os.O_RDWR if writable else os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size < CONTROL_SIZE:
            parse_header(b"", str(path), size, page=_PAGE)
        access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
        # hugetlbfs maps whole huge pages only: map its first page for the control page,
        # and the whole (rounded-up) file for the single mapping below.
        huge = os.fstatvfs(fd).f_bsize > _PAGE
        ctl_map = mmap.mmap(fd, min(size, os.fstatvfs(fd).f_bsize) if huge else CONTROL_SIZE, access=access)
        hdr = parse_header(memoryview(ctl_map), str(path), size, page=_PAGE)
        slots, doubled, why, keep = None, False, None, (ctl_map,)
        if double_map:
            try:
                slots = _double_map(fd, hdr.data_offset, hdr.data_bytes, writable, prefault)
                doubled = True
            except OSError as e:          # e.g. hugetlbfs: offsets must be huge-page aligned
                why = f"double mapping failed: {e}"
        else:
            why = "double mapping disabled"
        if slots is None:
            prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
            flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if prefault else 0)
            whole = mmap.mmap(fd, size if huge else hdr.total_bytes, flags=flags, prot=prot)
            keep = keep + (whole,)
            slots = memoryview(whole)[hdr.data_offset:hdr.total_bytes]
            if not writable:
                slots = slots.toreadonly()
        control = memoryview(ctl_map)[:CONTROL_SIZE]
        if not writable:
            control = control.toreadonly()
        if prefault and not doubled:
            _touch(np.frombuffer(slots, np.uint8))
    except BaseException:
        os.close(fd)
        raise
    if not writable:
        os.close(fd)
        fd = None
    return _Mapped(control.cast("Q"), slots, hdr, doubled, why, path, fd, keep)


# ---------------------------------------------------------------- the reader

class Ring:
    """Follow a tick ring read-only, as zero-copy numpy views.

    Parameters
    ----------
    source : str, PathLike or buffer
        A ring name (``/dev/shm/<name>``), a path (a hugepage file, a DMA buffer
        exported as a file), or any buffer holding a ring (no double mapping).
    start : "oldest", "newest" or int
        Where to begin: the oldest tick still safely in the ring (see
        ``resync_margin``), only ticks written from now on, or a given seq.
    double_map : bool
        Map the slot area twice so that every batch is one view.  When the OS
        cannot (a plain buffer, hugetlbfs offsets, not Linux) the ring falls
        back to one mapping: :meth:`poll` then stops at the end of the ring and
        :meth:`poll_parts` returns the two pieces.  ``doubled`` tells which;
        ``why_single`` says why not.
    prefault : bool
        Populate the page tables now (MAP_POPULATE, or touching every page).
    on_lap : "report" or "raise"
        After a lap the reader always resynchronises and counts the loss
        (``lost``, ``laps``, ``last_lap``); with "raise" :meth:`poll` then
        raises :class:`RingLapped` (the next poll continues).
    resync : "oldest" or "newest"
        Where to continue after a lap: ``resync_margin`` ticks after the oldest
        tick still in the ring (loses the least), or after the newest tick
        (freshest data, loses the most).
    resync_margin : int
        Ticks of head room kept on "oldest": the oldest slot is the very next one
        the writer overwrites, so resuming exactly there would lap again at once.
        Default ``nslots // 8``.
    verify : bool
        Check seq and lap tag of every tick of every batch (normally only the
        ticks past the writer's shadow head are checked; see docs/host-driver.md).

    Attributes
    ----------
    next_seq : the seq the next poll returns first.
    lost : ticks skipped because the writer lapped this reader (cumulative).
    laps : how many times that happened.
    last_lap : the latest :class:`LapEvent`, or None.
    """

    def __init__(self, source, *, start: Literal["oldest", "newest"] | int = "oldest", double_map: bool = True,
                 prefault: bool = True, on_lap: Literal["report", "raise"] = "report",
                 resync: Literal["oldest", "newest"] = "oldest", resync_margin: int | None = None,
                 verify: bool = False):
        if on_lap not in ("report", "raise"):
            raise RingError(f"on_lap must be 'report' or 'raise', got {on_lap!r}")
        if resync not in ("oldest", "newest"):
            raise RingError(f"resync must be 'oldest' or 'newest', got {resync!r}")
        m = _map_ring(source, writable=False, double_map=double_map, prefault=prefault)
        self._m = m
        self.nslots: int = m.header.nslots
        self.doubled: bool = m.doubled
        self.why_single: str | None = m.why_single
        self.path: Path | None = m.path
        self._mask = self.nslots - 1
        self._shift = self.nslots.bit_length() - 1
        if resync_margin is None:
            resync_margin = self.nslots // 8
        if not 1 <= resync_margin < self.nslots:
            raise RingError(f"resync_margin must be 1..nslots-1 ({self.nslots - 1}), got {resync_margin}")
        self._margin = int(resync_margin)
        self._on_lap = on_lap
        self._resync = resync
        self._verify_all = verify
        self._ctl = m.control
        self._w = m.slots.cast("Q")                       # scalar reads: seq and word 7 of each slot
        words = np.frombuffer(m.slots, np.uint64).reshape(-1, 8)
        self._seqcol = words[:, 0]
        self._w7col = words[:, 7]
        self._ticks = np.frombuffer(m.slots, TICK_DTYPE)  # 2*nslots entries when doubled
        self._base = self._ticks.ctypes.data
        # poll_one hands out one record object per slot: indexing a structured array
        # gives a live view, and reusing it saves creating one (~40% of the call).
        self._records: list | None = [None] * self.nslots if self.nslots <= 1 << 16 else None
        self._span = len(self._ticks) * SLOT_SIZE
        self.lost = 0
        self.laps = 0
        self.last_lap: LapEvent | None = None
        self._last_first = 0
        if start == "oldest":
            newest = self._newest()
            self.next_seq = max(1, newest - self.nslots + 1 + self._margin) if newest >= self.nslots else 1
        elif start == "newest":
            self.next_seq = self._newest() + 1
        elif isinstance(start, (int, np.integer)) and not isinstance(start, bool) and start >= 1:
            self.next_seq = int(start)
        else:
            raise RingError(f"start must be 'oldest', 'newest' or a seq >= 1, got {start!r}")

    # -------------------------------------------------------------- control page

    @property
    def head(self) -> int:
        """The shadow head: seq of the last tick the writer has published (0 = none)."""
        return self._ctl[_W_HEAD]

    @property
    def writer_state(self) -> str:
        """'never started', 'running' or 'stopped'."""
        v = self._ctl[_W_STATE]
        return STATE_NAMES.get(v, f"unknown ({v})")

    @property
    def writer_dropped(self) -> int:
        """Ticks the writer itself dropped (DMA FIFO overflow), as it reports them."""
        return self._ctl[_W_DROPPED]

    @property
    def finished(self) -> bool:
        """The writer has stopped and this reader has read (or lost) everything it wrote."""
        # ordering: state before head; the writer stores head before state.
        return self._ctl[_W_STATE] == STATE_STOPPED and self.next_seq > self._ctl[_W_HEAD]

    @property
    def backlog(self) -> int:
        """Ticks published but not read yet (by the shadow head: a lower bound)."""
        return max(0, self._ctl[_W_HEAD] - self.next_seq + 1)

    # -------------------------------------------------------------- slot checks

    def _status(self, s: int) -> int:
        w = ((s - 1) & self._mask) << 3
        seq = self._w[w]
        if seq != s:
            return _NOT_YET if seq < s else _LAPPED
        # ordering: seq was loaded before the tag, so a new seq with a tag of this
        # lap means the whole slot has landed.
        tag = (self._w[w + 7] >> _W7_TAG_SHIFT) & LAP_MASK
        lap = ((s - 1) >> self._shift) & LAP_MASK
        if tag == lap:
            return _NEW
        # The next lap's tag on this lap's seq: the writer is overwriting the slot.
        return _LAPPED if tag == ((lap + 1) & LAP_MASK) else _NOT_YET

    def _gallop(self, lo: int, hi: int) -> int:
        """The last seq in [lo, hi] that reads as new, assuming lo does and writes land in order."""
        step = 1
        while lo < hi:
            probe = min(lo + step, hi)
            if self._status(probe) == _NEW:
                lo, step = probe, step << 1
                continue
            bad = probe
            while bad - lo > 1:
                mid = (lo + bad) >> 1
                if self._status(mid) == _NEW:
                    lo = mid
                else:
                    bad = mid
            return lo
        return lo

    def _verify(self, a: int, b: int) -> int:
        """The last seq s in [a-1, b] such that every tick a..s has its seq and lap tag (vectorized)."""
        i = (a - 1) & self._mask
        n = b - a + 1
        expect = np.arange(a, b + 1, dtype=np.uint64)
        ok = self._seqcol[i:i + n] == expect
        # ordering: all seqs were loaded (above) before any tag (below).
        tags = (self._w7col[i:i + n] >> np.uint64(_W7_TAG_SHIFT)) & np.uint64(LAP_MASK)
        ok &= tags == (((expect - np.uint64(1)) >> np.uint64(self._shift)) & np.uint64(LAP_MASK))
        if ok.all():
            return b
        return a - 1 + int(ok.argmin())

    def _newest(self) -> int:
        """The newest seq visible: the shadow head, then galloping forward past it."""
        h = self._ctl[_W_HEAD]
        if self._status(h + 1) == _NEW:
            h = self._gallop(h + 1, h + self.nslots)
        return h

    def _lapped(self, r: int) -> None:
        newest = max(self._newest(), r)
        if self._resync == "newest":
            new = newest + 1
        else:
            new = newest - self.nslots + 1 + self._margin
        new = max(new, r + 1)
        ev = LapEvent(r, new, new - r, newest, time.monotonic_ns())
        self.next_seq = new
        self.lost += ev.lost
        self.laps += 1
        self.last_lap = ev
        if self._on_lap == "raise":
            raise RingLapped(ev)

    def _available(self, limit: int) -> int:
        """How many ticks from ``next_seq`` are ready (at most ``limit``), resynchronising after laps."""
        while True:
            r = self.next_seq
            st = self._status(r)
            if st == _NOT_YET:
                return 0
            if st == _LAPPED:
                self._lapped(r)
                continue
            last = r + limit - 1
            if not self.doubled:                  # one mapping: a batch ends at the end of the ring
                last = min(last, r - 1 + self.nslots - ((r - 1) & self._mask))
            h = self._ctl[_W_HEAD]
            if h - r >= self.nslots:           # the writer is a whole ring ahead: r is being rewritten
                self._lapped(r)
                continue
            # Everything up to the shadow head is complete (the writer publishes the
            # head after the ticks); past it, each tick is checked.
            known = min(h, last) if h >= r else r
            if self._verify_all:
                known = self._verify(r, known)
            if known < last and self._status(known + 1) == _NEW:
                end = self._gallop(known + 1, last)
                known = self._verify(known + 1, end)
            # ordering: r is re-read last; if the writer has not reached it again,
            # it has not reached any later slot either.
            if self._status(r) != _NEW:
                self._lapped(r)
                continue
            return known - r + 1

    # -------------------------------------------------------------- reading

    def poll(self, max_ticks: int | None = None) -> np.ndarray:
        """Every new tick (at most ``max_ticks``) as one read-only view into the ring.

        Returns an empty array when there is nothing new.  With the double
        mapping the view may run across the end of the ring; without it, the
        batch stops at the end (the next poll returns the rest).  The view stays
        valid until the writer laps it: use it in place, then :meth:`recheck`.
        On a live ring, bound ``max_ticks`` well below ``nslots``: a batch of a
        whole ring starts at the very slot the writer overwrites next.
        """
        limit = self.nslots if max_ticks is None else min(int(max_ticks), self.nslots)
        if limit <= 0:
            return self._ticks[:0]
        n = self._available(limit)
        if not n:
            return self._ticks[:0]
        r = self.next_seq
        i = (r - 1) & self._mask
        self._last_first = r
        self.next_seq = r + n
        return self._ticks[i:i + n]

    def poll_parts(self, max_ticks: int | None = None) -> tuple[np.ndarray, ...]:
        """Like :meth:`poll`, but a batch that wraps is returned as (up to) two views.

        With the double mapping this is always one view; without it, the part up
        to the end of the ring and the part from its start, at most ``max_ticks``
        (and never more than ``nslots``) together.  If the writer reached the
        first part while the second was being read, the first is stale: that is
        a lap (counted, resynchronised, raised with ``on_lap="raise"``) and
        nothing is returned.
        """
        limit = self.nslots if max_ticks is None else min(int(max_ticks), self.nslots)
        first = self.poll(limit)
        if self.doubled or not len(first):
            return (first,) if len(first) else ()
        left = limit - len(first)
        if (self.next_seq - 1) & self._mask or left <= 0:
            return (first,)
        r0 = self._last_first
        second = self.poll(left)
        self._last_first = r0
        if not len(second):
            return (first,)
        # ordering: the second part was checked before r0 is re-read; the writer
        # rewrites the first part's slots in order, r0's first.
        if self._status(r0) != _NEW:
            self.next_seq = r0
            self._lapped(r0)
            return ()
        return (first, second)

    def poll_one(self):
        """The next tick as a numpy record, or None: the low-latency path.

        The record is a live view of the slot (the same object comes back for
        that slot on later laps): read what you need from it, then
        ``recheck()`` to know it was not overwritten meanwhile.
        """
        r = self.next_seq
        i = (r - 1) & self._mask
        W = self._w
        seq = W[i << 3]
        if seq == r and (W[(i << 3) + 7] >> _W7_TAG_SHIFT) & LAP_MASK == ((r - 1) >> self._shift) & LAP_MASK:
            self.next_seq = r + 1
            self._last_first = r
            cache = self._records
            if cache is None:
                return self._ticks[i]
            rec = cache[i]
            if rec is None:
                rec = cache[i] = self._ticks[i]
            return rec
        if seq < r:
            return None
        n = self._available(1)                      # lapped or torn: the careful path
        if not n:
            return None
        r = self.next_seq
        self.next_seq = r + 1
        self._last_first = r
        return self._ticks[(r - 1) & self._mask]     # the careful path: no need to save 100 ns

    def wait(self, timeout: float | None = None, max_ticks: int | None = None, *,
             spin: float = 200e-6, nap: float = 50e-6) -> np.ndarray:
        """:meth:`poll` until there is something, ``timeout`` seconds pass, or the writer has finished.

        Busy-polls for ``spin`` seconds first (latency), then sleeps ``nap``
        between polls (a ring has no interrupt).  Returns an empty array on
        timeout and once the writer has stopped and everything was read.
        """
        batch = self.poll(max_ticks)
        if len(batch):
            return batch
        now = time.monotonic()
        deadline = None if timeout is None else now + timeout
        spin_end = now + spin
        while True:
            batch = self.poll(max_ticks)
            if len(batch) or self.finished:
                return batch
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return batch
            if now >= spin_end:
                time.sleep(nap if deadline is None else max(0.0, min(nap, deadline - now)))

    def batches(self, max_ticks: int | None = None, *, timeout: float | None = None) -> Iterator[np.ndarray]:
        """Yield batches until the writer has stopped and everything was read (or ``timeout`` idle seconds)."""
        while True:
            batch = self.wait(timeout, max_ticks)
            if not len(batch):
                return
            yield batch

    def resync(self, to: Literal["oldest", "newest"] = "newest") -> int:
        """Jump to the oldest (plus margin) or newest data on purpose; returns ticks skipped (not counted as lost)."""
        newest = self._newest()
        if to == "newest":
            new = newest + 1
        elif to == "oldest":
            new = max(1, newest - self.nslots + 1 + self._margin) if newest >= self.nslots else 1
        else:
            raise RingError(f"resync to 'oldest' or 'newest', got {to!r}")
        new = max(new, self.next_seq)
        skipped = new - self.next_seq
        self.next_seq = new
        return skipped

    def recheck(self, view=None) -> bool:
        """True if ``view`` is still intact; False if the writer overwrote it (or began to) meanwhile.

        ``view`` is a batch returned by :meth:`poll` (or a slice of one whose
        first tick is the batch's first), a seq, or None for the latest batch
        or tick returned.  A view's first seq is inferred from its slot: the
        latest seq read through that slot, so recheck a batch before reading
        another ring's worth of ticks.  Only the view's first slot is read: the
        writer always rewrites it before any later one.
        """
        if view is None:
            s = self._last_first
        elif isinstance(view, (int, np.integer)):
            s = int(view)
        else:
            addr = view.__array_interface__["data"][0]
            off = addr - self._base
            if not 0 <= off < self._span or off % SLOT_SIZE:
                raise RingError("recheck: the view does not point into this ring")
            slot = (off // SLOT_SIZE) & self._mask
            # the latest seq s < next_seq with (s - 1) & mask == slot
            last = self.next_seq - 1
            s = last - ((last - 1 - slot) & self._mask)
        if s < 1:
            return False
        return self._status(s) == _NEW

    # -------------------------------------------------------------- lifetime

    def close(self) -> None:
        """Drop this reader's references; the memory goes when the last view of it does."""
        # No explicit munmap: a batch the caller still holds keeps its mapping
        # alive, and reference counting unmaps as soon as the last one goes.
        for name in ("_w", "_seqcol", "_w7col", "_ticks", "_ctl", "_m", "_records"):
            self.__dict__.pop(name, None)

    def __enter__(self) -> "Ring":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.path or "buffer"
        return (f"Ring({where}, nslots={self.nslots}, next_seq={self.next_seq}, lost={self.lost}, "
                f"{'double-mapped' if self.doubled else 'single-mapped'})")


# ---------------------------------------------------------------- the software writer

def _writer_knobs(nslots: int, interval: int | None, chunk: int | None) -> tuple[int, int]:
    """Validated (interval, chunk), each 1..nslots/2.

    The head can only be published between chunks, so by default the chunk is
    8192 ticks (512 KiB: it stays in L2 across its three passes) or ``interval``
    if that is smaller, and the interval is the chunk.
    """
    for name, v in (("interval", interval), ("chunk", chunk)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                              or not 1 <= v <= nslots // 2):
            raise RingError(f"{name} must be 1..nslots/2 ({nslots // 2}), got {v!r}")
    if chunk is None:
        chunk = min(8192, nslots // 2, interval or 8192)
    if interval is None:
        interval = chunk
    return int(interval), int(chunk)


class RingWriter:
    """The one writer of a ring: numpy slice copies following docs/ring.md.

    Each chunk of ticks (smaller than the ring, split at its end) is written in
    three passes: the word holding ``flags`` with the lap tag stamped in, then
    the rest of the body, then ``seq``.  So a slot's lap tag changes before any
    other byte of it (a reader that is being lapped sees the new tag, see
    :meth:`Ring.recheck`), and its seq changes last (a reader that sees the
    new seq sees the whole tick).  The shadow head is published after every
    ``interval`` ticks and at the end of every write call.

    Parameters
    ----------
    target : a ring name, path or writable buffer holding an initialised ring.
    interval : publish the shadow head once ``interval`` ticks have passed since the last
        time, checked after every chunk (1..nslots/2; default: the chunk).
    chunk : most ticks per pass (1..nslots/2; default 8192, nslots/2 or ``interval``,
        whichever is least): 512 KiB stays in L2 across the three passes.
    """

    def __init__(self, target, *, interval: int | None = None, chunk: int | None = None, prefault: bool = True):
        self._m = _map_ring(target, writable=True, double_map=False, prefault=prefault)
        m = self._m
        self.nslots = m.header.nslots
        self.path = m.path
        if m.fd is not None:
            try:   # one writer per ring: a second one would corrupt it
                fcntl.flock(m.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._release()
                raise RingError(f"ring {m.path} already has a writer (another RingWriter holds its lock)") from None
        try:
            self.interval, self.chunk = _writer_knobs(self.nslots, interval, chunk)
        except RingError:
            self._release()
            raise
        self._mask = self.nslots - 1
        self._shift = self.nslots.bit_length() - 1
        self._ctl = m.control
        self._w = m.slots.cast("Q")
        self._b = m.slots
        words = np.frombuffer(m.slots, np.uint64).reshape(self.nslots, 8)
        self._seqcol = words[:, 0]
        self._w7col = words[:, 7]
        self._body = np.ndarray((self.nslots,), "V48", m.slots, 8, (SLOT_SIZE,))   # bytes 8..55
        self._tmp = np.empty(self.chunk, np.uint64)
        self._arange = np.arange(self.chunk, dtype=np.uint64)
        self.next_seq: int = self._ctl[_W_HEAD] + 1          # continue a ring written before
        self._published = self.next_seq - 1
        self._ctl[_W_STATE] = STATE_RUNNING

    @classmethod
    def create(cls, target: str | os.PathLike, nslots: int, *, overwrite: bool = False, force: bool = False,
               interval: int | None = None, chunk: int | None = None) -> "RingWriter":
        """Create a ring file (see :func:`create_ring`) and attach a writer to it.

        Every parameter is checked before the file is created.
        """
        nslots = check_nslots(nslots)
        interval, chunk = _writer_knobs(nslots, interval, chunk)
        path = create_ring(target, nslots, overwrite=overwrite, force=force)
        try:
            return cls(path, interval=interval, chunk=chunk)
        except BaseException:
            path.unlink(missing_ok=True)          # the ring just made: nobody else can have it yet
            raise

    # -------------------------------------------------------------- writing

    def _src(self, ticks: np.ndarray) -> np.ndarray:
        if not isinstance(ticks, np.ndarray) or ticks.dtype != TICK_DTYPE or ticks.ndim != 1:
            raise ValueError(f"ticks must be a 1-D array of the tick dtype, got "
                             f"{getattr(ticks, 'dtype', type(ticks).__name__)}")
        return np.ascontiguousarray(ticks).view(np.uint64).reshape(len(ticks), 8)

    def write(self, ticks: np.ndarray, *, renumber: bool = False) -> int:
        """Write ticks at full speed; returns the seq of the last one.

        The ticks' ``seq`` must continue the ring (``next_seq``, +1 each);
        with ``renumber`` the writer numbers them itself and ignores theirs.
        Their lap-tag bits are replaced by the ring's.
        """
        src = self._src(ticks)
        n = len(src)
        s0 = self.next_seq
        if not n:
            return s0 - 1
        if not renumber and (int(src[0, 0]) != s0 or int(src[-1, 0]) != s0 + n - 1):
            raise ValueError(f"ticks must continue the ring: expected seq {s0}..{s0 + n - 1}, got "
                             f"{int(src[0, 0])}..{int(src[-1, 0])} (renumber=True numbers them)")
        body_src = np.ndarray((n,), "V48", src, 8, (SLOT_SIZE,))
        i = 0
        while i < n:
            s = s0 + i
            slot = (s - 1) & self._mask
            k = min(n - i, self.chunk, self.nslots - slot)
            lap = np.uint64((((s - 1) >> self._shift) & LAP_MASK) << _W7_TAG_SHIFT)
            tmp = self._tmp[:k]
            # pass 1: flags word with the lap tag, written once with its final value
            np.bitwise_and(src[i:i + k, 7], _W7_KEEP, out=tmp)
            np.bitwise_or(tmp, lap, out=self._w7col[slot:slot + k])
            # pass 2: the rest of the body
            self._body[slot:slot + k] = body_src[i:i + k]
            # pass 3: seq, last
            if renumber:
                np.add(self._arange[:k], np.uint64(s), out=self._seqcol[slot:slot + k])
            else:
                self._seqcol[slot:slot + k] = src[i:i + k, 0]
            i += k
            if s + k - 1 - self._published >= self.interval:
                self._ctl[_W_HEAD] = self._published = s + k - 1
        self.next_seq = s0 + n
        self._ctl[_W_HEAD] = self._published = s0 + n - 1
        return s0 + n - 1

    def write_one(self, tick, *, renumber: bool = False, stamp_ts: bool = False) -> int:
        """Write one tick (64 bytes: a record, bytes, ...) with scalar stores: the low-latency path.

        With ``stamp_ts``, ``ts_rx`` is set to ``time.monotonic_ns()`` just
        before the tick is published (a live software feed's receive time).
        Returns its seq.
        """
        b = memoryview(tick).cast("B") if not isinstance(tick, bytes) else tick
        if len(b) != SLOT_SIZE:
            raise ValueError(f"a tick is {SLOT_SIZE} bytes, got {len(b)}")
        s = self.next_seq
        if not renumber and int.from_bytes(b[0:8], "little") != s:
            raise ValueError(f"tick must continue the ring: expected seq {s}, got {int.from_bytes(b[0:8], 'little')}")
        slot = (s - 1) & self._mask
        w = slot << 3
        o = slot * SLOT_SIZE
        W = self._w
        W[w + 7] = (int.from_bytes(b[56:64], "little") & ~(LAP_MASK << _W7_TAG_SHIFT)) \
            | ((((s - 1) >> self._shift) & LAP_MASK) << _W7_TAG_SHIFT)
        if stamp_ts:
            self._b[o + 16:o + 56] = b[16:56]
            W[w + 1] = time.monotonic_ns()
        else:
            self._b[o + 8:o + 56] = b[8:56]
        W[w] = s
        self.next_seq = s + 1
        if s - self._published >= self.interval:
            self._ctl[_W_HEAD] = self._published = s
        return s

    def write_paced(self, ticks: np.ndarray, due_ns: np.ndarray, *, renumber: bool = False,
                    should_stop: Callable[[], bool] | None = None) -> int:
        """Write each tick no earlier than its ``due_ns`` (``time.monotonic_ns()`` scale).

        Ticks already due are written together (vectorized); the head is
        published whenever the writer goes idle.  Sleeps when the next tick is
        more than ~200 us away (50 ms at most at a time, so a stop request is
        seen soon), spins otherwise.  Returns how many ticks were
        written (fewer if ``should_stop()`` turned true).
        """
        due = np.asarray(due_ns, np.int64)
        if len(due) != len(ticks):
            raise ValueError(f"due_ns has {len(due)} entries for {len(ticks)} ticks")
        n, i = len(ticks), 0
        while i < n:
            if should_stop is not None and should_stop():
                break
            now = time.monotonic_ns()
            k = int(np.searchsorted(due, now, "right"))
            if k > i:
                self.write(ticks[i:k], renumber=renumber)
                i = k
                continue
            gap = int(due[i]) - now
            if gap > 200_000:
                time.sleep(min(gap - 100_000, 50_000_000) / 1e9)    # naps: should_stop is seen within 50 ms
        return i

    def publish(self) -> None:
        """Mirror the shadow head now (the writer is idle)."""
        self._ctl[_W_HEAD] = self._published = self.next_seq - 1

    def add_dropped(self, n: int) -> None:
        """Count ``n`` ticks the writer had to drop (reported at offset 136)."""
        self._ctl[_W_DROPPED] = self._ctl[_W_DROPPED] + int(n)

    def stop(self) -> None:
        """Publish the head and mark the writer stopped (readers then finish)."""
        self.publish()
        self._ctl[_W_STATE] = STATE_STOPPED

    def _release(self) -> None:
        m = self.__dict__.pop("_m", None)
        for name in ("_w", "_b", "_seqcol", "_w7col", "_body", "_ctl"):
            self.__dict__.pop(name, None)
        if m is not None and m.fd is not None:
            os.close(m.fd)          # also drops the writer lock

    def close(self) -> None:
        """Stop (see :meth:`stop`) and unmap."""
        if "_m" in self.__dict__:
            self.stop()
        self._release()

    def __enter__(self) -> "RingWriter":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RingWriter({self.path or 'buffer'}, nslots={self.nslots}, next_seq={self.next_seq})"
