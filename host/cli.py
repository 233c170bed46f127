"""The ``wiretick`` command: one entry point, a subcommand per tool.

Errors a user can act on (a bad capture, a bad option, a tool that is
missing or failed, a device that stopped answering) end in one line on
stderr and exit code 2, whichever command raised them (:func:`main` is the
one error path); outputs are written under a temporary name and renamed into
place on success, so nothing is left half-written.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
from pathlib import Path

from .errors import WiretickError

__all__ = ["main", "UsageError", "error_line"]


class UsageError(WiretickError):
    """Bad input or usage: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error reported as the one line every other error is (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    v = int(text, 0)
    if not 0 <= v <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {text}")
    return v


def _ipv4(text: str) -> int:
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=_port, default=0, help="accept only this UDP destination port (default: any)")
    p.add_argument("--ip-dst", type=_ipv4, default=0, metavar="ADDR",
                   help="accept only this IPv4 destination address (default: any)")
    p.add_argument("--no-ip-checksum", action="store_true", help="do not verify IPv4 header checksums")
    p.add_argument("--no-sequence-check", action="store_true",
                   help="no MoldUDP64 sequence processing (no duplicate drops, no gap events)")


def _add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar on the terminal (none is drawn when stderr is not a terminal either)")


def _config(args: argparse.Namespace):
    from .decode import DecodeConfig
    return DecodeConfig(ip_dst=args.ip_dst, port=args.port, check_ip_checksum=not args.no_ip_checksum,
                        sequence_check=not args.no_sequence_check)


