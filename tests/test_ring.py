"""The tick ring protocol (docs/ring.md), one process: slots, lap tags, laps, recheck, mappings."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.contract.ring import (
    CONTROL_SIZE, DATA_OFFSET, MAGIC, OFF_DROPPED, OFF_HEAD, OFF_STATE, RingError, lap_tag, ring_bytes,
)
from wiretick.host.ring import (
    LapEvent, Ring, RingLapped, RingWriter, create_ring, init_ring, read_header, ring_path, ring_users,
)
from wiretick.host.tick import TICK_DTYPE

W7_TAG = 44   # the lap tag's bit position in the tick's last 8-byte word


@pytest.fixture
def name():
    """A fresh /dev/shm ring name, removed afterwards."""
    n = f"wiretick-test-{uuid.uuid4().hex[:12]}"
    yield n
    Path("/dev/shm", n).unlink(missing_ok=True)


def make_ticks(first: int, n: int) -> np.ndarray:
    """Ticks ``first..first+n-1`` whose other fields are derived from seq (to catch torn or stale slots)."""
    t = np.zeros(n, TICK_DTYPE)
    seq = np.arange(first, first + n, dtype=np.uint64)
    t["seq"] = seq
    t["order_ref"] = seq * np.uint64(0x9E3779B97F4A7C15)
    t["ref2"] = ~seq
    t["price"] = (seq & np.uint64(0xFFFF_FFFF)).astype(np.uint32) ^ np.uint32(0x5A5A5A5A)
    t["locate"] = (seq % np.uint64(500)).astype(np.uint16)
    t["msg_type"] = ord("A")
    return t


def check_content(b: np.ndarray) -> None:
    seq = b["seq"]
    assert (b["order_ref"] == seq * np.uint64(0x9E3779B97F4A7C15)).all()
    assert (b["ref2"] == ~seq).all()


def buffer_ring(nslots: int) -> bytearray:
    buf = bytearray(ring_bytes(nslots))
    init_ring(buf, nslots)
    return buf


def words(buf: bytearray, nslots: int) -> np.ndarray:
    """The slot area of a buffer ring as (nslots, 8) uint64 words, writable: for crafting slots."""
    return np.frombuffer(buf, np.uint64, nslots * 8, DATA_OFFSET).reshape(nslots, 8)


# ------------------------------------------------------------------ configuration

@pytest.mark.parametrize("nslots", [0, 1, 32, 63, 100, 65, -64, 2.0, True, "64", None])
def test_create_refuses_bad_nslots_before_creating(name, nslots):
    with pytest.raises(RingError, match="nslots"):
        RingWriter.create(name, nslots)
    assert not ring_path(name).exists()


@pytest.mark.parametrize("kw", [{"interval": 0}, {"interval": 33}, {"chunk": 0}, {"chunk": 1000}, {"interval": 1.5}])
def test_create_refuses_bad_interval_or_chunk(name, kw):
    with pytest.raises(RingError, match="interval|chunk"):
        RingWriter.create(name, 64, **kw)
    assert not ring_path(name).exists()


def test_create_refuses_existing_and_missing_dir(name, tmp_path):
    create_ring(name, 64)
    with pytest.raises(FileExistsError, match="already exists"):
        create_ring(name, 64)
    create_ring(name, 128, overwrite=True)
    assert read_header(name).nslots == 128
    with pytest.raises(RingError, match="does not exist"):
        create_ring(tmp_path / "nope" / "ring", 64)
    with pytest.raises(RingError, match="empty"):
        ring_path("")
    assert not list(Path("/dev/shm").glob(f".{name}.*"))          # no temporary left behind


@pytest.mark.parametrize("bad", ["a/b", "../x", "../../x", "..", ".", "/dev/shm/x", "x\0y"])
def test_a_ring_name_is_a_name(bad):
    """A str is a name in /dev/shm: separators, '..' and absolute paths are refused, before anything is made."""
    with pytest.raises(RingError, match="not a name"):
        ring_path(bad)
    with pytest.raises(RingError, match="not a name"):
        create_ring(bad, 64)
    with pytest.raises(RingError, match="not a name"):
        Ring(bad)


def test_a_path_is_explicit(tmp_path):
    path = create_ring(tmp_path / "ring", 64)
    assert path == tmp_path / "ring" and read_header(tmp_path / "ring").nslots == 64


def test_never_replaces_a_file_that_is_not_a_ring(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious\n" * 1000)
    for kw in ({"overwrite": True}, {"force": True}):
        with pytest.raises(RingError, match="not a wiretick ring"):
            create_ring(victim, 64, **kw)
        assert victim.read_text() == "precious\n" * 1000
    (tmp_path / "dir").mkdir()
    with pytest.raises(RingError, match="not a regular file"):
        create_ring(tmp_path / "dir", 64, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "notes.txt"]     # no temporary left


def test_replaces_a_ring_in_use_only_when_forced(name):
    create_ring(name, 64)
    reader = Ring(name)                                # maps it (and closes its descriptor)
    assert os.getpid() in ring_users(ring_path(name))
    with pytest.raises(RingError, match=f"in use .*{os.getpid()}.*--force"):
        create_ring(name, 128, overwrite=True)
    assert read_header(name).nslots == 64
    create_ring(name, 128, force=True)                 # the reader keeps the old ring
    assert read_header(name).nslots == 128 and reader.nslots == 64
    reader.close()
    del reader
    create_ring(name, 256, overwrite=True)             # nobody maps the new one: replaced without force
    assert read_header(name).nslots == 256


def test_ring_file_layout(name):
    path = create_ring(name, 256)
    raw = path.read_bytes()
    assert len(raw) == ring_bytes(256) == DATA_OFFSET + 256 * 64
    assert raw[:8] == MAGIC
    assert int.from_bytes(raw[8:12], "little") == 1 and int.from_bytes(raw[12:16], "little") == 64
    assert int.from_bytes(raw[16:24], "little") == 256 and int.from_bytes(raw[24:32], "little") == 4096
    w = np.frombuffer(raw, np.uint64, 256 * 8, DATA_OFFSET).reshape(256, 8)
    assert (w[:, 0] == 0).all() and (w[:, 7] >> np.uint64(W7_TAG) == 15).all()   # seq 0, lap tag "lap -1"


def _corrupt(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


@pytest.mark.parametrize("offset,data,message", [
    (0, b"NOTARING", "not a wiretick ring"),
    (8, (2).to_bytes(4, "little"), "version 2 is not supported"),
    (12, (128).to_bytes(4, "little"), "slot size is 128"),
    (16, (100).to_bytes(8, "little"), "power of two"),
    (16, (1 << 20).to_bytes(8, "little"), "truncated"),
    (24, (100).to_bytes(8, "little"), "data offset 100"),
])
def test_reader_validates_control_page(name, offset, data, message):
    path = create_ring(name, 64)
    _corrupt(path, offset, data)
    with pytest.raises(RingError, match=message):
        Ring(name)
    with pytest.raises(RingError, match=message):
        RingWriter(name)


def test_reader_rejects_small_or_blank_files(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"x" * 100)
    with pytest.raises(RingError, match="too small"):
        Ring(small)
    blank = tmp_path / "blank"
    blank.write_bytes(bytes(8192))
    with pytest.raises(RingError, match="not initialised"):
        Ring(blank)
    with pytest.raises(RingError, match="buffer"):
        Ring(12345)
    with pytest.raises(FileNotFoundError):
        Ring(tmp_path / "absent")


def test_reader_options_validated(name):
    create_ring(name, 64)
    for kw in ({"on_lap": "ignore"}, {"resync": "middle"}, {"resync_margin": 0}, {"resync_margin": 64},
               {"start": 0}, {"start": "middle"}):
        with pytest.raises(RingError):
            Ring(name, **kw)


# ------------------------------------------------------------------ slots and generations

def test_nothing_then_new(name):
    with RingWriter.create(name, 64, interval=4) as w, Ring(name) as r:
        assert len(r.poll()) == 0 and r.poll_one() is None and r.head == 0
        assert r.writer_state == "running" and not r.finished
        w.write(make_ticks(1, 3))
        b = r.poll()
        assert list(b["seq"]) == [1, 2, 3] and r.next_seq == 4 and r.head == 3
        check_content(b)
        assert len(r.poll()) == 0
        w.write(make_ticks(4, 2))
        t = r.poll_one()
        assert t["seq"] == 4 and t["ref2"] == ~np.uint64(4)
        assert r.poll_one()["seq"] == 5 and r.poll_one() is None
    assert r.lost == 0


def test_views_are_zero_copy_and_read_only(name):
    with RingWriter.create(name, 64) as w, Ring(name) as r:
        w.write(make_ticks(1, 10))
        b = r.poll()
        assert not b.flags.owndata and not b.flags.writeable
        assert b.ctypes.data == r._ticks.ctypes.data
        with pytest.raises(ValueError):
            b["price"][0] = 1
        w.write(make_ticks(11, 1))
        assert r.poll_one()["seq"] == 11


def test_seq_new_but_lap_tag_old_is_not_yet():
    """A slot whose first half (seq) landed before its second half (lap tag) is not taken."""
    buf = buffer_ring(64)
    wd = words(buf, 64)
    r = Ring(buf)
    wd[0, 0] = 1                                  # seq 1 landed, tag still "lap -1"
    assert len(r.poll()) == 0 and r.poll_one() is None and r.next_seq == 1
    wd[0, 7] = (0 << W7_TAG) | 0x41               # second half lands with lap 0
    assert r.poll_one()["seq"] == 1
    # second lap: slot 0 gets seq 65 (lap 1) but its second half is still lap 0's
    for s in range(2, 65):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    assert len(r.poll()) == 63
    wd[0, 0] = 65
    assert len(r.poll()) == 0 and r.poll_one() is None and r.lost == 0
    wd[0, 7] = 1 << W7_TAG
    assert list(r.poll()["seq"]) == [65]


def test_torn_slot_inside_a_batch_is_not_delivered():
    """Past the shadow head every slot is checked: a torn one ends the batch."""
    buf = buffer_ring(64)
    wd = words(buf, 64)
    r = Ring(buf)
    for s in range(1, 11):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    wd[5, 7] = 15 << W7_TAG                        # seq 6: second half not landed yet
    assert list(r.poll()["seq"]) == [1, 2, 3, 4, 5]
    wd[5, 7] = 0
    assert list(r.poll()["seq"]) == [6, 7, 8, 9, 10]


def test_verify_mode_checks_below_the_head_too():
    buf = buffer_ring(64)
    wd = words(buf, 64)
    for s in range(1, 11):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    np.frombuffer(buf, np.uint64, 1, OFF_HEAD)[0] = 10
    wd[3, 7] = 15 << W7_TAG                        # a writer that published a head too early
    assert len(Ring(buf).poll()) == 10             # the head is trusted...
    assert list(Ring(buf, verify=True).poll()["seq"]) == [1, 2, 3]   # ...unless verify


def test_overwrite_in_progress_is_a_lap():
    """seq still this lap's but the lap tag already the next lap's: the writer is rewriting the slot."""
    buf = buffer_ring(64)
    wd = words(buf, 64)
    r = Ring(buf, resync_margin=1)
    for s in range(1, 65):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    np.frombuffer(buf, np.uint64, 1, OFF_HEAD)[0] = 64
    assert r.poll_one()["seq"] == 1
    wd[1, 7] = 1 << W7_TAG                         # the writer began tick 66 in slot 1 (seq 2's)
    b = r.poll()
    assert r.laps == 1 and r.last_lap.expected == 2
    assert r.lost == r.last_lap.lost == r.last_lap.resumed - 2
    assert len(b) == 0 or b["seq"][0] == r.last_lap.resumed


def test_lap_exact_loss_oldest_newest_and_raise(name):
    with RingWriter.create(name, 64, interval=8, chunk=16) as w:
        r_old = Ring(name)
        r_new = Ring(name, resync="newest")
        r_raise = Ring(name, on_lap="raise")
        w.write(make_ticks(1, 1000))
        b = r_old.poll()
        ev = r_old.last_lap
        assert isinstance(ev, LapEvent) and ev.expected == 1 and ev.newest == 1000
        assert ev.resumed == 1000 - 64 + 1 + 64 // 8 and ev.lost == ev.resumed - 1 == r_old.lost
        assert list(b["seq"]) == list(range(ev.resumed, 1001))
        check_content(b)
        assert len(r_new.poll()) == 0 and r_new.lost == 1000 and r_new.next_seq == 1001
        with pytest.raises(RingLapped) as exc:
            r_raise.poll()
        assert exc.value.event.lost == ev.lost and "lost" in str(exc.value)
        assert r_raise.poll()["seq"][0] == ev.resumed
        # the next lap is counted on top
        w.write(make_ticks(1001, 500))
        r_old.poll()
        assert r_old.laps == 2 and r_old.lost == ev.lost + r_old.last_lap.lost
        while len(r_old.poll()):
            pass
        assert r_old.next_seq == 1501


def test_head_a_whole_ring_ahead_is_a_lap():
    """The shadow head alone proves a lap even if the slot still reads as this lap's."""
    buf = buffer_ring(64)
    wd = words(buf, 64)
    for s in range(1, 4):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    r = Ring(buf)
    np.frombuffer(buf, np.uint64, 1, OFF_HEAD)[0] = 1 + 64
    r.poll()
    assert r.laps == 1 and r.lost > 0


