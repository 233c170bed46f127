"""AXI4 signatures: a write-only AXI4 master and an AXI4-Lite slave.

Both are plain :class:`amaranth.lib.wiring.Signature` objects whose members carry
the AXI signal names in lower case (``awaddr``, ``wdata``, ``bresp`` ...), seen
from the **master**: the master drives ``Out`` members, the slave uses the
flipped signature (``In(AXI4LiteSignature(...))``).  A port ``m_axi`` of such a
signature becomes Verilog ports ``m_axi__awaddr`` and so on.

Only what the wiretick engines use is present:

* :class:`AXI4WriteSignature` -- the AW, W and B channels of full AXI4, no IDs
  (one ID: responses come back in order), no user signals.  ``awcache`` and
  ``awprot`` are driven so that an interconnect or a PCIe bridge gets defined
  values.
* :class:`AXI4LiteSignature` -- all five AXI4-Lite channels (AW, W, B, AR, R).

Constants for the encodings follow the AXI specification.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "BURST_FIXED", "BURST_INCR", "BURST_WRAP",
    "RESP_OKAY", "RESP_EXOKAY", "RESP_SLVERR", "RESP_DECERR",
    "CACHE_NORMAL_NONCACHEABLE_BUFFERABLE",
    "AXI4WriteSignature", "AXI4LiteSignature", "burst_size",
]

BURST_FIXED = 0b00
BURST_INCR = 0b01
BURST_WRAP = 0b10

RESP_OKAY = 0b00
RESP_EXOKAY = 0b01
RESP_SLVERR = 0b10
RESP_DECERR = 0b11

#: AxCACHE = 0b0011: normal non-cacheable bufferable memory (what DMA to host memory uses).
CACHE_NORMAL_NONCACHEABLE_BUFFERABLE = 0b0011

_DATA_WIDTHS = (64, 128, 256, 512)
_LITE_DATA_WIDTHS = (32, 64)


def burst_size(data_width: int) -> int:
    """AxSIZE of full-width beats: log2 of the bytes per beat."""
    nbytes = data_width // 8
    if nbytes * 8 != data_width or nbytes & (nbytes - 1):
        raise ValueError(f"data width {data_width} is not a power-of-two number of bytes")
    return nbytes.bit_length() - 1


class _BusSignature(wiring.Signature):
    """A signature known by its class and its address and data widths (equal when they are)."""

    addr_width: int
    data_width: int

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width
                and other.data_width == self.data_width)

    def __hash__(self):
        return hash((type(self), self.addr_width, self.data_width))

    def __repr__(self):
        return f"{type(self).__name__}(addr_width={self.addr_width}, data_width={self.data_width})"


class AXI4WriteSignature(_BusSignature):
    """Write channels (AW, W, B) of an AXI4 master, seen from the master.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr`` (default 64: host memory behind a PCIe bridge).
    data_width : int
        Width of ``wdata``: 64, 128, 256 or 512 bits; ``wstrb`` has one bit per byte.

    Members
    -------
    awaddr, awlen (8), awsize (3), awburst (2), awcache (4), awprot (3), awvalid : Out
    awready : In
    wdata, wstrb, wlast, wvalid : Out
    wready : In
    bresp (2), bvalid : In
    bready : Out
    """

    def __init__(self, *, addr_width: int = 64, data_width: int = 512):
        if data_width not in _DATA_WIDTHS:
            raise ValueError(f"AXI4 data width must be one of {_DATA_WIDTHS}, not {data_width}")
        if not 12 <= addr_width <= 64:
            raise ValueError(f"AXI4 address width must be 12..64, not {addr_width}")
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width),
            "awlen": Out(8),
            "awsize": Out(3),
            "awburst": Out(2),
            "awcache": Out(4),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wlast": Out(1),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
        })



class AXI4LiteSignature(_BusSignature):
    """An AXI4-Lite interface (AW, W, B, AR, R), seen from the master.

    Parameters
    ----------
    addr_width : int
        Width of ``awaddr``/``araddr`` (byte addresses).
    data_width : int
        32 or 64.

    Members
    -------
    awaddr, awprot (3), awvalid : Out;  awready : In
    wdata, wstrb, wvalid : Out;  wready : In
    bresp (2), bvalid : In;  bready : Out
    araddr, arprot (3), arvalid : Out;  arready : In
    rdata, rresp (2), rvalid : In;  rready : Out
    """

    def __init__(self, *, addr_width: int = 12, data_width: int = 32):
        if data_width not in _LITE_DATA_WIDTHS:
            raise ValueError(f"AXI4-Lite data width must be 32 or 64, not {data_width}")
        if not 2 <= addr_width <= 64:
            raise ValueError(f"AXI4-Lite address width must be 2..64, not {addr_width}")
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "awaddr": Out(addr_width),
            "awprot": Out(3),
            "awvalid": Out(1),
            "awready": In(1),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "wvalid": Out(1),
            "wready": In(1),
            "bresp": In(2),
            "bvalid": In(1),
            "bready": Out(1),
            "araddr": Out(addr_width),
            "arprot": Out(3),
            "arvalid": Out(1),
            "arready": In(1),
            "rdata": In(data_width),
            "rresp": In(2),
            "rvalid": In(1),
            "rready": Out(1),
        })

