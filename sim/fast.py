"""The fast replay engine: the Verilated top in-process, driven from C, controlled from Python.

Verilator compiles the Verilog of :class:`wiretick.hdl.top.WiretickTop` (on a
board that registers its reset and MAC stream, :func:`fast_verilog`) together
with a small C++ harness (``sim/cpp/harness.cpp``) into a shared library, cached
by a hash of the Verilog, the harness and the flags (:mod:`wiretick.sim.build`).
Python loads it with ctypes.  The harness plays the MAC (frames straight from
a capture's memory-mapped buffer, one 8-byte beat a cycle with the inter-frame
gap), the host memory (DMA writes are ``memcpy``\\ s into the mapped ring file:
the strategy's :class:`~wiretick.host.ring.Ring` sees them with no copy) and the
host CPU's register accesses (AXI4-Lite), so no Python runs per cycle.

Layers:

- :class:`FastSim`: the library's API (create, ``map``, ``reg_read``/``reg_write``,
  ``push_frames``, ``run_until_idle``, stats, traces);
- :class:`FastBackend`: a :class:`wiretick.host.device.Backend` on it, so the
  driver code is the one real hardware gets (``Device(FastBackend())``);
- :func:`simulate`: a capture through the device into a ring, ticks collected
  by a ring reader as they come (the engine of ``wiretick sim --engine fast``).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from wiretick.host.device import Device, DmaBuffer
from wiretick.host.errors import WiretickError

from .backend import SimBackend, reader_safe_chunks
from .build import (MODEL_FLAGS, X_FAST, cached_dir, design_inputs, drop_objects, hash_inputs, make_command,
                    run_step, tool_version, verilator_command)

__all__ = ["SimError", "TRACE_FORMATS", "waves_format", "build_library", "fast_verilog", "fast_verilog_file", "FastSim", "FastBackend", "SimRun",
           "simulate", "STAT_NAMES"]

_HERE = Path(__file__).resolve().parent
HARNESS = _HERE / "cpp" / "harness.cpp"

#: Verilator options of the fast build (besides :data:`~wiretick.sim.build.MODEL_FLAGS`).
VERILATOR_FLAGS = ["-O3", *X_FAST, "--noassert", *MODEL_FLAGS]
#: ``-fno-semantic-interposition``/``-fno-plt``: calls between the model's functions in
#: the shared library go straight to them, not through the PLT (a few percent; portable
#: GCC and Clang flags, nothing tied to the build machine's CPU).  ``-O3``: about 10%
#: more simulated cycles a second than ``-O2`` (GCC 12, A/B runs alternated in one
#: session; about 4% fewer instructions a cycle), ``-Os`` (Verilator's default for
#: the model) is a third slower than ``-O2``.  Tried and left out: ``-march=native``
#: and ``-mtune=native`` (no faster, or slower), ``-flto`` (slower: more instructions),
#: ``--output-split 0`` (within noise of ``-O3`` alone), ``--inline-mult`` (same code).
CXX_FLAGS = ["-O3", "-fPIC", "-fno-semantic-interposition", "-fno-plt", "-std=c++17"]
#: ``make`` variables of the build: Verilator's makefiles add their own optimization
#: level (``-Os``) to the model's runtime objects and, after ours, to the harness;
#: every object is built at the level of :data:`CXX_FLAGS` instead.
MAKE_VARS = ["OPT_FAST=-O3", "OPT_GLOBAL=-O3"]

STAT_NAMES = ("cycles", "beats", "frames", "bursts", "bytes_written", "unmapped", "guard_hits", "outside",
              "protocol_errors", "slverr")


class SimError(WiretickError, RuntimeError):
    """The simulator could not be built or reported a failure."""


#: Verilog module the harness drives: :class:`~wiretick.hdl.top.WiretickTop` as the
#: board puts it (see :func:`fast_verilog`).
FAST_TOP = "wiretick_fast"


def _fast_top(**top_kw):
    """The board around the top: same ports, reset and MAC stream through registers.

    Verilator evaluates everything that depends on a top-level input each time the
    model is evaluated, before the clock edge, and again after it.  As ports of the
    design, ``rst`` (it feeds the next-state logic of every register) and the MAC
    stream (the header parser's combinational checks hang on it) would put most of
    the design in that input-dependent part; as register outputs they do not.  On
    a board too the reset reaches the fabric through a synchronizer register, and a
    MAC core's receive stream comes out of registers.  What it changes: the design
    sees reset, and every MAC beat, one cycle after the harness drives it.  The
    AXI ports are wired straight through (their handshakes are combinational).
    """
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.wiring import In

    from wiretick.hdl.top import WiretickTop, registered_reset_domains

    class FastTop(wiring.Component):
        def __init__(self):
            self.top = WiretickTop(**top_kw)
            super().__init__({"clk": In(1), "rst": In(1), **dict(self.top.signature.members)})

        def elaborate(self, platform):
            m = Module()
            registered_reset_domains(m, self.clk, self.rst, raw="board")
            m.submodules.top = top = self.top
            m.d.board += [top.mac.valid.eq(self.mac.valid), top.mac.payload.eq(self.mac.payload)]
            wiring.connect(m, wiring.flipped(self.s_axil), top.s_axil)
            wiring.connect(m, top.m_axi, wiring.flipped(self.m_axi))
            return m

    return FastTop()


def fast_verilog(**top_kw) -> str:
    """Verilog of the module the fast engine simulates, :data:`FAST_TOP` (``top_kw``: the top's parameters)."""
    from amaranth.back import verilog

    from wiretick.hdl.common import toplevel_ports
    dut = _fast_top(**top_kw)
    return verilog.convert(dut, name=FAST_TOP, ports=toplevel_ports(dut))


def fast_verilog_file(**top_kw) -> Path:
    """:func:`fast_verilog`, cached (by the design's sources and the board's)."""
    import inspect

    key = hash_inputs(*design_inputs(), inspect.getsource(_fast_top), FAST_TOP,
                      {k: str(v) for k, v in sorted(top_kw.items())})

    def build(d: Path) -> None:
        (d / f"{FAST_TOP}.v").write_text(fast_verilog(**top_kw))

    return cached_dir("verilog", key, build) / f"{FAST_TOP}.v"


#: Wave formats a build can write: Verilator's option for each.
TRACE_FORMATS = {"fst": "--trace-fst", "vcd": "--trace"}
_COMPAT = _HERE / "cpp" / "compat"


def _has_header(name: str) -> bool:
    """Whether the C++ compiler finds ``<name>``."""
    res = subprocess.run(["c++", "-x", "c++", "-E", "-"], input=f"#include <{name}>\n", capture_output=True,
                         text=True)
    return res.returncode == 0


def _trace_build_flags(trace: str) -> list[str]:
    """Extra compiler flags of a build that writes ``trace`` waves.

    Verilator's FST writer compresses with LZ4.  Many machines have the LZ4
    runtime (``liblz4.so.1``) but not its development package (the header and
    the ``liblz4.so`` link name); for them the two entry points it calls are
    declared in ``sim/cpp/compat/lz4.h``, and the build links through a
    one-line linker script (see ``build``).
    """
    if trace != "fst" or _has_header("lz4.h"):
        return []
    return [f"-I{_COMPAT}"]


def _trace_format(trace) -> str | None:
    if trace in (None, False):
        return None
    if trace is True:
        return "fst"
    if trace not in TRACE_FORMATS:
        raise SimError(f"unknown wave format {trace!r}; choose from {', '.join(TRACE_FORMATS)}")
    return trace


def build_library(*, trace: str | bool | None = None, log=None, **top_kw) -> Path:
    """The shared library of the top and the harness (cached).

    ``trace``: ``"fst"`` or ``"vcd"`` for a build that can write waves (slower
    to run), None for the fast one.
    """
    from wiretick.host.progress import activity

    trace = _trace_format(trace)
    verilog = fast_verilog_file(**top_kw)
    vflags = VERILATOR_FLAGS + ([TRACE_FORMATS[trace]] if trace else [])
    extra_cxx = _trace_build_flags(trace) if trace else []
    cxx = CXX_FLAGS + extra_cxx
    key = hash_inputs(verilog, HARNESS, vflags, cxx, MAKE_VARS, tool_version("verilator"),
                      *([_COMPAT / "lz4.h"] if extra_cxx else []))

    def build(d: Path) -> None:
        obj = d / "obj"
        ldflags = ["-shared"]
        if extra_cxx:
            # `-llz4` finds this script, which names the runtime library by its soname
            # (GNU ld applies -L to every -l wherever it appears).
            (d / "lz4link").mkdir()
            (d / "lz4link" / "liblz4.so").write_text("INPUT(liblz4.so.1)\n")
            ldflags.append(f"-L{d / 'lz4link'}")
        cmd = verilator_command([verilog], FAST_TOP, prefix="Vtop", mdir=obj, exe=HARNESS,
                                output=d / "libwiretick_sim.so", flags=vflags, cflags=cxx, ldflags=ldflags)
        # On a terminal, how long the build has run (it takes a minute or so); a line per step either way.
        with activity("fast engine build", quiet=log is None, stream=log) as bar:
            for step in (cmd, make_command(obj, "Vtop.mk", *MAKE_VARS)):
                if log is not None:
                    bar.write(f"fast engine build: {' '.join(step[:3])} ...", file=log)
                status, text = run_step(step, activity=bar)
                if status != 0:
                    hint = ""
                    if trace == "fst" and "lz4" in text:
                        hint = ("\nFST waves need the LZ4 library (Debian: liblz4-1 or liblz4-dev); "
                                "or write VCD instead: a wave file name ending in .vcd")
                    raise SimError(f"fast engine build failed ({step[0]}):\n{text}{hint}")
        drop_objects(obj)        # the library stays

    return cached_dir("fast", key, build) / "libwiretick_sim.so"


_c = ctypes
_LIBS: dict[Path, ctypes.CDLL] = {}


def _load(path: Path) -> ctypes.CDLL:
    lib = _LIBS.get(path)
    if lib is not None:
        return lib
    lib = ctypes.CDLL(str(path))
    P = _c.c_void_p
    sig = {
        "wt_create": (P, [_c.c_double]),
        "wt_destroy": (None, [P]),
        "wt_has_trace": (_c.c_int, []),
        "wt_trace_open": (_c.c_int, [P, _c.c_char_p]),
        "wt_trace_close": (None, [P]),
        "wt_map": (_c.c_int, [P, _c.c_uint64, _c.c_uint64, _c.c_char_p]),
        "wt_unmap": (_c.c_int, [P, _c.c_uint64]),
        "wt_allow": (_c.c_int, [P, _c.c_uint64, _c.c_uint64, _c.c_uint64]),
        "wt_guards_intact": (_c.c_int, [P]),
        "wt_set_bus": (None, [P, _c.c_uint32, _c.c_uint64]),
        "wt_stats": (None, [P, _c.POINTER(_c.c_uint64)]),
        "wt_cycles": (_c.c_uint64, [P]),
        "wt_reg_write": (_c.c_uint32, [P, _c.c_uint32, _c.c_uint32]),
        "wt_reg_read": (_c.c_uint32, [P, _c.c_uint32, _c.POINTER(_c.c_int)]),
        "wt_push": (_c.c_int64, [P, P, P, P, P, _c.c_int64, _c.c_int32]),
        "wt_run": (None, [P, _c.c_int64]),
        "wt_run_until_idle": (_c.c_int64, [P, _c.c_int64, _c.c_int64]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    _LIBS[path] = lib
    return lib


class FastSim:
    """One simulated device (the Verilated top and its harness).

    Parameters
    ----------
    trace : "fst", "vcd" or None
        Load the build that can write waves in that format (needed for :meth:`trace`).
    top_kw : dict
        :class:`~wiretick.hdl.top.WiretickTop` parameters (a build per set).
    library : path, optional
        Load this build of :func:`build_library` (built with the same ``top_kw``)
        instead of finding or building the one of the sources as they are now.
    """

    def __init__(self, *, trace: str | bool | None = None, log=None, library: str | os.PathLike | None = None,
                 **top_kw):
        from wiretick.hdl.top import DEFAULT_NS_PER_CYCLE
        self.lib_path = Path(library) if library is not None else build_library(trace=trace, log=log, **top_kw)
        self._lib = _load(self.lib_path)
        self.ns_per_cycle = Fraction(top_kw.get("ns_per_cycle", DEFAULT_NS_PER_CYCLE))
        self._h = self._lib.wt_create(float(self.ns_per_cycle * 1000))
        if not self._h:
            raise SimError("wt_create failed")

    # -------------------------------------------------------------- registers

    def reg_write(self, addr: int, value: int) -> None:
        resp = self._lib.wt_reg_write(self._h, addr, value & 0xFFFF_FFFF)
        if resp == 0xFF:
            raise SimError(f"register write at 0x{addr:X}: no response from the AXI4-Lite slave")

    def reg_read(self, addr: int) -> int:
        ok = _c.c_int(0)
        v = self._lib.wt_reg_read(self._h, addr, _c.byref(ok))
        if not ok.value:
            raise SimError(f"register read at 0x{addr:X}: no response from the AXI4-Lite slave")
        return int(v)

    # -------------------------------------------------------------- host memory

    def map(self, bus: int, size: int, path: str | os.PathLike) -> None:
        """Map ``size`` bytes of the file ``path`` at bus address ``bus`` (DMA writes go there)."""
        rc = self._lib.wt_map(self._h, bus, size, os.fsencode(path))
        if rc == -2:
            raise SimError(f"bus range 0x{bus:X}+{size} overlaps a mapped buffer (or its guard zones)")
        if rc != 0:
            raise SimError(f"cannot map {path}")

    def unmap(self, bus: int) -> None:
        self._lib.wt_unmap(self._h, bus)

    def allow(self, bus: int, lo: int, hi: int) -> None:
        """Only offsets ``[lo, hi)`` of the buffer at ``bus`` may be written (one call per range)."""
        if self._lib.wt_allow(self._h, bus, lo, hi):
            raise SimError(f"no buffer at bus address 0x{bus:X}")

    def guards_intact(self) -> bool:
        return bool(self._lib.wt_guards_intact(self._h))

    def set_bus(self, b_latency: int = 2, ready_mask: int = 0) -> None:
        """Memory timing: B response ``b_latency`` cycles after the last beat; AWREADY/WREADY
        in cycle ``c`` = bit ``c % 64`` of ``ready_mask`` (0: always ready)."""
        self._lib.wt_set_bus(self._h, b_latency, ready_mask & (2 ** 64 - 1))

    def stats(self) -> dict[str, int]:
        arr = (_c.c_uint64 * len(STAT_NAMES))()
        self._lib.wt_stats(self._h, arr)
        return dict(zip(STAT_NAMES, arr))

    @property
    def cycles(self) -> int:
        return int(self._lib.wt_cycles(self._h))

    # -------------------------------------------------------------- the MAC

    def push_frames(self, buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, bad: np.ndarray,
                    gap: int = 3) -> int:
        """Play frames ``buf[offsets[i]:offsets[i]+lengths[i]]`` at line rate; returns the cycles taken."""
        buf = np.ascontiguousarray(buf, np.uint8)
        off = np.ascontiguousarray(offsets, np.int64)
        ln = np.ascontiguousarray(lengths, np.int64)
        bd = np.ascontiguousarray(bad, np.uint8)
        n = len(off)
        if not (len(ln) == len(bd) == n):
            raise ValueError("offsets, lengths and bad must have one entry per frame")
        if n and (int(ln.min()) < 1 or int((off + ln).max()) > len(buf) or int(off.min()) < 0):
            raise ValueError("a frame lies outside the buffer (or is empty)")
        return int(self._lib.wt_push(self._h, buf.ctypes.data, off.ctypes.data, ln.ctypes.data, bd.ctypes.data,
                                     n, int(gap)))

    def run(self, cycles: int) -> None:
        """``cycles`` idle cycles."""
        self._lib.wt_run(self._h, int(cycles))

    def run_until_idle(self, quiet: int = 32, max_cycles: int = 10_000_000) -> int:
        """Idle the MAC until the memory bus has been quiet for ``quiet`` cycles; returns cycles run."""
        n = int(self._lib.wt_run_until_idle(self._h, quiet, max_cycles))
        if n < 0:
            raise SimError(f"the device did not go idle within {max_cycles} cycles")
        return n

    # -------------------------------------------------------------- waves

    def trace(self, path: str | os.PathLike) -> None:
        """Write every signal of every cycle from now on to ``path`` (the build's format)."""
        if not self._lib.wt_has_trace():
            raise SimError("this build has no trace support: create FastSim(trace='fst') or trace='vcd'")
        if self._lib.wt_trace_open(self._h, os.fsencode(path)):
            raise SimError(f"cannot open trace {path}")

    def close(self) -> None:
        if self._h:
            self._lib.wt_destroy(self._h)
            self._h = None

    def __enter__(self) -> "FastSim":
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class FastBackend(SimBackend):
    """A :class:`~wiretick.host.device.Backend` on a :class:`FastSim`: what ``Device`` drives.

    DMA buffers are files (``dma_dir``, default ``/dev/shm``) with bus addresses
    from :class:`~wiretick.host.device.FileDma`, mapped into the simulator's host
    memory.  ``input_ended`` turns true once :meth:`end_input` is called (the
    caller has pushed every frame and let the device go idle).
    """

    name = "fast"

    def __init__(self, sim: FastSim | None = None, *, dma_dir: str | os.PathLike = "/dev/shm",
                 keep_rings: bool = False, **sim_kw):
        super().__init__(dma_dir, prefix="wiretick-fast", keep_rings=keep_rings)
        self.sim = sim if sim is not None else FastSim(**sim_kw)
        self._ended = False
        self._live: dict[int, DmaBuffer] = {}      # what close() frees: nothing outlives the device

    def read32(self, offset: int) -> int:
        return self.sim.reg_read(offset)

    def write32(self, offset: int, value: int) -> None:
        self.sim.reg_write(offset, value)

    def map_bus(self, bus_address: int, size: int, path) -> None:
        self.sim.map(bus_address, size, path)

    def unmap_bus(self, bus_address: int) -> None:
        self.sim.unmap(bus_address)

    def end_input(self, ended: bool = True) -> None:
        self._ended = ended

    def input_ended(self) -> bool:
        return self._ended

    def alloc_dma(self, size: int, *, name: str | None = None) -> DmaBuffer:
        buf = super().alloc_dma(size, name=name)
        self._live[buf.bus_address] = buf
        return buf

    def free_dma(self, buf: DmaBuffer) -> None:
        self._live.pop(buf.bus_address, None)
        super().free_dma(buf)

    def close(self) -> None:
        """Free every DMA buffer still allocated (kept as files with ``keep_rings``), then the simulator."""
        try:
            for buf in list(self._live.values()):
                self.free_dma(buf)
        finally:
            self.sim.close()


@dataclass
class SimRun:
    """What :func:`simulate` produced."""

    ticks: np.ndarray | None     # every tick the ring reader saw (None when written to ``out``)
    counters: dict
    snapshot: dict
    stats: dict
    cycles: int
    wall_s: float
    ring: Path | None
    guards_intact: bool
    reader_lost: int


def simulate(capture: str | os.PathLike, config=None, *, out: str | os.PathLike | None = None,
             ring: str | None = None, nslots: int = 1 << 16, gap: int = 3,
             waves: str | os.PathLike | None = None, keep_ring: bool = False, batch_frames: int = 1 << 14,
             progress=None, sim: FastSim | None = None,
             interval: int = 64, build_log=None) -> SimRun:
    """Replay ``capture`` through the simulated device into a ring; collect the ticks.

    The device is programmed through :class:`~wiretick.host.device.Device` (a
    :class:`FastBackend`): configuration, ring setup, start, stop, counters.  A
    :class:`~wiretick.host.ring.Ring` reader follows the ring while frames are
    pushed in chunks small enough that it is never lapped; its ticks are
    returned, or streamed to the .npy ``out`` (written whole or not at all).
    ``ring``: the ring's name in ``/dev/shm`` (default: a private one, removed
    at the end unless ``keep_ring``; a failed run removes it either way);
    ``progress``: a :func:`wiretick.host.progress.progress` bar (anything with
    tqdm's ``update(n)``), given the frames pushed after every chunk.
    """
    from wiretick.host.capture import open_capture
    from wiretick.host.decode import DecodeConfig, NpyTickWriter
    from wiretick.host.contract.ring import device_writes
    from wiretick.host.ring import Ring, without_lap_tags

    config = config or DecodeConfig()
    with open_capture(capture):                   # a bad capture fails here, before anything is made
        pass
    own_sim = sim is None
    if own_sim:
        sim = FastSim(trace=waves_format(waves), log=build_log)
    backend = FastBackend(sim, keep_rings=keep_ring)
    writer = NpyTickWriter(out) if out is not None else None
    chunks: list[np.ndarray] = []
    dev = None
    try:
        if waves is not None:
            sim.trace(waves)
        dev = Device(backend)
        dev.configure(config)
        setup = dev.setup_ring(nslots, interval=interval, name=None if ring is None else str(ring))
        for lo, hi in device_writes(setup.nslots):
            sim.allow(setup.dma.bus_address, lo, hi)
        reader = Ring(setup.source)
        dev.start()

        def drain() -> None:
            for part in reader.poll_parts():
                # The lap tag belongs to the ring, not the tick: the output is `wiretick decode`'s.
                tick = without_lap_tags(part)
                if writer is not None:
                    writer.write(tick)
                else:
                    chunks.append(tick)

        budget = max(1, setup.nslots // 4)
        if progress is not None:
            progress.reset()              # its rate and time left from now on, not from before the build
        t0 = time.perf_counter()
        c0 = sim.cycles
        with open_capture(capture, batch_frames=batch_frames) as cap:
            for batch in cap:
                for lo, hi in reader_safe_chunks(batch.length, budget):
                    sim.push_frames(batch.buf, batch.offset[lo:hi], batch.length[lo:hi], batch.bad[lo:hi], gap)
                    drain()
                    if progress is not None:
                        progress.update(hi - lo)
        sim.run_until_idle()
        backend.end_input()
        dev.stop()
        drain()
        wall = time.perf_counter() - t0
        cycles = sim.cycles - c0
        counters = dev.counters()
        snap = dev.snapshot()
        lost = reader.lost
        reader.close()
        if writer is not None:
            writer.close()
            writer = None
        ticks = None if out is not None else (np.concatenate(chunks) if chunks else
                                              np.zeros(0, reader_dtype()))
        ring_path = setup.dma.path
        return SimRun(ticks, counters, snap, sim.stats(), cycles, wall, ring_path if keep_ring else None,
                      sim.guards_intact(), lost)
    except BaseException:
        if dev is not None and dev.ring is not None and dev.ring.dma.path is not None:
            dev.ring.dma.path.unlink(missing_ok=True)     # a failed run keeps no ring, named or not
        raise
    finally:
        if writer is not None:
            writer.abort()
        if dev is not None and dev.ring is not None and not keep_ring:
            backend.free_dma(dev.ring.dma)
        if own_sim:
            sim.close()


def waves_format(path: str | os.PathLike | None) -> str | None:
    """The wave format a file name asks for: ``.vcd`` is VCD, anything else FST."""
    if path is None:
        return None
    return "vcd" if str(path).lower().endswith(".vcd") else "fst"


def reader_dtype():
    from wiretick.host.tick import TICK_DTYPE
    return TICK_DTYPE
