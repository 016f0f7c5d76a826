"""Sandbox verbs: ``demo``, ``demo-upgrade`` (a major upgrade of a sandbox), ``sandbox-stop``,
``binaries``.

``pgstream demo`` is the main job: a local primary with streaming standbys, some writes, a wait
for catch-up, the status table printed, everything stopped and removed (``--keep`` leaves it
running and prints how to connect and how to stop it).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgstream.ops.plan import ProgressEvent


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


def _psql_for(server: Any) -> Path | str:
    """A ``psql`` of the server's major or newer (an older one may not speak to it)."""
    from pgstream.errors import BinaryNotFound
    from pgstream.hosts import binaries

    try:
        return binaries.find_client("psql", server.version, prefer=server).program("psql")
    except BinaryNotFound:
        return "psql"


def demo(args: argparse.Namespace) -> int:
    """A local primary with streaming standbys, some writes, the status, all removed."""
    from psycopg.conninfo import conninfo_to_dict

    from pgstream.cluster import Cluster
    from pgstream.hosts import binaries
    from pgstream.ops.sandbox.parts import check_standby_count
    from pgstream.ops.sandbox.servers import SUPERUSER

    check_standby_count(args.standbys)  # refused before anything is printed or made
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
            psql = _psql_for(server)
            for node in cluster.nodes:
                params = conninfo_to_dict(node.conninfo)
                print(f"  {node.name:<9} {shlex.quote(str(psql))} {shlex.quote(node.conninfo)}"
                      f"   # port {params['port']}, user {SUPERUSER}")
            print(f"Stop it and remove everything with:\n  pgstream sandbox-stop {base}")
            return 0
    finally:
        if not args.keep:
            cluster.close()
    print("\nstopped every server and removed the sandbox")
    return 0


def upgrade(args: argparse.Namespace) -> int:
    """A sandbox of the old major (``--from``, default: the oldest full installation with
    pg_upgrade other than ``--to``) with standbys and rows, upgraded to ``--to``; ``--dry-run``
    prints the checked plan only. (A cluster of a topology file: ``pgstream upgrade``.)"""
    from pgstream.cluster import Cluster
    from pgstream.errors import BinaryNotFound
    from pgstream.facts import compat
    from pgstream.hosts import binaries

    new = binaries.probe(args.to)
    if args.from_bindir:
        old = binaries.probe(args.from_bindir)
    else:
        older = [i for i in binaries.discover() if i.has_server and i.has("pg_upgrade")
                 and compat.upgrade_fits(new.version, i.version)]
        if not older:
            raise BinaryNotFound(f"no full installation older than PostgreSQL "
                                f"{new.version.major} was found: give --from BINDIR")
        old = older[0]
    print(f"pgstream upgrade: a PostgreSQL {old.version.major} sandbox ({old.bindir}) with "
          f"{args.standbys} standby(s) -> PostgreSQL {new.version.major} ({new.bindir})",
          flush=True)
    cluster = Cluster.sandbox(standbys=args.standbys, bindir=old.bindir,
                              base_dir=args.base_dir, run_as=args.run_as)
    try:
        cluster.primary.execute("CREATE TABLE demo AS SELECT g AS id, 'row ' || g AS note "
                                "FROM generate_series(1, %s) g", (args.rows,))
        cluster.wait_for_catchup(timeout=60)
        plan = cluster.upgrade_plan(new.bindir, method=args.method, mode=args.mode)
        print(plan, flush=True)
        if args.dry_run:
            print("\n(dry run: nothing was changed)")
            return 0
        print(plan.apply(_Printer(args.quiet)))
        print()
        print(cluster.status())
        if args.keep:
            print(f"\nThe upgraded sandbox keeps running in {cluster.detach()}; stop it "
                  "with pgstream sandbox-stop DIR")
    finally:
        if not args.keep or args.dry_run:
            cluster.close()
    return 0


def sandbox_stop(args: argparse.Namespace) -> int:
    """Stop a kept sandbox's servers and remove it; exit 1 if a server could not be stopped
    (its directory is removed all the same)."""
    from pgstream.ops.sandbox.servers import destroy_kept

    done = destroy_kept(args.dir)
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    for problem in done.problems:
        print(f"error: {problem}", file=sys.stderr)
    if done.problems:
        print(f"removed {args.dir}, but a server of it could not be stopped", file=sys.stderr)
        return 1
    print(f"stopped and removed {args.dir}")
    return 0


def list_binaries(_args: argparse.Namespace) -> int:
    """The PostgreSQL installations pgstream finds."""
    from pgstream.hosts import binaries

    found = binaries.discover()
    if not found:
        print(binaries.HOW_TO_GET)
        return 1
    for inst in found:
        kind = "server+tools" if inst.has_server else "client tools"
        print(f"{inst.version.major:>4}  {inst.version!s:<40}  {kind:<12}  {inst.bindir}"
              f"  ({inst.source})")
    return 0


def register(sub: Any) -> None:
    """Add ``demo``, ``demo-upgrade``, ``sandbox-stop`` and ``binaries`` to the command line."""
    d = sub.add_parser("demo", help="a local primary with streaming standbys, status printed",
                       description="A local primary with streaming standbys (a sandbox in a "
                       "temporary directory), some writes, a wait for every standby to replay "
                       "them, the status table; then every server stopped and the directory "
                       "removed (unless --keep).")
    d.add_argument("--standbys", type=int, default=2,
                   help="how many standbys, 0 to 16 (default: %(default)s)")
    d.add_argument("--rows", type=int, default=1000,
                   help="rows written on the primary (default: %(default)s)")
    d.add_argument("--keep", action="store_true",
                   help="leave the sandbox running and print how to connect and to stop it")
    d.add_argument("--bindir", help="PostgreSQL bin directory (default: discovered)")
    d.add_argument("--base-dir", help="where to create the sandbox directory (default: "
                                      "/dev/shm when it is a memory file system with room, "
                                      "else /tmp)")
    d.add_argument("--run-as", help="OS user for the servers when running as root "
                                    "(default: postgres)")
    d.add_argument("--quiet", action="store_true", help="do not print each step")
    d.set_defaults(func=demo)
    u = sub.add_parser("demo-upgrade", help="a sandbox of an older major, with standbys and "
                                            "rows, upgraded (pg_upgrade, then rsync or "
                                            "re-clone)")
    u.add_argument("--to", required=True, help="bin directory of the new major")
    u.add_argument("--from", dest="from_bindir", help="bin directory of the old major "
                                                      "(default: discovered)")
    u.add_argument("--dry-run", action="store_true", help="print the checked plan only")
    u.add_argument("--method", choices=["rsync", "reclone"], default="rsync")
    u.add_argument("--mode", choices=["link", "copy", "clone"], default=None,
                   help="pg_upgrade's transfer mode (default: link where possible)")
    u.add_argument("--standbys", type=int, default=2)
    u.add_argument("--rows", type=int, default=1000)
    u.add_argument("--keep", action="store_true", help="leave the upgraded sandbox running")
    u.add_argument("--base-dir", help="where to create the sandbox directory")
    u.add_argument("--run-as", help="OS user for the servers when running as root")
    u.add_argument("--quiet", action="store_true", help="do not print each step")
    u.set_defaults(func=upgrade)
    s = sub.add_parser("sandbox-stop", help="stop and remove a sandbox kept with --keep")
    s.add_argument("dir")
    s.set_defaults(func=sandbox_stop)
    b = sub.add_parser("binaries", help="list the PostgreSQL installations pgstream finds")
    b.set_defaults(func=list_binaries)
