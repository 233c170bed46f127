"""The host side of the UDP host link: a :class:`~wiretick.host.device.Backend` for a board on Ethernet.

A board without PCIe (the ECP5 boards, docs/hostlink.md) carries its DMA engine's
writes and its register bus over UDP on its second Ethernet port
(:mod:`wiretick.host.contract.linkproto` defines the packets).  :class:`HostLinkBackend`
makes such a board look like any other device to :class:`~wiretick.host.device.Device`:

- ``read32``/``write32`` are REQUEST packets answered by the board; each is
  retried on a timeout, and a board that never answers is a :class:`LinkError`
  naming the register, the board's address and how long it waited;
- ``alloc_dma`` makes ring buffers as files (:class:`~wiretick.host.device.FileDma`,
  ``/dev/shm``) with bus addresses that exist only on the link;
- the receiver applies every write record of the DATA packets, in order, to
  those files, so :class:`~wiretick.host.ring.Ring` readers follow the ring exactly
  as they follow a simulator's or a PCIe device's.  A record outside every
  allocated buffer is refused and counted (``refused``), never applied; a gap in
  the link sequence numbers is counted (``lost``) and reported by :meth:`error`.

Two transports: :class:`UdpTransport` (a UDP socket: the real board) and any
:class:`FrameTransport` (whole Ethernet frames: the pin-level simulation's bridge,
:mod:`wiretick.sim.pins`), which builds and checks the Ethernet, IPv4 and UDP
headers itself.
"""

from __future__ import annotations

import mmap
import os
import queue
import socket
import struct
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from .contract import linkproto as lp
from .contract.registers import REGISTERS
from .contract.ring import DATA_OFFSET, SLOT_SIZE
from .device import Backend, DmaBuffer, FileDma
from .errors import WiretickError
from .frames import IPV4_HEADER, UDP_HEADER, ethernet_header, ipv4_header, udp_header

__all__ = ["LinkError", "Transport", "UdpTransport", "FrameTransport", "LinkStats", "HostLinkBackend",
           "build_frame", "parse_frame", "parse_records", "Record"]

_STATUS = {0: "OKAY", 1: "EXOKAY", 2: "SLVERR", 3: "DECERR"}


class LinkError(WiretickError):
    """The board did not answer, or answered something that cannot be used."""


# ---------------------------------------------------------------- frames and packets

def build_frame(payload: bytes, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES, *, src: str = "host",
                dst: str = "device", ident: int = 0) -> bytes:
    """An Ethernet frame carrying ``payload`` in UDP/IPv4 from ``src`` to ``dst`` (no FCS)."""
    a = addresses
    length = IPV4_HEADER + UDP_HEADER + len(payload)
    eth = ethernet_header(a.mac_int(dst).to_bytes(6, "big"), a.mac_int(src).to_bytes(6, "big"))
    ip = ipv4_header(length, src_ip=a.ip_int(src), dst_ip=a.ip_int(dst), ident=ident, fragment=0x4000, ttl=64)
    udp = udp_header(getattr(a, f"{src}_port"), getattr(a, f"{dst}_port"), UDP_HEADER + len(payload))
    return eth + ip + udp + payload


