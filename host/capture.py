"""Capture files: read classic pcap and pcapng (Ethernet), write pcap and pcapng.

The one pcap writer: :func:`write_pcap` writes a batch; the generator (:mod:`.gen`),
which writes captures piece by piece, uses the same header, record headers and
atomic output (:func:`pcap_header`, :func:`pcap_records`, :func:`atomic_output`).

Frames are handed out in batches that point into the memory-mapped file, so a
multi-GB capture is never loaded whole and no frame byte is copied.

Walking a capture is serial (each record's position depends on the lengths
before it), so the walks are small numba kernels over the mapped bytes; Python
only handles what is rare (file and section headers, interface descriptions)
and turns the kernels' error codes into one-line messages.
"""

from __future__ import annotations

import contextlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numba
import numpy as np

__all__ = ["FrameBatch", "CaptureError", "Capture", "open_capture", "read_frames",
           "write_pcap", "write_pcapng", "pcap_header", "pcap_records", "atomic_output", "PCAP_RECORD", "MAX_RECORD"]

#: Largest captured length a record may declare.  libpcap and Wireshark refuse
#: records above 256 KiB, so a larger value means a corrupt header, not a frame.
MAX_RECORD = 262144


class CaptureError(ValueError):
    """A capture file that cannot be read: names the file and the byte offset."""

    def __init__(self, path: str | os.PathLike, offset: int, reason: str):
        self.path = str(path)
        self.offset = offset
        self.reason = reason
        super().__init__(f"{self.path}: byte {offset}: {reason}")


@dataclass(frozen=True)
class FrameBatch:
    """A batch of Ethernet frames, zero-copy views into one buffer.

    Frame ``i`` is ``buf[offset[i] : offset[i] + length[i]]`` (the captured bytes),
    received at ``ts_ns[i]`` (ns since the epoch); ``bad[i]`` is true when the
    capture marks the frame as received with a bad FCS (pcapng ``epb_flags`` bit 24).
    """

    buf: np.ndarray      # uint8
    offset: np.ndarray   # int64
    length: np.ndarray   # int64, captured length
    ts_ns: np.ndarray    # uint64
    bad: np.ndarray      # bool

    def __len__(self) -> int:
        return len(self.offset)

    def frame(self, i: int) -> bytes:
        o = int(self.offset[i])
        return self.buf[o:o + int(self.length[i])].tobytes()

    @classmethod
    def from_frames(cls, frames: list[bytes], ts_ns=None, bad=None) -> "FrameBatch":
        """A batch built from frames in memory (tests, hypothesis, generators)."""
        lengths = np.array([len(f) for f in frames], dtype=np.int64)
        offsets = np.zeros(len(frames), dtype=np.int64)
        if len(frames):
            offsets[1:] = np.cumsum(lengths)[:-1]
        buf = np.frombuffer(b"".join(frames), dtype=np.uint8) if frames else np.zeros(0, np.uint8)
        ts = np.zeros(len(frames), np.uint64) if ts_ns is None else np.asarray(ts_ns, np.uint64)
        b = np.zeros(len(frames), bool) if bad is None else np.asarray(bad, bool)
        return cls(buf, offsets, lengths, ts, b)


# --------------------------------------------------------------------------- reading

_PCAP_MAGICS = {  # first four bytes -> (big endian, ns per fractional tick)
    b"\xd4\xc3\xb2\xa1": (False, 1000), b"\xa1\xb2\xc3\xd4": (True, 1000),
    b"\x4d\x3c\xb2\xa1": (False, 1), b"\xa1\xb2\x3c\x4d": (True, 1),
}
_PCAPNG_SHB = 0x0A0D0D0A   # reads the same in both byte orders, so it can open a section
_PCAPNG_IDB = 1
_PCAPNG_OPB = 2            # obsolete Packet Block: still written by old tools
_PCAPNG_SPB = 3
_PCAPNG_EPB = 6
_PCAPNG_BOM = 0x1A2B3C4D
_LINKTYPE_ETHERNET = 1
_LINKTYPE_NAMES = {0: "BSD loopback", 101: "raw IP", 105: "IEEE 802.11", 113: "Linux cooked (SLL)",
                   127: "802.11 radiotap", 228: "raw IPv4", 276: "Linux cooked v2 (SLL2)"}
