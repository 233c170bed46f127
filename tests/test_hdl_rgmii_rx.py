"""RGMIIRx in Amaranth's simulator, from RGMII DDR waveforms on its pins (real and built
frames, inter-frame gaps, bad FCS, RX_ER) to 64-bit beats across the clock crossing."""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.sim import Simulator

from wiretick.hdl.rgmii_rx import RGMII_PERIOD, RGMIIRx, crc32_step, drive_rgmii, rgmii_symbols, with_fcs
from wiretick.host.capture import read_frames
from wiretick.host.frames import encode_message, mold_packet, udp_frame

CORE_PERIOD = 20e-9      # 50 MHz: a core clock unrelated to the PHY's


class _Pins:
    def __init__(self):
        self.rx_clk, self.rx_ctl, self.rx_data = Signal(), Signal(), Signal(4)


class _Harness(Elaboratable):
    """The front end with its receive domain clocked from the RX_CLK pin, as on a board."""

    def __init__(self, **kw):
        self.pins = _Pins()
        self.dut = RGMIIRx(domain="sync", rx_domain="rx", **kw)

    def elaborate(self, platform):
        m = Module()
        m.domains.rx = ClockDomain("rx")
        m.submodules.dut = self.dut
        m.d.comb += [
            ClockSignal("rx").eq(self.pins.rx_clk),
            self.dut.rx_ctl.eq(self.pins.rx_ctl),
            self.dut.rx_data.eq(self.pins.rx_data),
        ]
        return m


def _run(frames, *, symbols=None, ready=None, tail=200, **kw):
    """Simulate; returns (list of (bytes, error) frames as the beats give them, counters, beats)."""
    h = _Harness(**kw)
    dut = h.dut
    syms = symbols if symbols is not None else rgmii_symbols(frames)
    beats = []
    done = []
    out = {}

    async def pins(ctx):
        await drive_rgmii(ctx, h.pins, syms + [(0, 0, 0)] * tail)
        done.append(True)

    async def sink(ctx):
        cycle = 0
        while not done:
            r = 1 if ready is None else ready(cycle)
            ctx.set(dut.o_mac.ready, r)
            if r and ctx.get(dut.o_mac.valid):      # the beat the coming edge transfers
                p = ctx.get(dut.o_mac.payload)
                beats.append((p.data, p.nbytes, p.first, p.last, p.error))
            await ctx.tick()
            cycle += 1
        for name in ("frames", "bad", "dropped"):
            out[name] = ctx.get(getattr(dut, name))

    sim = Simulator(h)
    sim.add_clock(CORE_PERIOD, domain="sync")
    sim.add_testbench(pins)
    sim.add_testbench(sink)
    sim.run()
    return _frames_of(beats), out, beats


def _frames_of(beats):
    """Group beats into frames, checking the stream's framing rules as it goes."""
    frames, cur = [], None
    for data, nbytes, first, last, error in beats:
        assert (cur is None) == bool(first), "a frame opened inside a frame, or a beat outside one"
        if cur is None:
            cur = bytearray()
        assert 1 <= nbytes <= 8 and (last or nbytes == 8), f"nbytes {nbytes} on a {'last' if last else 'middle'} beat"
        cur += data.to_bytes(8, "little")[:nbytes]
        assert error == 0 or last, "error outside a last beat"
        if last:
            frames.append((bytes(cur), bool(error)))
            cur = None
    assert cur is None, "stream ended inside a frame"
    return frames


def _itch_frames(n, rng):
    out = []
    for i in range(n):
        msgs = [encode_message("D", stock_locate=rng.randrange(1, 500), timestamp=i, order_ref=rng.getrandbits(63))
                for _ in range(rng.randrange(1, 6))]
        out.append(udp_frame(mold_packet(100 + i, msgs)))
    return out


def test_crc32_step_equals_zlib():
    import zlib
    rng = random.Random(3)
    data = bytes(rng.randrange(256) for _ in range(50))
    m = Module()
    crc, byte = Signal(32), Signal(8)
    nxt = Signal(32)
    m.d.comb += nxt.eq(crc32_step(crc, byte))
    result = []

    async def bench(ctx):
        value = 0xFFFFFFFF
        for b in data:
            ctx.set(crc, value)
            ctx.set(byte, b)
            value = ctx.get(nxt)
        result.append(value)

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert result[0] ^ 0xFFFFFFFF == zlib.crc32(data)


def test_real_capture_frames_arrive_whole_across_the_crossing(shared_capture):
    batch = read_frames(shared_capture)
    frames = [batch.frame(i) for i in range(min(len(batch), 12))]
    got, counters, _ = _run(frames)
    assert got == [(f, False) for f in frames]
    assert counters == {"frames": len(frames), "bad": 0, "dropped": 0}


