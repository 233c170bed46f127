"""The generator's packetiser: messages into MoldUDP64 packets, packets into frames.

A publisher groups consecutive messages into packets (a few at a time, never past
the MTU, never holding a message back longer than its batch window), sends a
heartbeat whenever the feed has been silent a heartbeat interval, and ends with an
end-of-session packet (:func:`packetise`).  Each packet goes out on the A line and,
optionally, the B line, each a 10 GbE link; lost packets (sequence gaps) are lost
on both, and one capture port merges the lines in arrival order
(:func:`capture_order`).  :func:`write_frames` writes the frames into a capture
image: each frame header comes from a template built once per line with
:mod:`.frames` (the project's one frame builder), its lengths, IPv4 id and checksum
and MoldUDP64 sequence and count filled in by a numba kernel, and the message
blocks copied as the market model (:mod:`.gen_market`) laid them out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numba
import numpy as np

from .capture import PCAP_RECORD
from .contract.formats import (ETHERTYPE_VLAN, IP_PROTO_UDP, MOLD_END_OF_SESSION, MOLD_FIELDS, MOLD_HEADER_SIZE,
                               MOLD_HEARTBEAT)
from .frames import IPV4_HEADER, UDP_HEADER, ethernet_header, ipv4_header, multicast_mac, udp_header
from .gen_market import MAX_BLOCK
from .gen_random import expo, geom, randint, u01

__all__ = ["Packets", "packetise", "capture_order", "frame_headers", "write_frames", "frame_lengths",
           "MIN_MTU", "MAX_MTU", "ETH_MIN_FRAME"]

ETH_MIN_FRAME = 60       # without FCS: shorter frames are padded
MAX_MTU = 9216           # jumbo; keeps every frame within the pcap snaplen (65535)
_IP_DF = 0x4000          # don't fragment, offset 0
_IP_TOTAL_LENGTH, _IP_ID, _IP_CHECKSUM = 2, 4, 10   # byte offsets in the IPv4 header
_UDP_LENGTH = 4                                      # byte offset in the UDP header
_TTL = 59

# Publishers of the two feed copies (the A and B lines come from different hosts).
_SRC_IP = (0xCEC87F8A, 0xCEC87F8B)
_SRC_MAC = (bytes.fromhex("027774000a01"), bytes.fromhex("027774000b01"))
_SRC_PORT = (49653, 49654)

# Publisher timing (ns) and packet sizes.
_P_PKT = 0.3             # messages per packet ~ geometric(0.3): mostly small packets
_BATCH_WINDOW = 50_000   # a publisher flushes a packet whose first message is 50 us old
_LATENCY_MIN = 4_000     # matching engine -> wire, plus exp(mean 3 us)
_LATENCY_MEAN = 3_000.0
_B_DELAY_MIN = 2_000     # the B copy lags A by 2..30 us
_B_DELAY_SPAN = 28_000
_EOS_DELAY = 1_000_000   # end of session 1 ms after the last event

_MOLD = {f.name: f for f in MOLD_FIELDS}
# Where _frames writes the per-packet MoldUDP64 fields: sequence and count (offset, size);
# the session comes with the frame header template.
_MOLD_OFF = np.array([_MOLD["sequence"].offset, _MOLD["count"].offset,
                      _MOLD["sequence"].size, _MOLD["count"].size], np.int64)
#: The smallest IP MTU that carries the longest ITCH message in one packet.
MIN_MTU = IPV4_HEADER + UDP_HEADER + MOLD_HEADER_SIZE + MAX_BLOCK


@numba.njit(cache=True, inline="always")
def _put(buf, pos, value, size):
    # Big-endian, ``size`` bytes.
    v = value
    for k in range(size - 1, -1, -1):
        buf[pos + k] = v & 0xFF
        v >>= 8


@numba.njit(cache=True)
def _packetize(mstart, mts, max_per, max_payload, seed, p_first, p_count, p_send):
    """Group consecutive messages into data packets; returns how many."""
    rs = np.full(1, seed, np.uint64)
    n = len(mts)
    i = 0
    k = 0
    while i < n:
        target = min(max_per, geom(rs, _P_PKT))
        first = i
        size = MOLD_HEADER_SIZE
        c = 0
        while i < n and c < target:
            blk = mstart[i + 1] - mstart[i]
            if size + blk > max_payload:
                break
            if c > 0 and mts[i] - mts[first] > _BATCH_WINDOW:
                break  # the publisher did not wait: the packet already left
            size += blk
            i += 1
            c += 1
        p_first[k] = first
        p_count[k] = c
        p_send[k] = mts[i - 1] + _LATENCY_MIN + int(expo(rs, _LATENCY_MEAN))
        k += 1
    return k


@numba.njit(cache=True)
def _heartbeat_count(p_send, hb):
    n = 0
    for k in range(1, len(p_send)):
        d = p_send[k] - p_send[k - 1]
        if d > hb:
            n += (d - 1) // hb
    return n


@numba.njit(cache=True)
def _schedule(d_first, d_count, d_send, n_msgs, hb, mstart, k_kind, k_first, k_count, k_seq,
              k_send, k_plen):
    """The publisher's packet stream: data packets, heartbeats in the silences, end of session."""
    k = 0
    for d in range(len(d_first)):
        if d > 0:
            t = d_send[d - 1] + hb
            while t < d_send[d]:  # a heartbeat carries the next sequence number expected
                k_kind[k] = 1
                k_first[k] = d_first[d]
                k_count[k] = MOLD_HEARTBEAT
                k_seq[k] = d_first[d] + 1
                k_send[k] = t
                k_plen[k] = MOLD_HEADER_SIZE
                k += 1
                t += hb
        first = d_first[d]
        c = d_count[d]
        k_kind[k] = 0
        k_first[k] = first
        k_count[k] = c
        k_seq[k] = first + 1
        k_send[k] = d_send[d]
        k_plen[k] = MOLD_HEADER_SIZE + mstart[first + c] - mstart[first]
        k += 1
    k_kind[k] = 2
    k_first[k] = n_msgs
    k_count[k] = MOLD_END_OF_SESSION
    k_seq[k] = n_msgs + 1
    k_send[k] = d_send[len(d_send) - 1] + _EOS_DELAY
    k_plen[k] = MOLD_HEADER_SIZE
    return k + 1


