"""Data out of the books: selection helpers, Parquet/pandas/polars, `wiretick bbo`, and hftbacktest's L3 book."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from wiretick.host.book import BBO_DTYPE, Books
from wiretick.host.cli import main
from wiretick.host.decode import decode_file
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.host.select import count, mask, select, where


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    cap = tmp_path_factory.mktemp("bookdata") / "day.pcap"
    generate_to_file(cap, GenConfig(messages=20_000, symbols=12, seed=9, all_types=True))
    return cap, decode_file(cap).ticks


@pytest.mark.parametrize("criteria", [
    {"types": "A"}, {"types": "AFU", "side": "B"}, {"locates": [3, 5]}, {"types": ["E", "C"], "locates": [2]},
    {"ts_from": 34_500 * 10**9, "ts_to": 36_000 * 10**9}, {"types": "P", "time_field": "seq", "ts_from": 5000},
    {"types": [0]}, {},
])
def test_selection_equals_numpy_masks(day, criteria):
    _, t = day
    m = np.ones(len(t), bool)
    if "types" in criteria:
        m &= np.isin(t["msg_type"], [ord(c) if isinstance(c, str) else c for c in criteria["types"]])
    if "side" in criteria:
        m &= t["side"] == ord(criteria["side"])
    if "locates" in criteria:
        m &= np.isin(t["locate"], criteria["locates"])
    field = criteria.get("time_field", "ts_exch")
    m &= (t[field] >= criteria.get("ts_from", 0)) & (t[field] < criteria.get("ts_to", 2**64 - 1))
    got = select(t, **criteria)
    assert got.dtype == t.dtype and got.tobytes() == t[m].tobytes()
    assert np.array_equal(where(t, **criteria), np.flatnonzero(m))
    assert np.array_equal(mask(t, **criteria), m) and count(t, **criteria) == m.sum()
    out = np.zeros(len(t), t.dtype)
    assert select(t, out=out, **criteria).tobytes() == t[m].tobytes()


def test_selection_by_symbol_and_bad_criteria(day):
    _, t = day
    books = Books()
    books.update(t)
    sym = books.symbols.symbol(4)
    assert select(t, symbols=[sym], directory=books).tobytes() == t[t["locate"] == 4].tobytes()
    ro = t.copy()
    ro.flags.writeable = False
    assert len(select(ro[::2], types="A")) == np.count_nonzero(t[::2]["msg_type"] == ord("A"))
    with pytest.raises(ValueError, match="directory"):
        select(t, symbols=["X"])
    with pytest.raises(ValueError, match="side"):
        select(t, side="Z")
    with pytest.raises(TypeError, match="unknown selection"):
        count(t, typ="A")


def test_tables_parquet_pandas_polars(day, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from decimal import Decimal

    from wiretick.host.tables import to_pandas, to_polars, write_parquet
    _, t = day
    books = Books()
    up = books.update(t)
    write_parquet(up.bbo, tmp_path / "bbo.parquet", directory=books.symbols)
    back = pq.read_table(tmp_path / "bbo.parquet")
    assert back.num_rows == len(up.bbo) and not list(tmp_path.glob(".*"))
    row = back.slice(10, 1).to_pylist()[0]
    assert row["bid_px"] == Decimal(int(up.bbo["bid_px"][10])) / 10_000
    assert row["symbol"] == books.symbols.symbol(int(up.bbo["locate"][10]))
    df = to_pandas(t)
    adds = df[df["msg_type"] == "A"]
    assert len(adds) == np.count_nonzero(t["msg_type"] == ord("A"))
    assert np.allclose(adds["price"].to_numpy(), t["price"][t["msg_type"] == ord("A")] / 1e4)
    pl = to_polars(up.trades, directory=books.symbols)
    assert pl.height == len(up.trades) and set(pl["kind"].unique().to_list()) <= set("ECPQB")


def test_cli_bbo_and_decode_parquet(day, tmp_path, capsys):
    pq = pytest.importorskip("pyarrow.parquet")
    cap, t = day
    books = Books()
    want = books.update(t).bbo
    assert main(["bbo", str(cap), "-o", str(tmp_path / "b.npy")]) == 0
    got = np.load(tmp_path / "b.npy")
    assert got.dtype == BBO_DTYPE and got.tobytes() == want.tobytes()
    names = [books.symbols.symbol(1), books.symbols.symbol(2)]
    assert main(["bbo", str(cap), "-o", str(tmp_path / "b.parquet"), "--symbols", ",".join(names) + ",NOSUCH"]) == 0
    assert "NOSUCH" in capsys.readouterr().err
    tb = pq.read_table(tmp_path / "b.parquet")
    assert tb.num_rows == np.isin(want["locate"], [1, 2]).sum() and set(tb["symbol"].to_pylist()) == set(names)
    assert main(["bbo", str(cap), "-o", str(tmp_path / "x.npy"), "--symbols", "NOSUCH"]) == 2
    assert main(["bbo", str(cap), "-o", str(tmp_path / "x.csv")]) == 2
    assert not (tmp_path / "x.npy").exists() and not (tmp_path / "x.csv").exists()
    assert main(["decode", str(cap), "-o", str(tmp_path / "t.parquet")]) == 0
    tt = pq.read_table(tmp_path / "t.parquet")
    assert tt.num_rows == len(t) and str(tt.schema.field("price").type) == "decimal128(10, 4)"


def test_hftbacktest_l3_book_equals_ours(day):
    """A real hftbacktest backtest (L3 FIFO queue model) on exported ticks holds the book we hold."""
    hbt_mod = pytest.importorskip("hftbacktest")
    from numba import njit

    from wiretick.host.hbt import EVENT_DTYPE, to_hftbacktest
    assert EVENT_DTYPE == hbt_mod.event_dtype
    _, t = day
    loc = 3
    ev, skipped = to_hftbacktest(t, loc, date=dt.date(2024, 1, 2))      # the generator's session date
    assert skipped == 0 and len(ev) > 500 and (ev["local_ts"] >= ev["exch_ts"]).all()
    asset = (hbt_mod.BacktestAsset().data([ev]).linear_asset(1.0).constant_order_latency(0, 0)
             .l3_fifo_queue_model().no_partial_fill_exchange().tick_size(0.0001).lot_size(1.0))
    hbt = hbt_mod.HashMapMarketDepthBacktest([asset])

    @njit
    def sample(hbt, ts, bid_ticks, ask_ticks):
        out = np.zeros((len(ts), bid_ticks.shape[1], 2))
        for k in range(len(ts)):
            hbt.elapse(ts[k] - hbt.current_timestamp)
            d = hbt.depth(0)
            for j in range(bid_ticks.shape[1]):
                out[k, j, 0] = d.bid_qty_at_tick(bid_ticks[k, j])
                out[k, j, 1] = d.ask_qty_at_tick(ask_ticks[k, j])
        return out

    ts = np.linspace(ev["local_ts"][0] + 1, ev["local_ts"][-1] + 1, 120).astype(np.int64)
    books, prev, depth = Books(), 0, []
    for when in ts:
        j = np.searchsorted(t["ts_rx"], when, side="right")
        books.update(t[prev:j])
        prev = j
        depth.append(books.depth(loc, 5))
    depth = np.array(depth)
    theirs = sample(hbt, ts, depth["bid_px"].astype(np.int64), depth["ask_px"].astype(np.int64))
    ours = np.stack([depth["bid_sz"], depth["ask_sz"]], axis=-1).astype(float)
    # The generator's books cross at times, which hftbacktest's depth resolves its own way; the
    # first sample is before hftbacktest's clock starts.
    crossed = (depth["bid_px"][:, 0] >= depth["ask_px"][:, 0]) & (depth["ask_px"][:, 0] > 0)
    check = ~crossed
    check[0] = False
    assert check.sum() > 30
    assert np.array_equal(ours[check], theirs[check])
    hbt.close()
