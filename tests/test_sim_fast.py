"""The fast replay engine (Verilator + C++ harness) and ``wiretick sim`` against the reference decoder.

Every comparison: the ticks a ring reader saw equal ``decode_file``'s on every
field but ``ts_rx``, every counter equal, the guard zones around the ring
untouched and no write outside the ring's slots and shadow-head word.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.capture import FrameBatch, write_pcap, write_pcapng
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.contract.formats import Flag
from wiretick.host.frames import encode_message, make_frame, random_frame
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.sim import fast
from wiretick.sim.run import ticks_equal


@pytest.fixture(scope="module")
def sim():
    """One simulated device for the module (each run programs it afresh through Device)."""
    with fast.FastSim() as s:
        yield s


def check(path: Path, sim, config: DecodeConfig | None = None, **kw) -> fast.SimRun:
    config = config or DecodeConfig()
    run = fast.simulate(path, config, sim=sim, **kw)
    ref = decode_file(path, config=config)
    assert run.counters == ref.counters
    assert len(run.ticks) == len(ref.ticks)
    for name in ref.ticks.dtype.names:
        if name != "ts_rx":
            np.testing.assert_array_equal(run.ticks[name], ref.ticks[name], err_msg=name)
    assert run.guards_intact
    assert run.stats["outside"] == 0 and run.stats["unmapped"] == 0 and run.stats["guard_hits"] == 0
    assert run.stats["protocol_errors"] == 0 and run.stats["slverr"] == 0
    assert run.reader_lost == 0
    return run


@pytest.mark.parametrize("csum", [True, False], ids=["ip-checksum", "no-ip-checksum"])
def test_shared_capture(shared_capture, sim, csum):
    run = check(shared_capture, sim, DecodeConfig(check_ip_checksum=csum))
    if not csum:
        assert len(run.ticks) > 0      # the sanitized captures' ticks appear only with the check off


def test_generated_feed_with_vlan_gaps_duplicates(tmp_path, sim):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=20_000, symbols=20, seed=5, vlan=7, ab=True, gap_rate=0.02,
                                     all_types=True))
    run = check(path, sim)
    c = run.counters
    assert c["duplicates"] > 0 and c["gaps"] > 0
    assert all(c[f"msg_{t}"] > 0 for t in "SRHYLVWKJhAFECXDUPQBINO")


def _corrupted(tmp_path: Path, seed: int) -> Path:
    """Random frames (truncations, bad lengths, unknown types, runts, garbage) with bad-FCS marks, as pcapng."""
    rng = random.Random(seed)
    frames = [random_frame(rng) for _ in range(300)]
    bad = np.array([rng.random() < 0.08 for _ in frames])
    path = tmp_path / f"corrupt-{seed}.pcapng"
    write_pcapng(path, FrameBatch.from_frames(frames, ts_ns=np.arange(len(frames), dtype=np.uint64) * 1000, bad=bad))
    return path


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("seq", [True, False], ids=["seq", "no-seq"])
def test_corrupted_frames(tmp_path, sim, seed, seq):
    run = check(_corrupted(tmp_path, seed), sim, DecodeConfig(check_ip_checksum=seed == 1, sequence_check=seq))
    assert run.counters["frames"] == 300


def test_bad_fcs_gives_the_same_abort_event(tmp_path, sim):
    """A frame the MAC flags bad after it released ticks: both name the same seq range to discard."""
    msgs = [encode_message("D", timestamp=i, order_ref=i) for i in range(1, 6)]
    frames = [make_frame(msgs, seq=1), make_frame(msgs, seq=6), make_frame(msgs, seq=6)]
    path = tmp_path / "bad.pcapng"
    write_pcapng(path, FrameBatch.from_frames(frames, ts_ns=np.arange(3, dtype=np.uint64), bad=[False, True, False]))
    run = check(path, sim)
    aborts = run.ticks[(run.ticks["flags"] & int(Flag.EVENT_ABORT)) != 0]
    assert len(aborts) == 1 and run.counters["aborts"] == 1


def test_port_and_ip_filter(tmp_path, sim):
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=2_000, symbols=5, seed=3, ab=True))
    check(path, sim, DecodeConfig(port=26400))        # not the feed's port: everything dropped
    ref = decode_file(path)
    assert ref.counters["ticks"] > 0


def test_large_generated_capture(tmp_path, sim):
    """100k+ generated messages through the whole device (the issue's 1M-message run is `wiretick sim`)."""
    path = tmp_path / "big.pcap"
    generate_to_file(path, GenConfig(messages=120_000, symbols=200, seed=11, gap_rate=0.001))
    run = check(path, sim)
    assert run.counters["messages"] >= 100_000


def test_stalled_bus_loses_nothing(tmp_path, sim):
    """Memory that takes a write one cycle in four: the DMA queue absorbs it at this rate."""
    path = tmp_path / "feed.pcap"
    generate_to_file(path, GenConfig(messages=3_000, symbols=10, seed=8))
    sim.set_bus(b_latency=20, ready_mask=0x1111_1111_1111_1111)
    try:
        check(path, sim)
    finally:
        sim.set_bus()


def test_overflow_is_dropped_counted_and_announced(tmp_path, sim):
    """Memory much slower than the feed: ticks are dropped, and drop events account for every one."""
    frames = [make_frame([encode_message("D", timestamp=k, order_ref=k) for k in range(70)], seq=1 + 70 * i)
              for i in range(40)]
    path = tmp_path / "dense.pcap"
    write_pcap(path, FrameBatch.from_frames(frames, ts_ns=np.arange(len(frames), dtype=np.uint64)))
    sim.set_bus(b_latency=4, ready_mask=1 << 5)       # one write in 64 cycles
    try:
        run = fast.simulate(path, sim=sim)
    finally:
        sim.set_bus()
    ref = decode_file(path)
    events = run.ticks[(run.ticks["flags"] & int(Flag.EVENT_DROP)) != 0]
    assert run.snapshot["DMA_DROPPED"] > 0 and len(events) > 0
    data = run.ticks[(run.ticks["flags"] & int(Flag.EVENT_DROP)) == 0]
    # each drop event carries in `ref2` how many parser ticks it stands for
    assert len(data) + int(events["ref2"].sum()) == len(ref.ticks)
    assert run.guards_intact and run.stats["outside"] == 0


# ---------------------------------------------------------------- the build cache

def test_build_is_cached(sim):
    t0 = time.perf_counter()
    path = fast.build_library()
    assert time.perf_counter() - t0 < 5.0
    assert path == sim.lib_path


def test_hash_changes_with_inputs(tmp_path):
    from wiretick.sim.build import hash_inputs
    f = tmp_path / "a.v"
    f.write_text("module a; endmodule\n")
    h1 = hash_inputs(f, ["-O3"])
    assert hash_inputs(f, ["-O3"]) == h1
    assert hash_inputs(f, ["-O2"]) != h1
    f.write_text("module a; wire x; endmodule\n")
    assert hash_inputs(f, ["-O3"]) != h1


# ---------------------------------------------------------------- wiretick sim

def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "wiretick.host.cli", *args], capture_output=True, text=True)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def test_cli_sim_equals_decode(tmp_path):
    cap = tmp_path / "feed.pcap"
    generate_to_file(cap, GenConfig(messages=5_000, symbols=10, seed=2, ab=True, gap_rate=0.01))
    _cli("sim", str(cap), "-o", str(tmp_path / "sim.npy"), "--no-ip-checksum")
    _cli("decode", str(cap), "-o", str(tmp_path / "ref.npy"), "--no-ip-checksum")
    assert ticks_equal(np.load(tmp_path / "sim.npy"), np.load(tmp_path / "ref.npy"))


