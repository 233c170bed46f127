"""TickDMA's Verilog passes `verilator --lint-only -Wall` with justified waivers only."""

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wiretick.sim.lint import LintError, lint_dma, lint_hierarchy


@pytest.mark.parametrize("width", [64, 128, 256, 512])
def test_dma_lint_clean(width):
    lint_dma(data_width=width, fifo_depth=64, max_outstanding=16)


def test_dma_lint_clean_with_simulation_checks():
    lint_dma(data_width=128, checks=True)


class _Wide(wiring.Component):
    # A port list long enough for Yosys to wrap the module header.
    def __init__(self):
        super().__init__({**{f"pad_input_number_{i}": In(1) for i in range(30)},
                          "a": In(8), "o": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.a[:4] ^ sum(getattr(self, f"pad_input_number_{i}") for i in range(30)))
        return m


def test_unused_top_port_bits_are_still_findings():
    text = verilog.convert(_Wide(), name="wide")
    assert "module wide(" in text and "\n" in text[text.index("module wide("):text.index(");")]
    with pytest.raises(LintError, match=r"Bits of signal are not used: 'a'\[7:4\]"):
        lint_hierarchy(text, "wide")
