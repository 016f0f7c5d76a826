"""Benchmark: planned switchover and unplanned failover of primary + 2 standbys.

Run with ``nox -s bench`` (or ``python bench/bench_failover.py [--rounds N] [--bindir DIR]``).
A writer commits numbered rows all along. Measured from the ``switchover()`` /
``failover()`` call (the failover after ``kill -9`` of the primary) to:

- (a) the new primary accepts writes (its promotion step is done);
- (b) both other nodes stream from it: the other standby, and for a switchover the old
  primary as a standby (for a failover the old primary is dead: (b) covers the standby, and
  ``rejoin()`` with pg_rewind is timed on its own, where a pg_rewind of that major exists).

Baseline, in the same run: a bare ``SELECT pg_promote()`` (wait => true) of a standby.
Acknowledged commits lost in the switchover are counted (must be 0). Issue #4's goals on this
machine: (a) <= 0.5 s, (b) <= 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

from common import Figures

from pgstream import Cluster, PlanReport, ProgressEvent, StepKind
from pgstream.hosts import binaries
from pgstream.hosts.wait import wait_for
from pgstream.workload import acked_writer


class Clock:
    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.promoted: float | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.event == "done" and event.step.kind is StepKind.PROMOTE:
            self.promoted = time.perf_counter() - self.start


def prepare(bindir: str | None) -> Cluster:
    cluster = Cluster.sandbox(standbys=2, bindir=bindir)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    cluster.wait_for_catchup()
    return cluster


def switchover(bindir: str | None) -> tuple[float, float, int]:
    with prepare(bindir) as cluster, acked_writer(cluster.primary.conninfo) as acked:
        wait_for(lambda: len(acked) > 100, timeout=30, what="writes")
        clock = Clock()
        report: PlanReport = cluster.switchover_plan("standby1").apply(clock)
        both = time.perf_counter() - clock.start
        assert report.changed and clock.promoted is not None
        found = cluster.primary.query("SELECT count(*) FROM acked WHERE id = ANY(%s)",
                                      (list(acked),))[0][0]
        return clock.promoted, both, len(acked) - int(found)


def failover(bindir: str | None, rewind: bool) -> tuple[float, float, float | None]:
    with prepare(bindir) as cluster:
        with acked_writer(cluster.primary.conninfo) as acked:
            wait_for(lambda: len(acked) > 100, timeout=30, what="writes")
            service = cluster.primary.service
            assert service is not None
            pid = service.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout=30, what="reaped")
        clock = Clock()
        cluster.failover_plan().apply(clock)
        both = time.perf_counter() - clock.start
        assert clock.promoted is not None
        rejoined = None
        if rewind:
            started = time.perf_counter()
            cluster.rejoin("primary")
            rejoined = time.perf_counter() - started
        return clock.promoted, both, rejoined


def bare_promote(bindir: str | None) -> float:
    with Cluster.sandbox(standbys=1, bindir=bindir) as cluster:
        standby = cluster.standbys[0]
        if not standby.version.adapter.supports("pg_promote"):
            started = time.perf_counter()
            assert standby.service is not None
            standby.service.promote()
            while standby.in_recovery:  # pg_ctl promote -W: watch it, as pg_promote() waits
                time.sleep(0.001)
            return time.perf_counter() - started
        standby.query("SELECT 1")
        started = time.perf_counter()
        standby.query("SELECT pg_promote()")
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--bindir", default=None)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results there (bench/results/failover.json always)")
    args = parser.parse_args()
    server = binaries.find_server(args.bindir)
    rewind = any(i.has("pg_rewind") and i.version.major == server.version.major
                 for i in binaries.discover())
    bare, sw_a, sw_b, lost, fo_a, fo_b, rj = [], [], [], 0, [], [], []
    for _ in range(args.rounds):  # interleaved, so drift hits every series alike
        bare.append(bare_promote(args.bindir))
        a, b, missing = switchover(args.bindir)
        sw_a.append(a)
        sw_b.append(b)
        lost += missing
        a, b, r = failover(args.bindir, rewind)
        fo_a.append(a)
        fo_b.append(b)
        if r is not None:
            rj.append(r)
    base = statistics.median(bare)
    print(f"PostgreSQL {server.version} ({server.bindir}); {args.rounds} rounds, medians; "
          f"{os.cpu_count()} CPUs; primary + 2 standbys, a writer committing all along")
    rows = [("bare pg_promote() (baseline)", bare),
            ("switchover (a) new primary accepts writes", sw_a),
            ("switchover (b) both others stream from it", sw_b),
            ("failover after kill -9 (a) accepts writes", fo_a),
            ("failover (b) the other standby streams", fo_b)]
    if rj:
        rows.append(("rejoin of the killed primary (pg_rewind)", rj))
    for label, values in rows:
        m = statistics.median(values)
        print(f"  {label:<44} {m:7.3f} s  {m / base:6.2f}x  (max {max(values):.3f} s)")
    print(f"  acknowledged commits lost in switchovers: {lost}")
    fig = Figures("failover", f"switchover and failover on loopback, PostgreSQL "
                  f"{server.version}, primary + 2 standbys, a writer committing all along")
    fig.add(rows[0][0], rows[0][1])
    for label, values in rows[1:]:
        fig.add(label, values, baseline=rows[0][0])
    fig.add("acknowledged commits lost in switchovers", [float(lost)], unit="commits",
            goal=0, goal_of="value")
    fig.write(args.json)
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