def parse_frame(frame: bytes, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES, *, src: str = "device",
                dst: str = "host") -> bytes:
    """The UDP payload of a frame from ``src`` to ``dst``; ValueError saying which header field is wrong.

    Checks every header field the device sets (MAC and IPv4 addresses, ports,
    lengths, the IPv4 header checksum).  A frame may carry Ethernet padding.
    """
    a = addresses
    if len(frame) < lp.ETH_IP_UDP_BYTES:
        raise ValueError(f"frame of {len(frame)} bytes is shorter than its headers")
    want = {
        "destination MAC": (frame[0:6], a.mac_int(dst).to_bytes(6, "big")),
        "source MAC": (frame[6:12], a.mac_int(src).to_bytes(6, "big")),
        "EtherType": (frame[12:14], b"\x08\x00"),
        "IPv4 version/IHL": (frame[14:15], b"\x45"),
        "IPv4 protocol": (frame[23:24], b"\x11"),
        "IPv4 source": (frame[26:30], a.ip_int(src).to_bytes(4, "big")),
        "IPv4 destination": (frame[30:34], a.ip_int(dst).to_bytes(4, "big")),
        "UDP source port": (frame[34:36], getattr(a, f"{src}_port").to_bytes(2, "big")),
        "UDP destination port": (frame[36:38], getattr(a, f"{dst}_port").to_bytes(2, "big")),
    }
    for name, (got, exp) in want.items():
        if got != exp:
            raise ValueError(f"{name} is {got.hex()}, expected {exp.hex()}")
    if lp.ipv4_checksum(frame[14:34]) != 0:
        raise ValueError("IPv4 header checksum is wrong")
    ip_len, = struct.unpack(">H", frame[16:18])
    udp_len, = struct.unpack(">H", frame[38:40])
    if udp_len != ip_len - 20 or 14 + ip_len > len(frame) or udp_len < 8:
        raise ValueError(f"IPv4 length {ip_len} / UDP length {udp_len} do not fit a {len(frame)}-byte frame")
    return bytes(frame[42:42 + udp_len - 8])


@dataclass
class Record:
    """One record of a DATA packet: a write (address, data, strobes or None) or a register answer."""

    kind: int
    address: int = 0
    data: bytes = b""
    strobes: int | None = None
    tag: int = 0
    status: int = 0
    offset: int = 0
    value: int = 0


def _data_words(payload: bytes) -> tuple[int, np.ndarray]:
    """(link seq, the packet as 64-bit words) of a DATA packet; ValueError if it is not one."""
    if len(payload) % 8 or len(payload) < 8:
        raise ValueError(f"packet of {len(payload)} bytes is not a whole number of words")
    words = np.frombuffer(payload, "<u8")
    magic, version, kind, seq = lp.parse_header(int(words[0]))
    if magic != lp.MAGIC or version != lp.VERSION or kind != lp.KIND_DATA:
        raise ValueError(f"not a DATA packet (magic 0x{magic:04X}, version {version}, kind {kind})")
    return seq, words


def parse_records(payload: bytes) -> tuple[int, list[Record]]:
    """(link seq, records) of a DATA packet; ValueError on anything malformed."""
    seq, words = _data_words(payload)
    recs = []
    i = 1
    n = len(words)
    while i < n:
        a = int(words[i])
        k = a & 0xFF
        if k in (lp.REC_WRITE, lp.REC_WRITE_STROBED):
            nb = (a >> 8) & 0xFF
            end = i + 2 + nb + (k == lp.REC_WRITE_STROBED)
            if not 1 <= nb <= lp.MAX_BEATS or end > n:
                raise ValueError(f"write record of {nb} beats at word {i} does not fit the packet")
            strb = int(words[end - 1]) if k == lp.REC_WRITE_STROBED else None
            recs.append(Record(k, address=int(words[i + 1]), data=payload[8 * (i + 2):8 * (i + 2 + nb)],
                               strobes=strb))
            i = end
        elif k in (lp.REC_READ, lp.REC_WRITE_ACK):
            if i + 2 > n:
                raise ValueError(f"answer record at word {i} does not fit the packet")
            b = int(words[i + 1])
            recs.append(Record(k, tag=a >> 32, status=(a >> 16) & 0xFF, offset=b & 0xFFFF_FFFF, value=b >> 32))
            i += 2
        else:
            raise ValueError(f"unknown record kind {k} at word {i}")
    return seq, recs


_SLOT_A = lp.record_word(lp.REC_WRITE, nbeats=8)


