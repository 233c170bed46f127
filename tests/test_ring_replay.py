"""Replaying captures into a ring: what a reader gets equals the reference decoder's ticks."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.cli import main
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.device import Device, DeviceError
from wiretick.host.replay import ReplayBackend, cmd_replay
from wiretick.host.contract.formats import Flag
from wiretick.host.contract.ring import RingError
from wiretick.host.ring import Ring, create_ring, ring_path
from wiretick.host.strategy import ScalarVwap, Vwap


@pytest.fixture
def name():
    n = f"wiretick-test-replay-{uuid.uuid4().hex[:12]}"
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


def read_all(name: str) -> np.ndarray:
    r = Ring(name, start=1)
    parts = [b.copy() for b in r.batches(timeout=5)]
    assert r.finished and r.lost == 0
    return np.concatenate(parts) if parts else np.zeros(0, r._ticks.dtype)


def assert_same(got: np.ndarray, ref: np.ndarray) -> None:
    g = got.copy()
    g["flags"] &= np.uint16(Flag.MASK)           # lap tags are the ring's, not the decoder's
    assert len(g) == len(ref)
    assert np.array_equal(g, ref)


def config_for(path: Path) -> DecodeConfig:
    # the sanitized captures have zeroed IPv4 checksums and sequence numbers
    if path.name.startswith("sanitized-"):
        return DecodeConfig(check_ip_checksum=False, sequence_check=False)
    return DecodeConfig()


def test_replay_shared_capture(name, shared_capture):
    cfg = config_for(shared_capture)
    ref = decode_file(shared_capture, config=cfg)
    counters = cmd_replay(shared_capture, name, nslots=1024, config=cfg, log=None)
    assert counters == ref.counters
    assert_same(read_all(name), ref.ticks)


def test_replay_generated_capture_through_a_small_ring(name, tmp_path):
    """A generated feed 4x larger than the ring, read back in full by a reader in another process."""
    import multiprocessing as mp
    from wiretick.host import gen
    cap = tmp_path / "gen.pcap"
    gen.generate_to_file(cap, gen.GenConfig(messages=60_000, symbols=40, seed=7, all_types=True, gap_rate=0.01))
    ref = decode_file(cap)
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=cmd_replay, args=(cap, name), kwargs=dict(nslots=1 << 14, rate=300_000, log=None))
    proc.start()
    try:
        r = None
        for _ in range(2000):                    # wait for the replay to create the ring
            if ring_path(name).exists():
                try:
                    r = Ring(name, start=1)
                    break
                except RingError:
                    pass
            proc.join(0.005)
        assert r is not None, "the replay never created its ring"
        parts = [b.copy() for b in r.batches(timeout=10)]
    finally:
        proc.join(30)
    assert proc.exitcode == 0
    assert r.lost == 0, f"reader lapped: {r.last_lap}"
    got = np.concatenate(parts)
    assert_same(got, ref.ticks)
    # and the VWAP strategy reads the same from the ring as from the decoder's arrays
    v_ring, v_ref, scalar = Vwap(), Vwap(), ScalarVwap()
    for p in parts:
        v_ring.update(p)
    v_ref.update(ref.ticks)
    raw = got.tobytes()
    for i in range(0, len(raw), 64):             # the copying path: one tick at a time
        scalar.update_one(raw[i:i + 64])
    assert v_ring.result() == v_ref.result() and v_ring.unpriced == v_ref.unpriced
    assert v_ring.result().keys() == scalar.result().keys() and v_ring.unpriced == scalar.unpriced
    for loc, (vol, notional) in scalar.result().items():
        assert v_ring.result()[loc][0] == vol and v_ring.result()[loc][1] == pytest.approx(notional, rel=1e-12)


def test_cli_replay(name, shared_capture, capsys):
    args = ["replay", str(shared_capture), "--ring", name, "--nslots", "256"]
    if shared_capture.name.startswith("sanitized-"):
        args += ["--no-ip-checksum", "--no-sequence-check"]
    assert main(args) == 0
    assert "replayed" in capsys.readouterr().err
    assert_same(read_all(name), decode_file(shared_capture, config=config_for(shared_capture)).ticks)
    assert run(args + ["--no-overwrite"]) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize("extra,message", [
    (["--nslots", "100"], "power of two"),
    (["--rate", "0"], "positive"),
    (["--rate", "5", "--capture-timing"], "exclusive"),
])
def test_cli_replay_errors(name, tmp_path, extra, message, capsys):
    cap = tmp_path / "x.pcap"
    cap.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))   # empty, valid pcap
    assert run(["replay", str(cap), "--ring", name] + extra) == 2
    assert message in capsys.readouterr().err
    assert not ring_path(name).exists()


def test_cli_replay_bad_capture(name, tmp_path, capsys):
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"\x00" * 64)
    assert main(["replay", str(bad), "--ring", name]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert not ring_path(name).exists()


def run(argv: list[str]) -> int:
    """main()'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as e:
        return int(e.code)


