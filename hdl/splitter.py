"""Stage 2: MoldUDP64 message-block splitter.

Walks the message blocks of an accepted frame as its beats go by, making the
per-block checks of docs/reference-model.md, and tells the assembler, in the
cycle a beat arrives, which of its bytes belong to which ITCH message.

A block is its 2-byte length ``L`` then ``L`` bytes.  The walk goes past a block
only when ``L`` is at least the shortest ITCH message (``formats.MIN_MESSAGE_LENGTH``,
12): shorter blocks are malformed by the contract.  So every block the walk visits
is at least 14 bytes long, and an 8-byte beat holds at most one block boundary.
The walker is built on that:

* **Stage A** (the beat's cycle) reads the beat through registers computed one cycle
  ahead: which lane holds the second length byte of the next block (``xl``), which
  its type byte (``xt``, where the message body starts) and which the last byte of
  the current block (``here``).  It extracts ``L`` and the type there and, from
  ``L``, works out where the block ends: in the next beat (a per-lane fast path:
  every lane's candidate is computed in parallel and one is picked), or further on
  (a beat countdown).  The slots it gives the assembler come from registers only.
* **Stage B** (the next cycle) makes the block's checks on what stage A registered,
  in the contract's order, and accepts the block or stops the walk.  A block is
  always checked before the beat holding its last byte has left stage A (its type
  byte is at least 11 bytes before its end), so the acceptance of a message is a
  register by the cycle the sequencer needs it: :attr:`BlockSplitter.o_ok`
  confirms, one cycle after the beat, what ``o_blk`` announced in it.

Every check a frame's end decides (``bad_truncated``) is made on the frame's last
beat from what stage A has and has not seen yet.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import MOLD_END_OF_SESSION, MOLD_HEARTBEAT

from .common import MAX_MSG_LEN, MIN_MSG_LEN, OFFSET_BITS, counter_events_layout, pick, type_length
from .header import frame_beat_layout

__all__ = ["BlockSplitter", "slot_layout", "split_beat_layout", "ok_layout", "SPLITTER_COUNTERS"]

_COUNTER_WIDTHS = {
    "heartbeats": 1, "end_of_session": 1,
    "bad_block_overrun": 1, "bad_block_length": 1, "bad_truncated": 1, "unknown_type": 1,
}

#: Counters this stage increments.
SPLITTER_COUNTERS = tuple(_COUNTER_WIDTHS)


def slot_layout(width: int = 8) -> data.StructLayout:
    """Where the body of one ITCH message lies in a beat.

    Fields
    ------
    valid : 1
        The slot describes a message.
    rot : log2(width)
        Body start offset modulo ``width``: message byte ``j`` is in lane
        ``(j + rot) % width`` of the beats it spans.
    off : signed 8
        Beat offset minus body start: lanes ``0 .. width-1`` of this beat hold message
        bytes ``off .. off + width - 1`` (negative for a message starting in this beat).
    done : 1
        The message's last byte is in this beat (provisional: :attr:`BlockSplitter.o_ok`
        says in the next cycle whether the block passed its checks).
    type : 8
        ITCH type byte.
    index : 16
        Block number ``i`` within the packet (the message's number is ``S + i``).
    sel : width
        ``rot`` as a one-hot code (bit ``rot`` set), registered with it: the
        assembler's rotations select by it, an AND-OR of registers.
    fit : width
        For a body beginning in this beat (``nxt``): lane ``j`` is set when message
        byte ``j`` is in this beat (``j + rot < width``), a thermometer code registered
        with ``rot`` so that the assembler's lane masks need no decoder of ``rot``.
        0 in ``msg``.
    """
    return data.StructLayout({
        "valid": unsigned(1),
        "rot": unsigned((width - 1).bit_length()),
        "off": signed(8),
        "done": unsigned(1),
        "type": unsigned(8),
        "index": unsigned(16),
        "sel": unsigned(width),
        "fit": unsigned(width),
    })


def split_beat_layout(width: int = 8) -> data.StructLayout:
    """A beat with the message bodies found in it, in the cycle the beat arrives.

    Fields
    ------
    data : 8*width
        The beat's bytes.
    first, last, error, ts
        Frame boundaries, MAC error (with ``last``), frame timestamp (with ``first``).
    start, session, sequence, count
        As in :func:`~wiretick.hdl.header.frame_beat_layout`: the frame was accepted and
        this beat ends its MoldUDP64 header.
    msg : slot_layout
        The message whose body began in an earlier beat and overlaps this one (the only
        one that may end here).
    nxt : slot_layout
        A message whose body begins in this beat (never ``done``).
    """
    return data.StructLayout({
        "data": unsigned(8 * width),
        "first": unsigned(1),
        "last": unsigned(1),
        "error": unsigned(1),
        "ts": unsigned(64),
        "start": unsigned(1),
        "session": unsigned(80),
        "sequence": unsigned(64),
        "count": unsigned(16),
        "msg": slot_layout(width),
        "nxt": slot_layout(width),
    })


#: What :attr:`BlockSplitter.o_ok` confirms about the previous cycle's beat.
ok_layout = data.StructLayout({
    "msg": unsigned(1),      # its ``msg.done`` message passed every block check: deliver it
    "block": unsigned(1),    # a block (known type or not) ended in it and passed: it counts as received
})


class _Phase(enum.Enum, shape=2):
    """What stage A waits for in the block it is reading."""
    LEN = 0      # the length bytes
    TYPE = 1     # the type byte
    BODY = 2     # the block's last byte


class BlockSplitter(wiring.Component):
    """Find MoldUDP64 message blocks and check them, a beat per cycle.

    Parameters
    ----------
    width : int
        Datapath width in bytes: 8 (a beat holds at most one block boundary because
        every block the walk visits is at least 14 bytes long).

    Attributes
    ----------
    i_beat : In(stream.Signature(frame_beat_layout(width), always_ready=True))
        Beats from :class:`~wiretick.hdl.header.HeaderParser` (registered there).
    o_blk : Out(stream.Signature(split_beat_layout(width), always_ready=True))
        The same beats in the same cycle, with the message slots (from registers).
    o_ok : Out(ok_layout)
        Confirmations for the beat ``o_blk`` carried in the previous cycle.
    o_count : Out(counter_events_layout)
        Counter increments (registered), for :data:`SPLITTER_COUNTERS`.
    """

    def __init__(self, width: int = 8):
        if width != 8:
            raise ValueError("the block splitter is written for an 8-byte datapath")
        self.width = width
        super().__init__({
            "i_beat": In(stream.Signature(frame_beat_layout(width), always_ready=True)),
            "o_blk": Out(stream.Signature(split_beat_layout(width), always_ready=True)),
            "o_ok": Out(ok_layout),
            "o_count": Out(counter_events_layout(_COUNTER_WIDTHS)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        beat = self.i_beat.payload
        valid = self.i_beat.valid
        lanes = [beat.data[8 * k:8 * k + 8] for k in range(W)]
        prev7 = Signal(8)                         # lane 7 of the previous beat
        with m.If(valid):
            m.d.sync += prev7.eq(lanes[W - 1])

        # ------------------------------------------------------------------ stage A
        act = Signal()                 # walking this frame's blocks (stage B clears it)
        ph = Signal(_Phase)
        here = Signal()                # the current block's last byte is in this beat ...
        e_lane = Signal(3)             # ... in this lane
        cnt = Signal(14)               # beats after the next one until that beat
        xl_due = Signal()              # the next block's 2nd length byte is in this beat ...
        xl_lane = Signal(3)
        xt_due = Signal()              # ... its type byte (body start) is in this beat
        xt_lane = Signal(3)
        # Copies of ``xt_lane`` for its other readers, each a register of its own (its
        # bits drive several hundred LUT inputs): ``xt_sel`` selects this stage's type
        # byte and length (0 when no type byte is due, which makes it a flip-flop
        # synthesis cannot merge with ``xt_lane``), ``xt_fit`` is ``o_blk.nxt.fit``.
        xt_sel = Signal(3)
        xt_fit = Signal(W)
        xt_oh = Signal(W)              # ``o_blk.nxt.sel``
        xi = Signal(16)                # number of the block whose type byte comes next
        cur_valid = Signal()           # a body that began earlier continues in this beat
        cur_rot = Signal(3)
        cur_oh = Signal(W)             # cur_rot, one-hot
        cur_off = Signal(signed(8))
        cur_index = Signal(16)
        cur_type = Signal(8)

        start = beat.start
        # On the beat that ends the MoldUDP64 header the first block begins right after
        # it, as if a block had ended at pay_start - 1.  The header parser gives
        # pay_start from the beat its IPv4 IHL is known, several beats before that one,
        # so the splitter knows a beat ahead which beat it is (``sb``) and loads its
        # lane registers for it as for any other beat: stage A reads registers only.
        # (It does so on every frame; whether the header checks passed, ``start``, only
        # decides whether the walk counts.)
        sb = Signal()                 # this beat holds pay_start - 1
        pe = Signal(3)                # ... in this lane
        ps = Signal(3)
        sb_next = Signal()            # the next beat holds pay_start - 1: known two beats ahead
        m.d.comb += ps.eq(beat.pay_start[:3] - 1)
        with m.If(valid):
            m.d.sync += sb_next.eq(((beat.pay_start - 1 - beat.offset)[:OFFSET_BITS])[3:] == 2)
        start_ok = (beat.count != MOLD_HEARTBEAT) & (beat.count != MOLD_END_OF_SESSION)
        walking = Signal()
        m.d.comb += walking.eq(Mux(start, start_ok, act & ~beat.first))

        # What this beat holds of the next block, as registered a beat ahead.
        xl_en, xl_ln, xt_en, xt_ln = xl_due, xl_lane, xt_due, xt_lane

        # Bytes present in this beat (all of them but on a frame's last beat).
        def present(lane):
            return ~beat.last | (lane < beat.nbytes)

        # Per-lane candidates, in parallel: if the 2nd length byte were in lane j, the
        # block's last byte is ``j + L`` bytes from this beat's lane 0.  What the next
        # beat's registers need of it is computed from the length bytes directly (no
        # adder before the pick): whether it ends in the next beat (``d1``: only a
        # length of 12..15 can), in which lane, and whether the next block's length or
        # type byte follow in that same beat.  The beat countdown takes the adder, off
        # the fast path.
        cands = {n: [] for n in ("L", "short", "d1", "el", "xl1", "xt1", "cnt")}
        for j in range(W):
            hi = prev7 if j == 0 else lanes[j - 1]
            Lj = Cat(lanes[j], hi)
            lo4 = lanes[j][:4]
            small = (hi == 0) & (lanes[j][4:] == 0)                 # L < 16
            short = small & (lo4 < MIN_MSG_LEN)
            d1 = small & ~short & ((lo4 <= 15 - j) if j else 1)      # j + L in 8..15
            el = (lo4[:3] + j)[:3]                                   # (j + L) mod 8
            cnt_j = Signal(14, name=f"cnt{j}")
            m.d.comb += cnt_j.eq((Lj + (j - 8))[3:])                 # beats after the next one
            for n, v in (("L", Lj), ("short", short), ("d1", d1), ("el", el), ("xl1", d1 & (el <= 5)),
                         ("xt1", d1 & (el <= 4)), ("cnt", cnt_j)):
                cands[n].append(v)
        ml_c = [type_length(m, lanes[j], name=f"ml{j}") for j in range(W)]

        # Picked by the registered lane.
        got = {}
        for n, vs in cands.items():
            sig = Signal(len(Value.cast(vs[0])), name=f"{n}_now")
            m.d.comb += sig.eq(pick(vs, xl_lane))
            got[n] = sig
        L_now = got["L"]
        T_now = Signal(8)
        ml_now = Signal(range(MAX_MSG_LEN + 1))
        m.d.comb += [T_now.eq(pick(lanes, xt_sel)), ml_now.eq(pick(ml_c, xt_sel))]

        # The slots, from registers (and, on a start beat, from the header's fields).
        out = self.o_blk.payload
        ended = Signal()                                 # the current block's last byte is here
        m.d.comb += ended.eq(here & act & ~beat.first & present(e_lane))
        idx_now = xi
        m.d.comb += [
            self.o_blk.valid.eq(valid),
            out.data.eq(beat.data),
            out.first.eq(beat.first), out.last.eq(beat.last), out.error.eq(beat.error), out.ts.eq(beat.ts),
            out.start.eq(start), out.session.eq(beat.session), out.sequence.eq(beat.sequence),
            out.count.eq(beat.count),
            # The slots need not know whether the walk goes on: bytes written for a block
            # that fails its checks are never read out (``o_ok`` does not confirm it).
            out.msg.valid.eq(cur_valid),
            out.msg.rot.eq(cur_rot),
            out.msg.sel.eq(cur_oh),
            out.msg.off.eq(cur_off),
            out.msg.done.eq(ended & cur_valid),
            out.msg.type.eq(cur_type),
            out.msg.index.eq(cur_index),
            out.nxt.valid.eq(xt_en),
            out.nxt.rot.eq(xt_ln),
            out.nxt.off.eq(-xt_ln),
            out.nxt.type.eq(T_now),
            out.nxt.index.eq(idx_now),
            out.nxt.sel.eq(xt_oh),
            out.nxt.fit.eq(xt_fit),
        ]

        # Where the block ends, for the beats to come: a new length read here, or the countdown.
        here_n = Signal()
        e_lane_n = Signal(3)
        cnt_n = Signal(14)
        # A block shorter than any message would end before stage B has checked it (it
        # fails a check, whatever comes first): the walk reads nothing after it.
        with m.If(xl_en & got["short"]):
            m.d.comb += [here_n.eq(0), e_lane_n.eq(got["el"]), cnt_n.eq(0)]
        with m.Elif(xl_en):
            m.d.comb += [here_n.eq(got["d1"]), e_lane_n.eq(got["el"]), cnt_n.eq(got["cnt"])]
        with m.Else():
            m.d.comb += [here_n.eq(cnt == 1), e_lane_n.eq(e_lane), cnt_n.eq(Mux(cnt == 0, 0, cnt - 1))]
        # Whether the next block's length / type byte are in the next beat with the end.
        xl_next = Mux(xl_en, got["xl1"], (cnt == 1) & (e_lane <= 5))
        xt_next = Mux(xl_en, got["xt1"], (cnt == 1) & (e_lane <= 4))
        # The block after the one ending next beat, or after the one ending in this beat
        # (when its header bytes spill into the next beat).
        spill_l = Mux(sb, pe >= 6, here & (e_lane >= 6))
        spill_t = Mux(sb, pe >= 5, here & (e_lane >= 5))
        e_now = Mux(sb, pe, e_lane)

        # Phase (for the frame's last beat: what was still missing).
        ph_after = Signal(_Phase)
        got_l = xl_en & present(xl_ln)
        got_t = xt_en & present(xt_sel)
        need_len = Mux(sb, 1, (ph == _Phase.LEN) | ((ph == _Phase.BODY) & here & present(e_lane)))
        with m.If(need_len | (ph == _Phase.TYPE)):
            with m.If(need_len & ~got_l):
                m.d.comb += ph_after.eq(_Phase.LEN)
            with m.Elif(~got_t):
                m.d.comb += ph_after.eq(_Phase.TYPE)
            with m.Else():
                m.d.comb += ph_after.eq(_Phase.BODY)
        with m.Else():
            m.d.comb += ph_after.eq(_Phase.BODY)

        # Registers to stage B.
        L_r = Signal(16)
        ml_r = Signal(range(MAX_MSG_LEN + 1))
        ev_t = Signal()
        ev_last = Signal()
        miss_r = Signal(_Phase)
        done_r = Signal()
        m.d.sync += [ev_t.eq(0), ev_last.eq(0), done_r.eq(0)]

        # The next block's lane registers' next values (the header's end overrides them).
        xl_due_n, xl_lane_n, xt_due_n, xt_lane_n = Signal(), Signal(3), Signal(), Signal(3)
        m.d.comb += [
            xl_due_n.eq(xl_next | spill_l), xl_lane_n.eq(Mux(spill_l, e_now + 2, e_lane_n + 2)),
            xt_due_n.eq(xt_next | spill_t), xt_lane_n.eq(Mux(spill_t, e_now + 3, e_lane_n + 3)),
        ]
        with m.If(beat.first):
            m.d.comb += [xl_due_n.eq(0), xt_due_n.eq(0)]
        # The next beat ends the MoldUDP64 header: block 0 begins after it.
        with m.If(sb_next):
            m.d.comb += [xl_due_n.eq(ps <= 5), xl_lane_n.eq(ps + 2), xt_due_n.eq(ps <= 4), xt_lane_n.eq(ps + 3)]

        with m.If(valid):
            m.d.sync += [
                here.eq(here_n), e_lane.eq(e_lane_n), cnt.eq(cnt_n),
                xl_due.eq(xl_due_n), xl_lane.eq(xl_lane_n),
                xt_due.eq(xt_due_n), xt_lane.eq(xt_lane_n),
                xt_sel.eq(Mux(xt_due_n, xt_lane_n, 0)),
                xt_fit.eq(Cat(Const(1, 1), *(xt_lane_n <= W - 1 - j for j in range(1, W)))),
                xt_oh.eq(Cat(*(xt_lane_n == j for j in range(W)))),
                ph.eq(ph_after),
                done_r.eq(ended & cur_valid),
            ]
            with m.If(xl_en):
                m.d.sync += L_r.eq(L_now)
            with m.If(xt_en):
                m.d.sync += [
                    ml_r.eq(ml_now), xi.eq(idx_now + 1),
                    cur_valid.eq(1), cur_rot.eq(xt_ln), cur_oh.eq(xt_oh), cur_off.eq(W - xt_ln), cur_type.eq(T_now),
                    cur_index.eq(idx_now),
                    ev_t.eq(walking & got_t),
                ]
            with m.Else():
                m.d.sync += cur_off.eq(cur_off + W)
                with m.If(ended):
                    m.d.sync += cur_valid.eq(0)
            with m.If(beat.last):
                m.d.sync += [ev_last.eq(walking), miss_r.eq(ph_after)]
            with m.If(beat.first):
                m.d.sync += [cur_valid.eq(0), here.eq(0), cnt.eq(0)]
            m.d.sync += [sb.eq(sb_next), pe.eq(ps)]
            with m.If(sb_next):
                m.d.sync += [xi.eq(0), here.eq(0), cnt.eq(0)]

        # ------------------------------------------------------------------ stage B
        room = Signal(signed(OFFSET_BITS + 2))   # pay_end - (block start + 2)
        left = Signal(16)                        # blocks the count still allows
        left_zero = Signal()
        acc_known = Signal()                     # the block being read passed, and is a message
        acc_any = Signal()

        evaluate = act & (ev_t | (ev_last & (miss_r != _Phase.BODY)))
        have_l = ~(ev_last & (miss_r == _Phase.LEN))
        have_t = ev_t
        unknown = ml_r == 0
        checks = [
            ("stop", left_zero),
            ("overrun", room < 0),
            ("trunc", ~have_l),
            ("overrun", L_r > room),
            ("blen", L_r == 0),
            ("trunc", ~have_t),
            ("blen", Mux(unknown, L_r < MIN_MSG_LEN, ml_r != L_r)),
        ]
        ev = {"overrun": Signal(), "blen": Signal(), "trunc": Signal(), "unknown": Signal()}
        stop = Signal()
        accept = Signal()
        with m.If(evaluate):
            for k, (kind, cond) in enumerate(checks):
                with (m.If if k == 0 else m.Elif)(cond):
                    m.d.comb += stop.eq(1)
                    if kind != "stop":
                        m.d.comb += ev[kind].eq(1)
            with m.Else():
                m.d.comb += [accept.eq(1), ev["unknown"].eq(unknown)]
                with m.If(ev_last):                      # accepted, but the frame ends inside it
                    m.d.comb += [stop.eq(1), ev["trunc"].eq(1)]
        with m.Elif(act & ev_last & (miss_r == _Phase.BODY) & acc_any):
            m.d.comb += [stop.eq(1), ev["trunc"].eq(1)]

        with m.If(accept):
            m.d.sync += [acc_any.eq(1), acc_known.eq(~unknown)]
        # The room and the count move on with every block evaluated, accepted or not: a
        # block that fails a check stops the walk, and the next walk loads them anew.
        # (On ``accept`` they were the end of the check chain, six LUTs and a route to
        # their 31 enables.)
        with m.If(evaluate):
            m.d.sync += [room.eq(room - L_r - 2), left.eq(left - 1), left_zero.eq(left == 1)]
        with m.If(stop):
            m.d.sync += [acc_any.eq(0), acc_known.eq(0)]
        with m.If(stop | ev_last):
            m.d.sync += act.eq(0)
        # A new frame: a walk begins on its start beat, or not at all.
        with m.If(valid & beat.first & ~start):
            m.d.sync += act.eq(0)
        with m.If(valid & start):
            m.d.sync += [
                act.eq(start_ok), acc_any.eq(0), acc_known.eq(0),
                room.eq(beat.pay_end - beat.pay_start - 2),
                left.eq(beat.count), left_zero.eq(0),
            ]

        m.d.comb += [self.o_ok.msg.eq(done_r & acc_known), self.o_ok.block.eq(done_r & acc_any)]

        cnt_o = self.o_count
        m.d.sync += [
            cnt_o.heartbeats.eq(valid & start & (beat.count == MOLD_HEARTBEAT)),
            cnt_o.end_of_session.eq(valid & start & (beat.count == MOLD_END_OF_SESSION)),
            cnt_o.bad_block_overrun.eq(ev["overrun"]),
            cnt_o.bad_block_length.eq(ev["blen"]),
            cnt_o.bad_truncated.eq(ev["trunc"]),
            cnt_o.unknown_type.eq(ev["unknown"]),
        ]
        assert MAX_MSG_LEN < 128, "slot offsets are signed 8-bit"
        return m
