"""``wiretick bench host``: the host side of the tick path, every figure measured in one run.

Each baseline differs from what it is compared with in the one thing its name says.

- ``host.ticks_per_s.zero_copy``: the VWAP strategy (:class:`~.strategy.Vwap`,
  its default compiled engine) consuming ring batches in place while a writer
  fills the ring, as a reader following a live ring does: the writer publishes
  bursts of 32768 ticks (2 MiB) and the reader takes each as one batch soon
  after it was written, so it comes from cache (hot), as DMA with DDIO would
  leave it.  Only the reader's time is counted: ``poll`` plus the strategy.
  ``..._no_book``: the same without the order book that prices ``E``
  executions; ``..._numpy``: the same with the numpy engine.
- ``host.ticks_per_s.copy``: the same compiled strategy on the same batches,
  each first copied out of the ring as a receive-into-buffer path would (one
  memcpy of the batch's bytes into a buffer allocated once); the run checks
  both end with the same result.  ``host.zero_copy_over_copy`` is their ratio.
- ``host.ticks_per_s.per_tick_python``: :class:`~.strategy.ScalarVwap` fed
  ticks copied out one by one (64 bytes, then ``struct.unpack``): interpreted
  Python per tick, on a prefix of the same ticks.
- Streaming against hot: ``host.ticks_per_s.zero_copy_streaming`` is the
  zero-copy strategy on a ring of 2^22 slots (256 MiB, 8x the last-level
  cache) after the writer has written all the ticks ahead of the reader, so
  that they come from DRAM.  ``host.read_gbps.cold`` is ``np.sum`` over a
  256 MiB array (from DRAM), ``host.read_gbps.hot`` over a 2 MiB one (one
  batch) summed again and again (from cache).  ``host.streaming.zero_copy_over_cold_read``
  and ``host.hot.zero_copy_over_hot_read`` compare the strategy's bytes per
  second with those reads on the same footing.
- ``host.latency_ns.p50``/``.p99``/``.p99_9``: one tick written by one process
  to a reader busy-polling (:meth:`~.ring.Ring.poll_one`) in another, on
  ``time.monotonic_ns`` (one clock for both); the writer stamps ``ts_rx`` just
  before it publishes the tick.  ``host.loadavg_1m``: the machine's load
  average beside them (the machine is shared); ``plot``: a histogram PNG.
- ``host.ring.write_ticks_per_s``: :meth:`~.ring.RingWriter.write` in bulk.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from .ring import Ring, RingWriter
from .strategy import ScalarVwap, Vwap
from .tick import TICK_DTYPE

__all__ = ["bench_host"]


def _say(log: TextIO | None, text: str) -> None:
    if log:
        print(text, file=log, flush=True)


def _ring_name(tag: str) -> str:
    return f"wiretick-bench-{tag}-{os.getpid()}"


def mem_read_gbps(nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """GB/s of ``np.sum`` over a uint64 array (the best of ``repeats``: bandwidth is a ceiling).

    Larger than the last-level cache, each pass reads from DRAM (cold); small
    enough for it, each pass after the first reads from cache (hot).
    """
    a = np.ones(nbytes // 8, np.uint64)
    inner = max(1, (64 << 20) // nbytes)       # small arrays: time enough passes to measure
    best = min(_timed(lambda: [a.sum() for _ in range(inner)]) for _ in range(repeats))
    return inner * a.nbytes / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _follow(ticks: np.ndarray, *, step: int, batch: int, nslots: int, consume, repeats: int) -> float:
    """Ticks/s of ``consume(batch_view)`` over ``ticks`` written ``step`` at a time into a ring.

    Median of ``repeats`` runs over the whole array; only the reader's time counts.
    """
    name = _ring_name("follow")
    rates = []
    try:
        w = RingWriter.create(name, nslots, overwrite=True)
        r = Ring(name)
        for _ in range(repeats):
            spent = 0.0
            for i in range(0, len(ticks), step):
                w.write(ticks[i:i + step], renumber=True)
                t0 = time.perf_counter()
                while True:
                    b = r.poll(batch)
                    if not len(b):
                        break
                    consume(b)
                spent += time.perf_counter() - t0
            rates.append(len(ticks) / spent)
        if r.lost:
            raise AssertionError(f"benchmark reader lost {r.lost} ticks")
        w.close()
        r.close()
    finally:
        Path("/dev/shm", name).unlink(missing_ok=True)
    return statistics.median(rates)


def _agree(a, b) -> bool:
    """Two strategies' results agree: the same volumes and unpriced shares, notional to rounding."""
    ra, rb = a.result(), b.result()
    return (a.unpriced == b.unpriced and ra.keys() == rb.keys()
            and all(ra[k][0] == rb[k][0] and abs(ra[k][1] - rb[k][1]) <= 1e-9 * abs(rb[k][1]) for k in ra))


