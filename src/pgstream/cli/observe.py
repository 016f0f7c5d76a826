"""Verbs that watch: ``check`` (why standbys do not stream) and ``metrics`` (Prometheus).

Both read the cluster of the topology file (``-c FILE``, ``$PGSTREAM_CONFIG``,
``./pgstream.toml``), or one named on the command line with ``--primary`` and ``--standby``
(for a monitoring host that has no topology file). They change nothing.
"""

from __future__ import annotations

import argparse
import math
import re
from typing import TYPE_CHECKING, Any

from pgstream.cli.common import BAD_INPUT, OK, PROBLEMS, CliError, common_options, emit

if TYPE_CHECKING:
    from pgstream.cluster import Cluster
    from pgstream.ops.check import Thresholds

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(B|kB|KB|MB|GB|TB)?\s*$", re.I)
_UNITS = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4}
_OFF = ("off", "none")


def byte_threshold(text: str) -> int | None:
    """``--lag-bytes``/``--slot-retained-bytes``: bytes, with an optional unit (``16MB``,
    ``1.5GB``; 1024-based, as pg_size_pretty), or ``off`` (never warn)."""
    if text.strip().lower() in _OFF:
        return None
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no size: give bytes (0 or more) with an optional unit, e.g. "
            "16777216, 16MB or 1GB, or 'off'")
    return int(float(match[1]) * _UNITS[(match[2] or "B").lower()])


def seconds_threshold(text: str) -> float | None:
    """``--lag-seconds``: a finite number of seconds (0 or more), or ``off`` (never warn)."""
    if text.strip().lower() in _OFF:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is no number of seconds: give a finite number, 0 or more, or 'off'")
    return value


def _thresholds(args: argparse.Namespace) -> Thresholds:
    """The check's thresholds: the defaults, each overridden by its option when given."""
    from pgstream.ops.check import Thresholds

    given = {name: getattr(args, name) for name in ("lag_bytes", "lag_seconds",
                                                     "slot_retained_bytes")
             if getattr(args, name) is not _DEFAULT}
    return Thresholds(**given)


_DEFAULT: Any = object()


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
        report = cluster.check(thresholds=_thresholds(args), timeout=args.timeout)
    finally:
        cluster.close()
    emit(args, report.to_dict(), str(report))
    return PROBLEMS if report.errors else OK


def metrics(args: argparse.Namespace) -> int:
    """The cluster as Prometheus metrics (status and check findings): printed, or served on
    ``/metrics`` with ``--listen``, read afresh at each scrape."""
    from pgstream.ops import metrics as metrics_ops

    thresholds = _thresholds(args)
    cluster = _named_cluster(args)
    limit = args.scrape_timeout or metrics_ops.DEFAULT_TIMEOUT

    def scrape() -> str:
        return metrics_ops.read_cluster(cluster, cluster.history, findings=args.findings,
                                        thresholds=thresholds, timeout=limit / 2)

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


def _threshold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lag-bytes", type=byte_threshold, default=_DEFAULT, metavar="SIZE",
                        help="lag_high when a standby replays this far behind (default 16MB; "
                             "'off': never)")
    parser.add_argument("--lag-seconds", type=seconds_threshold, default=_DEFAULT,
                        metavar="SECONDS", help="lag_high when a standby's replay is this "
                                                "many seconds behind (default 30; 'off')")
    parser.add_argument("--slot-retained-bytes", type=byte_threshold, default=_DEFAULT,
                        metavar="SIZE", help="slot_inactive_retaining when an inactive slot "
                                             "holds this much WAL (default 1GB; 'off')")


def register(sub: Any) -> None:
    """Add ``check`` and ``metrics``."""
    c = sub.add_parser("check", parents=[common_options()],
                       help="why standbys do not stream: findings, evidence and fixes (exit 1 "
                            "when an error is found)")
    _cluster_options(c)
    _threshold_options(c)
    c.set_defaults(func=check, timeout=10.0)
    m = sub.add_parser("metrics", parents=[common_options()],
                       help="Prometheus metrics of the cluster: printed, or served on /metrics "
                            "with --listen")
    _cluster_options(m)
    _threshold_options(m)
    m.add_argument("--listen", metavar="HOST:PORT",
                   help="serve /metrics there, e.g. 127.0.0.1:9187")
    m.add_argument("--scrape-timeout", type=float,
                   help="seconds a scrape may take (default 8)")
    m.add_argument("--no-findings", dest="findings", action="store_false",
                   help="leave out the check findings (pgstream_findings): a cheaper scrape")
    m.set_defaults(func=metrics)
