"""Verilog of the parser core and the Verilator waivers it needs, each with its reason.

``verilator --lint-only -Wall`` is run on the output of ``amaranth.back.verilog.convert``
by :func:`lint_parser` (see tests/test_hdl_lint.py).  Amaranth's own idioms are
waived by :data:`wiretick.sim.verilator.AMARANTH_WAIVERS`; the rules below cover
what the Yosys Verilog writer does with a hierarchical design.  Each waiver is a
class of generated text, never a finding in the design: unused bits of the top
module's ports are still reported (the test checks that too).
"""

from __future__ import annotations

import functools
import re

from amaranth.back import verilog

from .common import toplevel_ports

__all__ = ["PARSER_WAIVERS", "parser_verilog", "alias_waivers", "lint_parser"]

PARSER_WAIVERS = """\
// Yosys writes each cell with its own operand widths (an `$add` of a 19-bit and a
// 4-bit value, `$logic_not` of a vector as `!x`) and lets Verilog extend the
// narrower operand, exactly as the cell is defined; every width is set by
// Amaranth's arithmetic rules at elaboration, so these notes are about the
// rendering, not the design.
lint_off -rule WIDTHEXPAND
lint_off -rule WIDTHTRUNC
// The whole hierarchy is written to one file; submodules are named `top.sub`.
lint_off -rule DECLFILENAME
"""

_DECL = re.compile(r"^\s*(?:wire|reg|input|output|inout)\b(?:\s+signed)?(?:\s*\[[^\]]*\])?\s*(\\\S+|[A-Za-z_][\w$]*)")
_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][\w$]*)\s*\(([^)]*)\)")


@functools.lru_cache(maxsize=4)
def parser_verilog(top: str = "itch_parser", **kw) -> str:
    """Verilog of :class:`~wiretick.hdl.parser.ItchParser` (``kw`` to its constructor; cached)."""
    from .parser import ItchParser
    dut = ItchParser(**kw)
    return verilog.convert(dut, name=top, ports=toplevel_ports(dut))


def alias_waivers(text: str, top: str) -> str:
    """UNUSEDSIGNAL waivers for the names Amaranth declares but the logic does not read.

    Amaranth writes every named signal, every field of a struct-typed signal
    (``name.field``) and every submodule port as a wire driven from the netlist; the
    logic reads the netlist nets, so Verilator sees these names unused.  Stage
    ports also carry fields meant for a later stage (a stream layout is shared).
    Waived: every line outside the top module, and inside it every declared name
    except the top module's own ports.  The Verilog is expected in ``<top>.v`` (as
    :func:`wiretick.sim.verilator.lint` writes it): a ``-lines`` waiver on ``-file "*"``
    would cover the whole design.
    """
    lines = text.splitlines()
    spans: list[tuple[str, int, int, list[str]]] = []
    cur = None
    for n, line in enumerate(lines, 1):
        mm = _MODULE.match(line)
        if mm:
            cur = [mm.group(1).lstrip("\\"), n, n, [p.strip().lstrip("\\") for p in mm.group(2).split(",")]]
        elif line.startswith("endmodule") and cur is not None:
            cur[2] = n
            spans.append(tuple(cur))
            cur = None
    tops = [s for s in spans if s[0] == top]
    if len(tops) != 1:
        raise ValueError(f"no single module {top!r} in the Verilog")
    _, a, b, ports = tops[0]
    out = ["// Named aliases and shared-layout stage ports (see wiretick.hdl.lint.alias_waivers)."]
    if a > 1:
        out.append(f'lint_off -rule UNUSEDSIGNAL -file "*/{top}.v" -lines 1-{a - 1}')
    out.append(f'lint_off -rule UNUSEDSIGNAL -file "*/{top}.v" -lines {b + 1}-{len(lines) + 1}')
    names = set()
    for line in lines[a:b - 1]:
        dm = _DECL.match(line)
        if dm:
            names.add(dm.group(1).lstrip("\\"))
    for name in sorted(names - set(ports)):
        # (Verilator takes -lines or -match, not both: matched by the exact quoted name.)
        out.append(f'lint_off -rule UNUSEDSIGNAL -file "*" -match "*: \'{name}\'*"')
    return "\n".join(out) + "\n"


def lint_parser(top: str = "itch_parser", **kw) -> str:
    """Lint the parser core's Verilog; raise :class:`wiretick.sim.verilator.LintError` on findings."""
    from wiretick.sim.verilator import AMARANTH_WAIVERS, lint
    text = parser_verilog(top, **kw)
    return lint(text, top, waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + alias_waivers(text, top))