def cmd_decode(args: argparse.Namespace) -> int:
    from .decode import decode_file, format_counters
    t0 = time.perf_counter()
    if str(args.output).endswith(".parquet"):          # symbols resolved, prices as decimals
        from .tables import decode_to_parquet
        res = decode_to_parquet(args.capture, args.output, _config(args))
    else:
        from .progress import progress
        size = os.path.getsize(args.capture) if os.path.isfile(args.capture) else None   # else decode says why
        with progress(size, "decode", args.quiet, unit="B", unit_scale=True) as bar:
            res = decode_file(args.capture, args.output, _config(args), progress=bar)
    dt = time.perf_counter() - t0
    print(format_counters(res.counters), file=sys.stderr)
    print(f"wrote {res.counters['ticks']} ticks to {args.output} in {dt:.2f} s", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- wiretick bbo (host/book.py)


def cmd_bbo(args: argparse.Namespace) -> int:
    import warnings

    from .book import bbo_of
    from .tables import check_output, write_table
    check_output(args.output)                          # refused before the capture is read
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows, books = bbo_of(args.capture, symbols=args.symbols, config=_config(args))
    for w in caught:
        print(f"wiretick bbo: warning: {w.message}", file=sys.stderr)
    write_table(rows, args.output, directory=books.symbols)
    bad = ", ".join(f"{k}={v}" for k, v in books.counters.items() if v) or "none"
    print(f"book inconsistencies: {bad}", file=sys.stderr)
    print(f"wrote {len(rows)} BBO rows ({books.messages} ticks) to {args.output} in {time.perf_counter() - t0:.2f} s",
          file=sys.stderr)
    return 0


def _add_bbo_parser(sub) -> None:
    p = sub.add_parser("bbo", help="one row per change of a symbol's best bid or offer, from a capture",
                       description="Build every symbol's order book from a capture and write one row per change "
                                   "of a best bid or offer (ts_exch, feed_seq, seq, locate, bid_px, bid_sz, bid_ct, "
                                   "ask_px, ask_sz, ask_ct; Price(4) integers, an empty side 0) as .npy, or as "
                                   ".parquet with symbols and decimal prices.")
    p.add_argument("capture", help="pcap or pcapng file (Ethernet)")
    p.add_argument("-o", "--output", required=True, help="output file: .npy (BBO_DTYPE) or .parquet")
    p.add_argument("--symbols", metavar="LIST", help="only these symbols, comma-separated (every book is still built)")
    _add_filter_options(p)
    p.set_defaults(func=cmd_bbo)


def cmd_gen(args: argparse.Namespace) -> int:
    from .gen import GenConfig, generate_to_file
    vlan = None if args.vlan.lower() == "none" else int(args.vlan, 0)
    try:
        cfg = GenConfig(messages=args.messages, symbols=args.symbols, seed=args.seed, vlan=vlan, ab=args.ab,
                        gap_rate=args.gap_rate, all_types=args.all_types,
                        max_messages_per_packet=args.max_per_packet, mtu=args.mtu)
    except ValueError as e:
        raise UsageError(str(e)) from None
    from .progress import progress
    t0 = time.perf_counter()
    with progress(None, "gen", args.quiet, unit="B", unit_scale=True) as bar:
        stats = generate_to_file(args.output, cfg, progress=bar)
    dt = time.perf_counter() - t0
    print(f"wrote {args.output}: {stats.messages} messages in {stats.packets} packets, {stats.frames} frames "
          f"({dt:.2f} s)", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_suites, SUITES
    unknown = [s for s in args.suites if s not in SUITES]
    if unknown:
        raise UsageError(f"unknown bench suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json: directory {Path(args.json).resolve().parent} does not exist")
    suites = args.suites or list(SUITES)
    if args.plot is not None:
        if "host" not in suites:
            raise UsageError("--plot draws the host suite's latency histogram: run the host suite")
        if not Path(args.plot).resolve().parent.is_dir():
            raise UsageError(f"--plot: directory {Path(args.plot).resolve().parent} does not exist")
    if not args.boards and "build" not in suites:
        raise UsageError("--no-boards leaves the boards out of the build suite: run the build suite")
    figures = run_suites(suites, messages=args.messages, log=sys.stderr, seeds=args.seeds, plot=args.plot,
                         boards=args.boards)
    text = json.dumps(figures, indent=2, sort_keys=True)
    if args.json:
        write_atomic(Path(args.json), text + "\n")
    print(text)
    return 0


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary name beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cmd_sim(args: argparse.Namespace) -> int:
    from wiretick.sim.run import run_sim

    from .decode import format_counters
    res = run_sim(args.capture, args.output, _config(args), engine=args.engine, simulator=args.simulator,
                  waves=args.waves, ring=args.ring, nslots=args.nslots, log=sys.stderr, quiet=args.quiet)
    print(format_counters(res.counters), file=sys.stderr)
    rate = res.cycles / res.wall_s if res.wall_s else 0.0
    shown = f"{rate / 1e6:.2f} M" if rate >= 1e5 else f"{rate:,.0f}"      # Icarus runs hundreds a second
    engine = args.engine if args.engine == "fast" else f"{args.engine} on {args.simulator}"
    print(f"wrote {res.ticks} ticks to {args.output}: {res.cycles} cycles in {res.wall_s:.2f} s "
          f"({shown} cycles/s, {engine} engine)", file=sys.stderr)
    if args.ring:
        print(f"ring {args.ring} stays for readers: wiretick.host.ring.Ring({args.ring!r})", file=sys.stderr)
    return 0


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return v


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import cmd_replay as replay
    if args.rate is not None and args.capture_timing:
        raise UsageError("--rate and --capture-timing are exclusive")
    if args.no_overwrite and args.force:
        raise UsageError("--force and --no-overwrite are exclusive")
    ring = args.ring if args.ring is not None else Path(args.ring_path)
    replay(args.capture, ring, rate=args.rate, nslots=args.nslots, config=_config(args),
           capture_timing=args.capture_timing, speed=args.speed, overwrite=not args.no_overwrite,
           force=args.force, log=sys.stderr, quiet=args.quiet)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wiretick", description="FPGA SmartNIC ITCH 5.0 feed handler toolkit.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("decode", help="decode a capture into normalized ticks with the software reference feed handler",
                       description="Decode a pcap/pcapng capture of MoldUDP64/ITCH 5.0 into a .npy of ticks; "
                                   "a summary of counters goes to stderr.")
    d.add_argument("capture", help="pcap or pcapng file (Ethernet)")
    d.add_argument("-o", "--output", required=True, help="output .npy file of the tick dtype")
    _add_filter_options(d)
    _add_quiet_option(d)
    d.set_defaults(func=cmd_decode)

    g = sub.add_parser("gen", help="generate a synthetic, realistic ITCH 5.0 feed capture",
                       description="Write a deterministic synthetic MoldUDP64/ITCH 5.0 feed as pcap.")
    g.add_argument("-o", "--output", required=True, help="output .pcap file")
    g.add_argument("--messages", type=int, required=True, help="number of ITCH messages")
    g.add_argument("--symbols", type=int, default=100, help="number of stocks (default 100)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--vlan", default="141", help="802.1Q VLAN id, or 'none' (default 141)")
    g.add_argument("--ab", action="store_true", help="also emit the B copy of every packet")
    g.add_argument("--gap-rate", type=float, default=0.0, help="fraction of packets to drop (sequence gaps)")
    g.add_argument("--all-types", action="store_true", help="include every one of the 23 ITCH message types")
    g.add_argument("--max-per-packet", type=int, default=32, help="most messages in one packet (default 32)")
    g.add_argument("--mtu", type=int, default=1500, help="IP MTU (default 1500)")
    _add_quiet_option(g)
    g.set_defaults(func=cmd_gen)

    r = sub.add_parser("replay", help="replay a capture into a shared-memory tick ring for strategies to follow",
                       description="Decode a capture with the reference feed handler and write its ticks into the "
                                   "ring /dev/shm/NAME (or the file --ring-path names), as the device would; "
                                   "readers open it with wiretick.host.ring.Ring. The ring stays when the replay "
                                   "ends. An existing ring is replaced only if no process uses it (or with "
                                   "--force); a file that is not a ring is never replaced.")
    r.add_argument("capture", help="pcap or pcapng file (Ethernet)")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--ring", metavar="NAME", help="ring name under /dev/shm (a name: no '/' or '..')")
    where.add_argument("--ring-path", metavar="PATH", help="the ring's file, anywhere (e.g. on hugetlbfs)")
    r.add_argument("--rate", type=_positive_float, help="pace at this many messages per second (default: full speed)")
    r.add_argument("--capture-timing", action="store_true", help="pace at the capture's own timestamps")
    r.add_argument("--speed", type=_positive_float, default=1.0, help="with --capture-timing: speed-up factor")
    r.add_argument("--nslots", type=int, default=1 << 20, help="ring slots, a power of two >= 64 (default 2^20)")
    r.add_argument("--no-overwrite", action="store_true", help="fail if the ring already exists")
    r.add_argument("--force", action="store_true",
                   help="replace an existing ring even while processes map it (they keep the old one)")
    _add_filter_options(r)
    _add_quiet_option(r)
    r.set_defaults(func=cmd_replay)

    s = sub.add_parser("sim", help="simulate a capture through the device's RTL; same output as decode",
                       description="Replay a capture through the Verilog of the whole device (parser, DMA, "
                                   "registers), programmed by the host driver, its DMA writing a ring under "
                                   "/dev/shm; the ticks a ring reader saw go to a .npy exactly as "
                                   "`wiretick decode` writes it.")
    s.add_argument("capture", help="pcap or pcapng file (Ethernet); pcapng CRC-error flags mark frames bad")
    s.add_argument("-o", "--output", required=True, help="output .npy file of the tick dtype")
    s.add_argument("--engine", choices=("fast", "cocotb"), default="fast",
                   help="fast: Verilator + C++ harness (default); cocotb: the cocotb testbench")
    s.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                   help="with --engine cocotb: the simulator (default verilator)")
    s.add_argument("--waves", metavar="FILE",
                   help="write waveforms of the whole run to FILE: fast engine VCD if FILE ends in .vcd, else FST; "
                        "cocotb: .vcd with Verilator, .fst with Icarus")
    s.add_argument("--ring", metavar="NAME",
                   help="name the ring (/dev/shm/NAME) so strategies can attach while it runs; it stays after")
    s.add_argument("--nslots", type=int, default=1 << 16, help="ring slots, a power of two (default 2^16)")
    _add_filter_options(s)
    _add_shard_options(s)
    _add_quiet_option(s)
    s.set_defaults(func=cmd_sim_or_shards)

    b = sub.add_parser("bench", help="run benchmark suites and write named figures as JSON",
                       description="Run benchmark suites; prints the figures as JSON (and writes --json).")
    b.add_argument("suites", nargs="*", help="suites to run (default: all)")
    b.add_argument("--json", help="write the figures to this file")
    b.add_argument("--messages", type=int, default=2_000_000, help="size of the generated workload (default 2M)")
    b.add_argument("--plot", metavar="FILE", help="host suite: write a histogram of the ring latency as PNG")
    b.add_argument("--seeds", type=_positive_int, default=3,
                   help="build suite: nextpnr seeds per design, the median reported (default 3)")
    b.add_argument("--no-boards", dest="boards", action="store_false",
                   help="build suite: the core and the parser only, not every board's bitstream")
    b.set_defaults(func=cmd_bench)

    _add_build_parser(sub)
    _add_bbo_parser(sub)
    _add_regress_parser(sub)
    return p


# ---------------------------------------------------------------- sharded runs (sim/shard.py, issue 14)

def _add_shard_options(p: argparse.ArgumentParser) -> None:
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_positive_int, default=1,
                       help="split the capture into shards run by N worker processes of a local Dask cluster "
                            "(fast engine; the output equals the one-worker run's; default 1: no cluster)")
    where.add_argument("--scheduler", metavar="ADDR",
                       help="run the shards on an existing Dask cluster (tcp://HOST:PORT); the capture and "
                            "the output must be on storage every worker reaches")