_OTHER_MAGICS = {  # formats people hand us by mistake, with what to do about it
    b"\xa1\xb2\xcd\x34": "a Kuznetsov 'modified' pcap; convert it with `editcap -F pcap`",
    b"\x34\xcd\xb2\xa1": "a Kuznetsov 'modified' pcap; convert it with `editcap -F pcap`",
    b"\x1f\x8b\x08\x00": "gzip-compressed; decompress it first (gunzip)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed; decompress it first (zstd -d)",
}

# Kernel results besides "ok": each maps to one message in _walk_error.
_OK, _STOP, _E_SHORT_HDR, _E_TRUNC, _E_TOO_LONG, _E_BLOCK_LEN, _E_TRAILER, _E_CAPLEN, \
    _E_NO_IFACE, _E_LINK, _E_OPTION, _E_BLOCK_SHORT = range(12)


@numba.njit(cache=True, inline="always")
def _u16(b, p, be):
    if be:
        return (np.int64(b[p]) << 8) | np.int64(b[p + 1])
    return np.int64(b[p]) | (np.int64(b[p + 1]) << 8)


@numba.njit(cache=True, inline="always")
def _u32(b, p, be):
    if be:
        return ((np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16)
                | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3]))
    return (np.int64(b[p]) | (np.int64(b[p + 1]) << 8)
            | (np.int64(b[p + 2]) << 16) | (np.int64(b[p + 3]) << 24))


@numba.njit(cache=True)
def _walk_pcap(b, pos, end, be, frac_ns, offset, length, ts_ns):
    """Index classic pcap records from ``pos`` until the arrays are full or the file ends.

    Returns ``(frames, next_pos, status, value)``; on an error ``next_pos`` is the
    start of the offending record and ``value`` its declared captured length.
    """
    n = offset.shape[0]
    i = 0
    while i < n and pos < end:
        if end - pos < 16:
            return i, pos, _E_SHORT_HDR, 0
        incl = _u32(b, pos + 8, be)
        if incl > MAX_RECORD:
            return i, pos, _E_TOO_LONG, incl
        if incl > end - pos - 16:
            return i, pos, _E_TRUNC, incl
        sec = np.uint64(_u32(b, pos, be))
        frac = np.uint64(_u32(b, pos + 4, be))
        offset[i] = pos + 16
        length[i] = incl
        ts_ns[i] = sec * np.uint64(1_000_000_000) + frac * np.uint64(frac_ns)
        pos += 16 + incl
        i += 1
    return i, pos, _OK, 0


@numba.njit(cache=True, inline="always")
def _ts_ns(ts, shift, mul, div, off):
    if shift > 0:
        # Binary resolution: split whole seconds from the fraction so the
        # fraction times 1e9 stays inside 64 bits.
        whole = ts >> np.uint64(shift)
        frac = ts & ((np.uint64(1) << np.uint64(shift)) - np.uint64(1))
        if shift > 34:
            frac >>= np.uint64(shift - 34)
            shift = 34
        ns = whole * np.uint64(1_000_000_000) + ((frac * np.uint64(1_000_000_000)) >> np.uint64(shift))
    else:
        ns = ts * mul // div
    return ns + off  # wraps modulo 2^64, which is how a negative if_tsoffset is stored