def _parse_items(payload: bytes) -> tuple[int, list]:
    """Like :func:`parse_records`, but runs of whole 8-beat writes come as one array (rows of 10 words)."""
    seq, words = _data_words(payload)
    n = len(words)
    items: list = []
    i = 1
    run = None
    while i < n:
        if int(words[i]) == _SLOT_A and i + 10 <= n:
            run = i if run is None else run
            i += 10
            continue
        if run is not None:
            items.append(words[run:i].reshape(-1, 10))
            run = None
        _, recs = parse_records(payload[:8] + payload[8 * i:8 * _record_end(words, i)])
        items += recs
        i = _record_end(words, i)
    if run is not None:
        items.append(words[run:i].reshape(-1, 10))
    return seq, items


def _record_end(words: np.ndarray, i: int) -> int:
    a = int(words[i])
    k = a & 0xFF
    if k in (lp.REC_WRITE, lp.REC_WRITE_STROBED):
        end = i + 2 + ((a >> 8) & 0xFF) + (k == lp.REC_WRITE_STROBED)
    elif k in (lp.REC_READ, lp.REC_WRITE_ACK):
        end = i + 2
    else:
        raise ValueError(f"unknown record kind {k} at word {i}")
    if end > len(words):
        raise ValueError(f"record at word {i} does not fit the packet")
    return end


# ---------------------------------------------------------------- transports

class Transport(ABC):
    """Carries UDP payloads between the host and the board."""

    #: Whether a background thread may block in :meth:`recv` (a socket) or the
    #: caller drives it (a simulation, which advances only inside ``recv``).
    threaded: bool = True

    @abstractmethod
    def send(self, payload: bytes) -> None:
        """Send one request payload to the board."""

    @abstractmethod
    def recv(self, timeout: float) -> bytes | None:
        """One payload from the board, or None after ``timeout`` seconds (0: only what has arrived)."""

    def describe(self) -> str:
        return "the board"

    def close(self) -> None:
        pass


