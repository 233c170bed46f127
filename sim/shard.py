"""Sharded replay: one capture through many simulated devices at once, equal to one device's run.

A replay through the RTL is serial only because of the sequence state the
parser carries from packet to packet: the tracked MoldUDP64 session, the next
expected message number and the ``seq`` of the next tick.  The reference model
(:mod:`wiretick.host.decode`, about 30 times faster than the RTL) computes
that state at any frame, so the capture is split at frame (packet)
boundaries into shards, the model walks it once and records the state at the
start of each shard, and every shard runs on its own simulated device that
joins the feed in that state (the ``JOIN_*`` registers,
:meth:`wiretick.host.device.Device.join`).  Each shard's ticks go straight to
their rows of one pre-sized output (row = ``seq - 1``), so memory is bounded
by a shard, not by the capture.  The counters of the shards add up to the
counters of one run.

The shards run as tasks on Dask distributed: a local cluster of worker
processes by default, or an existing cluster (``scheduler``).  Every worker
builds or finds the Verilated model in its own hash-keyed cache
(:mod:`wiretick.sim.build`); the capture and the output must be on storage
every worker reaches.  A task whose worker dies is rerun elsewhere (a rerun
writes the same rows again); a shard that fails twice ends the run.  The
output is written under a temporary name and renamed only when every shard
is in and the counters add up.

The same machinery runs :func:`regress`: captures through the RTL and the
reference model, compared field by field (docs/simulation.md).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, TextIO

import numpy as np

from wiretick.host.decode import DecodeConfig, Decoder, SequenceState
from wiretick.host.errors import WiretickError

__all__ = ["ShardError", "Shard", "ShardPlan", "ShardResult", "plan_shards", "run_shard", "dask_client",
           "sharded_sim", "RegressRow", "regress", "collect_captures", "first_difference", "check_scheduler",
           "format_table", "bench_scale"]

#: Frames per shard when the caller does not say: small enough that a shard's ticks
#: fit in memory many times over, large enough that a device's start-up is noise.
MAX_SHARD_FRAMES = 1 << 17


class ShardError(WiretickError, RuntimeError):
    """A sharded run could not complete: no scheduler, a shard that failed twice, a result that does not add up."""


@dataclass(frozen=True)
class Shard:
    """Frames ``[first_frame, first_frame + frames)`` of a capture, and where the feed is when they start.

    ``ticks`` and ``counters`` are the reference model's for the shard alone;
    the shard's ticks are rows ``[state.next_seq - 1, state.next_seq - 1 + ticks)``
    of the whole run's output.
    """

    index: int
    first_frame: int
    frames: int
    state: SequenceState
    ticks: int
    counters: dict = field(default_factory=dict)
    record: int | None = None        # classic pcap: byte offset of the first frame's record header

    @property
    def first_row(self) -> int:
        return self.state.next_seq - 1


@dataclass(frozen=True)
class ShardPlan:
    """A capture split into shards by one pass of the reference model."""

    capture: str
    config: DecodeConfig
    shards: tuple[Shard, ...]
    ticks: int
    counters: dict


@dataclass
class ShardResult:
    """What a shard's run on a simulated device produced (and, with ``compare``, how it differs)."""

    index: int
    ticks: int
    counters: dict
    cycles: int
    wall_s: float
    difference: tuple[int, str] | None = None     # (row in the whole run, field) of the first mismatch
    model: str = ""                               # the build of the design it ran (its cache key)
    cpu_s: float = 0.0                            # the worker's CPU time for the device run


# ------------------------------------------------------------------ planning

def _slice(batch, lo: int, hi: int):
    from wiretick.host.capture import FrameBatch
    return FrameBatch(batch.buf, batch.offset[lo:hi], batch.length[lo:hi], batch.ts_ns[lo:hi], batch.bad[lo:hi])