def test_cli_sim_refuses_bad_input_before_running(tmp_path):
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    res = _cli("sim", str(junk), "-o", str(tmp_path / "o.npy"), check=False)
    assert res.returncode == 2 and "byte 0" in res.stderr
    cap = tmp_path / "feed.pcap"
    generate_to_file(cap, GenConfig(messages=100, symbols=2))
    res = _cli("sim", str(cap), "-o", str(tmp_path / "o.npy"), "--simulator", "icarus", check=False)
    assert res.returncode == 2 and "--engine cocotb" in res.stderr
    res = _cli("sim", str(cap), "-o", str(tmp_path / "nodir" / "o.npy"), check=False)
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = _cli("sim", str(cap), "-o", str(tmp_path / "o.npy"), "--nslots", "1000", check=False)
    assert res.returncode == 2 and "power of two" in res.stderr
    res = _cli("sim", str(cap), "-o", str(tmp_path / "o.npy"), "--waves", str(tmp_path / "nodir" / "w.fst"),
               check=False)
    assert res.returncode == 2 and "waves directory" in res.stderr and "does not exist" in res.stderr
    assert not (tmp_path / "o.npy").exists()


def test_cli_sim_ring_open_to_a_live_reader(tmp_path):
    """A strategy in another process attaches to the ring by name while the simulation runs."""
    from wiretick.host.ring import Ring

    cap = tmp_path / "feed.pcap"
    generate_to_file(cap, GenConfig(messages=60_000, symbols=50, seed=4))
    name = f"wiretick-test-sim-{os.getpid()}"
    shm = Path("/dev/shm") / name
    shm.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "wiretick.host.cli", "sim", str(cap), "-o",
                             str(tmp_path / "sim.npy"), "--ring", name, "--nslots", str(1 << 20)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        seen: list[np.ndarray] = []
        reader = None
        while reader is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                reader = Ring(name)
            except (FileNotFoundError, ValueError):
                time.sleep(0.01)
        assert reader is not None, proc.communicate()[1]
        live = 0
        while time.monotonic() < deadline:
            batch = reader.poll()
            if len(batch):
                seen.append(batch.copy())
                live += proc.poll() is None
            elif reader.finished:
                seen.append(reader.poll().copy())
                break
            else:
                time.sleep(0.001)
        reader.close()
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
        shm.unlink(missing_ok=True)
    got = np.concatenate(seen)
    assert live > 0                     # some batches were read while the simulator still ran
    assert ticks_equal(got, np.load(tmp_path / "sim.npy"))
    assert ticks_equal(got, decode_file(cap).ticks)


