"""Verbs that change roles: ``setup``, ``switchover``, ``failover``, ``rejoin``, ``follow``,
``upgrade``.

Each builds the library's plan (every check done before anything changes), prints it with
``--dry-run``, else applies it. ``failover`` and a ``rejoin`` that rewinds are destructive:
they need ``--yes`` when stdin is not a terminal, as does ``upgrade`` (the cluster takes no
writes while it runs).
"""

from __future__ import annotations

import argparse
from typing import Any

from pgstream.cli.common import common_options, confirm, load_cluster, run_plan


def setup(args: argparse.Namespace) -> int:
    """Prepare the primary and clone every standby not yet streaming (idempotent)."""
    cluster = load_cluster(args)
    try:
        return run_plan(args, cluster.setup_plan(timeout=args.timeout), cluster)
    finally:
        cluster.close()


def switchover(args: argparse.Namespace) -> int:
    """A planned switchover to NAME."""
    cluster = load_cluster(args)
    try:
        kwargs: dict[str, Any] = {"timeout": args.timeout}
        if args.max_lag is not None:
            kwargs["max_lag_bytes"] = args.max_lag
        return run_plan(args, cluster.switchover_plan(args.name, **kwargs), cluster)
    finally:
        cluster.close()


def failover(args: argparse.Namespace) -> int:
    """Promote NAME (default: the standby with most WAL) when the primary is dead."""
    cluster = load_cluster(args)
    try:
        plan = cluster.failover_plan(args.name, force=args.force, timeout=args.timeout)
        confirm(args, f"failover: {plan.title}")
        return run_plan(args, plan, cluster)
    finally:
        cluster.close()


def rejoin(args: argparse.Namespace) -> int:
    """A former primary (or a stopped standby) back as a standby of the primary."""
    from pgstream.ops.plan import StepKind

    cluster = load_cluster(args)
    try:
        plan = cluster.rejoin_plan(args.name, rewind=args.rewind, timeout=args.timeout)
        if any(step.kind is StepKind.REWIND for step in plan.steps):
            confirm(args, f"rejoin {args.name} with pg_rewind (it discards what {args.name} "
                          "wrote after the branch point)")
        return run_plan(args, plan, cluster)
    finally:
        cluster.close()


def follow(args: argparse.Namespace) -> int:
    """Re-point standby NAME at UPSTREAM."""
    cluster = load_cluster(args)
    try:
        return run_plan(args, cluster.follow_plan(args.name, args.upstream,
                                                  timeout=args.timeout), cluster)
    finally:
        cluster.close()


def upgrade(args: argparse.Namespace) -> int:
    """Upgrade every node to the major installed in ``--to`` (pre-checked; the plan marks its
    point of no return)."""
    cluster = load_cluster(args)
    try:
        plan = cluster.upgrade_plan(args.to, method=args.method, mode=args.mode,
                                    timeout=args.timeout)
        if not args.dry_run:
            confirm(args, f"{plan.title} (no writes until it is done)")
        return run_plan(args, plan, cluster)
    finally:
        cluster.close()


def register(sub: Any) -> None:
    """Add ``setup``, ``switchover``, ``failover``, ``rejoin``, ``follow`` and ``upgrade``."""
    s = sub.add_parser("setup", parents=[common_options()],
                       help="prepare the primary, clone standbys not yet streaming")
    s.set_defaults(func=setup)
    w = sub.add_parser("switchover", parents=[common_options()],
                       help="planned switchover to a standby (no commit lost)")
    w.add_argument("name")
    w.add_argument("--max-lag", type=int, metavar="BYTES", help="refuse above this lag")
    w.set_defaults(func=switchover)
    f = sub.add_parser("failover", parents=[common_options()],
                       help="promote a standby when the primary is dead (destructive)")
    f.add_argument("name", nargs="?", help="default: the standby with the most WAL")
    f.add_argument("--force", action="store_true",
                   help="stop a primary that still runs first (fencing)")
    f.set_defaults(func=failover)
    r = sub.add_parser("rejoin", parents=[common_options()],
                       help="a former primary back as a standby (pg_rewind when needed)")
    r.add_argument("name")
    r.add_argument("--rewind", action=argparse.BooleanOptionalAction, default=None,
                   help="force (or forbid) pg_rewind; default: decided from pg_control")
    r.set_defaults(func=rejoin)
    o = sub.add_parser("follow", parents=[common_options()],
                       help="re-point a standby at another upstream")
    o.add_argument("name")
    o.add_argument("upstream")
    o.set_defaults(func=follow)
    u = sub.add_parser("upgrade", parents=[common_options()],
                       help="major upgrade of the cluster, standbys included (pg_upgrade, "
                            "then rsync or re-clone)")
    u.add_argument("--to", required=True, metavar="BINDIR", help="the new major's bin directory")
    u.add_argument("--method", choices=["rsync", "reclone"], default="rsync",
                   help="how the standbys follow (default %(default)s)")
    u.add_argument("--mode", choices=["link", "copy", "clone"], default=None,
                   help="pg_upgrade's transfer mode (default: link where the file system allows)")
    u.set_defaults(func=upgrade)
