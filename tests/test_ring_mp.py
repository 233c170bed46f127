"""Several processes follow one ring that another process writes at full speed."""

from __future__ import annotations

import multiprocessing as mp
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.ring import Ring, RingWriter, create_ring
from wiretick.host.tick import TICK_DTYPE

K = np.uint64(0x9E3779B97F4A7C15)
CTX = mp.get_context("fork")


@pytest.fixture
def name():
    n = f"wiretick-test-mp-{uuid.uuid4().hex[:12]}"
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


def _write_all(w: RingWriter, total: int, *, burst: int = 65536, pause: float = 0.0) -> None:
    """Write ticks 1..total whose fields are derived from seq, ``burst`` at a time."""
    t = np.zeros(burst, TICK_DTYPE)
    t["msg_type"] = ord("E")
    ar = np.arange(burst, dtype=np.uint64)
    seq = t["seq"]
    first = 1
    while first <= total:
        n = min(burst, total - first + 1)
        np.add(ar[:n], np.uint64(first), out=seq[:n])
        np.multiply(seq[:n], K, out=t["order_ref"][:n])
        np.invert(seq[:n], out=t["ref2"][:n])
        w.write(t[:n])
        first += n
        if pause:
            time.sleep(pause)


def _follow(name: str, slow: bool, max_ticks: int, ready, conn) -> None:
    """A reader: checks every batch in place, then rechecks it; reports what it saw."""
    r = Ring(name, start=1)
    ready.set()
    seen = skipped = intact_bad = overwritten = batches = 0
    expect = 1
    order_ok = True
    while True:
        b = r.poll(max_ticks)
        if not len(b):
            if r.finished:
                break
            if slow:
                time.sleep(0.0002)
            continue
        first = r.next_seq - len(b)           # the reader's own cursor, not the (mutable) view
        if slow:
            time.sleep(0.001)                 # hold the view: the writer may overwrite it meanwhile
        batches += 1
        if first < expect:
            order_ok = False
        skipped += first - expect
        seq = b["seq"]
        good = bool((seq == np.arange(first, first + len(b), dtype=np.uint64)).all()
                    and (b["order_ref"] == seq * K).all() and (b["ref2"] == ~seq).all())
        # ordering: content first, then recheck -- an intact view must have been good
        if r.recheck(b):
            intact_bad += not good
        else:
            overwritten += 1
        seen += len(b)
        expect = first + len(b)
    conn.send(dict(seen=seen, skipped=skipped, lost=r.lost, laps=r.laps, intact_bad=intact_bad,
                   overwritten=overwritten, batches=batches, order_ok=order_ok, next_seq=r.next_seq))
    conn.close()


def _start_readers(name: str, n: int, *, slow: bool, max_ticks: int):
    procs, pipes, events = [], [], []
    for _ in range(n):
        ev = CTX.Event()
        parent, child = CTX.Pipe(duplex=False)
        p = CTX.Process(target=_follow, args=(name, slow, max_ticks, ev, child), daemon=True)
        p.start()
        child.close()
        procs.append(p), pipes.append(parent), events.append(ev)
    for ev in events:
        assert ev.wait(60), "reader did not start"
    return procs, pipes


def _results(procs, pipes, timeout: float = 120):
    out = []
    for p, pipe in zip(procs, pipes):
        assert pipe.poll(timeout), "reader did not finish"
        out.append(pipe.recv())
        p.join(10)
        assert p.exitcode == 0
    return out


def test_readers_follow_a_full_speed_writer(name):
    """Two reader processes each see every one of 5M ticks exactly once, in order, none torn (10^7 in all).

    The ring (4M slots, 256 MiB) holds ~0.1 s of the writer at full speed: a
    reader that gets a fair share of a core never falls that far behind.
    """
    total = 5_000_000
    create_ring(name, 1 << 22)
    procs, pipes = _start_readers(name, 2, slow=False, max_ticks=1 << 16)
    t0 = time.perf_counter()
    with RingWriter(name) as w:
        _write_all(w, total)
    write_s = time.perf_counter() - t0
    results = _results(procs, pipes)
    print(f"writer: {total / write_s / 1e6:.1f} M ticks/s while 2 readers follow; {results}")
    assert sum(r["seen"] for r in results) >= 10**7
    for r in results:
        assert r["lost"] == 0 and r["laps"] == 0 and r["skipped"] == 0
        assert r["seen"] == total and r["next_seq"] == total + 1 and r["order_ok"]
        assert r["intact_bad"] == 0 and r["overwritten"] == 0