class UdpTransport(Transport):
    """A UDP socket bound to ``host_ip:host_port``, talking to ``device_ip:device_port``.

    Parameters
    ----------
    addresses : LinkAddresses
    bind : str, optional
        Address to bind instead of ``host_ip`` (``"0.0.0.0"``: any interface).
    rcvbuf : int
        Socket receive buffer asked for (the kernel may cap it at ``net.core.rmem_max``).
    """

    def __init__(self, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES, *, bind: str | None = None,
                 rcvbuf: int = 32 << 20):
        self.addresses = addresses
        self.peer = (addresses.device_ip, addresses.device_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.bind((bind if bind is not None else addresses.host_ip, addresses.host_port))
        except OSError as e:
            self.sock.close()
            raise LinkError(f"cannot bind UDP {bind or addresses.host_ip}:{addresses.host_port} for the host "
                            f"link: {e.strerror or e}") from None

    def send(self, payload: bytes) -> None:
        self.sock.sendto(payload, self.peer)

    def recv(self, timeout: float) -> bytes | None:
        while True:
            self.sock.settimeout(timeout if timeout > 0 else 0.0)
            try:
                data, src = self.sock.recvfrom(65536)
            except (socket.timeout, BlockingIOError):
                return None
            except OSError:
                return None          # closed under a receiver thread
            if src[0] == self.peer[0]:
                return data

    def describe(self) -> str:
        return f"the board at {self.peer[0]}:{self.peer[1]}"

    def close(self) -> None:
        self.sock.close()


class FrameTransport(Transport):
    """A transport that moves whole Ethernet frames (a simulation's pins): headers are built and checked here.

    Subclasses implement :meth:`send_frame` and :meth:`recv_frame`.  A frame from
    the board whose headers are wrong is counted in ``bad_frames`` and its
    reason kept in ``last_bad``.
    """

    threaded = False

    def __init__(self, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES):
        self.addresses = addresses
        self.bad_frames = 0
        self.last_bad = ""
        self._ident = 0

    @abstractmethod
    def send_frame(self, frame: bytes) -> None:
        ...

    @abstractmethod
    def recv_frame(self, timeout: float) -> bytes | None:
        ...

    def send(self, payload: bytes) -> None:
        self._ident = (self._ident + 1) & 0xFFFF
        self.send_frame(build_frame(payload, self.addresses, ident=self._ident))

    def recv(self, timeout: float) -> bytes | None:
        while True:
            frame = self.recv_frame(timeout)
            if frame is None:
                return None
            try:
                return parse_frame(frame, self.addresses)
            except ValueError as e:
                self.bad_frames += 1
                self.last_bad = str(e)


# ---------------------------------------------------------------- the backend

@dataclass
class LinkStats:
    """What the receiver saw."""

    packets: int = 0          # DATA packets applied
    records: int = 0          # write records applied
    lost: int = 0             # DATA packets missing (sequence gaps)
    restarts: int = 0         # the board's sequence restarted at 1 (a reset)
    refused: int = 0          # write records outside every buffer, not applied
    malformed: int = 0        # DATA packets that could not be parsed
    stale: int = 0            # answers to requests already answered or given up
    retries: int = 0          # requests sent again after a timeout
    last_refused: str = ""
    last_malformed: str = ""


@dataclass
class _Mapping:
    buf: DmaBuffer
    bus: int
    size: int
    map: mmap.mmap
    mem: memoryview
    u64: np.ndarray | None = None


def _reg_name(offset: int) -> str:
    for r in REGISTERS:
        if r.offset <= offset < r.offset + 4 * ((r.width + 31) // 32):
            return f"{r.name}" + ("" if offset == r.offset else " (high word)")
    return "unmapped"


class HostLinkBackend(Backend):
    """A board on the UDP host link (see the module doc).

    Parameters
    ----------
    transport : Transport
    dma_dir : path
        Where the ring buffer files are made.
    timeout : float
        Seconds to wait for an answer before sending the request again.
    retries : int
        Requests sent again before giving up with :class:`LinkError`.
    keep_rings : bool
        Leave buffer files behind when they are freed.
    """

    name = "hostlink"

    def __init__(self, transport: Transport, *, dma_dir: str | os.PathLike = "/dev/shm", timeout: float = 0.2,
                 retries: int = 5, prefix: str = "wiretick-link", keep_rings: bool = False,
                 iova_base: int = 1 << 32):
        self.transport = transport
        self.timeout = timeout
        self.retries = retries
        self.stats = LinkStats()
        self._dma = FileDma(dma_dir, prefix=prefix, iova_base=iova_base)
        self._keep = keep_rings
        self._maps: list[_Mapping] = []
        self._tag = 0
        self._seq: int | None = None
        self._lock = threading.Lock()           # the mappings and stats, between the receiver and callers
        self._answers: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = None
        if transport.threaded:
            self._thread = threading.Thread(target=self._receive_loop, name="wiretick-hostlink", daemon=True)
            self._thread.start()

    # ------------------------------------------------------------ registers

    def read32(self, offset: int) -> int:
        return self._request(lp.OP_READ, offset, 0)

    def write32(self, offset: int, value: int) -> None:
        if not 0 <= value <= 0xFFFF_FFFF:
            raise LinkError(f"0x{value:X} does not fit a 32-bit register")
        self._request(lp.OP_WRITE, offset, value)

    def _request(self, op: int, offset: int, value: int) -> int:
        if offset % 4 or not 0 <= offset < 1 << 32:
            raise LinkError(f"register offset 0x{offset:X} is not an aligned 32-bit word")
        what = f"register {'read' if op == lp.OP_READ else 'write'} of 0x{offset:03X} ({_reg_name(offset)})"
        t0 = time.monotonic()
        for attempt in range(self.retries + 1):
            self._tag = (self._tag + 1) & 0xFFFF_FFFF
            tag = self._tag
            if attempt:
                self.stats.retries += 1
            self.transport.send(lp.request_payload(tag, op, offset, value))
            deadline = time.monotonic() + self.timeout
            while True:
                rec = self._next_answer(deadline)
                if rec is None:
                    break
                if rec.tag != tag:
                    self.stats.stale += 1
                    continue
                want = lp.REC_READ if op == lp.OP_READ else lp.REC_WRITE_ACK
                if rec.kind != want or rec.offset != offset:
                    raise LinkError(f"{what}: {self.transport.describe()} answered a different request "
                                    f"(kind {rec.kind}, offset 0x{rec.offset:X})")
                if rec.status not in (0, 1):
                    raise LinkError(f"{what}: {self.transport.describe()} answered "
                                    f"{_STATUS.get(rec.status, rec.status)}")
                return rec.value
        raise LinkError(f"{what}: {self.transport.describe()} did not answer "
                        f"({self.retries + 1} tries, {time.monotonic() - t0:.2f} s); check the cable, "
                        f"the addresses (docs/hostlink.md) and that the bitstream is loaded")

    def _next_answer(self, deadline: float) -> Record | None:
        if self._thread is not None:
            try:
                return self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
        while True:
            try:
                return self._answers.get_nowait()
            except queue.Empty:
                pass
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            payload = self.transport.recv(left)
            if payload is None:
                return None
            self.apply(payload)

    # ------------------------------------------------------------ the receiver

    def _receive_loop(self) -> None:
        while not self._stop.is_set():
            payload = self.transport.recv(0.05)
            if payload is not None:
                self.apply(payload)

    def pump(self) -> int:
        """Apply every packet that has arrived (the transport not threaded); returns how many."""
        n = 0
        while (payload := self.transport.recv(0)) is not None:
            self.apply(payload)
            n += 1
        return n

    def apply(self, payload: bytes) -> None:
        """Apply one DATA packet: its writes to the buffers, its answers to the waiting request."""
        try:
            seq, items = _parse_items(payload)
        except ValueError as e:
            with self._lock:
                self.stats.malformed += 1
                self.stats.last_malformed = str(e)
            return
        with self._lock:
            if self._seq is not None:
                gap = (seq - self._seq - 1) & 0xFFFF_FFFF
                if seq == 1 and self._seq != 0:
                    self.stats.restarts += 1
                elif gap and gap < 1 << 31:
                    self.stats.lost += gap
            self._seq = seq
            self.stats.packets += 1
            for item in items:
                if isinstance(item, np.ndarray):
                    self._write_slots(item)
                elif item.kind in (lp.REC_READ, lp.REC_WRITE_ACK):
                    self._answers.put(item)
                else:
                    self._write(item)

    def _write_slots(self, recs: np.ndarray) -> None:
        """A run of whole 64-byte writes (rows: A, address, 8 data words), applied at once where it can be."""
        addrs = recs[:, 1]
        lo, hi = int(addrs.min()), int(addrs.max()) + 64
        for mp in self._maps:
            if mp.bus <= lo and hi <= mp.bus + mp.size and not (addrs & np.uint64(7)).any():
                break
        else:
            for row in recs:
                self._write(Record(lp.REC_WRITE, address=int(row[1]), data=row[2:].tobytes()))
            return
        idx = ((addrs - np.uint64(mp.bus)) >> np.uint64(3)).astype(np.int64)
        u64 = mp.u64
        # Every slot's lap-tag word first, its seq word last (see _write), for the whole run.
        u64[idx + 7] = recs[:, 9]
        u64[idx[:, None] + np.arange(1, 7)] = recs[:, 3:9]
        u64[idx] = recs[:, 2]
        self.stats.records += len(recs)

    def _write(self, rec: Record) -> None:
        n = len(rec.data)
        for mp in self._maps:
            o = rec.address - mp.bus
            if 0 <= o and o + n <= mp.size:
                break
        else:
            self.stats.refused += 1
            self.stats.last_refused = f"{n} bytes at 0x{rec.address:X}: no buffer there"
            return
        self.stats.records += 1
        data = rec.data
        beats = n // 8
        # A ring slot's lap tag (in its last word) changes first and its seq (its first
        # word) last, as every ring writer does (docs/ring.md): readers never take a
        # half-written slot, and `recheck` sees an overwrite as soon as it begins.
        mem = mp.mem
        if rec.strobes is None:
            last = 8 * (beats - 1)
            mem[o + last:o + n] = data[last:]
            if beats > 1:
                mem[o + 8:o + last] = data[8:last]
                mem[o:o + 8] = data[:8]
            return
        for b in [beats - 1] + list(range(1, beats - 1)) + ([0] if beats > 1 else []):
            s = (rec.strobes >> (8 * b)) & 0xFF
            for j in range(8):
                if s >> j & 1:
                    mem[o + 8 * b + j] = data[8 * b + j]

    # ------------------------------------------------------------ DMA memory

    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        buf = self._dma.alloc(size, name)
        fd = os.open(buf.path, os.O_RDWR)
        try:
            mm = mmap.mmap(fd, buf.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except BaseException:
            self._dma.free(buf)
            raise
        finally:
            os.close(fd)
        with self._lock:
            self._maps.append(_Mapping(buf, buf.bus_address, buf.size, mm, memoryview(mm),
                                       np.frombuffer(mm, np.uint64)))
        return buf

    def free_dma(self, buf: DmaBuffer) -> None:
        with self._lock:
            for mp in list(self._maps):
                if mp.bus == buf.bus_address:
                    self._maps.remove(mp)
                    mp.u64 = None
                    mp.mem.release()
                    mp.map.close()
        if not self._keep:
            self._dma.free(buf)

    def error(self) -> str | None:
        s = self.stats
        problems = []
        if s.lost:
            problems.append(f"{s.lost} link packets lost")
        if s.refused:
            problems.append(f"{s.refused} writes outside every buffer refused ({s.last_refused})")
        if s.malformed:
            problems.append(f"{s.malformed} malformed packets ({s.last_malformed})")
        return "; ".join(problems) or None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            maps, self._maps = self._maps, []
        for mp in maps:
            mp.u64 = None
            mp.mem.release()
            mp.map.close()
            if not self._keep:
                self._dma.free(mp.buf)
        self.transport.close()


# ---------------------------------------------------------------- measurement

class _NoTransport(FrameTransport):
    def send_frame(self, frame: bytes) -> None:
        pass

    def recv_frame(self, timeout: float) -> bytes | None:
        return None


def measure_apply_rate(packets: int = 2000, ticks_per_packet: int = 18, *, dma_dir="/dev/shm") -> dict[str, float]:
    """How fast the receiver applies full DATA packets of tick records, in CPU time (no socket).

    Returns ``{"tick_records_per_s", "packets_per_s", "link_bound_ticks_per_s"}``; the
    last is the 1 Gb/s wire's limit for comparison (:func:`~wiretick.host.contract.linkproto.ticks_per_second`).
    """
    backend = HostLinkBackend(_NoTransport(), dma_dir=dma_dir, prefix=f"wiretick-apply-{os.getpid()}")
    try:
        buf = backend.alloc_dma(1 << 20)
        base = buf.bus_address + DATA_OFFSET
        body = np.arange(8, dtype=np.uint64)
        payloads = []
        for seq in range(1, packets + 1):
            rows = np.zeros((ticks_per_packet, 10), np.uint64)
            rows[:, 0] = _SLOT_A
            rows[:, 1] = base + SLOT_SIZE * ((seq * ticks_per_packet + np.arange(ticks_per_packet)) % 1024)
            rows[:, 2:] = body
            payloads.append(struct.pack("<Q", lp.header_word(lp.KIND_DATA, seq)) + rows.tobytes())
        t = time.process_time()
        for p in payloads:
            backend.apply(p)
        dt = time.process_time() - t
        assert backend.stats.records == packets * ticks_per_packet and not backend.stats.lost
    finally:
        backend.close()
    return {"tick_records_per_s": packets * ticks_per_packet / dt, "packets_per_s": packets / dt,
            "link_bound_ticks_per_s": lp.ticks_per_second()}