def _copy_rate(ticks: np.ndarray, *, step: int, nslots: int, repeats: int) -> float:
    """Ticks/s of the compiled :class:`Vwap` on a memcpy'd copy of each ring batch (see the module doc)."""
    recv = np.empty(step, TICK_DTYPE)              # the receive buffer, allocated once
    raw = recv.view(np.uint8)
    strat = Vwap()

    def consume_copy(b: np.ndarray) -> None:
        n = len(b)
        np.copyto(raw[:n * 64], b.view(np.uint8))  # one memcpy of the batch's bytes
        strat.update(recv[:n])

    rate = _follow(ticks, step=step, batch=step, nslots=nslots, consume=consume_copy, repeats=repeats)
    same = Vwap()
    for _ in range(repeats):
        same.update(ticks)
    if not _agree(strat, same):
        raise AssertionError("the copying strategy and the zero-copy one disagree")
    return rate


def _per_tick_python_rate(ticks: np.ndarray, *, nslots: int, repeats: int) -> float:
    """Ticks/s of the scalar strategy fed ticks copied out of the ring one by one.

    Checks that it did the zero-copy strategy's work: the same result as :class:`Vwap` on ``ticks``.
    """
    def consume_copy(b: np.ndarray) -> None:
        mv = memoryview(b.view(np.uint8))
        upd = strat.update_one
        for o in range(0, len(mv), 64):
            upd(bytes(mv[o:o + 64]))

    rates = []
    for _ in range(repeats):
        strat = ScalarVwap()
        rates.append(_follow(ticks, step=4096, batch=4096, nslots=nslots, consume=consume_copy, repeats=1))
    same = Vwap()
    same.update(ticks)
    if not _agree(strat, same):
        raise AssertionError("the copying strategy and the zero-copy one disagree")
    return statistics.median(rates)


def _streaming_rate(ticks: np.ndarray, *, nslots: int, repeats: int) -> float:
    """Ticks/s of the zero-copy strategy on ticks the writer wrote all ahead of it, into a ring ``nslots`` big."""
    if len(ticks) > nslots - nslots // 8:
        ticks = ticks[:nslots - nslots // 8]       # never lapped
    strat = Vwap()
    return _follow(ticks, step=len(ticks), batch=32768, nslots=nslots, consume=strat.update, repeats=repeats)


# ------------------------------------------------------------------ latency

def _pin(cpu: int, realtime: bool) -> bool:
    """Pin this process to ``cpu`` and, with ``realtime``, give it SCHED_FIFO priority 1.

    A busy-polling reader on a core of its own at real-time priority is how a
    latency-critical strategy is deployed; on a shared machine it also keeps
    other jobs from time-slicing the reader away for milliseconds.  Returns
    whether real-time priority was granted (it needs CAP_SYS_NICE or an rtprio limit).
    """
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu})
    except (AttributeError, OSError):
        pass
    if not realtime:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
        return True
    except (AttributeError, OSError):
        return False


def _unpin(affinity: set[int] | None) -> None:
    try:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    if affinity is not None:
        os.sched_setaffinity(0, affinity)


def _latency_reader(name: str, samples: int, realtime: bool, ready, conn) -> None:
    _pin(1, realtime)
    r = Ring(name, start=1)
    lat = np.empty(samples, np.int64)
    mono = time.monotonic_ns
    poll = r.poll_one
    ready.set()
    i = 0
    while i < samples:
        t = poll()
        if t is None:
            continue
        now = mono()
        lat[i] = now - int(t["ts_rx"])
        i += 1
    conn.send_bytes(lat.tobytes())
    conn.close()


