"""Late join through the Device API: the JOIN_* registers on the fast engine and under cocotb.

A device that joins a feed in the state the reference model reached at frame k
makes, from frame k on, the reference model's ticks and counters exactly
(``ts_rx`` aside; the ring's ``seq`` plus the state's ``next_seq - 1``), and an
abort event names the run-wide ``seq`` range.
"""

from __future__ import annotations

import numpy as np
import pytest

from wiretick.host.capture import FrameBatch, write_pcapng
from wiretick.host.decode import DecodeConfig, Decoder, SequenceState, decode_file
from wiretick.host.device import Device, DeviceError
from wiretick.host.contract.formats import Flag
from wiretick.host.frames import encode_message, make_frame
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.sim import fast
from wiretick.sim.shard import plan_shards, run_shard


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    path = tmp_path_factory.mktemp("join") / "feed.pcap"
    generate_to_file(path, GenConfig(messages=3_000, symbols=10, seed=5, ab=True, gap_rate=0.05, all_types=True))
    return path


def test_join_registers_read_back_and_need_a_stopped_device():
    with fast.FastSim() as sim:
        backend = fast.FastBackend(sim)
        dev = Device(backend)
        try:
            assert dev.joined is None
            state = SequenceState(True, b"ABCDEFGHIJ", 0x1234_5678_9ABC_DEF0, 1 << 40)
            dev.join(state)
            assert dev.joined == state
            assert dev.read("JOIN_SESSION_HI") == int.from_bytes(b"IJ", "little")
            dev.join(None)
            assert dev.joined is None and dev.read("JOIN_EXPECTED") == state.expected
            dev.setup_ring(64)
            dev.start()
            with pytest.raises(DeviceError, match="stop the device"):
                dev.join(state)
            dev.stop()
        finally:
            backend.close()


def test_joined_device_equals_the_reference_from_any_frame(feed):
    """Boundaries in an A/B feed with gaps: each tail, joined, equals the reference model's tail."""
    plan = plan_shards(feed, shards=5)
    assert all(s.state.has_session for s in plan.shards[1:])
    for shard in plan.shards:
        res = run_shard(str(feed), DecodeConfig(), shard, compare=True)
        assert res.difference is None, (shard.index, res.difference)
        assert res.ticks == shard.ticks and res.counters == shard.counters


def test_without_join_the_tail_differs(feed):
    """The test above can fail: the same tail from a fresh state is not the reference's tail."""
    shard = plan_shards(feed, shards=3).shards[1]
    fresh = type(shard)(shard.index, shard.first_frame, shard.frames, SequenceState(), shard.ticks, shard.counters)
    res = run_shard(str(feed), DecodeConfig(), fresh, compare=False)
    assert res.counters["sessions"] == 1 and shard.counters["sessions"] == 0


def _abort_capture(tmp_path):
    msgs = [encode_message("D", timestamp=i, order_ref=i) for i in range(1, 6)]
    frames = [make_frame(msgs, seq=1), make_frame(msgs, seq=6), make_frame(msgs, seq=11), make_frame(msgs, seq=11)]
    path = tmp_path / "abort.pcapng"
    write_pcapng(path, FrameBatch.from_frames(frames, ts_ns=np.arange(4, dtype=np.uint64),
                                              bad=[False, False, True, False]))
    return path


def test_abort_event_names_run_wide_seq_after_a_join(tmp_path):
    path = _abort_capture(tmp_path)
    plan = plan_shards(path, boundaries=[2])
    tail = plan.shards[1]
    assert tail.state.next_seq == 11 and tail.state.expected == 11
    res = run_shard(str(path), DecodeConfig(), tail, compare=True)
    assert res.difference is None
    ref = decode_file(path)
    abort = ref.ticks[(ref.ticks["flags"] & int(Flag.EVENT_ABORT)) != 0]
    assert list(abort["order_ref"]) == [11] and list(abort["ref2"]) == [15]


def test_reference_model_initial_state(feed):
    """Decoder(initial=state) on the rest of a feed is the whole decode's rest, counters included."""
    from wiretick.host.capture import read_frames
    batch = read_frames(feed)
    whole = Decoder()
    ticks = whole.decode(batch)
    k = len(batch) // 2
    head = Decoder()
    n_head = len(head.decode(FrameBatch(batch.buf, batch.offset[:k], batch.length[:k], batch.ts_ns[:k],
                                        batch.bad[:k])))
    tail = Decoder(initial=head.state)
    rest = tail.decode(FrameBatch(batch.buf, batch.offset[k:], batch.length[k:], batch.ts_ns[k:], batch.bad[k:]))
    assert rest.tobytes() == ticks[n_head:].tobytes()
    assert {n: head.counters[n] + tail.counters[n] for n in whole.counters} == whole.counters


def test_cocotb_joined_device_equals_the_reference(feed, tmp_path):
    from wiretick.sim.cocotb_run import make_case, run_job, simulator_available
    why = simulator_available("verilator")
    if why:
        pytest.skip(why)
    shard = plan_shards(feed, shards=4).shards[2]
    # The tail as its own capture, joined in the state the reference had reached.
    from wiretick.host.capture import write_pcap
    from wiretick.sim.shard import _frame_ranges
    (batch,) = list(_frame_ranges(str(feed), shard.first_frame, shard.frames, batch_frames=1 << 20))
    tail = tmp_path / "tail.pcap"
    write_pcap(tail, FrameBatch.from_frames([batch.frame(i) for i in range(len(batch))], ts_ns=batch.ts_ns))
    res = run_job([make_case("tail", tail, lap_tags=False, join=shard.state)])["tail"]
    dec = Decoder(initial=shard.state)
    want = dec.decode(batch)
    got = res.ticks.copy()
    got["seq"] += np.uint64(shard.first_row)
    for name in want.dtype.names:
        if name != "ts_rx":
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert res.counters == dec.counters
