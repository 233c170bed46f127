"""Generate the docs of the contract (``python -m wiretick.host.docgen``).

Four documents describe :mod:`wiretick.host.contract`: ``docs/tick.md``,
``docs/registers.md``, ``docs/ring.md`` and ``docs/hostlink.md``.  Each is prose written by hand with
blocks generated from the contract (its tables, and the sentences that state a
value) between a ``<!-- generated: NAME -->`` line and an ``<!-- end generated -->``
line: the committed file is its own template, and only the blocks are rewritten,
so they cannot say something the device does not do.

A test per document fails when the committed file differs from what this module
renders (tests/test_contract.py).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from .contract import formats as F
from .contract import linkproto as L
from .contract import registers as R
from .contract import ring as G

__all__ = ["DOCS", "DOCS_DIR", "COMMAND", "render_blocks", "render", "main"]

#: The command that rewrites the generated docs (named by the tests that check them).
COMMAND = "python -m wiretick.host.docgen"
#: The checkout's docs directory (docgen is a tool of the source tree).
DOCS_DIR = Path(__file__).resolve().parents[1] / "docs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


# ---------------------------------------------------------------- docs/tick.md

def _copy_text(code: str, c: F.Copy) -> str:
    msg = F.MESSAGE_BY_CODE[code]
    srcs = [f.name for f in msg.fields if c.src <= f.offset < c.src + c.size]
    name = " ".join(srcs) if len(srcs) == 1 else f"bytes {c.src}..{c.src + c.size - 1} ({', '.join(srcs)})"
    covered = [f.name for f in F.TICK_FIELDS if c.dst <= f.offset < c.dst + c.size]
    home = next(f for f in F.TICK_FIELDS if f.offset <= c.dst < f.offset + f.size)
    shared = sum(1 for o in F.TICK_MAP[code] if home.offset <= o.dst < home.offset + home.size) > 1
    if len(covered) > 1:
        dst = "+".join(covered) + " (one little-endian u64)"
    elif home.offset != c.dst or (home.size != c.size and (shared or c.kind == "raw")):
        dst = f"{home.name}[{c.dst - home.offset}:{c.dst - home.offset + c.size}]"
    else:
        dst = home.name
    return f"`{dst}` = {name}" + (" (raw text)" if c.kind == "raw" else "")


def _tick_layout() -> str:
    rows = ["| offset | field | type | meaning |", "|---:|---|---|---|"]
    rows += [f"| {f.offset} | `{f.name}` | u{8 * f.size} | {f.doc} |" for f in F.TICK_FIELDS]
    return "\n".join(rows)


def _tick_flags() -> str:
    rows = ["| bit | name | meaning |", "|---|---|---|"]
    rows += [f"| 0x{getattr(F.Flag, name):04x} | `{name}` | {doc} |" for name, doc in F.FLAG_DOCS.items()]
    return "\n".join(rows) + (
        f"\n\nDevice events have `msg_type` {F.Event.TYPE}; their kind is in `flags`.\n"
        f"\nTicks read from a ring carry the ring's lap tag in bits 12..15, so test flags through the "
        f"mask of the parser's bits: `ticks['flags'] & Flag.MASK` (0x{F.Flag.MASK:04x}), never "
        f"`flags == Flag.X`.")


def _tick_map() -> str:
    rows = ["| type | name | fields |", "|---|---|---|"]
    common = {c for c in F.TICK_MAP["S"][:4]}
    for m in F.MESSAGES:
        parts = [_copy_text(m.code, c) for c in F.TICK_MAP[m.code] if c not in common]
        parts += [f"`shares` = min({m.field_at(off).name}, 2^32-1), SATURATED when clipped"
                  for code, off in F.SATURATE_RULES if code == m.code]
        parts += [f"PRINTABLE when {m.field_at(off).name} = 'Y'" for code, off in F.PRINTABLE_RULES if code == m.code]
        rows.append(f"| `{m.code}` | {m.name} | {'; '.join(parts)} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- docs/registers.md

def _register_map() -> str:
    return (f"AXI4-Lite, 32-bit words, byte offsets; map version {R.REG_VERSION >> 16}.{R.REG_VERSION & 0xFFFF}.  "
            "A 64-bit register is two words, low half first.  `snap` registers hold their value at the "
            "last write to `SNAPSHOT` (all latched in the same cycle); unmapped words read 0.\n\n"
            + R.markdown_table().rstrip("\n"))


# ---------------------------------------------------------------- docs/ring.md

def _ring_control_page() -> str:
    rows = ["| offset | type | field | meaning | written by |", "|---:|---|---|---|---|"]
    who = {"init": "whoever lays the ring out, once", "head": "the ring writer (the DMA engine)",
           "driver": "the driver (or the software writer)"}
    rows += [f"| {f.offset} | {f.kind} | `{f.name}` | {_cell(f.doc)} | {who[f.writer]} |" for f in G.CONTROL_PAGE]
    return "\n".join(rows)


def _ring_constants() -> str:
    rows = ["| name | value | meaning |", "|---|---:|---|",
            f"| `SLOT_SIZE` | {G.SLOT_SIZE} | bytes per slot: one tick |",
            f"| `CONTROL_SIZE` | {G.CONTROL_SIZE} | bytes of the control page |",
            f"| `DATA_OFFSET` | {G.DATA_OFFSET} | where slot 0 starts in a ring buffer |",
            f"| `MIN_SLOTS` | {G.MIN_SLOTS} | fewest slots (one page of them: the slot area can be mapped twice) |",
            f"| `LAP_SHIFT`, `LAP_WIDTH` | {G.LAP_SHIFT}, {G.LAP_WIDTH} | the lap tag is `flags` bits "
            f"{G.LAP_SHIFT}..{G.LAP_SHIFT + G.LAP_WIDTH - 1}: `((seq - 1) >> log2(nslots)) & 0x{G.LAP_MASK:X}` |",
            f"| `FRESH_LAP` | {G.FRESH_LAP} | the lap tag of every slot of a fresh ring (with `seq` 0): \"lap -1\" |"]
    return "\n".join(rows)


def _ring_registers() -> str:
    names = ("ENABLE", "DMA_STATE", "RING_BASE", "RING_LOG2", "SHADOW_ADDR", "SHADOW_INTERVAL", "DMA_MAX_LOG2",
             "DMA_HEAD", "DMA_DROPPED", "DMA_DROP_EVENTS", "DMA_BUS_ERRORS")
    rows = ["| register | offset | bits | access | meaning |", "|---|---:|---:|---|---|"]
    for name in names:
        r = R.REG_BY_NAME[name]
        rows.append(f"| `{r.name}` | {r.offset:#05x} | {r.width} | {r.access} | {_cell(r.doc)} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- docs/hostlink.md

def _link_addresses() -> str:
    a = L.DEFAULT_ADDRESSES
    word = L.DEFAULT_PORT.to_bytes(2, "big").decode()
    return "\n".join([
        "| | MAC | IPv4 | UDP port |", "|---|---|---|---|",
        f"| device | `{a.device_mac}` (locally administered) | `{a.device_ip}` | "
        f"{a.device_port} (`{L.DEFAULT_PORT:#06x}`, \"{word}\") |",
        f"| host | `{a.host_mac}` (broadcast: no ARP needed) | `{a.host_ip}` | {a.host_port} |",
    ])


def _link_header() -> str:
    magic = L.MAGIC.to_bytes(2, "little").decode()
    return (f"Every UDP payload is a sequence of little-endian 64-bit words; word 0 is the header:\n"
            f"`magic` \"{magic}\" (bits 0-15), `version` {L.VERSION} (16-23), `kind` (24-31: {L.KIND_DATA} DATA, "
            f"{L.KIND_REQUEST} REQUEST), `seq`\n(32-63).")


def _link_records() -> str:
    return "\n".join([
        "| record | words |", "|---|---|",
        f"| `REC_WRITE` ({L.REC_WRITE}) | A, address, `nbeats` (1..{L.MAX_BEATS}) data words, every byte written |",
        f"| `REC_WRITE_STROBED` ({L.REC_WRITE_STROBED}) | the same, then a strobe word (bits 8i..8i+7: the bytes of "
        "beat i) |",
        f"| `REC_READ` ({L.REC_READ}), `REC_WRITE_ACK` ({L.REC_WRITE_ACK}) | A (with the request's tag and the AXI "
        "response), offset \\| value << 32 |",
    ])


# ---------------------------------------------------------------- the blocks

#: Every generated doc: file name -> {block name: what renders it}.
DOCS = {
    "tick.md": {"tick-layout": _tick_layout, "tick-flags": _tick_flags,
                "tick-map": _tick_map},
    "registers.md": {"register-map": _register_map, "counter-note": lambda: R.COUNTER_NOTE.rstrip("\n")},
    "ring.md": {"ring-constants": _ring_constants, "control-page": _ring_control_page,
                "ring-registers": _ring_registers},
    "hostlink.md": {"link-addresses": _link_addresses, "link-header": _link_header, "link-records": _link_records},
}
_BLOCK = re.compile(r"(<!-- generated: ([\w-]+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def render_blocks(name: str, template: str) -> str:
    """``template`` (the text of docs/``name``) with every generated block rewritten."""
    blocks = DOCS[name]
    seen = []

    def block(m: re.Match) -> str:
        if m.group(2) not in blocks:
            raise ValueError(f"docs/{name}: unknown generated block {m.group(2)!r} (known: {', '.join(blocks)})")
        seen.append(m.group(2))
        return f"{m.group(1)}{blocks[m.group(2)]()}\n{m.group(4)}"

    out = _BLOCK.sub(block, template)
    missing = set(blocks) - set(seen)
    if missing:
        raise ValueError(f"docs/{name} has no generated block {', '.join(sorted(missing))}: add "
                         f"'<!-- generated: NAME -->' and '<!-- end generated -->' lines where it goes")
    return out


# ---------------------------------------------------------------- all of them

def render(name: str, docs_dir: Path = DOCS_DIR) -> str:
    """What ``docs_dir/name`` should hold."""
    return render_blocks(name, (docs_dir / name).read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wiretick.host.docgen",
                                 description="Rewrite the docs generated from the contract (wiretick.host.contract).")
    ap.add_argument("--docs", type=Path, default=DOCS_DIR, help="the docs directory (default: the checkout's)")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if a doc is not current")
    args = ap.parse_args(argv)
    stale = []
    for name in DOCS:
        path = args.docs / name
        current = path.read_text()
        text = render_blocks(name, current)
        if text == current:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
            print(f"wrote {path}")
    if args.check and stale:
        print(f"not current: {', '.join(stale)} (run {COMMAND})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
