"""Performance figures of the parser core, measured in Amaranth's simulator.

``bench_parser()`` returns:

``parser.line_rate``
    Worst-case traffic sent back to back at one beat per cycle (full-size frames of
    19-byte ``D`` messages, 69 a frame, and one-message frames, no idle cycle
    between frames): the fraction of the reference model's ticks that came out
    identical, with no tick lost (1.0 = line rate with zero drops).  The MAC
    stream is never back-pressured, so every beat is accepted.
``parser.latency_cycles`` and ``parser.latency_cycles.<T>``
    Clock edges from the one accepting the beat that holds a message's last byte
    to the cycle its tick is valid on ``o_tick`` (``o_tick.ready`` held high): the
    maximum over every ITCH type at every byte alignment of that last byte, and
    per type.
"""

from __future__ import annotations

import random

from wiretick.host.contract.formats import MESSAGE_BY_CODE, MESSAGES
from wiretick.host.frames import make_frame, parse_frame, random_message

from .amaranth_tb import run_parser

__all__ = ["bench_parser", "latency_by_type", "latency_cycles", "latency_frames", "line_rate_frames"]

_MTU = 1500


def line_rate_frames(seed: int = 1) -> list[bytes]:
    """Full-size frames of D messages, then one-message frames, then full-size again."""
    rng = random.Random(seed)
    d_block = MESSAGE_BY_CODE["D"].length + 2
    per_frame = (_MTU - 20 - 8 - 20) // d_block
    frames, seq = [], 1
    plan = [per_frame] * 3 + [1] * 12 + [per_frame] * 2
    for k, n in enumerate(plan):
        msgs = [random_message(rng, "D") for _ in range(n)]
        frames.append(make_frame(msgs, seq=seq, vlans=k % 3, session=b"BENCH00001"))
        seq += n
    return frames


def latency_frames(seed: int = 2) -> tuple[list[bytes], dict[int, tuple[int, int, str]]]:
    """Frames holding every type with its last byte at every lane of a beat.

    Returns the frames and ``{message number: (frame index, offset of its last byte, type)}``.
    """
    rng = random.Random(seed)
    shifter = {}
    for msg in MESSAGES:
        shifter.setdefault((msg.length + 2) % 8, msg.code)
    assert set(range(1, 8)) <= set(shifter), "block lengths cover every non-zero residue mod 8"
    frames, where, seq = [], {}, 1
    for shift in range(8):
        vlans, words = shift % 3, shift
        lead = (shift - 4 * (vlans + words)) % 8    # so that every frame shifts by one more byte
        codes = ([shifter[lead]] if lead else []) + [m.code for m in MESSAGES]
        msgs = [random_message(rng, c) for c in codes]
        f = make_frame(msgs, seq=seq, vlans=vlans, ip_option_words=words, session=b"BENCH00002")
        p = parse_frame(f).first_block
        for c, m in zip(codes, msgs):
            p += 2 + len(m)
            where[seq] = (len(frames), p - 1, c)
            seq += 1
        frames.append(f)
    return frames, where


def latency_by_type() -> dict[str, int]:
    """The parser's latency in cycles (``parser.latency_cycles``, see the module doc), by ITCH type."""
    frames, where = latency_frames()
    run = run_parser(frames)
    per_type: dict[str, int] = {}
    seen = set()
    for tick, cycle in zip(run.ticks, run.tick_cycles):
        if tick["msg_type"] == 0:
            continue
        f, last_byte, code = where[int(tick["feed_seq"])]
        accepted = run.frame_beat_cycles[f][last_byte // 8]
        per_type[code] = max(per_type.get(code, 0), cycle - accepted)
        seen.add((code, last_byte % 8))
    missing = {(m.code, lane) for m in MESSAGES for lane in range(8)} - seen
    if missing:
        raise AssertionError(f"latency not measured for (type, lane) {sorted(missing)[:5]}...")
    return per_type


def latency_cycles() -> int:
    """The parser's latency in cycles (``parser.latency_cycles``): the worst over every type."""
    return max(latency_by_type().values())


def bench_parser() -> dict[str, float]:
    """Line rate and latency of :class:`~wiretick.hdl.parser.ItchParser` (see the module doc)."""
    from wiretick.host.capture import FrameBatch
    from wiretick.host.decode import decode_batch

    out: dict[str, float] = {}

    frames = line_rate_frames()
    ts = [1_000 * (i + 1) for i in range(len(frames))]
    run = run_parser(frames, ts_ns=ts)
    ref = decode_batch(FrameBatch.from_frames(frames, ts_ns=ts))
    good = sum(1 for a, b in zip(run.ticks, ref.ticks) if a.tobytes() == b.tobytes())
    counters_ok = all(run.counters[k] == v for k, v in ref.counters.items())
    rate = good / max(len(ref.ticks), 1)
    if run.lost or not counters_ok or len(run.ticks) != len(ref.ticks):
        rate = min(rate, (len(ref.ticks) - run.lost) / max(len(ref.ticks), 1))
        if rate == 1.0:
            rate = 0.999
    out["parser.line_rate"] = rate

    per_type = latency_by_type()
    out["parser.latency_cycles"] = float(max(per_type.values()))
    for m in MESSAGES:
        out[f"parser.latency_cycles.{m.code}"] = float(per_type[m.code])
    return out


if __name__ == "__main__":  # pragma: no cover
    for k, v in bench_parser().items():
        print(f"{k}: {v}")
