"""Plans over a whole cluster: set it up (primary, then every standby), add a standby (a
sandbox's too), re-point one, make standbys synchronous, and the cross-checks of the nodes
they touch. :class:`pgstream.Cluster` delegates to these.

A standby streams through its own slot and ``application_name`` (``Standby.slot_name`` and
``Standby.application_name``, by default its name): the plans use those, never the name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput
from pgstream.facts import arguments, identifiers
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.nodes import identity
from pgstream.nodes.node import Node, Standby
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.follow import follow_steps
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.sandbox.servers import Sandbox
from pgstream.ops.senders import SenderBudget, SlotBudget
from pgstream.ops.setup import (
    ReplicationAuth,
    hba_step,
    primary_setup_steps,
    reload_step,
    slot_step,
)
from pgstream.ops.sync import synchronous_plan as sync_plan
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render.config import ConfigRenderer
from pgstream.render.shapes import upstream_or_primary
from pgstream.render.sync_spec import SyncSpec


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


def role_of(cluster: ClusterView, node: Node) -> identity.Role | None:
    """What ``cluster`` says ``node`` is (None: not one of its nodes)."""
    if node is cluster.primary:
        return "primary"
    return "standby" if any(node is s for s in cluster.standbys) else None


def settings_of(cluster: ClusterView, *nodes: Node) -> dict[str, dict[str, str]]:
    """``node_settings`` of those of ``nodes`` that are the cluster's own node objects (a node
    of another cluster may carry the same name)."""
    mine = [*cluster.nodes, *cluster.failed]
    return {n.name: cluster.node_settings[n.name] for n in nodes
            if any(n is m for m in mine) and n.name in cluster.node_settings}


def verify(cluster: ClusterView, standby: Node, upstream: Node) -> None:
    """``standby`` and its (future) ``upstream`` are what the cluster says, on their servers
    (data directory, port, role, one system): :class:`~pgstream.errors.ServerMismatch`."""
    identity.verify_all([(standby, role_of(cluster, standby)),
                         (upstream, role_of(cluster, upstream))],
                        settings_of(cluster, standby, upstream), required=[upstream.name])


def setup_plan(cluster: ClusterView, *, auth: ReplicationAuth, settings: dict[str, str] | None,
               hba_addresses: Sequence[str], replace: bool, server: Installation | None,
               client: Installation | None, sync: bool, timeout: float) -> Plan:
    """The runbook: prepare the primary (seed steps 1-5), clone each standby (6-11).

    Checked first: the timeout, and that no two standbys share a data directory (they would
    be cloned into it at once)."""
    timeout = arguments.timeout(timeout)
    identity.refuse_shared_places(cluster.standbys, {})
    primary = cluster.primary
    version = primary.version
    wanted = settings or ConfigRenderer(version).primary_settings()
    host, port = cluster.address_of(primary)
    steps = primary_setup_steps(primary, auth=auth, settings=wanted,
                                hba_addresses=hba_addresses,
                                slots=[cluster.slot_for(s) for s in cluster.standbys])
    senders = SenderBudget(primary)  # the clones share the primary's walsenders
    for standby in cluster.standbys:
        if standby.service is None or standby.data_dir is None:
            raise InvalidInput(f"{standby.name} needs data_dir and service to be cloned")
        srv = server or binaries.probe(standby.service.bindir, host=standby.host)
        cli = client or binaries.find_client("pg_basebackup", version, prefer=srv)
        steps += standby_clone_steps(
            primary, standby, auth=auth, primary_host=host, primary_port=port,
            slot=cluster.slot_for(standby), server=srv, client=cli,
            passfile=cluster.passfile_of(standby), replace=replace,
            node_settings=cluster.node_settings.get(standby.name), sync=sync, timeout=timeout,
            senders=senders)
    senders.check(wanted.get("max_wal_senders"))
    slots = SlotBudget(primary)  # the standbys' slots, created by the primary's steps
    slots.plan_slots(cluster.slot_for(s) for s in cluster.standbys)
    slots.check(wanted.get("max_replication_slots"))
    names = ", ".join(s.name for s in cluster.standbys) or "no standbys"
    return Plan(f"streaming replication {primary.name} -> {names} "
                f"(PostgreSQL {version.major})", steps)


def add_standby_plan(cluster: ClusterView, standby: Standby, *, upstream: Node | str | None,
                     replace: bool, sync: bool, timeout: float = DEFAULT_TIMEOUT,
                     hba_address: str | None = None,
                     node_settings: Mapping[str, str] | None = None,
                     address: tuple[str, int] | None = None) -> Plan:
    """Clone one more standby from ``upstream`` (default the primary; a standby gives a
    cascading standby, with its slot on that standby). ``hba_address``: also allow
    replication from that address on the upstream, with a line marked for this standby.

    ``node_settings`` (default the cluster's for that name) and ``address`` (where others
    will reach it) are recorded in the cluster once the standby streams. Everything is
    checked before anything changes: the name and slot are new, its data directory and
    address are not another node's, the upstream is the declared live server."""
    timeout = arguments.timeout(timeout)
    replace = arguments.flag(replace, "replace")
    if standby.name in {n.name for n in [*cluster.nodes, *cluster.failed]}:
        raise InvalidInput(f"a node named {standby.name!r} exists already")
    source = cluster.primary if upstream is None else (
        cluster.node(upstream) if isinstance(upstream, str) else upstream)
    taken = {cluster.slot_for(s) for s in cluster.standbys
             if upstream_or_primary(s, cluster.primary.name) == source.name}
    if cluster.slot_for(standby) in taken:
        raise InvalidInput(f"slot {cluster.slot_for(standby)!r} on {source.name} is another "
                           "standby's: give this one its own slot_name")
    if standby.service is None:
        raise InvalidInput(f"{standby.name} needs a service to be cloned")
    refuse_missing_password(cluster, standby, source)
    identity.refuse_shared_places([*cluster.nodes, *cluster.failed, standby], {
        **{n.name: cluster.address_of(n) for n in cluster.nodes if _has_address(cluster, n)},
        **({standby.name: address} if address else {})})
    own = dict(node_settings) if node_settings is not None else cluster.node_settings.get(
        standby.name)
    identity.verify_all([(cluster.primary, "primary"), (source, role_of(cluster, source))],
                        settings_of(cluster, cluster.primary, source), required=[source.name])
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
        steps.append(reload_step(source, changed))
    budget = SlotBudget(source)  # the new standby's slot must fit beside the others
    budget.plan_slots([slot])
    budget.check()
    steps.append(slot_step(source, slot))
    steps += standby_clone_steps(
        source, standby, auth=cluster.auth, primary_host=host, primary_port=port, slot=slot,
        server=server, client=client, passfile=cluster.passfile_of(standby), replace=replace,
        node_settings=own, sync=sync, timeout=timeout)

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange(
            "add standby", f"{standby.name} streams from {source.name}", added=(standby,),
            upstreams=((standby.name, source.name),),
            node_settings=((standby.name, own),) if own is not None else (),
            addresses=((standby.name, address),) if address is not None else ()))
        return StepResult(True, f"{standby.name} streams from {source.name}")

    steps.append(Step(standby.name, StepKind.RECORD, "record the new standby", "",
                      action=record, host=standby.host.name))
    return Plan(f"add {standby.name} streaming from {source.name}", steps)


