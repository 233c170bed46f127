"""Order books from ticks: every ITCH rule, inconsistencies counted, and itch-book's BBO table row for row."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from wiretick.host.book import BBO_DTYPE, INCONSISTENCIES, TRADE_DTYPE, Books, bbo_table
from wiretick.host.capture import FrameBatch, read_frames
from wiretick.host.decode import decode_batch, decode_file
from wiretick.host.contract.formats import Flag
from wiretick.host.frames import batch_messages, encode_message, mold_packet, udp_frame
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.host.tick import empty_ticks

itch_book = pytest.importorskip("itch_book._core", reason="itch-book (the test oracle) is not installed")


def itch_messages(path) -> list[bytes]:
    """Every ITCH message of a capture in order (the MoldUDP64 blocks), for the oracle."""
    return batch_messages(read_frames(path))


def oracle_bbo(messages: list[bytes]) -> dict[str, np.ndarray]:
    s = itch_book.Session(tables=["bbo"], depth=0, symbols=[])
    s.feed(np.frombuffer(b"".join(struct.pack(">H", len(m)) + m for m in messages), np.uint8))
    return s.take_bbo()


def assert_equal_to_oracle(rows: np.ndarray, theirs: dict[str, np.ndarray]) -> None:
    assert len(rows) == len(theirs["seq"])
    pairs = [("ts_exch", "ts"), ("locate", "locate"), ("bid_px", "bid_px"), ("bid_sz", "bid_sz"),
             ("bid_ct", "bid_ct"), ("ask_px", "ask_px"), ("ask_sz", "ask_sz"), ("ask_ct", "ask_ct")]
    for ours, name in pairs:
        a, b = rows[ours].astype(np.int64), theirs[name].astype(np.int64)
        bad = np.flatnonzero(a != b)
        assert not len(bad), f"{ours} differs first at row {bad[0]}: ours {rows[bad[0]]}"


@pytest.fixture(scope="module", params=[(30_000, 20, 5), (60_000, 200, 6)], ids=["20sym", "200sym"])
def generated(request, tmp_path_factory):
    messages, symbols, seed = request.param
    cap = tmp_path_factory.mktemp("book") / "day.pcap"
    generate_to_file(cap, GenConfig(messages=messages, symbols=symbols, seed=seed, all_types=True))
    return cap, decode_file(cap).ticks


def test_bbo_equals_itch_book_row_for_row(generated):
    cap, ticks = generated
    books = Books()
    rows = books.update(ticks).bbo
    assert len(rows) > 1000
    theirs = oracle_bbo(itch_messages(cap))
    assert_equal_to_oracle(rows, theirs)
    # a generated day is book-consistent: feed_seq is the oracle's message ordinal, nothing is inconsistent
    assert np.array_equal(rows["feed_seq"], theirs["seq"])
    assert all(v == 0 for v in books.counters.values())


@pytest.mark.parametrize("batch", [1, 7, 1000, 1 << 30])
def test_batches_of_any_size_give_the_same_rows(generated, batch):
    _, ticks = generated
    whole = Books().update(ticks)
    books = Books(arena=64)                    # tiny: the level arena grows many times
    parts = [books.update(ticks[i:i + batch]) for i in range(0, len(ticks), batch)]
    for name in ("bbo", "trades"):
        got = np.concatenate([getattr(p, name) for p in parts])
        want = getattr(whole, name)
        assert len(got) == len(want) and all(np.array_equal(got[f], want[f]) for f in want.dtype.names), name


def test_read_only_views_and_views_without_copy(generated):
    _, ticks = generated
    ro = ticks.copy()
    ro.flags.writeable = False
    a = Books().update(ro)
    b = Books().update(ticks, copy=False)
    assert a.bbo.tobytes() == b.bbo.tobytes()


def _t(typ: str, *, ref=0, ref2=0, price=0, shares=0, locate=1, side="", flags=0, seq=0) -> np.ndarray:
    t = empty_ticks(1)
    t["msg_type"], t["order_ref"], t["ref2"], t["price"], t["shares"] = ord(typ) if typ else 0, ref, ref2, price, shares
    t["locate"], t["flags"], t["side"], t["seq"], t["feed_seq"] = locate, flags, ord(side) if side else 0, seq, seq
    return t


def test_each_rule_on_hand_made_ticks():
    lap = 0xF000                                    # ring lap-tag bits in flags change nothing
    ticks = np.concatenate([
        _t("A", ref=1, side="B", price=100, shares=10, flags=lap),
        _t("F", ref=2, side="B", price=100, shares=5),
        _t("A", ref=3, side="S", price=105, shares=7),
        _t("A", ref=4, side="B", price=99, shares=1),
        _t("E", ref=1, shares=4),                   # bid 100: 11 in 2 orders
        _t("X", ref=2, shares=5),                   # order 2 gone: bid 100: 6 in 1
        _t("C", ref=1, shares=6, price=101, flags=Flag.PRINTABLE),   # order 1 gone: bid 99
        _t("U", ref=3, ref2=30, price=104, shares=2, locate=9),      # side and locate of order 3
        _t("D", ref=30),                            # ask side empty
        _t("P", price=102, shares=3, side="B"),     # a print, no book change
    ])
    books = Books()
    up = books.update(ticks)
    b = up.bbo
    assert list(zip(b["bid_px"], b["bid_sz"], b["bid_ct"], b["ask_px"], b["ask_sz"], b["ask_ct"])) == [
        (100, 10, 1, 0, 0, 0), (100, 15, 2, 0, 0, 0), (100, 15, 2, 105, 7, 1),
        (100, 11, 2, 105, 7, 1), (100, 6, 1, 105, 7, 1), (99, 1, 1, 105, 7, 1),
        (99, 1, 1, 104, 2, 1), (99, 1, 1, 0, 0, 0)]
    assert (b["locate"] == 1).all()               # the order 4 add changed no top: no row
    tr = up.trades
    assert [chr(k) for k in tr["kind"]] == ["E", "C", "P"]
    assert list(tr["price"]) == [100, 101, 102] and list(tr["side"]) == [ord("B"), ord("B"), ord("B")]
    assert books.counters["locate_mismatch"] == 1 and books.live_orders() == 1
    assert books.depth(1, 3)["bid_px"].tolist() == [99, 0, 0]


def test_inconsistencies_are_counted_and_never_stop_the_feed():
    ticks = np.concatenate([
        _t("A", ref=1, side="B", price=100, shares=10),
        _t("E", ref=77, shares=1),                  # unknown reference
        _t("D", ref=78),                            # unknown reference
        _t("U", ref=79, ref2=80, price=1, shares=1),  # replace of an unknown order
        _t("X", ref=1, shares=25),                  # more than remain: removed
        _t("A", ref=2, side="S", price=0, shares=5),  # price 0: refused
        _t("A", ref=3, side="S", price=110, shares=0),  # 0 shares: refused
        _t("A", ref=4, side="B", price=90, shares=3),
        _t("A", ref=4, side="S", price=95, shares=2),  # onto a live reference: the stale one goes
        _t("A", ref=(1 << 64) - 1, side="B", price=1, shares=1),  # past max_orders
        _t("", flags=Flag.EVENT_GAP, seq=11),
    ])
    books = Books(max_orders=1 << 20)
    books.update(ticks)
    assert books.counters == {"unknown_ref": 2, "replace_unknown": 1, "shares_negative": 1, "duplicate_ref": 1,
                              "add_rejected": 2, "untracked_ref": 1, "locate_mismatch": 0, "gap_events": 1}
    assert set(books.counters) == set(INCONSISTENCIES)
    q = books.bbo([1])[0]
    assert (q["bid_px"], q["ask_px"], q["ask_sz"]) == (0, 95, 2)
    assert books.stale.all() and books.stale_since == 11
    books.recover([1])
    assert not books.stale[1] and books.stale[2]
    books.recover()
    assert not books.any_stale


def test_inconsistent_stream_matches_itch_book():
    """Unknown references, over-sized executions, duplicate and refused adds: the same BBO rows as itch-book."""
    def add(ref, side, px, sh, loc=1):
        return encode_message("A", stock_locate=loc, timestamp=ref, order_ref=ref, side=side, shares=sh,
                              stock="ABC", price=px)
    msgs = [add(1, "B", 100, 10), add(2, "S", 120, 5), encode_message("E", stock_locate=1, order_ref=9,
            executed_shares=3), encode_message("X", stock_locate=1, order_ref=2, cancelled_shares=50),
            add(3, "S", 0, 5), add(4, "B", 101, 0), add(1, "S", 119, 4), add(5, "S", 125, 1, loc=2),
            add(5, "B", 90, 2, loc=1),
            encode_message("U", stock_locate=1, original_order_ref=8, new_order_ref=12, shares=3, price=99),
            encode_message("U", stock_locate=1, original_order_ref=1, new_order_ref=13, shares=3, price=118),
            encode_message("C", stock_locate=1, order_ref=13, executed_shares=9, execution_price=118),
            encode_message("D", stock_locate=1, order_ref=5)]
    frame = udp_frame(mold_packet(1, msgs))
    ticks = decode_batch(FrameBatch.from_frames([frame])).ticks
    books = Books()
    rows = books.update(ticks).bbo
    assert_equal_to_oracle(rows, oracle_bbo(msgs))
    c = books.counters
    assert c["unknown_ref"] == 1 and c["shares_negative"] == 2 and c["add_rejected"] == 2
    assert c["duplicate_ref"] == 2 and c["replace_unknown"] == 1


def test_symbols_and_trading_state(generated):
    _, ticks = generated
    books = Books()
    books.update(ticks)
    r = ticks[ticks["msg_type"] == ord("R")]
    loc = int(r["locate"][0])
    assert books.symbols.symbol(loc) == r["ref2"][:1].view("S8")[0].decode().strip()
    assert books.symbols.locate(books.symbols.symbol(loc)) == loc
    assert books.symbols.round_lot(loc) == int(r["shares"][0])
    assert books.symbols.market_category(loc) == chr(r["side"][0])
    h = ticks[ticks["msg_type"] == ord("H")]
    last = {int(x["locate"]): chr(x["side"]) for x in h}
    assert all(books.state.code(k, "trading") == v for k, v in last.items())
    assert books.state.system_event == ticks[ticks["msg_type"] == ord("S")]["side"][-1]
    with pytest.raises(KeyError):
        books.symbols.locates("NOSUCH")


def test_halts_and_names_learnt_without_a_directory():
    stock = int.from_bytes(b"ZVZZT   ", "little")
    ticks = np.concatenate([
        _t("H", ref2=stock, side="H", locate=7),
        _t("h", ref2=stock, side="Q", ref=ord("H"), locate=7),
        _t("Y", ref2=stock, side="1", locate=7),
        _t("S", side="Q"),
    ])
    books = Books()
    books.update(ticks)
    assert books.symbols.symbol(7) == "ZVZZT" and books.symbols.locate("zvzzt") == 7
    assert not books.state.tradable(7) and books.state.halted()[7] and books.state.tradable(8)
    assert books.state.code(7, "reg_sho") == "1" and books.state.code(7, "halt_Q") == "H"
    assert books.state.market_open


def test_shared_captures_apply_without_error(shared_capture):
    from wiretick.host.decode import DecodeConfig
    ticks = decode_file(shared_capture, config=DecodeConfig(check_ip_checksum=False, sequence_check=False)).ticks
    books = Books()
    up = books.update(ticks)
    assert up.bbo.dtype == BBO_DTYPE and up.trades.dtype == TRADE_DTYPE
    kinds = set(ticks["msg_type"].tolist())
    if kinds & {ord("A"), ord("F")}:
        assert len(up.bbo) >= 1


def test_bbo_table_filters_by_locate(generated):
    _, ticks = generated
    rows = bbo_table(ticks, locates=[1, 2])
    assert set(np.unique(rows["locate"]).tolist()) <= {1, 2} and len(rows)


def test_bad_input():
    with pytest.raises(ValueError, match="tick dtype"):
        Books().update(np.zeros(3, np.uint64))
    with pytest.raises(ValueError, match="max_orders"):
        Books(max_orders=0)


def test_depth_equals_itch_book_at_the_end(generated):
    """The last top-5 snapshot itch-book emitted for each symbol equals our depth query after the day."""
    cap, ticks = generated
    books = Books()
    books.update(ticks)
    s = itch_book.Session(tables=["bbo"], depth=5, symbols=[])
    msgs = itch_messages(cap)
    s.feed(np.frombuffer(b"".join(struct.pack(">H", len(m)) + m for m in msgs), np.uint8))
    d = s.take_depth()
    last = {int(loc): i for i, loc in enumerate(d["locate"])}
    assert len(last) > 10
    for loc, i in last.items():
        ours = books.depth(loc, 5)
        for side in ("bid", "ask"):
            for lvl in range(5):
                got = [int(ours[f"{side}_{f}"][lvl]) for f in ("px", "sz", "ct")]
                want = [int(d[f"{side}_{f}_{lvl:02d}"][i]) for f in ("px", "sz", "ct")]
                assert got == want, (loc, side, lvl)
