"""The control plane: register map, MMIO access over a file, the PCIe and replay backends."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.capture import CaptureError, FrameBatch, read_frames, write_pcap
from wiretick.host.contract.formats import COUNTERS, Flag
from wiretick.host.contract.registers import DMA_OFF, DMA_RUNNING, MAP_SIZE, REG_BY_NAME, REG_ID, REG_VERSION, REGISTERS
from wiretick.host.contract.ring import OFF_HEAD, OFF_STATE, RingError
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.device import Device, DeviceError, FileDma, MmioRegion, PcieBackend
from wiretick.host.frames import encode_message, mold_packet, udp_frame
from wiretick.host.replay import ReplayBackend
from wiretick.host.ring import Ring, read_header

SHARED = Path(__file__).resolve().parents[2] / "shared" / "captures" / "nasdaq-itch50" / "live-Multiple.Packets.pcap"


def u32(raw: bytes, off: int) -> int:
    return int.from_bytes(raw[off:off + 4], "little")


def u64(raw: bytes, off: int) -> int:
    return int.from_bytes(raw[off:off + 8], "little")


@pytest.fixture
def shm_name():
    n = f"wiretick-test-dev-{uuid.uuid4().hex[:12]}"
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


def build_feed(path: Path, messages: int = 40_000, per_packet: int = 20) -> None:
    """A small feed built message by message (adds, executions, trades) 1 us apart, as a pcap."""
    msgs = []
    for i in range(messages):
        loc, ts = 1 + i % 37, 34_200_000_000_000 + 1000 * i
        if i % 5 == 3:
            msgs.append(encode_message("E", stock_locate=loc, timestamp=ts, order_ref=i, executed_shares=100,
                                       match_number=i))
        elif i % 11 == 7:
            msgs.append(encode_message("P", stock_locate=loc, timestamp=ts, order_ref=0, side="B", shares=50,
                                       stock="ABC", price=1_000_000 + i, match_number=i))
        else:
            msgs.append(encode_message("A", stock_locate=loc, timestamp=ts, order_ref=i + 1, side="S",
                                       shares=100, stock="ABC", price=2_000_000 + i))
    frames = [udp_frame(mold_packet(1 + k, msgs[k:k + per_packet])) for k in range(0, messages, per_packet)]
    ts_ns = 1_700_000_000_000_000_000 + np.arange(len(frames), dtype=np.uint64) * np.uint64(1000 * per_packet)
    write_pcap(path, FrameBatch.from_frames(frames, ts_ns=ts_ns))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A 40k-message feed and its reference ticks."""
    path = tmp_path_factory.mktemp("dev") / "feed.pcap"
    build_feed(path)
    return path, decode_file(path)


def same_ticks(got: np.ndarray, ref: np.ndarray) -> bool:
    g = got.copy()
    g["flags"] &= np.uint16(Flag.MASK)           # the ring's lap tag is not the decoder's
    return np.array_equal(g, ref)


# ------------------------------------------------------------------ the register map

def test_replay_backend_register_semantics(generated):
    """The software device answers the contract's map (contract.registers) the way the register file does."""
    path, _ = generated
    be = ReplayBackend(path)
    reg = REG_BY_NAME
    try:
        assert be.read32(reg["ID"].offset) == REG_ID and be.read32(reg["VERSION"].offset) == REG_VERSION
        assert be.read32(reg["N_COUNTERS"].offset) == len(COUNTERS)
        be.write32(reg["ID"].offset, 0)                              # const: writes ignored
        assert be.read32(reg["ID"].offset) == REG_ID
        assert be.read32(reg["RING_LOG2"].offset) == 12 and be.read32(reg["SHADOW_INTERVAL"].offset) == 64
        assert be.read32(reg["CHECK_IP_CHECKSUM"].offset) == 1
        be.write32(reg["PORT"].offset, 0x12345)                      # upper bits of a 16-bit register ignored
        assert be.read32(reg["PORT"].offset) == 0x2345
        assert be.read32(reg["CLOCK"].offset) == 0                   # snap: 0 until the first snapshot
        be.write32(reg["SNAPSHOT"].offset, 1)
        assert be.read32(reg["SNAPSHOT"].offset) == 0                # wo reads 0
        clock = be.read32(reg["CLOCK"].offset) | be.read32(reg["CLOCK"].offset + 4) << 32
        assert 0 < clock <= time.monotonic_ns()
        assert be.read32(0x7FC) == 0 and be.read32(0x800) == 0        # unmapped
        be.write32(0x7FC, 5)
        assert be.read32(0x7FC) == 0
        assert be.read32(reg["DMA_STATE"].offset) == DMA_OFF
    finally:
        be.close()


