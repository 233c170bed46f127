"""A synthetic, realistic NASDAQ TotalView-ITCH 5.0 feed, deterministic for a seed.

A trading day in miniature (the market model, :mod:`.gen_market`), packed into
MoldUDP64 packets with heartbeats in quiet periods and an end-of-session packet, and
framed in UDP/IPv4/Ethernet (optionally 802.1Q tagged), optionally as two feed copies
(A and B) interleaved the way one capture port sees them, optionally with lost
packets (sequence gaps) (the packetiser, :mod:`.gen_packets`), written as a classic
nanosecond pcap (here, with :mod:`.capture`'s pcap header and records).

Speed matters (millions of messages for benchmarks), so the serial walks (book
simulation, packing, framing) are numba kernels and nothing loops in Python per
message or per frame.

:func:`generate` returns a :class:`~wiretick.host.capture.FrameBatch` whose
buffer is the image of a classic nanosecond pcap file (frame ``i`` at
``offset[i]``, right after its 16-byte record header).  :func:`generate_to_file`
lays the same bytes out piece by piece and writes each piece as it is done, so
the capture is never held whole in memory: the file is byte for byte what
:func:`~wiretick.host.capture.write_pcap` writes for :func:`generate`'s batch
(tested), without write_pcap's per-byte scatter (~60 MB/s, several times the
capture's size in temporaries), which would dominate the time.
"""

from __future__ import annotations

import ipaddress
import numbers
import os
from dataclasses import dataclass, field

import numpy as np

from .capture import PCAP_RECORD, FrameBatch, atomic_output, pcap_header, pcap_records
from .contract.formats import MAX_VLAN_TAGS, MESSAGES, MOLD_END_OF_SESSION, MOLD_SESSION_SIZE
from .gen_market import EXTRA_TYPES, SEC, Day, min_messages, simulate_day
from .gen_packets import (MAX_MTU, MIN_MTU, FrameHeaders, Packets, capture_order, frame_headers, frame_lengths,
                          packetise, write_frames)

__all__ = ["GenConfig", "GenStats", "generate", "generate_with_stats", "generate_to_file",
           "min_messages", "MIN_MTU", "MAX_MTU", "EXTRA_TYPES"]


# ------------------------------------------------------------------ configuration


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


