"""The whole parser core in Amaranth's simulator, tick for tick and counter for counter
against the software reference feed handler (wiretick.host.decode)."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wiretick.host.contract.registers import COUNTER_BITS
from wiretick.host.capture import FrameBatch, read_frames
from wiretick.host.decode import DecodeConfig, decode_batch
from wiretick.host.contract.formats import MESSAGES, MOLD_END_OF_SESSION, Flag
from wiretick.host.frames import encode_message, make_frame, parse_frame, random_frame, random_message
from wiretick.sim.amaranth_tb import run_parser

S1, S2 = b"SESSION001", b"SESSION002"


def compare(frames, bad=None, *, check_ts=True, **cfg):
    """Run the gateware and the reference on the same frames; assert equal; return the run."""
    ts = [1_000_000 + 1000 * i for i in range(len(frames))]
    run = run_parser(frames, bad=bad, ts_ns=ts, **cfg)
    ref = decode_batch(FrameBatch.from_frames(frames, ts_ns=ts, bad=bad), DecodeConfig(**cfg))
    assert run.lost == 0
    wrap = 1 << COUNTER_BITS          # hardware counters wrap (the host extends them); the reference's are 64-bit
    diff = {k: (v, ref.counters[k]) for k, v in run.counters.items() if v != ref.counters[k] % wrap}
    assert not diff, f"counters (gateware, reference) differ: {diff}"
    assert len(run.ticks) == len(ref.ticks)
    names = [n for n in ref.ticks.dtype.names if check_ts or n != "ts_rx"]
    for k, (a, b) in enumerate(zip(run.ticks, ref.ticks)):
        bad_fields = {n: (int(a[n]), int(b[n])) for n in names if a[n] != b[n]}
        assert not bad_fields, f"tick {k}: (gateware, reference) differ: {bad_fields}"
    return run, ref


def test_every_type_at_every_alignment():
    # A leading message whose block length is s mod 8 shifts everything after it.
    by_block_mod8 = {}
    for msg in MESSAGES:
        by_block_mod8.setdefault((msg.length + 2) % 8, msg.code)
    rng = random.Random(5)
    frames, seq = [], 1
    for shift in range(8):
        msgs = ([random_message(rng, by_block_mod8[shift])] if shift else [])
        msgs += [random_message(rng, m.code) for m in MESSAGES]
        frames.append(make_frame(msgs, seq=seq, vlans=shift % 3, ip_option_words=shift))
        seq += len(msgs)
    run, ref = compare(frames)
    assert run.counters["messages"] == 8 * len(MESSAGES) + 7
    assert all(run.counters[f"msg_{m.code}"] >= 8 for m in MESSAGES)


def test_rules_saturate_and_printable():
    msgs = [encode_message("Q", shares=2**32 - 1), encode_message("Q", shares=2**32),
            encode_message("Q", shares=2**64 - 1), encode_message("C", printable="Y"),
            encode_message("C", printable="N")]
    run, _ = compare([make_frame(msgs, seq=1)])
    assert [int(t["flags"]) for t in run.ticks] == [0, Flag.SATURATED, Flag.SATURATED, Flag.PRINTABLE, 0]


def _pcap_frames(path: Path) -> list[bytes]:
    batch = read_frames(path)
    return [batch.frame(i) for i in range(len(batch))]


def _announced_messages(frames: list[bytes]) -> int:
    """Messages the MoldUDP64 headers of the IPv4/UDP frames announce: counted apart from both parsers."""
    return sum(m.count for m in map(parse_frame, frames) if m is not None and m.count != MOLD_END_OF_SESSION)


def test_shared_captures(captures_dir):
    """Every real message reaches the parser: the sanitized captures' zeroed IPv4 checksums and sequence
    numbers are not checked (as ``wiretick decode --no-ip-checksum --no-sequence-check`` reads them)."""
    frames = []
    for path in sorted(captures_dir.glob("*.pcap")):
        frames += _pcap_frames(path)
    assert frames
    run, ref = compare(frames, check_ip_checksum=False, sequence_check=False)
    assert run.counters["messages"] == _announced_messages(frames) > 0


def test_sequence_gaps_duplicates_sessions():
    D = [encode_message("D", order_ref=k) for k in range(4)]
    frames = [
        make_frame(D[:2], seq=10, session=S1),            # new session: expected 12
        make_frame(D[:2], seq=10, session=S1),            # duplicates
        make_frame(D[:3], seq=11, session=S1),            # one duplicate, then 12, 13
        make_frame(D[:1], seq=20, session=S1),            # gap 14..19
        make_frame([], seq=25, session=S1, heartbeat=True),   # heartbeat with a gap
        make_frame([], seq=25, session=S1, end_of_session=True),
        make_frame(D[:2], seq=3, session=S2),             # session change: no gap
        make_frame(D[:2], seq=9, session=S2),
        make_frame(D[:4], seq=1, session=S1),             # back to S1: a new session again
    ]
    run, _ = compare(frames)
    assert run.counters["gaps"] == 3 and run.counters["duplicates"] == 3 and run.counters["sessions"] == 3
    run, _ = compare(frames, sequence_check=False)
    assert run.counters["gaps"] == 0 and run.counters["duplicates"] == 0


def test_bad_fcs_aborts_and_restores():
    D = [encode_message("D", order_ref=k) for k in range(3)]
    frames = [
        make_frame(D, seq=1, session=S1),
        make_frame(D, seq=4, session=S1),     # bad: aborted, expected back to 4
        make_frame(D, seq=4, session=S1),     # the good copy is delivered
        make_frame(D, seq=9, session=S1),     # bad, gap event then messages: all aborted
        make_frame(D, seq=12, session=S1),    # gap reported again (7..11)
        make_frame(D[:1], seq=1, session=S1),  # bad but only duplicates: no tick, no abort
        make_frame([], seq=40, session=S1, heartbeat=True),   # bad heartbeat with a gap: abort
        make_frame([], seq=40, session=S2, heartbeat=True, pad=False),  # bad, new session: no tick
        make_frame(D, seq=1, session=S2, dst_port=9),          # bad and dropped
    ]
    bad = [False, True, False, True, False, True, True, True, True]
    run, _ = compare(frames, bad)
    assert run.counters["aborts"] == 3 and run.counters["bad_fcs"] == 6
    aborts = run.ticks[run.ticks["flags"] == Flag.EVENT_ABORT]
    assert list(aborts["order_ref"]) == [4, 11, 20] and list(aborts["ref2"]) == [6, 14, 20]


def test_one_beat_bad_frame_after_ticks_is_not_aborted():
    # The frame before released ticks; a one-beat frame (first and last together)
    # flagged bad released none: no abort (found by hypothesis).
    D = [encode_message("D", order_ref=k) for k in range(2)]
    frames = [make_frame(D, seq=1), bytes.fromhex("01005e36"), make_frame(D, seq=3), b"\x01" * 8]
    run, _ = compare(frames, [False, True, False, True])
    assert run.counters["aborts"] == 0 and run.counters["bad_fcs"] == 2


def test_malformed_blocks():
    A = encode_message("A", order_ref=1)
    D = encode_message("D", order_ref=2)
    rng = random.Random(9)
    frames = []
    # Unknown-type blocks of the shortest lengths the walk goes past (12-15 bytes), before
    # and after real messages, at every alignment; then one shorter than any message,
    # which stops the walk.
    for shift in range(8):
        lead = [b"z" * (12 + (shift + k) % 4) for k in range(shift % 4 + 1)]
        frames.append(make_frame(lead + [D] + [b"x" * 12, b"y" * 13] + [A, b"w" * (1 + shift)], seq=1 + 10 * shift,
                                 ip_option_words=shift, session=S1))
    frames += [
        make_frame([D, b"", A], seq=200, session=S1),                  # zero-length block
        make_frame([D, A[:20], A], seq=210, session=S1),               # A with a wrong length
        make_frame([D, A], seq=220, session=S1, count=5),              # count past the blocks
        make_frame([D, A, D], seq=230, session=S1, count=2),           # bytes after the N-th block
        make_frame([D, A], seq=240, session=S1, udp_length=8 + 20 + 21 + 10),   # A overruns the payload
        make_frame([D, A], seq=250, session=S1, udp_length=8 + 20 + 21 + 1),    # length bytes overrun
        make_frame([D, A], seq=260, session=S1, count=0xFFFE),
    ]
    # Frames cut at every byte of their payload.
    full = make_frame([D, b"q" * 13, A, D], seq=300, session=S1, vlans=2, pad=False)
    frames += [full[:n] for n in range(len(full) - 60, len(full) + 1)]
    # Random junk after the MoldUDP64 header.
    for k in range(10):
        f = bytearray(make_frame([A, A], seq=400 + 3 * k, session=S1, ip_option_words=k))
        p = len(f) - 2 * 38
        f[p:] = rng.randbytes(len(f) - p)
        frames.append(bytes(f))
    bad = [k % 7 == 3 for k in range(len(frames))]
    run, _ = compare(frames, bad)
    for name in ("bad_block_overrun", "bad_block_length", "bad_truncated", "unknown_type", "aborts"):
        assert run.counters[name] > 0, name


def test_header_drops_and_config():
    m = [encode_message("E", order_ref=5)]
    frames = [
        make_frame(m, seq=1, dst_ip=0xE9360C6F, dst_port=26477),
        make_frame(m, seq=2, dst_ip=0xE9360C70, dst_port=26477),
        make_frame(m, seq=3, dst_ip=0xE9360C6F, dst_port=1),
        make_frame(m, seq=4, bad_checksum=True),
        make_frame(m, seq=5, fragment=0x2000),
        make_frame(m, seq=6, vlans=3),
        make_frame(m, seq=7, protocol=6),
        make_frame(m, seq=8)[:40],
    ]
    compare(frames)
    compare(frames, ip_dst=0xE9360C6F, port=26477, check_ip_checksum=False)


def test_backpressure_buffers_then_counts_losses():
    rng = random.Random(3)
    frames = [make_frame([random_message(rng, "D") for _ in range(6)], seq=1 + 6 * i) for i in range(3)]
    ts = [1_000_000 + 1000 * i for i in range(len(frames))]
    ref = decode_batch(FrameBatch.from_frames(frames, ts_ns=ts))
    # Ready low for a while, then high: nothing lost with a deep enough queue.
    run = run_parser(frames, ts_ns=ts, ready=lambda c: c % 5 == 0 or c > 40, fifo_depth=16)
    assert run.lost == 0 and run.ticks.tobytes() == ref.ticks.tobytes()
    # A stalled consumer and a small queue: losses are counted, seq keeps its holes.
    run = run_parser(frames, ts_ns=ts, ready=lambda c: c > 100, fifo_depth=4, drain=60)
    assert run.lost == len(ref.ticks) - 4
    assert run.ticks.tobytes() == ref.ticks[:4].tobytes()


def test_idle_cycles_and_unterminated_frame():
    rng = random.Random(4)
    frames = [make_frame([random_message(rng) for _ in range(4)], seq=1 + 4 * i, vlans=i % 3) for i in range(4)]
    ts = [1_000_000 + 1000 * i for i in range(len(frames))]
    ref = decode_batch(FrameBatch.from_frames(frames, ts_ns=ts))
    run = run_parser(frames, ts_ns=ts, idle_between=3)
    assert run.ticks.tobytes() == ref.ticks.tobytes()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), seq_check=st.booleans(), csum=st.booleans())
def test_random_frames_match_reference(seed, seq_check, csum):
    rng = random.Random(seed)
    frames = [random_frame(rng) for _ in range(40)]
    bad = [rng.random() < 0.1 for _ in frames]
    compare(frames, bad, sequence_check=seq_check, check_ip_checksum=csum)