def test_start_positions(name):
    with RingWriter.create(name, 64) as w:
        w.write(make_ticks(1, 40))
        assert Ring(name).next_seq == 1
        assert Ring(name, start="newest").next_seq == 41
        assert Ring(name, start=30).poll()["seq"][0] == 30
        w.write(make_ticks(41, 160))
        assert Ring(name).next_seq == 200 - 64 + 1 + 8
        r = Ring(name, start=1)
        assert r.resync("newest") == 200 and r.next_seq == 201 and r.lost == 0


def test_recheck(name):
    with RingWriter.create(name, 64, interval=4, chunk=8) as w, Ring(name) as r:
        w.write(make_ticks(1, 40))
        b = r.poll(10)
        b2 = r.poll(10)
        assert r.recheck(b) and r.recheck(b2) and r.recheck() and r.recheck(5)
        assert r.recheck(b[:3])
        w.write(make_ticks(41, 64))                # seq 65..104 rewrite slots 0..39
        assert not r.recheck(b) and not r.recheck(b2) and not r.recheck()
        with pytest.raises(RingError, match="does not point"):
            r.recheck(np.zeros(3, TICK_DTYPE))
        with pytest.raises(RingError, match="does not point"):
            r.recheck(b["price"])                  # a field view: not a tick boundary