@dataclass(frozen=True)
class GenConfig:
    """What to generate.  Invalid values raise ``ValueError`` on construction.

    Parameters
    ----------
    messages : int
        ITCH messages in the feed, exactly (sequence numbers 1..messages), at least
        :func:`min_messages` (the start- and end-of-day skeleton).
    symbols : int
        Stocks, 1..65535 (stock locate 1..symbols, assigned alphabetically as NASDAQ does).
    seed : int
        Random seed (>= 0): the same config gives the same bytes.
    vlan : int, tuple of int or None
        802.1Q VLAN id (one tag), a tuple of one or two ids (two = QinQ: an 0x88A8
        outer tag, then 0x8100), or None for untagged frames.
    ab : bool
        Also publish the B copy of every packet (to ``dst_ip_b``:``port_b``, from another
        host), lagging A by 2..30 us; both lines are interleaved in capture-time order.
    gap_rate : float
        Fraction of data packets lost before the capture (both copies), in [0, 1).
        The first packet is never lost, so every loss is a detectable gap.
    all_types : bool
        Also sprinkle the rarer types (:data:`EXTRA_TYPES`), so all 23 ITCH types occur.
    max_messages_per_packet : int
        Most messages in one MoldUDP64 packet (1..65534); the MTU may allow fewer.
    mtu : int
        IP MTU: IPv4 + UDP + MoldUDP64 header + blocks never exceed it (MIN_MTU..9216).
    heartbeat_interval_ns : int
        A heartbeat goes out whenever the feed has been silent this long (>= 1 ms).
    session : bytes
        MoldUDP64 session, 10 ASCII bytes.
    dst_ip, port : str, int
        The A feed's multicast group and UDP port.
    dst_ip_b, port_b : str, int
        The B feed's (used when ``ab``); must differ from A's in group or port.
    start_ns : int
        Epoch time (ns) of the trading day's midnight, the origin of ITCH timestamps:
        a frame's capture time is ``start_ns`` + its last message's timestamp + latency.
        Default 2024-01-02 00:00 US/Eastern.
    """

    messages: int
    symbols: int = 100
    seed: int = 0
    vlan: int | tuple[int, ...] | None = 141
    ab: bool = False
    gap_rate: float = 0.0
    all_types: bool = False
    max_messages_per_packet: int = 32
    mtu: int = 1500
    heartbeat_interval_ns: int = SEC
    session: bytes = b"WIRETICK01"
    dst_ip: str = "233.54.12.111"
    port: int = 26477
    dst_ip_b: str = "233.49.196.111"
    port_b: int = 26478
    start_ns: int = 1_704_171_600 * SEC

    def __post_init__(self) -> None:
        for name in ("messages", "symbols", "seed", "max_messages_per_packet", "mtu",
                     "heartbeat_interval_ns", "port", "port_b", "start_ns"):
            if not _is_int(getattr(self, name)):
                raise ValueError(f"{name} must be an integer, got {getattr(self, name)!r}")
        for name in ("ab", "all_types"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.messages < 1:
            raise ValueError(f"messages must be >= 1, got {self.messages}")
        if not 1 <= self.symbols <= 0xFFFF:
            raise ValueError(f"symbols must be 1..65535 (stock locate is 16 bits, 0 is market-wide), "
                             f"got {self.symbols}")
        need = min_messages(self.symbols, self.all_types)
        if self.messages < need:
            raise ValueError(f"messages={self.messages} is too few for {self.symbols} symbols"
                             f"{' with all_types' if self.all_types else ''}: the start and end of "
                             f"the day alone take {need} (6 + 4 per symbol"
                             f"{f' + {need - min_messages(self.symbols)}' if self.all_types else ''})")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        self._vlans()  # validates
        if not isinstance(self.gap_rate, numbers.Real) or isinstance(self.gap_rate, bool) \
                or not 0.0 <= float(self.gap_rate) < 1.0:
            raise ValueError(f"gap_rate must be a fraction in [0, 1), got {self.gap_rate!r}")
        if not 1 <= self.max_messages_per_packet < MOLD_END_OF_SESSION:
            raise ValueError(f"max_messages_per_packet must be 1..{MOLD_END_OF_SESSION - 1} "
                             f"(0 and 0xFFFF are heartbeat and end of session), "
                             f"got {self.max_messages_per_packet}")
        if not MIN_MTU <= self.mtu <= MAX_MTU:
            raise ValueError(f"mtu must be {MIN_MTU}..{MAX_MTU} (IPv4 + UDP + MoldUDP64 header + "
                             f"the longest ITCH message block = {MIN_MTU}), got {self.mtu}")
        if self.heartbeat_interval_ns < 1_000_000:
            raise ValueError(f"heartbeat_interval_ns must be >= 1 ms (1000000), "
                             f"got {self.heartbeat_interval_ns}")
        if not isinstance(self.session, (bytes, bytearray)) or len(self.session) != MOLD_SESSION_SIZE \
                or not all(0x20 <= b < 0x7F for b in self.session):
            raise ValueError(f"session must be {MOLD_SESSION_SIZE} printable ASCII bytes, "
                             f"got {self.session!r}")
        for name in ("port", "port_b"):
            if not 1 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} must be 1..65535, got {getattr(self, name)}")
        a, b = self._group("dst_ip"), self._group("dst_ip_b")
        if self.ab and (a, self.port) == (b, self.port_b):
            raise ValueError("the B feed must differ from the A feed in multicast group or port")
        last_ns = self.start_ns + 2 * 86_400 * SEC
        if self.start_ns < 0 or last_ns // SEC >= 1 << 32:
            raise ValueError(f"start_ns must be an epoch time in ns that pcap can hold "
                             f"(0 .. 2106), got {self.start_ns}")

    def _vlans(self) -> tuple[int, ...]:
        v = self.vlan
        tags = () if v is None else (v,) if _is_int(v) else v
        if not isinstance(tags, tuple) or not all(_is_int(t) for t in tags):
            raise ValueError(f"vlan must be None, a VLAN id or a tuple of ids, got {v!r}")
        if len(tags) > MAX_VLAN_TAGS:
            raise ValueError(f"vlan: at most {MAX_VLAN_TAGS} tags, got {len(tags)}")
        for t in tags:
            if not 0 <= t <= 4094:
                raise ValueError(f"vlan id must be 0..4094, got {t}")
        return tuple(int(t) for t in tags)

    def _group(self, name: str) -> int:
        value = getattr(self, name)
        try:
            addr = ipaddress.IPv4Address(value)
        except (ValueError, TypeError):
            raise ValueError(f"{name} must be an IPv4 address, got {value!r}") from None
        if not addr.is_multicast:
            raise ValueError(f"{name} must be a multicast group (224.0.0.0/4), got {value}")
        return int(addr)


