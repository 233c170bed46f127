"""Stage 1: Ethernet / VLAN / IPv4 / UDP / MoldUDP64 header parser.

The stage passes every beat of a frame on, one cycle later, and decides the
frame's verdict as soon as the bytes it needs have arrived, making the checks of
docs/reference-model.md in their order.  The beat holding the last byte of the
MoldUDP64 header of an accepted frame carries ``start`` and the header fields the
next stages need.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import (ETHERTYPE_IPV4, ETHERTYPE_VLAN, IP_PROTO_UDP, MAX_VLAN_TAGS,
                                   MOLD_FIELDS, MOLD_HEADER_SIZE)

from .common import HEADER_BYTES, OFFSET_BITS, be, counter_events_layout, mac_beat_layout, pick

__all__ = ["Verdict", "HeaderParser", "frame_beat_layout", "HEADER_COUNTERS"]

_MOLD = {f.name: f for f in MOLD_FIELDS}

# Header layouts below MoldUDP64 (shared/docs/itch50.md): byte offsets within each header.
_ETH_TYPE, _ETH_HEADER, _VLAN_TAG = 12, 14, 4
_IPV4_VIHL, _IPV4_TOTAL, _IPV4_FRAG, _IPV4_PROTO, _IPV4_DST, _IPV4_MIN = 0, 2, 6, 9, 16, 20
_UDP_DPORT, _UDP_LEN, _UDP_HEADER = 2, 4, 8


class Verdict(enum.IntEnum):
    """Outcome of the header checks of one frame (drop reasons name their counter)."""

    PENDING = 0
    ACCEPT = 1
    drop_not_ipv4 = 2
    drop_truncated = 3
    drop_ip_checksum = 4
    drop_fragment = 5
    drop_not_udp = 6
    drop_ip_dst = 7
    drop_udp_length = 8
    drop_port = 9
    drop_mold_short = 10


#: Counters this stage increments (all by at most 1 a cycle).
HEADER_COUNTERS = ("frames", "bad_fcs", "packets") + tuple(v.name for v in Verdict if v.name.startswith("drop_"))


def frame_beat_layout(width: int = 8) -> data.StructLayout:
    """A MAC beat annotated by the header parser.

    Fields
    ------
    data, nbytes, first, last, error
        As in :func:`~wiretick.hdl.common.mac_beat_layout`.
    offset : OFFSET_BITS
        Frame byte offset of lane 0 of this beat (saturates on huge frames).
    ts : 64
        Receive timestamp of the frame, valid with ``first``.
    start : 1
        The frame passed every header check and this beat holds the last byte of
        the MoldUDP64 header: the fields below are valid (on this beat only).
    pay_start, pay_end : OFFSET_BITS
        Frame offsets of the first message block byte and of the end of the UDP payload.
    session : 80
        MoldUDP64 session, wire byte ``k`` in bits ``8k..8k+7``.
    sequence : 64
        MoldUDP64 sequence number of the first message.
    count : 16
        MoldUDP64 message count.
    """
    return data.StructLayout({
        "data": unsigned(8 * width),
        "nbytes": unsigned(range(width + 1).stop.bit_length()),
        "first": unsigned(1),
        "last": unsigned(1),
        "error": unsigned(1),
        "offset": unsigned(OFFSET_BITS),
        "ts": unsigned(64),
        "start": unsigned(1),
        "pay_start": unsigned(OFFSET_BITS),
        "pay_end": unsigned(OFFSET_BITS),
        "session": unsigned(8 * _MOLD["session"].size),
        "sequence": unsigned(8 * _MOLD["sequence"].size),
        "count": unsigned(8 * _MOLD["count"].size),
    })


class HeaderParser(wiring.Component):
    """Parse the headers below ITCH, cut-through, and pass the frame on annotated.

    The first :data:`~wiretick.hdl.common.HEADER_BYTES` bytes of each frame are kept
    in registers; header fields are read from them merged with the beat being
    accepted, at positions that depend on the VLAN tag count and the IPv4 IHL.
    The IPv4 checksum is summed beat by beat.  The verdict is made on the first
    beat where the checks can decide it (acceptance needs the whole MoldUDP64
    header; a frame that ends earlier is decided on its last beat) and counted
    once.  Output beats follow input beats by one cycle; beats outside a frame
    (no ``first`` seen) are dropped.

    Parameters
    ----------
    width : int
        Datapath width in bytes (a power of two >= 4).

    Attributes
    ----------
    i_mac : In(stream.Signature(mac_beat_layout(width), always_ready=True))
        MAC receive stream; never back-pressured.
    o_beat : Out(stream.Signature(frame_beat_layout(width), always_ready=True))
        Annotated beats.
    timestamp : In(64)
        Nanosecond clock, sampled on the first beat of a frame.
    ip_dst, port, check_ip_checksum : In
        Configuration (0 = any address / port).
    o_count : Out(counter_events_layout)
        Counter increments (registered), for :data:`HEADER_COUNTERS`.
    """

    def __init__(self, width: int = 8):
        if width < 4 or width & (width - 1):
            raise ValueError("width must be a power of two >= 4")
        self.width = width
        super().__init__({
            "i_mac": In(stream.Signature(mac_beat_layout(width), always_ready=True)),
            "o_beat": Out(stream.Signature(frame_beat_layout(width), always_ready=True)),
            "timestamp": In(64),
            "ip_dst": In(32),
            "port": In(16),
            "check_ip_checksum": In(1),
            "o_count": Out(counter_events_layout({n: 1 for n in HEADER_COUNTERS})),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        beat = self.i_mac.payload
        lanes = [beat.data[8 * k:8 * k + 8] for k in range(W)]
        n_hdr_beats = -(-HEADER_BYTES // W)
        max_beat = (1 << OFFSET_BITS) // W - 1

        in_frame = Signal()
        beat_no = Signal(range(max_beat + 1))     # index of the next beat of the frame
        decided = Signal()
        # The first bytes of the frame (one wide register: byte x at bits 8x..8x+7).
        rf_v = Signal(8 * n_hdr_beats * W)
        rf = [rf_v[8 * x:8 * x + 8] for x in range(n_hdr_beats * W)]
        csum_acc = Signal(24)

        # Intermediate values are expressions rather than signals where they feed
        # one another: same logic, and the simulator settles them in one pass.
        take = Signal()   # this input beat belongs to a frame
        m.d.comb += take.eq(self.i_mac.valid & (beat.first | in_frame))
        idx = Mux(beat.first, 0, beat_no)
        offset = (idx * W)[:OFFSET_BITS]
        avail = offset + Mux(beat.last, beat.nbytes, W)   # frame bytes present once this beat is in
        undecided = Signal()
        m.d.comb += undecided.eq(take & (beat.first | ~decided))

        # The frame's first bytes as they stand once this beat is in (only looked at
        # until the verdict).
        view_v = Signal.like(rf_v)
        view = [view_v[8 * x:8 * x + 8] for x in range(len(rf))]
        with m.If(undecided):
            m.d.comb += view_v.eq(rf_v)
            for b in range(n_hdr_beats):
                with m.If(idx == b):
                    m.d.comb += view_v[8 * W * b:8 * W * (b + 1)].eq(beat.data)

        def field(bases, sel, off, size):
            """Big-endian ``size`` bytes at view[bases[sel] + off]."""
            cands = [be(view[b + off:b + off + size]) if b + off + size <= len(view) else Const(0, 8 * size)
                     for b in bases]
            return pick(cands, sel)

        # Ethernet and VLAN tags.
        def is_vlan(v):
            return Cat(*[v == t for t in ETHERTYPE_VLAN]).any()
        ets = [be(view[_ETH_TYPE + _VLAN_TAG * t:_ETH_TYPE + 2 + _VLAN_TAG * t]) for t in range(MAX_VLAN_TAGS + 1)]
        vlan = [is_vlan(et) for et in ets]
        assert MAX_VLAN_TAGS == 2
        tags = Signal(range(MAX_VLAN_TAGS + 1))
        m.d.comb += tags.eq(Mux(vlan[0], Mux(vlan[1], 2, 1), 0))
        ethertype = Mux(vlan[0], Mux(vlan[1], ets[2], ets[1]), ets[0])

        # IPv4 at I = 14 + 4*tags.
        ip_bases = [_ETH_HEADER + _VLAN_TAG * t for t in range(MAX_VLAN_TAGS + 1)]
        vihl = Signal(8)
        m.d.comb += vihl.eq(field(ip_bases, tags, _IPV4_VIHL, 1))
        ihl = vihl[0:4]
        version = vihl[4:8]
        total_len = field(ip_bases, tags, _IPV4_TOTAL, 2)
        frag = field(ip_bases, tags, _IPV4_FRAG, 2)
        proto = field(ip_bases, tags, _IPV4_PROTO, 1)
        dst = field(ip_bases, tags, _IPV4_DST, 4)
        ip_start = _ETH_HEADER + _VLAN_TAG * tags
        hl = ihl * 4

        # UDP at U = I + 4*IHL (IHL 5..15), MoldUDP64 at U + 8.
        udp_bases = [ip_bases[0] + _IPV4_MIN + 4 * k for k in range(MAX_VLAN_TAGS + 11)]
        usel = Signal(range(len(udp_bases)))
        m.d.comb += usel.eq(tags + ihl - 5)
        udp_start = ip_start + hl
        dport = field(udp_bases, usel, _UDP_DPORT, 2)
        ulen = field(udp_bases, usel, _UDP_LEN, 2)
        mold_bases = [b + _UDP_HEADER for b in udp_bases]
        session = pick([Cat(*view[b:b + _MOLD["session"].size]) for b in mold_bases], usel)
        seqno = field(mold_bases, usel, _MOLD["sequence"].offset, _MOLD["sequence"].size)
        count = field(mold_bases, usel, _MOLD["count"].offset, _MOLD["count"].size)

        # IPv4 header checksum, summed a beat at a time over [I, I + 4*IHL).
        words = []
        for w in range(W // 2):
            pos = offset + 2 * w
            inside = (pos >= ip_start) & (pos < ip_start + hl)
            words.append(Mux(inside, Cat(lanes[2 * w + 1], lanes[2 * w]), 0))
        csum_total = Signal(24)
        m.d.comb += csum_total.eq(Mux(beat.first, 0, csum_acc) + sum(words))
        fold1 = (csum_total[0:16] + csum_total[16:])[:17]
        fold2 = (fold1[0:16] + fold1[16:])[:16]
        csum_ok = fold2 == 0xFFFF

        # The checks, in the order of docs/reference-model.md.
        verdict = Signal(Verdict)
        short = Mux(beat.last, Verdict.drop_truncated, Verdict.PENDING)   # the bytes are not there yet
        mold_end = udp_start + _UDP_HEADER + MOLD_HEADER_SIZE
        with m.If(~undecided):
            pass
        with m.Elif(avail < _ETH_HEADER):
            m.d.comb += verdict.eq(short)
        with m.Elif(vlan[0] & (avail < _ETH_HEADER + _VLAN_TAG)):
            m.d.comb += verdict.eq(short)
        with m.Elif(vlan[0] & vlan[1] & (avail < _ETH_HEADER + 2 * _VLAN_TAG)):
            m.d.comb += verdict.eq(short)
        with m.Elif(vlan[0] & vlan[1] & vlan[2]):
            m.d.comb += verdict.eq(Verdict.drop_not_ipv4)
        with m.Elif(ethertype != ETHERTYPE_IPV4):
            m.d.comb += verdict.eq(Verdict.drop_not_ipv4)
        with m.Elif(avail < ip_start + 1):
            m.d.comb += verdict.eq(short)
        with m.Elif((version != 4) | (ihl < 5)):
            m.d.comb += verdict.eq(Verdict.drop_not_ipv4)
        with m.Elif(avail < ip_start + hl):
            m.d.comb += verdict.eq(short)
        with m.Elif(self.check_ip_checksum & ~csum_ok):
            m.d.comb += verdict.eq(Verdict.drop_ip_checksum)
        with m.Elif(frag[0:14] != 0):
            m.d.comb += verdict.eq(Verdict.drop_fragment)
        with m.Elif(proto != IP_PROTO_UDP):
            m.d.comb += verdict.eq(Verdict.drop_not_udp)
        with m.Elif((self.ip_dst != 0) & (dst != self.ip_dst)):
            m.d.comb += verdict.eq(Verdict.drop_ip_dst)
        with m.Elif(avail < udp_start + _UDP_HEADER):
            m.d.comb += verdict.eq(short)
        with m.Elif((total_len < hl + _UDP_HEADER) | (ulen < _UDP_HEADER) | (ulen + hl > total_len)):
            m.d.comb += verdict.eq(Verdict.drop_udp_length)
        with m.Elif((self.port != 0) & (dport != self.port)):
            m.d.comb += verdict.eq(Verdict.drop_port)
        with m.Elif(ulen < _UDP_HEADER + MOLD_HEADER_SIZE):
            m.d.comb += verdict.eq(Verdict.drop_mold_short)
        with m.Elif(avail < mold_end):
            m.d.comb += verdict.eq(short)
        with m.Else():
            m.d.comb += verdict.eq(Verdict.ACCEPT)

        decide = Signal()
        m.d.comb += decide.eq(undecided & (verdict != Verdict.PENDING))

        # State.
        with m.If(take):
            m.d.sync += [
                in_frame.eq(~beat.last),
                beat_no.eq(Mux(idx == max_beat, idx, idx + 1)),
                csum_acc.eq(csum_total),
            ]
            with m.If(beat.first):
                m.d.sync += decided.eq(0)
            with m.If(decide):
                m.d.sync += decided.eq(1)
            for b in range(n_hdr_beats):
                with m.If(idx == b):
                    m.d.sync += rf_v[8 * W * b:8 * W * (b + 1)].eq(beat.data)

        # Output, one cycle later.
        out = self.o_beat.payload
        ts = Signal(64)
        with m.If(take & beat.first):
            m.d.sync += ts.eq(self.timestamp)
        m.d.sync += [
            self.o_beat.valid.eq(take),
            out.data.eq(beat.data),
            out.nbytes.eq(beat.nbytes),
            out.first.eq(beat.first),
            out.last.eq(beat.last),
            out.error.eq(beat.error),
            out.offset.eq(offset),
            out.ts.eq(Mux(take & beat.first, self.timestamp, ts)),
            out.start.eq(decide & (verdict == Verdict.ACCEPT)),
            out.pay_start.eq(mold_end),
            out.pay_end.eq(udp_start + ulen),
            out.session.eq(session),
            out.sequence.eq(seqno),
            out.count.eq(count),
        ]

        cnt = self.o_count
        m.d.sync += [
            cnt.frames.eq(take & beat.first),
            cnt.bad_fcs.eq(take & beat.last & beat.error),
            cnt.packets.eq(decide & (verdict == Verdict.ACCEPT)),
        ]
        for v in Verdict:
            if v.name.startswith("drop_"):
                m.d.sync += getattr(cnt, v.name).eq(decide & (verdict == v))
        return m
