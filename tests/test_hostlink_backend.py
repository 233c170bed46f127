"""The host link backend over real UDP sockets (127.0.0.1), against a software model of the board's side.

The model is not the gateware (tests/test_hostlink_pins.py runs that): it answers
register requests from a dict and sends write records, so that the socket path,
retries, bounds checks and loss accounting of the backend are tested here.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import numpy as np
import pytest

from wiretick.host.contract import linkproto as lp
from wiretick.host.device import Device
from wiretick.host.hostlink import HostLinkBackend, LinkError, UdpTransport, parse_records
from wiretick.host.contract.ring import DATA_OFFSET, OFF_HEAD
from wiretick.host.ring import Ring
from wiretick.host.tick import TICK_DTYPE
from wiretick.host.contract.registers import REG_BY_NAME, REG_ID, REG_VERSION


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BoardModel:
    """Answers requests like the gateware (one record per answer), sends DATA packets on demand."""

    def __init__(self, addresses: lp.LinkAddresses, *, drop_first: int = 0, mute: bool = False):
        self.a = addresses
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addresses.device_ip, addresses.device_port))
        self.sock.settimeout(0.02)
        self.regs = {REG_BY_NAME["ID"].offset: REG_ID, REG_BY_NAME["VERSION"].offset: REG_VERSION,
                     REG_BY_NAME["DMA_MAX_LOG2"].offset: 24}
        self.drop_first = drop_first
        self.mute = mute
        self.seq = 0
        self.requests = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def packet(self, records: list[int]) -> None:
        with self._lock:
            self.seq += 1
            words = [lp.header_word(lp.KIND_DATA, self.seq)] + records
            self.sock.sendto(struct.pack(f"<{len(words)}Q", *words), (self.a.host_ip, self.a.host_port))

    def skip(self, n: int = 1) -> None:
        with self._lock:
            self.seq += n

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.requests += 1
            if self.mute or self.requests <= self.drop_first:
                continue
            hdr, opw, val = struct.unpack("<QQQ", data)
            tag = hdr >> 32
            op, off = opw & 0xFF, opw >> 32
            if op == lp.OP_READ:
                rec = [lp.record_word(lp.REC_READ, tag=tag), off | self.regs.get(off, 0) << 32]
            else:
                self.regs[off] = val & 0xFFFF_FFFF
                rec = [lp.record_word(lp.REC_WRITE_ACK, tag=tag), off]
            self.packet(rec)

    def close(self) -> None:
        self._stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def link(tmp_path):
    made = []

    def make(**kw):
        a = lp.LinkAddresses(device_ip="127.0.0.1", host_ip="127.0.0.1", device_port=_free_port(),
                             host_port=_free_port())
        board = BoardModel(a, **kw)
        backend = HostLinkBackend(UdpTransport(a), dma_dir=tmp_path, timeout=0.05, retries=3)
        made.append((board, backend))
        return board, backend
    yield make
    for board, backend in made:
        backend.close()
        board.close()


def _write_records(addr: int, data: bytes) -> list[int]:
    words = list(np.frombuffer(data, "<u8"))
    out = []
    for k in range(0, len(words), 8):
        chunk = words[k:k + 8]
        out += [lp.record_word(lp.REC_WRITE, nbeats=len(chunk)), addr + 64 * (k // 8)] + [int(w) for w in chunk]
    return out


def _wait(cond, timeout=2.0):
    import time
    t = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < t, "timed out"
        time.sleep(0.001)


def test_registers_and_a_ring_over_udp(link):
    board, backend = link()
    dev = Device(backend)                         # reads ID and VERSION over the socket
    assert dev.info.id == REG_ID
    dev.write("PORT", 26477)
    assert board.regs[REG_BY_NAME["PORT"].offset] == 26477
    assert dev.read("PORT") == 26477
    setup = dev.setup_ring(64, name="linkring")
    base = dev.read("RING_BASE")
    assert base == setup.dma.bus_address + DATA_OFFSET
    ticks = np.zeros(10, TICK_DTYPE)
    ticks["seq"] = np.arange(1, 11)
    ticks["price"] = np.arange(10) * 100
    ticks["flags"] = 0                             # lap 0
    board.packet(_write_records(base, ticks.tobytes()))
    board.packet([lp.record_word(lp.REC_WRITE, nbeats=1), setup.dma.bus_address + OFF_HEAD, 10])
    _wait(lambda: backend.stats.packets >= 4 + 2)
    with Ring(setup.source) as ring:
        # The receiver applies what it counted a moment later (under load, measurably):
        # the head write comes after the data, so ten ticks seen are the ten written.
        parts, deadline = [], time.monotonic() + 10
        while sum(len(p) for p in parts) < len(ticks) and time.monotonic() < deadline:
            parts.append(ring.poll().copy())
            time.sleep(0.001)
        got = np.concatenate(parts)
        assert np.array_equal(got["price"], ticks["price"])
    assert backend.error() is None
    backend.free_dma(setup.dma)
    assert not setup.dma.path.exists()


def test_retry_then_answer(link):
    board, backend = link(drop_first=2)
    assert backend.read32(0) == REG_ID
    assert backend.stats.retries == 2


def test_no_answer_says_what_did_not_answer(link):
    board, backend = link(mute=True)
    with pytest.raises(LinkError, match=r"register read of 0x000 \(ID\): the board at 127\.0\.0\.1:\d+ did not "
                                        r"answer \(4 tries"):
        backend.read32(0)


def test_out_of_bounds_writes_are_refused_and_losses_counted(link):
    board, backend = link()
    buf = backend.alloc_dma(8192, name="boundsring")
    mem = np.memmap(buf.path, np.uint8, "r")
    board.packet([lp.record_word(lp.REC_WRITE, nbeats=2), buf.bus_address + buf.size - 8, 1, 2])   # straddles the end
    board.packet([lp.record_word(lp.REC_WRITE, nbeats=1), buf.bus_address - 8, 3])                 # before it
    board.skip(2)
    board.packet([lp.record_word(lp.REC_WRITE_STROBED, nbeats=1), buf.bus_address + 16, 0x1122334455667788,
                  0x0F])
    _wait(lambda: backend.stats.packets == 3)
    assert backend.stats.refused == 2 and backend.stats.lost == 2
    assert not mem[buf.size - 8:].any()
    assert bytes(mem[16:24]) == bytes([0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0])
    err = backend.error()
    assert "2 link packets lost" in err and "2 writes outside every buffer refused" in err
    del mem
    backend.free_dma(buf)


def test_parse_records_refuses_malformed_packets():
    with pytest.raises(ValueError, match="not a DATA packet"):
        parse_records(struct.pack("<Q", lp.header_word(lp.KIND_REQUEST, 1)))
    with pytest.raises(ValueError, match="does not fit"):
        parse_records(struct.pack("<QQQ", lp.header_word(lp.KIND_DATA, 1), lp.record_word(lp.REC_WRITE, nbeats=4), 0))
    with pytest.raises(ValueError, match="unknown record kind 9"):
        parse_records(struct.pack("<QQ", lp.header_word(lp.KIND_DATA, 1), 9))


def test_apply_rate_measurement_applies_every_record(tmp_path):
    from wiretick.host.hostlink import measure_apply_rate
    res = measure_apply_rate(packets=50, dma_dir=tmp_path)
    assert res["tick_records_per_s"] == pytest.approx(18 * res["packets_per_s"])
    assert not list(tmp_path.iterdir())           # its buffer is gone