@dataclass(frozen=True)
class GenStats:
    """What a generated capture holds.

    Parameters
    ----------
    messages : ITCH messages published (sequence numbers 1..messages), lost ones included.
    packets : MoldUDP64 packets published per feed copy (data, heartbeats, end of session).
    heartbeats : heartbeat packets among them.
    frames : frames in the capture (lost packets excluded; two per packet with ``ab``).
    bytes : size of the pcap file (or image).
    per_type : messages published per ITCH type code (types that occur).
    gaps : gap events a receiver reports (runs of consecutive lost packets).
    gap_packets : data packets lost (per copy).
    gap_messages : messages in the lost packets.
    """

    messages: int
    packets: int
    heartbeats: int
    frames: int
    bytes: int
    per_type: dict[str, int] = field(default_factory=dict)
    gaps: int = 0
    gap_packets: int = 0
    gap_messages: int = 0


# ------------------------------------------------------------------ the writer

_PCAP_HEADER = pcap_header()


@dataclass
class _Plan:
    """Everything the frames are written from; frames ``a..b`` can be written alone."""

    cfg: GenConfig
    stats: GenStats
    day: Day
    packets: Packets
    headers: FrameHeaders
    f_pkt: np.ndarray      # per frame, in capture order: packet, feed copy, capture time
    f_copy: np.ndarray
    f_ts: np.ndarray
    f_len: np.ndarray      # frame length
    f_off: np.ndarray      # offset of the frame in the pcap file (after its record header)
    ip_id0: np.ndarray     # each line's first IPv4 id

    def render(self, out: np.ndarray, a: int, b: int, base: int) -> None:
        """Write frames ``a..b`` with their record headers into ``out`` (file bytes from ``base`` on)."""
        records = pcap_records(np.int64(self.cfg.start_ns) + self.f_ts[a:b], self.f_len[a:b])
        write_frames(out, records, self.f_pkt[a:b], self.f_copy[a:b], self.f_off[a:b] - base, self.f_len[a:b],
                     self.packets, self.day.mbuf, self.day.mstart, self.headers, self.ip_id0)