def test_recheck_sees_a_rewrite_that_has_only_begun():
    """The writer changes a slot's lap tag before any other byte: recheck catches the first store."""
    buf = buffer_ring(64)
    wd = words(buf, 64)
    for s in range(1, 9):
        wd[s - 1, 7] = 0
        wd[s - 1, 0] = s
    r = Ring(buf)
    b = r.poll()
    assert len(b) == 8 and r.recheck(b)
    wd[0, 7] = 1 << W7_TAG                         # tick 65's tag, nothing else yet
    assert not r.recheck(b)
    assert not r.recheck()


def test_writer_order_tag_then_body_then_seq(name):
    """Each chunk is three passes: the flags word (with the new tag), the body, then seq."""
    w = RingWriter.create(name, 64, chunk=8)
    wd = np.frombuffer(w._b, np.uint64).reshape(64, 8)
    log = []

    class Spy:
        def __init__(self, arr, what):
            self.arr, self.what = arr, what

        def __getitem__(self, k):
            return self.arr[k]

        def __setitem__(self, k, v):   # slot 0 as the pass begins: (pass, seq, lap tag, order_ref)
            log.append((self.what, int(wd[0, 0]), (int(wd[0, 7]) >> W7_TAG) & 0xF, int(wd[0, 4])))
            self.arr[k] = v

    w._body, w._seqcol = Spy(w._body, "body"), Spy(w._seqcol, "seq")
    t = make_ticks(1, 8)
    w.write(t)
    assert log == [("body", 0, 0, 0), ("seq", 0, 0, int(t["order_ref"][0]))]
    w.close()
    b = Ring(name).poll()
    assert list(b["seq"]) == list(range(1, 9))
    check_content(b)


