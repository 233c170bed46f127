"""Verilated models stepped from Python (wiretick.sim.interactive, pyverilator): cycle-exact checks.

The parser core's latency and ticks, edge by edge, against the Amaranth-simulator
figure (3 cycles) and the software reference; register reads and writes on the
whole device's AXI4-Lite port; the wrapper's errors.  The first run builds two
models (cached afterwards, see docs/pyverilator.md).
"""

from __future__ import annotations

import pytest

from wiretick.host.contract.registers import REG_BY_NAME, REG_ID, REG_VERSION
from wiretick.host.capture import FrameBatch
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.contract.formats import COUNTERS, MESSAGE_BY_CODE
from wiretick.host.frames import encode_message, mold_packet, udp_frame
from wiretick.sim.parser_bench import latency_frames
from wiretick.sim.amaranth_tb import frame_beats
from wiretick.sim.interactive import (AxiLiteMaster, BuildError, Model, SignalError, parser_model, peek_tick,
                                      poke_beat, top_model)

#: The parser's latency in Amaranth's simulator (hdl/README.md, ``parser.latency_cycles``).
PARSER_LATENCY = 3
SESSION = b"PYVERILAT1"


@pytest.fixture
def parser() -> Model:
    with parser_model() as m:
        yield m


@pytest.fixture
def top() -> Model:
    with top_model() as m:
        yield m


def run_frames(model: Model, frames: list[bytes], ts: list[int], *, drain: int = 12):
    """Feed ``frames`` back to back, one beat a cycle, ``o_tick.ready`` high (if the parser has a queue).

    Returns the ticks and the edge that took each, and the edge that accepted
    each beat (``beat_edges[f][b]``).
    """
    if "o_tick__ready" in model.ports:          # only with a fifo_depth: o_tick is otherwise always-ready
        model.poke("o_tick__ready", 1)
    ticks, tick_edges, beat_edges = [], [], []

    def sample() -> None:
        # Before edge `model.cycle`: a valid tick here is taken by that edge.
        tick = peek_tick(model)
        if tick is not None:
            ticks.append(tick)
            tick_edges.append(model.cycle)

    for frame, t in zip(frames, ts):
        model.poke("timestamp", t)
        edges = []
        for beat in frame_beats(frame):
            poke_beat(model, beat)
            edges.append(model.cycle)
            sample()
            model.step()
        beat_edges.append(edges)
    poke_beat(model, None)
    for _ in range(drain):
        sample()
        model.step()
    return ticks, tick_edges, beat_edges


def assert_ticks_equal(ticks, ref_ticks) -> None:
    assert len(ticks) == len(ref_ticks)
    names = [n for n in ref_ticks.dtype.names if n != "ts_rx"]
    for k, (a, b) in enumerate(zip(ticks, ref_ticks)):
        diff = {n: (int(a[n]), int(b[n])) for n in names if a[n] != b[n]}
        assert not diff, f"tick {k}: (verilated, reference) differ: {diff}"