def _frame_ranges(capture: str, first: int, count: int, batch_frames: int = 1 << 14,
                  record: int | None = None) -> Iterator:
    """Frame batches covering frames ``[first, first + count)`` of ``capture``, in order.

    ``record``: the byte offset of frame ``first``'s pcap record header, where the
    walk starts (else it walks the index from the file's start).
    """
    from wiretick.host.capture import open_capture
    pos, end = (0, first + count) if record is None else (first, first + count)
    with open_capture(capture, batch_frames=batch_frames) as cap:
        for batch in (cap if record is None else cap.iter_from(record)):
            n = len(batch)
            lo, hi = max(first - pos, 0), min(end - pos, n)
            if lo < hi:
                yield _slice(batch, lo, hi)
            pos += n
            if pos >= end:
                return
    if pos < end:
        raise ShardError(f"{capture}: has {pos} frames, the shard needs frames up to {end}")


def plan_shards(capture: str | os.PathLike, config: DecodeConfig | None = None, *, shards: int | None = None,
                shard_frames: int | None = None, boundaries: list[int] | None = None) -> ShardPlan:
    """Split ``capture`` into shards and compute each one's starting state with the reference model.

    Give one of ``shards`` (that many of equal frame counts, at most
    :data:`MAX_SHARD_FRAMES` frames each), ``shard_frames`` (frames per shard) or
    ``boundaries`` (the first frame of every shard after the first).
    """
    from wiretick.host.capture import open_capture

    config = config or DecodeConfig()
    capture = str(capture)
    with open_capture(capture) as cap:
        total = sum(len(b) for b in cap)
    if boundaries is None:
        if shard_frames is None:
            n = max(1, int(shards or 1))
            shard_frames = max(1, -(-total // n))
            shard_frames = min(shard_frames, MAX_SHARD_FRAMES)
        if shard_frames < 1:
            raise ValueError(f"shard_frames must be at least 1, got {shard_frames}")
        boundaries = list(range(shard_frames, total, shard_frames))
    starts = [0] + sorted({int(b) for b in boundaries if 0 < int(b) < total})
    ends = starts[1:] + [total]

    dec = Decoder(config)
    out: list[Shard] = []
    with open_capture(capture) as cap:
        batches = iter(cap)
        pending = None
        pos = 0
        pcap = cap.format == "pcap"
        for i, (lo, hi) in enumerate(zip(starts, ends)):
            state, before = dec.state, dec.counters
            if pending is None:
                pending = next(batches, None)
            # a pcap record header is 16 bytes, just before its frame
            record = int(pending.offset[0]) - 16 if pcap and pending is not None else None
            need = hi - lo
            while need:
                if pending is None:
                    pending = next(batches)
                take = min(need, len(pending))
                dec.decode_into(_slice(pending, 0, take), _scratch(pending, take))
                pending = _slice(pending, take, len(pending)) if take < len(pending) else None
                need -= take
                pos += take
            after = dec.counters
            counters = {k: after[k] - before[k] for k in after}
            out.append(Shard(i, lo, hi - lo, state, counters["ticks"], counters, record))
    return ShardPlan(capture, config, tuple(out), dec.counters["ticks"], dec.counters)


def _scratch(batch, take: int) -> np.ndarray:
    from wiretick.host.decode import max_ticks
    from wiretick.host.contract.formats import TICK_SIZE
    return np.empty((max_ticks(_slice(batch, 0, take)), TICK_SIZE), np.uint8)


# ------------------------------------------------------------------ one shard on one device

def first_difference(got: np.ndarray, want: np.ndarray) -> tuple[int, str] | None:
    """(index, field) of the first tick where ``got`` and ``want`` differ, ``ts_rx`` aside; None when equal.

    A length difference is reported at the shorter length as field ``"count"``.
    """
    n = min(len(got), len(want))
    first: tuple[int, str] | None = None
    for name in want.dtype.names:
        if name == "ts_rx":
            continue
        bad = np.flatnonzero(got[name][:n] != want[name][:n])
        if len(bad) and (first is None or bad[0] < first[0]):
            first = (int(bad[0]), name)
    if first is None and len(got) != len(want):
        first = (n, "count")
    return first


def run_shard(capture: str, config: DecodeConfig, shard: Shard, output: str | None = None, *,
              compare: bool = False, nslots: int = 1 << 16, gap: int = 3, library: str | None = None) -> ShardResult:
    """Run ``shard`` of ``capture`` on a fresh simulated device (the fast engine) joined in ``shard.state``.

    Its ticks, renumbered to the whole run's ``seq``, are written to their rows
    of the pre-sized .npy ``output`` (when given); with ``compare`` they are
    checked against the reference model's for the same frames from the same
    state.  ``library``: the build to load (a local cluster's workers share the
    client's, so every shard runs the same design even while the sources change);
    None: this worker's own build of its installed sources.  Runs on a Dask
    worker: everything it raises is a :class:`ShardError`.
    """
    try:
        return _run_shard(capture, config, shard, output, compare=compare, nslots=nslots, gap=gap, library=library)
    except ShardError:
        raise
    except Exception as e:           # noqa: BLE001 - sent back to the client as one line
        raise ShardError(f"shard {shard.index} (frames {shard.first_frame}..{shard.first_frame + shard.frames - 1}) "
                         f"on {os.uname().nodename}: {type(e).__name__}: {e}") from None


def _run_shard(capture, config, shard, output, *, compare, nslots, gap, library) -> ShardResult:
    from wiretick.host.device import Device
    from wiretick.host.contract.ring import device_writes
    from wiretick.host.ring import Ring, without_lap_tags
    from wiretick.host.tick import TICK_DTYPE

    from .backend import reader_safe_chunks
    from .fast import FastBackend, FastSim

    parts: list[np.ndarray] = []
    with FastSim(library=library) as sim:
        model = sim.lib_path.parent.name
        backend = FastBackend(sim)
        dev = Device(backend)
        try:
            dev.configure(config)
            dev.join(None if shard.state == SequenceState() else shard.state)
            setup = dev.setup_ring(nslots)
            for lo, hi in device_writes(setup.nslots):
                sim.allow(setup.dma.bus_address, lo, hi)
            reader = Ring(setup.source)
            dev.start()
            budget = max(1, setup.nslots // 4)
            t0, c0, cpu0 = time.perf_counter(), sim.cycles, time.process_time()

            def drain() -> None:
                for part in reader.poll_parts():
                    parts.append(without_lap_tags(part))

            for batch in _frame_ranges(capture, shard.first_frame, shard.frames, record=shard.record):
                for lo, hi in reader_safe_chunks(batch.length, budget):
                    sim.push_frames(batch.buf, batch.offset[lo:hi], batch.length[lo:hi], batch.bad[lo:hi], gap)
                    drain()
            sim.run_until_idle()
            backend.end_input()
            dev.stop()
            drain()
            wall, cycles, cpu = time.perf_counter() - t0, sim.cycles - c0, time.process_time() - cpu0
            counters = dev.counters()
            lost = reader.lost
            reader.close()
            stats = sim.stats()
            if not sim.guards_intact() or stats["outside"] or stats["unmapped"] or lost:
                raise ShardError(f"shard {shard.index}: the device wrote outside its ring or the reader was "
                                 f"lapped ({stats}, lost {lost})")
        finally:
            backend.close()
    ticks = np.concatenate(parts) if parts else np.zeros(0, TICK_DTYPE)
    # The ring numbers from 1 each run; the whole run's seq continues from the shard's start.
    ticks["seq"] += np.uint64(shard.first_row)
    difference = None
    if compare:
        dec = Decoder(config, initial=None if shard.state == SequenceState() else shard.state)
        ref = [dec.decode(b) for b in _frame_ranges(capture, shard.first_frame, shard.frames, record=shard.record)]
        want = np.concatenate(ref) if ref else np.zeros(0, TICK_DTYPE)
        diff = first_difference(ticks, want)
        if diff is None and counters != dec.counters:
            name = next(k for k in dec.counters if counters.get(k) != dec.counters[k])
            diff = (len(ticks), f"counter {name}")
        if diff is not None:
            difference = (shard.first_row + diff[0], diff[1])
    if output is not None:
        if len(ticks) != shard.ticks:
            raise ShardError(f"shard {shard.index} (frames {shard.first_frame}..{shard.first_frame + shard.frames - 1})"
                             f": the device made {len(ticks)} ticks where the reference model makes {shard.ticks}; "
                             f"the RTL and the model disagree (`wiretick regress` shows where)")
        if len(ticks):
            mm = np.lib.format.open_memmap(output, mode="r+")
            try:
                mm[shard.first_row:shard.first_row + len(ticks)] = ticks
                mm.flush()
            finally:
                del mm
    return ShardResult(shard.index, len(ticks), counters, cycles, wall, difference, model, cpu)


# ------------------------------------------------------------------ Dask

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/:]+(:\d+)?$")


def check_scheduler(address: str) -> str:
    """``address`` if it looks like a Dask scheduler address (``tcp://HOST:PORT``), else a ShardError."""
    if not isinstance(address, str) or not _ADDRESS.match(address):
        raise ShardError(f"--scheduler {address!r}: give a Dask scheduler address, e.g. tcp://HOST:8786")
    return address


def _distributed():
    try:
        import distributed
    except ImportError:
        raise ShardError("sharded runs need Dask distributed: pip install 'dask[distributed]'") from None
    return distributed


@contextlib.contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None, *, timeout: float = 10.0):
    """A Dask client: on the cluster at ``scheduler``, or on a local cluster of ``workers`` processes.

    The local cluster lives as long as the context; a scheduler that cannot be
    reached within ``timeout`` seconds is a :class:`ShardError`.
    """
    distributed = _distributed()
    import dask

    if scheduler is not None:
        check_scheduler(scheduler)
        try:
            client = distributed.Client(scheduler, timeout=timeout)
        except (OSError, TimeoutError) as e:
            raise ShardError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        try:
            yield client
        finally:
            client.close()
        return
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ShardError(f"--workers must be a positive number of processes, got {workers!r}")
    # A shard that fails twice ends the run: a worker that dies under a shard counts
    # as one failure, and the shard is rerun once elsewhere.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.worker.daemon": False,
                          "distributed.admin.tick.limit": "10s"}):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.CRITICAL,
                                           memory_limit=0)
        try:
            client = distributed.Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()


