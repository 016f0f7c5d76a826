"""Benchmark: pgstream across delayed links on the multi-host rig (issue 13, items 1 and 2).

Run as root: ``nox -s bench`` or ``python bench/bench_multihost.py [--rounds N] [--json P]``.
Builds a rig (tests/multihost/rig.py) of 12 hosts, each with a delay line in front of its sshd
and its PostgreSQL port (bench/site.py, tests/multihost/delay.py): this machine to a host is
a round trip of X, host to host 2X; X is set to 0, 5 and 20 ms and measured (TCP connect, and
a ping on an open connection) beside every figure.

- status: ``Cluster.status()`` of a primary + 8 standbys (hosts st0..st8) against the same
  primary + 1 standby, warm (connections open) and cold (closed before each call), at each X;
  then with one standby's link cut: how long status() takes and that it names the standby.
- a bare ``SELECT pg_promote()`` of a standby over the same link (the baseline).
- switchover and failover of a primary + 2 standbys on three hosts (sw0..sw2), a writer
  (``pgstream.workload.acked_writer``) committing all along, at 5 and 20 ms: plan build, new
  primary writable (its promote step done), every node streaming (the plan done), acked
  commits lost; the failover after ``kill -9`` of the primary, then the rejoin (pg_rewind).
- the SQL statements, new connections and SSH commands of each operation, counted from
  outside (bench/common.py: psycopg's cursor and connect and ``SshHost.run`` wrapped).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from common import Counts, Figures, arguments
from rigsite import Site, site

from pgstream import Cluster, ProgressEvent, StepKind
from pgstream.hosts.wait import wait_for
from pgstream.workload import acked_writer

STATUS_HOSTS = [f"st{i}" for i in range(9)]
SWITCH_HOSTS = ["sw0", "sw1", "sw2"]
DELAYS = (0.0, 0.005, 0.020)
OPERATION_DELAYS = (0.005, 0.020)
GOALS = {0.005: (0.2, 0.45), 0.020: (0.4, 0.9)}


class Clock:
    """Seconds from creation until the promote step is done."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.promoted: float | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.event == "done" and event.step.kind is StepKind.PROMOTE:
            self.promoted = time.perf_counter() - self.start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def rtt_text(rtt: dict[str, float], between: dict[str, float] | None = None) -> str:
    text = f"ping {ms(rtt['ping'])}, connect {ms(rtt['connect'])}"
    if between is not None:
        text += f"; host-host ping {ms(between['ping'])}"
    return text


