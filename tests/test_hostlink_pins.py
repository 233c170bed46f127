"""The acceptance test of the board design: the whole board top from its pins, under Verilator and cocotb.

Market data enters PHY 0's RGMII receive pins (DDR waveforms with gaps, some frames
with a wrong FCS); the host's Device API programs the board through PHY 1's
receive pins; PHY 1's transmit pins are decoded back into frames whose UDP payloads
the host link backend applies to the ring a Ring reader follows.  The ticks must
equal the reference feed handler's (ts_rx aside), the counters too, and the link
must have lost, refused and mangled nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.capture import FrameBatch, write_pcapng
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.ring import without_lap_tags
from wiretick.sim.cocotb_run import simulator_available

pytestmark = pytest.mark.slow

BOARD = "versa-ecp5-5g"
CHECKSUM_OFF = DecodeConfig(check_ip_checksum=False)


def _config_dict(c: DecodeConfig) -> dict:
    return {"check_ip_checksum": c.check_ip_checksum, "sequence_check": c.sequence_check, "port": c.port,
            "ip_dst": c.ip_dst}


def _generated(path: Path) -> Path:
    """A small all-types feed (two VLAN tags, A/B copies, gaps), 3% of its frames flagged with a bad FCS."""
    from wiretick.host.gen import GenConfig, generate
    gen = generate(GenConfig(messages=400, symbols=4, seed=5, vlan=(100, 141), ab=True, gap_rate=0.03,
                             all_types=True, max_messages_per_packet=16))
    rng = random.Random(5)
    frames = [bytes(gen.frame(i)) for i in range(len(gen))]
    bad = [rng.random() < 0.03 for _ in frames]
    bad[3] = True
    write_pcapng(path, FrameBatch.from_frames(frames, ts_ns=[int(t) for t in gen.ts_ns], bad=bad))
    return path


def test_board_from_its_pins_matches_the_reference(captures_dir, tmp_path):
    why = simulator_available("verilator")
    if why:
        pytest.skip(why)
    from wiretick.sim.pins import run_pins

    spec = []
    for cap in sorted(captures_dir.glob("*.pcap")):
        spec.append((cap.stem, cap, CHECKSUM_OFF if cap.name.startswith("sanitized") else DecodeConfig(), 1 << 12))
    spec.append(("generated", _generated(tmp_path / "gen.pcapng"), DecodeConfig(), 64))
    cases = [{"name": n, "capture": str(c), "config": _config_dict(cfg), "nslots": ns, "ring": f"wtpins-{i}"}
             for i, (n, c, cfg, ns) in enumerate(spec)]
    results = run_pins(BOARD, cases, dma_dir=tmp_path)

    problems = []
    for name, cap, cfg, nslots in spec:
        got = results[name]
        ref = decode_file(cap, config=cfg)
        r = got["result"]
        for key in ("reader_lost", "bad_frames_from_board", "short_gaps", "bad_clock"):
            if r[key]:
                problems.append(f"{name}: {key} = {r[key]} ({r.get('last_bad')})")
        if r["link_error"]:
            problems.append(f"{name}: link: {r['link_error']}")
        if r["regs"]["DMA_DROPPED"] or r["regs"]["DMA_BUS_ERRORS"]:
            problems.append(f"{name}: DMA dropped/bus errors: {r['regs']}")
        diff = {k: (got["counters"][k], v) for k, v in ref.counters.items() if got["counters"].get(k) != v}
        if diff:
            problems.append(f"{name}: counters (board, reference) differ: {diff}")
        ticks = without_lap_tags(got["ticks"])
        if len(ticks) != len(ref.ticks):
            problems.append(f"{name}: {len(ticks)} ticks, the reference {len(ref.ticks)}")
            continue
        for field in ref.ticks.dtype.names:
            if field != "ts_rx" and not np.array_equal(ticks[field], ref.ticks[field]):
                k = int(np.flatnonzero(ticks[field] != ref.ticks[field])[0])
                problems.append(f"{name}: tick {k} {field}: board {ticks[field][k]}, reference {ref.ticks[field][k]}")
    assert not problems, "\n".join(problems)
    assert sum(len(results[n]["ticks"]) for n, *_ in spec if n != "generated") > 50
    gen = results["generated"]
    assert gen["counters"]["bad_fcs"] > 0 and len(gen["ticks"]) > 3 * 64, "the feed should have laps and bad frames"
    assert gen["result"]["link"]["packets"] > 0