# ------------------------------------------------------------------ MMIO over a file

def test_mmio_region_over_a_file(tmp_path):
    path = tmp_path / "bar0"
    path.write_bytes(bytes(8192))
    bar = MmioRegion(path)
    bar.write32(0x10, 0xDEADBEEF)
    bar.write32(0x14, 1)
    assert bar.read32(0x10) == 0xDEADBEEF and bar.size == 8192
    raw = path.read_bytes()
    assert u32(raw, 0x10) == 0xDEADBEEF and u64(raw, 0x10) == 0x1_DEADBEEF        # little-endian, in the file
    for bad in (0x11, -4, 8192):
        with pytest.raises(DeviceError, match="aligned 32-bit"):
            bar.read32(bad)
    with pytest.raises(DeviceError, match="32-bit"):
        bar.write32(0, 1 << 32)
    bar.close()
    window = MmioRegion(path, offset=4096, size=4096)                  # a region inside a larger file
    window.write32(0, 7)
    assert u32(path.read_bytes(), 4096) == 7
    window.close()
    with pytest.raises(DeviceError, match="multiple of 4"):
        MmioRegion(bytearray(6))


def fake_bar(tmp_path: Path, dev_id: int = REG_ID, version: int = REG_VERSION, max_log2: int = 24) -> Path:
    """A file standing in for BAR0: only the constants set, as a powered-up device shows them."""
    raw = bytearray(4096)
    for name, value in (("ID", dev_id), ("VERSION", version), ("DMA_MAX_LOG2", max_log2),
                        ("CLOCK_PERIOD_FS", 4_000_000), ("DMA_FIFO_DEPTH", 64)):
        off = REG_BY_NAME[name].offset
        raw[off:off + 4] = value.to_bytes(4, "little")
    path = tmp_path / "resource0"
    path.write_bytes(bytes(raw))
    return path


def test_pcie_backend_identifies_the_device(tmp_path):
    dma = FileDma(tmp_path)
    with pytest.raises(DeviceError, match="no wiretick device.*0x00000000"):
        Device(PcieBackend(MmioRegion(fake_bar(tmp_path, dev_id=0)), dma))
    with pytest.raises(DeviceError, match="version 1.0 is not supported"):     # 64-bit counters: another meaning
        Device(PcieBackend(MmioRegion(fake_bar(tmp_path, version=0x0001_0000)), dma))
    with pytest.raises(DeviceError, match=f"needs {MAP_SIZE}"):
        PcieBackend(MmioRegion(bytearray(256)), dma)
    dev = Device(PcieBackend(MmioRegion(fake_bar(tmp_path, version=0x0002_0003)), dma))
    assert dev.info.version_text == "2.3" and "pcie" in repr(dev)
    assert dev.info.max_log2_slots == 24 and dev.info.clock_period_fs == 4_000_000