@numba.njit(cache=True)
def _capture_order(k_kind, k_send, k_plen, eth_len, gap_rate, ab, seed, drop, f_pkt, f_copy, f_ts):
    """Which frames the capture holds, in capture order, and when each arrived.

    Each line (A, B) is a 10 GbE link: a frame cannot start before the previous one
    ended.  B lags A.  Lost data packets are lost on both lines.  The capture port
    merges both lines, timestamps strictly increasing.
    """
    rs = np.full(1, seed, np.uint64)
    n = len(k_kind)
    first_data = True
    for k in range(n):
        drop[k] = False
        if k_kind[k] == 0:
            if not first_data and gap_rate > 0.0 and u01(rs) < gap_rate:
                drop[k] = True
            first_data = False
    ta = np.empty(n, np.int64)
    tb = np.empty(n, np.int64)
    wire_prev = 0
    for k in range(n):
        flen = max(ETH_MIN_FRAME, eth_len + IPV4_HEADER + UDP_HEADER + k_plen[k])
        wire = (flen + 24) * 4 // 5   # preamble 8 + FCS 4 + gap 12 bytes, 0.8 ns/byte
        if k == 0:
            ta[k] = k_send[k]
            tb[k] = k_send[k] + _B_DELAY_MIN + randint(rs, 0, _B_DELAY_SPAN)
        else:
            ta[k] = max(k_send[k], ta[k - 1] + wire_prev)
            tb[k] = max(k_send[k] + _B_DELAY_MIN + randint(rs, 0, _B_DELAY_SPAN),
                        tb[k - 1] + wire_prev)
        wire_prev = wire
    m = 0
    last = -1
    ia = 0
    ib = 0
    while ia < n or (ab and ib < n):
        if ia < n and drop[ia]:
            ia += 1
            continue
        if ab and ib < n and drop[ib]:
            ib += 1
            continue
        use_a = ia < n and (not ab or ib >= n or ta[ia] <= tb[ib])
        if use_a:
            f_pkt[m] = ia
            f_copy[m] = 0
            t = ta[ia]
            ia += 1
        else:
            f_pkt[m] = ib
            f_copy[m] = 1
            t = tb[ib]
            ib += 1
        t = max(t, last + 1)
        f_ts[m] = t
        last = t
        m += 1
    return m