def _gather(client, fn, items: list, describe, *, log: TextIO | None, what: str, **kw) -> Iterator:
    """Run ``fn(item, **kw)`` for every item on the cluster; yield results as they finish (retried once)."""
    distributed = _distributed()
    tag = uuid.uuid4().hex[:8]
    futures = {client.submit(fn, item, **kw, key=f"wiretick-{what}-{tag}-{i}", retries=1, pure=False): i
               for i, item in enumerate(items)}
    try:
        for fut in distributed.as_completed(list(futures)):
            i = futures[fut]
            try:
                yield i, fut.result()
            except ShardError as e:
                raise ShardError(f"{describe(items[i])} failed twice; last: {e}") from None
            except distributed.scheduler.KilledWorker:
                raise ShardError(f"{describe(items[i])}: the workers running it died twice") from None
            except Exception as e:      # noqa: BLE001 - a worker-side error we did not wrap (pickling, ...)
                raise ShardError(f"{describe(items[i])} failed: {type(e).__name__}: {e}") from None
    finally:
        for fut in futures:
            fut.cancel()


def _shard_task(shard: Shard, *, capture: str, config: DecodeConfig, output: str | None, compare: bool,
                library: str | None = None) -> ShardResult:
    return run_shard(capture, config, shard, output, compare=compare, library=library)


