"""cocotb testbench of :class:`wiretick.hdl.top.WiretickTop`: the whole path, host API included.

The simulated toplevel is :class:`wiretick.sim.cocotb_harness.CocotbHarness`: the
top plus two HDL-side buffers that let Python drive the MAC and serve host
memory a block of cycles at a time ("bulk" transactors, the default: cocotb's
cost per awaited clock edge is what limits a cycle-by-cycle testbench).  With
``transactors="python"`` the harness passes the top's ports through and the
classic cocotb transactors below (:class:`MacDriver`, :class:`AxiWriteSlave`)
work cycle by cycle; both modes are tested against the same scoreboard.

Loaded by the simulator (Verilator or Icarus) through cocotb's Python runner
(:mod:`wiretick.sim.cocotb_run` builds and starts it; never a Makefile).  What
it simulates, for every case of a job file (``$WIRETICK_COCOTB_JOB``, JSON written
by :func:`wiretick.sim.cocotb_run.run_job`):

- **registers** through the host driver: a :class:`wiretick.host.device.Device` on a
  :class:`CocotbBackend`, whose ``read32``/``write32`` are transactions of
  cocotbext-axi's ``AxiLiteMaster`` on the top's ``s_axil`` port.  The driver's code
  is synchronous; it runs in a cocotb :func:`~cocotb.task.bridge` thread and each
  register access :func:`~cocotb.task.resume`\\ s the simulation until the
  transaction completes (the simulator is paused while driver code runs between
  accesses, as a CPU's code runs between bus cycles);
- **host memory**: the DMA buffers the driver allocates are ring files
  (``/dev/shm``) mapped at their bus addresses in a :class:`~wiretick.sim.hostmem.HostMemory`;
  the ``m_axi`` writes (served by the harness's capture buffer and committed by
  :class:`BulkMemory`, or by :class:`AxiWriteSlave` cycle by cycle) are stored
  straight into that mapping, with guard zones around each buffer
  (cocotbext-axi's ``AxiSlaveWrite`` requires AXI IDs, which the engine has none of).
  As on PCIe, a register read completes only after the DMA writes
  acknowledged before it are visible in host memory;
- **the MAC**: frames from a capture, 8 bytes a beat, one beat per cycle (line
  rate), with ``gap`` idle cycles between frames (12-byte IFG + 8-byte preamble =
  20 bytes = 3 beats by default), the last beat flagged ``error`` for frames the
  capture marks bad (pcapng CRC error) (:class:`BulkMac`, or :class:`MacDriver`);
- **the strategy**: a :class:`wiretick.host.ring.Ring` reader of the same file, polled
  between chunks of frames small enough that it is never lapped, writing what
  it reads to ``ticks.npy``.

Per case, ``<out>/<name>/`` receives ``ticks.npy`` (what the ring reader saw),
``counters.json`` (``Device.counters()`` after the run) and ``result.json``
(cycles, wall time, status registers, guard and bounds violations).

``$WIRETICK_COCOTB_PROFILE``: a file to write a cProfile of the simulation
thread's Python to (``python -m pstats`` reads it).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, RisingEdge, Timer
from cocotbext.axi import AxiLiteBus, AxiLiteMaster

from wiretick.hdl.top import DEFAULT_NS_PER_CYCLE
from wiretick.host.capture import open_capture
from wiretick.host.decode import DecodeConfig, NpyTickWriter, SequenceState
from wiretick.host.device import Device
from wiretick.host.contract.ring import device_writes
from wiretick.host.ring import Ring, without_lap_tags
from wiretick.sim.backend import SimBackend, reader_safe_chunks
from wiretick.sim.beats import ENTRY_BYTES, IFG_BEATS, frames_to_entries
from wiretick.sim.hostmem import AxiWriteChannels, HostMemory

__all__ = ["CocotbBackend", "AxiWriteSlave", "MacDriver", "BulkMac", "BulkMemory", "run_job"]

#: ps per cycle of the simulated clock (the top's default: 156.25 MHz, 6.4 ns).
PERIOD_PS = int(DEFAULT_NS_PER_CYCLE * 1000)
#: Registers read into result.json after every case (latched by the counters' SNAPSHOT).
STATUS_REGS = ("DMA_HEAD", "DMA_DROPPED", "DMA_DROP_EVENTS", "DMA_BUS_ERRORS", "PARSER_LOST", "CLOCK")
#: Idle cycles after the last frame: the parser's pipeline (3 cycles, an abort
#: event one more) and the DMA engine's queue drain well within them.
DRAIN_CYCLES = 32


class AxiWriteSlave:
    """The AXI4 write slave of host memory (:class:`~wiretick.sim.hostmem.AxiWriteChannels`) on the top's ports.

    ``AWREADY``/``WREADY`` are held high; at every rising edge the bus is sampled
    (the values the edge takes) and B is driven as the channels say.  (Not
    cocotbext-axi's ``AxiSlaveWrite``: it requires AXI IDs; docs/simulation.md.)
    """

    def __init__(self, dut, host: HostMemory, prefix: str = "m_axi__"):
        g = lambda n: getattr(dut, prefix + n)  # noqa: E731
        self.clk = dut.clk
        self.awvalid, self.awaddr, self.awlen, self.awsize = g("awvalid"), g("awaddr"), g("awlen"), g("awsize")
        self.wvalid, self.wdata, self.wstrb, self.wlast = g("wvalid"), g("wdata"), g("wstrb"), g("wlast")
        self.bvalid, self.bresp, self.bready = g("bvalid"), g("bresp"), g("bready")
        self.channels = AxiWriteChannels(host, len(self.wdata) // 8)
        g("awready").value = 1
        g("wready").value = 1
        self.bvalid.value = 0
        self.bresp.value = 0
        self._task = cocotb.start_soon(self._run())

    @property
    def bursts(self) -> int:
        return self.channels.bursts

    async def _run(self) -> None:
        edge = RisingEdge(self.clk)
        while True:
            await edge
            aw = (int(self.awaddr.value), int(self.awlen.value), int(self.awsize.value)) if self.awvalid.value else None
            w = (int(self.wdata.value), int(self.wstrb.value), int(self.wlast.value)) if self.wvalid.value else None
            resp = self.channels.edge(aw, w, bool(self.bvalid.value and self.bready.value))
            self.bvalid.value = int(resp is not None)
            self.bresp.value = resp or 0


class BulkMemory:
    """Bulk transactor: commits the writes the harness captured into host memory.

    :meth:`drain` reads the whole capture ring in one access (per-access cost
    dominates), stores the new entries and acknowledges them; it runs when the
    harness asks (``cap_attn``) and whenever the testbench looks at host memory.
    """

    def __init__(self, dut, host: HostMemory, depth: int):
        from wiretick.sim.cocotb_harness import CAP_BITS
        self.host = host
        self.depth = depth
        self.entry = CAP_BITS // 8
        self.data, self.wr, self.rd_port, self.attn = dut.cap_data, dut.cap_wr, dut.cap_rd, dut.cap_attn
        self.rd = 0
        self.rd_port.value = 0
        self.writes = 0
        self._task = cocotb.start_soon(self._run())

    def drain(self) -> None:
        wr = int(self.wr.value)
        if wr == self.rd:
            return
        D, E = self.depth, self.entry
        # The value as '0'/'1' characters, most significant first; numpy turns them
        # into bytes several times faster than int(text, 2) does.
        text = np.frombuffer(str(self.data.value).encode("ascii"), np.uint8)[::-1] - np.uint8(48)
        if text.max(initial=0) > 1:
            raise ValueError(f"cap_data holds X or Z: {str(self.data.value)[:80]}...")
        raw = np.packbits(text, bitorder="little").reshape(D, E)
        n = (wr - self.rd) % (2 * D)
        rows = raw[(self.rd + np.arange(n)) % D]
        addrs = rows[:, :8].copy().view("<u8")[:, 0] & ~np.uint64(63)     # the beat's 64-byte lane base
        strbs = rows[:, E - 8:].copy().view("<u8")[:, 0]
        # A refused write is recorded in host.violations (the harness answers OKAY regardless).
        self.host.write_beats(addrs, rows[:, 8:E - 8], strbs)
        self.writes += n
        self.rd = wr
        self.rd_port.value = wr

    async def _run(self) -> None:
        attn = RisingEdge(self.attn)
        while True:
            await attn
            self.drain()


class CocotbBackend(SimBackend):
    """A :class:`~wiretick.host.device.Backend` on the simulated top: registers over AXI4-Lite.

    Call its methods from a :func:`cocotb.task.bridge` thread (``Device`` code is
    synchronous); each register access resumes the simulation until the
    AXI4-Lite transaction has completed.  A read returns only once the DMA
    writes acknowledged before it are in host memory (``memory``: the bulk
    capture, emptied then), as PCIe orders a read completion after earlier
    posted writes.
    """

    name = "cocotb"

    def __init__(self, axil: AxiLiteMaster, host: HostMemory, *, memory: BulkMemory | None = None,
                 dma_dir: str | os.PathLike = "/dev/shm", prefix: str = "wiretick-cocotb", keep_rings: bool = False):
        async def read(offset: int) -> int:
            value = await axil.read_dword(offset)
            if memory is not None:
                memory.drain()
            return value

        self._read = resume(read)
        self._write = resume(axil.write_dword)
        super().__init__(dma_dir, prefix=prefix, keep_rings=keep_rings)
        self.host = host
        self.ended = False

    def read32(self, offset: int) -> int:
        return int(self._read(offset))

    def write32(self, offset: int, value: int) -> None:
        self._write(offset, value)

    def map_bus(self, bus_address: int, size: int, path) -> None:
        self.host.add(bus_address, size, path)

    def unmap_bus(self, bus_address: int) -> None:
        self.host.remove(bus_address)

    def input_ended(self) -> bool:
        return self.ended

    def close(self) -> None:
        self.host.close()


class MacDriver:
    """Python transactor: drives the MAC stream itself, one 8-byte beat a cycle (``xtor_python``)."""

    def __init__(self, dut, gap: int = IFG_BEATS):
        self.gap = gap
        self.clk = dut.clk
        self.clk_edge = RisingEdge(dut.clk)
        self.valid = dut.mac__valid
        self.payload = dut.mac__payload
        self.beats = 0

    async def frames(self, batch, lo: int, hi: int) -> None:
        """Frames ``lo..hi-1`` of ``batch``, each followed by the inter-frame gap."""
        valid, payload, edge = self.valid, self.payload, self.clk_edge
        for i in range(lo, hi):
            o, n = int(batch.offset[i]), int(batch.length[i])
            frame = batch.buf[o:o + n].tobytes()
            bad = bool(batch.bad[i])
            valid.value = 1
            for b in range(0, n, 8):
                k = min(8, n - b)
                last = b + 8 >= n
                # mac_beat_layout: data[0:64], nbytes[64:68], first[68], last[69], error[70]
                payload.value = (int.from_bytes(frame[b:b + k], "little") | (k << 64) | ((b == 0) << 68)
                                 | (last << 69) | ((bad and last) << 70))
                await edge
            self.beats += (n + 7) // 8
            if self.gap:
                valid.value = 0
                for _ in range(self.gap):
                    await edge

    async def finish(self, cycles: int) -> None:
        """Idle the MAC for ``cycles`` cycles (the pipelines drain)."""
        self.valid.value = 0
        await ClockCycles(self.clk, cycles)


class BulkMac:
    """Bulk transactor: entries (beats and gaps) go to the harness's feeder a block at a time.

    Python wakes up once per block (when the feeder takes a word) and writes
    the next word at once, so the MAC sees one beat every cycle.
    """

    def __init__(self, dut, block: int, gap: int = IFG_BEATS):
        self.gap = gap
        self.block = block
        self.word = dut.feed_word
        self.seq = dut.feed_seq
        self.taken = dut.feed_taken
        self._seq = int(self.seq.value)
        self._pending = np.zeros(0, np.uint8)
        self.beats = 0

    async def _send(self, chunk: bytes) -> None:
        if int(self.taken.value) != self._seq:          # the previous word is still waiting
            await self.taken.value_change
        self.word.value = int.from_bytes(chunk, "little")
        self._seq ^= 1
        self.seq.value = self._seq

    async def frames(self, batch, lo: int, hi: int) -> None:
        """Frames ``lo..hi-1`` of ``batch`` (whole words now; the rest of the last one later)."""
        ent = frames_to_entries(batch.buf, batch.offset[lo:hi], batch.length[lo:hi], batch.bad[lo:hi], self.gap)
        self.beats += int(((batch.length[lo:hi] + 7) // 8).sum())
        data = np.concatenate([self._pending, ent]) if len(self._pending) else ent
        size = self.block * ENTRY_BYTES
        whole = len(data) // size * size
        raw = data[:whole].tobytes()
        for p in range(0, whole, size):
            await self._send(raw[p:p + size])
        self._pending = data[whole:]

    async def finish(self, cycles: int) -> None:
        """Play what is left, then idle the MAC for ``cycles`` cycles."""
        size = self.block * ENTRY_BYTES
        if len(self._pending):
            await self._send(self._pending.tobytes().ljust(size, b"\0"))   # idle entries after the last beat
            self._pending = np.zeros(0, np.uint8)
        if int(self.taken.value) != self._seq:
            await self.taken.value_change
        # One Timer instead of an await per edge: the word (at most a block) plays, then the idle cycles.
        await Timer((self.block + cycles) * PERIOD_PS, "ps")


def _setup(dev: Device, host: HostMemory, case: dict):
    dev.configure(DecodeConfig(**case["config"]))
    join = case.get("join")
    dev.join(None if join is None else SequenceState(**{**join, "session": bytes.fromhex(join["session"])}))
    ring = dev.setup_ring(case["nslots"], interval=case.get("interval", 64), name=case["ring"])
    region = next(r for r in host.regions if r.bus == ring.dma.bus_address)
    region.allowed = list(device_writes(ring.nslots))
    dev.start()
    return ring


def _readout(dev: Device) -> tuple[dict, dict]:
    counters = dev.counters()                       # SNAPSHOT, then the counters
    return counters, {name: dev.read(name) for name in STATUS_REGS}   # latched by the same SNAPSHOT


def _cycles() -> int:
    return cocotb.simtime.get_sim_time("ps") // PERIOD_PS


async def run_case(dut, box: dict, backend: CocotbBackend, host: HostMemory, case: dict, job: dict,
                   memory: BulkMemory | None) -> None:
    """One case: configure and start the device, play the capture, stop, read back; write the results."""
    log = logging.getLogger("wiretick.cocotb")
    out = Path(job["out"]) / case["name"]
    out.mkdir(parents=True, exist_ok=True)
    if box.get("dev") is None:
        box["dev"] = await bridge(Device)(backend)
    dev = box["dev"]
    backend.ended = False
    n_viol = len(host.violations)
    setup = await bridge(_setup)(dev, host, case)
    reader = Ring(setup.source)
    writer = NpyTickWriter(out / "ticks.npy")
    gap = case.get("gap", IFG_BEATS)
    mac = BulkMac(dut, job["block"], gap) if memory is not None else MacDriver(dut, gap)
    progress = job.get("progress_file")
    # Poll the reader between chunks of frames it cannot be lapped by (reader_safe_chunks).
    budget = max(1, setup.nslots // 4)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    c0 = _cycles()
    frames_done = 0

    # `wiretick sim` writes ticks as the parser made them; the tests check the ring's lap tags too.
    keep_lap = case.get("lap_tags", True)

    def poll() -> int:
        if memory is not None:
            memory.drain()
        parts = reader.poll_parts()
        for part in parts:
            writer.write(part if keep_lap else without_lap_tags(part))
        return len(parts)

    with open_capture(case["capture"]) as cap:
        for batch in cap:
            for lo, hi in reader_safe_chunks(batch.length, budget):
                await mac.frames(batch, lo, hi)
                poll()
                frames_done += hi - lo
                if progress:
                    Path(progress).write_text(f"{frames_done}\n")
    t_fed = time.perf_counter()
    await mac.finish(DRAIN_CYCLES)
    backend.ended = True
    t_drained = time.perf_counter()
    await bridge(dev.stop)()
    while poll():
        pass
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    cycles = _cycles() - c0
    counters, regs = await bridge(_readout)(dev)
    writer.close()
    lost = reader.lost
    reader.close()
    region = next(r for r in host.regions if r.bus == setup.dma.bus_address)
    result = {
        "cycles": int(cycles), "wall_s": wall, "cpu_s": cpu, "frames": frames_done, "beats": mac.beats,
        # where the wall time went: playing the frames, the last block and idle cycles, stopping the device
        "wall_phases": {"frames": t_fed - t0, "drain": t_drained - t_fed, "stop": wall - (t_drained - t0)},
        "reader_lost": lost, "regs": regs, "guards_intact": host.guards_intact(),
        "violations": [list(v) for v in host.violations[n_viol:]] + region.outside,
        "ring": str(setup.dma.path), "nslots": setup.nslots, "transactors": job["transactors"],
    }
    if memory is not None:
        result["capture_errors"] = int(dut.cap_errors.value)
    (out / "counters.json").write_text(json.dumps(counters))
    (out / "result.json").write_text(json.dumps(result))
    if progress:
        Path(progress).write_text(f"{frames_done}\n")
    log.info("case %s: %d frames, %d cycles in %.2f s (%.0f cycles/s)", case["name"], frames_done, cycles,
             wall, cycles / wall if wall else 0)


@cocotb.test()
async def run_job(dut):
    """Every case of the job file, one after the other, on one simulated device."""
    job = json.loads(Path(os.environ["WIRETICK_COCOTB_JOB"]).read_text())
    if job["cases"]:
        # Compile (or load) the numba kernels before any timing starts.
        with open_capture(job["cases"][0]["capture"]) as cap:
            batch = next(iter(cap), None)
        if batch is not None and len(batch):
            frames_to_entries(batch.buf, batch.offset[:1], batch.length[:1], batch.bad[:1])
    dut.rst.value = 1
    dut.mac__valid.value = 0
    dut.mac__payload.value = 0
    dut.feed_word.value = 0
    python = job["transactors"] == "python"
    dut.xtor_python.value = int(python)
    dut.feed_seq.value = 0
    dut.cap_rd.value = 0
    axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil_"), dut.clk, dut.rst)
    axil.write_if.log.setLevel(logging.WARNING)
    axil.read_if.log.setLevel(logging.WARNING)
    host = HostMemory()
    if python:
        AxiWriteSlave(dut, host)
        memory = None
    else:
        for n in ("awready", "wready", "bvalid", "bresp"):
            getattr(dut, f"m_axi__{n}").value = 0
        memory = BulkMemory(dut, host, job["depth"])
    # Every input is driven before the first clock edge: the harness registers
    # some of them, and an X sampled there would stay until the reset is over
    # (cocotbext-axi refuses to sample X on a handshake).
    await Timer(PERIOD_PS, "ps")
    # The C++ clock, also with Icarus (cocotb's default there is a Python
    # coroutine, woken every half cycle); nothing else drives clk.
    Clock(dut.clk, PERIOD_PS, unit="ps", impl="gpi").start()
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    backend = CocotbBackend(axil, host, memory=memory, dma_dir=job["dma_dir"], prefix=job["dma_prefix"],
                            keep_rings=job["keep_rings"])
    box: dict = {}
    # The simulator process holds numba, numpy and cocotb: hundreds of thousands of
    # long-lived objects that every full collection would walk again, while the
    # testbench allocates short-lived ones (triggers, values) all the time.
    gc.collect()
    gc.freeze()
    prof = None
    if os.environ.get("WIRETICK_COCOTB_PROFILE"):
        import cProfile
        prof = cProfile.Profile(time.process_time)     # CPU time: wall time swings with the machine's load
        prof.enable()
    try:
        for case in job["cases"]:
            await run_case(dut, box, backend, host, case, job, memory)
    finally:
        if prof is not None:
            prof.disable()
            prof.dump_stats(os.environ["WIRETICK_COCOTB_PROFILE"])
        dev = box.get("dev")
        if dev is not None and dev.ring is not None:
            backend.free_dma(dev.ring.dma)
        backend.close()