@numba.njit(cache=True, inline="always")
def _be16(buf, pos, v):
    buf[pos] = (v >> 8) & 0xFF
    buf[pos + 1] = v & 0xFF


@numba.njit(cache=True)
def _frames(img, records, f_pkt, f_copy, f_off, f_len, k_first, k_count, k_seq, k_plen,
            mbuf, mstart, hdr, hsum, eth_len, ip_id0, mold):
    """Write each frame, after its pcap record header (``records[j]``), into the capture image.

    ``hdr[c * len(hdr) // 2:]`` is feed copy ``c``'s frame header up to the MoldUDP64 sequence number
    with the per-packet fields zero; ``hsum[c]`` the ones'-complement sum of its IPv4
    header words, so a frame's checksum only adds its total length and id.
    """
    nh = len(hdr) // 2
    for j in range(len(f_pkt)):
        k = f_pkt[j]
        c = f_copy[j]
        r = f_off[j] - PCAP_RECORD
        flen = f_len[j]
        for q in range(PCAP_RECORD):
            img[r + q] = records[j, q]
        p = f_off[j]
        for q in range(nh):
            img[p + q] = hdr[c * nh + q]
        ip = p + eth_len
        plen = k_plen[k]
        total = IPV4_HEADER + UDP_HEADER + plen
        ip_id = (ip_id0[c] + k) & 0xFFFF          # one id per packet sent, lost ones too
        _be16(img, ip + _IP_TOTAL_LENGTH, total)
        _be16(img, ip + _IP_ID, ip_id)
        csum = hsum[c] + total + ip_id
        csum = (csum & 0xFFFF) + (csum >> 16)
        csum = (csum & 0xFFFF) + (csum >> 16)
        _be16(img, ip + _IP_CHECKSUM, (~csum) & 0xFFFF)
        _be16(img, ip + IPV4_HEADER + _UDP_LENGTH, UDP_HEADER + plen)
        m = ip + IPV4_HEADER + UDP_HEADER
        _put(img, m + mold[0], k_seq[k], mold[2])
        _put(img, m + mold[1], k_count[k], mold[3])
        w = m + MOLD_HEADER_SIZE
        if k_count[k] != MOLD_HEARTBEAT and k_count[k] != MOLD_END_OF_SESSION:
            a = mstart[k_first[k]]
            ln = mstart[k_first[k] + k_count[k]] - a
            for q in range(ln):                 # the blocks are already laid out
                img[w + q] = mbuf[a + q]
            w += ln
        for q in range(w, p + flen):  # Ethernet padding
            img[q] = 0


# ------------------------------------------------------------------ Python side


@dataclass
class Packets:
    """The publisher's packet stream, in sending order (heartbeats and end of session included)."""

    kind: np.ndarray       # 0 data, 1 heartbeat, 2 end of session
    first: np.ndarray      # first message (data), or the next one expected
    count: np.ndarray      # MoldUDP64 count field
    seq: np.ndarray        # MoldUDP64 sequence number
    send: np.ndarray       # when it leaves the publisher (ns since midnight)
    plen: np.ndarray       # UDP payload length


def packetise(mstart: np.ndarray, mts: np.ndarray, *, max_per_packet: int, mtu: int, heartbeat_interval_ns: int,
              seed: np.uint64) -> Packets:
    """Data packets of the messages (blocks at ``mbuf[mstart[i]:mstart[i + 1]]``, ITCH times
    ``mts``), heartbeats in the silences, then the end of session."""
    n = len(mts)
    d_first, d_count, d_send = (np.empty(n, np.int64) for _ in range(3))
    nd = _packetize(mstart, mts, max_per_packet, mtu - IPV4_HEADER - UDP_HEADER, seed, d_first, d_count, d_send)
    d_first, d_count, d_send = d_first[:nd].copy(), d_count[:nd].copy(), d_send[:nd].copy()
    nk = nd + _heartbeat_count(d_send, heartbeat_interval_ns) + 1
    k = [np.empty(nk, np.int64) for _ in range(6)]
    got = _schedule(d_first, d_count, d_send, n, heartbeat_interval_ns, mstart, *k)
    assert got == nk, (got, nk)
    return Packets(*k)


