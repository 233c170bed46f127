"""`wiretick bench book` runs end to end on a small feed and names every figure BENCHMARKS.md quotes."""

from __future__ import annotations

import pytest

pytest.importorskip("itch_book")


def test_bench_book_names_its_figures():
    from wiretick.host.bench import SUITES
    from wiretick.host.bench_book import bench_book
    assert "book" in SUITES
    figures = bench_book(20_000, repeats=1)
    for name in ("book.msgs_per_s", "itchbook.msgs_per_s", "book.over_itchbook", "book.msgs_per_cpu_s",
                 "itchbook.msgs_per_cpu_s", "book.over_itchbook_cpu", "book.select_ticks_per_s",
                 "book.select_into_ticks_per_s", "book.mask_ticks_per_s", "book.select_over_mask",
                 "book.batch_style_ticks_per_s", "book.event_style_ticks_per_s", "book.loadavg"):
        assert figures[name] > 0, name
    assert figures["book.messages"] == 20_000