def cmd_sim_or_shards(args: argparse.Namespace) -> int:
    if args.workers == 1 and args.scheduler is None:
        return cmd_sim(args)
    from wiretick.sim.shard import check_scheduler, sharded_sim

    from .decode import format_counters
    if args.engine != "fast" or args.waves or args.ring:
        raise UsageError("--workers/--scheduler run the fast engine into the output only "
                         "(no --engine cocotb, --waves or --ring)")
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    res = sharded_sim(args.capture, args.output, _config(args), workers=args.workers, scheduler=args.scheduler,
                      log=sys.stderr)
    print(format_counters(res.counters), file=sys.stderr)
    where = f"on {args.scheduler}" if args.scheduler else f"on {args.workers} local workers"
    print(f"wrote {res.ticks} ticks to {args.output}: {res.shards} shards {where} in {res.wall_s:.2f} s "
          f"({res.cycles} cycles, {res.shard_wall_s:.2f} s of device runs)", file=sys.stderr)
    return 0


def cmd_regress(args: argparse.Namespace) -> int:
    from wiretick.sim.shard import check_scheduler, format_table, regress
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    if args.json and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json: directory {Path(args.json).resolve().parent} does not exist")
    rows = regress(args.paths, _config(args), engine=args.engine, workers=args.workers, scheduler=args.scheduler,
                   log=sys.stderr)
    sys.stdout.write(format_table(rows))
    if args.json:
        write_atomic(Path(args.json), json.dumps([r.as_dict() for r in rows], indent=2) + "\n")
    failed = [r for r in rows if r.result != "ok"]
    print(f"{len(rows) - len(failed)}/{len(rows)} captures equal the reference model", file=sys.stderr)
    return 1 if failed else 0


