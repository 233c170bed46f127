"""RGMII (1 Gb/s) waveforms in Python: frames to pin values and pin values back to frames.

One RGMII cycle carries one byte: the low nibble and CTL = DV (receive) / EN
(transmit) in the first half (clock high), the high nibble and CTL = DV xor ER in
the second.  A cycle is a tuple ``(ctl_hi, d_hi, ctl_lo, d_lo)``: the pins in the
half where the clock is high, then where it is low.

:func:`encode` makes a PHY's receive waveform from frames (preamble, SFD, FCS,
inter-frame gaps, a bad FCS where asked); :class:`Decoder` turns a transmit
waveform back into frames and checks the preamble, the FCS and the gaps.
Used by the gateware tests and the pin-level simulation.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["PREAMBLE", "IFG", "fcs", "encode", "DecodedFrame", "Decoder"]

PREAMBLE = bytes([0x55] * 7 + [0xD5])
#: Minimum inter-frame gap, bytes.
IFG = 12
_IDLE = (0, 0, 0, 0)


def fcs(frame: bytes) -> bytes:
    """The Ethernet FCS of ``frame`` as sent (CRC-32, least significant byte first)."""
    return zlib.crc32(frame).to_bytes(4, "little")


def encode(frame: bytes, *, bad_fcs: bool = False, gap: int = IFG) -> list[tuple[int, int, int, int]]:
    """The cycles of one frame on the wire: preamble, SFD, ``frame``, FCS, then ``gap`` idle cycles."""
    crc = fcs(frame)
    if bad_fcs:
        crc = bytes([crc[0] ^ 0xFF]) + crc[1:]
    out = [(1, b & 0xF, 1, b >> 4) for b in PREAMBLE + frame + crc]
    return out + [_IDLE] * gap


@dataclass
class DecodedFrame:
    """A frame off the pins: ``data`` without preamble and FCS."""

    data: bytes
    fcs_ok: bool
    preamble_ok: bool
    gap_before: int          # idle cycles since the previous frame (None before the first)
    errors: int              # cycles with TX_ER / RX_ER


class Decoder:
    """Turn cycles of a transmit waveform (``feed``) into :class:`DecodedFrame` s (``frames``)."""

    def __init__(self):
        self.frames: list[DecodedFrame] = []
        self._cur: bytearray | None = None
        self._errs = 0
        self._idle: int | None = None
        self._gap: int | None = None

    def feed(self, ctl_hi: int, d_hi: int, ctl_lo: int, d_lo: int) -> DecodedFrame | None:
        """One cycle; returns the frame this cycle ended, if any."""
        if ctl_hi:
            if self._cur is None:
                self._cur = bytearray()
                self._errs = 0
                self._gap = self._idle
            self._cur.append(d_hi | d_lo << 4)
            self._errs += int(ctl_lo != ctl_hi)
            return None
        if self._idle is not None:
            self._idle += 1
        if self._cur is None:
            return None
        raw = bytes(self._cur)
        self._cur = None
        self._idle = 1
        pre_ok = raw[:8] == PREAMBLE
        body = raw[8:-4] if pre_ok else raw
        ok = pre_ok and len(raw) >= 12 and fcs(body) == raw[-4:]
        frame = DecodedFrame(body, ok, pre_ok, self._gap, self._errs)
        self.frames.append(frame)
        return frame
