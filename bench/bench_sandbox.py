"""Benchmark: ``Cluster.sandbox(standbys=2)`` against one bare ``initdb`` + ``pg_ctl start``.

Run with ``nox -s bench`` (or ``python bench/bench_sandbox.py [--rounds N] [--bindir DIR]``).
Everything is measured in this one process, on this machine, and reported as ratios to the
baseline measured in the same run:

- baseline: ``initdb --no-sync`` + ``pg_ctl start -w`` of a single server (then stopped);
- cold: a sandbox primary + 2 streaming standbys, initdb run every time;
- warm: the same with the initdb template cached (as PostgreSQL's own test suite does);
- ``import pgstream`` in a fresh interpreter, against a bare ``python -c pass``.

Each series runs in the sandbox's default place (``/dev/shm`` where it is a memory file
system) and again on disk (the temporary directory), baseline included, so every ratio
compares like with like.

Targets from issue #2: warm <= 0.8x baseline, cold <= 2x baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Figures

from pgstream import Cluster
from pgstream.hosts import binaries
from pgstream.hosts.host import LocalHost, server_user
from pgstream.ops.sandbox.servers import default_parent, free_port
from pgstream.render import commands


def _owned_tmp(prefix: str, parent: Path) -> Path:
    user = server_user()
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if os.geteuid() == 0:
        os.chown(path, user.uid, user.gid)
    return path


def baseline(bindir: Path, parent: Path) -> float:
    """Seconds for initdb + pg_ctl start of one bare server in ``parent`` (stop not counted)."""
    host, user = LocalHost(), server_user()
    base = _owned_tmp("pgstream-bench-", parent)
    data = base / "data"
    try:
        started = time.perf_counter()
        host.run(commands.initdb(bindir, data, superuser="postgres"), user=user)
        port = free_port(set())
        host.run((str(bindir / "pg_ctl"), "start", "-w", "-D", str(data), "-l",
                  str(base / "log"), "-o", f"-p {port} -k {base} -c listen_addresses=''"),
                 user=user)
        elapsed = time.perf_counter() - started
        host.run(commands.pg_ctl(bindir, "stop", data, mode="immediate"), user=user)
        return elapsed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def sandbox(bindir: Path, template: bool, parent: Path) -> float:
    started = time.perf_counter()
    cluster = Cluster.sandbox(standbys=2, bindir=bindir, template=template, base_dir=parent)
    elapsed = time.perf_counter() - started
    assert cluster.status().all_streaming
    cluster.close()
    return elapsed


def import_time(rounds: int) -> tuple[float, float]:
    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(rounds))
    full = statistics.median(run("import pgstream") for _ in range(rounds))
    return bare, full


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--bindir", default=None)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results there (bench/results/sandbox.json always)")
    args = parser.parse_args()
    server = binaries.find_server(args.bindir)
    cache = tempfile.mkdtemp(prefix="pgstream-bench-cache-")
    os.environ["PGSTREAM_CACHE_DIR"] = cache
    places = [default_parent()]
    disk = Path(tempfile.gettempdir())
    if disk not in places:
        places.append(disk)
    results: dict[Path, dict[str, list[float]]] = {
        p: {"base": [], "cold": [], "warm": []} for p in places}
    try:
        for place in places:
            sandbox(server.bindir, True, place)  # fills the template cache; not counted
        for _ in range(args.rounds):  # interleaved, so drift hits every series alike
            for place, series in results.items():
                series["base"].append(baseline(server.bindir, place))
                series["cold"].append(sandbox(server.bindir, False, place))
                series["warm"].append(sandbox(server.bindir, True, place))
        bare, imported = import_time(args.rounds)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"PostgreSQL {server.version} ({server.bindir}); {args.rounds} rounds, medians; "
          f"{os.cpu_count()} CPUs")
    for place, series in results.items():
        b = statistics.median(series["base"])
        print(f"in {place} (baseline and sandboxes alike):")
        print(f"  {'baseline: initdb + pg_ctl start, 1 server':<46} {b:7.3f} s   1.00x")
        for label, key in (("cold: Cluster.sandbox(standbys=2)", "cold"),
                           ("warm: Cluster.sandbox(standbys=2), template", "warm")):
            values = series[key]
            m = statistics.median(values)
            print(f"  {label:<46} {m:7.3f} s   {m / b:.2f}x   (min {min(values):.3f} s)")
    print(f"{'import pgstream (fresh interpreter)':<46} {imported - bare:7.3f} s   "
          f"(python -c pass: {bare:.3f} s)")
    fig = Figures("sandbox", f"sandbox start-up, PostgreSQL {server.version}")
    for place, series in results.items():
        base = f"baseline: initdb + pg_ctl start, 1 server, in {place}"
        fig.add(base, series["base"])
        fig.add(f"cold: Cluster.sandbox(standbys=2), in {place}", series["cold"],
                baseline=base, goal=2.0)
        fig.add(f"warm: Cluster.sandbox(standbys=2), template, in {place}", series["warm"],
                baseline=base, goal=0.8)
    fig.add("import pgstream minus python -c pass", [imported - bare], goal=0.1,
            goal_of="value")
    fig.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