def password_evidence(cluster: ClusterView) -> str | None:
    """Why a new standby would need the replication password, when the cluster's standbys
    show that the role authenticates with one: a standby whose ``primary_conninfo`` held a
    password (as discovery found it) or that reads it from a passfile. None: no sign of one.
    Names the standby and the passfile, never a password."""
    discovery = getattr(cluster, "discovery", None)
    for node in cluster.standbys:
        facts = None
        if discovery is not None:
            try:
                facts = discovery.node(node.name)
            except KeyError:
                facts = None
        if facts is not None and facts.primary_conninfo_had_password:
            return f"{node.name}'s primary_conninfo holds one"
        passfile = cluster.passfile_of(node)
        if passfile is not None:
            return f"{node.name} reads it from the passfile {passfile}"
    return None


def refuse_missing_password(cluster: ClusterView, standby: Node, source: Node) -> None:
    """Refuse (:class:`~pgstream.errors.InvalidInput`, while the plan is built) a clone that
    could not authenticate: the cluster was given no replication password while its standbys
    connect with one (:func:`password_evidence`). Without this, ``pg_basebackup`` would fail
    after the new slot was made. A topology file whose ``password_env`` is unset, or whose
    passfile lacks the role, is refused earlier, when it is read."""
    if cluster.auth.password is not None:
        return
    evidence = password_evidence(cluster)
    if evidence is None:
        return
    raise InvalidInput(
        f"{standby.name} would connect to {source.name} as {cluster.auth.user} with a "
        f"password ({evidence}), but this cluster has no replication password: name where it "
        "comes from in the topology file's [replication] table (password_env = \"VAR\" or "
        "passfile = \"FILE\"; pgstream discover --password-env VAR), or give "
        "ReplicationAuth(password=...); nothing was changed")