def latency_ns(samples: int = 20_000, gap_ns: int = 20_000, *, realtime: bool = True) -> tuple[np.ndarray, bool]:
    """Write-to-read latencies (ns) of ``samples`` ticks, one every ``gap_ns``, across two processes.

    Returns the latencies and whether the writer ran at real-time priority (see :func:`_pin`).
    """
    name = _ring_name("latency")
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    parent, child = ctx.Pipe(duplex=False)
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    proc = None
    try:
        w = RingWriter.create(name, 4096, overwrite=True, interval=1, chunk=1)
        proc = ctx.Process(target=_latency_reader, args=(name, samples, realtime, ready, child), daemon=True)
        proc.start()
        child.close()
        if not ready.wait(30):
            raise RuntimeError("latency reader did not start")
        rt = _pin(0, realtime)
        tick = np.zeros(1, TICK_DTYPE)
        tick["msg_type"] = ord("A")
        raw = tick.tobytes()
        mono = time.monotonic_ns
        write = w.write_one
        due = mono() + 1_000_000
        for _ in range(samples):
            while mono() < due:
                pass
            write(raw, renumber=True, stamp_ts=True)
            due += gap_ns
        w.publish()
        if not parent.poll(60):
            raise RuntimeError("latency reader did not report")
        lat = np.frombuffer(parent.recv_bytes(), np.int64)
        proc.join(10)
        w.close()
    finally:
        _unpin(saved)
        if proc is not None and proc.is_alive():
            proc.kill()                          # a reader left polling would spin forever
            proc.join(10)
        Path("/dev/shm", name).unlink(missing_ok=True)
    return lat, rt


