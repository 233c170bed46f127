"""A real Dask cluster on localhost: `dask scheduler` and two `dask worker` processes.

A sharded replay runs through them while one worker is killed under a shard
(its shard is rerun on the other), and its output still equals one device's;
then a regression runs through the surviving worker.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from wiretick.host.gen import GenConfig, generate_to_file
from wiretick.sim import fast
from wiretick.sim.run import ticks_equal

distributed = pytest.importorskip("distributed")

from wiretick.sim.shard import regress, sharded_sim  # noqa: E402


def _dask() -> list[str]:
    exe = shutil.which("dask")
    if exe is None:
        pytest.skip("the `dask` command is not installed (pip install 'dask[distributed]')")
    return [exe]


def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _kill(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def test_external_cluster_with_a_worker_killed_mid_shard(tmp_path):
    dask = _dask()
    fast.build_library()                     # the workers find it in the same hash-keyed cache
    cap = tmp_path / "feed.pcap"
    generate_to_file(cap, GenConfig(messages=20_000, symbols=20, seed=3, ab=True, gap_rate=0.01))
    sched_file = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen] = []
    try:
        procs.append(_start(dask + ["scheduler", "--scheduler-file", str(sched_file), "--host", "127.0.0.1",
                                    "--port", "0", "--no-dashboard"], tmp_path / "scheduler.log"))
        deadline = time.monotonic() + 60
        while not sched_file.exists():
            assert time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        workers = {}
        for name in ("w0", "w1"):
            workers[name] = _start(dask + ["worker", address, "--name", name, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard", "--memory-limit", "0"], tmp_path / f"{name}.log")
            procs.append(workers[name])
        with distributed.Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            names = {addr: w["name"] for addr, w in client.scheduler_info()["workers"].items()}
            out = tmp_path / "sharded.npy"
            box: dict = {}

            def run() -> None:
                try:
                    box["res"] = sharded_sim(cap, out, scheduler=address, shards=6, log=None)
                except BaseException as e:   # noqa: BLE001 - re-raised in the test's thread
                    box["error"] = e

            t = threading.Thread(target=run)
            t.start()
            killed_with = None
            deadline = time.monotonic() + 60
            while killed_with is None and time.monotonic() < deadline and t.is_alive():
                busy = {names.get(a): keys for a, keys in client.processing().items()}
                if busy.get("w0"):
                    killed_with = list(busy["w0"])
                    _kill(workers["w0"])
                time.sleep(0.005)
            t.join(timeout=300)
            assert not t.is_alive()
            if "error" in box:
                raise box["error"]
            assert killed_with, "w0 never took a shard"
            one = fast.simulate(cap)
            assert ticks_equal(np.load(out), one.ticks)
            assert box["res"].counters == one.counters
            # The regression runs on the survivor.
            rows = regress([str(cap)], scheduler=address, log=None)
            assert [(r.result, r.ticks) for r in rows] == [("ok", len(one.ticks))]
    except BaseException:
        for log in sorted(tmp_path.glob("*.log")):        # shown by pytest with the failure
            print(f"==== {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-30:]))
        raise
    finally:
        for p in reversed(procs):
            _kill(p)
