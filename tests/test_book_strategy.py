"""The strategy API: batch and event styles see the same feed; events see the books as of their message;
a lapped ring reader's books are marked stale."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.decode import decode_file
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.host.ring import Ring, RingWriter
from wiretick.host.strategy import EventStrategy, Strategy, run


@pytest.fixture(scope="module")
def ticks(tmp_path_factory):
    cap = tmp_path_factory.mktemp("strat") / "day.pcap"
    generate_to_file(cap, GenConfig(messages=8_000, symbols=10, seed=31, gap_rate=0.02))
    return decode_file(cap).ticks


class Batch(Strategy):
    def __init__(self):
        self.e, self.rows, self.stale = 0, [], []

    def on_batch(self, t, update, books):
        self.e += int(np.count_nonzero(t["msg_type"] == ord("E")))
        self.rows.append(update.bbo.copy())

    def on_stale(self, books, reason):
        self.stale.append(reason)


class Events(EventStrategy):
    def __init__(self):
        self.e, self.rows, self.gaps, self.mismatch = 0, [], 0, 0

    def on_E(self, tick, books):
        self.e += 1

    def on_bbo(self, row, books):
        q = books.bbo([int(row["locate"])])[0]          # the books are exactly as of this change
        self.mismatch += any(q[f] != row[f] for f in ("bid_px", "bid_sz", "bid_ct", "ask_px", "ask_sz", "ask_ct"))
        self.rows.append(int(row["seq"]))

    def on_gap(self, tick, books):
        self.gaps += 1
        assert books.stale.all()


@pytest.mark.parametrize("batch", [100, 1 << 16])
def test_batch_and_event_styles_see_the_same_feed(ticks, batch):
    b, e = Batch(), Events()
    rb = run(b, ticks, max_ticks=batch)
    re = run(e, ticks, max_ticks=batch)
    assert rb.ticks == re.ticks == len(ticks) and rb.batches == -(-len(ticks) // batch)
    assert b.e == e.e > 0
    rows = np.concatenate([r["seq"] for r in b.rows])
    assert rows.tolist() == e.rows and e.mismatch == 0
    gaps = int(np.count_nonzero(ticks["msg_type"] == 0))
    assert gaps and e.gaps == gaps and b.stale.count("gap") >= 1
    assert rb.books.counters["gap_events"] == gaps


def test_a_lapped_ring_reader_marks_the_books_stale(ticks):
    name = f"wiretick-test-strategy-{uuid.uuid4().hex[:12]}"
    try:
        w = RingWriter.create(name, 256)
        with Ring(name) as ring:                          # open before the writer runs 2000 ticks through 256 slots
            w.write(ticks[:2000], renumber=True)
            w.close()
            b = Batch()
            res = run(b, ring)
        assert res.lost > 0 and "lapped" in b.stale and res.books.stale.all()
        assert res.ticks + res.lost == 2000
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)


def test_sources_refuse_what_is_not_ticks(tmp_path):
    with pytest.raises(TypeError, match="cannot read ticks"):
        run(Batch(), 42)
    with pytest.raises(ValueError, match="not an array of ticks"):
        run(Batch(), np.zeros(4, np.uint64))


def test_replay_source_runs_and_leaves_nothing(tmp_path):
    import os

    from wiretick.host.sources import ReplaySource
    cap = tmp_path / "small.pcap"
    generate_to_file(cap, GenConfig(messages=1_500, symbols=3, seed=4))
    def mine() -> set[str]:                       # other jobs use /dev/shm too: only this process's ring files
        return {n for n in os.listdir("/dev/shm") if str(os.getpid()) in n}

    before = mine()
    b = Batch()
    res = run(b, ReplaySource(cap))
    assert res.ticks == len(decode_file(cap).ticks) and res.lost == 0 and not b.stale
    assert mine() == before


def test_empty_batches():
    from wiretick.host.select import count, select
    from wiretick.host.tick import empty_ticks
    none = empty_ticks(0)
    assert len(select(none, types="A")) == 0 and count(none) == 0
    res = run(Batch(), none)
    assert res.ticks == 0 and res.batches == 0
