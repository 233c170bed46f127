"""Stage 2: MoldUDP64 message-block splitter.

Walks the message blocks of an accepted frame as its beats go by, making the
per-block checks of docs/reference-model.md in their order, and tells the next
stage, for each beat, which bytes belong to which ITCH message.

A block is its 2-byte length ``L`` then ``L`` bytes.  The blocks of valid ITCH
messages are at least 14 bytes long, so a beat touches at most two of them (the
end of one, the start of the next) and at most one completes per beat; but
unknown-type blocks may be as short as 3 bytes, so one beat can hold several.
The walker therefore chains ``steps`` copies of a one-block step in a cycle,
enough for the densest possible beat, and the beat never waits.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from wiretick.host.formats import MOLD_END_OF_SESSION, MOLD_HEARTBEAT

from .common import MAX_MSG_LEN, MIN_MSG_LEN, OFFSET_BITS, counter_events_layout, pick, type_length
from .header import frame_beat_layout

__all__ = ["BlockSplitter", "slot_layout", "split_beat_layout", "splitter_steps", "SPLITTER_COUNTERS"]

#: Shortest block that does not stop the walk: 2 length bytes and a 1-byte unknown-type message.
_MIN_BLOCK = 3


def splitter_steps(width: int) -> int:
    """Blocks the walker must be able to look at in one beat of ``width`` bytes.

    One block can end in the beat (≥ 1 byte of it there), then whole blocks of at
    least 3 bytes follow, and one more step decides the block after them.
    """
    return (width - 1) // _MIN_BLOCK + 2


def _counter_widths(width: int) -> dict[str, int]:
    steps = splitter_steps(width)
    return {
        "heartbeats": 1, "end_of_session": 1,
        "bad_block_overrun": 1, "bad_block_length": 1, "bad_truncated": 1,
        "unknown_type": range(steps + 1).stop.bit_length(),
    }


#: Counters this stage increments.
SPLITTER_COUNTERS = tuple(_counter_widths(8))


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
        The message's last byte is in this beat and the block passed every check.
    type : 8
        ITCH type byte.
    index : 16
        Block number ``i`` within the packet (the message's number is ``S + i``).
    """
    return data.StructLayout({
        "valid": unsigned(1),
        "rot": unsigned((width - 1).bit_length()),
        "off": signed(8),
        "done": unsigned(1),
        "type": unsigned(8),
        "index": unsigned(16),
    })


def split_beat_layout(width: int = 8) -> data.StructLayout:
    """A beat with the message blocks found in it.

    Fields
    ------
    data : 8*width
        The beat's bytes.
    first, last, error, ts
        Frame boundaries, MAC error (with ``last``), frame timestamp (with ``first``).
    start, session, sequence
        As in :func:`~wiretick.hdl.header.frame_beat_layout`: the frame was accepted.
    count : 16
        MoldUDP64 message count (with ``start``).
    blocks : range(steps + 1)
        Blocks that passed every check and ended in this beat (known or unknown type):
        each advances the expected sequence number.
    msg : slot_layout
        The first message whose body overlaps this beat (the only one that may end here).
    nxt : slot_layout
        A second message starting in this beat (never ``done``).
    """
    steps = splitter_steps(width)
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
        "blocks": unsigned(range(steps + 1).stop.bit_length()),
        "msg": slot_layout(width),
        "nxt": slot_layout(width),
    })


