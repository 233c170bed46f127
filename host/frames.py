"""Build single ITCH messages, MoldUDP64 packets and Ethernet frames by hand.

For tests, examples and crafting corner cases; the bulk generator
(:mod:`.gen`) builds millions of frames its own vectorized way.  Message
layouts come from :mod:`.formats`.
"""

from __future__ import annotations

import struct

from .contract.formats import MESSAGE_BY_CODE, MOLD_END_OF_SESSION, MOLD_HEARTBEAT

__all__ = ["encode_message", "mold_packet", "udp_frame", "ip_checksum", "DEFAULT_SESSION"]

DEFAULT_SESSION = b"000010059B"


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


def udp_frame(payload: bytes, *, vlans: tuple[int, ...] = (141,), dst_ip: int = 0xE9360C6F,
              src_ip: int = 0xCEC87F8A, dst_port: int = 26477, src_port: int = 49653,
              ip_options: bytes = b"", fragment: int = 0, protocol: int = 17, ttl: int = 21,
              bad_checksum: bool = False, udp_length: int | None = None,
              ip_total_length: int | None = None, pad: bool = True) -> bytes:
    """An Ethernet II frame carrying ``payload`` in UDP over IPv4 (no FCS).

    ``ip_options`` (a multiple of 4 bytes) shifts the payload's byte alignment;
    the keyword overrides build the malformed frames the parser must reject.
    """
    if len(ip_options) % 4 or len(ip_options) > 40:
        raise ValueError("IPv4 options must be a multiple of 4 bytes, at most 40")
    mac_dst = bytes([0x01, 0x00, 0x5E, (dst_ip >> 16) & 0x7F, (dst_ip >> 8) & 0xFF, dst_ip & 0xFF])
    eth = mac_dst + bytes.fromhex("d4aff7cb20d5")
    for v in vlans:
        eth += struct.pack(">HH", 0x8100, v & 0xFFF)
    eth += struct.pack(">H", 0x0800)
    ulen = 8 + len(payload) if udp_length is None else udp_length
    ihl = 5 + len(ip_options) // 4
    total = ihl * 4 + 8 + len(payload) if ip_total_length is None else ip_total_length
    hdr = struct.pack(">BBHHHBBHII", 0x40 | ihl, 0, total, 0xBBAB, fragment, ttl, protocol, 0,
                      src_ip, dst_ip) + ip_options
    csum = ip_checksum(hdr) ^ (0xFFFF if bad_checksum else 0)
    hdr = hdr[:10] + struct.pack(">H", csum) + hdr[12:]
    frame = eth + hdr + struct.pack(">HHHH", src_port, dst_port, ulen, 0) + payload
    return frame.ljust(60, b"\0") if pad else frame
