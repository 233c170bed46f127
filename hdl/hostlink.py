"""The host link: the DMA engine's AXI4 writes and the register bus, carried over UDP.

ECP5 has no usable open PCIe core, so a board reaches its host through its second
Ethernet port (docs/hostlink.md).  :class:`HostLink` sits between
:class:`~wiretick.hdl.top.WiretickTop` and that port, in the core clock domain:

::

    WiretickTop.m_axi ─▶ PacketBuffer ─frames─▶ (RGMII transmit MAC, wiretick.hdl.rgmii_tx)
                              ▲ register answers
    WiretickTop.s_axil ◀─ RegisterMaster ◀─ RequestParser ◀─frames─ (RGMII receive front end)

- :class:`PacketBuffer` is an AXI4 write slave (64-bit data, INCR bursts of 8-byte
  beats: what :class:`~wiretick.hdl.dma.TickDMA` issues at ``data_width=64``).  Each
  burst becomes write records (address, data, strobes) of a DATA packet of
  :mod:`wiretick.host.contract.linkproto`; the B response (OKAY) is given once the burst's data
  is in the packet buffer.  It also appends the register answers, in the same
  stream, so a register read's answer reaches the host after every write
  acknowledged before the read (as PCIe orders a read completion after posted
  writes).  A packet is closed when nothing more is ready and the transmitter is
  idle, or when it is full: one record per packet on an idle link, full packets
  under load.  When the transmitter cannot keep up the buffer fills and
  ``awready``/``wready`` stay low: the back-pressure reaches the DMA engine, whose
  queue then drops ticks and reports them in the ring (drop events), as designed.
- The frame builder (in :class:`PacketBuffer`) prefixes Ethernet, IPv4 (with its
  header checksum) and UDP headers built from :class:`~wiretick.host.contract.linkproto.LinkAddresses`.
- :class:`RequestParser` accepts REQUEST packets addressed to the device and
  :class:`RegisterMaster` performs each as one AXI4-Lite access, whose answer
  goes back through the packet buffer.

Unsupported bursts (not INCR, or beats narrower than 8 bytes) are consumed and
answered SLVERR, never transmitted (``unsupported`` counts them).  Nothing here
waits on the host: the link never deadlocks the DMA engine, it only slows it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from wiretick.host.contract import linkproto as lp

from .axi import AXI4LiteSignature, AXI4WriteSignature, BURST_INCR, RESP_DECERR, RESP_OKAY, RESP_SLVERR
from .common import mac_beat_layout

__all__ = ["request_layout", "answer_layout", "PacketBuffer", "RequestParser", "RegisterMaster", "HostLink",
           "frame_header_bytes"]

#: A register request as :class:`RequestParser` decodes it.
request_layout = data.StructLayout({
    "tag": 32, "op": 8, "strobes": 4, "offset": 32, "value": 32,
})

#: A register answer, as :class:`PacketBuffer` writes it into a record.
answer_layout = data.StructLayout({
    "tag": 32, "kind": 8, "status": 8, "offset": 32, "value": 32,
})

#: Words of the longest write record: A, B, 8 data words, strobes.
_REC_MAX = 2 + lp.MAX_BEATS + 1


def _be_bytes(value: int, n: int) -> list[int]:
    return list(value.to_bytes(n, "big"))


def frame_header_bytes(addr: lp.LinkAddresses, src: str = "device", dst: str = "host") -> list[int | None]:
    """The 42 header bytes of a frame from ``src`` to ``dst``; None where the length or checksum go."""
    h: list[int | None] = []
    h += _be_bytes(addr.mac_int(dst), 6) + _be_bytes(addr.mac_int(src), 6) + [0x08, 0x00]
    h += [0x45, 0x00, None, None, 0x00, 0x00, 0x40, 0x00, 64, 17, None, None]
    h += _be_bytes(addr.ip_int(src), 4) + _be_bytes(addr.ip_int(dst), 4)
    h += _be_bytes(getattr(addr, f"{src}_port"), 2) + _be_bytes(getattr(addr, f"{dst}_port"), 2)
    h += [None, None, 0x00, 0x00]    # UDP length; checksum 0 (none, allowed over IPv4)
    assert len(h) == lp.ETH_IP_UDP_BYTES
    return h


class _W(enum.Enum, shape=3):
    IDLE = 0
    OPEN = 1
    DATA = 2
    STROBES = 3
    HEAD = 4
    ANSWER = 5
    DRAIN = 6


class _R(enum.Enum, shape=3):
    IDLE = 0
    CSUM = 1
    HDR = 2
    PAY = 3
    TAIL = 4


class PacketBuffer(wiring.Component):
    """AXI4 write slave and register answers -> DATA packets -> Ethernet frames (see the module doc).

    Parameters
    ----------
    addresses : LinkAddresses
        Both ends of the link (frames go from ``device_*`` to ``host_*``).
    depth : int
        Words of packet buffer (a power of two, at least two full packets).
    max_payload_words : int
        Longest UDP payload, in words (at most :data:`~wiretick.host.contract.linkproto.MAX_PAYLOAD_WORDS`).

    Attributes
    ----------
    s_axi : In(AXI4WriteSignature(64, 64))
        The DMA engine's writes.
    i_answer : In(stream.Signature(answer_layout))
        Register answers (from :class:`RegisterMaster`).
    o_frame : Out(stream.Signature(mac_beat_layout(8)))
        Whole frames without preamble or FCS, 8 bytes a beat.
    packets : Out(32)
        DATA packets sent (= the last link sequence number).
    unsupported : Out(32)
        Bursts refused (not INCR with 8-byte beats), answered SLVERR.
    busy : Out(1)
        Something is buffered or being sent (an activity LED).
    """

    def __init__(self, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES, *, depth: int = 512,
                 max_payload_words: int = lp.MAX_PAYLOAD_WORDS):
        if depth & (depth - 1) or depth < 2 * max_payload_words:
            raise ValueError(f"depth {depth}: a power of two holding two packets of {max_payload_words} words")
        if not 1 + 2 * _REC_MAX <= max_payload_words <= lp.MAX_PAYLOAD_WORDS:
            raise ValueError(f"max_payload_words must be {1 + 2 * _REC_MAX}..{lp.MAX_PAYLOAD_WORDS}")
        self.addresses = addresses
        self.depth = depth
        self.max_payload_words = max_payload_words
        super().__init__({
            "s_axi": In(AXI4WriteSignature(addr_width=64, data_width=64)),
            "i_answer": In(stream.Signature(answer_layout)),
            "o_frame": Out(stream.Signature(mac_beat_layout(8))),
            "packets": Out(32),
            "unsupported": Out(32),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axi
        D = self.depth
        PB = D.bit_length()                      # pointer bits: one more than the address
        MAXW = self.max_payload_words

        m.submodules.mem = mem = Memory(shape=64, depth=D, init=[])
        wp = mem.write_port()
        rp = mem.read_port()
        # Packet lengths (words), one per closed packet; a packet has 3 words at least.
        m.submodules.desc = desc = fifo.SyncFIFOBuffered(width=range(MAXW + 1).stop.bit_length(),
                                                         depth=max(4, D // 16))
        # B responses owed, in order: 1 = SLVERR.
        m.submodules.bq = bq = fifo.SyncFIFO(width=1, depth=4)

        wptr = Signal(PB)
        rptr = Signal(PB)
        used = Signal(PB)
        # Registered (off the critical path), so a cycle old: the writer may have added
        # up to 2 words since, which the margins allow for.
        space_ok = Signal()         # room for a packet header and one record
        rec_ok = Signal()           # room for one record
        m.d.comb += used.eq(wptr - rptr)
        m.d.sync += [space_ok.eq(used <= D - _REC_MAX - 3), rec_ok.eq(used <= D - _REC_MAX - 2)]

        # ------------------------------------------------------------ AW and B
        aw_pend = Signal()
        aw_ok = Signal()
        aw_addr = Signal(64)
        m.d.comb += bus.awready.eq(~aw_pend & bq.w_rdy)
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_pend.eq(1), aw_addr.eq(bus.awaddr),
                         aw_ok.eq((bus.awburst == BURST_INCR) & (bus.awsize == 3))]
        m.d.comb += [
            bus.bvalid.eq(bq.r_rdy),
            bus.bresp.eq(Mux(bq.r_data, RESP_SLVERR, RESP_OKAY)),
            bq.r_en.eq(bus.bready),
        ]

        # ------------------------------------------------------------ writer
        wstate = Signal(_W)
        seq = Signal(32)
        pkt_len = Signal(range(MAXW + 1))
        pkt_ok = Signal()
        rec_at = Signal(PB)                      # where the record's word A goes
        nbeats = Signal(range(lp.MAX_BEATS + 1))
        strobes = Signal(64)
        full = Signal()                          # every byte of the record strobed
        room = Signal()
        tx_idle = Signal()
        ans = self.i_answer.payload
        # Also registered: pkt_len may have grown by one record (at most _REC_MAX) since.
        m.d.sync += pkt_ok.eq(pkt_len <= MAXW - 2 * _REC_MAX)
        m.d.comb += room.eq(rec_ok & pkt_ok)
        m.d.comb += [wp.addr.eq(wptr[:PB - 1]), wp.en.eq(0)]

        w_fire = bus.wvalid & bus.wready
        with m.Switch(wstate):
            with m.Case(_W.IDLE):
                with m.If(aw_pend & ~aw_ok):
                    m.d.sync += wstate.eq(_W.DRAIN)
                with m.Elif(((aw_pend & aw_ok) | self.i_answer.valid) & space_ok):
                    m.d.comb += [wp.en.eq(1), wp.data.eq(Cat(Const(lp.MAGIC, 16), Const(lp.VERSION, 8),
                                                              Const(lp.KIND_DATA, 8), (seq + 1)[:32]))]
                    m.d.sync += [wptr.eq(wptr + 1), pkt_len.eq(1), pkt_ok.eq(1), seq.eq(seq + 1), wstate.eq(_W.OPEN)]
            with m.Case(_W.OPEN):
                have_w = aw_pend & aw_ok
                with m.If(self.i_answer.valid & room):
                    m.d.comb += [wp.en.eq(1), wp.data.eq(Cat(ans.kind, Const(0, 8), ans.status, Const(0, 8),
                                                              ans.tag))]
                    m.d.sync += [wptr.eq(wptr + 1), wstate.eq(_W.ANSWER)]
                with m.Elif(have_w & room):
                    # B (the address) now, A once the record's beats are known.
                    m.d.comb += [wp.addr.eq(wptr[:PB - 1] + 1), wp.en.eq(1), wp.data.eq(aw_addr)]
                    m.d.sync += [rec_at.eq(wptr), wptr.eq(wptr + 2), nbeats.eq(0), strobes.eq(0), full.eq(1),
                                 wstate.eq(_W.DATA)]
                with m.Elif((~(have_w | self.i_answer.valid) & tx_idle) | (aw_pend & ~aw_ok)
                            | ~pkt_ok | (~rec_ok & tx_idle)):
                    # Nothing to add and the wire is free, or the packet is full: send it.  A
                    # full buffer waits for the wire (closing early only makes more, smaller
                    # packets), unless the wire is idle: then this packet is all there is.
                    m.d.comb += [desc.w_en.eq(1), desc.w_data.eq(pkt_len)]
                    with m.If(desc.w_rdy):
                        m.d.sync += [wstate.eq(_W.IDLE), self.packets.eq(seq)]
            with m.Case(_W.DATA):
                m.d.comb += bus.wready.eq(1)
                with m.If(w_fire):
                    m.d.comb += [wp.en.eq(1), wp.data.eq(bus.wdata)]
                    m.d.sync += [
                        wptr.eq(wptr + 1), nbeats.eq(nbeats + 1), aw_addr.eq(aw_addr + 8),
                        strobes.eq(strobes | (bus.wstrb << (nbeats[:3] * 8))),
                        full.eq(full & (bus.wstrb == 0xFF)),
                    ]
                    with m.If(bus.wlast | (nbeats == lp.MAX_BEATS - 1)):
                        with m.If(full & (bus.wstrb == 0xFF)):
                            m.d.sync += wstate.eq(_W.HEAD)
                        with m.Else():
                            m.d.sync += wstate.eq(_W.STROBES)
                    with m.If(bus.wlast):
                        m.d.comb += [bq.w_en.eq(1), bq.w_data.eq(0)]
                        m.d.sync += aw_pend.eq(0)
            with m.Case(_W.STROBES):
                m.d.comb += [wp.en.eq(1), wp.data.eq(strobes)]
                m.d.sync += [wptr.eq(wptr + 1), wstate.eq(_W.HEAD)]
            with m.Case(_W.HEAD):
                kind = Mux(full, Const(lp.REC_WRITE, 8), Const(lp.REC_WRITE_STROBED, 8))
                m.d.comb += [wp.addr.eq(rec_at[:PB - 1]), wp.en.eq(1), wp.data.eq(Cat(kind, nbeats))]
                m.d.sync += [pkt_len.eq(pkt_len + 2 + nbeats + ~full), wstate.eq(_W.OPEN)]
            with m.Case(_W.ANSWER):
                m.d.comb += [wp.en.eq(1), wp.data.eq(Cat(ans.offset, ans.value)), self.i_answer.ready.eq(1)]
                m.d.sync += [wptr.eq(wptr + 1), pkt_len.eq(pkt_len + 2), wstate.eq(_W.OPEN)]
            with m.Case(_W.DRAIN):
                m.d.comb += bus.wready.eq(1)
                with m.If(w_fire & bus.wlast):
                    m.d.comb += [bq.w_en.eq(1), bq.w_data.eq(1)]
                    m.d.sync += [aw_pend.eq(0), self.unsupported.eq(self.unsupported + 1), wstate.eq(_W.IDLE)]

        # ------------------------------------------------------------ frame builder
        rstate = Signal(_R)
        length = Signal(range(MAXW + 1))         # payload words of the frame being sent
        ip_len = Signal(16)
        csum = Signal(16)
        hword = Signal(range(5))
        left = Signal(range(MAXW + 1))
        carry = Signal(16)
        o = self.o_frame
        fire = o.valid & o.ready
        m.d.comb += tx_idle.eq((rstate == _R.IDLE) & ~desc.r_rdy)
        # One assignment of the whole beat (a constant bit alone becomes an empty `always @*`).
        b_data, b_nbytes, b_first, b_last = Signal(64), Signal(4), Signal(), Signal()
        m.d.comb += o.payload.eq(Cat(b_data, b_nbytes, b_first, b_last, Const(0, 1)))
        m.d.comb += self.busy.eq((wstate != _W.IDLE) | (rstate != _R.IDLE) | desc.r_rdy)

        hdr = frame_header_bytes(self.addresses)
        const_sum = 0
        for k in range(14, 34, 2):
            if hdr[k] is not None:
                const_sum += hdr[k] << 8 | hdr[k + 1]
        udp_len = Signal(16)
        m.d.comb += udp_len.eq(ip_len - 20)
        var = {16: ip_len[8:], 17: ip_len[:8], 24: csum[8:], 25: csum[:8], 38: udp_len[8:], 39: udp_len[:8]}
        hbytes = [var[k] if hdr[k] is None else Const(hdr[k], 8) for k in range(40)]
        words = [Cat(*hbytes[8 * k:8 * k + 8]) for k in range(5)]
        hsel = Signal(64)
        with m.Switch(hword):
            for k in range(5):
                with m.Case(k):
                    m.d.comb += hsel.eq(words[k])

        m.d.comb += [rp.addr.eq(Mux(rstate == _R.PAY, rptr + 1, rptr)[:PB - 1]), rp.en.eq(0)]
        with m.Switch(rstate):
            with m.Case(_R.IDLE):
                with m.If(desc.r_rdy):
                    m.d.comb += desc.r_en.eq(1)
                    m.d.sync += [length.eq(desc.r_data), ip_len.eq(28 + desc.r_data * 8), rstate.eq(_R.CSUM)]
            with m.Case(_R.CSUM):
                s1 = Signal(20)
                s2 = Signal(17)
                m.d.comb += [s1.eq(const_sum + ip_len), s2.eq(s1[:16] + s1[16:])]
                m.d.sync += [csum.eq(~(s2[:16] + s2[16])), hword.eq(0), left.eq(length), carry.eq(0),
                             rstate.eq(_R.HDR)]
            with m.Case(_R.HDR):
                m.d.comb += [o.valid.eq(1), b_data.eq(hsel), b_nbytes.eq(8), b_first.eq(hword == 0)]
                with m.If(fire):
                    m.d.sync += hword.eq(hword + 1)
                    with m.If(hword == 4):
                        m.d.comb += rp.en.eq(1)      # the payload's first word
                        m.d.sync += rstate.eq(_R.PAY)
            with m.Case(_R.PAY):
                m.d.comb += [o.valid.eq(1), b_data.eq(Cat(carry, rp.data[:48])), b_nbytes.eq(8)]
                with m.If(fire):
                    m.d.sync += [carry.eq(rp.data[48:]), rptr.eq(rptr + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.d.sync += rstate.eq(_R.TAIL)
                    with m.Else():
                        m.d.comb += rp.en.eq(1)
            with m.Case(_R.TAIL):
                m.d.comb += [o.valid.eq(1), b_data.eq(carry), b_nbytes.eq(2), b_last.eq(1)]
                with m.If(fire):
                    m.d.sync += rstate.eq(_R.IDLE)
        return m


class RequestParser(wiring.Component):
    """REQUEST packets addressed to the device -> register requests.

    A frame is a request when its destination MAC, EtherType (IPv4), IPv4 version
    and header length (no options), protocol (UDP), destination address and port,
    UDP length (exactly one request), magic, version and kind all match, it is at
    least as long as that, and the MAC did not flag it bad.  Anything else is
    counted in ``ignored`` (a bad FCS in ``bad`` too) and otherwise dropped.  A
    request that arrives while the previous one is still being performed is
    dropped and counted in ``busy_drops`` (the host retries).  ``i_frame`` is never
    back-pressured.

    Attributes
    ----------
    i_frame : In(stream.Signature(mac_beat_layout(8)))
    o_request : Out(stream.Signature(request_layout))
    requests, ignored, bad, busy_drops : Out(32)
    """

    def __init__(self, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES):
        self.addresses = addresses
        super().__init__({
            "i_frame": In(stream.Signature(mac_beat_layout(8))),
            "o_request": Out(stream.Signature(request_layout)),
            "requests": Out(32),
            "ignored": Out(32),
            "bad": Out(32),
            "busy_drops": Out(32),
        })

    def template(self) -> tuple[list[int], list[int]]:
        """(expected byte, mask) for frame bytes 0..47: what a request must hold."""
        a = self.addresses
        exp = [0] * 48
        care = [0] * 48
        h = frame_header_bytes(a, src="host", dst="device")
        for k in list(range(0, 6)) + [12, 13, 14, 23] + list(range(30, 34)) + [36, 37]:
            exp[k], care[k] = h[k], 0xFF
        exp[38:40], care[38:40] = _be_bytes(8 + lp.REQUEST_WORDS * 8, 2), [0xFF, 0xFF]
        hw = lp.header_word(lp.KIND_REQUEST, 0).to_bytes(8, "little")
        exp[42:46], care[42:46] = list(hw[:4]), [0xFF] * 4
        return exp, care

    def elaborate(self, platform):
        m = Module()
        i = self.i_frame
        beat = i.payload
        m.d.comb += i.ready.eq(1)
        exp, care = self.template()
        n = Signal(range(10))         # beat index, saturating at 9
        ok = Signal()
        req = Signal(request_layout)
        d = beat.data
        beat_ok = Signal()
        with m.Switch(Mux(beat.first, 0, n)):
            for k in range(6):
                e = int.from_bytes(bytes(exp[8 * k:8 * k + 8]), "little")
                c = int.from_bytes(bytes(care[8 * k:8 * k + 8]), "little")
                with m.Case(k):
                    m.d.comb += beat_ok.eq(((d ^ e) & c) == 0)
            with m.Default():
                m.d.comb += beat_ok.eq(1)
        o = self.o_request
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(i.valid):
            idx = Mux(beat.first, 0, n)
            m.d.sync += n.eq(Mux(idx == 9, 9, idx + 1))
            m.d.sync += ok.eq(Mux(beat.first, 1, ok) & beat_ok & (beat.nbytes == 8))
            with m.Switch(idx):
                with m.Case(5):
                    m.d.sync += req.tag[:16].eq(d[48:])
                with m.Case(6):
                    m.d.sync += [req.tag[16:].eq(d[:16]), req.op.eq(d[16:24]), req.strobes.eq(d[24:28]),
                                 req.offset[:16].eq(d[48:])]
                with m.Case(7):
                    m.d.sync += [req.offset[16:].eq(d[:16]), req.value.eq(d[16:48])]
            with m.If(beat.last):
                # The last beat (8: bytes 64..65) may be short; every field came before it.
                good = Mux(beat.first, 0, ok) & beat_ok & (idx >= 8) & ~beat.error
                with m.If(beat.error):
                    m.d.sync += self.bad.eq(self.bad + 1)
                with m.If(good & (~o.valid | o.ready)):
                    m.d.sync += [o.valid.eq(1), o.payload.eq(req), self.requests.eq(self.requests + 1)]
                with m.Elif(good):
                    m.d.sync += self.busy_drops.eq(self.busy_drops + 1)
                with m.Else():
                    m.d.sync += self.ignored.eq(self.ignored + 1)
        return m


class _M(enum.Enum, shape=3):
    IDLE = 0
    READ = 1
    RDATA = 2
    WRITE = 3
    WRESP = 4
    ANSWER = 5


class RegisterMaster(wiring.Component):
    """Register requests -> one AXI4-Lite access each -> answers.

    An offset beyond the bus's address space, or an unknown op, is answered with
    status DECERR / SLVERR without a bus access.

    Attributes
    ----------
    i_request : In(stream.Signature(request_layout))
    m_axil : Out(AXI4LiteSignature(addr_width, 32))
    o_answer : Out(stream.Signature(answer_layout))
    """

    def __init__(self, addr_width: int):
        self.addr_width = addr_width
        super().__init__({
            "i_request": In(stream.Signature(request_layout)),
            "m_axil": Out(AXI4LiteSignature(addr_width=addr_width, data_width=32)),
            "o_answer": Out(stream.Signature(answer_layout)),
        })

    def elaborate(self, platform):
        m = Module()
        bus = self.m_axil
        req = Signal(request_layout)
        ans = self.o_answer.payload
        state = Signal(_M)
        aw_done = Signal()
        w_done = Signal()
        m.d.comb += [
            bus.araddr.eq(req.offset), bus.awaddr.eq(req.offset),
            bus.arprot.eq(0), bus.awprot.eq(0),
            bus.wdata.eq(req.value), bus.wstrb.eq(req.strobes),
            bus.arvalid.eq(state == _M.READ), bus.rready.eq(state == _M.RDATA),
            bus.awvalid.eq((state == _M.WRITE) & ~aw_done), bus.wvalid.eq((state == _M.WRITE) & ~w_done),
            bus.bready.eq(state == _M.WRESP),
            self.o_answer.valid.eq(state == _M.ANSWER),
        ]
        with m.Switch(state):
            with m.Case(_M.IDLE):
                m.d.comb += self.i_request.ready.eq(1)
                with m.If(self.i_request.valid):
                    p = self.i_request.payload
                    m.d.sync += [req.eq(p), ans.tag.eq(p.tag), ans.offset.eq(p.offset), ans.value.eq(0),
                                 ans.kind.eq(Mux(p.op == lp.OP_READ, lp.REC_READ, lp.REC_WRITE_ACK)),
                                 ans.status.eq(RESP_OKAY), aw_done.eq(0), w_done.eq(0)]
                    with m.If((p.offset >> self.addr_width) != 0):
                        m.d.sync += [ans.status.eq(RESP_DECERR), state.eq(_M.ANSWER)]
                    with m.Elif(p.op == lp.OP_READ):
                        m.d.sync += state.eq(_M.READ)
                    with m.Elif(p.op == lp.OP_WRITE):
                        m.d.sync += state.eq(_M.WRITE)
                    with m.Else():
                        m.d.sync += [ans.status.eq(RESP_SLVERR), state.eq(_M.ANSWER)]
            with m.Case(_M.READ):
                with m.If(bus.arready):
                    m.d.sync += state.eq(_M.RDATA)
            with m.Case(_M.RDATA):
                with m.If(bus.rvalid):
                    m.d.sync += [ans.value.eq(bus.rdata), ans.status.eq(bus.rresp), state.eq(_M.ANSWER)]
            with m.Case(_M.WRITE):
                aw_now = aw_done | bus.awready
                w_now = w_done | bus.wready
                m.d.sync += [aw_done.eq(aw_now), w_done.eq(w_now)]
                with m.If(aw_now & w_now):
                    m.d.sync += state.eq(_M.WRESP)
            with m.Case(_M.WRESP):
                with m.If(bus.bvalid):
                    m.d.sync += [ans.status.eq(bus.bresp), state.eq(_M.ANSWER)]
            with m.Case(_M.ANSWER):
                with m.If(self.o_answer.ready):
                    m.d.sync += state.eq(_M.IDLE)
        return m


class HostLink(wiring.Component):
    """The device side of the host link, in the core clock domain (see the module doc).

    Parameters
    ----------
    addresses : LinkAddresses
        MAC/IPv4 addresses and UDP ports of both ends (docs/hostlink.md).
    lite_addr_width : int
        Address width of the register bus (``WiretickTop``'s ``s_axil``).
    depth : int
        Words of packet buffer.

    Attributes
    ----------
    s_axi : In(AXI4WriteSignature(64, 64))
        Connect ``WiretickTop.m_axi`` (built with ``dma_data_width=64``).
    m_axil : Out(AXI4LiteSignature(lite_addr_width, 32))
        Connect to ``WiretickTop.s_axil``.
    i_rx : In(stream.Signature(mac_beat_layout(8)))
        Frames received on the host port (request packets among them).
    o_tx : Out(stream.Signature(mac_beat_layout(8)))
        Frames to transmit on the host port (:class:`wiretick.hdl.rgmii_tx.RGMIITransmitter`).
    packets, unsupported, requests, ignored, bad, busy_drops : Out(32)
        Counters (see :class:`PacketBuffer`, :class:`RequestParser`).
    activity : Out(1)
        A packet is being built or sent, or a request performed.
    """

    def __init__(self, addresses: lp.LinkAddresses = lp.DEFAULT_ADDRESSES, *, lite_addr_width: int,
                 depth: int = 512):
        self.addresses = addresses
        self.lite_addr_width = lite_addr_width
        self.depth = depth
        super().__init__({
            "s_axi": In(AXI4WriteSignature(addr_width=64, data_width=64)),
            "m_axil": Out(AXI4LiteSignature(addr_width=lite_addr_width, data_width=32)),
            "i_rx": In(stream.Signature(mac_beat_layout(8))),
            "o_tx": Out(stream.Signature(mac_beat_layout(8))),
            "packets": Out(32), "unsupported": Out(32), "requests": Out(32), "ignored": Out(32),
            "bad": Out(32), "busy_drops": Out(32),
            "activity": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buf = PacketBuffer(self.addresses, depth=self.depth)
        m.submodules.parser = par = RequestParser(self.addresses)
        m.submodules.master = mst = RegisterMaster(self.lite_addr_width)
        wiring.connect(m, wiring.flipped(self.s_axi), buf.s_axi)
        wiring.connect(m, wiring.flipped(self.i_rx), par.i_frame)
        wiring.connect(m, par.o_request, mst.i_request)
        wiring.connect(m, mst.o_answer, buf.i_answer)
        wiring.connect(m, mst.m_axil, wiring.flipped(self.m_axil))
        wiring.connect(m, buf.o_frame, wiring.flipped(self.o_tx))
        m.d.comb += [
            self.packets.eq(buf.packets), self.unsupported.eq(buf.unsupported),
            self.requests.eq(par.requests), self.ignored.eq(par.ignored), self.bad.eq(par.bad),
            self.busy_drops.eq(par.busy_drops),
            self.activity.eq(buf.busy | mst.i_request.valid),
        ]
        return m
