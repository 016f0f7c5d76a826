"""Discovery: a running cluster described from its servers, given one connection string.

:func:`discover_cluster` asks the primary (and every standby it finds, in parallel) what
they are: version, paths, port, owner, programs, service, log, walsenders, slots, each
standby's walreceiver and ``primary_conninfo`` (parsed, its password never kept). Standbys
are found in the primary's ``pg_stat_replication`` (then in each standby's, for cascades):
at the conninfos given, else, on this machine, from their walreceiver processes, else at the
address the primary sees them at (one found so on another machine gets an
:class:`~pgstream.ops.discover.elsewhere.UnknownHost`, never its upstream's host). Each
standby is matched to its upstream (:func:`_match`): its sender (:func:`_sender`) must be a
known node, or one that cannot be told (:func:`_points_at`), and it must hold a walsender row
of it that no other standby holds, by the slot it streams through, then its
``application_name``; those found that do not (another cluster of the same system, e.g. a
copy restored from a backup) are left out and reported. The result is a frozen
:class:`Discovery` (what was found and how each name was chosen) and the node handles a
``Cluster`` is made of.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from psycopg import conninfo as pg_conninfo

from pgstream.errors import NodeUnreachable, ServerMismatch, TopologyError
from pgstream.hosts.host import Host, LocalHost
from pgstream.hosts.parallel import in_parallel
from pgstream.hosts.running import local_walreceivers
from pgstream.nodes.conninfo import masked_conninfo
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.discover.build import Found, Seen, build, seen_rows
from pgstream.ops.discover.elsewhere import UnknownHost
from pgstream.ops.discover.probe import (
    NodeSpec,
    Probe,
    host_slug,
    is_node_name,
    probe,
)

MAX_DEPTH = 8


def _spec(item: str | NodeSpec) -> NodeSpec:
    return item if isinstance(item, NodeSpec) else NodeSpec(item)


def _params(conninfo: str) -> dict[str, Any]:
    return dict(pg_conninfo.conninfo_to_dict(conninfo))


def _peer_conninfo(base: str, host: str, port: int) -> str:
    params = _params(base)
    params.update(host=host, port=str(port))
    params.pop("hostaddr", None)
    return pg_conninfo.make_conninfo("", **params)


def _probe_all(items: Sequence[Seen], deep: bool) -> None:
    results = in_parallel((str(i), functools.partial(probe, seen.node, deep=deep))
                          for i, seen in enumerate(items))
    for i, seen in enumerate(items):
        seen.probe = results[str(i)]


def _new(spec: NodeSpec, host: Host, cls: type[Node], given: bool) -> Seen:
    params = _params(spec.conninfo)
    tentative = spec.name or host_slug(str(params.get("host") or ""),
                                       int(params.get("port") or 5432))
    node = cls(tentative, spec.conninfo, host=spec.host or host)
    return Seen(node, spec, Probe(False, "not asked"), given)


def _where(seen: Seen) -> str:
    return seen.spec.name or masked_conninfo(seen.spec.conninfo)


def _check_member(seen: Seen, head: Seen) -> None:
    if not seen.probe.reachable:
        return
    if not seen.probe.in_recovery:
        raise ServerMismatch(
            f"{_where(seen)} is not in recovery: it is a primary itself, not a standby of "
            f"{_where(head)} (nothing was changed)", node=_where(seen), field="role",
            declared="standby", reported="primary")
    if seen.probe.system_identifier != head.probe.system_identifier:
        raise ServerMismatch(
            f"{_where(seen)} belongs to another system (identifier "
            f"{seen.probe.system_identifier}, not {head.probe.system_identifier}): it is no "
            f"copy of {_where(head)} (nothing was changed)", node=_where(seen),
            field="system_identifier", declared=head.probe.system_identifier,
            reported=seen.probe.system_identifier)


def _same_server(all_seen: Sequence[Seen]) -> None:
    where: dict[tuple[str, str], Seen] = {}
    for seen in all_seen:
        declared, reported = seen.spec.data_dir, seen.probe.data_directory
        if declared is not None and reported is not None and Path(declared) != reported:
            raise ServerMismatch(
                f"{_where(seen)}: the topology says data directory {declared}, the server "
                f"reports {reported} (nothing was changed)", node=_where(seen),
                field="data_directory", declared=str(declared), reported=str(reported))
        directory = seen.probe.data_directory or seen.spec.data_dir
        if directory is None:
            continue
        key = (seen.node.host.name, str(directory))
        if key in where:
            raise TopologyError(
                f"{_where(seen)} and {_where(where[key])} are the same server (data directory "
                f"{directory} on {key[0]}): one server cannot be two nodes", key="data_dir")
        where[key] = seen


_LOCAL = ("", "127.0.0.1", "::1", "localhost")
FOREIGN = "foreign"


def is_remote_address(address: str) -> bool:
    """Is ``address`` (a walsender row's ``client_addr``) to be taken as another machine
    than the upstream's? Anything but loopback is: discovery cannot tell an
    address of the upstream's host from one of another host, and a standby it cannot place
    gets an :class:`~pgstream.ops.discover.elsewhere.UnknownHost`, never the upstream's."""
    bare = address.removeprefix("::ffff:")
    return bare not in _LOCAL and not bare.startswith(("127.", "/"))


def _sender(seen: Seen) -> tuple[str, int] | None:
    """Where ``seen`` streams from: its walreceiver's sender, else its primary_conninfo."""
    receiver = seen.probe.receiver or {}
    host, port = receiver.get("sender_host"), receiver.get("sender_port")
    if not host:
        conn = seen.probe.upstream_conninfo
        host, port = conn.get("host", "").split(",")[0], str(conn.get("port", "5432"))
    if host is None or not str(port).split(",")[0].isdigit():
        return None
    return str(host), int(str(port).split(",")[0])


def _points_at(seen: Seen, nodes: Sequence[Seen]) -> Seen | str | None:
    """The known node ``seen``'s sender is, :data:`FOREIGN` when it is surely none of them
    (a socket or loopback address on its own host, at a port none of them has there), None
    when that cannot be told (an address on another machine)."""
    sender = _sender(seen)
    if sender is None:
        return None
    host, port = sender
    others = [n for n in nodes if n is not seen and n.probe.reachable and n.probe.port == port]
    if host.startswith("/") or host in _LOCAL:
        here = [n for n in others if n.node.host.name == seen.node.host.name]
        if host.startswith("/") and len(here) > 1:
            here = [n for n in here if host in [d.strip() for d in n.probe.settings.get(
                "unix_socket_directories", "").split(",")]] or here
        return here[0] if len(here) == 1 else (FOREIGN if not here else None)
    named = [n for n in others if host in str(_params(n.spec.conninfo).get("host") or "")
             .split(",") or host in n.probe.settings.get("listen_addresses", "").split(",")]
    return named[0] if len(named) == 1 else None


def _match(seen: Seen, candidates: Sequence[Seen]) -> None:
    """Find ``seen``'s upstream among ``candidates``: the node its sender points at, then a
    walsender row no other standby holds, by its slot, then its application_name."""
    slot = seen.probe.slot_used or seen.spec.slot
    own = seen.spec.application_name or seen.probe.own_application_name
    target = _points_at(seen, candidates)
    if target == FOREIGN:
        return
    taken = seen_rows(candidates)
    ups = [target] if isinstance(target, Seen) else [
        up for up in candidates if up is not seen and up.probe.reachable]
    for test in ("slot", "name"):
        hits = [(up, row) for up in ups for row in up.probe.walsenders
                if (id(up), id(row)) not in taken
                and ((test == "slot" and slot and row.get("slot_name") == slot)
                     or (test == "name" and row["application_name"] == own))]
        if len(hits) == 1:
            seen.upstream, seen.row = hits[0]
            return
    if isinstance(target, Seen):
        seen.upstream = target


def _why_not(seen: Seen, nodes: Sequence[Seen]) -> str:
    sender = _sender(seen)
    where = f"{sender[0]}:{sender[1]}" if sender else "an unknown sender"
    if _points_at(seen, nodes) == FOREIGN:
        return (f"it streams from {where}, which is no node of this cluster (another "
                "cluster of the same system, e.g. a copy restored from a backup)")
    return (f"it streams from {where} and matches no walsender row of this cluster that "
            "no other standby holds (by slot, then application_name)")


def _find_more(head: Seen, all_seen: list[Seen], deep: bool, scan_local: bool,
               problems: list[str], left_out: set[tuple[str, str]]) -> list[Seen]:
    """Standbys the known servers stream to that no conninfo named: local walreceivers,
    then the addresses the upstreams see them at. Kept only when they stream from this
    cluster (see :func:`_match`); the others are reported in ``problems``."""
    unmatched = [(up, row) for up in all_seen if up.probe.reachable
                 for row in up.probe.walsenders
                 if (id(up), id(row)) not in seen_rows(all_seen)]
    idle = [slot for up in all_seen for slot in up.probe.slots if not slot.active]
    if not unmatched and not idle:
        return []
    known_dirs = {(s.node.host.name, str(s.probe.data_directory)) for s in all_seen
                  if s.probe.data_directory} | left_out
    new: list[Seen] = []
    if scan_local and isinstance(head.node.host, LocalHost):
        for server in local_walreceivers():
            if (head.node.host.name, str(server.data_dir)) in known_dirs:
                continue
            where = server.socket_dir.split(",")[0].strip() if server.socket_dir else (
                "127.0.0.1")
            new.append(_new(NodeSpec(_peer_conninfo(head.spec.conninfo, where, server.port)),
                            head.node.host, Standby, False))
    if not new:
        port = head.probe.port or 5432
        for up, row in unmatched:
            if row.get("client_addr"):
                address = str(row["client_addr"]).split("/")[0]
                remote = is_remote_address(address)
                seen = _new(NodeSpec(_peer_conninfo(head.spec.conninfo, address, port)),
                            UnknownHost(address) if remote else up.node.host, Standby, False)
                seen.remote = remote
                new.append(seen)
    _probe_all(new, deep)
    fresh = []
    for seen in new:
        key = (seen.node.host.name, str(seen.probe.data_directory))
        if seen.probe.reachable and seen.probe.in_recovery \
                and seen.probe.system_identifier == head.probe.system_identifier \
                and key not in known_dirs:
            known_dirs.add(key)
            fresh.append(seen)
    kept: list[Seen] = []
    while True:  # a cascade: kept once its upstream is
        more = []
        for seen in fresh:
            if seen not in kept:
                _match(seen, [*all_seen, *kept])
                if seen.upstream is not None:
                    more.append(seen)
        if not more:
            break
        kept += more
    for seen in fresh:
        if seen not in kept:
            left_out.add((seen.node.host.name, str(seen.probe.data_directory)))
            problems.append(
                f"left out the standby at {masked_conninfo(seen.spec.conninfo)} (data "
                f"directory {seen.probe.data_directory}): {_why_not(seen, all_seen)}")
    return kept


def _names(all_seen: Sequence[Seen]) -> None:
    taken: set[str] = {s.spec.name for s in all_seen if s.spec.name}
    for seen in all_seen:
        if seen.spec.name:
            seen.name, seen.named_by = seen.spec.name, "given"
    apps = [str(s.row["application_name"]) for s in all_seen if s.row is not None]
    clusters = [s.probe.settings.get("cluster_name", "") for s in all_seen]
    for seen in all_seen:
        if seen.name:
            continue
        app = str(seen.row["application_name"]) if seen.row is not None else ""
        cluster = seen.probe.settings.get("cluster_name", "")
        if app and is_node_name(app) and apps.count(app) == 1 and app not in taken:
            seen.name, seen.named_by = app, "application_name"
        elif cluster and is_node_name(cluster) and clusters.count(cluster) == 1 \
                and cluster not in taken:
            seen.name, seen.named_by = cluster, "cluster_name"
        else:
            params = _params(seen.spec.conninfo)
            base = host_slug(str(params.get("host") or ""), seen.probe.port or int(
                params.get("port") or 5432))
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            seen.name, seen.named_by = name, "host and port"
        taken.add(seen.name)


def discover_cluster(primary: str | NodeSpec, *, standbys: Sequence[str | NodeSpec] = (),
                     host: Host | None = None, deep: bool = True, scan_local: bool = True,
                     dead_primary: bool = False) -> Found:
    """Discover the cluster around ``primary`` (see the module docstring). ``standbys``:
    conninfos (or specs) of standbys, for those the primary cannot point to; ``host``: where
    the servers run (default this machine; a spec's own host wins). ``deep=False`` skips the
    host (no owner, programs, service: enough for status). ``dead_primary``: a primary that
    cannot be reached is kept (from its spec) instead of refused, for a failover."""
    started = time.monotonic()
    where = host or LocalHost()
    head = _new(_spec(primary), where, Primary, True)
    members = [_new(_spec(s), where, Standby, True) for s in standbys]
    _probe_all([head, *members], deep)
    if not head.probe.reachable and not dead_primary:
        raise NodeUnreachable(f"cannot discover a cluster: {head.probe.error}")
    if head.probe.reachable and head.probe.in_recovery:
        raise ServerMismatch(
            f"{_where(head)} is in recovery: a standby, not the primary; give the primary's "
            "conninfo (nothing was changed)", node=_where(head), field="role",
            declared="primary", reported="standby")
    ref = head if head.probe.reachable else next(
        (m for m in members if m.probe.reachable), head)
    for member in members:
        if member is not ref and head.probe.reachable:
            _check_member(member, ref)
    problems: list[str] = []
    everyone = [head, *members]
    _same_server(everyone)
    left_out: set[tuple[str, str]] = set()
    for _ in range(MAX_DEPTH):
        for seen in everyone[1:]:
            if seen.upstream is None:
                _match(seen, everyone)
        more = _find_more(head, everyone, deep, scan_local, problems, left_out) \
            if head.probe.reachable else []
        if not more:
            break
        everyone += more
    for seen in everyone[1:]:
        if seen.upstream is None and seen.probe.reachable:
            _match(seen, everyone)
            if seen.upstream is None and (seen.probe.receiver or {}).get("status"):
                problems.append(f"{_where(seen)} was given as a standby, but "
                                f"{_why_not(seen, everyone)}")
    _names(everyone)
    return build(head, everyone, problems, started)


