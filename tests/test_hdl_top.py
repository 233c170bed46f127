"""The whole device's top level: its Verilog passes Verilator's lint with no waiver of its own."""

from __future__ import annotations

from wiretick.hdl.top import TOP_NAME
from wiretick.sim.build import top_verilog
from wiretick.sim.lint import lint_top


def test_top_lint_clean():
    text = top_verilog()
    assert f"module {TOP_NAME}(" in text
    lint_top(text=text)
