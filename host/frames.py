"""Build and read single ITCH messages, MoldUDP64 packets and Ethernet frames, by hand.

The one frame builder (messages -> MoldUDP64 packet -> UDP/IPv4/Ethernet frame) and
the one frame walker (frame -> Ethernet/VLAN/IPv4/UDP/MoldUDP64 -> message blocks) in
Python: for tests, examples, benches and crafting corner cases.  The bulk generator
(:mod:`.gen`) takes its header template from :func:`ethernet_header`,
:func:`ipv4_header` and :func:`udp_header` and fills in the per-packet fields in a
compiled kernel; the reference decoder (:mod:`.decode`) walks frames in its own
compiled kernel, checking what this walker takes for granted.  Layouts come from
:mod:`.contract.formats`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .contract.formats import (ETHERTYPE_IPV4, ETHERTYPE_VLAN, IP_PROTO_UDP, MESSAGE_BY_CODE, MESSAGES,
                               MOLD_END_OF_SESSION, MOLD_HEADER_SIZE, MOLD_HEARTBEAT)

__all__ = ["encode_message", "mold_packet", "udp_frame", "make_frame", "random_message", "random_frame",
           "multicast_mac", "ethernet_header", "ipv4_header", "udp_header", "ip_checksum", "DEFAULT_SESSION",
           "FrameError", "MoldFrame", "parse_frame", "batch_messages"]

DEFAULT_SESSION = b"000010059B"
IPV4_HEADER = 20
UDP_HEADER = 8

def encode_message(code: str, **values: int | bytes | str) -> bytes:
    """One ITCH 5.0 message; fields not given are zero (text: spaces).

    >>> encode_message("D", stock_locate=7, timestamp=1, order_ref=42)[:3]
    b'D\\x00\\x07'
    """
    msg = MESSAGE_BY_CODE[code]
    out = bytearray(msg.length)
    names = {f.name for f in msg.fields}
    unknown = set(values) - names
    if unknown:
        raise KeyError(f"ITCH {code!r} has no field(s) {sorted(unknown)}; it has {sorted(names)}")
    for f in msg.fields:
        if f.name == "message_type":
            out[0] = ord(code)
            continue
        v = values.get(f.name)
        if f.kind in ("s", "c"):
            raw = (v.encode() if isinstance(v, str) else (v or b"")).ljust(f.size, b" ")
            if isinstance(v, int):
                raw = bytes([v])
            if len(raw) != f.size:
                raise ValueError(f"{code}.{f.name} takes {f.size} bytes, got {raw!r}")
            out[f.offset:f.offset + f.size] = raw
        else:
            out[f.offset:f.offset + f.size] = int(v or 0).to_bytes(f.size, "big")
    return bytes(out)


def mold_packet(seq: int, messages: list[bytes] | None = None, *, session: bytes = DEFAULT_SESSION,
                count: int | None = None, heartbeat: bool = False, end_of_session: bool = False) -> bytes:
    """A MoldUDP64 downstream packet; ``count`` overrides the header count (to build bad ones)."""
    blocks = b"".join(struct.pack(">H", len(m)) + m for m in (messages or []))
    if count is None:
        count = MOLD_HEARTBEAT if heartbeat else MOLD_END_OF_SESSION if end_of_session else len(messages or [])
    return session.ljust(10)[:10] + struct.pack(">QH", seq, count) + blocks


def ip_checksum(header: bytes) -> int:
    """The IPv4 header checksum of ``header`` (its checksum field taken as zero)."""
    s = sum(struct.unpack(f">{len(header) // 2}H", header))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def multicast_mac(group: int) -> bytes:
    """The Ethernet address of IPv4 multicast ``group``: 01:00:5e and its low 23 bits."""
    return bytes([0x01, 0x00, 0x5E, (group >> 16) & 0x7F, (group >> 8) & 0xFF, group & 0xFF])


def ethernet_header(dst_mac: bytes, src_mac: bytes, vlans: tuple[int, ...] = (),
                    tpids: tuple[int, ...] | None = None, ethertype: int = ETHERTYPE_IPV4) -> bytes:
    """An Ethernet II header with ``vlans`` tags, outermost first (TPIDs ``tpids``, default 0x8100 each)."""
    tpids = (ETHERTYPE_VLAN[0],) * len(vlans) if tpids is None else tuple(tpids)
    if len(tpids) != len(vlans):
        raise ValueError(f"{len(vlans)} VLAN tags but {len(tpids)} TPIDs")
    tags = b"".join(struct.pack(">HH", t, v & 0xFFF) for t, v in zip(tpids, vlans))
    return dst_mac + src_mac + tags + struct.pack(">H", ethertype)


def ipv4_header(total_length: int, *, src_ip: int, dst_ip: int, ident: int = 0, fragment: int = 0,
                ttl: int = 64, protocol: int = IP_PROTO_UDP, options: bytes = b"",
                checksum: int | None = None) -> bytes:
    """An IPv4 header (IHL from ``options``, a multiple of 4 bytes, at most 40).

    ``checksum`` None computes it; an integer is written as given (0 for a template
    whose length and id are filled in later).
    """
    if len(options) % 4 or len(options) > 40:
        raise ValueError("IPv4 options must be a multiple of 4 bytes, at most 40")
    ihl = 5 + len(options) // 4
    hdr = struct.pack(">BBHHHBBHII", 0x40 | ihl, 0, total_length, ident, fragment, ttl, protocol, 0,
                      src_ip, dst_ip) + options
    csum = ip_checksum(hdr) if checksum is None else checksum
    return hdr[:10] + struct.pack(">H", csum) + hdr[12:]


def udp_header(src_port: int, dst_port: int, length: int, checksum: int = 0) -> bytes:
    """A UDP header (checksum 0: none, as market data publishers send)."""
    return struct.pack(">HHHH", src_port, dst_port, length, checksum)


def udp_frame(payload: bytes, *, vlans: tuple[int, ...] = (141,), tpids: tuple[int, ...] | None = None,
              dst_ip: int = 0xE9360C6F, src_ip: int = 0xCEC87F8A, dst_port: int = 26477, src_port: int = 49653,
              ip_options: bytes = b"", fragment: int = 0, protocol: int = IP_PROTO_UDP, ttl: int = 21,
              bad_checksum: bool = False, udp_length: int | None = None,
              ip_total_length: int | None = None, pad: bool = True) -> bytes:
    """An Ethernet II frame carrying ``payload`` in UDP over IPv4 (no FCS).

    ``ip_options`` (a multiple of 4 bytes) shifts the payload's byte alignment;
    the keyword overrides build the malformed frames the parser must reject.
    """
    eth = ethernet_header(multicast_mac(dst_ip), bytes.fromhex("d4aff7cb20d5"), vlans, tpids)
    ulen = UDP_HEADER + len(payload) if udp_length is None else udp_length
    total = IPV4_HEADER + len(ip_options) + UDP_HEADER + len(payload) if ip_total_length is None \
        else ip_total_length
    ip = ipv4_header(total, src_ip=src_ip, dst_ip=dst_ip, ident=0xBBAB, fragment=fragment, ttl=ttl,
                     protocol=protocol, options=ip_options)
    if bad_checksum:
        ip = ip[:10] + bytes([ip[10] ^ 0xFF, ip[11] ^ 0xFF]) + ip[12:]
    frame = eth + ip + udp_header(src_port, dst_port, ulen) + payload
    return frame.ljust(60, b"\0") if pad else frame


def make_frame(messages: list[bytes], *, seq: int = 1, vlans: int = 1, ip_option_words: int = 0,
               tpid: int = ETHERTYPE_VLAN[0], **kw) -> bytes:
    """A MoldUDP64 frame of ``messages`` for tests: ``vlans`` tags (ids 100...; TPID ``tpid``
    each) and ``ip_option_words`` words of IPv4 options shift the payload; ``kw`` goes to
    :func:`udp_frame` (``session``, ``count``, ``heartbeat``, ``end_of_session`` to
    :func:`mold_packet`)."""
    mold_kw = {k: kw.pop(k) for k in ("session", "count", "heartbeat", "end_of_session") if k in kw}
    return udp_frame(mold_packet(seq, messages, **mold_kw), vlans=tuple(range(100, 100 + vlans)),
                     tpids=(tpid,) * vlans, ip_options=bytes(4 * ip_option_words), **kw)


def random_message(rng, code: str | None = None) -> bytes:
    """A message of type ``code`` (random type if None) with random field bytes (``rng``: a ``random.Random``)."""
    msg = MESSAGE_BY_CODE[code] if code else MESSAGES[rng.randrange(len(MESSAGES))]
    body = bytearray(rng.randbytes(msg.length))
    body[0] = msg.type_byte
    if msg.code == "C" and rng.random() < 0.5:
        body[msg.field("printable").offset] = ord("Y")
    return bytes(body)


def random_frame(rng, *, corrupt: bool = True) -> bytes:
    """A random MoldUDP64 frame; with ``corrupt``, sometimes damaged on purpose
    (truncated, header or block bytes overwritten, odd VLAN tags or IPv4 options)."""
    n = rng.choice([0, 1, 1, 2, 3, 5, 8])
    msgs = [random_message(rng) for _ in range(n)]
    if corrupt and msgs and rng.random() < 0.2:
        # A block of an unknown type, possibly very short.
        msgs.insert(rng.randrange(len(msgs) + 1), bytes([rng.choice(b"aZ0\x00\xff")]) + rng.randbytes(rng.randrange(0, 12)))
    kw = {}
    if rng.random() < 0.1:
        kw["heartbeat"] = True
        msgs = []
    f = bytearray(make_frame(msgs, seq=rng.randrange(1, 40), vlans=rng.randrange(3),
                             ip_option_words=rng.randrange(11), tpid=rng.choice(ETHERTYPE_VLAN),
                             session=rng.choice([b"SESSION001", b"SESSION002"]), **kw))
    if corrupt:
        r = rng.random()
        if r < 0.15:
            del f[rng.randrange(1, len(f) + 1):]
        elif r < 0.35:
            for _ in range(rng.randrange(1, 3)):
                f[rng.randrange(len(f))] = rng.randrange(256)
        elif r < 0.45:
            # Rewrite the MoldUDP64 count or a block length.
            p = len(f) - sum(len(m) + 2 for m in msgs) - 2
            struct.pack_into(">H", f, max(p, 0), rng.choice([0, 1, 2, 0xFFFF, 0xFFFE, rng.randrange(65536)]))
        elif r < 0.5:
            f += rng.randbytes(rng.randrange(1, 20))
    return bytes(f)


# --------------------------------------------------------------------------- reading

class FrameError(ValueError):
    """An IPv4/UDP frame too short or malformed to find its MoldUDP64 header in."""


@dataclass(frozen=True)
class MoldFrame:
    """Where the layers of a MoldUDP64 frame start, its header fields and its message blocks.

    Offsets are into the frame.  ``end`` is where the UDP length says the payload ends
    (it may lie past the frame's end, or before its blocks' end, in a malformed frame).
    ``blocks`` are the message blocks' contents, as many as lie wholly within the
    payload and the frame; ``complete`` says whether that is every block ``count``
    announces (a heartbeat or end of session announces none); ``tail`` is the offset
    after the last of them.
    """

    tags: tuple[tuple[int, int], ...]     # (TPID, VLAN id), outermost first
    ip: int
    udp: int
    mold: int
    end: int
    session: bytes
    seq: int
    count: int
    blocks: tuple[bytes, ...]
    tail: int
    complete: bool

    @property
    def first_block(self) -> int:
        """Offset of the first message block (just after the MoldUDP64 header)."""
        return self.mold + MOLD_HEADER_SIZE


def parse_frame(frame: bytes) -> MoldFrame | None:
    """Walk Ethernet (0..n VLAN tags), IPv4, UDP and MoldUDP64 headers, then the message blocks.

    Returns None for a frame that is not IPv4 carrying UDP; raises :class:`FrameError`
    when such a frame is too short for its headers or has an IHL below 5.  Nothing
    else is checked (checksums, lengths against each other): the reference decoder
    (:mod:`wiretick.host.decode`) is what judges frames.
    """
    frame = bytes(frame)
    p, tags = 12, []
    while len(frame) >= p + 4 and struct.unpack_from(">H", frame, p)[0] in ETHERTYPE_VLAN:
        tpid, tci = struct.unpack_from(">HH", frame, p)
        tags.append((tpid, tci & 0xFFF))
        p += 4
    if len(frame) < p + 2 + IPV4_HEADER or struct.unpack_from(">H", frame, p)[0] != ETHERTYPE_IPV4:
        return None
    ip = p + 2
    if frame[ip] >> 4 != 4 or frame[ip + 9] != IP_PROTO_UDP:
        return None
    if frame[ip] & 15 < 5:
        raise FrameError(f"IHL {frame[ip] & 15} is below 5")
    udp = ip + 4 * (frame[ip] & 15)
    mold = udp + UDP_HEADER
    if len(frame) < mold + MOLD_HEADER_SIZE:
        raise FrameError(f"a {len(frame)}-byte frame ends before its MoldUDP64 header does ({mold + MOLD_HEADER_SIZE})")
    end = udp + struct.unpack_from(">H", frame, udp + 4)[0]
    session, seq, count = struct.unpack_from(">10sQH", frame, mold)
    announced = 0 if count in (MOLD_HEARTBEAT, MOLD_END_OF_SESSION) else count
    limit = min(end, len(frame))
    q, blocks = mold + MOLD_HEADER_SIZE, []
    while len(blocks) < announced and q + 2 <= limit:
        (n,) = struct.unpack_from(">H", frame, q)
        if q + 2 + n > limit:
            break
        blocks.append(frame[q + 2:q + 2 + n])
        q += 2 + n
    return MoldFrame(tuple(tags), ip, udp, mold, end, session, seq, count, tuple(blocks), q,
                     len(blocks) == announced)


def batch_messages(batch) -> list[bytes]:
    """Every ITCH message of a :class:`~wiretick.host.capture.FrameBatch`, in order (the MoldUDP64
    blocks of its IPv4/UDP frames), e.g. to feed an independent decoder."""
    out: list[bytes] = []
    for i in range(len(batch)):
        m = parse_frame(batch.frame(i))
        if m is not None:
            out += m.blocks
    return out
