"""cocotb testbench of the board from its pins (see :mod:`wiretick.sim.pins`).

Loaded by Verilator through cocotb's runner (:func:`wiretick.sim.pins.run_pins`
writes the job file named by ``$WIRETICK_PINS_JOB``).  Per case, ``<out>/<name>/``
receives ``ticks.npy`` (what a :class:`~wiretick.host.ring.Ring` reader saw),
``counters.json`` and ``result.json``.

Timing on the pins: each RGMII receive clock is a free-running 125 MHz clock; the
testbench changes data and control on the clock's opposite edge, i.e. half a
period before the edge that samples them (the timing at the input registers once
the 2 ns receive delay is in place, as on the Versa, whose PHYs add it).  The
transmit pins are read right after each edge of the transmit clock (an
``ODDRX1F`` output changes on the edges of its clock).
"""

from __future__ import annotations

import collections
import json
import os
import time
from fractions import Fraction
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge, Timer

from wiretick.host.capture import open_capture
from wiretick.host.decode import DecodeConfig, NpyTickWriter
from wiretick.host.device import Device
from wiretick.host.hostlink import FrameTransport, HostLinkBackend
from wiretick.host.ring import Ring
from wiretick.sim.backend import reader_safe_chunks
from wiretick.sim.rgmii import IFG, Decoder, encode

RGMII_PS = 8000
#: How long one wait for a frame from the board may simulate (ps) before the backend looks at its clock.
WAIT_PS = 40_000_000


class RxDriver:
    """Plays RGMII receive cycles on a PHY's pins, with its clock free-running."""

    def __init__(self, dut, phy: str):
        self.clk = getattr(dut, f"{phy}__rx_clk")
        self.ctl = getattr(dut, f"{phy}__rx_ctl")
        self.data = getattr(dut, f"{phy}__rx_data")
        self.queue: collections.deque = collections.deque()
        self.wake = Event()
        self.idle = Event()
        self.idle.set()
        self.ctl.value = 0
        self.data.value = 0
        self.bytes = 0

    def send(self, cycles) -> None:
        self.queue.extend(cycles)
        self.idle.clear()
        self.wake.set()

    async def run(self) -> None:
        clk, ctl, data = self.clk, self.ctl, self.data
        while True:
            if not self.queue:
                self.idle.set()
                self.wake.clear()
                await self.wake.wait()
                continue
            c_hi, d_hi, c_lo, d_lo = self.queue.popleft()
            await FallingEdge(clk)
            ctl.value = c_hi
            data.value = d_hi
            await RisingEdge(clk)
            ctl.value = c_lo
            data.value = d_lo
            self.bytes += 1
            if not self.queue:
                await FallingEdge(clk)
                ctl.value = 0
                data.value = 0


class TxMonitor:
    """Reads a PHY's transmit pins edge by edge while TX_EN is high; decodes frames."""

    def __init__(self, dut, phy: str, clk):
        self.clk = clk
        self.txc = getattr(dut, f"{phy}__tx_clk")
        self.ctl = getattr(dut, f"{phy}__tx_ctl")
        self.data = getattr(dut, f"{phy}__tx_data")
        self.decoder = Decoder()
        self.frames: collections.deque = collections.deque()
        self.arrived = Event()
        self.short_gaps = 0
        self.bad_clock = 0
        self._last_end = None

    async def run(self) -> None:
        clk, ctl, data, txc = self.clk, self.ctl, self.data, self.txc
        while True:
            await RisingEdge(ctl)
            start = cocotb.simtime.get_sim_time("ps")
            if self._last_end is not None and start - self._last_end < IFG * RGMII_PS:
                self.short_gaps += 1
            while True:
                await ReadOnly()
                c_hi, d_hi, k_hi = int(ctl.value), int(data.value), int(txc.value)
                if not c_hi:
                    break
                await FallingEdge(clk)
                await ReadOnly()
                c_lo, d_lo, k_lo = int(ctl.value), int(data.value), int(txc.value)
                self.bad_clock += (k_hi, k_lo) != (1, 0)
                self.decoder.feed(c_hi, d_hi, c_lo, d_lo)
                await RisingEdge(clk)
            self._last_end = cocotb.simtime.get_sim_time("ps")
            frame = self.decoder.feed(0, 0, 0, 0)
            if frame is not None:
                self.frames.append(frame)
                self.arrived.set()