def timed(call: Any) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def status_figures(s: Site, fig: Figures, counts: Counts, rounds: int,
                   results: dict[str, Any]) -> None:
    big = s.cluster(STATUS_HOSTS)
    small = Cluster(big.primary, big.standbys[:1], auth=big.auth,
                    primary_address=big.primary_address, addresses=big.addresses)
    nodes = big.nodes
    for delay in DELAYS:
        s.set_rtt(delay)
        rtt = s.measure("st0")
        between = s.measure("st0", source="st1")
        tag = f"{delay * 1000:g} ms"
        results.setdefault("rtt", {})[tag] = {"from_here": rtt, "host_to_host": between}
        warm: dict[str, list[float]] = {"1+1": [], "1+8": []}
        cold: dict[str, list[float]] = {"1+1": [], "1+8": []}
        big.status()
        small.status()
        for _ in range(rounds):
            warm["1+1"].append(timed(small.status))
            warm["1+8"].append(timed(big.status))
            for node in nodes:
                node.close()
            cold["1+1"].append(timed(small.status))
            for node in nodes:
                node.close()
            cold["1+8"].append(timed(big.status))
        assert big.status().all_streaming
        text = rtt_text(rtt, between)
        fig.add(f"status 1+1 warm @{tag}", warm["1+1"], rtt=text)
        fig.add(f"status 1+8 warm @{tag}", warm["1+8"], baseline=f"status 1+1 warm @{tag}",
                goal=1.5, rtt=text)
        fig.add(f"status 1+1 cold @{tag}", cold["1+1"], rtt=text)
        fig.add(f"status 1+8 cold @{tag}", cold["1+8"], baseline=f"status 1+1 cold @{tag}",
                goal=1.5, rtt=text)
        if delay == 0.020:
            fig.add("status 1+8 warm @20 ms / 3 round trips",
                    [v / (3 * rtt["ping"]) for v in warm["1+8"]], unit="x", goal=1.0,
                    goal_of="value")
        if delay == 0.005:
            for label, cluster, cold_start in (("1+1 warm", small, False),
                                               ("1+8 warm", big, False),
                                               ("1+8 cold", big, True)):
                if cold_start:
                    for node in nodes:
                        node.close()
                with counts.recording():
                    cluster.status()
                results.setdefault("counts", {})[f"status {label}"] = counts.summary()
    # One standby cut off: its connection open (stalls) and closed (new connect).
    s.set_rtt(0.005)
    victim = big.standbys[-1]
    big.status()
    for how in ("open connection", "new connection"):
        if how == "new connection":
            victim.close()
        s.rig.cut(victim.name)
        try:
            started = time.perf_counter()
            seen = big.status()
            took = time.perf_counter() - started
        finally:
            s.rig.restore(victim.name)
        named = not seen.standby(victim.name).reachable
        fig.add(f"status 1+8 @5 ms, {victim.name} cut ({how})", [took], goal=2.0,
                goal_of="value", names_it=named)
        victim.close()
        wait_for(lambda: big.status().all_streaming, timeout=60, what="the cut standby back")
    # Baseline: a bare pg_promote() of a standby over the link (spare standbys st3..st8).
    spare = list(big.standbys[2:])
    each = min(rounds, len(spare) // len(OPERATION_DELAYS))
    for delay in OPERATION_DELAYS:
        s.set_rtt(delay)
        samples = []
        for _ in range(each):
            node = spare.pop()
            node.query("SELECT 1")
            samples.append(timed(lambda node=node: node.query("SELECT pg_promote()")))
        fig.add(f"bare pg_promote() @{delay * 1000:g} ms", samples,
                rtt=rtt_text(results["rtt"][f"{delay * 1000:g} ms"]["from_here"]))
    big.close()


def lost(cluster: Cluster, acked: list[int]) -> int:
    found = cluster.primary.query("SELECT count(*) FROM acked WHERE id = ANY(%s)",
                                  (list(acked),))[0][0]
    return len(acked) - int(found)


def operation_figures(s: Site, fig: Figures, counts: Counts, rounds: int,
                      results: dict[str, Any]) -> None:
    s.set_rtt(0.0)
    cluster = s.cluster(SWITCH_HOSTS)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    cluster.wait_for_catchup()
    for delay in OPERATION_DELAYS:
        s.set_rtt(delay)
        tag = f"{delay * 1000:g} ms"
        rtt = {"from_here": s.measure("sw0"), "host_to_host": s.measure("sw0", source="sw1")}
        results.setdefault("rtt_operations", {})[tag] = rtt
        text = rtt_text(rtt["from_here"], rtt["host_to_host"])
        series: dict[str, list[float]] = {k: [] for k in (
            "sw build", "sw writable", "sw streaming", "sw returns", "fo build",
            "fo writable", "fo streaming", "fo returns", "rejoin")}
        missing = 0
        for index in range(rounds):
            count = index == 0
            cluster.primary.execute("TRUNCATE acked")
            target = next(n for n in cluster.standbys if n.upstream in (None,
                                                                         cluster.primary.name))
            with acked_writer(cluster.primary.conninfo) as acked:
                _writes(acked)
                with counts.recording() if count else _nothing():
                    started = time.perf_counter()
                    plan = cluster.switchover_plan(target.name)
                    built = time.perf_counter() - started
                    if count:
                        results.setdefault("counts", {})[f"switchover build @{tag}"] = \
                            counts.summary()
                        counts.clear()
                    clock = Clock()
                    plan.apply(clock)
                    applied = time.perf_counter() - clock.start
                if count:
                    results["counts"][f"switchover apply @{tag}"] = counts.summary()
                time.sleep(0.2)
            missing += lost(cluster, acked)
            assert clock.promoted is not None
            series["sw build"].append(built)
            series["sw writable"].append(clock.promoted)
            series["sw streaming"].append(applied)
            series["sw returns"].append(built + applied)
            wait_for(lambda: cluster.status().all_streaming, timeout=60, what="all streaming")
            # Failover: kill -9 the primary with a writer on it, then rejoin it.
            old = cluster.primary
            assert old.service is not None
            old.execute("TRUNCATE acked")
            with acked_writer(old.conninfo) as acked:
                _writes(acked)
                pid = old.service.pid()
                assert pid is not None
                old.host.run(("kill", "-9", str(pid)), what="kill -9")
                old.close()
                old.service.wait_gone()
            with counts.recording() if count else _nothing():
                started = time.perf_counter()
                plan = cluster.failover_plan()
                built = time.perf_counter() - started
                if count:
                    results["counts"][f"failover build @{tag}"] = counts.summary()
                    counts.clear()
                clock = Clock()
                plan.apply(clock)
                applied = time.perf_counter() - clock.start
            if count:
                results["counts"][f"failover apply @{tag}"] = counts.summary()
            assert clock.promoted is not None
            series["fo build"].append(built)
            series["fo writable"].append(clock.promoted)
            series["fo streaming"].append(applied)
            series["fo returns"].append(built + applied)
            series["rejoin"].append(timed(lambda old=old: cluster.rejoin(old.name)))
            wait_for(lambda: cluster.status().all_streaming, timeout=60, what="rejoined")
        base = f"bare pg_promote() @{tag}"
        writable_goal, streaming_goal = GOALS[delay]
        fig.add(f"switchover build (pre-checks) @{tag}", series["sw build"], rtt=text)
        fig.add(f"switchover writable @{tag}", series["sw writable"], baseline=base,
                goal=writable_goal, goal_of="value", rtt=text)
        fig.add(f"switchover all streaming @{tag}", series["sw streaming"], baseline=base,
                goal=streaming_goal, goal_of="value", rtt=text)
        fig.add(f"switchover returns (build + apply) @{tag}", series["sw returns"],
                baseline=base, rtt=text)
        fig.add(f"switchover acked commits lost @{tag}", [float(missing)], unit="commits",
                goal=0, goal_of="value")
        fig.add(f"failover build @{tag}", series["fo build"], rtt=text)
        fig.add(f"failover writable @{tag}", series["fo writable"], baseline=base, rtt=text)
        fig.add(f"failover all streaming @{tag}", series["fo streaming"], baseline=base,
                rtt=text)
        fig.add(f"rejoin (pg_rewind) of the killed primary @{tag}", series["rejoin"],
                baseline=base, rtt=text)
    cluster.close()


def _writes(acked: list[int]) -> None:
    wait_for(lambda: len(acked) > 20, timeout=30, what="writes")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> int:
    parser = arguments(__doc__.split("\n", 1)[0], rounds=3)
    parser.add_argument("--skip-status", action="store_true")
    args = parser.parse_args()
    fig = Figures("multihost", "pgstream across delayed links (multi-host rig, "
                  "PostgreSQL from Debian, servers and sshds in network namespaces)")
    counts = Counts()
    counts.install()
    results: dict[str, Any] = {}
    try:
        with site(STATUS_HOSTS + SWITCH_HOSTS) as s:
            fig.meta["postgresql"] = str(s.version)
            if not args.skip_status:
                status_figures(s, fig, counts, args.rounds, results)
            operation_figures(s, fig, counts, args.rounds, results)
    finally:
        counts.uninstall()
        fig.meta.update(results)
        for key, summary in results.get("counts", {}).items():
            print(f"  counts {key}: {summary['sql']} SQL statements, {summary['connects']} "
                  f"connections, {summary['ssh']} SSH commands")
        fig.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
