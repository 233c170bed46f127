"""Every example runs, and gives the same answer, on a capture, on the replay device and on a ring fed by replay."""

from __future__ import annotations

import io
import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))    # examples/ lives next to tests/
from examples import halts_gaps, imbalance, plot_bbo, vwap  # noqa: E402
from wiretick.host.book import Books  # noqa: E402
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.host.replay import cmd_replay
from wiretick.host.strategy import Vwap

pytest.importorskip("matplotlib")
CONFIG = DecodeConfig(check_ip_checksum=False)       # the sanitized shared captures zeroed their checksums
SOURCES = ("capture", "replay", "ring")


@pytest.fixture(scope="module")
def day(tmp_path_factory) -> Path:
    cap = tmp_path_factory.mktemp("examples") / "day.pcap"
    generate_to_file(cap, GenConfig(messages=6_000, symbols=8, seed=21, all_types=True))
    return cap


@pytest.fixture(scope="module")
def gappy_day(tmp_path_factory) -> Path:
    cap = tmp_path_factory.mktemp("examples") / "gaps.pcap"
    generate_to_file(cap, GenConfig(messages=6_000, symbols=8, seed=22, gap_rate=0.05))
    return cap


class Sources:
    """Argument lists that put one capture behind each of the three sources (the ring is fed by replay)."""

    def __init__(self, capture: Path):
        self.capture = capture
        self.ring = f"wiretick-test-examples-{uuid.uuid4().hex[:12]}"          # /dev/shm/<name>

    def args(self, how: str) -> list[str]:
        if how == "ring":
            if not os.path.exists(f"/dev/shm/{self.ring}"):
                cmd_replay(self.capture, self.ring, nslots=1 << 16, config=CONFIG, log=None)
            return [self.ring, "--ring"]
        return [str(self.capture), "--no-ip-checksum"] + (["--replay"] if how == "replay" else [])

    def close(self) -> None:
        Path("/dev/shm", self.ring).unlink(missing_ok=True)


@pytest.fixture
def sources(request):
    made: list[Sources] = []

    def make(capture: Path) -> Sources:
        made.append(Sources(capture))
        return made[-1]
    yield make
    for s in made:
        s.close()


def run_all(capture: Path, srcs: Sources, how: str, tmp_path: Path) -> dict:
    out = io.StringIO()
    ticks = decode_file(capture, config=CONFIG).ticks
    got = {}
    a = srcs.args(how)
    strategy, res = vwap.main(a, out=out)
    assert res.ticks == len(ticks) and res.lost == 0
    ref = Vwap()
    ref.update(ticks)
    assert strategy.result() == ref.result()           # the books' prints against the VWAP strategy's own book
    got["vwap"] = strategy.result()
    strategy, _ = imbalance.main(a, out=out)
    rows = Books().update(ticks).bbo
    two_sided = (rows["bid_px"] > 0) & (rows["ask_px"] > 0) & (rows["bid_px"] < rows["ask_px"])
    assert len(strategy.signals) == two_sided.sum()
    assert [s[0] for s in strategy.signals] == rows["seq"][two_sided].tolist()
    got["imbalance"] = strategy.signals
    strategy, _ = halts_gaps.main(a, out=out)
    got["halts"] = strategy
    png = tmp_path / f"{how}.png"
    mine, prints, _ = plot_bbo.main(a + ["-o", str(png)], out=out)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    got["plot"] = (len(mine), len(prints))
    return got


def test_examples_on_a_generated_day_on_all_three_sources(day, sources, tmp_path):
    srcs = sources(day)
    results = {how: run_all(day, srcs, how, tmp_path) for how in SOURCES}
    for how in SOURCES[1:]:
        for name in ("vwap", "imbalance", "plot"):
            assert results[how][name] == results["capture"][name], (how, name)
    careful = results["capture"]["halts"]
    assert careful.quoted.any() and not careful.pulled


def test_halts_and_gaps_example_pulls_out_after_a_gap(gappy_day, sources):
    srcs = sources(gappy_day)
    for how in SOURCES:
        strategy, res = halts_gaps.main(srcs.args(how), out=io.StringIO())
        assert strategy.pulled and strategy.pulled[0][1] == "gap"
        first = strategy.pulled[0][0]
        after = [ok for seq, _, ok in strategy.timeline if seq >= first]
        assert after and not any(after), how             # nothing quoted once the books went stale
        assert res.books.stale.all()


def test_examples_on_the_shared_captures(shared_capture, sources, tmp_path):
    srcs = sources(shared_capture)
    results = {how: run_all(shared_capture, srcs, how, tmp_path) for how in SOURCES}
    for how in SOURCES[1:]:
        assert results[how]["vwap"] == results["capture"]["vwap"]
        assert results[how]["plot"] == results["capture"]["plot"]
