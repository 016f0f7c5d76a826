"""Verbs that watch: ``check`` (why standbys do not stream) and ``metrics`` (Prometheus).

Both read the cluster of the topology file (``-c FILE``, ``$PGSTREAM_CONFIG``,
``./pgstream.toml``), or one named on the command line with ``--primary`` and ``--standby``
(for a monitoring host that has no topology file). They change nothing.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from pgstream.cli.common import BAD_INPUT, OK, PROBLEMS, CliError, common_options, emit

if TYPE_CHECKING:
    from pgstream.cluster import Cluster


def _named_cluster(args: argparse.Namespace) -> Cluster:
    """The cluster of ``--primary``/``--standby``, else of the topology file."""
    from pgstream.cli.common import load_cluster

    if not args.primary:
        return load_cluster(args, deep=False)
    from pgstream.cluster import Cluster
    from pgstream.nodes.node import Primary, Standby
    from pgstream.ops.setup import ReplicationAuth

    upstreams = dict(item.partition("=")[::2] for item in args.upstream)
    standbys = []
    for item in args.standby:
        name, sep, conninfo = item.partition("=")
        if not sep or not name or not conninfo:
            raise CliError(f"--standby wants NAME=CONNINFO, not {item!r}", code="usage",
                           exit_code=BAD_INPUT)
        standbys.append(Standby(name, conninfo, upstream=upstreams.get(name) or None))
    return Cluster(Primary(args.primary_name, args.primary), standbys,
                   auth=ReplicationAuth(args.replication_user))


def check(args: argparse.Namespace) -> int:
    """``cluster.check()``'s findings; exit 1 when one of them is an error."""
    cluster = _named_cluster(args)
    try:
        report = cluster.check(timeout=args.timeout)
    finally:
        cluster.close()
    emit(args, report.to_dict(), str(report))
    return PROBLEMS if report.errors else OK


def metrics(args: argparse.Namespace) -> int:
    """The cluster as Prometheus metrics (status and check findings): printed, or served on
    ``/metrics`` with ``--listen``, read afresh at each scrape."""
    from pgstream.ops import metrics as metrics_ops

    cluster = _named_cluster(args)
    limit = args.scrape_timeout or metrics_ops.DEFAULT_TIMEOUT

    def scrape() -> str:
        status = cluster.status()
        findings = cluster.check(timeout=limit / 2).findings if args.findings else None
        return status.to_prometheus(findings)

    try:
        return metrics_ops.run(scrape, listen=args.listen, timeout=limit)
    finally:
        cluster.close()


def _cluster_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--primary", metavar="CONNINFO",
                        help="the primary's conninfo (instead of a topology file)")
    parser.add_argument("--primary-name", default="primary", help="its name (default "
                                                                  "%(default)s)")
    parser.add_argument("--standby", action="append", default=[], metavar="NAME=CONNINFO",
                        help="with --primary: a standby (repeat for each)")
    parser.add_argument("--upstream", action="append", default=[], metavar="NAME=UPSTREAM",
                        help="with --primary: a cascading standby's upstream (default: the "
                             "primary)")
    parser.add_argument("--replication-user", default="replicator",
                        help="with --primary: the replication role (default %(default)s)")


def register(sub: Any) -> None:
    """Add ``check`` and ``metrics``."""
    c = sub.add_parser("check", parents=[common_options()],
                       help="why standbys do not stream: findings, evidence and fixes (exit 1 "
                            "when an error is found)")
    _cluster_options(c)
    c.set_defaults(func=check, timeout=10.0)
    m = sub.add_parser("metrics", parents=[common_options()],
                       help="Prometheus metrics of the cluster: printed, or served on /metrics "
                            "with --listen")
    _cluster_options(m)
    m.add_argument("--listen", metavar="HOST:PORT",
                   help="serve /metrics there, e.g. 127.0.0.1:9187")
    m.add_argument("--scrape-timeout", type=float,
                   help="seconds a scrape may take (default 8)")
    m.add_argument("--no-findings", dest="findings", action="store_false",
                   help="leave out the check findings (pgstream_findings): a cheaper scrape")
    m.set_defaults(func=metrics)
