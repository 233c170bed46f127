"""Stage 1: Ethernet / VLAN / IPv4 / UDP / MoldUDP64 header parser.

The stage passes every beat of a frame on, one cycle later, and decides the
frame's verdict from the bytes that have arrived, making the checks of
docs/reference-model.md in their order.  The beat holding the last byte of the
MoldUDP64 header of an accepted frame carries ``start`` and the header fields the
next stages need.

Timing (issue 9): built alone out of context (``synth_ecp5``; ``nextpnr-ecp5 --85k
--package CABGA381 --speed 8 --freq 200``, seeds 1 and 2) the stage reaches
230.3 / 238.0 MHz with 986 LUT4 and 987 FF (critical path 4.3 ns: an IHL-dependent
length compare, or the checksum accumulator).  When it read every field out of a
110-byte frame register at offsets depending on the VLAN tag count and the IHL, it
reached 42.0 / 43.0 MHz with 4,090 LUT4 and 1,147 FF, its critical path 67 logic
steps deep.
"""

from __future__ import annotations

import enum

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import (ETHERTYPE_IPV4, ETHERTYPE_VLAN, IP_PROTO_UDP, MAX_VLAN_TAGS,
                                   MOLD_FIELDS, MOLD_HEADER_SIZE)

from .common import HEADER_BYTES, OFFSET_BITS, be, counter_events_layout, mac_beat_layout, pick

__all__ = ["Verdict", "HeaderParser", "frame_beat_layout", "HEADER_COUNTERS", "DROP_COUNT_DELAY"]

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

