"""Benchmark: major upgrade of a primary of about 1 GB with 2 standbys (not run in CI).

``python bench/bench_upgrade.py [--size-mb 1024] [--from DIR] [--to DIR] [--json FILE]``
(default: the oldest and newest full installations with pg_upgrade, e.g. 15 -> 18).

Measured: the time during which the cluster accepts no writes, from the start of the
primary's clean stop to the end of the new primary's start, for ``--link`` + rsync and for
``--link`` + re-clone (whose clones run after the primary accepts writes again: the time
until every standby streams is printed too); next to a bare ``pg_upgrade --link`` of a
primary of the same size alone, measured in the same run. The rsync method should keep the
whole cluster's downtime within a small factor of the bare pg_upgrade, whatever the size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pgstream import Cluster, ProgressEvent, StepKind
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.ops.upgrade.checks import gather
from pgstream.ops.upgrade.facts import initdb_argv, pg_upgrade_argv, remove_dir


class Clock:
    """Times from the primary's stop to its start, and to the plan's end."""

    def __init__(self, primary: str) -> None:
        self.primary = primary
        self.stopped: float | None = None
        self.started: float | None = None
        self.streaming: float | None = None

    def __call__(self, event: ProgressEvent) -> None:
        now = time.perf_counter()
        step = event.step
        if step.node != self.primary:
            if event.event == "done" and step.kind is StepKind.CHECK:
                self.streaming = now
            return
        if event.event == "start" and step.kind is StepKind.STOP and self.stopped is None:
            self.stopped = now
        if event.event == "done" and step.kind is StepKind.START:
            self.started = now


def pair(args: argparse.Namespace) -> tuple[Installation, Installation]:
    full = [i for i in binaries.discover() if i.has_server and i.has("pg_upgrade")
            and i.has("pg_controldata")]
    new = binaries.probe(args.to) if args.to else full[0]
    old = binaries.probe(args.from_) if args.from_ else next(
        i for i in full if i.version.major_num < new.version.major_num)
    return old, new


def filled(old: Installation, standbys: int, size_mb: int, base: str | None) -> Cluster:
    cluster = Cluster.sandbox(standbys=standbys, bindir=old.bindir, base_dir=base,
                              settings={"max_wal_size": "4GB"})
    rows = size_mb * 1024 * 1024 // 260  # ~260 bytes a row on disk, header and item included
    started = time.perf_counter()
    cluster.primary.execute("CREATE TABLE t AS SELECT g AS id, repeat(md5(g::text), 6) AS v "
                            "FROM generate_series(1, %s) g", (rows,))
    cluster.primary.execute("CHECKPOINT")
    cluster.wait_for_catchup(timeout=1800)
    size = int(cluster.primary.query("SELECT pg_database_size(current_database())")[0][0])
    print(f"  filled {size / 2**20:.0f} MB ({rows} rows) with {standbys} standby(s) in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    return cluster


def bare(old: Installation, new: Installation, size_mb: int, base: str | None) -> float:
    """pg_upgrade --link of a lone primary of the same size: that command alone."""
    with filled(old, 0, size_mb, base) as cluster:
        facts = gather(cluster, new, method="reclone", mode="link", data_dirs=None, sync=False)
        node = facts.nodes[cluster.primary.name]
        primary = cluster.primary
        assert primary.service is not None
        primary.close()
        primary.service.stop("fast")
        host, user = primary.host, primary.os_user
        host.run(initdb_argv(facts, node), user=user, what="initdb", timeout=300)
        started = time.perf_counter()
        host.run(pg_upgrade_argv(facts, node), user=user, cwd=node.new_dir, timeout=7200,
                 what="pg_upgrade")
        seconds = time.perf_counter() - started
        remove_dir(host, node.new_dir, user)
        return seconds


def upgraded(old: Installation, new: Installation, method: str, size_mb: int,
             base: str | None) -> dict[str, Any]:
    with filled(old, 2, size_mb, base) as cluster:
        clock = Clock(cluster.primary.name)
        began = time.perf_counter()
        plan = cluster.upgrade_plan(new.bindir, method=method, mode="link",  # type: ignore[arg-type]
                                    analyze=False, timeout=1800)
        built = time.perf_counter() - began
        report = plan.apply(clock)
        assert clock.stopped is not None and clock.started is not None
        end = clock.streaming or time.perf_counter()
        slowest = sorted(report.applied, key=lambda a: -a.seconds)[:4]
        for item in slowest:
            print(f"    {item.seconds:6.2f} s  [{item.step.node}] {item.step.title}")
        return {"no_writes_s": clock.started - clock.stopped,
                "until_all_stream_s": end - clock.stopped, "prechecks_s": built,
                "steps": {f"[{a.step.node}] {a.step.title}": round(a.seconds, 3)
                          for a in report.applied}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--from", dest="from_")
    parser.add_argument("--to")
    parser.add_argument("--base-dir", help="where the sandboxes go (default /dev/shm: memory)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    args = parser.parse_args()
    old, new = pair(args)
    print(f"upgrade {old.version.major} -> {new.version.major}, primary of ~{args.size_mb} MB",
          flush=True)
    figures: dict[str, object] = {"from": old.version.major, "to": new.version.major,
                                  "size_mb": args.size_mb}
    print("bare pg_upgrade --link of the primary alone:", flush=True)
    figures["bare_pg_upgrade_link_s"] = base_s = bare(old, new, args.size_mb, args.base_dir)
    print(f"  {base_s:.2f} s", flush=True)
    for method in ("rsync", "reclone"):
        print(f"--link + {method}, 2 standbys:", flush=True)
        got = upgraded(old, new, method, args.size_mb, args.base_dir)
        figures[method] = {**got, "ratio_to_bare": got["no_writes_s"] / base_s}
        print(f"  no writes for {got['no_writes_s']:.2f} s "
              f"({got['no_writes_s'] / base_s:.1f} x bare pg_upgrade); every standby "
              f"streams after {got['until_all_stream_s']:.2f} s; pre-checks "
              f"{got['prechecks_s']:.2f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