def _add_regress_parser(sub) -> None:
    p = sub.add_parser("regress", help="captures through the RTL and the reference model, compared field by field",
                       description="Run every capture (files, directories of .pcap/.pcapng, globs) through the "
                                   "device's RTL and through the reference decoder and compare every tick field "
                                   "but ts_rx, and every counter. A table on stdout (capture, messages, ticks, "
                                   "result, first differing field and tick); exit 1 on any mismatch.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="capture files, directories or globs")
    p.add_argument("--engine", choices=("fast", "cocotb"), default="fast",
                   help="fast: Verilator + C++ harness, captures in shards (default); cocotb: the cocotb testbench")
    _add_shard_options(p)
    p.set_defaults(workers=2)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    _add_filter_options(p)
    p.set_defaults(func=cmd_regress)


# ---------------------------------------------------------------- wiretick build (hdl/flow.py)

def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return v


def _boards() -> dict:
    try:
        from wiretick.hdl.boards import BOARDS
    except ModuleNotFoundError as e:
        if e.name != "wiretick.hdl.boards":
            raise
        raise UsageError("no board designs in this installation (wiretick.hdl.boards is missing)") from None
    return BOARDS


def cmd_build(args: argparse.Namespace) -> int:
    from wiretick.hdl.flow import DoesNotFit, Part, Progress, build_board

    from .errors import ToolError
    boards = _boards()
    if args.list:
        for name, board in boards.items():
            part = f"{board.device}-{board.speed} {board.package}"
            print(f"{name:<20} {part:<22} {board.description}")
        return 0
    if args.board not in boards:
        raise UsageError(f"unknown board {args.board!r}; choose from {', '.join(boards)} (wiretick build --list)")
    board = boards[args.board]
    out = Path(args.output) if args.output else Path("build") / args.board
    try:
        result = build_board(board.plan(args.seed), out, Part(board.device, board.package, int(board.speed)),
                             seed=args.seed, board=args.board, progress=Progress(sys.stderr))
    except ToolError as e:
        if e.tail and not isinstance(e, DoesNotFit):
            print(f"last lines of {e.log}:", file=sys.stderr)
            print("\n".join("  " + line for line in e.tail.splitlines()), file=sys.stderr)
        raise
    print(result.summary_text(), end="")
    print(f"wrote {result.bitstream} and the logs, reports and summary in {out}", file=sys.stderr)
    missed = [c for c in result.report.clocks.values() if not c.met]
    if missed and not args.allow_timing_fail:
        worst = ", ".join(f"{c.name} {c.achieved_mhz:.2f} < {c.constraint_mhz:.2f} MHz" for c in missed)
        raise ToolError("nextpnr-ecp5", f"timing not met: {worst}; the bitstream may not work "
                        "(--allow-timing-fail accepts it)", log=out / "summary.txt")
    return 0


def _add_build_parser(sub) -> None:
    p = sub.add_parser("build", help="build a board's bitstream with the open ECP5 flow (Yosys, nextpnr, ecppack)",
                       description="Build the board design into a bitstream: the tools' logs and reports, "
                                   "summary.json and summary.txt (every clock's Fmax against its constraint, "
                                   "LUT4/FF/block RAM/DSP use against the part, time per tool) go to the "
                                   "output directory; when a tool fails, its log stays there and its last "
                                   "lines are printed.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--board", metavar="NAME", help="the board to build (see --list)")
    which.add_argument("--list", action="store_true", help="name the boards and their parts")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (default: build/NAME)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="exit 0 even when a clock misses its constraint (the summary says which)")
    p.set_defaults(func=cmd_build)


