"""Benchmark: ``cluster.check()`` next to ``cluster.status()`` on the same healthy cluster.

Run with ``nox -s bench`` or ``python bench/bench_check.py [--rounds N] [--bindir DIR]
[--json [PATH]]``; writes ``bench/results/check.json`` (every sample, as the other scripts
do). One sandbox
(a primary and 2 streaming standbys) is built, then, in the same process and alternating so
that both see the same machine load:

- ``status()``: the status table (its connections already open);
- ``check()``: every node read at once (a thread each), rules, no finding on a healthy
  cluster;
- a ``/metrics`` scrape as ``pgstream metrics --listen`` reads it
  (:func:`pgstream.ops.metrics.read_cluster`: status and findings, no fix plans, rendered by
  ``to_prometheus``), and the naive scrape it replaced (``status()``, then ``check()`` with its
  plans, then ``to_prometheus``);
- ``check()`` with one standby stopped: the unreachable node, its log read through its host.

Medians in milliseconds and the ratios over status() are printed, and with ``--json`` written as
one JSON object on stdout instead (``--json PATH``: the results file written there too). The
issue's target: check() costs little more than status().
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import Figures

from pgstream import Cluster
from pgstream.hosts import binaries
from pgstream.ops import metrics


def _time(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def measure(rounds: int, bindir: Path | None,
            fig: Figures | None = None) -> dict[str, object]:
    """The figures of one run (milliseconds, medians over ``rounds``); ``fig``: every sample
    added to it too (seconds, ratios to ``status()``)."""
    server = binaries.find_server(bindir)
    with Cluster.sandbox(standbys=2, bindir=server.bindir) as cluster:
        cluster.wait_for_catchup()
        for _ in range(3):  # warm up: connections, versions, threads
            cluster.status()
            cluster.check()

        def scrape() -> str:
            return metrics.read_cluster(cluster, cluster.history)

        def naive() -> str:
            return cluster.status().to_prometheus(cluster.check(timeout=4.0).findings)

        status_ms: list[float] = []
        check_ms: list[float] = []
        scrape_ms: list[float] = []
        naive_ms: list[float] = []
        for _ in range(rounds):
            status_ms.append(_time(cluster.status))
            check_ms.append(_time(cluster.check))
            scrape_ms.append(_time(scrape))
            naive_ms.append(_time(naive))
        healthy = cluster.check()
        stopped = cluster.standbys[1]
        assert stopped.service is not None
        stopped.close()
        stopped.service.stop()
        down_ms = [_time(cluster.check) for _ in range(max(3, rounds // 4))]
        down_scrape_ms = [_time(scrape) for _ in range(max(3, rounds // 4))]
        down = cluster.check()
    if fig is not None:
        fig.meta["postgresql"] = str(server.version)
        for label, series in (("status()", status_ms), ("check()", check_ms),
                              ("/metrics scrape", scrape_ms),
                              ("naive scrape (status, check with plans)", naive_ms),
                              ("check(), one standby stopped", down_ms),
                              ("/metrics scrape, one standby stopped", down_scrape_ms)):
            fig.add(label, [ms / 1000 for ms in series],
                    baseline=None if label == "status()" else "status()")
        fig.note(f"findings: healthy {len(healthy)}, one standby stopped "
                 f"{', '.join(sorted(down.codes))}")
    status_median = statistics.median(status_ms)
    check_median = statistics.median(check_ms)
    scrape_median = statistics.median(scrape_ms)
    naive_median = statistics.median(naive_ms)
    return {
        "postgresql": str(server.version),
        "rounds": rounds,
        "status_ms": round(status_median, 2),
        "check_ms": round(check_median, 2),
        "check_over_status": round(check_median / status_median, 2),
        "scrape_ms": round(scrape_median, 2),
        "scrape_over_status": round(scrape_median / status_median, 2),
        "naive_scrape_ms": round(naive_median, 2),
        "naive_scrape_over_status": round(naive_median / status_median, 2),
        "check_one_standby_down_ms": round(statistics.median(down_ms), 2),
        "scrape_one_standby_down_ms": round(statistics.median(down_scrape_ms), 2),
        "healthy_findings": len(healthy),
        "down_findings": sorted(down.codes),
    }


def main() -> None:
    """Parse the arguments, run, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--bindir", type=Path, default=None)
    parser.add_argument("--json", nargs="?", const=True, default=None, metavar="PATH",
                        help="print the figures as JSON (PATH: also write the results there)")
    args = parser.parse_args()
    fig = Figures("check", "check() and a /metrics scrape against status(), primary + 2 "
                           "standbys")
    figures = measure(args.rounds, args.bindir, fig)
    extra = Path(args.json) if isinstance(args.json, str) else None
    if args.json:
        fig.write(extra, quiet=True)
        print(json.dumps(figures, indent=1))
        return
    fig.write(extra, quiet=True)
    print(f"PostgreSQL {figures['postgresql']}, primary + 2 standbys, "
          f"{figures['rounds']} rounds (medians)")
    print(f"  status()                      {figures['status_ms']:>8} ms")
    print(f"  check()                       {figures['check_ms']:>8} ms"
          f"   ({figures['check_over_status']}x status)")
    print(f"  /metrics scrape               {figures['scrape_ms']:>8} ms"
          f"   ({figures['scrape_over_status']}x status)")
    print(f"  naive scrape (with plans)     {figures['naive_scrape_ms']:>8} ms"
          f"   ({figures['naive_scrape_over_status']}x status)")
    print(f"  check(), one standby stopped  {figures['check_one_standby_down_ms']:>8} ms"
          f"   findings: {', '.join(map(str, figures['down_findings']))}")  # type: ignore[call-overload]
    print(f"  scrape, one standby stopped   {figures['scrape_one_standby_down_ms']:>8} ms")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
