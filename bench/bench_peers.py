"""Benchmark: pgstream, repmgr and Patroni side by side (issue 13, item 6), in one run.

Run as root with ``nox -s bench_peers`` (installs Debian's repmgr, Patroni and etcd if
missing, and testgres from PyPI into the session's venv), or ``python bench/bench_peers.py
[--rounds N] [--json PATH] [--only pgstream,repmgr,patroni,testgres]``. Not part of the
default sessions or CI.

The same layout for each: a primary + 2 standbys of Debian's PostgreSQL 15 on loopback, in
/tmp (disk), a writer committing numbered rows all along. Timed alike, by polling from
outside (bench/peers.py ``Watch``): from the switchover's start until the target leaves
recovery (writable) and until it streams to both others (all streaming), and when the
command returns; acknowledged commits missing on the new primary. The clone: one standby
from the start of its clone until the primary streams to it. Settings: each tool's
defaults, and one tuned setting each (Patroni ``loop_wait: 1``, repmgr with ssh connection
reuse); pgstream has none to tune. Sandbox: ``Cluster.sandbox(standbys=2)`` on disk against
testgres's primary + ``backup().spawn_replica()`` x 2 + ``catchup()``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path

from common import Figures, arguments
from peer_patroni import Patroni
from peer_repmgr import Repmgr
from peers import PG_BIN, Watch, peers

from pgstream import Cluster, ProgressEvent, StepKind
from pgstream.workload import acked_writer

TMP = Path("/tmp")
Result = dict[str, float | None]


def pgstream_runs(rounds: int) -> tuple[list[Result], list[float]]:
    results: list[Result] = []
    clones: list[float] = []
    with Cluster.sandbox(standbys=2, bindir=PG_BIN, base_dir=TMP) as cluster:
        cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
        cluster.wait_for_catchup()
        for index in range(rounds):
            target = cluster.standbys[0]
            cluster.primary.execute("TRUNCATE acked")
            promoted: list[float] = []
            with acked_writer(cluster.primary.conninfo) as acked:
                time.sleep(0.2)
                # The sandbox's TCP needs a password: watch through its own conninfo.
                watch = Watch(0, 2, conninfo=target.conninfo)
                started = time.perf_counter()

                def clock(event: ProgressEvent, started: float = started,
                          promoted: list[float] = promoted) -> None:
                    if event.event == "done" and event.step.kind is StepKind.PROMOTE:
                        promoted.append(time.perf_counter() - started)

                cluster.switchover_plan(target.name).apply(clock)
                returned = time.perf_counter() - started
                watch.join()
            found = cluster.primary.query("SELECT count(*) FROM acked WHERE id = ANY(%s)",
                                          (list(acked),))[0][0]
            results.append({"writable": watch.writable, "streaming": watch.streaming,
                            "returns": returned, "lost": float(len(acked) - int(found)),
                            "writable_own_clock": promoted[0] if promoted else None})
            started = time.perf_counter()
            node = cluster.add_standby(f"extra{index}")
            clones.append(time.perf_counter() - started)
            assert node.service is not None
            node.close()
            node.service.stop("immediate")
            cluster.standbys.remove(node)
            cluster.primary.execute("SELECT pg_drop_replication_slot(%s)", (node.name,))
    return results, clones


def repmgr_runs(rounds: int, reuse: bool) -> tuple[list[Result], list[float]]:
    with peers() as p:
        tool = Repmgr(p)
        tool.reuse = reuse
        tool.build()
        return [tool.switchover() for _ in range(rounds)], tool.clone_times


def patroni_runs(rounds: int, loop_wait: int | None) -> tuple[list[Result], list[float]]:
    with peers() as p:
        tool = Patroni(p)
        tool.build()
        if loop_wait is not None:
            tool.set_loop_wait(loop_wait)
        return [tool.switchover() for _ in range(rounds)], tool.clone_times


def testgres_run(rounds: int) -> dict[str, object]:
    """testgres in a child process as postgres, with this venv's site-packages."""
    purelib = sysconfig.get_paths()["purelib"]
    argv = ["/usr/bin/python3", str(Path(__file__).with_name("peer_testgres.py")),
            str(rounds), str(TMP)]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", "env", f"PYTHONPATH={purelib}",
                f"PG_BIN={PG_BIN}", "HOME=/tmp", *argv]
    ports = TMP / "testgres"  # testgres's port locks: removed if this run made them
    existed = ports.exists()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False,
                              cwd=TMP, env={**os.environ, "PYTHONPATH": purelib,
                                            "PG_BIN": str(PG_BIN)})
    finally:
        if not existed:
            shutil.rmtree(ports, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"testgres failed: {done.stderr[-1500:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def add_tool(fig: Figures, label: str, results: list[Result], clones: list[float]) -> None:
    for key, title in (("writable", "switchover: writable"),
                       ("streaming", "switchover: all streaming"),
                       ("returns", "switchover: command returns")):
        values = [float(v) for r in results if (v := r.get(key)) is not None]
        fig.add(f"{label} {title}", values,
                baseline=None if label == "pgstream" else f"pgstream {title}",
                missing=sum(r.get(key) is None for r in results))
    fig.add(f"{label} switchover: acked commits lost",
            [sum(float(r["lost"] or 0) for r in results)], unit="commits")
    if clones:
        fig.add(f"{label} clone of a standby", clones,
                baseline=None if label == "pgstream" else "pgstream clone of a standby")


def guarded(fig: Figures, label: str, call: Callable[[], None]) -> None:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - one peer's failure is reported, the rest go on
        fig.note(f"{label} failed: {type(exc).__name__}: {str(exc)[:600]}")
        print(f"{label} failed: {exc}", file=sys.stderr, flush=True)


def main() -> int:
    parser = arguments(__doc__.split("\n", 1)[0], rounds=3)
    parser.add_argument("--only", default="pgstream,repmgr,patroni,testgres")
    args = parser.parse_args()
    only = set(args.only.split(","))
    missing = [tool for tool in ("repmgr", "patroni", "etcd")
               if shutil.which(tool) is None and not (PG_BIN / tool).exists()]
    fig = Figures("peers", "pgstream, repmgr 5 and Patroni 3 (+ etcd 3.4) on loopback, "
                  "primary + 2 standbys of PostgreSQL 15, a writer committing all along")
    if missing:
        fig.note(f"not installed: {', '.join(missing)} (nox -s bench_peers installs them)")
    if "pgstream" in only:
        guarded(fig, "pgstream", lambda: add_tool(fig, "pgstream", *pgstream_runs(args.rounds)))
    if "repmgr" in only and "repmgr" not in missing:
        guarded(fig, "repmgr (defaults)", lambda: add_tool(
            fig, "repmgr (defaults)", *repmgr_runs(args.rounds, reuse=False)))
        guarded(fig, "repmgr (tuned: ssh reuse)", lambda: add_tool(
            fig, "repmgr (tuned: ssh reuse)", *repmgr_runs(args.rounds, reuse=True)))
    if "patroni" in only and not {"patroni", "etcd"} & set(missing):
        guarded(fig, "Patroni (defaults)", lambda: add_tool(
            fig, "Patroni (defaults, loop_wait 10)", *patroni_runs(args.rounds, None)))
        guarded(fig, "Patroni (tuned)", lambda: add_tool(
            fig, "Patroni (tuned: loop_wait 1)", *patroni_runs(args.rounds, 1)))
    if "testgres" in only:
        def sandboxes() -> None:
            ours = []
            for _ in range(args.rounds):
                started = time.perf_counter()
                with Cluster.sandbox(standbys=2, bindir=PG_BIN, base_dir=TMP):
                    ours.append(time.perf_counter() - started)
            fig.add("pgstream Cluster.sandbox(standbys=2), on disk", ours)
            found = testgres_run(args.rounds)
            fig.add(f"testgres {found['version']}: primary + 2 replicas caught up, on disk",
                    list(found["seconds"]),  # type: ignore[call-overload]
                    baseline="pgstream Cluster.sandbox(standbys=2), on disk")
        guarded(fig, "testgres", sandboxes)
    fig.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
