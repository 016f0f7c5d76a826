"""Plans over a whole cluster: set it up (primary, then every standby), add a standby, promote
one alone. :class:`pgstream.Cluster` delegates to these.

A standby streams through its own slot and ``application_name`` (``Standby.slot_name`` and
``Standby.application_name``, by default its name): the plans use those, never the name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, PgStreamError
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.nodes.node import Node, Standby
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.follow import promote_step
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.setup import ReplicationAuth, hba_step, primary_setup_steps, slot_step
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries
from pgstream.render.config import ConfigRenderer


def hba_marker(name: str) -> str:
    """The comment pgstream ends a ``pg_hba.conf`` line with when it adds it for one standby
    (so that removing that standby removes that line, and only it)."""
    return f"# pgstream: standby {name}"


def address_from_conninfo(node: Node) -> tuple[str, int]:
    """``(host, port)`` of ``node``'s conninfo, when it names a TCP host."""
    params = pg_conninfo.conninfo_to_dict(node.conninfo)
    host = str(params.get("host") or params.get("hostaddr") or "")
    if not host or host.startswith("/"):
        raise InvalidInput(
            f"cannot tell from {node.name}'s conninfo which address standbys should connect "
            "to: pass primary_address=(host, port)")
    return host, int(params.get("port") or 5432)


def conninfo_port(node: Node) -> int:
    """The port in ``node``'s conninfo (5432 when it names none)."""
    return int(pg_conninfo.conninfo_to_dict(node.conninfo).get("port") or 5432)


def setup_plan(cluster: ClusterView, *, auth: ReplicationAuth, settings: dict[str, str] | None,
               primary_address: tuple[str, int] | None, hba_addresses: Sequence[str],
               replace: bool, server: Installation | None, client: Installation | None,
               sync: bool, timeout: float) -> Plan:
    """The runbook: prepare the primary (seed steps 1-5), clone each standby (6-11)."""
    primary = cluster.primary
    version = primary.version
    wanted = settings or ConfigRenderer(version).primary_settings()
    host, port = primary_address or address_from_conninfo(primary)
    steps = primary_setup_steps(primary, auth=auth, settings=wanted,
                                hba_addresses=hba_addresses,
                                slots=[cluster.slot_for(s) for s in cluster.standbys])
    for standby in cluster.standbys:
        if standby.service is None or standby.data_dir is None:
            raise InvalidInput(f"{standby.name} needs data_dir and service to be cloned")
        srv = server or binaries.probe(standby.service.bindir, host=standby.host)
        cli = client or binaries.find_client("pg_basebackup", version, prefer=srv)
        steps += standby_clone_steps(
            primary, standby, auth=auth, primary_host=host, primary_port=port,
            slot=cluster.slot_for(standby), server=srv, client=cli,
            passfile=cluster.passfile_of(standby), replace=replace,
            node_settings=cluster.node_settings.get(standby.name), sync=sync, timeout=timeout)
    names = ", ".join(s.name for s in cluster.standbys) or "no standbys"
    return Plan(f"streaming replication {primary.name} -> {names} "
                f"(PostgreSQL {version.major})", steps)


def add_standby_plan(cluster: ClusterView, standby: Standby, *, upstream: Node | str | None,
                     replace: bool, sync: bool, timeout: float = DEFAULT_TIMEOUT,
                     hba_address: str | None = None) -> Plan:
    """Clone one more standby from ``upstream`` (default the primary; a standby gives a
    cascading standby, with its slot on that standby). ``hba_address``: also allow
    replication from that address on the upstream, with a line marked for this standby."""
    source = cluster.primary if upstream is None else (
        cluster.node(upstream) if isinstance(upstream, str) else upstream)
    if standby.name in {n.name for n in [*cluster.nodes, *cluster.failed]}:
        raise InvalidInput(f"a node named {standby.name!r} exists already")
    taken = {cluster.slot_for(s) for s in cluster.standbys
             if (s.upstream or cluster.primary.name) == source.name}
    if cluster.slot_for(standby) in taken:
        raise InvalidInput(f"slot {cluster.slot_for(standby)!r} on {source.name} is another "
                           "standby's: give this one its own slot_name")
    if standby.service is None:
        raise InvalidInput(f"{standby.name} needs a service to be cloned")
    server = binaries.probe(standby.service.bindir, host=standby.host)
    client = binaries.find_client("pg_basebackup", source.version, prefer=server)
    host, port = cluster.address_of(source)
    slot = cluster.slot_for(standby)
    steps: list[Step] = []
    if hba_address is not None:
        auth = cluster.auth
        renderer = ConfigRenderer(source.version)
        line = renderer.hba_line(auth.user, hba_address,
                                 auth.method or renderer.default_auth_method())
        changed: set[str] = set()
        steps.append(hba_step(source, [f"{line}    {hba_marker(standby.name)}"], changed))
        steps.append(_reload_if(source, changed))
    steps.append(slot_step(source, slot))
    steps += standby_clone_steps(
        source, standby, auth=cluster.auth, primary_host=host, primary_port=port, slot=slot,
        server=server, client=client, passfile=cluster.passfile_of(standby), replace=replace,
        node_settings=cluster.node_settings.get(standby.name), sync=sync, timeout=timeout)

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange("add standby", f"{standby.name} streams from {source.name}",
                                 added=(standby,), upstreams=((standby.name, source.name),)))
        return StepResult(True, f"{standby.name} streams from {source.name}")

    steps.append(Step(standby.name, StepKind.RECORD, "record the new standby", "",
                      action=record, host=standby.host.name))
    return Plan(f"add {standby.name} streaming from {source.name}", steps)


def _reload_if(node: Node, changed: set[str]) -> Step:
    def action(report: Report) -> StepResult:
        if not changed:
            return StepResult(False, "pg_hba.conf unchanged")
        node.execute(queries.reload_conf()[0])
        changed.clear()
        return StepResult(True, "reloaded (pg_hba.conf changed)")

    return Step(node.name, StepKind.RELOAD, "reload, if pg_hba.conf changed",
                "SELECT pg_reload_conf();", action=action, host=node.host.name)


def promote_plan(cluster: ClusterView, target: Standby, *, timeout: float) -> Plan:
    """Promote one standby alone: it leaves the cluster (the primary and the other standbys
    carry on); its slot on the primary is dropped."""
    old = cluster.primary

    def record(report: Report) -> StepResult:
        with contextlib.suppress(PgStreamError):  # its slot would hold WAL forever
            if (slot := old.slot(cluster.slot_for(target))) is not None and not slot.active:
                old.drop_slot(slot.name)
        cluster.apply(RoleChange(
            "promote", f"{target.name} promoted on timeline {target.timeline()} and "
                       f"detached from the cluster (its primary {old.name} and other "
                       "standbys unchanged; its slot dropped)", detached=(target.name,)))
        return StepResult(True, f"{target.name} accepts writes, apart from this cluster")

    return Plan(f"promote {target.name}", [
        promote_step(target, timeout),
        Step(target.name, StepKind.RECORD, "record the new role", "", action=record,
             host=target.host.name)])
