"""``wiretick bench book``: the strategy library's figures, each comparison measured in one run.

- ``book.msgs_per_s``: ticks -> every symbol's book + BBO rows (:class:`~wiretick.host.book.Books`,
  fed 65,536-tick batches as a ring reader would be), against ``itchbook.msgs_per_s``: itch-book's
  C++ engine building its BBO table from the same messages (length-prefixed ITCH, in memory) through
  its Python binding.  Runs alternate, each from a fresh book; medians; ``book.over_itchbook`` is the
  ratio of the medians; ``*_cpu`` figures divide by the process's CPU time instead of wall time (less
  sensitive to a loaded machine: both run in this one thread).  Both produce the same rows (checked).  Note what each starts from: ours
  from ticks (the device decoded the messages), itch-book from raw ITCH (it decodes them itself).
- ``book.select_ticks_per_s`` (:func:`~wiretick.host.select.select` of the A ticks into a new array),
  ``book.select_into_ticks_per_s`` (into a reused one) against ``book.mask_ticks_per_s``
  (``ticks[ticks["msg_type"] == ord("A")]``).
- ``book.batch_style_ticks_per_s`` / ``book.event_style_ticks_per_s``: the same trivial strategy
  (count E ticks and BBO changes) as a batch strategy and as callbacks.
- ``book.loadavg``: the 1-minute load average when the suite started (the machine is shared).
"""

from __future__ import annotations

import os
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from .measure import median_rate

__all__ = ["bench_book"]

BATCH = 1 << 16


def _itch_stream(path: Path) -> np.ndarray:
    from .capture import read_frames
    from .frames import batch_messages
    return np.frombuffer(b"".join(struct.pack(">H", len(m)) + m for m in batch_messages(read_frames(path))),
                         np.uint8)


def bench_book(messages: int, log: TextIO | None = None, repeats: int = 5) -> dict[str, float]:
    from itch_book._core import Session

    from .book import Books
    from .decode import decode_file
    from .gen import GenConfig, generate_to_file
    from .select import select
    from .strategy import EventStrategy, Strategy, run

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="wiretick-bench-book-") as tmp:
        cap = Path(tmp) / "feed.pcap"
        generate_to_file(cap, GenConfig(messages=messages, symbols=500, seed=1))
        ticks = decode_file(cap).ticks
        stream = _itch_stream(cap)

    def ours() -> tuple[float, float, int]:
        books = Books()
        books.reserve(BATCH)                             # as itch-book's reserve(): outside the timing
        rows = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(ticks), BATCH):
            rows += len(books.update(ticks[i:i + BATCH], copy=False).bbo)
        return len(ticks) / (time.perf_counter() - t0), len(ticks) / (time.process_time() - c0), rows

    def theirs() -> tuple[float, float, int]:
        s = Session(tables=["bbo"], depth=0, symbols=[])
        s.reserve(messages + 16)
        t0, c0 = time.perf_counter(), time.process_time()
        s.feed(stream)
        rows = len(s.take_bbo()["seq"])
        return messages / (time.perf_counter() - t0), messages / (time.process_time() - c0), rows

    Books().update(ticks[:BATCH], copy=False)            # compiles (or loads) the pass
    a, b, ca, cb = [], [], [], []
    for _ in range(repeats):
        ra, rca, na = ours()
        rb, rcb, nb = theirs()
        if na != nb:
            raise AssertionError(f"BBO rows differ: ours {na}, itch-book {nb}")
        a.append(ra)
        b.append(rb)
        ca.append(rca)
        cb.append(rcb)
    if log:
        print(f"book: {statistics.median(a) / 1e6:.1f} M msg/s, itch-book {statistics.median(b) / 1e6:.1f} M msg/s "
              f"(load {load:.1f})", file=log)

    def rate(fn, n=len(ticks)) -> float:
        def run() -> int:
            fn()
            return n
        return median_rate(run, repeats)

    adds = ord("A")
    select(ticks[:10], types="A")
    out = np.zeros(len(ticks), ticks.dtype)
    out.view(np.uint8)[::4096] = 1
    sel = rate(lambda: select(ticks, types="A"))
    sel_into = rate(lambda: select(ticks, types="A", out=out))
    plain = rate(lambda: ticks[ticks["msg_type"] == adds])

    class BatchCount(Strategy):
        def __init__(self):
            self.e = self.b = 0

        def on_batch(self, t, update, books):
            self.e += int(np.count_nonzero(t["msg_type"] == ord("E")))
            self.b += len(update.bbo)

    class EventCount(EventStrategy):
        def __init__(self):
            self.e = self.b = 0

        def on_E(self, tick, books):
            self.e += 1

        def on_bbo(self, row, books):
            self.b += 1

    part = ticks[:min(len(ticks), 200_000)]
    run(EventCount(), part[:1000])
    bs, es = BatchCount(), EventCount()
    batch_rate = rate(lambda: run(bs, part), len(part))
    event_rate = rate(lambda: run(es, part), len(part))
    if (bs.e, bs.b) != (es.e, es.b):
        raise AssertionError("the batch and event strategies saw different events")
    if log:
        print(f"select: {sel / 1e6:.0f} M ticks/s ({sel_into / 1e6:.0f} M into a reused array), numpy mask "
              f"{plain / 1e6:.0f} M/s; batch style {batch_rate / 1e6:.1f} M ticks/s, event style "
              f"{event_rate / 1e6:.2f} M ticks/s", file=log)
    return {
        "book.msgs_per_s": round(statistics.median(a)),
        "itchbook.msgs_per_s": round(statistics.median(b)),
        "book.over_itchbook": round(statistics.median(a) / statistics.median(b), 2),
        "book.msgs_per_cpu_s": round(statistics.median(ca)),
        "itchbook.msgs_per_cpu_s": round(statistics.median(cb)),
        "book.over_itchbook_cpu": round(statistics.median(ca) / statistics.median(cb), 2),
        "book.messages": messages,
        "book.select_ticks_per_s": round(sel),
        "book.select_into_ticks_per_s": round(sel_into),
        "book.mask_ticks_per_s": round(plain),
        "book.select_over_mask": round(sel / plain, 2),
        "book.batch_style_ticks_per_s": round(batch_rate),
        "book.event_style_ticks_per_s": round(event_rate),
        "book.loadavg": round(load, 2),
    }
