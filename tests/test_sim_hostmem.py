"""The simulated host memory: DMA writes land in the ring files themselves, and every stray write is caught."""

from __future__ import annotations

import random

import numpy as np
import pytest

from wiretick.sim.hostmem import GUARD_BYTES, RESP_OKAY, RESP_SLVERR, AxiWriteChannels, BusError, HostMemory

BUS = 1 << 32


def _file(tmp_path, name: str, size: int):
    path = tmp_path / name
    path.write_bytes(bytes(size))
    return path


def test_a_write_is_a_store_into_the_file(tmp_path):
    path = _file(tmp_path, "ring", 8192)
    reader = np.memmap(path, np.uint8, "r")              # another mapping of the same file: a strategy's view
    mem = HostMemory()
    mem.add(BUS, 8192, path)
    mem.write(BUS + 100, b"tick")
    assert bytes(reader[100:104]) == b"tick" and mem.read(BUS + 100, 4) == b"tick"
    assert mem.guards_intact() and mem.violations == []
    mem.close()


def test_overlapping_buffers_are_refused(tmp_path):
    mem = HostMemory()
    mem.add(BUS, 4096, _file(tmp_path, "a", 4096))
    with pytest.raises(ValueError, match="overlaps"):
        mem.add(BUS + 4096 + GUARD_BYTES, 4096, _file(tmp_path, "b", 4096))   # inside a's upper guard
    mem.add(BUS + 4096 + 2 * GUARD_BYTES, 4096, _file(tmp_path, "c", 4096))
    mem.close()


def test_guard_unmapped_and_outside_writes_are_recorded(tmp_path):
    path = _file(tmp_path, "ring", 4096)
    mem = HostMemory()
    region = mem.add(BUS, 4096, path)
    region.allowed = [(0, 64)]
    mem.write(BUS + 64, b"x")                            # in the buffer, outside the allowed range
    assert region.outside and mem.guards_intact()
    mem.write(BUS + 4090, bytes(10))                     # straddles the buffer's end into the guard
    assert not mem.guards_intact()
    assert mem.violations[-1][2].startswith("guard zone")
    with pytest.raises(BusError, match="no buffer"):
        mem.write(BUS + (1 << 20), b"y")
    assert mem.violations[-1][2] == "no buffer"
    mem.close()


def test_write_beats_equals_beat_by_beat(tmp_path):
    """The vectorised commit of captured beats stores exactly what one write_strobed per beat stores."""
    rng = random.Random(3)
    size, lanes = 8192, 64
    mems, regions = [], []
    for name in ("bulk", "single"):
        m = HostMemory()
        regions.append(m.add(BUS, size, _file(tmp_path, name, size)))
        regions[-1].allowed = [(0, 4096), (4096 + 64, 4096 + 72)]
        mems.append(m)
    n = 400
    addrs = np.array([BUS - 128 + 64 * rng.randrange(size // 64 + 4) for _ in range(n)], np.uint64)
    rows = np.frombuffer(rng.randbytes(n * lanes), np.uint8).reshape(n, lanes)
    strb_choices = [(1 << 64) - 1, 0xFF << 8, 0x0F0F, 0, 1 << 63, 0xFFFF_0000_0000]
    strbs = np.array([rng.choice(strb_choices) for _ in range(n)], np.uint64)
    mems[0].write_beats(addrs, rows, strbs)
    for k in range(n):
        try:
            mems[1].write_strobed(int(addrs[k]), rows[k].tobytes(), int(strbs[k]))
        except BusError:
            pass
    assert bytes(regions[0].mem) == bytes(regions[1].mem)
    assert bytes(regions[0].guard_lo) == bytes(regions[1].guard_lo)
    assert bytes(regions[0].guard_hi) == bytes(regions[1].guard_hi)
    assert regions[0].outside == regions[1].outside
    assert mems[0].violations == mems[1].violations
    for m in mems:
        m.close()


def _word(text: bytes) -> int:
    return int.from_bytes(text, "little")


def test_write_channels_pair_beats_with_bursts_and_answer_each_burst():
    """The AXI4 write slave every Python engine uses: W may lead AW, B waits until taken, refusals are SLVERR."""
    mem = HostMemory()
    ring = mem.add_ring(BUS, 4, BUS - 64)                # a ring of 4 slots, its shadow word 64 bytes below
    ch = AxiWriteChannels(mem, lanes=8)
    assert ch.edge(None, (_word(b"abcdefgh"), 0xFF, 0), False) is None       # data before its address
    assert ch.edge((BUS, 1, 3), (_word(b"ijklmnop"), 0xFF, 1), False) == RESP_OKAY
    assert mem.read(BUS, 16) == b"abcdefghijklmnop" and ch.bursts == 1
    assert ch.edge(None, None, False) == RESP_OKAY                            # offered until taken
    assert ch.edge(None, None, True) is None
    assert ch.edge((BUS - 64, 0, 3), (_word(b"\x05" + bytes(7)), 0x0F, 1), False) == RESP_OKAY   # strobed
    assert mem.read(BUS - 64, 8) == b"\x05" + bytes(7)
    assert mem.clean()
    assert ch.edge((1 << 40, 0, 3), (0, 0xFF, 1), True) == RESP_SLVERR      # no buffer there
    assert mem.violations[-1][2] == "no buffer"
    ch.edge(None, None, True)
    ch.edge((BUS - 32, 0, 3), (1, 0xFF, 1), False)       # between the shadow word and the ring: recorded
    assert ring.outside
    ch.edge(None, None, True)
    ch.edge((BUS + 64, 1, 3), (2, 0xFF, 1), False)       # WLAST on the first of two beats
    assert "WLAST" in mem.violations[-1][2] and not mem.clean()
    mem.close()
