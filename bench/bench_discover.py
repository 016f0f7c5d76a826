"""Benchmark: discovery of a primary with 2 standbys, and ``pgstream status --json`` as a whole
process, each next to ``psql -c 'select 1'`` in the same run (so the ratios hold on any
machine, loaded or not).

Run with ``nox -s bench`` or ``python bench/bench_discover.py [--rounds N] [--bindir DIR]
[--json PATH]``; writes ``bench/results/discover.json``. Measured (medians, every figure also
as a ratio to ``psql`` of the same run):

- ``Cluster.discover(conninfo)`` in process: deep (host facts: owner, programs, service, log)
  and ``deep=False`` (what ``status`` needs); nodes are asked in parallel;
- ``Cluster.from_file(...).status()`` in process;
- ``python -m pgstream status --json -c FILE``: a whole process (interpreter start, imports,
  discovery of the roles, status of every node);
- ``psql -c 'select 1'`` on the primary: one process, one connection, one query (the
  baseline);
- ``python -c pass``: the interpreter's own start, for scale.

For scale (issue 10): ``repmgr cluster show`` took 38 ms for 3 local nodes.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import Figures, arguments

from pgstream import Cluster
from pgstream.render.topology import render_topology

PSQL = "psql -c 'select 1' (process)"


def samples(call: Callable[[], object], rounds: int) -> list[float]:
    """Seconds of ``rounds`` calls (after one warm-up call)."""
    call()
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        call()
        out.append(time.perf_counter() - started)
    return out


def run(argv: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{argv[0]} failed: {done.stdout}{done.stderr}")


def main() -> int:
    args = arguments(__doc__.split("\n\n")[0], rounds=15).parse_args()
    fig = Figures("discover", "discovery of a primary + 2 standbys, and a whole status "
                              "process, against psql -c 'select 1'")
    work = Path(tempfile.mkdtemp(prefix="pgstream-bench-"))
    try:
        with Cluster.sandbox(standbys=2, bindir=args.bindir) as cluster:
            cluster.wait_for_catchup()
            fig.meta["postgresql"] = str(cluster.primary.version)
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

            fig.add(PSQL, samples(
                lambda: run([psql, "-X", "-q", "-d", conninfo, "-c", "select 1"], env),
                args.rounds))
            fig.add("Cluster.discover() deep", samples(discover(True), args.rounds),
                    baseline=PSQL)
            fig.add("Cluster.discover(deep=False)", samples(discover(False), args.rounds),
                    baseline=PSQL)
            fig.add("Cluster.from_file().status()", samples(status_in_process, args.rounds),
                    baseline=PSQL)
            fig.add("pgstream status --json (process)", samples(
                lambda: run([sys.executable, "-m", "pgstream", "status", "--json", "-c",
                             str(config)]), args.rounds), baseline=PSQL)
            fig.add("python -c pass (process)", samples(
                lambda: run([sys.executable, "-c", "pass"]), args.rounds), baseline=PSQL)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    fig.note(f"{args.rounds} rounds of each (after one warm-up call), one series after the "
             f"other; median of psql {statistics.median(fig.get(PSQL)['samples']) * 1000:.1f} ms")
    fig.write(args.json)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
