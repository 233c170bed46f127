"""``wiretick bench``: named performance figures, every comparison measured in one run.

Each suite is a function returning ``{figure name: value}``.  Figures are
measured on workloads generated here (deterministic seeds), never assumed.
Later parts of the project register their suites in :data:`SUITES`.
"""

from __future__ import annotations

import os
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Callable, TextIO

__all__ = ["SUITES", "run_suites", "bench_decode"]


def _best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Items/s of the median run: the machine is shared and noisy."""
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        items = fn()
        rates.append(items / (time.perf_counter() - t0))
    return statistics.median(rates)


def _message_blocks(path: Path) -> list[bytes]:
    """Every ITCH message block of a capture, for feeding an independent decoder."""
    from .capture import read_frames
    batch = read_frames(path)
    msgs: list[bytes] = []
    for i in range(len(batch)):
        f = batch.frame(i)
        p = 12
        while struct.unpack_from(">H", f, p)[0] in (0x8100, 0x88A8):
            p += 4
        p += 2
        ihl = (f[p] & 15) * 4
        m = p + ihl + 8
        count = struct.unpack_from(">H", f, m + 18)[0]
        q = m + 20
        for _ in range(count if count != 0xFFFF else 0):
            (n,) = struct.unpack_from(">H", f, q)
            msgs.append(f[q + 2:q + 2 + n])
            q += 2 + n
    return msgs


def bench_decode(messages: int, log: TextIO | None = None) -> dict[str, float]:
    """The software reference feed handler against itchfeed on one generated capture."""
    os.environ.setdefault("ITCH_NO_CPP", "1")
    from .decode import decode_file, decode_batch
    from .capture import FrameBatch
    from .gen import GenConfig, generate_to_file

    with tempfile.TemporaryDirectory(prefix="wiretick-bench-") as tmp:
        cap = Path(tmp) / "feed.pcap"
        generate_to_file(cap, GenConfig(messages=messages, symbols=500, seed=1))
        decode_batch(FrameBatch.from_frames([]))  # compile/load the kernel outside the timing
        ours = _best_rate(lambda: decode_file(cap).counters["messages"], repeats=5)
        if log:
            print(f"decode: {ours / 1e6:.2f} M msg/s", file=log)

        from itch.parser import MessageParser
        blocks = _message_blocks(cap)[:300_000]
        parser = MessageParser()

        def itchfeed() -> int:
            for b in blocks:
                parser.get_message_type(b)
            return len(blocks)

        theirs = _best_rate(itchfeed, repeats=3)
        if log:
            print(f"itchfeed: {theirs / 1e6:.2f} M msg/s", file=log)
    return {
        "decode.msgs_per_s": round(ours),
        "itchfeed.msgs_per_s": round(theirs),
        "decode.over_itchfeed": round(ours / theirs, 2),
        "decode.messages": messages,
    }


def _bench_parser(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from wiretick.hdl.bench import bench_parser
    return bench_parser()


def _bench_host(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from .bench_host import bench_host
    return bench_host(messages, log=log)


def _bench_sim(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from wiretick.sim.bench import bench_sim
    return bench_sim(messages, log=log)


def _bench_build(messages: int, log: TextIO | None = None, seeds: int = 3) -> dict[str, float]:
    from wiretick.hdl.flow import bench_build
    return bench_build(seeds, log=log)


def _bench_book(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from .bench_book import bench_book
    return bench_book(messages, log=log)


#: Every suite by name: ``wiretick bench NAME``.
SUITES: dict[str, Callable[..., dict[str, float]]] = {
    "decode": bench_decode,
    "parser": _bench_parser,
    "host": _bench_host,
    "sim": _bench_sim,
    "build": _bench_build,
    "book": _bench_book,
}


def run_suites(names: list[str], *, messages: int, log: TextIO | None = None, **options) -> dict[str, float]:
    """Run suites; each also gets the ``options`` its function takes (``seeds`` for build)."""
    import inspect
    figures: dict[str, float] = {}
    for name in names:
        if log:
            print(f"== bench {name}", file=log)
        fn = SUITES[name]
        params = inspect.signature(fn).parameters
        figures.update(fn(messages=messages, log=log, **{k: v for k, v in options.items() if k in params}))
    return figures
