"""RGMII transmit MAC (1000BASE-T): frames from the core clock domain onto a PHY's transmit pins.

:class:`RGMIITransmitter` takes whole frames (without preamble or FCS) as 8-byte
beats of :func:`~wiretick.hdl.common.mac_beat_layout` in the ``sync`` domain,
carries them through an asynchronous FIFO (:class:`_BeatCrossing`) into the transmit
domain (125 MHz, one byte a cycle) and sends, per frame: the preamble (seven
``0x55``) and SFD (``0xD5``), the frame, zero padding up to 60 bytes, the FCS
(CRC-32, least significant byte first) and at least ``ifg`` idle bytes (12: the
minimum inter-frame gap).

RGMII at 1 Gb/s carries a byte per cycle of TXC on both edges: TXD[3:0] is the low
nibble while TXC is high and the high nibble while it is low; TX_CTL is TX_EN while
high and TX_EN xor TX_ER while low.  Each pin is an :class:`~wiretick.hdl.ecp5io.ODDRX1F`
and TXC itself is an ``ODDRX1F(1, 0)``: the clock leaves edge-aligned with the data,
so the PHY must add the 2 ns transmit delay (RGMII-ID; the Versa's and the
Colorlight's PHYs do, docs/hostlink.md).

The frame builder in the core domain writes a frame into the FIFO much faster than
the wire drains it (8 bytes a 6.4 ns cycle against 1 byte in 8 ns), so the FIFO
never runs dry inside a frame.  Should it (a stopped core clock), the byte is sent
with TX_ER (the PHY then corrupts the frame on the wire, so the host drops it) and
``underruns`` counts it; nothing waits forever.
"""

from __future__ import annotations

from amaranth.hdl import Const, DomainRenamer, Module, Mux, Signal
from amaranth.lib import crc, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.crc.catalog import CRC32_ETHERNET
from amaranth.lib.wiring import In, Out

from .common import mac_beat_layout
from .ecp5io import ODDRX1F
from .gray import gray_encode, gray_pointers

__all__ = ["RGMIITransmitter", "MIN_FRAME", "PREAMBLE"]

#: Shortest frame on the wire without its FCS (shorter frames are padded).
MIN_FRAME = 60
#: Preamble and SFD, in sending order.
PREAMBLE = bytes([0x55] * 7 + [0xD5])


class _S(enum.Enum, shape=3):
    IDLE = 0
    PREAMBLE = 1
    DATA = 2
    PAD = 3
    FCS = 4
    GAP = 5


class _BeatCrossing(wiring.Component):
    """An asynchronous FIFO (write ``sync``, read ``r_domain``) whose read side runs on registers.

    Amaranth's :class:`~amaranth.lib.fifo.AsyncFIFO` reads its RAM at the read pointer
    *plus* ``r_en & r_rdy``, so the empty compare, the pointer adder and the RAM
    address (fanned out to every LUT RAM cell of the width) form one path: the
    transmit clock's critical path (6.4 ns on the Versa; 124.5 MHz on the Colorlight's
    speed 6 after placement, against 125).  Here the LUT RAM is read asynchronously at the read pointer register
    into ``r_data``, one beat at a time: a beat is fetched when ``r_data`` is empty
    (``r_valid`` low) and the FIFO is not, and ``r_take`` empties it.  A fetch takes a
    cycle, so at most every other cycle delivers a beat (the transmitter takes one
    every eight).

    Pointers are Gray-coded across the domains (one more bit than the address: full
    and empty differ by it).  Both domains must be reset together (the board resets
    every domain while its PLL is not locked).
    """

    def __init__(self, width: int, depth: int, r_domain: str):
        if depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of 2, at least 2, not {depth}")
        self.depth = depth
        self.r_domain = r_domain
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_valid": Out(1), "r_take": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        bits = self.depth.bit_length()                 # address bits + 1
        rd = m.d[self.r_domain]
        m.submodules.storage = mem = Memory(shape=len(self.w_data), depth=self.depth, init=[])
        w_port = mem.write_port(domain="sync")
        r_port = mem.read_port(domain="comb")

        p = gray_pointers(m, bits, w_domain="sync", r_domain=self.r_domain)
        full = Signal()
        m.d.comb += [
            full.eq((p.w_gry[-1] != p.r_gry_w[-1]) & (p.w_gry[-2] != p.r_gry_w[-2])
                    & (p.w_gry[:-2] == p.r_gry_w[:-2])),
            self.w_rdy.eq(~full),
        ]
        do_write = self.w_en & ~full
        w_next = p.w_bin + do_write
        m.d.comb += [w_port.addr.eq(p.w_bin[:-1]), w_port.data.eq(self.w_data), w_port.en.eq(do_write)]
        m.d.sync += [p.w_bin.eq(w_next), p.w_gry.eq(gray_encode(w_next[:bits]))]

        m.d.comb += r_port.addr.eq(p.r_bin[:-1])
        with m.If(~self.r_valid & (p.r_gry != p.w_gry_r)):
            r_next = (p.r_bin + 1)[:bits]
            rd += [self.r_data.eq(r_port.data), self.r_valid.eq(1), p.r_bin.eq(r_next), p.r_gry.eq(gray_encode(r_next))]
        with m.Elif(self.r_take):
            rd += self.r_valid.eq(0)
        return m