def test_parser_hand_built_frame(parser):
    msgs = [encode_message("A", stock_locate=7, timestamp=34_200_000_000_123, order_ref=1001, side="B",
                           shares=300, stock="AAPL", price=1_893_500),
            encode_message("E", stock_locate=7, timestamp=34_200_000_000_456, order_ref=1001,
                           executed_shares=100, match_number=55),
            encode_message("X", stock_locate=7, order_ref=1001, cancelled_shares=50),
            encode_message("U", stock_locate=7, original_order_ref=1001, new_order_ref=1002, shares=150,
                           price=1_893_600),
            encode_message("D", stock_locate=7, order_ref=1002)]
    packet = mold_packet(1, msgs, session=SESSION)
    frame = udp_frame(packet, pad=False)
    ts = [5_000]
    ticks, tick_edges, beat_edges = run_frames(parser, [frame], ts)

    ref = decode_batch(FrameBatch.from_frames([frame], ts_ns=ts), DecodeConfig())
    assert_ticks_equal(ticks, ref.ticks)
    assert [chr(t["msg_type"]) for t in ticks] == list("AEXUD")

    # Each tick is valid exactly PARSER_LATENCY edges after the one that accepted
    # the beat holding its message's last byte.
    payload_start = len(frame) - len(packet)
    end = payload_start + 20              # the MoldUDP64 header
    for tick, edge, msg in zip(ticks, tick_edges, msgs):
        end += 2 + len(msg)
        assert edge - beat_edges[0][(end - 1) // 8] == PARSER_LATENCY, chr(tick["msg_type"])


def test_parser_latency_every_type_every_lane(parser):
    # The frames of the Amaranth-simulator benchmark: every type with its last byte
    # in every byte lane of a beat.
    frames, where = latency_frames()
    ts = [1_000_000 + 1000 * i for i in range(len(frames))]
    ticks, tick_edges, beat_edges = run_frames(parser, frames, ts)

    ref = decode_batch(FrameBatch.from_frames(frames, ts_ns=ts), DecodeConfig())
    assert_ticks_equal(ticks, ref.ticks)
    seen = set()
    for tick, edge in zip(ticks, tick_edges):
        if tick["msg_type"] == 0:         # an event, not a message
            continue
        f, last_byte, code = where[int(tick["feed_seq"])]
        assert edge - beat_edges[f][last_byte // 8] == PARSER_LATENCY, (code, last_byte % 8)
        seen.add((code, last_byte % 8))
    assert seen == {(code, lane) for code in MESSAGE_BY_CODE for lane in range(8)}


def test_parser_instances_are_independent(parser):
    other = parser_model()
    frame = udp_frame(mold_packet(1, [encode_message("D", order_ref=9)], session=SESSION))
    ticks, _, _ = run_frames(parser, [frame], [1])
    assert len(ticks) == 1 and other.cycle == 0
    # The other instance saw none of it: the same frame gives it the same tick.
    again, _, _ = run_frames(other, [frame], [1])
    assert len(again) == 1 and again[0].tobytes() == ticks[0].tobytes()
    other.close()


def test_top_registers_over_axi_lite(top):
    axi = AxiLiteMaster(top)
    regs = axi.registers()
    assert axi.read32(REG_BY_NAME["ID"].offset) == REG_ID
    # Address handshake at the first edge; the register file reads in three cycles
    # (address registered, a 16:1 select per group of words, the group), data the next.
    assert axi.last_cycles == 4
    assert regs.read("VERSION") == REG_VERSION
    assert regs.read("N_COUNTERS") == len(COUNTERS)
    assert regs.read("DMA_DATA_WIDTH") == 512
    # rw registers start at their reset values and read back what was written.
    assert regs.read("RING_LOG2") == REG_BY_NAME["RING_LOG2"].init == 12
    assert regs.read("CHECK_IP_CHECKSUM") == 1
    regs.write("PORT", 26477)
    assert axi.last_cycles == 2
    assert regs.read("PORT") == 26477
    regs.write("RING_BASE", 0x0000_1234_5678_9000)
    assert regs.read("RING_BASE") == 0x0000_1234_5678_9000
    # Byte strobes: only byte 0 of IP_DST is written.
    regs.write("IP_DST", 0xE936_0C6F)
    assert axi.write32(REG_BY_NAME["IP_DST"].offset, 0xAABB_CC01, strb=0b0001) == 0
    assert regs.read("IP_DST") == 0xE936_0C01
    # Writes to a const register are ignored.
    assert axi.write32(REG_BY_NAME["ID"].offset, 0) == 0
    assert regs.read("ID") == REG_ID


def test_top_counters_after_a_frame(top):
    # The parser counts frames while the DMA engine is off; a snapshot reads them.
    msgs = [encode_message("A", order_ref=1, shares=10, price=100), encode_message("D", order_ref=1)]
    frame = udp_frame(mold_packet(1, msgs, session=SESSION))
    for beat in frame_beats(frame):
        poke_beat(top, beat, port="mac")
        top.step()
    poke_beat(top, None, port="mac")
    top.step(8)
    counters = AxiLiteMaster(top).registers().counters()
    ref = decode_batch(FrameBatch.from_frames([frame], ts_ns=[0]), DecodeConfig())
    assert counters == ref.counters


def test_reset_and_wait(parser):
    frame = udp_frame(mold_packet(1, [encode_message("D", order_ref=9)], session=SESSION))
    run_frames(parser, [frame], [1], drain=4)
    assert parser.peek("counters") != 0
    parser.reset()
    assert parser.peek("counters") == 0
    with pytest.raises(TimeoutError, match="o_tick__valid"):
        parser.wait("o_tick__valid", timeout=5)
    assert parser.cycle == 1 + len(frame_beats(frame)) + 4 + 5


def test_trace_writes_waves(parser, tmp_path):
    frame = udp_frame(mold_packet(1, [encode_message("D", order_ref=9)], session=SESSION))
    path = parser.trace(tmp_path / "parser.vcd")
    run_frames(parser, [frame], [1], drain=4)
    assert parser.stop_trace() == path
    text = path.read_text()
    assert "o_tick__valid" in text and "$enddefinitions" in text
    # A cycle is 10 time units; the first step after trace() ends at 20.
    assert f"#{10 + 10 * parser.cycle}\n" in text


def test_unknown_and_misused_ports(parser):
    with pytest.raises(SignalError, match="o_tick__valid"):
        parser.peek("o_tick_valid")
    with pytest.raises(SignalError, match="is an output"):
        parser.poke("o_tick__valid", 1)
    with pytest.raises(SignalError, match="does not fit"):
        parser.poke("i_mac__valid", 2)
    # Ports keep Amaranth's init values where they are not 0.
    assert parser.peek("check_ip_checksum") == 1 and parser.peek("sequence_check") == 1


def test_build_failure_shows_the_log(tmp_path, monkeypatch):
    monkeypatch.setenv("WIRETICK_CACHE_DIR", str(tmp_path))
    bad = "module broken(input clk, output o);\n  assign o = undeclared_wire;\nendmodule\n"
    with pytest.raises(BuildError, match="undeclared_wire") as info:
        Model.build(bad, "broken")
    assert "verilator failed" in str(info.value)
    assert not list((tmp_path / "pyverilator").glob("*/"))        # nothing cached
    assert list((tmp_path / "pyverilator").glob("*.failed.log"))
