"""The ``pgstream`` command: ``demo``, ``sandbox-stop``, ``binaries``, ``metrics``, ``check``.

``pgstream demo`` is the main job: a local primary with streaming standbys, some writes, a wait
for catch-up, the status table printed, everything stopped and removed (``--keep`` leaves it
running and prints how to connect and how to stop it).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections.abc import Sequence

from psycopg.conninfo import conninfo_to_dict

from pgstream.cluster import Cluster
from pgstream.errors import PgStreamError
from pgstream.hosts import binaries
from pgstream.nodes.node import Primary, Standby
from pgstream.ops import metrics as metrics_ops
from pgstream.ops.plan import ProgressEvent
from pgstream.ops.sandbox import SUPERUSER, destroy_kept
from pgstream.ops.setup import ReplicationAuth


class _Printer:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.monotonic()
        self.last_percent: dict[int, float] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if self.quiet:
            return
        clock = f"{time.monotonic() - self.started:6.2f}s"
        where = f"[{event.index:>2}/{event.total}] {event.step.node:<9}"
        if event.event == "done":
            print(f"{clock} {where} {event.step.title}: {event.message}", flush=True)
        elif event.event == "percent" and event.percent is not None:
            last = self.last_percent.get(event.index, -100.0)
            if event.percent - last >= 25 or (event.percent >= 100 > last):
                self.last_percent[event.index] = event.percent
                print(f"{clock} {where} base backup {event.percent:.0f}%", flush=True)
        elif event.event == "failed":
            print(f"{clock} {where} FAILED: {event.step.title}", flush=True)
        elif event.event == "undone":
            print(f"{clock} rolled back: [{event.step.node}] {event.step.title}", flush=True)


def demo(args: argparse.Namespace) -> int:
    server = binaries.find_server(args.bindir)
    print(f"pgstream demo: PostgreSQL {server.version} from {server.bindir} ({server.source}), "
          f"{args.standbys} standby(s)", flush=True)
    cluster = Cluster.sandbox(standbys=args.standbys, bindir=server.bindir,
                              base_dir=args.base_dir, run_as=args.run_as,
                              progress=_Printer(args.quiet))
    try:
        primary = cluster.primary
        primary.execute("CREATE TABLE demo (id int PRIMARY KEY, note text)")
        primary.execute("INSERT INTO demo SELECT g, 'row ' || g FROM generate_series(1, %s) g",
                        (args.rows,))
        lsn = cluster.wait_for_catchup(timeout=60)
        print(f"\nwrote {args.rows} rows on {primary.name}; every standby replayed up to {lsn}")
        for standby in cluster.standbys:
            (count,) = standby.query("SELECT count(*) FROM demo")[0]
            print(f"  {standby.name}: {count} rows visible (read-only hot standby)")
        print()
        print(cluster.status())
        if args.keep:
            base = cluster.detach()
            print(f"\nThe sandbox keeps running in {base}. Connect with:")
            for node in cluster.nodes:
                params = conninfo_to_dict(node.conninfo)
                print(f"  {node.name:<9} psql {shlex.quote(node.conninfo)}"
                      f"   # port {params['port']}, user {SUPERUSER}")
            print(f"Stop it and remove everything with:\n  pgstream sandbox-stop {base}")
            return 0
    finally:
        if not args.keep:
            cluster.close()
    print("\nstopped every server and removed the sandbox")
    return 0


def sandbox_stop(args: argparse.Namespace) -> int:
    problems = destroy_kept(args.dir)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    print(f"stopped and removed {args.dir}")
    return 0


def list_binaries(_args: argparse.Namespace) -> int:
    found = binaries.discover()
    if not found:
        print(binaries.HOW_TO_GET)
        return 1
    for inst in found:
        kind = "server+tools" if inst.has_server else "client tools"
        print(f"{inst.version.major:>4}  {inst.version!s:<40}  {kind:<12}  {inst.bindir}"
              f"  ({inst.source})")
    return 0


def metrics(args: argparse.Namespace) -> int:
    """``pgstream metrics``: the cluster named by --primary/--standby, as Prometheus metrics."""
    cluster = Cluster(Primary(*args.primary), [Standby(*pair) for pair in args.standby])
    try:
        return metrics_ops.run(lambda: cluster.status().to_prometheus(), listen=args.listen,
                               timeout=args.scrape_timeout)
    finally:
        cluster.close()
def check(args: argparse.Namespace) -> int:
    """``pgstream check``: the findings of ``cluster.check()``; exit 1 when one is an error."""
    standbys = []
    for item in args.standby:
        name, sep, conninfo = item.partition("=")
        if not sep or not conninfo:
            print(f"pgstream: error: --standby wants NAME=CONNINFO, not {item!r}",
                  file=sys.stderr)
            return 2
        upstream = dict(u.partition("=")[::2] for u in args.upstream).get(name) or None
        standbys.append(Standby(name, conninfo, upstream=upstream))
    cluster = Cluster(Primary(args.primary_name, args.primary), standbys,
                      auth=ReplicationAuth(args.replication_user))
    try:
        report = cluster.check(timeout=args.timeout)
    finally:
        cluster.close()
    print(json.dumps(report.to_dict(), indent=1) if args.json else report)
    return 1 if report.errors else 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="pgstream", description="Set up, check and operate PostgreSQL streaming "
                                     "replication: demo, sandbox-stop, binaries, "
                                     "metrics, check.")
    top.add_argument("-v", "--verbose", action="count", default=0,
                     help="log to stderr: -v each plan step, -vv also commands and SQL")
    top.add_argument("-q", "--quiet-log", dest="log_quiet", action="store_true",
                     help="log errors only")
    sub = top.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="a local primary with streaming standbys, status printed")
    d.add_argument("--standbys", type=int, default=2)
    d.add_argument("--rows", type=int, default=1000)
    d.add_argument("--keep", action="store_true", help="leave the sandbox running")
    d.add_argument("--bindir", help="PostgreSQL bin directory (default: discovered)")
    d.add_argument("--base-dir", help="where to create the sandbox directory (default: "
                                      "/dev/shm when it is a memory file system with room, "
                                      "else /tmp)")
    d.add_argument("--run-as", help="OS user for the servers when running as root "
                                    "(default: postgres)")
    d.add_argument("--quiet", action="store_true", help="do not print each step")
    d.set_defaults(func=demo)
    s = sub.add_parser("sandbox-stop", help="stop and remove a sandbox kept with --keep")
    s.add_argument("dir")
    s.set_defaults(func=sandbox_stop)
    b = sub.add_parser("binaries", help="list the PostgreSQL installations pgstream finds")
    b.set_defaults(func=list_binaries)
    m = sub.add_parser("metrics", help="Prometheus metrics of a cluster: printed, or served "
                                       "on /metrics with --listen")
    m.add_argument("--primary", nargs=2, metavar=("NAME", "CONNINFO"), required=True)
    m.add_argument("--standby", nargs=2, metavar=("NAME", "CONNINFO"), action="append",
                   default=[], help="repeat for each standby")
    m.add_argument("--listen", metavar="HOST:PORT", help="serve /metrics there, e.g. "
                                                         "127.0.0.1:9187")
    m.add_argument("--scrape-timeout", type=float, default=metrics_ops.DEFAULT_TIMEOUT,
                   help="seconds a scrape may take (default %(default)s)")
    m.set_defaults(func=metrics)
    c = sub.add_parser("check", help="why standbys do not stream: findings, evidence, fixes "
                                     "(exit 1 when an error is found)")
    c.add_argument("--primary", required=True, help="the primary's conninfo")
    c.add_argument("--primary-name", default="primary")
    c.add_argument("--standby", action="append", default=[], metavar="NAME=CONNINFO",
                   help="a standby (repeat for each)")
    c.add_argument("--upstream", action="append", default=[], metavar="NAME=UPSTREAM",
                   help="a cascading standby's upstream node (default: the primary)")
    c.add_argument("--replication-user", default="replicator")
    c.add_argument("--timeout", type=float, default=10.0, help="seconds per node")
    c.add_argument("--json", action="store_true", help="the report as JSON")
    c.set_defaults(func=check)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    log = logging.getLogger("pgstream")  # -v/-vv/-q: pgstream's log on stderr, this run only
    handler, level = logging.StreamHandler(), log.level
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.ERROR if args.log_quiet else
                 {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
    try:
        return int(args.func(args))
    except PgStreamError as exc:
        print(f"pgstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pgstream: interrupted; servers stopped and files removed", file=sys.stderr)
        return 130
    finally:
        log.removeHandler(handler)
        log.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