@numba.njit(cache=True)
def _walk_pcapng(b, pos, end, be, if_link, if_shift, if_mul, if_div, if_off,
                 offset, length, ts_ns, bad, i):
    """Index pcapng packet blocks of one section into the arrays from slot ``i``.

    Stops with ``_STOP`` at a Section Header or Interface Description Block,
    which Python handles.  Returns ``(frames, next_pos, status, value)``; on an
    error ``next_pos`` is the start of the offending block.
    """
    n = offset.shape[0]
    n_if = if_link.shape[0]
    while i < n and pos < end:
        if end - pos < 12:
            return i, pos, _E_SHORT_HDR, 0
        btype = _u32(b, pos, be)
        if btype == _PCAPNG_SHB or btype == _PCAPNG_IDB:
            return i, pos, _STOP, 0
        blen = _u32(b, pos + 4, be)
        if blen < 12 or blen % 4 != 0:
            return i, pos, _E_BLOCK_LEN, blen
        if blen > end - pos:
            return i, pos, _E_TRUNC, blen
        trailer = _u32(b, pos + blen - 4, be)
        if trailer != blen:
            return i, pos, _E_TRAILER, trailer
        body = pos + 8
        body_end = pos + blen - 4
        if btype == _PCAPNG_EPB or btype == _PCAPNG_OPB:
            if blen < 32:
                return i, pos, _E_BLOCK_SHORT, blen
            iface = _u32(b, body, be) if btype == _PCAPNG_EPB else _u16(b, body, be)
            if iface >= n_if:
                return i, pos, _E_NO_IFACE, iface
            if if_link[iface] != _LINKTYPE_ETHERNET:
                return i, pos, _E_LINK, iface
            cap = _u32(b, body + 12, be)
            data = body + 20
            if cap > body_end - data:
                return i, pos, _E_CAPLEN, cap
            flags = 0
            q = data + cap + (-cap) % 4
            while q + 4 <= body_end:
                code = _u16(b, q, be)
                olen = _u16(b, q + 2, be)
                if code == 0:
                    break
                if q + 4 + olen > body_end:
                    return i, pos, _E_OPTION, q
                if code == 2 and olen == 4:  # epb_flags / pack_flags
                    flags = _u32(b, q + 4, be)
                q += 4 + olen + (-olen) % 4
            ts = (np.uint64(_u32(b, body + 4, be)) << np.uint64(32)) | np.uint64(_u32(b, body + 8, be))
            offset[i] = data
            length[i] = cap
            ts_ns[i] = _ts_ns(ts, if_shift[iface], if_mul[iface], if_div[iface], if_off[iface])
            bad[i] = (flags >> 24) & 1 == 1  # link-layer "CRC error"
            i += 1
        elif btype == _PCAPNG_SPB:
            if blen < 16:
                return i, pos, _E_BLOCK_SHORT, blen
            if n_if == 0:
                return i, pos, _E_NO_IFACE, 0
            if if_link[0] != _LINKTYPE_ETHERNET:
                return i, pos, _E_LINK, 0
            # An SPB does not store its captured length: it is whatever of the
            # original length fits in the block.
            orig = _u32(b, body, be)
            cap = min(orig, body_end - body - 4)
            offset[i] = body + 4
            length[i] = cap
            ts_ns[i] = 0
            bad[i] = False
            i += 1
        pos += blen
    return i, pos, _OK, 0


def _magic_hex(b: bytes) -> str:
    return " ".join(f"{x:02x}" for x in b)


def _linktype_text(lt: int) -> str:
    name = _LINKTYPE_NAMES.get(lt)
    return f"{lt} ({name})" if name else str(lt)


@dataclass
class _Interface:
    at: int          # byte offset of its IDB, for messages
    linktype: int
    shift: int       # binary resolution: 2^-shift s; 0 for decimal
    mul: int         # decimal resolution: ns = ts * mul // div
    div: int
    off: int         # if_tsoffset in ns, modulo 2^64