def test_lap_tags_written(name):
    with RingWriter.create(name, 64, chunk=16) as w, Ring(name) as r:
        t = make_ticks(1, 64 * 20)
        t["flags"] = 0xF001                          # stale tag bits in the source are replaced
        for i in range(0, len(t), 50):
            w.write(t[i:i + 50])
            b = r.poll()
            assert ((b["flags"] >> 12) == lap_tag(b["seq"], 64)).all()
            assert ((b["flags"] & 0xFFF) == 1).all()
            check_content(b)
        assert lap_tag(np.array([1, 64, 65, 1024, 1025]), 64).tolist() == [0, 0, 1, 15, 0]


# ------------------------------------------------------------------ wrap-around

def test_wrap_is_one_view_with_the_double_mapping(name):
    with RingWriter.create(name, 64) as w, Ring(name) as r:
        assert r.doubled and r.why_single is None
        w.write(make_ticks(1, 50))
        assert len(r.poll()) == 50
        w.write(make_ticks(51, 40))
        b = r.poll()
        assert list(b["seq"]) == list(range(51, 91))   # slots 50..63 then 0..25, one view
        check_content(b)
        assert b.ctypes.data == r._ticks.ctypes.data + 50 * 64
        assert not b.flags.owndata
        assert np.shares_memory(b, r._ticks[:64])       # the second half is the same memory
        assert (r._ticks[64:90]["seq"] == r._ticks[:26]["seq"]).all()
        assert r.recheck(b)
        assert r.poll_parts() == ()
        w.write(make_ticks(91, 30))
        (only,) = r.poll_parts()
        assert list(only["seq"]) == list(range(91, 121))


