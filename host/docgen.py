"""Generate docs/tick.md from the one description (``python -m wiretick.host.docgen``).

A test fails when the committed file and the description disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .contract import formats as F
from .tick import tick_table_markdown

__all__ = ["render_tick_doc"]

_INTRO = """\
# The normalized tick

<!-- Generated from wiretick/host/contract/formats.py by `python -m wiretick.host.docgen`: do not edit. -->

Every ITCH message (and every device event) becomes one 64-byte tick: one cache line,
little-endian, every field naturally aligned. The numpy dtype (`wiretick.host.tick.TICK_DTYPE`)
and the Amaranth layout (`wiretick.hdl.tick.TickLayout`) are both derived from
`wiretick.host.contract.formats.TICK_FIELDS`; a test proves their bytes agree.

## Layout

"""


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


def render_tick_doc() -> str:
    """The whole docs/tick.md."""
    out = [_INTRO, tick_table_markdown(), "\n## Flags\n\n| bit | name | meaning |\n|---|---|---|\n"]
    for name in ("PRINTABLE", "SATURATED", "EVENT_GAP", "EVENT_ABORT", "EVENT_DROP"):
        doc = {"PRINTABLE": "C: printable = 'Y' (count the execution in volume)",
               "SATURATED": "Q: the 64-bit share count was clipped to 2^32-1",
               "EVENT_GAP": "event: `feed_seq` = first missing sequence number, `ref2` = how many",
               "EVENT_ABORT": "event: the MAC flagged the frame bad: discard ticks `seq` in `order_ref`..`ref2`",
               "EVENT_DROP": "event: `ref2` ticks were dropped (DMA overflow) before this one"}[name]
        out.append(f"| 0x{getattr(F.Flag, name):04x} | `{name}` | {doc} |\n")
    out.append(f"| 0x{F.Flag.LAP_TAG:04x} | `LAP_TAG` | reserved: the ring's lap tag (bits 12..15, docs/ring.md); "
               f"the parser leaves them 0 |\n")
    out.append("\nDevice events have `msg_type` 0; their kind is in `flags`.\n")
    out.append(f"\nTicks read from a ring carry the ring's lap tag in bits 12..15, so test flags through the "
               f"mask of the parser's bits: `ticks['flags'] & Flag.MASK` (0x{F.Flag.MASK:04x}), never "
               f"`flags == Flag.X`.\n")
    out.append("\n## Per message type\n\nEvery message also fills `msg_type`, `locate`, `tracking`, `ts_exch` "
               "(and `seq`, `ts_rx`, `feed_seq`). Integers are converted to little-endian; text is copied "
               "as it is on the wire, so `ticks['ref2'].view('S8')` reads a symbol. Stock symbols of order "
               "messages are resolved from the `R` directory by `locate`.\n\n"
               "| type | name | fields |\n|---|---|---|\n")
    common = {c for c in F.TICK_MAP["S"][:4]}
    for m in F.MESSAGES:
        parts = [_copy_text(m.code, c) for c in F.TICK_MAP[m.code] if c not in common]
        parts += [f"`shares` = min({m.field_at(off).name}, 2^32-1), SATURATED when clipped"
                  for code, off in F.SATURATE_RULES if code == m.code]
        parts += [f"PRINTABLE when {m.field_at(off).name} = 'Y'" for code, off in F.PRINTABLE_RULES if code == m.code]
        out.append(f"| `{m.code}` | {m.name} | {'; '.join(parts)} |\n")
    return "".join(out)


def main() -> int:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/tick.md")
    target.write_text(render_tick_doc())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