def _describe(shard: Shard) -> str:
    return f"shard {shard.index} (frames {shard.first_frame}..{shard.first_frame + shard.frames - 1})"


def _progress(log: TextIO | None, text: str) -> None:
    if log is not None:
        print(text, file=log, flush=True)


@dataclass
class ShardedRun:
    """What :func:`sharded_sim` produced."""

    ticks: int
    counters: dict
    shards: int
    wall_s: float
    cycles: int
    shard_wall_s: float          # the sum of the shards' own run times (device work, start-up excluded)
    shard_cpu_s: float = 0.0     # the CPU time of those runs (what other jobs' load does not take)


def sharded_sim(capture: str | os.PathLike, output: str | os.PathLike, config: DecodeConfig | None = None, *,
                workers: int = 2, scheduler: str | None = None, shards: int | None = None,
                shard_frames: int | None = None, boundaries: list[int] | None = None, client=None,
                log: TextIO | None = sys.stderr) -> ShardedRun:
    """``wiretick sim --workers N``: ``capture`` through simulated devices in shards; one .npy ``output``.

    The output equals a one-device run's (every field but ``ts_rx``), and so do
    the counters (summed over shards).  It appears under its name only when
    every shard is in; a failed run leaves nothing.  ``shards`` defaults to four
    per worker (a slow shard holds up less of the end); ``client``: an existing
    Dask client (tests share one).
    """
    from wiretick.host.tick import TICK_DTYPE

    from .run import _check_output

    config = config or DecodeConfig()
    out = _check_output(output)
    if scheduler is not None:
        check_scheduler(scheduler)
    capture = str(Path(capture).resolve())
    t0 = time.perf_counter()
    plan = plan_shards(capture, config, shards=shards or 4 * max(1, workers), shard_frames=shard_frames,
                       boundaries=boundaries)
    tmp = out.resolve().with_name(f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp.npy")
    try:
        mm = np.lib.format.open_memmap(tmp, mode="w+", dtype=TICK_DTYPE, shape=(plan.ticks,))
        del mm
        library = None
        if scheduler is None:
            from .fast import build_library
            library = str(build_library(log=log))   # once here: the local workers load this very build
        with (contextlib.nullcontext(client) if client is not None else dask_client(workers, scheduler)) as cl:
            counters = {k: 0 for k in plan.counters}
            cycles, shard_wall, shard_cpu, done = 0, 0.0, 0.0, 0
            models: set[str] = set()
            for _i, res in _gather(cl, _shard_task, list(plan.shards), _describe, log=log, what="shard",
                                   capture=capture, config=config, output=str(tmp), compare=False,
                                   library=library):
                models.add(res.model)
                for k, v in res.counters.items():
                    counters[k] = counters.get(k, 0) + v
                cycles += res.cycles
                shard_wall += res.wall_s
                shard_cpu += res.cpu_s
                done += 1
                _progress(log, f"shard {res.index + 1}/{len(plan.shards)} done: {res.ticks} ticks, "
                               f"{res.wall_s:.2f} s ({done}/{len(plan.shards)})")
        if len(models) > 1:
            raise ShardError(f"the workers ran different builds of the design ({', '.join(sorted(models))}): "
                             f"install the same wiretick on every worker; no output written")
        if counters != plan.counters:
            name = next(k for k in plan.counters if counters.get(k) != plan.counters[k])
            raise ShardError(f"the shards' counters do not add up to the reference model's ({name}: "
                             f"{counters.get(name)} vs {plan.counters[name]}); no output written")
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ShardedRun(plan.ticks, counters, len(plan.shards), time.perf_counter() - t0, cycles, shard_wall,
                      shard_cpu)


# ------------------------------------------------------------------ regression

@dataclass
class RegressRow:
    """One capture's regression result."""

    capture: str
    messages: int
    ticks: int
    result: str                       # "ok", "MISMATCH" or "ERROR"
    field: str | None = None          # the first differing field (or the error)
    tick: int | None = None           # its row in the capture's ticks

    def as_dict(self) -> dict:
        return {"capture": self.capture, "messages": self.messages, "ticks": self.ticks, "result": self.result,
                "field": self.field, "tick": self.tick}


_CAPTURE_SUFFIXES = (".pcap", ".pcapng")


def collect_captures(paths: list[str]) -> list[str]:
    """Capture files named by ``paths``: files, directories (their ``*.pcap``/``*.pcapng``, recursively), globs."""
    found: list[str] = []
    for p in paths:
        matches = sorted(glob.glob(p, recursive=True)) if glob.has_magic(p) else [p]
        if not matches:
            raise ShardError(f"{p}: no file matches")
        for m in matches:
            path = Path(m)
            if path.is_dir():
                inner = sorted(str(q) for q in path.rglob("*") if q.suffix.lower() in _CAPTURE_SUFFIXES and q.is_file())
                if not inner:
                    raise ShardError(f"{m}: a directory with no .pcap or .pcapng file")
                found += inner
            elif path.is_file():
                found.append(str(path))
            else:
                raise ShardError(f"{m}: no such file or directory")
    seen: set[str] = set()
    unique = []
    for f in found:
        key = str(Path(f).resolve())
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def _cocotb_task(capture: str, *, config: DecodeConfig) -> ShardResult:
    """A whole capture through the cocotb testbench (Verilator), compared with the reference model."""
    try:
        import tempfile

        from wiretick.host.decode import decode_file

        from .run import run_sim
        with tempfile.TemporaryDirectory(prefix="wiretick-regress-") as d:
            out = Path(d) / "ticks.npy"
            res = run_sim(capture, out, config, engine="cocotb", log=None)
            ticks = np.load(out)
        ref = decode_file(capture, config=config)
        diff = first_difference(ticks, ref.ticks)
        if diff is None and res.counters != ref.counters:
            name = next(k for k in ref.counters if res.counters.get(k) != ref.counters[k])
            diff = (len(ticks), f"counter {name}")
        return ShardResult(0, len(ticks), res.counters, res.cycles, res.wall_s, diff)
    except ShardError:
        raise
    except Exception as e:     # noqa: BLE001
        raise ShardError(f"{capture} on {os.uname().nodename}: {type(e).__name__}: {e}") from None


def regress(paths: list[str], config: DecodeConfig | None = None, *, engine: str = "fast", workers: int = 2,
            scheduler: str | None = None, client=None, shard_frames: int | None = None,
            log: TextIO | None = sys.stderr) -> list[RegressRow]:
    """Every capture through the RTL and the reference model, compared field by field (``ts_rx`` aside).

    The fast engine runs captures in shards (all captures' shards share the
    cluster); cocotb runs each capture whole.  A capture that cannot be read is a
    row with result ERROR; a failure of the cluster itself ends the run.
    """
    from wiretick.host.capture import CaptureError

    config = config or DecodeConfig()
    if engine not in ("fast", "cocotb"):
        raise ShardError(f"unknown engine {engine!r}; choose from fast, cocotb")
    if scheduler is not None:
        check_scheduler(scheduler)
    captures = collect_captures(paths)
    rows: dict[str, RegressRow] = {}
    tasks: list[tuple[str, Shard | None]] = []
    plans: dict[str, ShardPlan] = {}
    for cap in captures:
        full = str(Path(cap).resolve())
        try:
            if engine == "fast":
                plan = plan_shards(full, config, shards=4 * max(1, workers), shard_frames=shard_frames)
                plans[cap] = plan
                tasks += [(cap, s) for s in plan.shards]
                rows[cap] = RegressRow(cap, plan.counters["messages"], plan.ticks, "ok")
            else:
                from wiretick.host.decode import decode_file
                ref = decode_file(full, config=config)
                tasks.append((cap, None))
                rows[cap] = RegressRow(cap, ref.counters["messages"], ref.counters["ticks"], "ok")
        except (CaptureError, OSError) as e:
            rows[cap] = RegressRow(cap, 0, 0, "ERROR", str(e))
    library = None
    if tasks and scheduler is None and engine == "fast":
        from .fast import build_library
        library = str(build_library(log=log))
    if tasks:
        with (contextlib.nullcontext(client) if client is not None else dask_client(workers, scheduler)) as cl:
            items = [(str(Path(c).resolve()), s) for c, s in tasks]

            def describe(item) -> str:
                c, s = item
                return f"{c}" + (f" {_describe(s)}" if s is not None else "")

            done = 0
            for i, res in _gather(cl, _regress_task, items, describe, log=log, what="regress", config=config,
                                  library=library):
                cap, shard = tasks[i]
                done += 1
                row = rows[cap]
                if res.difference is not None and (row.tick is None or res.difference[0] < row.tick):
                    row.result, row.tick, row.field = "MISMATCH", res.difference[0], res.difference[1]
                _progress(log, f"[{done}/{len(tasks)}] {cap}"
                               + (f" shard {shard.index + 1}/{len(plans[cap].shards)}" if shard is not None else "")
                               + (" differs" if res.difference is not None else " ok"))
    return [rows[c] for c in captures]


def _regress_task(item, *, config: DecodeConfig, library: str | None) -> ShardResult:
    capture, shard = item
    if shard is None:
        return _cocotb_task(capture, config=config)
    return run_shard(capture, config, shard, None, compare=True, library=library)


def format_table(rows: list[RegressRow]) -> str:
    """The regression table: one line per capture."""
    head = ("capture", "messages", "ticks", "result", "first difference")
    body = [(r.capture, str(r.messages), str(r.ticks), r.result,
             "" if r.field is None else (r.field if r.tick is None else f"{r.field} at tick {r.tick}"))
            for r in rows]
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i in (0, 3, 4) else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
             .rstrip() for line in [head] + body]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ speed