def test_wrap_fallback_without_double_mapping(name):
    with RingWriter.create(name, 64) as w, Ring(name, double_map=False) as r:
        assert not r.doubled and "disabled" in r.why_single
        w.write(make_ticks(1, 50))
        assert len(r.poll()) == 50
        w.write(make_ticks(51, 40))
        a = r.poll()
        b = r.poll()
        assert list(a["seq"]) == list(range(51, 65)) and list(b["seq"]) == list(range(65, 91))
        assert r.recheck(a) is True and r.recheck(b) is True
        w.write(make_ticks(91, 60))                    # slots 26..63 then 0..21
        parts = r.poll_parts()
        assert [len(p) for p in parts] == [38, 22]
        assert list(np.concatenate(parts)["seq"]) == list(range(91, 151))
        assert all(not p.flags.owndata for p in parts)
        w.write(make_ticks(151, 20))
        assert [len(p) for p in r.poll_parts(5)] == [5]


def test_plain_buffer_ring_falls_back():
    buf = buffer_ring(64)
    w = RingWriter(buf)
    r = Ring(buf)
    assert not r.doubled and "plain buffer" in r.why_single
    w.write(make_ticks(1, 60))
    assert len(r.poll()) == 60
    w.write(make_ticks(61, 10))
    parts = r.poll_parts()
    assert [len(p) for p in parts] == [4, 6]
    w.write(make_ticks(71, 200))
    r.poll()
    assert r.lost == r.last_lap.lost > 0


def test_fallback_resync_does_not_cross_the_end(name):
    with RingWriter.create(name, 64) as w, Ring(name, double_map=False, resync_margin=3) as r:
        w.write(make_ticks(1, 1000))
        b = r.poll()
        assert r.laps == 1 and len(b) and b["seq"][0] == r.last_lap.resumed
        total = len(b)
        while len(b := r.poll()):
            total += len(b)
        assert r.next_seq == 1001 and total + r.lost == 1000


# ------------------------------------------------------------------ writer

def test_writer_checks_its_input(name):
    with RingWriter.create(name, 64) as w:
        with pytest.raises(ValueError, match="continue the ring"):
            w.write(make_ticks(2, 5))
        with pytest.raises(ValueError, match="tick dtype"):
            w.write(np.zeros(5, np.uint64))
        with pytest.raises(ValueError, match="continue the ring"):
            w.write_one(make_ticks(7, 1).tobytes())
        with pytest.raises(ValueError, match="64 bytes"):
            w.write_one(b"short")
        assert w.write(make_ticks(100, 5), renumber=True) == 5
        assert w.write(np.zeros(0, TICK_DTYPE)) == 5
        t = make_ticks(6, 20)[::2]                     # not contiguous: copied first
        assert w.write(t, renumber=True) == 15
        assert w.write_one(make_ticks(16, 1)[0]) == 16
    r = Ring(name)
    assert list(r.poll()["seq"]) == list(range(1, 17))
    assert r.finished and r.writer_state == "stopped"