#: Cycles by which a ``drop_*`` counter increment lags the beat that decides the drop,
#: compared with the other counters (see :class:`HeaderParser`).
DROP_COUNT_DELAY = 4


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
        **dict(mac_beat_layout(width).members),
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

    Nothing is muxed out of a frame buffer at the end.  Every header field sits at an
    offset known beats before the MoldUDP64 header ends, so each is captured into its
    own register as its beat goes by, each check is evaluated from registers in the
    cycle(s) after its bytes are in, and the decisive beat only combines registered
    flags with the few conditions of that beat.  How (8-byte beats):

    - Bytes 12..41 (EtherTypes, the first 20 IPv4 bytes at the three possible IPv4
      starts ``I = 14 + 4*tags``) are captured at fixed byte lanes of beats 1..5; the
      tag count, registered after beat 2, selects among them.
    - The UDP header ``U = I + 4*IHL`` (34..82) is always ``2 mod 4``, so its bytes
      reach an 8-byte beat at one of two alignments: beats are realigned (this beat,
      or the last 4 bytes of the previous one and the first 4 of this one) so that
      ``U - 2`` is lane 0, and the UDP and MoldUDP64 fields are captured at fixed
      lanes of realigned beats 0..2; the beat completing realigned beat 3 holds the
      last MoldUDP64 header byte and gives the rest of ``sequence`` and ``count``.
    - The IPv4 checksum is summed a beat at a time as two registered pair sums (word
      masks precomputed for the next beat; the three words whose inclusion depends on
      the VLAN tag of the same beat are masked a cycle later), accumulated in a 21-bit
      register, and compared with ``0xFFFF`` without folding (``lo == 0xFFFF - hi``).
    - The verdict: ``start`` (acceptance) is decided on the beat of the last MoldUDP64
      header byte, from registered flags, as before.  The drop reasons are decided by
      a pipeline that replays the contract's ordered checks for every beat three
      cycles after it, from the same flags and from the beat's registered "bytes
      present" gates; a drop counter therefore rises four cycles later than the beat
      that decides it (the reference model's beat), ``packets``, ``frames`` and
      ``bad_fcs`` one cycle later as before.  A frame's flags stay untouched until the
      next frame's second beat, so frames that end early, one-beat frames and
      back-to-back frames are judged on their own bytes.

    Output beats follow input beats by one cycle; beats outside a frame (no ``first``
    seen) are dropped.

    Parameters
    ----------
    width : int
        Datapath width in bytes; must be 8 (the capture lanes and the pipeline's
        cycle budget are laid out for 8-byte beats).

    Attributes
    ----------
    i_mac : In(stream.Signature(mac_beat_layout(width), always_ready=True))
        MAC receive stream; never back-pressured.
    o_beat : Out(stream.Signature(frame_beat_layout(width), always_ready=True))
        Annotated beats.
    o_data : Out(8 * width)
        ``o_beat.payload.data`` again, 0 while ``o_beat.valid`` is low: a register of
        its own for the message bytes' path (the assembler), so that the beat's bytes
        leave two registers, each with half the fan-out (the splitter's length logic
        takes the other).
    timestamp : In(64)
        Nanosecond clock, sampled on the first beat of a frame.
    ip_dst, port, check_ip_checksum : In
        Configuration (0 = any address / port).
    o_count : Out(counter_events_layout)
        Counter increments (registered), for :data:`HEADER_COUNTERS`; the ``drop_*``
        ones :data:`DROP_COUNT_DELAY` cycles after the others would have been.
    """

    def __init__(self, width: int = 8):
        if width != 8:
            self._MustUse__silence = True      # refused, so never meant to be elaborated
            raise ValueError("the header parser is laid out for 8-byte beats (width=8)")
        self.width = width
        super().__init__({
            "i_mac": In(stream.Signature(mac_beat_layout(width), always_ready=True)),
            "o_beat": Out(stream.Signature(frame_beat_layout(width), always_ready=True)),
            "o_data": Out(8 * width),
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
        L = [beat.data[8 * k:8 * k + 8] for k in range(W)]
        max_beat = (1 << OFFSET_BITS) // W - 1
        last_hdr_beat = -(-HEADER_BYTES // W)       # header beat index saturates here (14)

        def is_vlan(v):
            return Cat(*[v == t for t in ETHERTYPE_VLAN]).any()

        def reg(value, name, shape=None):
            """``value`` registered every cycle (a pipeline stage, no enable)."""
            s = Signal(shape if shape is not None else len(value), name=name)
            m.d.sync += s.eq(value)
            return s

        # ---- Beat position -------------------------------------------------------------
        in_frame = Signal()
        beat_no = Signal(range(max_beat + 1))       # index of the next beat of the frame
        hidx = Signal(range(last_hdr_beat + 1))     # the same, saturating past the headers
        take = Signal()                              # this input beat belongs to a frame
        m.d.comb += take.eq(self.i_mac.valid & (beat.first | in_frame))
        idx = Mux(beat.first, 0, beat_no)
        offset = (idx * W)[:OFFSET_BITS]
        cont = take & ~beat.first                    # a frame's beat other than its first
        hidx_next = Signal.like(hidx)
        m.d.comb += hidx_next.eq(Mux(take, Mux(beat.first, 1, Mux(hidx == last_hdr_beat, hidx, hidx + 1)),
                                     hidx))
        with m.If(take):
            m.d.sync += [in_frame.eq(~beat.last), beat_no.eq(Mux(idx == max_beat, idx, idx + 1))]
        m.d.sync += hidx.eq(hidx_next)
        at = {k: Signal(name=f"at{k}") for k in range(1, 6)}   # hidx == k, registered
        for k, s in at.items():
            m.d.sync += s.eq(hidx_next == k)
        on = {k: cont & at[k] for k in at}           # this beat is beat k of its frame

        # ---- Ethernet / VLAN / IPv4 bytes at fixed lanes of beats 1..5 (depth 0) ----------
        # Beat 1 = bytes 8..15, beat 2 = 16..23: EtherTypes at 12, 16, 20; IPv4 starts
        # (version/IHL byte) at 14, 18, 22.
        assert MAX_VLAN_TAGS == 2 and _ETH_TYPE == 12 and _ETH_HEADER == 14 and _VLAN_TAG == 4
        et_lanes = {0: (1, 4), 1: (2, 0), 2: (2, 4)}            # tag count t: (beat, lane) of its EtherType
        vihl_lanes = {0: (1, 6), 1: (2, 2), 2: (2, 6)}
        vlan = [Signal(name=f"vlan{t}") for t in range(2)]    # EtherType t is a VLAN TPID
        ip4 = [Signal(name=f"ip4_{t}") for t in range(3)]     # EtherType t is IPv4
        vihl = [Signal(8, name=f"vihl{t}") for t in range(3)]
        for t in range(3):
            b, ln = et_lanes[t]
            et = be(L[ln:ln + 2])
            with m.If(on[b]):
                m.d.sync += ip4[t].eq(et == ETHERTYPE_IPV4)
                if t < 2:
                    m.d.sync += vlan[t].eq(is_vlan(et))
            b, ln = vihl_lanes[t]
            with m.If(on[b]):
                m.d.sync += vihl[t].eq(L[ln])
        ipr = {x: Signal(8, name=f"b{x}") for x in range(16, 42)}   # bytes 16..41
        for x, s in ipr.items():
            with m.If(on[x // W]):
                m.d.sync += s.eq(L[x % W])

        # The tag count and everything selected by it (depth 1: from registers only).
        tags = Mux(vlan[0], Mux(vlan[1], 2, 1), 0)

        def by_tags(cands):
            return pick(cands, tags)

        def ip_field(off, size):
            return by_tags([be([ipr[_ETH_HEADER + _VLAN_TAG * t + off + i] for i in range(size)])
                            for t in range(3)])

        ihl = [vihl[t][0:4] for t in range(3)]

        def per_ihl(fn):
            """``fn(u)`` of the UDP start ``u`` for each tag count, as 16-entry tables of
            that tag count's IHL nibble (IHL < 5 read as 5): LUTs, not adders."""
            def u_of(t, n):
                return _ETH_HEADER + _VLAN_TAG * t + 4 * max(n, 5)
            return [Array([Const(fn(u_of(t, n)), 8) for n in range(16)])[ihl[t]] for t in range(3)]

        F_et = reg(~by_tags(ip4), "F_et")
        F_vihl = reg(by_tags([(vihl[t][4:8] != 4) | (ihl[t] < 5) for t in range(3)]), "F_vihl")
        U = reg(by_tags(per_ihl(lambda u: u)), "U", 7)                # UDP header start
        U8 = reg(by_tags(per_ihl(lambda u: u + _UDP_HEADER)), "U8", 7)
        U28 = reg(by_tags(per_ihl(lambda u: u + _UDP_HEADER + MOLD_HEADER_SIZE)), "U28", 7)
        # Beat completing realigned beat j (the beat of frame byte U - 2 + 8j + 7).
        C = [reg(by_tags(per_ihl(lambda u, j=j: (u + W - 3) // W + j)), f"C{j}", 4) for j in range(4)]
        par = reg(by_tags(per_ihl(lambda u: u % W == 6)), "par", 1)   # realign by 4 bytes
        # The last beat holding IPv4 header words, minus one, and how many words it holds.
        ub1 = reg(by_tags(per_ihl(lambda u: (u - 1) // W - 1)), "ub1", 4)
        nwl = reg(by_tags(per_ihl(lambda u: (u % W) // 2)), "nwl", 2)
        ihl_sel = reg(by_tags(ihl), "ihl", 4)
        tot = reg(ip_field(_IPV4_TOTAL, 2), "tot", 16)
        frag = reg(ip_field(_IPV4_FRAG, 2)[0:14], "frag", 14)
        proto = reg(ip_field(_IPV4_PROTO, 1), "proto", 8)
        dst = reg(ip_field(_IPV4_DST, 4), "dst", 32)
        # Depth 2.
        F_frag = reg(frag != 0, "F_frag")
        F_proto = reg(proto != IP_PROTO_UDP, "F_proto")
        F_dst = reg((self.ip_dst != 0) & (dst != self.ip_dst), "F_dst")
        hl = ihl_sel * 4
        tot_short = reg(tot < hl + _UDP_HEADER, "tot_short")
        tot_room = reg((tot - hl)[:16], "tot_room", 16)    # room for UDP (when not tot_short)

        # ---- UDP and MoldUDP64 header: realigned so that U - 2 is lane 0 ---------------------
        prev_hi = Signal(8 * (W // 2))                     # lanes 4..7 of the previous beat
        with m.If(take):
            m.d.sync += prev_hi.eq(beat.data[8 * W // 2:])
        rw_v = Mux(par, Cat(prev_hi, beat.data[:8 * W // 2]), beat.data)
        RW = [rw_v[8 * k:8 * k + 8] for k in range(W)]
        rel = {}                                          # rel byte r (frame byte U - 2 + r), captured
        for j, rs in ((0, range(4, 8)), (1, range(10, 16)), (2, range(16, 24))):
            cap = cont & (hidx == C[j])
            for r in rs:
                rel[r] = Signal(8, name=f"r{r}")
                with m.If(cap):
                    m.d.sync += rel[r].eq(RW[r - W * j])
        for r in range(24, 30):                           # realigned beat 3: the current beat
            rel[r] = RW[r - 24]
        dport = be([rel[2 + _UDP_DPORT + i] for i in range(2)])
        ulen = be([rel[2 + _UDP_LEN + i] for i in range(2)])
        F_port = reg((self.port != 0) & (dport != self.port), "F_port")
        F_ulen = reg(tot_short | (ulen < _UDP_HEADER) | (ulen > tot_room), "F_ulen")
        F_short = reg(ulen < _UDP_HEADER + MOLD_HEADER_SIZE, "F_short")
        pay_end = reg((U + ulen)[:OFFSET_BITS], "pay_end", OFFSET_BITS)
        mold = 2 + _UDP_HEADER
        session = Cat(*[rel[mold + _MOLD["session"].offset + i] for i in range(_MOLD["session"].size)])
        seqno = be([rel[mold + _MOLD["sequence"].offset + i] for i in range(_MOLD["sequence"].size)])
        count = be([rel[mold + _MOLD["count"].offset + i] for i in range(_MOLD["count"].size)])
        assert mold + MOLD_HEADER_SIZE - 1 == 29     # the last header byte is lane 5 of realigned beat 3

        # ---- IPv4 header checksum over [I, U) ----------------------------------------------
        # Words of beat k at lane pairs j = 0..3 (frame byte 8k + 2j).  Inside iff >= I and
        # < U.  Word masks for the next beat are registered (`wmask`); beat 1's word 14 and
        # beat 2's words 18, 20 depend on the tag in the same beat and are masked one cycle
        # later, as whole pair sums (Y = words 0 + 3, X = words 1 + 2); beat 2's word 16
        # needs vlan0, registered by then.
        # Beat 4's masks (from the IHL bytes: U is registered a cycle too late for them).
        m4 = by_tags(per_ihl(lambda u: sum(1 << j for j in range(4) if u > 4 * W + 2 * j)))
        wmask = Signal(4)
        wm_next = Signal(4)
        nwl_gt = [nwl > j for j in range(3)] + [Const(0)]      # the last beat holds at most 3 words
        gen = Cat(*[(hidx < ub1) | ((hidx == ub1) & nwl_gt[j]) for j in range(4)])   # next beat hidx + 1
        with m.If(~take):
            m.d.comb += wm_next.eq(wmask)
        with m.Elif(beat.first):
            m.d.comb += wm_next.eq(0b1000)                 # beat 1: word 14
        with m.Elif(hidx == 1):
            m.d.comb += wm_next.eq(0b1111)                 # beat 2 (word 16: below)
        with m.Elif(hidx == 2):
            m.d.comb += wm_next.eq(0b1111)                 # beat 3: 24..31, always inside
        with m.Elif(hidx == 3):
            m.d.comb += wm_next.eq(m4[:4])
        with m.Else():
            m.d.comb += wm_next.eq(gen)
        m.d.sync += wmask.eq(wm_next)
        words = [Cat(L[2 * j + 1], L[2 * j]) for j in range(W // 2)]
        wm = [wmask[j] & ~beat.first for j in range(4)]
        wm[0] = wm[0] & ~(at[2] & vlan[0])
        xs = Signal(17)
        ys = Signal(17)
        gx = Signal()
        gy = Signal()
        init = Signal()
        m.d.sync += [
            xs.eq(Mux(wm[1], words[1], 0) + Mux(wm[2], words[2], 0)),
            ys.eq(Mux(wm[0], words[0], 0) + Mux(wm[3], words[3], 0)),
            gx.eq(cont & ~(at[2] & vlan[0] & is_vlan(be(L[0:2])))),
            gy.eq(cont & ~(at[1] & is_vlan(be(L[4:6])))),
            init.eq(take & beat.first),
        ]
        # acc + X + Y through one carry-save level and one carry chain.
        acc = Signal(21)
        xa = Mux(gx, xs, 0)
        ya = Mux(gy, ys, 0)
        csa_s = acc ^ xa ^ ya
        csa_c = Cat(0, (acc & xa) | (acc & ya) | (xa & ya))
        m.d.sync += acc.eq(Mux(init, 0, (csa_s + csa_c)[:21]))
        # At most 30 words: hi = acc >> 16 < 32, and the folded sum is 0xFFFF iff lo + hi == 0xFFFF.
        csum_ok = reg((acc[5:16] == 0x7FF) & (acc[0:5] == ~acc[16:21]), "csum_ok")
        csum_bad = self.check_ip_checksum & ~csum_ok

        # ---- Acceptance, on the beat of the last MoldUDP64 header byte ---------------------
        ok_all = ~(F_et | F_vihl | csum_bad | F_frag | F_proto | F_dst | F_ulen | F_port | F_short)
        lane_m = Mux(par, 1, 5)                            # lane of U + 27
        start = Signal()
        m.d.comb += start.eq(cont & (hidx == C[3]) & (~beat.last | (beat.nbytes > lane_m)) & ok_all)

        # ---- Drops: the ordered checks, replayed three cycles after each beat --------------
        avail = Mux(beat.first, 0, hidx) * W + Mux(beat.last, beat.nbytes, W)   # saturates at 120
        d1 = [reg(take, "d1_valid"), reg(take & beat.first, "d1_first"), reg(beat.last, "d1_last"),
              reg(avail, "d1_avail", 7)]
        d2 = [reg(s, f"d2_{n}") for s, n in zip(d1, ("valid", "first", "last", "avail"))]
        d2_avail = d2[3]
        v0, v1 = vlan

        def ge(n):
            return d2_avail >= n
        gates = {
            "eth": ge(14) & (~v0 | ge(18) & (~v1 | ge(22))),          # avail >= I
            "ip1": ge(15) & (~v0 | ge(19) & (~v1 | ge(23))),          # avail >= I + 1
            "ip": d2_avail >= U, "udp": d2_avail >= U8, "mold": d2_avail >= U28,
        }
        g = {n: reg(v, f"g_{n}") for n, v in gates.items()}
        d3_valid, d3_first, d3_last = [reg(s, f"d3_{n}") for s, n in zip(d2[:3], ("valid", "first", "last"))]
        chain = [
            (~g["eth"], None), (F_et, Verdict.drop_not_ipv4),
            (~g["ip1"], None), (F_vihl, Verdict.drop_not_ipv4),
            (~g["ip"], None), (csum_bad, Verdict.drop_ip_checksum), (F_frag, Verdict.drop_fragment),
            (F_proto, Verdict.drop_not_udp), (F_dst, Verdict.drop_ip_dst),
            (~g["udp"], None), (F_ulen, Verdict.drop_udp_length), (F_port, Verdict.drop_port),
            (F_short, Verdict.drop_mold_short),
            (~g["mold"], None),
        ]
        verdict = Signal(Verdict)
        short = Mux(d3_last, Verdict.drop_truncated, Verdict.PENDING)
        with m.If(~d3_valid):
            pass
        for i, (cond, v) in enumerate(chain):
            with m.Elif(cond):
                m.d.comb += verdict.eq(short if v is None else v)
        with m.Else():
            m.d.comb += verdict.eq(Verdict.ACCEPT)
        e_verdict = reg(verdict, "e_verdict", Verdict)
        e_first = reg(d3_first, "e_first")
        dropped = Signal()                                  # this frame's drop was counted
        is_drop = (e_verdict != Verdict.PENDING) & (e_verdict != Verdict.ACCEPT)
        with m.If(e_first):
            m.d.sync += dropped.eq(is_drop)
        with m.Elif(is_drop):
            m.d.sync += dropped.eq(1)
        decide = is_drop & (e_first | ~dropped)

        # ---- Output, one cycle later -------------------------------------------------------
        out = self.o_beat.payload
        ts = Signal(64)
        with m.If(take & beat.first):
            m.d.sync += ts.eq(self.timestamp)
        m.d.sync += [
            self.o_beat.valid.eq(take),
            out.data.eq(beat.data),
            # (0 when no beat is taken: the flip-flops' synchronous reset, which also
            # keeps synthesis from merging the copy into ``out.data``)
            self.o_data.eq(Mux(take, beat.data, 0)),
            out.nbytes.eq(beat.nbytes),
            out.first.eq(beat.first),
            out.last.eq(beat.last),
            out.error.eq(beat.error),
            out.offset.eq(offset),
            out.ts.eq(Mux(take & beat.first, self.timestamp, ts)),
            out.start.eq(start),
            out.pay_start.eq(U28),
            out.pay_end.eq(pay_end),
            out.session.eq(session),
            out.sequence.eq(seqno),
            out.count.eq(count),
        ]

        cnt = self.o_count
        m.d.sync += [
            cnt.frames.eq(take & beat.first),
            cnt.bad_fcs.eq(take & beat.last & beat.error),
            cnt.packets.eq(start),
        ]
        for v in Verdict:
            if v.name.startswith("drop_"):
                m.d.sync += getattr(cnt, v.name).eq(decide & (e_verdict == v))
        return m