class BlockSplitter(wiring.Component):
    """Find MoldUDP64 message blocks and check them, a beat per cycle.

    State kept across beats: the start ``q`` of the current block, its number
    ``i`` and, once its length and type bytes have been seen, its length and type.
    The last two bytes of the previous beat are kept too, so a block whose length or
    type bytes straddle two beats is decided when the rest arrives.  Each check is
    made as soon as its bytes are there; on the frame's last beat every pending
    check is decided (a block cut short counts in ``bad_truncated``).

    Parameters
    ----------
    width : int
        Datapath width in bytes (power of two, at most 13 so that at most one
        valid message ends per beat).

    Attributes
    ----------
    i_beat : In(stream.Signature(frame_beat_layout(width), always_ready=True))
        Beats from :class:`~wiretick.hdl.header.HeaderParser`.
    o_blk : Out(stream.Signature(split_beat_layout(width), always_ready=True))
        The same beats, one cycle later, with the blocks found in them.
    o_count : Out(counter_events_layout)
        Counter increments (registered), for :data:`SPLITTER_COUNTERS`.
    """

    def __init__(self, width: int = 8):
        if width & (width - 1) or not 4 <= width <= MIN_MSG_LEN + 1:
            raise ValueError(f"width must be a power of two in 4..{MIN_MSG_LEN + 1}")
        self.width = width
        self.steps = splitter_steps(width)
        super().__init__({
            "i_beat": In(stream.Signature(frame_beat_layout(width), always_ready=True)),
            "o_blk": Out(stream.Signature(split_beat_layout(width), always_ready=True)),
            "o_count": Out(counter_events_layout(_counter_widths(width))),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        beat = self.i_beat.payload
        lanes = [beat.data[8 * k:8 * k + 8] for k in range(W)]

        # Walker state.
        state = _state_signals("")
        count_r = Signal(16)
        pay_end_r = Signal(OFFSET_BITS)
        prev = [Signal(8, name=f"prev{k}") for k in range(2)]

        # Frame-level inputs of this beat, shared by the steps.
        start = beat.start
        env = _Env(W)
        m.d.comb += [
            env.count.eq(Mux(start, beat.count, count_r)),
            env.pay_end.eq(Mux(start, beat.pay_end, pay_end_r)),
            env.base.eq(beat.offset),
            env.avail.eq(beat.offset + Mux(beat.last, beat.nbytes, W)),
            env.last.eq(beat.last),
        ]
        m.d.comb += [w.eq(v) for w, v in zip(env.win, prev + lanes)]   # offsets base-2 .. base+W-1

        st0 = _state_signals("in_")
        m.d.comb += [st0[n].eq(s) for n, s in state.items()]
        with m.If(start):
            m.d.comb += [
                st0["act"].eq((beat.count != MOLD_HEARTBEAT) & (beat.count != MOLD_END_OF_SESSION)),
                st0["q"].eq(beat.pay_start),
                st0["i"].eq(0),
                st0["hdr"].eq(0),
            ]
        with m.Elif(beat.first):
            m.d.comb += st0["act"].eq(0)

        # The chain of steps, each its own small fragment.
        st = st0
        steps = []
        for k in range(self.steps):
            step = _WalkStep(k, env, st)
            m.submodules[f"step{k}"] = step
            steps.append(step)
            st = step.out
        evs = [step.ev for step in steps]

        # Registers.
        valid = self.i_beat.valid
        with m.If(valid):
            m.d.sync += [s.eq(st[n]) for n, s in state.items()]
            m.d.sync += [count_r.eq(env.count), pay_end_r.eq(env.pay_end)]
            m.d.sync += [prev[0].eq(lanes[W - 2]), prev[1].eq(lanes[W - 1])]

        # Output: slot 0 / slot 1 are the first / second message the steps report.
        out = self.o_blk.payload

        def fill(slot, ev):
            return [
                slot.valid.eq(1),
                slot.rot.eq(ev["body"][:len(slot.rot)]),
                slot.off.eq((beat.offset - ev["body"])[:8]),
                slot.done.eq(ev["done"]),
                slot.type.eq(ev["type"]),
                slot.index.eq(ev["index"]),
            ]

        m.d.sync += [out.msg.eq(0), out.nxt.eq(0)]
        for k in reversed(range(len(evs))):        # the earliest step wins slot 0
            with m.If(evs[k]["asm"]):
                m.d.sync += fill(out.msg, evs[k])
        for k in range(1, len(evs)):               # at most two steps report in one beat
            with m.If(evs[k]["asm"] & Cat(*[e["asm"] for e in evs[:k]]).any()):
                m.d.sync += fill(out.nxt, evs[k])

        m.d.sync += [
            self.o_blk.valid.eq(valid),
            out.data.eq(beat.data),
            out.first.eq(beat.first),
            out.last.eq(beat.last),
            out.error.eq(beat.error),
            out.ts.eq(beat.ts),
            out.start.eq(start),
            out.session.eq(beat.session),
            out.sequence.eq(beat.sequence),
            out.count.eq(beat.count),
            out.blocks.eq(sum(ev["complete"] for ev in evs)),
        ]
        cnt = self.o_count
        m.d.sync += [
            cnt.heartbeats.eq(valid & start & (beat.count == MOLD_HEARTBEAT)),
            cnt.end_of_session.eq(valid & start & (beat.count == MOLD_END_OF_SESSION)),
            cnt.bad_block_overrun.eq(valid & Cat(*[e["overrun"] for e in evs]).any()),
            cnt.bad_block_length.eq(valid & Cat(*[e["blen"] for e in evs]).any()),
            cnt.bad_truncated.eq(valid & Cat(*[e["trunc"] for e in evs]).any()),
            cnt.unknown_type.eq(Mux(valid, sum(e["unknown"] for e in evs), 0)),
        ]
        return m


def _state_signals(prefix: str) -> dict[str, Signal]:
    """The walker state: the current block and how far its checks have gone."""
    return dict(
        act=Signal(name=f"{prefix}act"),                       # walking this frame's blocks
        q=Signal(OFFSET_BITS + 1, name=f"{prefix}q"),          # frame offset of the current block
        i=Signal(16, name=f"{prefix}i"),                       # its number in the packet
        hdr=Signal(name=f"{prefix}hdr"),                       # its length and type bytes passed
        L=Signal(16, name=f"{prefix}blen"),                    # (with hdr) its length
        known=Signal(name=f"{prefix}known"),                   # (with hdr) a known ITCH type
        typ=Signal(8, name=f"{prefix}btype"),                  # (with hdr) its type byte
    )


class _Env:
    """What every step of one beat shares: the beat's bytes and the frame's limits."""

    def __init__(self, width: int):
        self.base = Signal(OFFSET_BITS, name="base")           # frame offset of lane 0
        self.avail = Signal(OFFSET_BITS + 1, name="avail")     # frame bytes present after this beat
        self.last = Signal(name="last")
        self.pay_end = Signal(OFFSET_BITS, name="pay_end")
        self.count = Signal(16, name="count")
        self.win = [Signal(8, name=f"win{k}") for k in range(width + 2)]   # offsets base-2 ..


class _WalkStep(Elaboratable):
    """One block's checks on the current beat: state in, state and events out."""

    def __init__(self, k: int, env: _Env, st: dict[str, Signal]):
        self.k, self.env, self.st = k, env, st
        self.out = _state_signals(f"s{k}_")
        self.ev = {n: Signal(name=f"s{k}_{n}") for n in ("overrun", "blen", "trunc", "unknown", "complete",
                                                          "asm", "done")}
        self.ev["body"] = Signal(OFFSET_BITS + 2, name=f"s{k}_body")
        self.ev["type"] = Signal(8, name=f"s{k}_type")
        self.ev["index"] = Signal(16, name=f"s{k}_index")

    def elaborate(self, platform):
        m = Module()
        k, env, st, o, ev = self.k, self.env, self.st, self.out, self.ev
        m.d.comb += [o[n].eq(s) for n, s in st.items()]

        # Bytes at q, q+1, q+2 from the window (meaningful only when present).
        ibits = (len(env.win) + 2).bit_length()
        rel = (st["q"] + 2 - env.base)[:ibits]
        L_new = Signal(16, name=f"s{k}_lnew")
        tbyte = Signal(8, name=f"s{k}_tbyte")
        m.d.comb += [L_new.eq(Cat(*(pick(env.win, (rel + j)[:ibits]) for j in (1, 0)))),
                     tbyte.eq(pick(env.win, (rel + 2)[:ibits]))]
        ml = type_length(m, tbyte, name=f"s{k}_mlen")

        q2 = st["q"] + 2
        last, avail, pay_end = env.last, env.avail, env.pay_end
        # The header checks, in order; the block is accepted when none stops or waits.
        checks = [st["i"] >= env.count, q2 > pay_end, q2 > avail, q2 + L_new > pay_end, L_new == 0,
                  q2 + 1 > avail, (ml != 0) & (ml != L_new)]
        accepted = st["act"] & ~st["hdr"] & ~Cat(*checks).any()
        hdr_now = st["act"] & (st["hdr"] | accepted)
        L_eff = Mux(st["hdr"], st["L"], L_new)
        known_eff = Mux(st["hdr"], st["known"], ml != 0)
        typ_eff = Mux(st["hdr"], st["typ"], tbyte)
        end = q2 + L_eff
        stop = o["act"].eq(0)

        with m.If(st["act"] & ~st["hdr"]):
            with m.If(checks[0]):
                m.d.comb += stop                                   # after the N-th block
            with m.Elif(checks[1]):
                m.d.comb += [stop, ev["overrun"].eq(1)]
            with m.Elif(checks[2]):
                with m.If(last):
                    m.d.comb += [stop, ev["trunc"].eq(1)]
            with m.Elif(checks[3]):
                m.d.comb += [stop, ev["overrun"].eq(1)]
            with m.Elif(checks[4]):
                m.d.comb += [stop, ev["blen"].eq(1)]
            with m.Elif(checks[5]):
                with m.If(last):
                    m.d.comb += [stop, ev["trunc"].eq(1)]
            with m.Elif(checks[6]):
                m.d.comb += [stop, ev["blen"].eq(1)]
            with m.Else():
                m.d.comb += ev["unknown"].eq(ml == 0)

        with m.If(hdr_now):
            with m.If(end <= avail):
                m.d.comb += [ev["complete"].eq(1), o["q"].eq(end), o["i"].eq(st["i"] + 1), o["hdr"].eq(0)]
            with m.Elif(last):
                m.d.comb += [stop, ev["trunc"].eq(1)]
            with m.Else():
                m.d.comb += [o["hdr"].eq(1), o["L"].eq(L_eff), o["known"].eq(known_eff), o["typ"].eq(typ_eff)]

        # A message body overlapping this beat: reported by the step that accepted its
        # header, or by step 0 for a message continuing from earlier beats.
        first_report = accepted if k else hdr_now
        m.d.comb += [
            ev["asm"].eq(first_report & known_eff),
            ev["done"].eq(hdr_now & (end <= avail) & known_eff),
            ev["body"].eq(q2),
            ev["type"].eq(typ_eff),
            ev["index"].eq(st["i"]),
        ]
        assert MAX_MSG_LEN < 128, "slot offsets are signed 8-bit"
        return m
