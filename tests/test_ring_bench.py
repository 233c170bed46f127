"""The host benchmark runs and reports every figure (tiny sizes: a smoke test, not a measurement)."""

from __future__ import annotations

import pytest

from wiretick.host.bench_host import bench_host

FIGURES = {"host.ticks_per_s.zero_copy", "host.ticks_per_s.zero_copy_no_book", "host.ticks_per_s.zero_copy_numpy",
           "host.ticks_per_s.copy",
           "host.zero_copy_over_copy", "host.mem_read_gbps", "host.latency_ns.p50", "host.latency_ns.p99",
           "host.latency_realtime", "host.ring.write_ticks_per_s", "host.messages"}


def test_bench_host_reports_every_figure():
    figures = bench_host(5_000, latency_samples=500, realtime=False, mem_bytes=16 << 20)
    assert set(figures) == FIGURES
    assert all(v > 0 for k, v in figures.items() if k != "host.latency_realtime")
    assert figures["host.latency_ns.p50"] <= figures["host.latency_ns.p99"]
    assert figures["host.latency_realtime"] == 0
