"""The host and decode benchmarks run and report every figure (tiny sizes: a smoke test, not a measurement)."""

from __future__ import annotations


from wiretick.host.bench import bench_decode
from wiretick.host.bench_host import bench_host

FIGURES = {"host.ticks_per_s.zero_copy", "host.ticks_per_s.zero_copy_no_book", "host.ticks_per_s.zero_copy_numpy",
           "host.ticks_per_s.copy", "host.zero_copy_over_copy", "host.ticks_per_s.per_tick_python",
           "host.ticks_per_s.zero_copy_streaming", "host.read_gbps.cold", "host.read_gbps.hot",
           "host.streaming.zero_copy_over_cold_read", "host.hot.zero_copy_over_hot_read",
           "host.latency_ns.p50", "host.latency_ns.p99", "host.latency_ns.p99_9", "host.latency_realtime",
           "host.loadavg_1m", "host.ring.write_ticks_per_s", "host.messages"}


def test_bench_host_reports_every_figure(tmp_path):
    png = tmp_path / "lat.png"
    figures = bench_host(5_000, latency_samples=500, realtime=False, mem_bytes=16 << 20, streaming_slots=1 << 12,
                         plot=png)
    assert set(figures) == FIGURES
    assert all(v > 0 for k, v in figures.items() if k not in ("host.latency_realtime", "host.loadavg_1m"))
    assert figures["host.latency_ns.p50"] <= figures["host.latency_ns.p99"] <= figures["host.latency_ns.p99_9"]
    assert figures["host.latency_realtime"] == 0
    assert figures["host.zero_copy_over_copy"] == round(
        figures["host.ticks_per_s.zero_copy"] / figures["host.ticks_per_s.copy"], 2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["lat.png"]


def test_bench_decode_reports_every_peer():
    figures = bench_decode(20_000)
    for name in ("decode", "itchfeed", "itchcpp", "itch_book"):
        assert figures[f"{name}.msgs_per_s"] > 0
    best = max(figures[f"{n}.msgs_per_s"] for n in ("itchfeed", "itchcpp", "itch_book"))
    assert figures["decode.over_best_peer"] == round(figures["decode.msgs_per_s"] / best, 2)
    assert figures["decode.best_peer"] in ("itchfeed", "itchcpp", "itch_book")
