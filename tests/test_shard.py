"""Sharded replay on a local Dask cluster equals the one-device run exactly.

Every tick field but ``ts_rx`` and every counter (summed over shards), also
when a shard boundary falls inside a gap, on a duplicate (the B copy), on a
heartbeat and on a session change: the hand-made captures put a boundary
before every frame.  The cluster (two worker processes) is shared by the module.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.capture import FrameBatch, read_frames, write_pcap, write_pcapng
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.frames import encode_message, make_frame
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.sim import fast
from wiretick.sim.run import ticks_equal

pytest.importorskip("distributed")

from wiretick.sim.shard import (ShardError, Shard, _gather, _shard_task, dask_client,  # noqa: E402
                                plan_shards, sharded_sim)


@pytest.fixture(scope="module")
def client():
    with dask_client(2) as c:
        yield c


@pytest.fixture(scope="module")
def sim():
    with fast.FastSim() as s:
        yield s


def _msgs(first: int, n: int) -> list[bytes]:
    return [encode_message("A" if i % 2 else "D", timestamp=first + i, order_ref=first + i) for i in range(n)]


def _write(tmp_path: Path, name: str, frames: list[bytes]) -> Path:
    path = tmp_path / f"{name}.pcap"
    write_pcap(path, FrameBatch.from_frames(frames, ts_ns=np.arange(len(frames), dtype=np.uint64) * 1000))
    return path


def _same_as_one_device(path: Path, tmp_path: Path, client, sim, **kw) -> dict:
    out = tmp_path / "sharded.npy"
    res = sharded_sim(path, out, client=client, log=None, **kw)
    one = fast.simulate(path, sim=sim)
    got = np.load(out)
    assert ticks_equal(got, one.ticks)
    assert res.counters == one.counters
    assert res.counters == decode_file(path).counters
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []     # no temporary left
    return res.counters


CASES = {
    # 1..3, 4..6, then 10..12: 7..9 are missing across the boundary before frame 2
    "inside-a-gap": ([(1, 3, {}), (4, 3, {}), (10, 3, {}), (13, 2, {})], "gaps"),
    # the A copy, then the B copy of the same packets (whole and overlapping)
    "on-a-duplicate": ([(1, 3, {}), (1, 3, {}), (4, 4, {}), (2, 4, {}), (8, 2, {})], "duplicates"),
    # heartbeats behind, at and ahead of the expected number (the last reports a gap), end of session
    "on-a-heartbeat": ([(1, 3, {}), (4, 0, {"heartbeat": True}), (9, 0, {"heartbeat": True}), (9, 2, {}),
                        (5, 0, {"heartbeat": True}), (11, 0, {"end_of_session": True})], "heartbeats"),
    # a second session, then back to the first (each switch restarts tracking)
    "on-a-session-change": ([(1, 3, {}), (1, 2, {"session": b"OTHERSESS1"}), (4, 2, {}), (3, 2, {"session": b"OTHERSESS1"})],
                            "sessions"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_boundary_before_every_frame(case, tmp_path, client, sim):
    spec, feature = CASES[case]
    frames = [make_frame(_msgs(s, n), seq=s, **kw) for s, n, kw in spec]
    path = _write(tmp_path, case, frames)
    counters = _same_as_one_device(path, tmp_path, client, sim, boundaries=list(range(1, len(frames))))
    assert counters[feature] > (1 if feature == "sessions" else 0)


def test_generated_ab_feed_with_gaps_and_all_types(tmp_path, client, sim):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=4_000, symbols=12, seed=9, ab=True, gap_rate=0.03, all_types=True))
    counters = _same_as_one_device(path, tmp_path, client, sim, shard_frames=97)
    assert counters["duplicates"] > 0 and counters["gaps"] > 0
    assert all(counters[f"msg_{t}"] > 0 for t in "SRHYLVWKJhAFECXDUPQBINO")


def test_no_sequence_check(tmp_path, client, sim):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=1_500, symbols=5, seed=2, ab=True, gap_rate=0.05))
    out = tmp_path / "s.npy"
    config = DecodeConfig(sequence_check=False)
    res = sharded_sim(path, out, config, client=client, log=None, shards=3)
    one = fast.simulate(path, config, sim=sim)
    assert ticks_equal(np.load(out), one.ticks) and res.counters == one.counters


def test_a_shard_that_fails_twice_is_one_error(tmp_path, client):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=500, symbols=5, seed=2))
    plan = plan_shards(path, shards=1)
    s = plan.shards[0]
    beyond = Shard(0, s.frames + 10, 5, s.state, 0, {})          # frames the capture does not have
    with pytest.raises(ShardError, match=r"failed twice.*frames up to"):
        list(_gather(client, _shard_task, [beyond], lambda x: "shard 0", log=None, what="t",
                     capture=str(path), config=DecodeConfig(), output=None, compare=False))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wiretick.host.cli", *args], capture_output=True, text=True,
                          timeout=900)     # a first run builds the model (minutes on a loaded machine)


def test_cli_unreachable_scheduler_and_bad_capture(tmp_path):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=300, symbols=5, seed=1))
    out = tmp_path / "out.npy"
    r = _cli("sim", str(path), "-o", str(out), "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and "cannot reach the Dask scheduler" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(path.read_bytes()[:-7])
    r = _cli("sim", str(cut), "-o", str(out), "--workers", "2")
    assert r.returncode == 2 and "byte" in r.stderr
    assert list(tmp_path.iterdir()) == [path, cut] or sorted(tmp_path.iterdir()) == sorted([path, cut])


def test_cli_workers_2_equals_workers_1(tmp_path):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=2_000, symbols=8, seed=4, ab=True, gap_rate=0.02))
    r2 = _cli("sim", str(path), "-o", str(tmp_path / "two.npy"), "--workers", "2")
    assert r2.returncode == 0, r2.stderr
    r1 = _cli("sim", str(path), "-o", str(tmp_path / "one.npy"))
    assert r1.returncode == 0, r1.stderr
    assert ticks_equal(np.load(tmp_path / "two.npy"), np.load(tmp_path / "one.npy"))
    # the counters summary on stderr is the same
    tail = r1.stderr.split("wrote")[0].strip().splitlines()[-6:]
    assert tail and all(line in r2.stderr for line in tail)


def test_pcap_shards_start_at_their_record_and_pcapng_shards_walk(tmp_path, client, sim):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=1_500, symbols=5, seed=6, ab=True, gap_rate=0.02))
    plan = plan_shards(path, shards=3)
    assert all(s.record is not None for s in plan.shards) and plan.shards[0].record == 24
    ng = tmp_path / "feed.pcapng"
    write_pcapng(ng, read_frames(path))
    assert all(s.record is None for s in plan_shards(ng, shards=3).shards)
    _same_as_one_device(ng, tmp_path, client, sim, shards=3)
