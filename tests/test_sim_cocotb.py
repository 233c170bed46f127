"""The whole path in cocotb: capture -> MAC -> parser -> DMA -> ring file -> ring reader.

The top level (:class:`wiretick.hdl.top.WiretickTop` in the cocotb harness) runs
in Verilator and in Icarus (skipped, with the reason, where Icarus is not
installed), programmed through the host ``Device`` API over AXI4-Lite, its DMA
writes stored straight into the ring file a :class:`~wiretick.host.ring.Ring`
reader follows.  The scoreboard is the reference feed handler: every tick
equal but ``ts_rx``, every counter equal, the guard zones around the ring
untouched, nothing written outside the ring and its shadow-head word, nothing
lost by the reader, the DMA engine or the parser.

Each simulator run is one job of many cases (a simulator start costs seconds),
so each test here is one job and checks all its cases, listing every mismatch.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.capture import CaptureError, FrameBatch, write_pcap, write_pcapng
from wiretick.host.decode import DecodeConfig, decode_file
from wiretick.host.contract.formats import Flag
from wiretick.host.contract.ring import LAP_BITS, LAP_SHIFT
from wiretick.sim import cocotb_run
from wiretick.sim.cocotb_run import CocotbError, make_case, run_job, simulator_available

SIMULATORS = ["verilator", "icarus"]
CHECKSUM_OFF = DecodeConfig(check_ip_checksum=False)
NO_CHECKS = DecodeConfig(check_ip_checksum=False, sequence_check=False)
#: The generated capture per simulator: messages, seed, the ring it goes through
#: (small enough to lap several times) and the configurations.  Icarus simulates
#: the parser at a few hundred cycles a second while frames flow (it evaluates
#: wide datapaths bit by bit), Verilator at tens of thousands: the same test,
#: with a feed sized for each (the seeds give every counter the test asks for).
MIXED = {
    "verilator": {"messages": 1500, "seed": 7, "nslots": 256, "configs": {"default": DecodeConfig(),
                                                                         "no-checks": NO_CHECKS}},
    "icarus": {"messages": 250, "seed": 11, "nslots": 64, "configs": {"default": DecodeConfig()}},
}


def _require(simulator: str) -> None:
    why = simulator_available(simulator)
    if why:
        pytest.skip(why)


# ---------------------------------------------------------------- captures


def _bad_fcs_frames() -> tuple[list[bytes], list[bool]]:
    """A frame flagged bad after it released ticks (abort), its good copy, and bad frames that need none."""
    from wiretick.host.frames import encode_message, make_frame

    D = [encode_message("D", order_ref=k) for k in range(3)]
    frames = [
        make_frame(D, seq=1),                  # ticks 1..3
        make_frame(D, seq=4),                  # bad: ticks 4..6, then the abort (tick 7) discards 4..6
        make_frame(D, seq=4),                  # the good copy is delivered: ticks 8..10
        make_frame(D[:1], seq=1),              # bad, only a duplicate: no tick, no abort
        make_frame(D, seq=9),                  # bad: a gap event and messages, all aborted
        make_frame(D, seq=7),                  # the gap was taken back: 7.. delivered
    ]
    return frames, [False, True, False, True, True, False]


def _mixed_capture(messages: int, seed: int) -> FrameBatch:
    """A generated A/B feed (two VLAN tags, losses, every ITCH type) with corrupted and bad-FCS frames mixed in."""
    from wiretick.host.gen import GenConfig, generate

    gen = generate(GenConfig(messages=messages, symbols=4, seed=seed, vlan=(100, 141), ab=True, gap_rate=0.03,
                             all_types=True, max_messages_per_packet=16))
    rng = random.Random(seed)
    frames, ts, bad = [], [], []
    for i in range(len(gen)):
        f = bytearray(gen.frame(i))
        t = int(gen.ts_ns[i])
        roll = rng.random()
        if roll < 0.03:                        # cut short anywhere
            f = f[:rng.randrange(1, len(f))]
        elif roll < 0.06:                      # a byte flipped: header checks, block lengths, message fields
            f[rng.randrange(len(f))] ^= 1 << rng.randrange(8)
        elif roll < 0.08:                      # not for us: another EtherType, a runt
            frames.append(bytes(f[:12]) + b"\x86\xdd" + bytes(f[14:60]))
            ts.append(t)
            bad.append(False)
            frames.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 20))))
            ts.append(t)
            bad.append(rng.random() < 0.5)
        frames.append(bytes(f))
        ts.append(t)
        bad.append(rng.random() < 0.03)        # flagged bad by the MAC at its last beat
    return FrameBatch.from_frames(frames, ts_ns=ts, bad=bad)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    """The bad-FCS capture ("bad-fcs") and the mixed capture of each simulator ("mixed-<simulator>")."""
    d = tmp_path_factory.mktemp("cocotb-captures")
    frames, bad = _bad_fcs_frames()
    paths = {"bad-fcs": d / "bad-fcs.pcapng"}
    write_pcapng(paths["bad-fcs"], FrameBatch.from_frames(frames, ts_ns=[1000 * (i + 1) for i in range(len(frames))],
                                                          bad=bad))
    for simulator, mixed in MIXED.items():
        paths[f"mixed-{simulator}"] = d / f"mixed-{simulator}.pcapng"
        write_pcapng(paths[f"mixed-{simulator}"], _mixed_capture(mixed["messages"], mixed["seed"]))
    return paths


# ---------------------------------------------------------------- the scoreboard


def scoreboard(res, capture: Path, config: DecodeConfig) -> list[str]:
    """Every way ``res`` (a CaseResult) differs from the reference feed handler on ``capture``; [] if none."""
    ref = decode_file(capture, config=config)
    got = res.ticks
    name = res.name
    problems = []
    r = res.result
    for key, want in (("guards_intact", True), ("violations", []), ("reader_lost", 0)):
        if r[key] != want:
            problems.append(f"{name}: {key} = {r[key]!r}, expected {want!r}")
    for reg in ("DMA_DROPPED", "DMA_DROP_EVENTS", "DMA_BUS_ERRORS", "PARSER_LOST"):
        if r["regs"][reg]:
            problems.append(f"{name}: {reg} = {r['regs'][reg]}")
    if r["regs"]["DMA_HEAD"] != len(got):
        problems.append(f"{name}: DMA_HEAD {r['regs']['DMA_HEAD']} but the reader saw {len(got)} ticks")
    if r.get("capture_errors"):
        problems.append(f"{name}: {r['capture_errors']} DMA bursts were not one beat")
    diff = {k: (v, ref.counters[k]) for k, v in res.counters.items() if v != ref.counters[k]}
    if diff or set(res.counters) != set(ref.counters):
        problems.append(f"{name}: counters (device, reference) differ: {diff}")
    if len(got) != len(ref.ticks):
        return problems + [f"{name}: {len(got)} ticks, the reference {len(ref.ticks)}"]
    # The ring writer's lap tag (flags bits 12..15) is the ring's, not the parser's.
    lap = (got["seq"].astype(np.int64) - 1) >> int(np.log2(r["nslots"])) & 0xF
    if not np.array_equal((got["flags"] & LAP_BITS) >> LAP_SHIFT, lap):
        problems.append(f"{name}: wrong lap tags")
    flags = got["flags"] & ~np.uint16(LAP_BITS)
    for field in ref.ticks.dtype.names:
        if field == "ts_rx":                   # the device's clock, not the capture's
            continue
        a = flags if field == "flags" else got[field]
        bad = np.flatnonzero(a != ref.ticks[field])
        if len(bad):
            k = int(bad[0])
            problems.append(f"{name}: field {field} differs in {len(bad)} ticks, first at tick {k}: "
                            f"device {int(a[k])}, reference {int(ref.ticks[field][k])}")
    if len(got) and np.any(np.diff(got["ts_rx"].astype(np.int64)) < 0):
        problems.append(f"{name}: ts_rx goes backwards")
    return problems


def _check(results: dict, cases: list[tuple[str, Path, DecodeConfig]]) -> None:
    problems = []
    for name, capture, config in cases:
        problems += scoreboard(results[name], capture, config)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_whole_path_matches_the_reference(simulator, captures_dir, generated):
    """Every shared capture (default configuration and checksum off), the generated feed and the bad-FCS
    frames: one simulator job."""
    _require(simulator)
    spec = []
    for cap in sorted(captures_dir.glob("*.pcap")):
        spec.append((f"{cap.stem}-default", cap, DecodeConfig()))
        # The sanitized captures' IPv4 checksums are zeroed: their ticks appear with the check off.
        spec.append((f"{cap.stem}-no-checksum", cap, CHECKSUM_OFF))
    # The ring laps several times: chunked polling, wrap and lap tags.
    mixed = MIXED[simulator]
    spec += [(f"mixed-{name}", generated[f"mixed-{simulator}"], config) for name, config in mixed["configs"].items()]
    spec.append(("bad-fcs", generated["bad-fcs"], DecodeConfig()))
    cases = [make_case(name, cap, config, nslots=mixed["nslots"] if name.startswith("mixed") else 1 << 12)
             for name, cap, config in spec]
    results = run_job(cases, simulator=simulator)
    _check(results, spec)

    # The shared captures are real traffic: some of their ticks must have come through.
    shared = sum(len(results[name].ticks) for name, cap, _ in spec if cap.parent == captures_dir)
    assert shared > 50
    got = results["mixed-default"]
    for counter in ("gaps", "duplicates", "aborts", "bad_fcs", "drop_ip_checksum", "drop_not_ipv4",
                    "drop_truncated", "bad_truncated"):
        assert got.counters[counter] > 0, f"the mixed capture exercises no {counter}"
    assert len(got.ticks) > 3 * mixed["nslots"], "the mixed capture's ring should have lapped"
    # The abort event discards exactly what the reference's does: seq 4..6, then 11..14 (gap event and 3 messages).
    aborts = results["bad-fcs"].ticks[(results["bad-fcs"].ticks["flags"] & Flag.EVENT_ABORT) != 0]
    assert [(int(a["order_ref"]), int(a["ref2"])) for a in aborts] == [(4, 6), (11, 14)]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_python_transactors_match_the_reference(simulator, generated):
    """The cycle-by-cycle cocotb transactors (MAC driver, AXI4 write slave) on a small job."""
    _require(simulator)
    spec = [("bad-fcs", generated["bad-fcs"], DecodeConfig()), ("bad-fcs-no-checks", generated["bad-fcs"], NO_CHECKS)]
    results = run_job([make_case(name, cap, config, nslots=64) for name, cap, config in spec],
                      simulator=simulator, transactors="python")
    _check(results, spec)
    assert all(r.result["transactors"] == "python" for r in results.values())


def test_measure_cycles_per_s(generated):
    _require("verilator")
    m = cocotb_run.measure_cycles_per_s(generated["bad-fcs"])
    assert m["cycles"] > 0 and m["wall_s"] > 0 and m["cycles_per_s"] == m["cycles"] / m["wall_s"]
    assert m["ticks"] == len(decode_file(generated["bad-fcs"]).ticks)


# ---------------------------------------------------------------- errors a user can act on


def test_unknown_simulator_and_transactors(generated):
    with pytest.raises(ValueError, match="unknown simulator 'questa': choose one of verilator, icarus"):
        run_job([make_case("a", generated["bad-fcs"])], simulator="questa")
    with pytest.raises(ValueError, match="transactors must be one of bulk, python"):
        run_job([make_case("a", generated["bad-fcs"])], transactors="verilog")
    assert "unknown simulator" in simulator_available("questa")


def test_missing_icarus_is_reported_before_anything_runs(generated, monkeypatch):
    real_which = cocotb_run.shutil.which
    monkeypatch.setattr(cocotb_run.shutil, "which", lambda name, *a, **k: None if name in ("iverilog", "vvp")
                        else real_which(name, *a, **k))
    why = simulator_available("icarus")
    assert why and "iverilog" in why and "apt-get install iverilog" in why
    monkeypatch.setattr(cocotb_run, "harness_verilog_file", _no_build)
    with pytest.raises(CocotbError, match="cannot simulate with icarus: Icarus Verilog is not installed"):
        run_job([make_case("a", generated["bad-fcs"])], simulator="icarus")


def _no_build(**kw):
    raise AssertionError("nothing should have been built")


@pytest.mark.parametrize("what", ["missing", "directory", "garbage"])
def test_bad_capture_fails_before_the_simulator_starts(tmp_path, generated, monkeypatch, what):
    monkeypatch.setattr(cocotb_run, "harness_verilog_file", _no_build)
    bad = {"missing": tmp_path / "nope.pcap", "directory": tmp_path, "garbage": tmp_path / "junk.pcap"}[what]
    if what == "garbage":
        bad.write_bytes(b"\xd4\xc3\xb2\xa1" + bytes(30))    # a pcap header cut short
    cases = [make_case("good", generated["bad-fcs"]), make_case("bad", bad)]
    with pytest.raises(CaptureError, match=str(bad.name)):
        run_job(cases)


def test_a_capture_cut_inside_a_record_fails_before_the_simulator_starts(tmp_path, generated, monkeypatch):
    monkeypatch.setattr(cocotb_run, "harness_verilog_file", _no_build)
    whole = tmp_path / "whole.pcap"
    write_pcap(whole, FrameBatch.from_frames(_bad_fcs_frames()[0]))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole.read_bytes()[:-7])
    with pytest.raises(CaptureError, match="cut.pcap"):
        run_job([make_case("cut", cut)])


def test_duplicate_case_names(generated):
    with pytest.raises(ValueError, match="unique"):
        run_job([make_case("a", generated["bad-fcs"]), make_case("a", generated["mixed-icarus"])])


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_build_failure_shows_the_end_of_the_log(simulator, tmp_path, generated, monkeypatch):
    _require(simulator)
    broken = tmp_path / "broken.v"
    broken.write_text("module wiretick_cocotb(input clk);\n  this is not verilog\nendmodule\n")
    monkeypatch.setattr(cocotb_run, "harness_verilog_file", lambda **kw: broken)
    monkeypatch.setenv("WIRETICK_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(CocotbError, match=f"the cocotb {simulator} build failed") as err:
        run_job([make_case("a", generated["bad-fcs"])], simulator=simulator)
    assert "broken.v" in str(err.value) and "syntax" in str(err.value).lower()
    # A failed build leaves nothing in the cache: the next run builds again.
    assert not any((tmp_path / "cache" / f"cocotb-{simulator}").glob("*/.complete"))


# ---------------------------------------------------------------- `wiretick sim --engine cocotb`


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wiretick.host.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_cli_sim_cocotb_equals_decode(simulator, tmp_path, generated):
    """The command a user runs, end to end: on Verilator a feed that laps a small ring (the output carries
    no lap tag: it is `wiretick decode`'s), on Icarus the abort events, with FST waves."""
    _require(simulator)
    cap = generated["mixed-verilator"] if simulator == "verilator" else generated["bad-fcs"]
    out, ref = tmp_path / "sim.npy", tmp_path / "ref.npy"
    args = ["sim", str(cap), "-o", str(out), "--engine", "cocotb", "--simulator", simulator, "--nslots", "64"]
    if simulator == "icarus":
        args += ["--waves", str(tmp_path / "run.fst")]
    res = _cli(*args)
    assert res.returncode == 0, res.stderr
    assert _cli("decode", str(cap), "-o", str(ref)).returncode == 0
    got, want = np.load(out), np.load(ref)
    assert len(got) == len(want) and (simulator == "icarus" or len(got) > 3 * 64)
    for field in want.dtype.names:
        if field != "ts_rx":
            np.testing.assert_array_equal(got[field], want[field], err_msg=field)
    if simulator == "icarus":
        assert "aborts=2" in res.stderr
        assert (tmp_path / "run.fst").read_bytes()[:1] == b"\x00"     # an FST header block, not VCD text


def test_cli_sim_cocotb_verilator_waves(tmp_path, generated):
    """Verilator under cocotb writes VCD (its own build with --trace, cached like the other)."""
    _require("verilator")
    cap, out, ref = generated["bad-fcs"], tmp_path / "sim.npy", tmp_path / "ref.npy"
    res = _cli("sim", str(cap), "-o", str(out), "--engine", "cocotb", "--waves", str(tmp_path / "run.vcd"))
    assert res.returncode == 0, res.stderr
    assert _cli("decode", str(cap), "-o", str(ref)).returncode == 0
    assert len(np.load(out)) == len(np.load(ref))
    head = (tmp_path / "run.vcd").read_text(errors="replace")[:4000]
    assert "$timescale" in head and "mac__valid" in head


@pytest.mark.parametrize("simulator, name", [("verilator", "run.fst"), ("icarus", "run.vcd")])
def test_cli_sim_cocotb_refuses_a_waves_name_of_the_other_format(simulator, name, tmp_path, generated):
    _require(simulator)
    res = _cli("sim", str(generated["bad-fcs"]), "-o", str(tmp_path / "o.npy"), "--engine", "cocotb",
               "--simulator", simulator, "--waves", str(tmp_path / name))
    assert res.returncode == 2 and f"{simulator} writes" in res.stderr, res.stderr
    assert not (tmp_path / "o.npy").exists()
