"""``wiretick bench sim``: every figure present, measured and consistent with the others (not timed)."""

from __future__ import annotations

import io

import pytest

from wiretick.sim.bench import bench_sim
from wiretick.sim.cocotb_run import simulator_available


def test_bench_sim_figures():
    if simulator_available("verilator"):
        pytest.skip(simulator_available("verilator"))
    log = io.StringIO()
    f = bench_sim(3_000, log, small=1_000, tiny=300)
    assert f["sim.fast.messages"] == 3_000
    for name in ("sim.cycles_per_s.fast", "sim.msgs_per_s.fast", "sim.cycles_per_s.cocotb",
                 "sim.cycles_per_s.cocotb_python_transactors", "sim.cycles_per_s.amaranth"):
        assert f[name] > 0, name
    # Cycles outnumber messages: a message is at least 12 bytes of an 8-byte beat.
    assert f["sim.cycles_per_s.fast"] > f["sim.msgs_per_s.fast"]
    assert f["sim.fast_over_cocotb"] == round(f["sim.cycles_per_s.fast"] / f["sim.cycles_per_s.cocotb"], 1)
    assert f["sim.fast_over_amaranth"] == round(f["sim.cycles_per_s.fast"] / f["sim.cycles_per_s.amaranth"], 1)
    assert "fast:" in log.getvalue() and "cocotb:" in log.getvalue() and "amaranth:" in log.getvalue()