def sandbox_standby_plan(cluster: ClusterView, box: Sandbox | None, name: str, *,
                         upstream: Node | str | None, timeout: float) -> tuple[Standby, Plan]:
    """A new sandbox standby named ``name`` and the plan that clones and starts it from
    ``upstream`` (default the primary; see :func:`add_standby_plan`). The name, upstream and
    timeout are checked first: a refused call (:class:`~pgstream.errors.InvalidInput`)
    changes nothing. ``box`` None: the cluster is no sandbox, which is refused too."""
    if box is None:
        raise InvalidInput("add_standby(name) makes local sandbox nodes; for existing "
                           "servers build a Standby and use add_standby_plan()")
    name = identifiers.node_name(name)
    if name in {n.name for n in [*cluster.nodes, *cluster.failed]}:
        raise InvalidInput(f"a node named {name!r} exists already")
    arguments.timeout(timeout)
    if isinstance(upstream, str):
        cluster.node(upstream)
    node, own = box.standby_node(name)
    return node, add_standby_plan(cluster, node, upstream=upstream, replace=False, sync=False,
                                  timeout=timeout, node_settings=own,
                                  address=("127.0.0.1", conninfo_port(node)))


def follow_plan(cluster: ClusterView, standby: Standby | str, upstream: Node | str, *,
                timeout: float = DEFAULT_TIMEOUT) -> Plan:
    """Re-point ``standby`` at ``upstream`` (the primary or another standby), after checking
    both against their servers (:func:`verify`); the steps are
    :func:`pgstream.ops.follow.follow_steps`. The upstream it leaves, when it is one of the
    cluster's nodes, is where the standby's slot is dropped."""
    timeout = arguments.timeout(timeout)
    node = cluster.standby(standby) if isinstance(standby, str) else standby
    target = cluster.node(upstream) if isinstance(upstream, str) else upstream
    verify(cluster, node, target)
    names = {n.name for n in cluster.nodes}
    if node.upstream not in (None, target.name) and node.upstream in names:
        previous: Node | None = cluster.node(node.upstream)
    else:
        previous = cluster.primary if node.upstream is None and \
            target is not cluster.primary else None
    return Plan(f"{node.name} follows {target.name}", follow_steps(
        cluster, node, target, previous=previous, timeout=timeout, concurrent=False,
        history=f"{node.name} streams from {target.name}"))


def synchronous_plan(cluster: ClusterView, spec: SyncSpec, *,
                     synchronous_commit: str | None = None,
                     wait_for: Mapping[str, str] | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> Plan:
    """:func:`pgstream.ops.sync.synchronous_plan` on the cluster's primary, for the standbys
    that stream from it directly (cascading ones cannot be synchronous). A plan that changed
    something records it in the cluster's history, once its last step is done."""
    return sync_plan(cluster.primary, spec, synchronous_commit=synchronous_commit,
                     wait_for=wait_for, timeout=arguments.timeout(timeout),
                     standbys=[s.name for s in cluster.standbys if s.upstream is None],
                     record=cluster.apply)



def _has_address(cluster: ClusterView, node: Node) -> bool:
    try:
        cluster.address_of(node)
    except InvalidInput:
        return False  # a socket conninfo and no address: nothing to compare
    return True
