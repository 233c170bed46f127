"""Stage 5: MoldUDP64 sequencer and tick output.

Tracks one MoldUDP64 session (the tracked session, the next expected message
number), emits gap events, drops duplicates, numbers every tick, emits abort
events for frames the MAC flags bad after they released ticks (restoring the
sequence state), and queues the ticks for the consumer.

Per cycle at most one tick is made, and the pipeline guarantees no two want the
same cycle: a gap event comes on the beat holding the end of the MoldUDP64
header (no message can end there), messages end at most one per beat, and the
abort event is sent on the cycle after the frame's last beat, which holds at
most the first beat of the next frame.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import MESSAGES, Event, Flag

from .builder import built_layout
from .common import counter_events_layout
from .splitter import split_beat_layout
from .tick import TICK_BITS, TickLayout

__all__ = ["Sequencer", "SEQUENCER_COUNTERS"]


def _counter_widths() -> dict[str, int]:
    widths = {"messages": 1, "duplicates": 1, "gaps": 1, "gap_messages": 64, "aborts": 1, "sessions": 1,
              "ticks": 1}
    widths.update({f"msg_{msg.code}": 1 for msg in MESSAGES})
    return widths


#: Counters this stage increments.
SEQUENCER_COUNTERS = tuple(_counter_widths())


class Sequencer(wiring.Component):
    """Sequence processing (docs/reference-model.md) and the tick output queue.

    A tick is written to a :class:`~amaranth.lib.fifo.SyncFIFO` in the cycle it is
    made and is on ``o_tick`` from the next cycle.  With ``o_tick.ready`` held high
    the queue never holds more than one tick.  If the consumer stalls longer than
    the queue is deep, ticks that find it full are not written: each one pulses
    ``o_lost`` (the top counts them) and leaves a hole in ``seq``.

    Parameters
    ----------
    width : int
        Datapath width in bytes (for the input layout).
    depth : int
        Output queue depth in ticks.

    Attributes
    ----------
    i_blk : In(stream.Signature(split_beat_layout(width), always_ready=True))
        Beats from the splitter (frame boundaries, MoldUDP64 header, block counts).
    i_built : In(stream.Signature(built_layout(), always_ready=True))
        The message tick of a message ending in the current beat of ``i_blk``.
    sequence_check : In(1)
        Configuration: track sequence numbers (duplicates dropped, gaps reported).
    o_tick : Out(stream.Signature(TickLayout))
        The tick stream.
    o_count : Out(counter_events_layout)
        Counter increments, for :data:`SEQUENCER_COUNTERS`.
    o_lost : Out(1)
        A tick was lost to a full queue this cycle.
    """

    def __init__(self, width: int = 8, depth: int = 16):
        self.width = width
        self.depth = depth
        super().__init__({
            "i_blk": In(stream.Signature(split_beat_layout(width), always_ready=True)),
            "i_built": In(stream.Signature(built_layout(), always_ready=True)),
            "sequence_check": In(1),
            "o_tick": Out(stream.Signature(TickLayout)),
            "o_count": Out(counter_events_layout(_counter_widths())),
            "o_lost": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        blk = self.i_blk.payload
        valid = self.i_blk.valid
        chk = self.sequence_check
        built = self.i_built.payload

        # Sequence state (one session), and its copy from before the current frame.
        has = Signal()
        session = Signal(80)
        expected = Signal(64)
        sv_has = Signal()
        sv_session = Signal(80)
        sv_expected = Signal(64)
        # The current packet.
        seq_s = Signal(64)       # S
        exp0 = Signal(64)        # expected after the gap step: numbers below it are duplicates
        blocks = Signal(17)      # blocks processed so far
        ts = Signal(64)
        released = Signal()      # the frame emitted a tick
        first_seq = Signal(64)
        # Tick numbering and the pending abort event.
        seq = Signal(64, init=1)
        abort_pend = Signal()
        abort_first = Signal(64)
        abort_last = Signal(64)
        abort_ts = Signal(64)

        first = valid & blk.first
        last = valid & blk.last
        start = valid & blk.start

        # Frame start: session change or gap.
        s_in = blk.sequence
        # (Intermediate values are expressions: the simulator settles them in one pass.)
        new_session = ~has | (session != blk.session)
        gap = Signal()
        m.d.comb += gap.eq(start & chk & ~new_session & (s_in > expected))
        exp_start = Mux(new_session | (s_in > expected), s_in, expected)
        s_eff = Mux(start, s_in, seq_s)
        exp0_eff = Mux(start & chk, exp_start, exp0)
        exp_base = Mux(start & chk, exp_start, expected)
        blocks_eff = (Mux(start, 0, blocks) + blk.blocks)[:17]
        reach = s_eff + blocks_eff       # one past the last block number processed

        # A message tick, unless a duplicate.
        msg_valid = self.i_built.valid
        feed = Signal(64)
        m.d.comb += feed.eq(s_eff + built.index)
        dup = Signal()
        m.d.comb += dup.eq(chk & (feed < exp0_eff))
        emit_msg = msg_valid & ~dup

        # The tick of this cycle.
        tick = Signal(TickLayout)
        frame_tick = gap | emit_msg
        with m.If(abort_pend):
            m.d.comb += [
                tick.ts_rx.eq(abort_ts),
                tick.order_ref.eq(abort_first),
                tick.ref2.eq(abort_last),
                tick.flags.eq(Flag.EVENT_ABORT),
                tick.msg_type.eq(Event.TYPE),
            ]
        with m.Elif(gap):
            m.d.comb += [
                tick.ts_rx.eq(ts),
                tick.feed_seq.eq(expected),
                tick.ref2.eq(s_in - expected),
                tick.flags.eq(Flag.EVENT_GAP),
                tick.msg_type.eq(Event.TYPE),
            ]
        with m.Else():
            m.d.comb += [
                tick.eq(built.tick),
                tick.ts_rx.eq(ts),
                tick.feed_seq.eq(feed),
            ]
        m.d.comb += tick.seq.eq(seq)
        emit = Signal()
        m.d.comb += emit.eq(abort_pend | frame_tick)

        fifo = m.submodules.fifo = SyncFIFO(width=TICK_BITS, depth=self.depth)
        m.d.comb += [
            fifo.w_en.eq(emit),
            fifo.w_data.eq(tick.as_value()),
            self.o_lost.eq(emit & ~fifo.w_rdy),
            self.o_tick.valid.eq(fifo.r_rdy),
            self.o_tick.payload.as_value().eq(fifo.r_data),
            fifo.r_en.eq(self.o_tick.ready),
        ]
        with m.If(emit):
            m.d.sync += seq.eq(seq + 1)

        # Frame bookkeeping.
        with m.If(first):
            m.d.sync += [ts.eq(blk.ts), released.eq(0)]
        with m.If(frame_tick & ~released):
            m.d.sync += [released.eq(1), first_seq.eq(seq)]
        with m.If(abort_pend):
            m.d.sync += abort_pend.eq(0)
        with m.If(start):
            m.d.sync += [
                sv_has.eq(has), sv_session.eq(session), sv_expected.eq(expected),
                seq_s.eq(s_in),
            ]
            with m.If(chk):
                m.d.sync += [exp0.eq(exp_start), has.eq(1), session.eq(blk.session)]
        with m.If(valid):
            m.d.sync += blocks.eq(blocks_eff)
        with m.If(chk & (start | (valid & (blk.blocks != 0)))):
            m.d.sync += expected.eq(Mux((blk.blocks != 0) & (reach > exp_base), reach, exp_base))

        released_now = released & ~first     # (a one-beat frame: the register is the last frame's)
        abort = last & blk.error & (released_now | frame_tick)
        with m.If(abort):
            m.d.sync += [
                abort_pend.eq(1),
                abort_first.eq(Mux(released_now, first_seq, seq)),
                abort_last.eq(Mux(frame_tick, seq, seq - 1)),
                abort_ts.eq(ts),
                # Back to the state from before the frame (the registers themselves
                # when the frame's start is on this very beat).
                has.eq(Mux(start, has, sv_has)),
                session.eq(Mux(start, session, sv_session)),
                expected.eq(Mux(start, expected, sv_expected)),
            ]

        cnt = self.o_count
        m.d.comb += [
            cnt.messages.eq(emit_msg),
            cnt.duplicates.eq(msg_valid & dup),
            cnt.gaps.eq(gap),
            cnt.gap_messages.eq(Mux(gap, s_in - expected, 0)),
            cnt.aborts.eq(abort),
            cnt.sessions.eq(start & chk & new_session),
            cnt.ticks.eq(emit),
        ]
        for msg in MESSAGES:
            m.d.comb += getattr(cnt, f"msg_{msg.code}").eq(emit_msg & (built.tick.msg_type == msg.type_byte))
        return m