def _plan(cfg: GenConfig) -> _Plan:
    """Simulate the day, pack it into packets and lay out the capture (no frame written yet)."""
    # Independent streams per stage, so that e.g. gap_rate does not change the messages.
    seeds = [np.uint64(x) for x in np.random.SeedSequence(cfg.seed).generate_state(5, np.uint64)]
    day = simulate_day(cfg.messages, cfg.symbols, all_types=cfg.all_types,
                       heartbeat_interval_ns=cfg.heartbeat_interval_ns,
                       rng=np.random.default_rng(int(seeds[0])), seed=seeds[1])
    headers = frame_headers([(cfg._group("dst_ip"), cfg.port), (cfg._group("dst_ip_b"), cfg.port_b)],
                            cfg._vlans(), bytes(cfg.session))
    packets = packetise(day.mstart, day.mts, max_per_packet=cfg.max_messages_per_packet, mtu=cfg.mtu,
                        heartbeat_interval_ns=cfg.heartbeat_interval_ns, seed=seeds[2])
    drop, f_pkt, f_copy, f_ts = capture_order(packets, headers.eth_len, gap_rate=cfg.gap_rate, ab=cfg.ab,
                                              seed=seeds[3])
    nf = len(f_pkt)

    # ---- the pcap file's layout: global header, then (record header, frame) per frame
    f_len = frame_lengths(packets, f_pkt, headers.eth_len)
    f_off = len(_PCAP_HEADER) + PCAP_RECORD * np.arange(1, nf + 1, dtype=np.int64)
    if nf:
        f_off[1:] += np.cumsum(f_len)[:-1]
    total = len(_PCAP_HEADER) + PCAP_RECORD * nf + int(f_len.sum())

    lost = drop & (packets.kind == 0)
    runs = int(lost[0]) + int(np.count_nonzero(lost[1:] & ~lost[:-1]))
    per = day.per_type
    stats = GenStats(
        messages=cfg.messages, packets=len(packets.kind), heartbeats=int(np.count_nonzero(packets.kind == 1)),
        frames=nf, bytes=total, per_type={m.code: int(per[m.type_byte]) for m in MESSAGES if per[m.type_byte]},
        gaps=runs, gap_packets=int(lost.sum()), gap_messages=int(packets.count[lost].sum()))
    return _Plan(cfg, stats, day, packets, headers, f_pkt, f_copy, f_ts, f_len, f_off,
                 np.array([int(seeds[4]) & 0xFFFF, (int(seeds[4]) >> 16) & 0xFFFF], np.int64))


def generate_with_stats(config: GenConfig) -> tuple[FrameBatch, GenStats]:
    """Generate the feed in memory.

    Returns
    -------
    batch : FrameBatch
        The capture's frames; ``batch.buf`` is the complete classic pcap image
        (nanosecond timestamps, Ethernet), frames pointing into it.
    stats : GenStats
        What the capture holds.
    """
    plan = _plan(config)
    img = np.empty(plan.stats.bytes, np.uint8)
    img[:len(_PCAP_HEADER)] = np.frombuffer(_PCAP_HEADER, np.uint8)
    plan.render(img, 0, plan.stats.frames, 0)
    batch = FrameBatch(img, plan.f_off, plan.f_len,
                       (np.int64(config.start_ns) + plan.f_ts).astype(np.uint64),
                       np.zeros(plan.stats.frames, np.bool_))
    return batch, plan.stats


def generate(config: GenConfig) -> FrameBatch:
    """Generate the feed in memory (see :func:`generate_with_stats`)."""
    return generate_with_stats(config)[0]


#: generate_to_file writes the capture in pieces of about this many bytes.
_FILE_CHUNK = 64 << 20


def generate_to_file(path: str | os.PathLike, config: GenConfig, *, progress=None) -> GenStats:
    """Generate the feed and write it as a classic nanosecond pcap.

    The bytes are those :func:`wiretick.host.capture.write_pcap` writes for
    :func:`generate`'s batch (tested), written in pieces as they are laid out, so
    the capture is never held whole in memory.  Like ``write_pcap``, the file
    appears under its name only once complete.  ``progress``: a
    :func:`wiretick.host.progress.progress` bar, reset to the capture's size once
    the feed is planned and advanced by the bytes written.

    Returns
    -------
    GenStats
        What the capture holds.
    """
    plan = _plan(config)
    nf = plan.stats.frames
    ends = plan.f_off + plan.f_len   # file offset just past each frame
    if progress is not None:
        progress.reset(total=int(ends[-1]) if nf else len(_PCAP_HEADER))
    with atomic_output(path) as fh:
        fh.write(_PCAP_HEADER)
        # One buffer, reused: a fresh one per piece would be page-faulted in anew.
        buf = np.empty(0, np.uint8)
        a, base = 0, len(_PCAP_HEADER)
        while a < nf:
            # Frames a..b fill about one chunk (at least one frame).
            b = max(a + 1, int(np.searchsorted(ends, base + _FILE_CHUNK, side="right")))
            size = int(ends[b - 1]) - base
            if size > len(buf):
                buf = np.empty(size, np.uint8)
            plan.render(buf, a, b, base)
            buf[:size].tofile(fh)
            a, base = b, int(ends[b - 1])
            if progress is not None:
                progress.update(base - progress.n)
    return plan.stats