def plot_latency(lat: np.ndarray, path: str | os.PathLike, *, load: float, realtime: bool) -> Path:
    """A histogram PNG of write-to-read latencies, percentiles marked (written whole or not at all)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    us = lat / 1e3
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    edges = np.logspace(np.log10(max(us.min(), 0.01)), np.log10(us.max() * 1.01), 120)
    ax.hist(us, bins=edges, color="#3b6ea5")
    ax.set_xscale("log")
    ax.set_yscale("log")
    for q, style in ((50, "-"), (99, "--"), (99.9, ":")):
        v = np.percentile(us, q)
        ax.axvline(v, color="#c0392b", linestyle=style, label=f"p{q:g} {v:.2f} us")
    ax.set_xlabel("write-to-read latency (us, log scale)")
    ax.set_ylabel("ticks (log scale)")
    ax.set_title(f"ring latency, {len(us)} ticks, load average {load:.2f}, "
                 f"{'pinned, SCHED_FIFO' if realtime else 'normal priority'}")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.png")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------ the suite

def bench_host(messages: int, log: TextIO | None = None, *, latency_samples: int = 20_000,
               realtime: bool = True, mem_bytes: int = 256 << 20, streaming_slots: int = 1 << 22,
               plot: str | os.PathLike | None = None) -> dict[str, float]:
    """Measure the host figures on a generated feed of ``messages`` ITCH messages (see the module doc).

    ``latency_samples``, ``realtime`` (pin and SCHED_FIFO the latency pair when
    permitted), ``mem_bytes`` (the cold-read array) and ``streaming_slots``
    (the streaming ring) exist for quick smoke runs.  ``plot``: write the
    latency histogram PNG there.
    """
    from .decode import decode_file
    from .gen import GenConfig, generate_to_file
    from .measure import loadavg

    with tempfile.TemporaryDirectory(prefix="wiretick-bench-") as tmp:
        cap = Path(tmp) / "feed.pcap"
        generate_to_file(cap, GenConfig(messages=messages, symbols=500, seed=1))
        ticks = decode_file(cap).ticks
    _say(log, f"host: {len(ticks)} ticks from {messages} generated messages")

    cold = mem_read_gbps(mem_bytes)
    hot = mem_read_gbps(32768 * 64, repeats=9)
    _say(log, f"host: numpy read bandwidth {cold:.1f} GB/s cold ({mem_bytes >> 20} MiB), {hot:.1f} GB/s hot (2 MiB)")

    nslots = 1 << 20
    wname = _ring_name("write")
    try:
        w = RingWriter.create(wname, nslots, overwrite=True)
        w.write(ticks[:nslots], renumber=True)               # first touch outside the timing
        reps = [_timed(lambda: w.write(ticks, renumber=True)) for _ in range(3)]
        write_rate = len(ticks) / statistics.median(reps)
        w.close()
    finally:
        Path("/dev/shm", wname).unlink(missing_ok=True)
    _say(log, f"host: ring writer {write_rate / 1e6:.1f} M ticks/s")

    # The writer publishes bursts of 32768 ticks (2 MiB) and the reader takes each as one
    # batch: big enough to amortize numpy's per-call cost, small enough to stay in cache.
    # Each strategy object lives through all the repeats (its book is allocated, and its
    # pages backed, on the first); the compiled pass is compiled or loaded before timing.
    Vwap().update(ticks[:64])
    strat = Vwap()
    zero = _follow(ticks, step=32768, batch=32768, nslots=nslots, consume=strat.update, repeats=5)
    _say(log, f"host: VWAP on ring batches in place {zero / 1e6:.1f} M ticks/s")
    copy = _copy_rate(ticks, step=32768, nslots=nslots, repeats=5)
    _say(log, f"host: VWAP on a memcpy'd copy of each batch {copy / 1e6:.1f} M ticks/s")
    lean = Vwap(track_orders=False)
    zero_lean = _follow(ticks, step=32768, batch=32768, nslots=nslots, consume=lean.update, repeats=5)
    _say(log, f"host: VWAP without the order book {zero_lean / 1e6:.1f} M ticks/s")
    ref = Vwap(engine="numpy")
    zero_numpy = _follow(ticks, step=32768, batch=32768, nslots=nslots, consume=ref.update, repeats=5)
    _say(log, f"host: VWAP, numpy engine {zero_numpy / 1e6:.1f} M ticks/s")
    if not _agree(strat, ref):
        raise AssertionError("the numba and numpy VWAP engines disagree")

    streaming = _streaming_rate(ticks, nslots=streaming_slots, repeats=3)
    _say(log, f"host: VWAP on ticks written {min(len(ticks), streaming_slots) * 64 >> 20} MiB ahead "
              f"(streaming from DRAM) {streaming / 1e6:.1f} M ticks/s")

    sub = ticks[:min(len(ticks), 200_000)]
    per_tick = _per_tick_python_rate(sub, nslots=1 << 16, repeats=3)
    _say(log, f"host: VWAP in Python on ticks copied one by one {per_tick / 1e6:.2f} M ticks/s")

    load = loadavg()
    lat, rt = latency_ns(latency_samples, realtime=realtime)
    load = max(load, loadavg())
    p50, p99, p999 = (float(np.percentile(lat, q)) for q in (50, 99, 99.9))
    _say(log, f"host: latency p50 {p50:.0f} ns, p99 {p99:.0f} ns, p99.9 {p999:.0f} ns, max {lat.max()} ns "
              f"({len(lat)} ticks, {'pinned, SCHED_FIFO' if rt else 'normal priority'}, load average {load:.2f})")
    if plot is not None:
        _say(log, f"host: latency histogram in {plot_latency(lat, plot, load=load, realtime=rt)}")

    gb = 64 / 1e9                                # bytes of ticks per tick, in GB
    return {
        "host.ticks_per_s.zero_copy": round(zero),
        "host.ticks_per_s.zero_copy_no_book": round(zero_lean),
        "host.ticks_per_s.zero_copy_numpy": round(zero_numpy),
        "host.ticks_per_s.copy": round(copy),
        "host.zero_copy_over_copy": round(zero / copy, 2),
        "host.ticks_per_s.per_tick_python": round(per_tick),
        "host.ticks_per_s.zero_copy_streaming": round(streaming),
        "host.read_gbps.cold": round(cold, 2),
        "host.read_gbps.hot": round(hot, 2),
        "host.streaming.zero_copy_over_cold_read": round(streaming * gb / cold, 3),
        "host.hot.zero_copy_over_hot_read": round(zero * gb / hot, 3),
        "host.latency_ns.p50": round(p50),
        "host.latency_ns.p99": round(p99),
        "host.latency_ns.p99_9": round(p999),
        "host.latency_realtime": int(rt),
        "host.loadavg_1m": load,
        "host.ring.write_ticks_per_s": round(write_rate),
        "host.messages": messages,
    }