#: Errors of modules that may not be loaded, by (module, class name): user errors that do not
#: derive from WiretickError.  A class can only be raised once its module is loaded, so
#: :func:`main` looks them up in ``sys.modules`` and never imports a simulator to report an error.
_FOREIGN_USER_ERRORS = (
    ("wiretick.host.capture", "CaptureError"),
    ("wiretick.sim.cocotb_run", "CocotbError"),
    ("wiretick.sim.interactive", "BuildError"),
    ("wiretick.sim.lint", "LintError"),
)


def _user_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [WiretickError, ValueError]
    for module, name in _FOREIGN_USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def error_line(command: str, e: BaseException) -> str:
    """The one line ``wiretick COMMAND: error: ...`` that reports ``e``.

    A multi-line message (a tool's output) keeps its first and last lines, so
    that what failed and the tool's final word both show.
    """
    if isinstance(e, OSError) and not isinstance(e, WiretickError) and e.strerror:
        text = f"{e.strerror}: {e.filename}" if e.filename is not None else e.strerror
    else:
        text = str(e) or type(e).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    text = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}" if lines else type(e).__name__
    if len(text) > 600:
        text = text[:597] + "..."
    return f"wiretick {command}: error: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; every error a user can act on ends here: one line on stderr, exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except OSError as e:                 # a missing file, a full disk, permissions: the user's to fix
        print(error_line(args.command, e), file=sys.stderr)
        return 2
    except Exception as e:
        if not isinstance(e, _user_errors()):
            raise                        # anything else is a bug: keep its traceback
        print(error_line(args.command, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
