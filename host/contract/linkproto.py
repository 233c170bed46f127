"""The host link's wire protocol, once: what the gateware sends and the host backend reads.

Pure data (the standard library only), part of the contract between the gateware and
the host (:mod:`wiretick.host.contract`): imported by the gateware
(:mod:`wiretick.hdl.hostlink`) and by the host backend (:mod:`wiretick.host.hostlink`).
docs/hostlink.md explains the design; this module is its normative definition.

Every packet is a UDP datagram over IPv4 between the board's second Ethernet port
and the host.  The UDP payload is a sequence of 64-bit **words**, each
little-endian (byte ``k`` of a word is bits ``8k..8k+7``, as the gateware's 8-byte
beats carry them).  Word 0 is the packet header:

====== ======= ==================================================================
bits   field   meaning
====== ======= ==================================================================
0-15   magic   :data:`MAGIC` (bytes ``"WT"``)
16-23  version :data:`VERSION`
24-31  kind    :data:`KIND_DATA` (device to host) or :data:`KIND_REQUEST` (host to device)
32-63  seq     DATA: the link sequence number (1, 2, ... from reset, mod 2**32);
               REQUEST: the host's tag, echoed in the response
====== ======= ==================================================================

A **DATA** packet (device to host) carries records, back to back, in the order the
device produced them (the host applies them in that order):

- ``REC_WRITE``: word A, word B = the bus address of the first beat, then
  ``nbeats`` (1..8) data words, every byte strobed;
- ``REC_WRITE_STROBED``: the same, then one word of byte strobes (bits ``8i..8i+7``:
  beat ``i``, bit ``j``: byte ``j`` of that beat is written);
- ``REC_READ`` / ``REC_WRITE_ACK``: the answer to a register request: word A, word B =
  offset (bits 0-31) | value (bits 32-63; the value read, 0 for a write).

Word A: ``kind`` (bits 0-7), ``nbeats`` (8-15, writes), ``status`` (16-23: the
AXI4-Lite response of a register access, 0 = OKAY), ``tag`` (32-63: the request's
tag, register answers).

A **REQUEST** packet (host to device) holds exactly one register access: the
header (``seq`` = tag), word 1 = ``op`` (bits 0-7: :data:`OP_READ` or
:data:`OP_WRITE`), byte strobes (bits 8-11), offset (bits 32-63, a byte offset of
the register map), word 2 = the value to write (bits 0-31).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = [
    "MAGIC", "VERSION", "KIND_DATA", "KIND_REQUEST", "REC_WRITE", "REC_WRITE_STROBED", "REC_READ",
    "REC_WRITE_ACK", "OP_READ", "OP_WRITE", "MAX_BEATS", "WORD", "HEADER_BYTES", "MAX_PAYLOAD",
    "MAX_PAYLOAD_WORDS", "REQUEST_WORDS", "DEFAULT_PORT", "LinkAddresses", "DEFAULT_ADDRESSES",
    "header_word", "parse_header", "record_word", "request_payload", "ipv4_checksum", "ETH_IP_UDP_BYTES",
    "frame_overhead", "ticks_per_second",
]

#: Header bytes ``"WT"`` read as a little-endian u16.
MAGIC = 0x5457
VERSION = 1

KIND_DATA = 1
KIND_REQUEST = 2

REC_WRITE = 1
REC_WRITE_STROBED = 2
REC_READ = 3
REC_WRITE_ACK = 4

OP_READ = 1
OP_WRITE = 2

#: Beats of one write record (a longer AXI burst becomes several records).
MAX_BEATS = 8
#: Bytes of a word.
WORD = 8
#: Ethernet (14) + IPv4 without options (20) + UDP (8).
ETH_IP_UDP_BYTES = 42
HEADER_BYTES = ETH_IP_UDP_BYTES
#: Largest UDP payload the device sends: fits a 1500-byte IP MTU (1500 - 20 - 8 = 1472), in words.
MAX_PAYLOAD_WORDS = 1472 // WORD
MAX_PAYLOAD = MAX_PAYLOAD_WORDS * WORD
#: A request's UDP payload: header, op word, value word.
REQUEST_WORDS = 3

#: UDP port of both ends unless configured otherwise: 0x5754 ("WT").
DEFAULT_PORT = 0x5754


def _mac(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"MAC address {text!r}: six two-digit hex bytes separated by ':'")
    return int("".join(parts), 16)


@dataclass(frozen=True)
class LinkAddresses:
    """Both ends of the link: MAC and IPv4 addresses and UDP ports.

    The device sends every DATA packet to ``host_*`` from ``device_*`` and accepts
    requests addressed to ``device_mac`` / ``device_ip`` / ``device_port`` (any
    source).  The defaults suit a direct cable: the device sends to the broadcast
    MAC address, so no ARP is needed; give the host's NIC address 192.168.77.1/24.
    """

    device_mac: str = "02:57:54:00:00:01"     # locally administered
    device_ip: str = "192.168.77.2"
    device_port: int = DEFAULT_PORT
    host_mac: str = "ff:ff:ff:ff:ff:ff"
    host_ip: str = "192.168.77.1"
    host_port: int = DEFAULT_PORT

    def __post_init__(self):
        for name in ("device_mac", "host_mac"):
            _mac(getattr(self, name))
        for name in ("device_ip", "host_ip"):
            ipaddress.IPv4Address(getattr(self, name))
        for name in ("device_port", "host_port"):
            if not 1 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name} {getattr(self, name)} is not a UDP port")

    def mac_int(self, which: str) -> int:
        return _mac(getattr(self, f"{which}_mac"))

    def ip_int(self, which: str) -> int:
        return int(ipaddress.IPv4Address(getattr(self, f"{which}_ip")))


DEFAULT_ADDRESSES = LinkAddresses()


def header_word(kind: int, seq: int) -> int:
    return MAGIC | VERSION << 16 | kind << 24 | (seq & 0xFFFF_FFFF) << 32


def parse_header(word: int) -> tuple[int, int, int, int]:
    """(magic, version, kind, seq) of a header word."""
    return word & 0xFFFF, (word >> 16) & 0xFF, (word >> 24) & 0xFF, word >> 32


def record_word(kind: int, *, nbeats: int = 0, status: int = 0, tag: int = 0) -> int:
    return kind | nbeats << 8 | status << 16 | (tag & 0xFFFF_FFFF) << 32


def request_payload(tag: int, op: int, offset: int, value: int = 0, strobes: int = 0xF) -> bytes:
    """The UDP payload of a register request."""
    return struct.pack("<QQQ", header_word(KIND_REQUEST, tag), op | strobes << 8 | offset << 32,
                       value & 0xFFFF_FFFF)


def ipv4_checksum(header: bytes) -> int:
    """The one's-complement checksum of an IPv4 header (checksum field as given)."""
    s = sum(struct.unpack(f">{len(header) // 2}H", header))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def frame_overhead() -> int:
    """Wire bytes of a DATA frame beyond its records: preamble+SFD 8, headers 42, packet header 8, FCS 4, gap 12."""
    return 8 + ETH_IP_UDP_BYTES + WORD + 4 + 12


def ticks_per_second(line_rate: float = 1e9, payload_words: int = MAX_PAYLOAD_WORDS) -> float:
    """Ticks a second the link carries at most: full packets of one-record-per-tick (10 words)."""
    per_tick = (2 + 8) * WORD
    ticks = (payload_words - 1) // 10
    return line_rate / 8 / (frame_overhead() + ticks * per_tick) * ticks