def test_pcie_backend_programs_the_registers(tmp_path):
    bar_path = fake_bar(tmp_path, max_log2=16)
    dma_dir = tmp_path / "dma"
    dma_dir.mkdir()
    dev = Device(PcieBackend(MmioRegion(bar_path), FileDma(dma_dir, iova_base=0x40_0000_0000)))
    at = {r.name: r.offset for r in REGISTERS}
    dev.configure(DecodeConfig(ip_dst=0xE9360C6F, port=26477, check_ip_checksum=False, sequence_check=True))
    raw = bar_path.read_bytes()
    assert u32(raw, at["IP_DST"]) == 0xE9360C6F and u32(raw, at["PORT"]) == 26477
    assert u32(raw, at["CHECK_IP_CHECKSUM"]) == 0 and u32(raw, at["SEQUENCE_CHECK"]) == 1
    assert dev.config == DecodeConfig(ip_dst=0xE9360C6F, port=26477, check_ip_checksum=False)
    with pytest.raises(DeviceError, match="at most 2\\^16"):
        dev.setup_ring(1 << 17)
    assert not list(dma_dir.iterdir())                                    # refused before allocating
    setup = dev.setup_ring(4096, interval=256, name="ring0")
    raw = bar_path.read_bytes()
    assert u64(raw, at["RING_BASE"]) == 0x40_0000_0000 + 4096             # the slot area, 4 KiB aligned
    assert u32(raw, at["RING_LOG2"]) == 12 and u32(raw, at["SHADOW_INTERVAL"]) == 256
    assert u64(raw, at["SHADOW_ADDR"]) == 0x40_0000_0000 + OFF_HEAD
    assert setup.dma.path == dma_dir / "ring0" and read_header(setup.dma.path).nslots == 4096
    dev.start()
    assert u32(bar_path.read_bytes(), at["ENABLE"]) == 1
    assert u64(setup.dma.path.read_bytes(), OFF_STATE) == 1             # the driver marks the writer running
    with pytest.raises(DeviceError, match="already running"):
        dev.start()
    with pytest.raises(DeviceError, match="stop the device"):
        dev.configure(DecodeConfig())
    with pytest.raises(DeviceError, match="stop the device"):
        dev.setup_ring(64)
    dev.stop()                                                           # a file has no engine: DMA_STATE is 0
    raw = bar_path.read_bytes()
    assert u32(raw, at["ENABLE"]) == 0 and u32(raw, at["SNAPSHOT"]) == 1   # stop latched the final head
    assert u64(setup.dma.path.read_bytes(), OFF_STATE) == 2
    with pytest.raises(DeviceError, match="not writable"):
        dev.write("ID", 1)
    with pytest.raises(DeviceError, match="write-only"):
        dev.read("SNAPSHOT")
    with pytest.raises(DeviceError, match="no register"):
        dev.read("NOPE")
    with pytest.raises(DeviceError, match="does not fit"):
        dev.write("RING_LOG2", 64)
    dev.close()


def test_counters_extended_to_64_bits(tmp_path):
    """The device's 32-bit event counters wrap; counters() and snapshot() extend them monotonically, per run."""
    bar_path = fake_bar(tmp_path)
    dma_dir = tmp_path / "dma"
    dma_dir.mkdir()
    bar = MmioRegion(bar_path)
    dev = Device(PcieBackend(bar, FileDma(dma_dir)))
    frames, lost, head = (REG_BY_NAME[n].offset for n in ("CNT_frames", "PARSER_LOST", "DMA_HEAD"))
    bar.write32(head + 4, 7)                                         # 64-bit DMA_HEAD: read as is
    for raw, want in [(0xFFFF_FFF0, 0xFFFF_FFF0), (0x10, 0x1_0000_0010), (0x10, 0x1_0000_0010),
                      (0xFFFF_FFFF, 0x1_FFFF_FFFF), (5, 0x2_0000_0005)]:
        bar.write32(frames, raw)
        bar.write32(lost, raw)
        assert dev.counters()["frames"] == want
        snap = dev.snapshot()
        assert (snap["CNT_frames"], snap["PARSER_LOST"], snap["DMA_HEAD"]) == (want, want, 7 << 32)
    assert dev.read("CNT_frames") == 5                                # read() is the raw register
    dev.setup_ring(64)
    dev.start()                                                      # a run: the device's counters restart
    bar.write32(frames, 3)
    assert dev.counters()["frames"] == 3
    dev.close()


