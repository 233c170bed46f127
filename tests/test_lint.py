"""Verilator lint (wiretick.sim.lint): the gateware's Verilog passes `verilator --lint-only -Wall`
with justified waivers only, and the waivers hide no real finding."""

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wiretick.sim.lint import (AMARANTH_WAIVERS, PARSER_WAIVERS, LintError, alias_waivers, lint, lint_dma,
                               lint_hierarchy, lint_parser, parser_verilog)


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


class _Outer(wiring.Component):
    a: In(8)
    b: In(8)
    o: Out(4)
    p: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = _DropsBits()
        m.d.comb += [inner.a.eq(self.a), self.o.eq(inner.o), self.p.eq(self.b[:4])]
        return m


class _Wide(wiring.Component):
    # A port list long enough for Yosys to wrap the module header.
    def __init__(self):
        super().__init__({**{f"pad_input_number_{i}": In(1) for i in range(30)},
                          "a": In(8), "o": Out(4)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.o.eq(self.a[:4] ^ sum(getattr(self, f"pad_input_number_{i}") for i in range(30)))
        return m


# --------------------------------------------------------------------------- lint itself

def test_amaranth_idioms_lint_clean():
    lint(verilog.convert(_Counter(), name="counter"), "counter")


def test_real_findings_are_not_waived():
    with pytest.raises(LintError, match="UNUSEDSIGNAL"):
        lint(verilog.convert(_DropsBits(), name="drops"), "drops")


# --------------------------------------------------------------------------- the designs

def test_parser_core_lint_clean():
    lint_parser()


@pytest.mark.parametrize("width", [64, 128, 256, 512])
def test_dma_lint_clean(width):
    lint_dma(data_width=width, fifo_depth=64, max_outstanding=16)


def test_dma_lint_clean_with_simulation_checks():
    lint_dma(data_width=128, checks=True)


# --------------------------------------------------------------------------- the waivers

def test_unused_top_port_bits_are_still_findings():
    text = verilog.convert(_Outer(), name="outer")
    with pytest.raises(LintError, match=r"UNUSEDSIGNAL.*Bits of signal are not used: 'b'\[7:4\]"):
        lint(text, "outer", waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + alias_waivers(text, "outer"))


def test_unused_top_port_bits_are_still_findings_under_a_wrapped_header():
    text = verilog.convert(_Wide(), name="wide")
    assert "module wide(" in text and "\n" in text[text.index("module wide("):text.index(");")]
    with pytest.raises(LintError, match=r"Bits of signal are not used: 'a'\[7:4\]"):
        lint_hierarchy(text, "wide")


def test_waivers_name_no_top_port():
    text = parser_verilog()
    waivers = alias_waivers(text, "itch_parser")
    for port in ("i_mac__payload", "timestamp", "ip_dst", "port", "check_ip_checksum", "sequence_check",
                 "o_tick__ready", "counters", "lost"):
        assert f"'{port}'" not in waivers