def test_one_writer_per_ring(name):
    with RingWriter.create(name, 64) as w:
        with pytest.raises(RingError, match="already has a writer"):
            RingWriter(name)
        w.write(make_ticks(1, 10))
    with RingWriter(name) as w2:                      # after close, another may continue the ring
        assert w2.next_seq == 11
        w2.write(make_ticks(11, 1))
    assert read_header(name).nslots == 64


def test_write_one_stamps_and_publishes(name):
    with RingWriter.create(name, 64, interval=1, chunk=1) as w, Ring(name) as r:
        t0 = time.monotonic_ns()
        w.write_one(make_ticks(1, 1).tobytes(), stamp_ts=True)
        assert r.head == 1
        t = r.poll_one()
        assert t0 <= t["ts_rx"] <= time.monotonic_ns()
        assert t["order_ref"] == np.uint64(1) * np.uint64(0x9E3779B97F4A7C15)
        w.add_dropped(3)
        assert r.writer_dropped == 3


def test_write_paced(name):
    with RingWriter.create(name, 1024) as w, Ring(name) as r:
        t = make_ticks(1, 200)
        start = time.monotonic_ns() + 2_000_000
        due = start + np.arange(200, dtype=np.int64) * 100_000     # 200 ticks over 20 ms
        assert w.write_paced(t, due) == 200
        assert time.monotonic_ns() >= due[-1]
        assert len(r.poll()) == 200
        stop = w.write_paced(make_ticks(201, 10), np.full(10, time.monotonic_ns() + 10**10), should_stop=lambda: True)
        assert stop == 0


def test_wait_batches_and_finished(name):
    w = RingWriter.create(name, 64)
    r = Ring(name)
    t0 = time.monotonic()
    assert len(r.wait(0.02)) == 0 and time.monotonic() - t0 >= 0.02
    w.write(make_ticks(1, 5))
    assert len(r.wait(1)) == 5
    w.write(make_ticks(6, 3))
    w.close()
    assert [len(b) for b in r.batches()] == [3]
    assert r.finished and len(r.wait()) == 0          # returns at once: the writer stopped


def test_control_page_fields(name):
    with RingWriter.create(name, 64) as w:
        w.write(make_ticks(1, 7))
        raw = ring_path(name).read_bytes()
        assert int.from_bytes(raw[OFF_HEAD:OFF_HEAD + 8], "little") == 7
        assert int.from_bytes(raw[OFF_STATE:OFF_STATE + 8], "little") == 1
        assert int.from_bytes(raw[OFF_DROPPED:OFF_DROPPED + 8], "little") == 0
    raw = ring_path(name).read_bytes()
    assert int.from_bytes(raw[OFF_STATE:OFF_STATE + 8], "little") == 2
    assert len(raw) >= CONTROL_SIZE


def test_views_outlive_close(name):
    """Closing a reader never unmaps memory under a view still in use."""
    with RingWriter.create(name, 64) as w:
        w.write(make_ticks(1, 64))
        r = Ring(name, start=1)
        b = r.poll()
        r.close()
        os.unlink(ring_path(name))
        assert int(b["seq"].sum()) == 64 * 65 // 2
        check_content(b)


def test_flags_reserve_the_lap_tag_and_readers_mask_it(name):
    """formats.Flag reserves bits 12..15 (the lap tag); ``flags & Flag.MASK`` is what the parser set."""
    from wiretick.host.contract.formats import Flag
    from wiretick.host.contract.ring import LAP_BITS
    parser_flags = {k: v for k, v in vars(Flag).items() if k.isupper() and k not in ("LAP_TAG", "MASK")}
    assert Flag.LAP_TAG == LAP_BITS == 0xF000 and Flag.MASK == 0x0FFF
    assert all(v & Flag.LAP_TAG == 0 and v & Flag.MASK == v for v in parser_flags.values())
    with RingWriter.create(name, 64) as w, Ring(name) as r:
        t = make_ticks(1, 200)
        t["flags"] = Flag.PRINTABLE
        w.write(t[:100])
        r.poll()
        w.write(t[100:])
        b = r.poll()
        assert b["seq"][-1] == 200 and b["seq"][0] > 128            # third lap: tag 2, then 3 at 193
        assert (b["flags"] != Flag.PRINTABLE).all()                 # the naive test is wrong on a ring...
        assert (b["flags"] & Flag.MASK == Flag.PRINTABLE).all()     # ...the masked one is right