# ------------------------------------------------------------------ the replay backend

def test_replay_device_shared_capture(shm_name):
    if not SHARED.exists():
        pytest.skip(f"shared capture not found: {SHARED}")
    ref = decode_file(SHARED)
    with Device(ReplayBackend(SHARED)) as dev:
        assert dev.info.backend == "replay" and not dev.running
        t0 = time.monotonic_ns()
        c1, c2 = dev.clock_ns(), dev.clock_ns()
        assert t0 <= c1 <= c2 <= time.monotonic_ns()
        dev.setup_ring(1024, name=shm_name)
        r = dev.open_ring()
        dev.start()
        assert dev.running and dev.dma_state == DMA_RUNNING
        assert dev.wait_done(30) and dev.backend.input_ended()
        got = np.concatenate(list(r.batches(timeout=5)))
        assert same_ticks(got, ref.ticks) and r.finished and r.lost == 0
        assert dev.counters() == ref.counters
        snap = dev.snapshot()
        assert snap["DMA_HEAD"] == len(ref.ticks) and snap["CLOCK"] >= t0 and snap["DMA_DROPPED"] == 0
        assert dev.running                                      # idle, until stopped
        dev.stop()
        assert not dev.running and dev.dma_state == DMA_OFF
    assert not Path("/dev/shm", shm_name).exists()          # the ring went with the device


def test_replay_device_follows_live_with_small_ring(shm_name, generated):
    """A reader follows the replay worker through a ring 8x smaller than the feed."""
    path, ref = generated
    with Device(ReplayBackend(path, rate=250_000)) as dev:
        dev.setup_ring(1 << 13, name=shm_name)
        r = dev.open_ring()
        dev.start()
        parts = [b.copy() for b in r.batches(timeout=10)]
        assert r.lost == 0, f"reader lapped: {r.last_lap}"
        assert same_ticks(np.concatenate(parts), ref.ticks)
        assert dev.counters() == ref.counters


def test_replay_device_parser_config(shm_name, generated):
    path, ref = generated
    with Device(ReplayBackend(path)) as dev:
        dev.configure(DecodeConfig(port=1))                    # not the feed's port: every frame dropped
        assert dev.config.port == 1
        dev.setup_ring(1024, name=shm_name)
        dev.start()
        dev.wait_done(30)
        c = dev.counters()
        assert c["messages"] == 0 and c["drop_port"] == ref.counters["frames"]
        assert len(dev.open_ring().poll()) == 0


def test_replay_device_stop_midway(shm_name, generated):
    path, ref = generated
    n = len(ref.ticks)
    with Device(ReplayBackend(path, rate=100_000)) as dev:
        dev.setup_ring(1 << 17, name=shm_name)
        r = dev.open_ring()
        dev.start()
        with pytest.raises(DeviceError, match="already running"):
            dev.start()
        time.sleep(0.15)
        dev.stop()
        written = dev.snapshot()["DMA_HEAD"]
        assert 0 < written < n and not dev.running and not dev.backend.input_ended()
        got = np.concatenate([b.copy() for b in r.batches(timeout=2)])
        assert r.finished and len(got) == written          # readers finish at the device's last tick
        assert same_ticks(got, ref.ticks[:written])
        assert dev.counters()["ticks"] >= written


def test_replay_device_restart_is_a_new_run(shm_name, generated):
    """Each start is a new run, as on the engine: seq from 1, counters from 0, the ring laid out afresh."""
    path, ref = generated
    n = len(ref.ticks)
    with Device(ReplayBackend(path)) as dev:
        dev.setup_ring(1 << 17, name=shm_name)
        for _ in range(2):
            dev.start()
            r = dev.open_ring()                      # readers open the ring per run
            assert dev.wait_done(30)
            dev.stop()
            got = np.concatenate([b.copy() for b in r.batches(timeout=2)])
            assert same_ticks(got, ref.ticks) and r.finished
            assert dev.counters()["ticks"] == n and dev.snapshot()["DMA_HEAD"] == n


