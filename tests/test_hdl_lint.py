"""The parser core's Verilog passes `verilator --lint-only -Wall` with justified waivers only."""

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from wiretick.sim.lint import AMARANTH_WAIVERS, PARSER_WAIVERS, LintError, alias_waivers, lint, lint_parser, parser_verilog


def test_parser_core_lint_clean():
    lint_parser()


class _Inner(wiring.Component):
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
        m.submodules.inner = inner = _Inner()
        m.d.comb += [inner.a.eq(self.a), self.o.eq(inner.o), self.p.eq(self.b[:4])]
        return m


def test_unused_top_port_bits_are_still_findings():
    text = verilog.convert(_Outer(), name="outer")
    with pytest.raises(LintError, match=r"UNUSEDSIGNAL.*Bits of signal are not used: 'b'\[7:4\]"):
        lint(text, "outer", waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + alias_waivers(text, "outer"))


def test_waivers_name_no_top_port():
    text = parser_verilog()
    waivers = alias_waivers(text, "itch_parser")
    for port in ("i_mac__payload", "timestamp", "ip_dst", "port", "check_ip_checksum", "sequence_check",
                 "o_tick__ready", "counters", "lost"):
        assert f"'{port}'" not in waivers
