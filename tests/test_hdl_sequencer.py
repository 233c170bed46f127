"""Stage 5, the sequencer, driven directly with splitter beats and built messages."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from wiretick.hdl.assembler import kind_bits
from wiretick.hdl.builder import built_layout
from wiretick.hdl.sequencer import SEQUENCER_COUNTERS, Sequencer, preload_layout
from wiretick.hdl.splitter import ok_layout, slot_layout, split_beat_layout
from wiretick.host.contract.formats import Flag
from wiretick.host.tick import TICK_DTYPE
from wiretick.sim.amaranth_tb import pack, unpack

W = 8
SESS = int.from_bytes(b"SESSION001", "little")


def frame(S, msgs, *, ts, error=False, session=SESS, beats=12, start_beat=8):
    """Beats of one frame: ``msgs`` = list of (beat, index) of messages ending there."""
    out = []
    ends = dict(msgs)
    for b in range(beats):
        idx = {beat: i for beat, i in msgs}.get(b)
        out.append(dict(
            first=b == 0, last=b == beats - 1, error=error and b == beats - 1, ts=ts if b == 0 else 0,
            start=b == start_beat, session=session, sequence=S,
            msg=pack(slot_layout(W), valid=1, done=1, type=ord("D"), index=idx) if idx is not None else 0,
            built=idx,
        ))
    return out


def run(beats, sequence_check=True, preload=None):
    dut = Sequencer(W, depth=8)
    ticks, counts = [], {n: 0 for n in SEQUENCER_COUNTERS}

    async def drive(ctx):
        # A beat's slot goes in with the beat; its built message and the splitter's
        # confirmation come one cycle later, as the assembler and splitter give them.
        ctx.set(dut.sequence_check, int(sequence_check))
        if preload is not None:
            ctx.set(dut.preload.as_value(), pack(preload_layout, en=1, **preload))
            await ctx.tick()
            ctx.set(dut.preload.en, 0)
        prev = None
        for b in beats + [None]:
            built = None
            if b is not None:
                built = b.pop("built")
                ctx.set(dut.i_blk.payload.as_value(), pack(split_beat_layout(W), **b))
            ctx.set(dut.i_blk.valid, b is not None)
            ctx.set(dut.i_built.valid, prev is not None)
            ctx.set(dut.i_ok.as_value(), pack(ok_layout, msg=prev is not None, block=prev is not None))
            tick = pack(built_layout(), tick=(ord("D") << (62 * 8)) | (0x77 << (32 * 8)), index=prev or 0,
                        kind=kind_bits(ord("D")))
            ctx.set(dut.i_built.payload.as_value(), tick)
            prev = built
            await ctx.tick()
        ctx.set(dut.i_built.valid, 0)
        ctx.set(dut.i_ok.as_value(), 0)
        await ctx.tick().repeat(4)

    async def collect(ctx):
        ctx.set(dut.o_tick.ready, 1)
        layout = dut.o_count.shape()
        async for _, _, v, p, c in ctx.tick().sample(dut.o_tick.valid, dut.o_tick.payload.as_value(),
                                                     dut.o_count.as_value()):
            if v:
                ticks.append(p.to_bytes(64, "little"))
            for n, x in unpack(layout, c).items():
                counts[n] += x

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(drive)
    sim.add_testbench(collect, background=True)
    sim.run()
    return np.frombuffer(b"".join(ticks), TICK_DTYPE), counts


def test_gaps_duplicates_aborts():
    beats = (frame(10, [(9, 0), (10, 1)], ts=100)            # new session; 10, 11
             + frame(15, [(9, 0)], ts=200)                    # gap 12..14, then 15
             + frame(14, [(9, 0), (10, 1), (11, 2)], ts=300)  # 14, 15 duplicates, 16
             + frame(20, [(9, 0)], ts=400, error=True)        # gap + 20, aborted
             + frame(17, [(10, 0)], ts=500))                  # 17 (state restored)
    ticks, counts = run(beats)
    assert list(ticks["seq"]) == list(range(1, len(ticks) + 1))
    kinds = [(int(t["flags"]), int(t["feed_seq"])) for t in ticks]
    assert kinds == [(0, 10), (0, 11), (Flag.EVENT_GAP, 12), (0, 15), (0, 16), (Flag.EVENT_GAP, 17), (0, 20),
                     (Flag.EVENT_ABORT, 0), (0, 17)]
    gap = ticks[2]
    assert gap["ref2"] == 3 and gap["ts_rx"] == 200 and gap["msg_type"] == 0
    abort = ticks[7]
    assert (abort["order_ref"], abort["ref2"], abort["ts_rx"]) == (6, 7, 400)
    assert all(ticks[k]["order_ref"] == 0x77 for k in (0, 1, 3, 4, 6, 8))
    assert counts["duplicates"] == 2 and counts["gaps"] == 2 and counts["gap_messages"] == 6
    assert counts["aborts"] == 1 and counts["sessions"] == 1 and counts["ticks"] == len(ticks)
    assert counts["messages"] == counts["msg_D"] == 6


def test_sequence_check_off_delivers_everything():
    beats = frame(10, [(9, 0)], ts=1) + frame(10, [(9, 0)], ts=2) + frame(30, [(9, 0)], ts=3)
    ticks, counts = run(beats, sequence_check=False)
    assert list(ticks["feed_seq"]) == [10, 10, 30]
    assert counts["gaps"] == counts["duplicates"] == counts["sessions"] == 0


def test_preload_joins_a_feed_mid_stream():
    # The host recovered up to message 19 of SESS and has seen 99 ticks: the device
    # reports the gap 20..24, numbers ticks from 100, and drops the duplicate 24.
    beats = frame(25, [(9, 0)], ts=1) + frame(24, [(9, 0), (10, 1), (11, 2)], ts=2)
    ticks, counts = run(beats, preload=dict(has=1, session=SESS, expected=20, seq=100))
    kinds = [(int(t["seq"]), int(t["flags"]), int(t["feed_seq"])) for t in ticks]
    assert kinds == [(100, Flag.EVENT_GAP, 20), (101, 0, 25), (102, 0, 26)]
    assert ticks[0]["ref2"] == 5
    assert counts["sessions"] == 0 and counts["gaps"] == 1 and counts["duplicates"] == 2


def test_abort_after_preload_names_the_frames_ticks():
    # After a late join the first frame fails its FCS: the abort event names its ticks
    # 100..101, numbered from the preloaded seq.
    beats = frame(20, [(9, 0), (10, 1)], ts=7, error=True)
    ticks, counts = run(beats, preload=dict(has=1, session=SESS, expected=20, seq=100))
    kinds = [(int(t["seq"]), int(t["flags"]), int(t["feed_seq"])) for t in ticks]
    assert kinds == [(100, 0, 20), (101, 0, 21), (102, Flag.EVENT_ABORT, 0)]
    assert (ticks[2]["order_ref"], ticks[2]["ref2"]) == (100, 101)
    assert counts["aborts"] == 1


@pytest.mark.parametrize("behind, delivered", [(2, [2]), ((1 << 17) + 1, []), (1 << 40, [])])
def test_duplicate_limit_saturates(behind, delivered):
    # A packet ``behind`` numbers before the expected one: its first ``behind`` messages
    # are duplicates, however far back it starts (the limit saturates, never wraps).
    E = 1 << 41
    beats = frame(E - 1, [(9, 0)], ts=1) + frame(E - behind, [(9, 0), (10, 1), (11, 2)], ts=2)
    ticks, counts = run(beats)
    assert [int(t["feed_seq"]) - (E - behind) for t in ticks[1:]] == delivered
    assert counts["duplicates"] == 3 - len(delivered)


@pytest.mark.parametrize("first, second, gap", [
    ((1 << 32) - 2, (1 << 32) + 1, 2),        # the high halves differ: S is ahead by them alone
    ((1 << 32) - 1, (1 << 32) + 5, 5),        # the high halves equal: ahead by the low ones
    ((1 << 33) + 7, 3, None),                 # S behind in its high half, ahead in its low one: no gap
])
def test_gap_across_the_halves_of_the_sequence_number(first, second, gap):
    beats = frame(first, [(9, 0)], ts=1) + frame(second, [(9, 0)], ts=2)
    ticks, counts = run(beats)
    if gap is None:
        assert counts["gaps"] == 0 and counts["duplicates"] == 1
    else:
        assert counts["gaps"] == 1 and counts["gap_messages"] == gap
        assert int(ticks[1]["flags"]) == Flag.EVENT_GAP and int(ticks[1]["feed_seq"]) == first + 1