class Capture:
    """An open capture file (memory-mapped; nothing is loaded whole).

    Parameters
    ----------
    path : a classic pcap (µs or ns, either byte order) or pcapng file whose
        packets are Ethernet frames.
    batch_frames : most frames per batch handed out by iteration; bounds the
        index memory (25 bytes a frame) whatever the file size.

    Attributes
    ----------
    path : the file name.
    format : ``"pcap"`` or ``"pcapng"``.
    linktype : the file header's link type (pcap) or the first interface's
        (pcapng; -1 when no interface precedes the first packet).

    Raises
    ------
    CaptureError
        At once if the file is empty, not a pcap/pcapng file, or its header is
        bad; while iterating if a record or block is truncated or corrupt, or a
        packet's interface is not Ethernet.

    Notes
    -----
    Each batch's ``buf`` is a read-only view of the whole mapped file and its
    offsets are file offsets, so a batch stays valid after :meth:`close`.  When
    a record is bad, the frames before it are still handed out first.
    """

    path: str
    format: str
    linktype: int

    def __init__(self, path: str | os.PathLike, *, batch_frames: int = 1 << 16):
        if batch_frames < 1:
            raise ValueError(f"batch_frames must be at least 1, not {batch_frames}")
        self.path = str(path)
        self.batch_frames = int(batch_frames)
        size = os.path.getsize(self.path)
        if size == 0:
            raise CaptureError(self.path, 0, "empty file (0 bytes): not a pcap or pcapng capture")
        if size < 4:
            raise CaptureError(self.path, 0, f"file is only {size} bytes, too short for a pcap or pcapng header")
        # np.memmap refuses empty files, hence the checks above; mode "r" maps read-only.
        self._buf: np.ndarray | None = np.memmap(self.path, dtype=np.uint8, mode="r").view(np.ndarray)
        self._size = size
        magic = self._buf[:4].tobytes()
        if magic in _PCAP_MAGICS:
            self.format = "pcap"
            self._be, self._frac_ns = _PCAP_MAGICS[magic]
            self._start = 24
            self.linktype = self._pcap_header()
        elif magic == struct.pack("<I", _PCAPNG_SHB):
            self.format = "pcapng"
            self.linktype = self._pcapng_first_linktype()
        else:
            what = _OTHER_MAGICS.get(magic)
            reason = (f"file is {what}" if what else
                      f"not a pcap or pcapng file: starts with {_magic_hex(magic)}, expected a pcap magic "
                      f"(a1b2c3d4 or a1b23c4d, in either byte order) or pcapng's 0a 0d 0d 0a")
            raise CaptureError(self.path, 0, reason)

    # ---- headers (Python: once per file or section)

    def _err(self, offset: int, reason: str) -> CaptureError:
        return CaptureError(self.path, offset, reason)

    def _pcap_header(self) -> int:
        if self._size < 24:
            raise self._err(0, f"pcap file header is 24 bytes but the file ends at {self._size} (truncated file)")
        e = ">" if self._be else "<"
        major, minor, _zone, _sigfigs, _snaplen, network = struct.unpack_from(e + "HHiIII", self._buf, 4)
        if major != 2:
            raise self._err(0, f"pcap version {major}.{minor} is not supported (only 2.x)")
        # The top bits of the field may carry FCS information; the link type is the low 16.
        lt = network & 0xFFFF
        if lt != _LINKTYPE_ETHERNET:
            raise self._err(0, f"file header declares link type {_linktype_text(lt)}; "
                               f"only Ethernet (1) is supported: capture on an Ethernet interface")
        return lt

    def _block_len(self, pos: int, be: bool, what: str, minimum: int) -> int:
        """Validate the framing of the block at ``pos``; return its total length."""
        e = ">" if be else "<"
        (blen,) = struct.unpack_from(e + "I", self._buf, pos + 4)
        if blen < minimum or blen % 4:
            raise self._err(pos, f"{what} declares length {blen}, not a multiple of 4 of at least "
                                 f"{minimum} (corrupt file)")
        if blen > self._size - pos:
            raise self._err(pos, f"{what} at byte {pos} declares {blen} bytes, up to byte {pos + blen}, "
                                 f"but the file ends at {self._size} (truncated capture)")
        (trailer,) = struct.unpack_from(e + "I", self._buf, pos + blen - 4)
        if trailer != blen:
            raise self._err(pos, f"{what} ends with length {trailer} but starts with {blen} (corrupt file)")
        return blen

    def _section(self, pos: int) -> tuple[bool, int]:
        """Parse the Section Header Block at ``pos``; return (big endian, next position)."""
        if self._size - pos < 28:
            raise self._err(pos, f"pcapng section header needs 28 bytes but the file ends at {self._size} "
                                 f"(truncated capture)")
        bom = self._buf[pos + 8:pos + 12].tobytes()
        if bom == struct.pack(">I", _PCAPNG_BOM):
            be = True
        elif bom == struct.pack("<I", _PCAPNG_BOM):
            be = False
        else:
            raise self._err(pos, f"pcapng section header has byte-order magic {_magic_hex(bom)}, "
                                 f"expected 1a 2b 3c 4d either way round (corrupt file)")
        blen = self._block_len(pos, be, "section header block", 28)
        major, minor = struct.unpack_from((">" if be else "<") + "HH", self._buf, pos + 12)
        if major != 1:
            raise self._err(pos, f"pcapng version {major}.{minor} is not supported (only 1.x)")
        return be, pos + blen

    def _interface(self, pos: int, be: bool) -> tuple[_Interface, int]:
        """Parse the Interface Description Block at ``pos``; return it and the next position."""
        blen = self._block_len(pos, be, "interface description block", 20)
        e = ">" if be else "<"
        (linktype,) = struct.unpack_from(e + "H", self._buf, pos + 8)
        resol, tsoffset = 6, 0  # no if_tsresol means microseconds
        q, end = pos + 16, pos + blen - 4
        while q + 4 <= end:
            code, olen = struct.unpack_from(e + "HH", self._buf, q)
            if code == 0:
                break
            if q + 4 + olen > end:
                raise self._err(pos, f"interface description block: option {code} at byte {q} "
                                     f"declares {olen} bytes, past the end of the block (corrupt file)")
            if code == 9 and olen >= 1:
                resol = int(self._buf[q + 4])
            elif code == 14 and olen == 8:
                (tsoffset,) = struct.unpack_from(e + "q", self._buf, q + 4)
            q += 4 + olen + (-olen) % 4
        off = (tsoffset * 1_000_000_000) % (1 << 64)
        if resol & 0x80:
            shift = resol & 0x7F
            if shift > 63:
                raise self._err(pos, f"interface description block: if_tsresol 2^-{shift} s is finer "
                                     f"than a 64-bit timestamp can count (corrupt file)")
            if shift == 0:  # whole seconds
                return _Interface(pos, linktype, 0, 1_000_000_000, 1, off), pos + blen
            return _Interface(pos, linktype, shift, 1, 1, off), pos + blen
        if resol > 18:
            raise self._err(pos, f"interface description block: if_tsresol 10^-{resol} s is finer "
                                 f"than a 64-bit timestamp can count (corrupt file)")
        mul, div = (10 ** (9 - resol), 1) if resol <= 9 else (1, 10 ** (resol - 9))
        return _Interface(pos, linktype, 0, mul, div, off), pos + blen

    def _pcapng_first_linktype(self) -> int:
        be, pos = self._section(0)
        if self._size - pos >= 12:
            (btype,) = struct.unpack_from((">" if be else "<") + "I", self._buf, pos)
            if btype == _PCAPNG_IDB:
                return self._interface(pos, be)[0].linktype
        return -1

    # ---- iteration

    def _arrays(self, remaining: int) -> tuple[np.ndarray, ...]:
        # The smallest record is 16 bytes, so a small file never gets a full-size batch.
        n = min(self.batch_frames, remaining // 16 + 1)
        return (np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint64), np.zeros(n, bool))

    def _live_buf(self) -> np.ndarray:
        if self._buf is None:
            raise ValueError(f"capture {self.path} is closed")
        return self._buf

    def __iter__(self) -> Iterator[FrameBatch]:
        """Batches of up to ``batch_frames`` frames, in file order."""
        buf = self._live_buf()
        return self._iter_pcap(buf) if self.format == "pcap" else self._iter_pcapng(buf)

    def iter_from(self, record: int) -> Iterator[FrameBatch]:
        """Classic pcap only: batches from the record whose header is at byte ``record``.

        ``record`` must be a record header's offset (a frame's ``offset - 16``, as an
        earlier iteration saw it): a worker replaying part of a file starts there
        instead of walking the index from the start.
        """
        if self.format != "pcap":
            raise ValueError(f"{self.path}: iter_from needs a classic pcap file, not {self.format}")
        if not self._start <= record <= self._size:
            raise self._err(record, f"no record can start at byte {record}")
        return self._iter_pcap(self._live_buf(), record)

    def _iter_pcap(self, buf: np.ndarray, start: int | None = None) -> Iterator[FrameBatch]:
        pos, end = self._start if start is None else start, self._size
        while pos < end:
            self._live_buf()
            offset, length, ts, bad = self._arrays(end - pos)
            n, pos, status, value = _walk_pcap(buf, pos, end, self._be, self._frac_ns, offset, length, ts)
            if n:
                yield FrameBatch(buf, offset[:n], length[:n], ts[:n], bad[:n])
            if status != _OK:
                raise self._walk_error(status, pos, value, "record header", None)

    def _iter_pcapng(self, buf: np.ndarray) -> Iterator[FrameBatch]:
        be, pos = self._section(0)
        end = self._size
        ifaces: list[_Interface] = []
        tables = self._tables(ifaces)
        while pos < end:
            self._live_buf()
            offset, length, ts, bad = self._arrays(end - pos)
            n, error = 0, None
            while n < len(offset) and pos < end:
                n, pos, status, value = _walk_pcapng(buf, pos, end, be, *tables, offset, length, ts, bad, n)
                if status == _STOP:
                    # Only SHB and IDB stop the kernel, and both are rare.
                    (btype,) = struct.unpack_from((">" if be else "<") + "I", buf, pos)
                    try:
                        if btype == _PCAPNG_SHB:
                            be, pos = self._section(pos)
                            ifaces = []
                        else:
                            iface, pos = self._interface(pos, be)
                            ifaces.append(iface)
                    except CaptureError as e:
                        error = e
                        break
                    tables = self._tables(ifaces)
                elif status != _OK:
                    error = self._walk_error(status, pos, value, "block", ifaces)
                    break
            if n:
                yield FrameBatch(buf, offset[:n], length[:n], ts[:n], bad[:n])
            if error is not None:
                raise error

    @staticmethod
    def _tables(ifaces: list[_Interface]) -> tuple[np.ndarray, ...]:
        return (np.array([f.linktype for f in ifaces], np.int64),
                np.array([f.shift for f in ifaces], np.int64),
                np.array([f.mul for f in ifaces], np.uint64),
                np.array([f.div for f in ifaces], np.uint64),
                np.array([f.off for f in ifaces], np.uint64))

    def _walk_error(self, status: int, pos: int, value: int, what: str,
                    ifaces: list[_Interface] | None) -> CaptureError:
        end = self._size
        need = 16 if what == "record header" else 12
        if status == _E_SHORT_HDR:
            return self._err(pos, f"{what} at byte {pos} needs {need} bytes but the file ends at {end} "
                                  f"(truncated capture)")
        if status == _E_TRUNC:
            if what == "record header":
                return self._err(pos, f"record header at byte {pos} declares {value} captured bytes, up to "
                                      f"byte {pos + 16 + value}, but the file ends at {end} (truncated capture)")
            return self._err(pos, f"block at byte {pos} declares {value} bytes, up to byte {pos + value}, "
                                  f"but the file ends at {end} (truncated capture)")
        if status == _E_TOO_LONG:
            return self._err(pos, f"{what} at byte {pos} declares {value} captured bytes, more than the "
                                  f"{MAX_RECORD} a pcap record may hold (corrupt file)")
        if status == _E_BLOCK_LEN:
            return self._err(pos, f"block at byte {pos} declares length {value}, not a multiple of 4 of "
                                  f"at least 12 (corrupt file)")
        if status == _E_TRAILER:
            return self._err(pos, f"block at byte {pos} ends with length {value}, not the length it "
                                  f"starts with (corrupt file)")
        if status == _E_BLOCK_SHORT:
            return self._err(pos, f"packet block at byte {pos} is only {value} bytes, too short for its "
                                  f"fixed fields (corrupt file)")
        if status == _E_CAPLEN:
            return self._err(pos, f"packet block at byte {pos} declares {value} captured bytes, more than "
                                  f"the block holds (corrupt file)")
        if status == _E_OPTION:
            return self._err(pos, f"packet block at byte {pos}: option at byte {value} runs past the end "
                                  f"of the block (corrupt file)")
        assert ifaces is not None
        if status == _E_NO_IFACE:
            return self._err(pos, f"packet block at byte {pos} refers to interface {value} but its section "
                                  f"describes only {len(ifaces)} (missing interface description block)")
        if status == _E_LINK:
            f = ifaces[value]
            return self._err(f.at, f"interface {value} (described at byte {f.at}, used by the packet at "
                                   f"byte {pos}) has link type {_linktype_text(f.linktype)}; only "
                                   f"Ethernet (1) is supported")
        raise AssertionError(f"unknown walk status {status}")

    # ---- lifetime

    def close(self) -> None:
        """Release the mapping (it is unmapped once no batch refers to it)."""
        # Unmapping under live batches would leave them pointing at nothing, so
        # only our reference is dropped and the OS unmaps after the last batch.
        self._buf = None

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._buf is None else f"{self._size} bytes"
        return f"Capture({self.path!r}, format={self.format!r}, linktype={self.linktype}, {state})"