def test_bad_fcs_and_rx_er_flag_error_on_last_and_strip_the_fcs():
    rng = random.Random(4)
    frames = _itch_frames(9, rng) + [bytes(rng.randrange(256) for _ in range(n)) for n in (1, 7, 8, 9, 63, 64, 65)]
    bad, er = {1, 4, 10}, {6, 12}
    syms = rgmii_symbols(frames, bad_fcs=bad, rx_er=er, gap=12)
    got, counters, _ = _run(frames, symbols=syms)
    assert got == [(f, i in bad or i in er) for i, f in enumerate(frames)]
    assert counters == {"frames": len(frames) - 5, "bad": 5, "dropped": 0}


@pytest.mark.parametrize("delay_taps", [None, 80], ids=["phy-delay", "delayg"])
def test_minimum_gap_short_preamble_and_garbage_between_frames(delay_taps):
    rng = random.Random(5)
    frames = _itch_frames(6, rng)
    syms = []
    for i, f in enumerate(frames):
        # a PHY may shorten the preamble; a false carrier (no SFD) must not open a frame;
        # in-band status (RX_DV low, RX_ER high) between frames is not data
        syms += rgmii_symbols([f], preamble=1 + i % 7, gap=1 if i % 2 else 12)
        syms += [(1, 0, 0x0E), (1, 0, 0xD5), (0, 0, 0)] if i == 2 else [(0, 1, 0x0D)]
    got, counters, _ = _run(frames, symbols=syms, delay_taps=delay_taps)
    assert got == [(f, False) for f in frames]
    assert counters == {"frames": len(frames), "bad": 0, "dropped": 0}


def test_runt_with_no_bytes_beyond_the_fcs_is_counted_not_delivered():
    rng = random.Random(6)
    good = _itch_frames(2, rng)
    syms = (rgmii_symbols([good[0]]) + [(1, 0, 0x55)] * 7 + [(1, 0, 0xD5)] + [(1, 0, 0xAA)] * 3 + [(0, 0, 0)] * 12
            + rgmii_symbols([good[1]]))
    got, counters, _ = _run(good, symbols=syms)
    assert got == [(good[0], False), (good[1], False)]
    assert counters == {"frames": 2, "bad": 1, "dropped": 0}


def test_frames_longer_than_max_frame_are_cut_and_flagged():
    rng = random.Random(7)
    frames = [bytes(rng.randrange(256) for _ in range(n)) for n in (60, 64, 65, 100, 40)]
    got, counters, beats = _run(frames, max_frame=64, fifo_depth=16)
    assert [g[1] for g in got] == [False, False, True, True, False]
    assert [g[0] for g in got] == [f[:64] for f in frames]
    assert counters == {"frames": 3, "bad": 2, "dropped": 0}


def test_back_pressure_drops_whole_frames_and_counts_them():
    rng = random.Random(8)
    frames = [bytes(rng.randrange(256) for _ in range(rng.randrange(60, 130))) for _ in range(14)]
    # The consumer stalls for a long stretch: the 32-beat FIFO fills, and frames that
    # start while it cannot hold a whole 128-byte frame are dropped at their SFD.
    got, counters, _ = _run(frames, max_frame=128, fifo_depth=32, ready=lambda c: not 10 <= c < 300)
    assert counters["dropped"] > 0
    assert counters["frames"] + counters["dropped"] == len(frames)
    assert all(not err for _, err in got)
    # what arrives is whole frames, in order, a subsequence of what was sent
    it = iter(frames)
    assert all(any(g == f for f in it) for g, _ in got)
    assert len(got) == counters["frames"]


@pytest.mark.parametrize("second", [9, 12, 16, 17])
def test_frames_admitted_at_the_closest_spacing_never_overflow_the_crossing(second):
    # The FIFO has no full flag: the room check at each SFD is all that keeps it from
    # overflowing.  With the consumer stalled, a 7-beat frame, a 2-beat one and two
    # longest (8-beat) ones, one idle cycle apart with no preamble, so that the short
    # frame's beats are still on their way when the third SFD is judged: the smallest
    # FIFO allowed (16 beats) then holds 9 or 10, and the third frame must be dropped whole,
    # not overwrite the first (one beat fewer spare in the room check, and it would).
    rng = random.Random(second)
    frames = [bytes(rng.randrange(256) for _ in range(n)) for n in (56, second, 64, 64)]
    syms = rgmii_symbols(frames, preamble=0, gap=1)
    got, counters, _ = _run(frames, symbols=syms, max_frame=64, fifo_depth=16, ready=lambda c: c > 120, tail=400)
    assert got == [(frames[0], False), (frames[1], False)]
    assert counters == {"frames": 2, "bad": 0, "dropped": 2}


def test_fifo_depth_must_hold_a_whole_frame():
    with pytest.raises(ValueError, match="power of 2"):
        RGMIIRx(fifo_depth=100)
    with pytest.raises(ValueError, match="at least 258"):
        RGMIIRx(fifo_depth=256, max_frame=2048)


def test_with_fcs_appends_the_crc_least_significant_byte_first():
    assert with_fcs(b"") == b"\x00\x00\x00\x00"
    # the frame+FCS residue the receiver checks
    import zlib
    f = with_fcs(b"123456789")
    assert f[-4:] == (0xCBF43926).to_bytes(4, "little") and zlib.crc32(f) == 0x2144DF1C
