"""``wiretick bench``: named performance figures, every comparison measured in one run.

Each suite is a function returning ``{figure name: value}``.  Figures are
measured on workloads generated here (deterministic seeds), never assumed.
Later parts of the project register their suites in :data:`SUITES`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, TextIO

from .measure import loadavg, median_cpu_rate, median_rate

__all__ = ["SUITES", "run_suites", "bench_decode"]


def bench_decode(messages: int, log: TextIO | None = None) -> dict[str, float]:
    """The software reference feed handler against three peers on the same generated messages.

    - ``decode.msgs_per_s``: :func:`~.decode.decode_file`, pcap file to ticks in
      memory (median of 5; ``..._cpu`` the same per second of CPU time);
    - ``itchfeed.msgs_per_s``: itchfeed's pure-Python ``MessageParser`` on each message;
    - ``itchcpp.msgs_per_s``: itchfeed's native backend (``itchcpp.parser``),
      ``parse_stream`` over the messages as one ITCH stream (2-byte length prefixes);
    - ``itch_book.msgs_per_s``: itch-book's ``messages`` table from the same
      stream as a file (its ``Feed``);
    - ``decode.over_best_peer``: ours over the fastest of the three.
    """
    os.environ.setdefault("ITCH_NO_CPP", "1")     # itchfeed stays pure Python; itchcpp is measured apart
    from .decode import decode_file, decode_batch
    from .capture import FrameBatch, read_frames
    from .frames import batch_messages
    from .gen import GenConfig, generate_to_file

    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="wiretick-bench-") as tmp:
        cap = Path(tmp) / "feed.pcap"
        generate_to_file(cap, GenConfig(messages=messages, symbols=500, seed=1))
        decode_batch(FrameBatch.from_frames([]))  # compile/load the kernel outside the timing
        ours = median_rate(lambda: decode_file(cap).counters["messages"], repeats=5)
        ours_cpu = median_cpu_rate(lambda: decode_file(cap).counters["messages"], repeats=5)
        if log:
            print(f"decode: {ours / 1e6:.2f} M msg/s ({ours_cpu / 1e6:.2f} M per CPU second)", file=log)

        blocks = batch_messages(read_frames(cap))
        stream = b"".join(len(b).to_bytes(2, "big") + b for b in blocks)
        peers = {}

        from itch.parser import MessageParser
        parser = MessageParser()

        def itchfeed() -> int:
            for b in blocks:
                parser.get_message_type(b)
            return len(blocks)

        peers["itchfeed"] = median_rate(itchfeed, repeats=3)

        from itchcpp.parser import MessageParser as NativeParser
        native = NativeParser()

        def itchcpp() -> int:
            n = 0
            for _ in native.parse_stream(stream):
                n += 1
            return n

        peers["itchcpp"] = median_rate(itchcpp, repeats=3)

        import datetime
        import itch_book
        itch_file = Path(tmp) / "feed.itch"
        itch_file.write_bytes(stream)

        def book() -> int:
            feed = itch_book.Feed(str(itch_file), date=datetime.date(2024, 1, 2))
            for _ in feed.batches(tables=("messages",), rows=len(blocks) + 1):
                pass
            return feed.stats["messages"]

        if book() != len(blocks):
            raise AssertionError(f"itch-book read {book()} messages of {len(blocks)}")
        peers["itch_book"] = median_rate(book, repeats=3)
        if log:
            print("peers: " + ", ".join(f"{k} {v / 1e6:.2f} M msg/s" for k, v in peers.items()), file=log)
    best = max(peers, key=peers.get)
    return {
        "decode.msgs_per_s": round(ours),
        "decode.msgs_per_cpu_s": round(ours_cpu),
        "itchfeed.msgs_per_s": round(peers["itchfeed"]),
        "itchcpp.msgs_per_s": round(peers["itchcpp"]),
        "itch_book.msgs_per_s": round(peers["itch_book"]),
        "decode.over_itchfeed": round(ours / peers["itchfeed"], 2),
        "decode.over_best_peer": round(ours / peers[best], 2),
        "decode.best_peer": best,
        "decode.messages": messages,
        "decode.loadavg_1m": max(load_before, loadavg()),
    }


def _bench_parser(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from wiretick.sim.parser_bench import bench_parser
    return bench_parser()


def _bench_host(messages: int, log: TextIO | None = None, plot: str | None = None) -> dict[str, float]:
    from .bench_host import bench_host
    return bench_host(messages, log=log, plot=plot)


def _bench_sim(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from wiretick.sim.bench import bench_sim
    return bench_sim(messages, log=log)


def _bench_build(messages: int, log: TextIO | None = None, seeds: int = 3, boards: bool = True) -> dict[str, float]:
    from wiretick.hdl.flow import bench_build
    from wiretick.sim.parser_bench import latency_cycles
    return bench_build(seeds, parser_latency=latency_cycles, boards=boards, log=log)


def _bench_book(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from .bench_book import bench_book
    return bench_book(messages, log=log)


def _bench_scale(messages: int, log: TextIO | None = None) -> dict[str, float]:
    from wiretick.sim.shard import bench_scale
    return bench_scale(messages, log=log)


#: Every suite by name: ``wiretick bench NAME``.
SUITES: dict[str, Callable[..., dict[str, float]]] = {
    "decode": bench_decode,
    "parser": _bench_parser,
    "host": _bench_host,
    "sim": _bench_sim,
    "build": _bench_build,
    "book": _bench_book,
    "scale": _bench_scale,
}


def run_suites(names: list[str], *, messages: int, log: TextIO | None = None, **options) -> dict[str, float]:
    """Run suites; each also gets the ``options`` its function takes (``seeds`` and ``boards`` for build)."""
    import inspect
    figures: dict[str, float] = {}
    for name in names:
        if log:
            print(f"== bench {name}", file=log)
        fn = SUITES[name]
        params = inspect.signature(fn).parameters
        figures.update(fn(messages=messages, log=log, **{k: v for k, v in options.items() if k in params}))
    return figures
