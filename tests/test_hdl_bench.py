"""`bench_parser` measures line rate and per-type latency in the simulator."""

from wiretick.hdl.parser import LATENCY
from wiretick.host.contract.formats import MESSAGES
from wiretick.sim.parser_bench import bench_parser, latency_frames


def test_latency_frames_cover_every_lane_of_every_type():
    _, where = latency_frames()
    seen = {(code, last % 8) for _, last, code in where.values()}
    assert seen == {(m.code, lane) for m in MESSAGES for lane in range(8)}


def test_bench_parser_figures():
    figures = bench_parser()
    assert figures["parser.line_rate"] == 1.0
    assert figures["parser.latency_cycles"] == LATENCY <= 4
    for m in MESSAGES:
        assert figures[f"parser.latency_cycles.{m.code}"] <= figures["parser.latency_cycles"]