def open_capture(path: str | os.PathLike, *, batch_frames: int = 1 << 16) -> Capture:
    """Open a pcap or pcapng capture of Ethernet frames for batch iteration.

    Parameters
    ----------
    path : the capture file.
    batch_frames : most frames per batch.

    Returns
    -------
    Capture
        Iterate it for :class:`FrameBatch` objects; use it as a context manager.
    """
    return Capture(path, batch_frames=batch_frames)


def read_frames(path: str | os.PathLike) -> FrameBatch:
    """Every frame of a capture in one batch (for small files and tests).

    Raises
    ------
    CaptureError
        If any part of the file is bad (no partial result is returned).
    """
    with open_capture(path) as cap:
        buf = cap._live_buf()
        batches = list(cap)
    if len(batches) == 1:
        return batches[0]
    if not batches:
        return FrameBatch(buf, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint64),
                          np.zeros(0, bool))
    return FrameBatch(buf, *(np.concatenate([getattr(b, k) for b in batches])
                             for k in ("offset", "length", "ts_ns", "bad")))


# --------------------------------------------------------------------------- writing

#: Bytes of a classic pcap record header (seconds, fraction, captured and wire length).
PCAP_RECORD = 16


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file written as ``<path>.partial``, renamed to ``path`` once the block
    completes and removed if it fails: a capture appears under its name whole or not at all."""
    tmp = Path(str(path) + ".partial")
    try:
        with open(tmp, "wb") as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def pcap_header(*, nanosecond: bool = True, snaplen: int = 65535) -> bytes:
    """The global header of a classic little-endian pcap file, v2.4, link type Ethernet."""
    return struct.pack("<IHHiIII", 0xA1B23C4D if nanosecond else 0xA1B2C3D4, 2, 4, 0, 0, snaplen,
                       _LINKTYPE_ETHERNET)


def pcap_records(ts_ns: np.ndarray, length: np.ndarray, *, nanosecond: bool = True) -> np.ndarray:
    """The record headers of frames captured at ``ts_ns`` (ns) with ``length`` bytes, one
    16-byte row each (uint8); with ``nanosecond=False`` timestamps are truncated to microseconds."""
    ts = np.asarray(ts_ns).astype(np.uint64)
    # pcap seconds are 32 bits: fail rather than silently wrap to 1970.
    if len(ts) and int(ts.max()) >= (1 << 32) * 1_000_000_000:
        raise ValueError(f"timestamp {int(ts.max())} ns is beyond what a pcap file can hold (2106)")
    div = np.uint64(1_000_000_000)
    frac = (ts % div) if nanosecond else (ts % div) // np.uint64(1000)
    rec = np.empty(len(ts), dtype=[("sec", "<u4"), ("frac", "<u4"), ("incl", "<u4"), ("orig", "<u4")])
    rec["sec"], rec["frac"] = (ts // div).astype(np.uint32), frac.astype(np.uint32)
    rec["incl"] = rec["orig"] = np.asarray(length).astype(np.uint32)
    return rec.view(np.uint8).reshape(len(ts), PCAP_RECORD)


def write_pcap(path: str | os.PathLike, batch: FrameBatch, *, nanosecond: bool = True,
               snaplen: int = 65535) -> None:
    """Write ``batch`` as a classic little-endian pcap (link type Ethernet).

    The file appears under its name only once complete.  With
    ``nanosecond=False`` timestamps are truncated to microseconds.
    """
    n = len(batch)
    header = pcap_header(nanosecond=nanosecond, snaplen=snaplen)
    length = batch.length.astype(np.int64)
    records = pcap_records(batch.ts_ns, length, nanosecond=nanosecond)
    # 16-byte record headers interleaved with frame bytes in one output buffer.
    out = np.empty(len(header) + PCAP_RECORD * n + int(length.sum()), dtype=np.uint8)
    out[:len(header)] = np.frombuffer(header, np.uint8)
    starts = len(header) + PCAP_RECORD * np.arange(n, dtype=np.int64)
    if n:
        starts[1:] += np.cumsum(length)[:-1]
    _scatter_rows(out, starts, records)
    _scatter_frames(out, starts + PCAP_RECORD, batch.buf, batch.offset.astype(np.int64), length)
    with atomic_output(path) as fh:
        out.tofile(fh)


@numba.njit(cache=True)
def _scatter_rows(out, dst, rows):
    # A loop rather than fancy indexing: no index array as large as the output.
    for i in range(rows.shape[0]):
        out[dst[i]:dst[i] + rows.shape[1]] = rows[i]


@numba.njit(cache=True)
def _scatter_frames(out, dst, buf, offset, length):
    for i in range(offset.shape[0]):
        out[dst[i]:dst[i] + length[i]] = buf[offset[i]:offset[i] + length[i]]


def write_pcapng(path: str | os.PathLike, batch: FrameBatch) -> None:
    """Write ``batch`` as pcapng (one section, one Ethernet interface, ns timestamps).

    Frames with ``bad`` set carry ``epb_flags`` with bit 24 (CRC error): the way a
    capture marks a frame the MAC flagged bad (see docs/reference-model.md).
    """
    shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
    head = struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body))
    # IDB with if_tsresol = 9 (nanoseconds).
    opts = struct.pack("<HHB3x", 9, 1, 9) + struct.pack("<HH", 0, 0)
    idb_body = struct.pack("<HHI", 1, 0, 0) + opts
    head += struct.pack("<II", 1, 12 + len(idb_body)) + idb_body + struct.pack("<I", 12 + len(idb_body))

    n = len(batch)
    length = batch.length.astype(np.int64)
    bad = batch.bad.astype(bool)
    ts = batch.ts_ns.astype(np.uint64)
    data_len = length + (-length) % 4
    # EPB: 8 header + 20 fixed + padded data + [epb_flags + end of options] + 4 trailer.
    blen = 32 + data_len + 12 * bad
    starts = len(head) + np.zeros(n, np.int64)
    if n:
        starts[1:] += np.cumsum(blen)[:-1]
    out = np.zeros(len(head) + int(blen.sum()), np.uint8)  # zeros: the padding
    out[:len(head)] = np.frombuffer(head, np.uint8)
    fixed = np.empty((n, 7), "<u4")
    fixed[:, 0] = _PCAPNG_EPB
    fixed[:, 1] = blen
    fixed[:, 2] = 0  # interface 0
    fixed[:, 3] = ts >> np.uint64(32)
    fixed[:, 4] = ts & np.uint64(0xFFFFFFFF)
    fixed[:, 5] = fixed[:, 6] = length
    _scatter_rows(out, starts, fixed.view(np.uint8).reshape(n, 28))
    _scatter_frames(out, starts + 28, batch.buf, batch.offset.astype(np.int64), length)
    flag_opt = np.frombuffer(struct.pack("<HHIHH", 2, 4, 1 << 24, 0, 0), np.uint8)
    nbad = int(bad.sum())
    _scatter_rows(out, (starts + 28 + data_len)[bad], np.broadcast_to(flag_opt, (nbad, 12)).copy())
    _scatter_rows(out, starts + blen - 4, blen.astype("<u4").view(np.uint8).reshape(n, 4))
    with atomic_output(path) as fh:
        out.tofile(fh)