def empty_pcap(tmp_path: Path) -> Path:
    cap = tmp_path / "x.pcap"
    cap.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
    return cap


def test_cli_replay_ring_is_a_name(tmp_path, capsys):
    """``--ring ../x`` does not climb out of /dev/shm; a path goes through ``--ring-path``."""
    cap = empty_pcap(tmp_path)
    for bad in ("../x", f"{tmp_path}/r", "a/b", ".."):
        assert run(["replay", str(cap), "--ring", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a name" in err and "--ring-path" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pcap"]
    assert run(["replay", str(cap), "--ring-path", str(tmp_path / "r"), "--nslots", "64"]) == 0
    assert Ring(tmp_path / "r").finished


def test_cli_replay_never_replaces_a_file_that_is_not_a_ring(tmp_path, capsys):
    cap = empty_pcap(tmp_path)
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n")
    for extra in ([], ["--force"]):
        assert run(["replay", str(cap), "--ring-path", str(victim), "--nslots", "64"] + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a wiretick ring" in err
        assert victim.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "x.pcap"]


def test_cli_replay_replaces_a_ring_in_use_only_with_force(name, tmp_path, capsys):
    cap = empty_pcap(tmp_path)
    create_ring(name, 64)
    reader = Ring(name)
    assert run(["replay", str(cap), "--ring", name, "--nslots", "128"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use (mapped or open by process {os.getpid()}" in err and "--force" in err
    assert Ring(name).nslots == 64
    assert run(["replay", str(cap), "--ring", name, "--nslots", "128", "--force"]) == 0
    assert Ring(name).nslots == 128 and reader.nslots == 64


def test_replay_failing_midway_removes_its_ring(name, tmp_path):
    """A capture that turns out truncated past its header: error, and the ring the replay made is gone."""
    from wiretick.host import gen
    from wiretick.host.capture import CaptureError
    cap = tmp_path / "feed.pcap"
    gen.generate_to_file(cap, gen.GenConfig(messages=5000, symbols=5, seed=3))
    raw = cap.read_bytes()
    cap.write_bytes(raw[:len(raw) * 2 // 3] + b"\xff" * 7)
    with pytest.raises(CaptureError):
        cmd_replay(cap, name, nslots=1024, log=None)
    assert not ring_path(name).exists()


def test_device_ring_name_is_a_name(name, tmp_path):
    cap = empty_pcap(tmp_path)
    victim = Path("/dev/shm", name)
    victim.write_text("not a ring")
    with Device(ReplayBackend(cap, dma_dir=tmp_path)) as dev:
        for bad in ("../x", "a/b", ".."):
            with pytest.raises(RingError, match="not a name"):
                dev.setup_ring(64, name=bad)
    with Device(ReplayBackend(cap)) as dev:
        with pytest.raises(RingError, match="not a wiretick ring"):
            dev.setup_ring(64, name=name)
    assert victim.read_text() == "not a ring"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.pcap"]


def test_snapshot_does_not_hang_on_a_dead_worker(name, tmp_path):
    """A worker that dies holding its counter lock: a register read raises within the bound, naming it."""
    from wiretick.host import gen
    from wiretick.host import replay as R
    cap = tmp_path / "feed.pcap"
    gen.generate_to_file(cap, gen.GenConfig(messages=20_000, symbols=5, seed=3))
    with Device(ReplayBackend(cap, rate=2000)) as dev:
        dev.setup_ring(1 << 12, name=name)
        dev.start()
        be = dev.backend
        pid = be._proc.pid
        os.kill(pid, signal.SIGKILL)
        be._proc.join(10)
        be._q[R._LIVE_GEN // 8] |= 1                   # as a death in the middle of an update leaves it
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=f"replay worker \\(pid {pid}.*died while publishing"):
            dev.snapshot()
        assert time.monotonic() - t0 < 1.0
        dev.stop()                                      # the lock is released once the worker is reaped
        assert "died" in be.error() or "-9" in be.error()


def test_wait_done_does_not_wait_for_a_killed_worker(name, tmp_path):
    from wiretick.host import gen
    cap = tmp_path / "feed.pcap"
    gen.generate_to_file(cap, gen.GenConfig(messages=20_000, symbols=5, seed=3))
    with Device(ReplayBackend(cap, rate=2000)) as dev:
        dev.setup_ring(1 << 12, name=name)
        dev.start()
        pid = dev.backend._proc.pid
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match=f"pid {pid}.*died with exit code -9"):
            dev.wait_done()                              # no timeout: it must not need one
        assert time.monotonic() - t0 < 5