def test_replay_device_reports_worker_errors(shm_name, tmp_path, generated):
    path, _ = generated
    doomed = tmp_path / "doomed.pcap"
    doomed.write_bytes(path.read_bytes())
    with Device(ReplayBackend(doomed)) as dev:
        dev.setup_ring(1024, name=shm_name)
        doomed.unlink()                                        # vanishes after the device checked it
        dev.start()
        with pytest.raises(DeviceError, match="No such file"):
            dev.wait_done(30)
        assert "doomed.pcap" in dev.backend.error()


def test_device_config_errors(shm_name, tmp_path, generated):
    path, _ = generated
    with pytest.raises(FileNotFoundError):
        ReplayBackend(tmp_path / "absent.pcap")
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture at all")
    with pytest.raises(CaptureError):
        ReplayBackend(bad)
    for kw in ({"rate": 0}, {"rate": -5}, {"rate": float("nan")}, {"speed": 0}, {"rate": 10, "capture_timing": True}):
        with pytest.raises(ValueError):
            ReplayBackend(path, **kw)
    with pytest.raises(ValueError, match="port"):
        DecodeConfig(port=70000)
    with Device(ReplayBackend(path)) as dev:
        with pytest.raises(DeviceError, match="setup_ring"):
            dev.start()
        with pytest.raises(DeviceError, match="setup_ring"):
            dev.open_ring()
        for nslots in (100, 32, 0):
            with pytest.raises(RingError, match="power of two"):
                dev.setup_ring(nslots, name=shm_name)
        assert not Path("/dev/shm", shm_name).exists()        # refused before anything was allocated
        with pytest.raises(TypeError):
            dev.configure({"port": 1})
        dev.setup_ring(64, name=shm_name)
        dev.write("RING_LOG2", 20)                              # past the buffer: the device refuses to start
        with pytest.raises(DeviceError, match="refused.*do not fit"):
            dev.start()
        assert not dev.enabled and not dev.running and dev.dma_state == DMA_OFF
        dev.write("RING_LOG2", 6)
        dev.write("RING_BASE", dev.read("RING_BASE") + 8)         # misaligned: refused, as the engine does
        with pytest.raises(DeviceError, match="refused.*misaligned"):
            dev.start()
        with pytest.raises(DeviceError, match="interval"):
            dev.setup_ring(64, interval=-1)


def test_replay_device_capture_timing(shm_name, tmp_path):
    """Capture timing: a replay of a capture spanning ~0.2 s (sped up 2x) takes ~0.1 s."""
    if not SHARED.exists():
        pytest.skip(f"shared capture not found: {SHARED}")
    frames = read_frames(SHARED)
    spread = tmp_path / "spread.pcap"
    ts = np.array([1_000_000_000, 1_200_000_000], np.uint64)[:len(frames)]
    write_pcap(spread, FrameBatch.from_frames([frames.frame(i) for i in range(len(frames))], ts_ns=ts))
    with Device(ReplayBackend(spread, capture_timing=True, speed=2.0)) as dev:
        dev.setup_ring(1024, name=shm_name)
        t0 = time.monotonic()
        dev.start()
        assert dev.wait_done(30)
        assert 0.09 <= time.monotonic() - t0 < 5
        assert dev.snapshot()["DMA_HEAD"] == len(decode_file(spread).ticks)


def test_ring_file_is_usable_by_another_reader(shm_name, generated):
    path, ref = generated
    with Device(ReplayBackend(path, keep_rings=True)) as dev:
        setup = dev.setup_ring(1 << 17, name=shm_name)
        dev.start()
        dev.wait_done(30)
        dev.stop()
    r = Ring(shm_name, start=1)                  # kept after the device closed
    assert same_ticks(r.poll(), ref.ticks) and r.finished
    assert setup.source == Path("/dev/shm", shm_name)
    os.unlink(setup.source)