class PinTransport(FrameTransport):
    """The host backend's frames on PHY 1's pins (call from a :func:`cocotb.task.bridge` thread, or poll)."""

    def __init__(self, rx: RxDriver, mon: TxMonitor):
        super().__init__()
        self.rx, self.mon = rx, mon
        self.bad_fcs = 0

        async def send(frame: bytes) -> None:
            rx.send(encode(frame))

        async def wait() -> None:
            if not mon.frames:
                mon.arrived.clear()
                await First(mon.arrived.wait(), Timer(WAIT_PS, "ps"))

        self._send = resume(send)
        self._wait = resume(wait)

    def send_frame(self, frame: bytes) -> None:
        self._send(frame)

    def recv_frame(self, timeout: float) -> bytes | None:
        while True:
            if not self.mon.frames and timeout > 0:
                self._wait()
            if not self.mon.frames:
                return None
            f = self.mon.frames.popleft()
            if f.fcs_ok and f.preamble_ok and not f.errors:
                return f.data
            self.bad_fcs += 1

    def describe(self) -> str:
        return "the simulated board (PHY 1 pins)"


def _setup(dev: Device, case: dict):
    dev.configure(DecodeConfig(**case["config"]))
    ring = dev.setup_ring(case["nslots"], interval=case.get("interval", 64), name=case["ring"])
    dev.start()
    return ring


def _readout(dev: Device):
    counters = dev.counters()
    regs = {n: dev.read(n) for n in ("DMA_HEAD", "DMA_DROPPED", "DMA_DROP_EVENTS", "DMA_BUS_ERRORS", "PARSER_LOST")}
    return counters, regs


async def run_case(dut, box, backend, transport, feed: RxDriver, case, job) -> None:
    out = Path(job["out"]) / case["name"]
    out.mkdir(parents=True, exist_ok=True)
    if box.get("dev") is None:
        box["dev"] = await bridge(Device)(backend)
    dev = box["dev"]
    setup = await bridge(_setup)(dev, case)
    reader = Ring(setup.source)
    writer = NpyTickWriter(out / "ticks.npy")
    t0 = time.perf_counter()
    ps0 = cocotb.simtime.get_sim_time("ps")

    def poll() -> int:
        backend.pump()
        parts = reader.poll_parts()
        for part in parts:
            writer.write(part)
        return sum(len(p) for p in parts)

    frames = 0
    bad = 0
    with open_capture(case["capture"]) as cap:
        for batch in cap:
            for lo, hi in reader_safe_chunks(batch.length, max(1, setup.nslots // 4)):
                for i in range(lo, hi):
                    frame = bytes(batch.buf[batch.offset[i]:batch.offset[i] + batch.length[i]])
                    feed.send(encode(frame, bad_fcs=bool(batch.bad[i])))
                    bad += bool(batch.bad[i])
                await feed.idle.wait()
                await ClockCycles(dut.clk_sync, 200)      # through the parser, the DMA, the link
                poll()
                frames += hi - lo
    await ClockCycles(dut.clk_sync, 2000)
    poll()
    await bridge(dev.stop)()
    while poll():
        pass
    counters, regs = await bridge(_readout)(dev)
    writer.close()
    result = {"frames": frames, "bad_sent": bad, "wall_s": time.perf_counter() - t0,
              "sim_us": (cocotb.simtime.get_sim_time("ps") - ps0) / 1e6, "reader_lost": reader.lost,
              "regs": regs, "link": vars(backend.stats), "link_error": backend.error(),
              "bad_frames_from_board": transport.bad_fcs + transport.bad_frames, "last_bad": transport.last_bad,
              "short_gaps": box["mon"].short_gaps, "bad_clock": box["mon"].bad_clock}
    reader.close()
    (out / "counters.json").write_text(json.dumps(counters))
    (out / "result.json").write_text(json.dumps(result))


@cocotb.test()
async def run_job(dut):
    job = json.loads(Path(os.environ["WIRETICK_PINS_JOB"]).read_text())
    core_ps = int(Fraction(10**6) / Fraction(job["core_mhz"]))
    Clock(dut.clk_sync, core_ps, unit="ps", impl="gpi").start()
    Clock(dut.clk_tx, RGMII_PS, unit="ps", impl="gpi").start()
    # The PHYs' receive clocks: free-running, out of phase with the transmit clock.
    dut.phy0__rx_clk.value = 0
    dut.phy1__rx_clk.value = 0
    await Timer(1234, "ps")
    Clock(dut.phy0__rx_clk, RGMII_PS, unit="ps", impl="gpi").start()
    await Timer(2345, "ps")
    Clock(dut.phy1__rx_clk, RGMII_PS, unit="ps", impl="gpi").start()
    feed = RxDriver(dut, "phy0")
    host_rx = RxDriver(dut, "phy1")
    mon = TxMonitor(dut, "phy1", dut.clk_tx)
    cocotb.start_soon(feed.run())
    cocotb.start_soon(host_rx.run())
    cocotb.start_soon(mon.run())
    await ClockCycles(dut.clk_sync, 200)         # the PLL model locks, the resets release
    transport = PinTransport(host_rx, mon)
    backend = HostLinkBackend(transport, dma_dir=job["dma_dir"], prefix=job["dma_prefix"], timeout=30.0,
                              retries=1)
    box = {"mon": mon}
    try:
        for case in job["cases"]:
            await run_case(dut, box, backend, transport, feed, case, job)
    finally:
        backend.close()
