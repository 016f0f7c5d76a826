"""Benchmark: discovery of a primary with 2 standbys, and ``pgstream status --json`` as a whole
process, each next to ``psql -c 'select 1'`` in the same run (so the ratios hold on any
machine, loaded or not).

Run with ``python bench/bench_discover.py [--rounds N] [--bindir DIR]``. Measured (medians):

- ``Cluster.discover(conninfo)`` in process: deep (host facts: owner, programs, service, log)
  and ``deep=False`` (what ``status`` needs); nodes are asked in parallel;
- ``Cluster.from_file(...).status()`` in process;
- ``python -m pgstream status --json -c FILE``: a whole process (interpreter start, imports,
  discovery of the roles, status of every node);
- ``psql -c 'select 1'`` on the primary: one process, one connection, one query.

For scale (issue 10): ``repmgr cluster show`` took 38 ms for 3 local nodes.
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
from collections.abc import Callable
from pathlib import Path

from pgstream import Cluster
from pgstream.render.topology import render_topology


def timed(call: Callable[[], object], rounds: int) -> float:
    """Median seconds of ``rounds`` calls (after one warm-up call)."""
    call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed: {done.stdout}{done.stderr}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--bindir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgstream-bench-"))
    try:
        with Cluster.sandbox(standbys=2, bindir=args.bindir) as cluster:
            cluster.wait_for_catchup()
            conninfo = cluster.primary.conninfo
            found = Cluster.discover(conninfo)
            assert found.discovery is not None and len(found.standbys) == 2, found.discovery
            config = work / "pgstream.toml"
            config.write_text(render_topology(found.discovery.topology()))
            found.close()
            psql = shutil.which("psql", path=str(Path(str(found.primary.service.bindir))
                                                 if found.primary.service else None)) \
                or shutil.which("psql") or "psql"
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}

            def discover(deep: bool) -> Callable[[], object]:
                return lambda: Cluster.discover(conninfo, deep=deep).close()

            def status_in_process() -> None:
                with Cluster.from_file(config, deep=False) as c:
                    c.status()

            figures = {
                "psql -c 'select 1' (process)": timed(
                    lambda: run([psql, "-X", "-q", "-d", conninfo, "-c", "select 1"], env),
                    args.rounds),
                "Cluster.discover() deep": timed(discover(True), args.rounds),
                "Cluster.discover(deep=False)": timed(discover(False), args.rounds),
                "Cluster.from_file().status()": timed(status_in_process, args.rounds),
                "pgstream status --json (process)": timed(
                    lambda: run([sys.executable, "-m", "pgstream", "status", "--json", "-c",
                                 str(config)]), args.rounds),
                "python -c pass (process)": timed(
                    lambda: run([sys.executable, "-c", "pass"]), args.rounds),
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = figures["psql -c 'select 1' (process)"]
    print(f"primary + 2 standbys, local, {args.rounds} rounds, medians "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    for name, seconds in figures.items():
        print(f"  {name:<36} {seconds * 1000:8.1f} ms   {seconds / base:6.1f}x psql")
    return 0


if __name__ == "__main__":
    sys.exit(main())
