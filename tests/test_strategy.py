"""The VWAP strategy: the compiled pass, the numpy reference and the one-tick-at-a-time copy agree."""

from __future__ import annotations

import numpy as np
import pytest

from wiretick.host.contract.formats import Flag
from wiretick.host.strategy import ENGINES, ScalarVwap, Vwap
from wiretick.host.tick import TICK_DTYPE, empty_ticks


@pytest.fixture(scope="module")
def feed(tmp_path_factory) -> np.ndarray:
    from wiretick.host.decode import decode_file
    from wiretick.host.gen import GenConfig, generate_to_file

    cap = tmp_path_factory.mktemp("strategy") / "feed.pcap"
    generate_to_file(cap, GenConfig(messages=40_000, symbols=30, seed=11, all_types=True))
    return decode_file(cap).ticks


def scalar(ticks: np.ndarray, **kw) -> ScalarVwap:
    s = ScalarVwap(**kw)
    raw = np.ascontiguousarray(ticks).tobytes()
    for o in range(0, len(raw), 64):
        s.update_one(raw[o:o + 64])
    return s


def batched(ticks: np.ndarray, batch: int, **kw) -> Vwap:
    v = Vwap(**kw)
    for i in range(0, len(ticks), batch):
        v.update(ticks[i:i + batch])
    return v


def test_the_feed_exercises_every_rule(feed):
    m = feed["msg_type"]
    for t in "AFUECP":
        assert (m == ord(t)).any(), t
    c = feed[m == ord("C")]
    assert (c["flags"] & Flag.PRINTABLE).any() and not (c["flags"] & Flag.PRINTABLE).all()


@pytest.mark.parametrize("kw", [{}, {"track_orders": False}, {"max_orders": 500}],
                         ids=["book", "no-book", "small-book"])
@pytest.mark.parametrize("batch", [1, 7, 4096, 1 << 30])
def test_engines_agree_with_the_copying_reference(feed, kw, batch):
    ref = scalar(feed, **kw)
    fast = batched(feed, batch, **kw)
    # the compiled pass runs in tick order like the scalar reference: the same sums, bit for bit
    assert fast.result() == ref.result() and fast.unpriced == ref.unpriced
    if batch >= 7:                        # (the numpy engine at one tick per batch is needlessly slow)
        slow = batched(feed, batch, engine="numpy", **kw)
        assert slow.result() == ref.result() and slow.unpriced == ref.unpriced
    if kw:
        assert ref.unpriced > 0           # E volume the book could not price


def test_ring_views_and_odd_layouts(feed):
    ref = Vwap(engine="numpy")
    ref.update(feed)
    ro = feed.copy()
    ro.flags.writeable = False            # ring views are read-only
    a = Vwap()
    a.update(ro)
    assert a.result() == ref.result() and a.unpriced == ref.unpriced
    every_other = feed[::2]               # not contiguous: copied first
    b, c = Vwap(), Vwap(engine="numpy")
    b.update(every_other)
    c.update(every_other)
    assert b.result() == c.result() and b.unpriced == c.unpriced


def _tick(typ: str, *, ref=0, ref2=0, price=0, shares=0, locate=1, flags=0) -> np.ndarray:
    t = empty_ticks(1)
    t["msg_type"], t["order_ref"], t["ref2"] = ord(typ), ref, ref2
    t["price"], t["shares"], t["locate"], t["flags"] = price, shares, locate, flags
    return t


def test_each_rule_on_hand_made_ticks():
    lap = 0xF000                          # a ring's lap-tag bits in flags must not matter
    ticks = np.concatenate([
        _tick("A", ref=5, price=100_0000, locate=3, flags=lap),
        _tick("E", ref=5, shares=10, locate=3, flags=lap),                  # priced by the book
        _tick("U", ref=5, ref2=9, price=101_0000, locate=3),
        _tick("E", ref=9, shares=1, locate=3),                              # the replacement's price
        _tick("E", ref=77, shares=4, locate=3),                             # unknown order: unpriced
        _tick("C", ref=9, price=99_0000, shares=2, locate=4, flags=Flag.PRINTABLE | lap),
        _tick("C", ref=9, price=98_0000, shares=50, locate=4, flags=lap),   # not printable: ignored
        _tick("P", price=97_0000, shares=3, locate=4),
        _tick("P", price=0, shares=6, locate=4),                            # no price: unpriced
        _tick("F", ref=(1 << 64) - 1, price=5, locate=5),                   # past max_orders: not tracked
        _tick("E", ref=(1 << 64) - 1, shares=7, locate=5),
        _tick("D", ref=5, shares=999, locate=3),                            # other types: ignored
        _tick("X", ref=9, shares=999, locate=3),
    ])
    want = {3: (11, 10 * 100_0000 + 1 * 101_0000), 4: (5, 2 * 99_0000 + 3 * 97_0000)}
    for engine in ENGINES:
        v = Vwap(engine=engine)
        v.update(ticks)
        assert v.result() == {k: (vol, float(n)) for k, (vol, n) in want.items()}, engine
        assert v.unpriced == 4 + 6 + 7, engine
        assert v.vwap()[3] == pytest.approx(want[3][1] / want[3][0] / 10_000)
        assert np.isnan(v.vwap()[0])
    s = scalar(ticks)
    v = Vwap()
    v.update(ticks)
    assert s.result() == v.result() and s.unpriced == v.unpriced


def test_an_execution_is_priced_by_the_book_as_of_its_tick():
    """Out of order within one batch (never on a real feed): the compiled pass prices as the
    scalar reference does, tick by tick; the numpy engine applies the batch's adds first."""
    ticks = np.concatenate([_tick("E", ref=3, shares=2), _tick("A", ref=3, price=50)])
    s, v, n = scalar(ticks), Vwap(), Vwap(engine="numpy")
    v.update(ticks)
    n.update(ticks)
    assert v.result() == s.result() == {} and v.unpriced == s.unpriced == 2
    assert n.result() == {1: (2, 100.0)} and n.unpriced == 0


def test_book_pages_are_only_backed_when_written():
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    Vwap().update(_tick("P", price=1, shares=1))    # compiled (or loaded) before measuring
    before = rss()
    v = Vwap(max_orders=1 << 28)          # 1 GiB of address space, none of it touched yet
    v.update(_tick("A", ref=(1 << 28) - 1, price=7))
    v.update(_tick("E", ref=(1 << 28) - 1, shares=1))
    assert v.result() == {1: (1, 7.0)}
    assert rss() - before < 64 << 20


def test_bad_arguments():
    with pytest.raises(ValueError, match="engine"):
        Vwap(engine="cuda")
    with pytest.raises(ValueError, match="max_orders"):
        Vwap(max_orders=-1)
    with pytest.raises(ValueError, match="tick dtype"):
        Vwap().update(np.zeros(4, np.uint64))
    Vwap().update(np.zeros(0, TICK_DTYPE))   # empty batches are fine