def test_cli_sim_waves_fst(tmp_path, captures_dir):
    """--waves writes an FST of the run (a build with tracing, cached like the others)."""
    cap = captures_dir / "live-Multiple.Packets.pcap"
    waves = tmp_path / "run.fst"
    _cli("sim", str(cap), "-o", str(tmp_path / "sim.npy"), "--waves", str(waves))
    raw = waves.read_bytes()
    assert len(raw) > 1000 and raw[0] == 0          # FST's header block comes first (type 0)
    assert ticks_equal(np.load(tmp_path / "sim.npy"), decode_file(cap).ticks)


# ---------------------------------------------------------------- the harness's own checks can fail


def test_writes_outside_the_ring_are_caught(tmp_path):
    """The checks every test relies on do fire: a ring pointed past its buffer's end (a driver bug the
    device cannot know about) writes the guard zone and unmapped memory, and a narrowed allowed range
    counts writes outside it."""
    from wiretick.host.device import Device
    from wiretick.host.contract.ring import DATA_OFFSET

    frames = [make_frame([encode_message("D", order_ref=k) for k in range(8)], seq=1 + 8 * i) for i in range(40)]
    batch = FrameBatch.from_frames(frames)
    with fast.FastSim() as sim:
        dev = Device(fast.FastBackend(sim))
        setup = dev.setup_ring(128)
        bus, size = setup.dma.bus_address, setup.dma.size
        sim.allow(bus, DATA_OFFSET, DATA_OFFSET + 64 * 8)            # only the first 8 slots
        # 128 slots starting 8 before the end of the buffer: 120 of them (7.5 KiB) lie past it,
        # through the 4 KiB guard zone into unmapped memory.
        dev.write("RING_BASE", bus + size - 64 * 8)
        dev.start()
        sim.push_frames(batch.buf, batch.offset, batch.length, batch.bad)
        sim.run_until_idle()
        dev.stop()
        stats = sim.stats()
        assert stats["guard_hits"] > 0 and stats["unmapped"] > 0
        assert stats["outside"] > 0
        assert not sim.guards_intact()
        dev.close()
    assert not setup.dma.path.exists()           # closing the device frees its DMA buffers
