"""The contract between the gateware and the host (wiretick.host.contract): what it may
import, the invariants of its tables, and the docs generated from it."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import numpy as np
import pytest

import wiretick.host.contract as contract
from wiretick.host import docgen
from wiretick.host.contract.formats import COUNTERS, TICK_FIELD_BY_NAME, Flag
from wiretick.host.contract.registers import (COUNTER_BASE, COUNTER_BITS, DMA_STATE_NAMES, MAP_SIZE, REG_BY_NAME,
                                              REGISTERS, WIDE_COUNTERS, CounterExtender, RegisterClient,
                                              counter_register, markdown_table, words)
from wiretick.host.contract.ring import (CONTROL_PAGE, DATA_OFFSET, LAP_BITS, LAP_MASK, LAP_SHIFT, MAGIC, OFF_HEAD,
                                         SLOT_SIZE, RingError, check_nslots, device_writes, header_bytes, lap_tag,
                                         parse_header, ring_bytes)

MODULES = sorted(f"wiretick.host.contract.{m.name}" for m in pkgutil.iter_modules(contract.__path__))

# --------------------------------------------------------------------------- what it imports


def test_the_contract_needs_neither_amaranth_nor_any_other_wiretick_module():
    # Either side imports the contract without the other: a host without Amaranth,
    # gateware without the host's decoder, ring or device code.
    code = f"""
import json, sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "amaranth" or name.startswith("amaranth."):
            raise ImportError("amaranth blocked")
sys.meta_path.insert(0, _Block())
for name in {MODULES!r}:
    __import__(name)