def test_slow_reader_loss_is_exact(name):
    """A reader too slow for the writer is lapped: lost == written - seen, exactly, and no torn tick passes recheck."""
    total = 1_000_000
    create_ring(name, 4096)
    procs, pipes = _start_readers(name, 1, slow=True, max_ticks=512)
    with RingWriter(name, chunk=512, interval=256) as w:
        _write_all(w, total, burst=10_000, pause=0.004)
    (r,) = _results(procs, pipes)
    print(r)
    assert r["laps"] >= 1 and r["lost"] > 0
    assert r["seen"] + r["lost"] == total
    assert r["skipped"] == r["lost"] and r["order_ok"] and r["next_seq"] == total + 1
    assert r["intact_bad"] == 0
    assert r["overwritten"] > 0            # views overwritten while held were caught by recheck


def test_late_reader_joins_a_live_ring(name):
    """A reader opened mid-stream starts at the oldest tick safely in the ring and then sees everything."""
    create_ring(name, 1 << 12)
    with RingWriter(name) as w:
        _write_all(w, 100_000, burst=5000)
        r = Ring(name)
        assert r.next_seq == 100_000 - 4096 + 1 + 512
        first = r.next_seq
        t = np.zeros(300, TICK_DTYPE)                 # fewer than the margin: no lap
        t["seq"] = np.arange(100_001, 100_301)
        w.write(t)
        parts = []
        while len(b := r.poll(700)):
            parts.append(b.copy())
        got = np.concatenate(parts)
    assert list(got["seq"]) == list(range(first, 100_301)) and r.lost == 0


def _write_forever(name: str, stop) -> None:
    with RingWriter(name) as w:
        first, burst = 1, 40
        t = np.zeros(burst, TICK_DTYPE)
        ar = np.arange(burst, dtype=np.uint64)
        while not stop.is_set():
            np.add(ar, np.uint64(first), out=t["seq"])
            np.multiply(t["seq"], K, out=t["order_ref"])
            np.invert(t["seq"], out=t["ref2"])
            w.write(t)
            first += burst


def test_poll_parts_against_a_live_writer(name):
    """Without the double mapping, ``poll_parts(None)`` never returns more than one ring, and never a stale first part.

    A writer process runs laps around a 64-slot ring; every pair of parts that
    recheck calls intact must hold consecutive, untorn ticks.
    """
    nslots = 64
    create_ring(name, nslots)
    stop = CTX.Event()
    proc = CTX.Process(target=_write_forever, args=(name, stop), daemon=True)
    proc.start()
    try:
        # a small resync margin and a reader that naps: it is lapped often, and resumes
        # a few ticks behind the writer, which then passes the first part while the
        # second is being read.
        r = Ring(name, double_map=False, start=1, resync_margin=2)
        wrapped = intact = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and intact < 20_000:
            time.sleep(0.0001)
            parts = r.poll_parts()
            if not parts:
                continue
            copies = [p.copy() for p in parts]
            assert sum(len(c) for c in copies) <= nslots
            if not r.recheck(parts[0]):
                continue
            intact += 1
            wrapped += len(parts) == 2
            got = np.concatenate(copies)
            seq = got["seq"]
            assert (np.diff(seq.astype(np.int64)) == 1).all(), f"parts not consecutive: {seq[:3]}..{seq[-3:]}"
            assert (got["order_ref"] == seq * K).all() and (got["ref2"] == ~seq).all()
    finally:
        stop.set()
        proc.join(10)
    assert proc.exitcode == 0
    print(f"{intact} intact poll_parts, {wrapped} in two parts, {r.laps} laps")
    assert wrapped > 0
