"""Verbs that look: ``discover``, ``status``, ``slots`` (they change nothing; ``discover
--write`` writes the topology file, which ``--dry-run`` prints instead)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from pgstream.cli.common import (
    BAD_INPUT,
    OK,
    PROBLEMS,
    CliError,
    common_options,
    emit,
    load_cluster,
)


def discover(args: argparse.Namespace) -> int:
    """Discover the cluster around CONNINFO; ``--write FILE``: its topology file."""
    from pgstream.cluster import Cluster
    from pgstream.ops.discover.from_file import make_host
    from pgstream.ops.discover.probe import NodeSpec
    from pgstream.render.topology import ReplicationEntry, render_topology

    host = make_host(args.host, become=args.become, ssh_config=args.ssh_config)
    specs = [NodeSpec(c, host=host) for c in args.standby]
    cluster = Cluster.discover(NodeSpec(args.conninfo, host=host), standbys=specs, host=host)
    try:
        found = cluster.discovery
        assert found is not None
        replication = ReplicationEntry(args.replication_user or cluster.auth.user,
                                       args.password_env, args.passfile)
        notes = found.topology_notes()
        text = render_topology(found.topology(replication),
                               comment=f"written by pgstream discover {time.ctime()}"
                               + (f"\n\n{notes}\n\n" if notes else ""))
        document: dict[str, Any] = found.to_dict()
        shown = str(found)
        if args.write and args.dry_run:
            document["topology"] = text
            shown += f"\n\n--dry-run: would write {args.write}:\n{text}"
        elif args.write:
            target = Path(args.write)
            if target.exists() and not args.force:
                raise CliError(f"{target} exists: pass --force to replace it",
                               code="file_exists", exit_code=BAD_INPUT)
            target.write_text(text, encoding="utf-8")
            document["written"] = str(target)
            shown += f"\n\nwrote {target}"
        if args.write and found.hosts_unknown:
            document["not_written"] = [n.name for n in found.hosts_unknown]
            shown += ("\nnot written (host not known, found only by address; the file's "
                      "comment says what to add): "
                      + ", ".join(n.name for n in found.hosts_unknown))
        emit(args, document, shown)
        return PROBLEMS if found.problems else OK
    finally:
        cluster.close()


def _status_once(args: argparse.Namespace) -> tuple[dict[str, Any], str, bool]:
    cluster = load_cluster(args, deep=False)
    try:
        status = cluster.status()
        found = cluster.discovery
        problems = list(found.problems) if found is not None else []
        problems += [f"{s.name}: {s.state}" + ("" if s.reachable else ", unreachable")
                     for s in status.standbys if not s.streaming]
        document = {**status.to_dict(), "problems": problems}
        text = str(status) + "".join(f"\nproblem: {p}" for p in problems)
        return document, text, bool(problems)
    finally:
        cluster.close()


def status(args: argparse.Namespace) -> int:
    """The cluster's status (``--watch S``: again every S seconds, until interrupted)."""
    while True:
        document, text, bad = _status_once(args)
        if args.watch and sys.stdout.isatty() and not args.json:
            sys.stdout.write("\x1b[H\x1b[2J")
        emit(args, document, text)
        if not args.watch:
            return PROBLEMS if bad else OK
        try:
            time.sleep(args.watch)
        except KeyboardInterrupt:
            return OK


def slots(args: argparse.Namespace) -> int:
    """Every node's physical slots, with the WAL each holds back."""
    from pgstream.ops.slot_report import slot_report

    cluster = load_cluster(args, deep=False)
    try:
        reports = [slot_report(node) for node in cluster.nodes if node.ping()]
        flagged = any(r.flagged for r in reports)
        unused = cluster.discovery.unused_slots if cluster.discovery else ()
        emit(args, {"nodes": [r.to_dict() for r in reports],
                    "unused": [{"node": u.node, "slot": u.slot} for u in unused]},
             "\n\n".join(str(r) for r in reports))
        return PROBLEMS if flagged or unused else OK
    finally:
        cluster.close()


def register(sub: Any) -> None:
    """Add ``discover``, ``status`` and ``slots``."""
    d = sub.add_parser("discover", parents=[common_options(config=False)],
                       help="describe a running cluster from one conninfo")
    d.add_argument("conninfo", help="the primary's conninfo (libpq string)")
    d.add_argument("--standby", action="append", default=[], metavar="CONNINFO",
                   help="a standby the primary cannot point to (repeatable)")
    d.add_argument("--write", metavar="FILE", help="write the topology file (pgstream.toml)")
    d.add_argument("--force", action="store_true", help="replace an existing --write FILE")
    d.add_argument("--host", help="where the servers run: 'local' or an SSH destination")
    d.add_argument("--become", help="with an SSH host: the user to become (sudo), e.g. root")
    d.add_argument("--ssh-config", help="an ssh_config file for the SSH host")
    d.add_argument("--replication-user", help="the replication role (default: from the "
                                              "standbys' primary_conninfo)")
    secret = d.add_mutually_exclusive_group()
    secret.add_argument("--password-env", metavar="VAR",
                        help="the environment variable holding the replication password")
    secret.add_argument("--passfile", help="a 0600 passfile holding it")
    d.set_defaults(func=discover)
    s = sub.add_parser("status", parents=[common_options()],
                       help="state, lag and slot of every standby")
    s.add_argument("--watch", type=float, metavar="S", help="repeat every S seconds")
    s.set_defaults(func=status)
    sl = sub.add_parser("slots", parents=[common_options()],
                        help="replication slots of every node, and unused ones")
    sl.set_defaults(func=slots)
