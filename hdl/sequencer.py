"""Stage 5: MoldUDP64 sequencer and tick output.

Tracks one MoldUDP64 session (the tracked session, the next expected message
number), emits gap events, drops duplicates, numbers every tick, emits abort
events for frames the MAC flags bad after they released ticks (restoring the
sequence state), and queues the ticks for the consumer.

It works in two cycles.  In the cycle a beat reaches the assembler (``i_blk``), the
wide arithmetic is done ahead: on a packet's start beat the comparisons of its
first number ``S`` with the expected one (gap, duplicates, how many missing), on a
message's last beat its number ``S + i`` and whether it is a duplicate.  In the
next cycle, with the assembled message and the splitter's confirmation
(``i_built``, ``i_ok``), it chooses the tick, numbers it and writes the queue.

The expected number is kept lazily: a packet records where it started
(``exp_start``) and how many of its blocks completed, and the expected number is
``max(exp_start, S + completed)``, settled in registers a few cycles later.  The
next packet's start beat is at least seven beats after the previous frame's last
one, so it always sees the settled value.

Per cycle at most one tick is made: a gap event comes on the beat holding the end
of the MoldUDP64 header (no message can end there), messages end at most one per
beat, and the abort event is sent on the cycle after the frame's last beat, which
holds at most the first beat of the next frame.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from wiretick.host.contract.formats import MESSAGES, Event, Flag

from .assembler import KIND_CODES
from .builder import built_layout
from .common import counter_events_layout
from .splitter import ok_layout, split_beat_layout
from .tick import TICK_BITS, TickLayout

__all__ = ["Sequencer", "SEQUENCER_COUNTERS", "preload_layout"]

#: Sequence state a host loads to join a feed mid-stream (after recovering from a
#: snapshot): applied on the cycle ``en`` is high, which the top asserts only while
#: no frame is in the parser.
preload_layout = data.StructLayout({
    "en": unsigned(1),
    "has": unsigned(1),          # a session is tracked (else the next packet starts tracking its own)
    "session": unsigned(80),     # the tracked session, wire byte k in bits 8k..8k+7
    "expected": unsigned(64),    # the next message number not yet delivered
    "seq": unsigned(64),         # the seq of the next tick
})

#: Duplicate limits saturate here (a packet has at most 65535 blocks).
_DUP_BITS = 17


def _counter_widths() -> dict[str, int]:
    widths = {"messages": 1, "duplicates": 1, "gaps": 1, "gap_messages": 64, "aborts": 1, "sessions": 1,
              "ticks": 1}
    widths.update({f"msg_{msg.code}": 1 for msg in MESSAGES})
    return widths


#: Counters this stage increments.
SEQUENCER_COUNTERS = tuple(_counter_widths())


class Sequencer(wiring.Component):
    """Sequence processing (docs/reference-model.md) and the tick output queue.

    A tick is registered in the cycle it is made and is on ``o_tick`` from the next
    cycle.  With ``depth`` 0 (the default; behind the DMA engine, which takes a tick
    every cycle) that register is the output and ``o_tick`` is always-ready.  With a
    queue, the tick goes out straight from the register while the consumer is ready
    and nothing is queued, else through a :class:`~amaranth.lib.fifo.SyncFIFO` of
    ``depth`` ticks.  If the consumer stalls longer than the queue is deep, ticks that
    find it full are not written: each one pulses ``o_lost`` (a cycle after it was
    made; the top counts them) and leaves a hole in ``seq``.

    Parameters
    ----------
    width : int
        Datapath width in bytes (for the input layout).
    depth : int
        Output queue depth in ticks; 0 for none (``o_tick`` always-ready).

    Attributes
    ----------
    i_blk : In(stream.Signature(split_beat_layout(width), always_ready=True))
        Beats from the splitter, in the cycle they reach the assembler (frame
        boundaries, MoldUDP64 header, the slot of a message ending in the beat).
    i_ok : In(ok_layout)
        The splitter's confirmation of the previous cycle's beat.
    i_built : In(stream.Signature(built_layout(), always_ready=True))
        The message tick of a message that ended in the previous cycle's beat.
    sequence_check : In(1)
        Configuration: track sequence numbers (duplicates dropped, gaps reported).
    preload : In(preload_layout)
        Late join: the sequence state and the next tick's ``seq``, loaded on ``en``.
    o_tick : Out(stream.Signature(TickLayout, always_ready=depth == 0))
        The tick stream.
    o_count : Out(counter_events_layout)
        Counter increments, for :data:`SEQUENCER_COUNTERS`.
    o_lost : Out(1)
        A tick was lost to a full queue this cycle.
    """

    def __init__(self, width: int = 8, depth: int = 0):
        if depth < 0:
            raise ValueError(f"queue depth must be 0 (none) or more, not {depth}")
        self.width = width
        self.depth = depth
        super().__init__({
            "i_blk": In(stream.Signature(split_beat_layout(width), always_ready=True)),
            "i_ok": In(ok_layout),
            "i_built": In(stream.Signature(built_layout(), always_ready=True)),
            "sequence_check": In(1),
            "preload": In(preload_layout),
            "o_tick": Out(stream.Signature(TickLayout, always_ready=depth == 0)),
            "o_count": Out(counter_events_layout(_counter_widths())),
            "o_lost": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        blk = self.i_blk.payload
        valid = self.i_blk.valid
        chk = self.sequence_check
        built = self.i_built.payload

        # Sequence state: the tracked session, and the expected number kept as
        # max(exp_start, S + completed) while a packet is open.
        has = Signal()
        session = Signal(80)
        exp_start = Signal(64)
        inpkt = Signal()
        completed = Signal(17)
        reach = Signal(64)                  # S + completed, a cycle late
        expected = Signal(64)               # the expected number, settled (a few cycles late)
        sv_has = Signal()
        sv_session = Signal(80)
        sv_expected = Signal(64)

        # ------------------------------------------------ cycle 1: arithmetic ahead
        s_pkt = Signal(64)                  # S of the current packet
        r_start = Signal()
        r_first = Signal()
        r_last = Signal()
        r_error = Signal()
        r_new = Signal()                    # the packet starts tracking a session
        r_ahead = Signal()                  # S > expected
        r_behind = Signal()                 # S < expected
        r_session = Signal(80)
        r_diff = Signal(_DUP_BITS)          # (expected - S) mod 2**_DUP_BITS
        r_missing = Signal(64)              # S - expected
        r_feed = Signal(64)
        r_dup = Signal()
        dup_lim = Signal(_DUP_BITS)         # messages numbered below S + dup_lim are duplicates
        ts = Signal(64)

        start1 = valid & blk.start
        s_minus_e = Signal(65)              # S - expected, the borrow in bit 64
        m.d.comb += s_minus_e.eq(Cat(blk.sequence, Const(0, 1)) - Cat(expected, Const(0, 1)))
        m.d.sync += [
            r_start.eq(start1),
            r_first.eq(valid & blk.first),
            r_last.eq(valid & blk.last),
            r_error.eq(valid & blk.last & blk.error),
        ]
        with m.If(valid & blk.first):
            m.d.sync += ts.eq(blk.ts)
        new_n = ~has | (session != blk.session)
        # (one subtraction, its borrow and an equality, rather than two subtractions and
        # two comparisons of 64 bits; S > expected as two 32-bit halves side by side was
        # merged back into the subtraction by synthesis, 68 LUT4 more for nothing)
        ahead_n = ~s_minus_e[64] & (blk.sequence != expected)
        # The gap event of the packet starting here is decided now, into a register: as
        # a LUT of r_start, chk, r_new and r_ahead it drove the tick register's 400
        # synchronous resets (the event's zero fields) a long route from them.
        gap = Signal()
        m.d.sync += gap.eq(start1 & chk & ~new_n & ahead_n)
        with m.If(start1):
            m.d.sync += [
                s_pkt.eq(blk.sequence),
                r_session.eq(blk.session),
                r_new.eq(new_n),
                r_ahead.eq(ahead_n),
                r_behind.eq(s_minus_e[64]),
                r_diff.eq(expected[:_DUP_BITS] - blk.sequence[:_DUP_BITS]),
                r_missing.eq(s_minus_e[:64]),
            ]
        idx = blk.msg.index
        m.d.sync += [
            r_feed.eq(s_pkt + idx),
            # Block 0 may end in the beat right after the start beat, before dup_lim is
            # written; its test is whether S itself was delivered, from the start
            # registers (written a cycle before, held until the next packet).
            r_dup.eq(chk & Mux(idx == 0, ~r_new & r_behind, idx < dup_lim)),
        ]

        # ------------------------------------------------ cycle 2: the tick
        msg_valid = self.i_built.valid & self.i_ok.msg
        dup = r_dup
        emit_msg = msg_valid & ~dup

        # Tick numbering, the frame's released range, and the pending abort event.
        seq = Signal(64, init=1)
        released = Signal()
        first_seq = Signal(64)
        last_seq = Signal(64)               # the last tick's seq (seq - 1 once a tick has gone out)
        abort_pend = Signal()
        ts_prev = Signal(64)                # ts a cycle ago: the aborted frame's, when the next one began

        tick = Signal(TickLayout)
        frame_tick = gap | emit_msg
        with m.If(abort_pend):
            m.d.comb += [
                tick.ts_rx.eq(ts_prev),
                tick.order_ref.eq(first_seq),
                tick.ref2.eq(last_seq),
                tick.flags.eq(Flag.EVENT_ABORT),
                tick.msg_type.eq(Event.TYPE),
            ]
        with m.Elif(gap):
            m.d.comb += [
                tick.ts_rx.eq(ts),
                tick.feed_seq.eq(expected),
                tick.ref2.eq(r_missing),
                tick.flags.eq(Flag.EVENT_GAP),
                tick.msg_type.eq(Event.TYPE),
            ]
        with m.Else():
            m.d.comb += [
                tick.eq(built.tick),
                tick.ts_rx.eq(ts),
                tick.feed_seq.eq(r_feed),
            ]
        m.d.comb += tick.seq.eq(seq)
        emit = Signal()
        m.d.comb += emit.eq(abort_pend | frame_tick)

        # The tick is registered, then goes out directly when the queue is empty and the
        # consumer ready, else through the queue: the tick's decision drives one
        # register, not the queue's write port and level.  Without a queue the
        # register is the output (the DMA engine's input: no multiplexer before it).
        tick_r = Signal(TICK_BITS)
        tick_v = Signal()
        m.d.sync += [tick_r.eq(tick.as_value()), tick_v.eq(emit)]
        if self.depth == 0:
            m.d.comb += [
                self.o_tick.valid.eq(tick_v),
                self.o_tick.payload.as_value().eq(tick_r),
            ]
        else:
            fifo = m.submodules.fifo = SyncFIFO(width=TICK_BITS, depth=self.depth)
            queued = tick_v & (fifo.r_rdy | ~self.o_tick.ready)
            m.d.comb += [
                fifo.w_en.eq(queued),
                fifo.w_data.eq(tick_r),
                self.o_lost.eq(queued & ~fifo.w_rdy),
                self.o_tick.valid.eq(fifo.r_rdy | tick_v),
                self.o_tick.payload.as_value().eq(Mux(fifo.r_rdy, fifo.r_data, tick_r)),
                fifo.r_en.eq(self.o_tick.ready),
            ]
        with m.If(emit):
            m.d.sync += seq.eq(seq + 1)

        # The duplicate limit of the packet that starts on this cycle's beat: expected - S,
        # saturated.  S is behind by less than 2**_DUP_BITS when S - expected is at least
        # 2**64 - 2**_DUP_BITS + 1 (the high bits all ones, the low ones not all zeros).
        near = r_missing[_DUP_BITS:].all() & r_missing[:_DUP_BITS].any()
        with m.If(r_start):
            m.d.sync += dup_lim.eq(Mux(chk & ~r_new & r_behind, Mux(near, r_diff, (1 << _DUP_BITS) - 1), 0))

        # Frame bookkeeping.
        with m.If(r_first):
            m.d.sync += released.eq(0)
        released_now = released & ~r_first   # (a one-beat frame: the register is the last frame's)
        with m.If(frame_tick & ~released_now):
            m.d.sync += [released.eq(1), first_seq.eq(seq)]
        with m.If(abort_pend):
            m.d.sync += abort_pend.eq(0)

        # The expected number, settled from the packet's start and its completed blocks.
        m.d.sync += [
            reach.eq(s_pkt + completed),
            expected.eq(Mux(inpkt & (reach > exp_start), reach, exp_start)),
        ]
        with m.If(self.i_ok.block):
            m.d.sync += completed.eq(completed + 1)
        with m.If(r_start):
            m.d.sync += [sv_has.eq(has), sv_session.eq(session), sv_expected.eq(expected), completed.eq(0)]
            with m.If(chk):
                m.d.sync += [
                    has.eq(1), session.eq(r_session), inpkt.eq(1),
                    exp_start.eq(Mux(r_new | r_ahead, s_pkt, expected)),
                ]

        # A bad frame that released ticks is aborted the cycle after its last beat, from
        # registers: that cycle's ``first_seq`` is the frame's first tick, ``last_seq``
        # its last (the frame's ticks were the last ones), ``ts_prev`` its time (the
        # next frame may have begun on that beat), and ``sv_*`` the sequence state from
        # before the frame (saved at its start, even on the abort's own beat).  The
        # decision drives one register, not the state's 200 enables; the next frame's
        # header is several beats long, so nothing reads the state in between.
        abort = r_error & (released_now | frame_tick)
        with m.If(abort):
            m.d.sync += abort_pend.eq(1)
        m.d.sync += ts_prev.eq(ts)
        with m.If(emit):
            m.d.sync += last_seq.eq(seq)
        with m.If(abort_pend):
            m.d.sync += [has.eq(sv_has), session.eq(sv_session), exp_start.eq(sv_expected), inpkt.eq(0)]

        # Late join: the loaded state replaces whatever the registers hold (the top
        # asserts ``en`` only while no frame is in flight, so nothing else is changing).
        pre = self.preload
        with m.If(pre.en):
            m.d.sync += [
                has.eq(pre.has), session.eq(pre.session), exp_start.eq(pre.expected), inpkt.eq(0),
                # (``last_seq`` is left as it is: an abort reads it only after a tick of its
                # frame, which writes it)
                seq.eq(pre.seq), abort_pend.eq(0), released.eq(0),
            ]

        cnt = self.o_count
        m.d.comb += [
            cnt.messages.eq(emit_msg),
            cnt.duplicates.eq(msg_valid & dup),
            cnt.gaps.eq(gap),
            cnt.aborts.eq(abort),
            cnt.sessions.eq(r_start & chk & r_new),
            cnt.ticks.eq(emit),
        ]
        m.d.comb += cnt.gap_messages.eq(Mux(gap, r_missing, 0))
        # (from the assembler's type one-hot: no compare of the type byte per counter)
        assert set(KIND_CODES) == {msg.code for msg in MESSAGES}, "a message type without a tick"
        for k, code in enumerate(KIND_CODES):
            m.d.comb += getattr(cnt, f"msg_{code}").eq(emit_msg & built.kind[k])
        return m