def bench_scale(messages: int, log: TextIO | None = None, *, shards: int = 8) -> dict[str, float]:
    """``wiretick bench scale``: one generated feed replayed sharded with 1 and with 2 workers, same run.

    Both runs cut the feed into the same ``shards`` and differ only in the
    number of worker processes of their local cluster; cluster start-up is
    measured apart (``scale.cluster_start_s``).  ``per_worker_device``: messages
    per second of device time (the shards' own runs, summed); ``shard_overhead_s``:
    what a shard costs beyond that (a fresh device, reading its frames, writing its rows,
    scheduling), from the one-worker run; ``plan_s``: the reference model's pass.
    """
    import tempfile

    from wiretick.host.measure import loadavg
    from wiretick.host.gen import GenConfig, generate_to_file

    from .fast import build_library

    build_library(log=log)
    figures: dict[str, float] = {}
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="wiretick-bench-scale-") as d:
        cap = Path(d) / "feed.pcap"
        generate_to_file(cap, GenConfig(messages=messages, symbols=50, seed=1))     # `bench sim`'s feed
        from wiretick.host.capture import open_capture
        t0 = time.perf_counter()
        with open_capture(cap) as c:
            sum(len(b) for b in c)
        # A shard's worker walks the capture's index up to its first frame.
        figures["scale.index_walk_bytes_per_s"] = cap.stat().st_size / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        plan = plan_shards(cap, shards=shards)
        figures["scale.plan_s"] = time.perf_counter() - t0
        for workers in (1, 2):
            t0 = time.perf_counter()
            with dask_client(workers) as client:
                client.wait_for_workers(workers)
                figures[f"scale.cluster_start_s.workers_{workers}"] = time.perf_counter() - t0
                res = sharded_sim(cap, Path(d) / f"w{workers}.npy", shards=shards, client=client, log=None)
            figures[f"scale.msgs_per_s.workers_{workers}"] = messages / res.wall_s
            if log is not None:
                print(f"scale: {workers} worker(s): {res.wall_s:.2f} s, {messages / res.wall_s:,.0f} msgs/s",
                      file=log)
            if workers == 1:
                figures["scale.msgs_per_s.per_worker_device"] = messages / res.shard_wall_s
                figures["scale.msgs_per_cpu_s.per_worker_device"] = messages / res.shard_cpu_s
                figures["scale.shard_overhead_s"] = max(
                    0.0, (res.wall_s - figures["scale.plan_s"] - res.shard_wall_s) / len(plan.shards))
        figures["scale.efficiency.workers_2"] = (figures["scale.msgs_per_s.workers_2"]
                                                 / (2 * figures["scale.msgs_per_s.workers_1"]))
    figures["scale.messages"] = messages
    figures["scale.shards"] = len(plan.shards)
    figures["scale.loadavg_1m"] = max(load_before, loadavg())
    return figures