class RGMIITransmitter(wiring.Component):
    """RGMII transmit MAC (see the module doc).

    Parameters
    ----------
    domain : str
        The 125 MHz transmit clock domain (TXC is made from its clock).
    fifo_depth : int
        Beats of the clock-crossing FIFO.
    ifg : int
        Idle bytes between frames (at least 12).

    Attributes
    ----------
    i_frame : In(stream.Signature(mac_beat_layout(8)))
        Frames, in ``sync``.
    txc, tx_ctl : Out(1)
    txd : Out(4)
        The pins (each driven by an ODDRX1F).
    frames : Out(32)
        Frames sent (transmit domain).
    underruns : Out(32)
        Bytes sent with TX_ER because the FIFO ran dry inside a frame.
    """

    def __init__(self, *, domain: str = "tx", fifo_depth: int = 16, ifg: int = 12):
        if ifg < 12:
            raise ValueError("the inter-frame gap is 12 bytes at least")
        self.domain = domain
        self.fifo_depth = fifo_depth
        self.ifg = ifg
        super().__init__({
            "i_frame": In(stream.Signature(mac_beat_layout(8))),
            "txc": Out(1), "tx_ctl": Out(1), "txd": Out(4),
            "frames": Out(32), "underruns": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        tx = self.domain
        layout = mac_beat_layout(8)
        m.submodules.fifo = q = _BeatCrossing(layout.size, self.fifo_depth, r_domain=tx)
        m.d.comb += [q.w_data.eq(self.i_frame.payload), q.w_en.eq(self.i_frame.valid),
                     self.i_frame.ready.eq(q.w_rdy)]
        m.submodules.crc = fcs = DomainRenamer(tx)(crc.Processor(CRC32_ETHERNET(8)))

        # The next beat waits in the crossing's output register (``nxt``); the state
        # machine takes it into ``cur``, the beat being sent.
        nxt = layout(q.r_data)
        nxt_valid = q.r_valid
        take = q.r_take
        cur = Signal(layout)
        have = Signal()                                          # cur holds the frame's next bytes
        # cur's bytes, shifted down one a byte: the byte sent is a register, not an 8-way
        # select on idx (that select, the phase mux and the CRC update were the Colorlight's
        # tx critical path: 8.3 ns, 120.2 MHz against 125)
        shift = Signal(64)

        state = Signal(_S)
        count = Signal(range(max(self.ifg, MIN_FRAME, 8) + 1))     # bytes of the current phase
        idx = Signal(3)                                          # byte of the beat
        length = Signal(range(MIN_FRAME + 1))                    # frame bytes sent, saturating
        byte = Signal(8)
        # What the CRC takes: the frame's and the padding's bytes only.  Fed from ``byte``,
        # the CRC's own output (sent in the FCS phase, when the CRC does not update) was on
        # its input's path: CRC register, FCS byte select, phase mux, CRC update, 7.3 ns,
        # the Colorlight's tx critical path once the receive clocks were re-timed.
        crc_byte = Signal(8)
        en = Signal()
        er = Signal()
        starved = Signal()

        with m.Switch(state):
            with m.Case(_S.IDLE):
                with m.If(nxt_valid):
                    m.d.comb += take.eq(1)              # a beat that does not start a frame cannot be sent
                    with m.If(nxt.first):
                        m.d[tx] += [state.eq(_S.PREAMBLE), count.eq(0), cur.eq(nxt), shift.eq(nxt.data),
                                    have.eq(1)]
            with m.Case(_S.PREAMBLE):
                m.d.comb += [en.eq(1), byte.eq(Mux(count == 7, PREAMBLE[7], PREAMBLE[0]))]
                m.d[tx] += count.eq(count + 1)
                with m.If(count == 7):
                    m.d[tx] += [state.eq(_S.DATA), idx.eq(0), length.eq(0), starved.eq(0)]
            with m.Case(_S.DATA):
                m.d.comb += en.eq(1)
                with m.If(~have):
                    m.d.comb += er.eq(1)
                    with m.If(~starved):
                        m.d[tx] += [starved.eq(1), self.underruns.eq(self.underruns + 1)]
                    with m.If(nxt_valid):
                        m.d.comb += take.eq(1)
                        m.d[tx] += [cur.eq(nxt), shift.eq(nxt.data), have.eq(1)]
                with m.Else():
                    m.d.comb += [byte.eq(shift[:8]), crc_byte.eq(shift[:8]), fcs.valid.eq(1),
                                 fcs.start.eq(length == 0)]
                    m.d[tx] += [idx.eq(idx + 1), length.eq(Mux(length == MIN_FRAME, MIN_FRAME, length + 1)),
                                shift.eq(shift[8:])]
                    with m.If((idx + 1 >= cur.nbytes) | (idx == 7)):
                        m.d[tx] += idx.eq(0)
                        with m.If(cur.last):
                            m.d[tx] += have.eq(0)
                            # (not length + 1 < MIN_FRAME: that adder and compare, two carry
                            # chains into the state, were the Colorlight's tx path, 7.3 ns)
                            with m.If(length < MIN_FRAME - 1):
                                m.d[tx] += state.eq(_S.PAD)
                            with m.Else():
                                m.d[tx] += [state.eq(_S.FCS), count.eq(0)]
                        with m.Elif(nxt_valid):
                            m.d.comb += take.eq(1)
                            m.d[tx] += [cur.eq(nxt), shift.eq(nxt.data)]
                        with m.Else():
                            m.d[tx] += have.eq(0)
            with m.Case(_S.PAD):
                m.d.comb += [en.eq(1), byte.eq(0), fcs.valid.eq(1)]
                m.d[tx] += length.eq(length + 1)
                with m.If(length == MIN_FRAME - 1):
                    m.d[tx] += [state.eq(_S.FCS), count.eq(0)]
            with m.Case(_S.FCS):
                m.d.comb += [en.eq(1), byte.eq(fcs.crc.word_select(count[:2], 8))]
                m.d[tx] += count.eq(count + 1)
                with m.If(count == 3):
                    m.d[tx] += [state.eq(_S.GAP), count.eq(0), self.frames.eq(self.frames + 1)]
            with m.Case(_S.GAP):
                m.d[tx] += count.eq(count + 1)
                with m.If(count == self.ifg - 1):
                    m.d[tx] += state.eq(_S.IDLE)
        m.d.comb += fcs.data.eq(crc_byte)

        # The pins' values registered once in the fabric: the I/O tiles are far from the
        # logic that chooses the byte.
        byte_q = Signal(8)
        en_q = Signal()
        er_q = Signal()
        m.d[tx] += [byte_q.eq(byte), en_q.eq(en), er_q.eq(er)]

        m.submodules.oddr_d = oddr_d = ODDRX1F(4, domain=tx)
        m.submodules.oddr_ctl = oddr_ctl = ODDRX1F(1, domain=tx)
        m.submodules.oddr_clk = oddr_clk = ODDRX1F(1, domain=tx)
        m.d.comb += [
            oddr_d.d0.eq(byte_q[:4]), oddr_d.d1.eq(byte_q[4:]),
            oddr_ctl.d0.eq(en_q), oddr_ctl.d1.eq(en_q ^ er_q),
            oddr_clk.d0.eq(Const(1)), oddr_clk.d1.eq(Const(0)),
            self.txd.eq(oddr_d.q), self.tx_ctl.eq(oddr_ctl.q), self.txc.eq(oddr_clk.q),
        ]
        return m
