"""The one description: both sides' tick layouts agree, and the tables match the spec."""

import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.lib import data

from wiretick.hdl.tick import TICK_BITS, TickLayout
from wiretick.host.contract import formats as F
from wiretick.host.tick import TICK_DTYPE

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT.parent / "shared" / "docs" / "itch50.md"


def test_tick_is_one_cache_line():
    assert TICK_DTYPE.itemsize == 64 and TICK_BITS == 512
    assert TICK_DTYPE.names == tuple(f.name for f in F.TICK_FIELDS)
    for f in F.TICK_FIELDS:
        dt, off = TICK_DTYPE.fields[f.name]
        assert off == f.offset and dt.itemsize == f.size and off % f.size == 0
        assert dt.byteorder in ("<", "=", "|") and dt.kind == "u"


def test_numpy_and_amaranth_agree_on_every_byte():
    rng = np.random.default_rng(7)
    raw = rng.integers(0, 256, size=(50, 64), dtype=np.uint8)
    ticks = raw.view(TICK_DTYPE).reshape(-1)
    for row, tick in zip(raw, ticks):
        value = data.Const(TickLayout, int.from_bytes(row.tobytes(), "little"))
        for f in F.TICK_FIELDS:
            assert value[f.name] == int(tick[f.name]), f.name


def test_amaranth_field_positions():
    for f in F.TICK_FIELDS:
        assert TickLayout[f.name].offset == 8 * f.offset
        assert TickLayout[f.name].shape.width == 8 * f.size


def _spec_rows():
    text = SPEC.read_text()
    rows = re.findall(r"^\| `(\w)` \| [^|]+\| (\d+) \| (.*) \|$", text, re.M)
    assert len(rows) == 23, "the spec table should list 23 types"
    return rows


@pytest.mark.skipif(not SPEC.exists(), reason="shared/docs/itch50.md is not beside the checkout")
def test_messages_match_the_spec_table():
    sizes = {"u32": 4, "u64": 8, "c": 1, "price4": 4, "price8": 8, "8s": 8, "4s": 4, "2s": 2}
    for code, length, fields in _spec_rows():
        msg = F.MESSAGE_BY_CODE[code]
        assert msg.length == int(length)
        spec = [(n.strip(), int(o), sizes[t]) for n, o, t in re.findall(r"(\w+)@(\d+):(\w+)", fields)]
        ours = [(f.name, f.offset, f.size) for f in msg.fields[4:]]
        assert ours == spec, code


def test_every_type_has_a_map_and_common_fields():
    assert set(F.TICK_MAP) == set(F.MESSAGE_BY_CODE) and len(F.MESSAGES) == 23
    for code, copies in F.TICK_MAP.items():
        dsts = {c.dst for c in copies}
        for name in ("msg_type", "locate", "tracking", "ts_exch"):
            assert F.TICK_FIELD_BY_NAME[name].offset in dsts, (code, name)


def test_map_rejects_overlapping_copies(monkeypatch):
    bad = dict(F._TYPE_COPIES)
    bad["D"] = bad["D"] + (F._to("order_ref", 11, 8),)
    monkeypatch.setattr(F, "TICK_MAP", {c: F._COMMON_COPIES + bad[c] for c in bad})
    with pytest.raises(AssertionError, match="written twice"):
        F._check_map()


def test_counter_names_unique():
    names = [c.name for c in F.COUNTERS]
    assert len(names) == len(set(names))