print(json.dumps(sorted(m for m in sys.modules if m.startswith("wiretick"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    loaded = set(json.loads(out.stdout))
    allowed = {"wiretick", "wiretick.host", "wiretick.host.errors", "wiretick.host.contract", *MODULES}
    assert loaded <= allowed, f"the contract imports {sorted(loaded - allowed)}"
    assert {"wiretick.host.contract.formats", "wiretick.host.contract.registers", "wiretick.host.contract.ring",
            "wiretick.host.contract.linkproto"} <= set(MODULES)


# --------------------------------------------------------------------------- the register map


def test_map_layout():
    assert REG_BY_NAME["ID"].offset == 0
    for i, c in enumerate(COUNTERS):
        r = counter_register(c.name)
        # 32 bits that wrap, each in its own 8-byte slot (the high word reads 0), but
        # gap_messages, which one gap event can grow by more than 2**32
        wide = c.name in WIDE_COUNTERS
        assert (r.offset, r.width, r.access, r.wraps) == (COUNTER_BASE + 8 * i, 64 if wide else COUNTER_BITS,
                                                          "snap", not wide)
    assert WIDE_COUNTERS == ("gap_messages",)
    assert MAP_SIZE == COUNTER_BASE + 8 * (len(COUNTERS) - 1) + 4
    narrow = {f"CNT_{c.name}" for c in COUNTERS if c.name not in WIDE_COUNTERS}
    assert {r.name for r in REGISTERS if r.wraps} == narrow | {
        "PARSER_LOST", "DMA_DROPPED", "DMA_DROP_EVENTS", "DMA_BUS_ERRORS"}
    for r in REGISTERS:
        assert r.doc and len(words(r)) == (2 if r.width > 32 else 1)
    table = markdown_table()
    assert "| 0x030 | `RING_BASE` | 64 | rw |" in table
    assert "major << 16 \\| minor" in table            # pipes escaped inside cells
    assert len(table.splitlines()) == len(REGISTERS) + 2


def test_dma_state_register_holds_every_state():
    assert set(DMA_STATE_NAMES) == set(range(1 << REG_BY_NAME["DMA_STATE"].width))
    assert "3 configuration refused" in REG_BY_NAME["DMA_STATE"].doc


def test_client_splits_64_bit_registers():
    mem: dict[int, int] = {}
    log: list = []

    def w32(off, v):
        log.append(off)
        mem[off] = v

    c = RegisterClient(lambda off: mem.get(off, 0), w32)
    c.write("RING_BASE", 0x1234_5678_9ABC_D000)
    assert mem == {0x30: 0x9ABC_D000, 0x34: 0x1234_5678} and log == [0x30, 0x34]
    assert c.read("RING_BASE") == 0x1234_5678_9ABC_D000
    with pytest.raises(ValueError):
        c.write("CLOCK", 1)
    with pytest.raises(ValueError):
        c.write("PORT", 1 << 16)


def test_counter_extender_is_monotonic_across_wraps():
    ext = CounterExtender()
    got = [ext.extend("CNT_frames", raw) for raw in (5, 0xFFFF_FFFF, 0, 0, 7, 0xFFFF_FFF0, 3)]
    assert got == [5, 0xFFFF_FFFF, 1 << 32, 1 << 32, (1 << 32) + 7, (1 << 32) + 0xFFFF_FFF0, (2 << 32) + 3]
    assert ext.extend("DMA_DROPPED", 9) == 9                      # each register on its own
    assert ext.extend("CLOCK", 1 << 40) == 1 << 40                # not a counter: as read
    ext.reset()                                                   # a new run restarts from 0
    assert ext.extend("CNT_frames", 2) == 2


# --------------------------------------------------------------------------- the ring layout


def test_ring_layout_agrees_with_the_tick_and_the_registers():
    assert SLOT_SIZE == 64 and DATA_OFFSET % 4096 == 0
    # flags bits 12..15, as docs/ring.md's prose and every ring already written say
    assert (LAP_SHIFT, LAP_MASK, LAP_BITS) == (12, 0xF, 0xF000) and Flag.MASK & LAP_BITS == 0
    assert TICK_FIELD_BY_NAME["seq"].offset == 0                  # the first half of a slot carries seq
    assert f"offset {OFF_HEAD} of the ring's control page" in REG_BY_NAME["SHADOW_ADDR"].doc
    names = [f.name for f in CONTROL_PAGE]
    assert len(names) == len(set(names))


def test_header_round_trips_and_bad_pages_are_refused():
    page = header_bytes(1 << 10).ljust(4096, b"\0")
    hdr = parse_header(page, "test", ring_bytes(1 << 10))
    assert (hdr.nslots, hdr.data_offset, hdr.total_bytes) == (1 << 10, DATA_OFFSET, DATA_OFFSET + (1 << 16))
    assert page.startswith(MAGIC)
    with pytest.raises(RingError, match="truncated"):
        parse_header(page, "test", ring_bytes(1 << 10) - 1)
    with pytest.raises(RingError, match="not a wiretick ring"):
        parse_header(b"\0" * 4096, "test")
    with pytest.raises(RingError, match="multiple of the 65536-byte page"):
        parse_header(page, "test", page=1 << 16)
    for bad in (0, 63, 100, True, 1.0, 1 << 41):
        with pytest.raises(RingError):
            check_nslots(bad)


def test_the_device_writes_the_slots_and_the_shadow_head_only():
    assert device_writes(64) == ((DATA_OFFSET, DATA_OFFSET + 64 * SLOT_SIZE), (OFF_HEAD, OFF_HEAD + 8))
    driver_words = [f for f in CONTROL_PAGE if f.writer != "head"]
    for lo, hi in device_writes(64):
        assert not any(lo < f.offset + f.size and f.offset < hi for f in driver_words)


def test_lap_tags():
    assert lap_tag(1, 64) == 0 and lap_tag(64, 64) == 0 and lap_tag(65, 64) == 1
    assert lap_tag(16 * 64 + 1, 64) == 0                         # the tag wraps with its width
    assert lap_tag(np.array([1, 65, 129], np.uint64), 64).tolist() == [0, 1, 2]


# --------------------------------------------------------------------------- the docs made from it
# One test per doc: each names the command that rewrites it.


@pytest.mark.parametrize("name", sorted(docgen.DOCS))
def test_doc_is_generated_from_the_contract(name):
    path = docgen.DOCS_DIR / name
    assert path.read_text() == docgen.render(name), \
        f"docs/{name} does not match the contract: run {docgen.COMMAND} (and commit docs/{name})"


def test_a_doc_without_its_blocks_is_refused():
    # A block deleted by hand would otherwise leave its doc "current" and silent.
    text = (docgen.DOCS_DIR / "ring.md").read_text()
    start = text.index("<!-- generated: control-page -->")
    end = text.index("<!-- end generated -->", start) + len("<!-- end generated -->")
    with pytest.raises(ValueError, match="no generated block control-page"):
        docgen.render_blocks("ring.md", text[:start] + text[end:])
    with pytest.raises(ValueError, match="unknown generated block 'nonsense'"):
        docgen.render_blocks("ring.md", text + "<!-- generated: nonsense -->\n<!-- end generated -->\n")


def test_blocks_are_rewritten_and_the_prose_kept():
    text = (docgen.DOCS_DIR / "registers.md").read_text()
    start = text.index("<!-- generated: register-map -->\n") + len("<!-- generated: register-map -->\n")
    stale = text[:start] + "| 0x000 | `ID` | a stale table |\n" + text[text.index("<!-- end generated -->", start):]
    assert docgen.render_blocks("registers.md", "# My own title\n\n" + stale) == "# My own title\n\n" + text


def test_docgen_check_says_what_is_stale(tmp_path, capsys):
    for name in docgen.DOCS:
        (tmp_path / name).write_text((docgen.DOCS_DIR / name).read_text())
    assert docgen.main(["--docs", str(tmp_path), "--check"]) == 0
    (tmp_path / "registers.md").write_text((docgen.DOCS_DIR / "registers.md").read_text().replace(
        "| 0x000 | `ID` |", "| 0x004 | `ID` |"))
    assert docgen.main(["--docs", str(tmp_path), "--check"]) == 1
    assert "registers.md" in capsys.readouterr().err
    assert docgen.main(["--docs", str(tmp_path)]) == 0              # rewrites it
    assert (tmp_path / "registers.md").read_text() == (docgen.DOCS_DIR / "registers.md").read_text()