def capture_order(packets: Packets, eth_len: int, *, gap_rate: float, ab: bool,
                  seed: np.uint64) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which frames the capture holds and when: ``(lost, f_pkt, f_copy, f_ts)``.

    ``lost[k]``: packet ``k`` never reached the capture; per frame in capture order,
    its packet, its line (0 = A, 1 = B) and its capture time (ns since midnight).
    """
    nk = len(packets.kind)
    copies = 2 if ab else 1
    drop = np.empty(nk, np.bool_)
    f_pkt, f_copy, f_ts = (np.empty(copies * nk, np.int64) for _ in range(3))
    nf = _capture_order(packets.kind, packets.send, packets.plen, eth_len, float(gap_rate), bool(ab), seed,
                        drop, f_pkt, f_copy, f_ts)
    return drop, f_pkt[:nf], f_copy[:nf], f_ts[:nf]


def frame_lengths(packets: Packets, f_pkt: np.ndarray, eth_len: int) -> np.ndarray:
    """Each frame's length (Ethernet padding included, no FCS)."""
    return np.maximum(ETH_MIN_FRAME, eth_len + IPV4_HEADER + UDP_HEADER + packets.plen[f_pkt])


def _frame_header(dst: int, dst_port: int, copy: int, vlans: tuple[int, ...], session: bytes) -> tuple[bytes, int]:
    """Line ``copy``'s frame header up to the MoldUDP64 sequence number, with total
    length, id, checksum and UDP length zero, and the ones'-complement sum of its IPv4 words."""
    # Two tags = QinQ: the outer one is the service tag (0x88A8), the inner a C-tag (0x8100).
    tpids = (ETHERTYPE_VLAN[0],) if len(vlans) == 1 else (ETHERTYPE_VLAN[1], ETHERTYPE_VLAN[0])[:len(vlans)]
    eth = ethernet_header(multicast_mac(dst), _SRC_MAC[copy], vlans, tpids)
    ip = ipv4_header(0, src_ip=_SRC_IP[copy], dst_ip=dst, fragment=_IP_DF, ttl=_TTL, protocol=IP_PROTO_UDP,
                     checksum=0)
    udp = udp_header(_SRC_PORT[copy], dst_port, 0)
    mold = bytearray(_MOLD["sequence"].offset)
    mold[_MOLD["session"].offset:_MOLD["session"].offset + len(session)] = session
    return eth + ip + udp + bytes(mold), sum(struct.unpack(f">{IPV4_HEADER // 2}H", ip))


@dataclass
class FrameHeaders:
    """The A and B lines' frame header templates (see :func:`frame_headers`)."""

    hdr: np.ndarray        # the A then the B template, equal lengths
    hsum: np.ndarray       # their IPv4 header word sums
    eth_len: int           # Ethernet header length (tags included)


def frame_headers(lines: list[tuple[int, int]], vlans: tuple[int, ...], session: bytes) -> FrameHeaders:
    """Both lines' templates: ``lines`` holds each line's (multicast group, UDP port)."""
    (ha, sa), (hb, sb) = (_frame_header(dst, port, c, vlans, session) for c, (dst, port) in enumerate(lines))
    return FrameHeaders(np.frombuffer(ha + hb, np.uint8), np.array([sa, sb], np.int64),
                        len(ha) - IPV4_HEADER - UDP_HEADER - _MOLD["sequence"].offset)


def write_frames(out: np.ndarray, records: np.ndarray, f_pkt: np.ndarray, f_copy: np.ndarray, f_off: np.ndarray,
                 f_len: np.ndarray, packets: Packets, mbuf: np.ndarray, mstart: np.ndarray,
                 headers: FrameHeaders, ip_id0: np.ndarray) -> None:
    """Write frames (and their pcap record headers ``records``) into ``out`` at ``f_off``."""
    _frames(out, records, f_pkt, f_copy, f_off, f_len, packets.first, packets.count, packets.seq, packets.plen,
            mbuf, mstart, headers.hdr, headers.hsum, headers.eth_len, ip_id0, _MOLD_OFF)
