"""``wiretick regress``: captures through the RTL and the reference model, compared field by field."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from wiretick.host.decode import decode_file
from wiretick.host.gen import GenConfig, generate_to_file

pytest.importorskip("distributed")

from wiretick.sim.shard import (RegressRow, ShardError, collect_captures, first_difference,  # noqa: E402
                                format_table)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("captures")
    (d / "day").mkdir()
    generate_to_file(d / "a.pcap", GenConfig(messages=1_500, symbols=6, seed=1, ab=True, gap_rate=0.03))
    generate_to_file(d / "day" / "b.pcap", GenConfig(messages=1_000, symbols=4, seed=2, all_types=True))
    (d / "notes.txt").write_text("not a capture")
    return d


def test_collect_files_directories_and_globs(library):
    found = collect_captures([str(library / "*.pcap"), str(library), str(library / "a.pcap")])
    assert [p.rsplit("/", 1)[-1] for p in found] == ["a.pcap", "b.pcap"]
    with pytest.raises(ShardError, match="no file matches"):
        collect_captures([str(library / "*.pcapng")])
    with pytest.raises(ShardError, match="no such file"):
        collect_captures([str(library / "missing.pcap")])


def test_first_difference():
    from wiretick.host.tick import TICK_DTYPE as t
    a = np.zeros(5, t)
    b = a.copy()
    assert first_difference(a, b) is None
    b["ts_rx"] = 7                       # never compared
    assert first_difference(a, b) is None
    b["price"][3] = 1
    b["order_ref"][4] = 1
    assert first_difference(a, b) == (3, "price")
    assert first_difference(a[:2], a) == (2, "count")


def test_cli_regress_library(library, tmp_path):
    bad = tmp_path / "cut.pcap"
    bad.write_bytes((library / "a.pcap").read_bytes()[:-5])
    out = tmp_path / "rows.json"
    cmd = [sys.executable, "-m", "wiretick.host.cli", "regress", str(library), "--workers", "2", "--json", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["capture", "messages", "ticks", "result"]
    assert len(lines) == 3 and all(line.split()[3] == "ok" for line in lines[1:])
    rows = json.loads(out.read_text())
    want = decode_file(library / "a.pcap")
    assert rows[0]["ticks"] == want.counters["ticks"] and rows[0]["messages"] == want.counters["messages"]
    # a capture that cannot be read is a row of its own, and the run exits 1
    r = subprocess.run(cmd[:4] + [str(library / "a.pcap"), str(bad), "--workers", "1"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, r.stderr
    assert [line.split()[3] for line in r.stdout.splitlines()[1:]] == ["ok", "ERROR"]


def test_table_names_the_first_difference():
    text = format_table([RegressRow("x.pcap", 10, 12, "MISMATCH", "price", 3), RegressRow("y.pcap", 1, 1, "ok")])
    assert "price at tick 3" in text and text.count("\n") == 3
