"""How a standby follows another upstream, and how a standby is promoted: plan steps.

Following: a slot for the standby on its new upstream, the passfile entry for that address,
the recovery configuration rewritten (its own files, each setting once), then a reload where
the version applies ``primary_conninfo`` on reload (13+) or a restart before; it follows a
timeline switch (``recovery_target_timeline = 'latest'``). The slot it left on its previous
upstream is dropped once that one is reachable and the slot inactive.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    PgStreamError,
    ServerMismatch,
    WaitTimeout,
)
from pgstream.facts import arguments
from pgstream.facts.version import ServerVersion
from pgstream.hosts import binaries, controlfile
from pgstream.hosts.wait import wait_for
from pgstream.nodes import identity
from pgstream.nodes.node import Node, Standby, stream_names
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.recovery import RecoveryConfig, passfile_for, passfile_step
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries


def system_identifier(node: Node) -> str:
    """From the running server, else from its pg_control (a stopped server)."""
    if node.ping():
        return node.system_identifier()
    if node.data_dir is None:
        raise NodeUnreachable(f"{node.name} is down and pgstream does not know its data "
                              "directory")
    return controlfile.read(Path(node.data_dir), host=node.host).system_identifier


def server_version(node: Node) -> ServerVersion:
    """The version ``node`` runs: asked of the server when it answers, else read from
    the programs of its service (a stopped server); raises
    :class:`~pgstream.errors.NodeUnreachable` when it is down and has no service."""
    if node.ping():
        return node.version
    if node.service is None:
        raise NodeUnreachable(f"{node.name} is down and pgstream does not control its service")
    return binaries.probe(node.service.bindir, host=node.host).version


def check_same_system(node: Node, upstream: Node) -> None:
    """Refuse (:class:`~pgstream.errors.ServerMismatch`) to stream ``node`` from an
    ``upstream`` of another system identifier: they are not copies of the same cluster."""
    mine, theirs = system_identifier(node), system_identifier(upstream)
    if mine != theirs:
        raise ServerMismatch(
            f"{node.name} (system {mine}) cannot stream from {upstream.name} (system "
            f"{theirs}): they are not copies of the same cluster", node=upstream.name,
            field="system_identifier", declared=mine, reported=theirs)


def promote_step(standby: Standby, timeout: float, *, port: int | None = None,
                 system_identifier: str | None = None, guard: Callable[[], str] | None = None,
                 on_request: Callable[[], None] | None = None, after_request: str = "",
                 known: identity.ServerReport | None = None) -> Step:
    """Promote ``standby``, after checking once more (one query) that it is the declared
    server, still in recovery, of ``system_identifier``, on ``port``.

    ``guard`` runs first and raises if promoting is no longer safe (an old primary that is
    not proven down); what it returns goes into the step's message. ``on_request`` is called
    just before the promotion is requested: from then on the standby may become a primary
    whatever happens next, so nothing may start another primary beside it.
    ``after_request`` is added to the error when the promotion was requested but not seen
    to finish (it may still). ``known``: the standby's report from the plan's build (its
    path resolutions are reused).
    """
    method = standby.promote_command()

    def action(report: Report) -> StepResult:
        proof = guard() if guard is not None else ""
        identity.verify(standby, role="standby", port=port,
                        system_identifier=system_identifier, known=known)
        if on_request is not None:
            on_request()
        try:
            timeline = standby.promote(timeout=timeout)
        except WaitTimeout as exc:
            raise WaitTimeout(f"{exc}: the promotion of {standby.name} was requested and may "
                              f"still complete{'; ' + after_request if after_request else ''}"
                              ) from exc
        done = f"{standby.name} accepts writes on timeline {timeline}"
        return StepResult(True, f"{done} ({proof})" if proof else done)

    return Step(standby.name, StepKind.PROMOTE, f"promote {standby.name}",
                "re-check: " + queries.shown(queries.server_identity(standby.version))
                + "  -- same server, in recovery\n" + method,
                action=action, host=standby.host.name)


def promote_alone_plan(cluster: ClusterView, target: Standby, *, timeout: float) -> Plan:
    """Promote ``target`` alone: it leaves the cluster (its slot on the primary dropped),
    after the cross-checks (it is the declared standby; the primary, if it answers, too)."""
    timeout = arguments.timeout(timeout)
    old = cluster.primary
    reports = identity.verify_all(
        [(target, "standby"), (old, "primary")],
        {n.name: cluster.node_settings[n.name] for n in (target, old)
         if n.name in cluster.node_settings}, required=[target.name])

    slot = cluster.slot_for(target)

    def drop_slot(report: Report) -> StepResult:
        with contextlib.suppress(PgStreamError):  # its slot would hold WAL forever
            if (state := old.slot(slot)) is not None and not state.active:
                old.drop_slot(state.name)
                return StepResult(True, f"dropped {slot} on {old.name}")
        return StepResult(False, f"no inactive slot {slot} on {old.name}")

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange(
            "promote", f"{target.name} promoted on timeline {target.timeline()} and "
                       f"detached from the cluster (its primary {old.name} and other "
                       "standbys unchanged; its slot dropped)", detached=(target.name,)))
        return StepResult(True, f"{target.name} accepts writes, apart from this cluster")

    return Plan(f"promote {target.name}", [
        promote_step(target, timeout, port=identity.declared_port(
            target, cluster.node_settings.get(target.name)),
            system_identifier=reports[target.name].system_identifier,
            known=reports[target.name]),
        Step(old.name, StepKind.SLOT, f"drop {target.name}'s slot on {old.name}, if inactive",
             queries.shown(queries.drop_slot(old.version, slot)), action=drop_slot,
             host=old.host.name),
        Step(target.name, StepKind.RECORD, "record the new role", "", action=record,
             host=target.host.name)])


def follow_steps(cluster: ClusterView, node: Node, upstream: Node, *, previous: Node | None,
                 timeout: float, start: bool = True, concurrent: bool = True,
                 check_system: bool = True, history: str | None = None) -> list[Step]:
    """Point ``node`` (a standby, or a stopped former primary) at ``upstream``.

    Once it streams, the new upstream is committed to the cluster (a
    :class:`~pgstream.ops.view.RoleChange`); given ``history``, that change is recorded in the
    cluster's history as a ``follow`` with this detail (None: a step of a larger operation
    that records itself)."""
    if node.name == upstream.name:
        raise InvalidInput(f"{node.name} cannot stream from itself")
    if node.data_dir is None or node.service is None:
        raise InvalidInput(f"{node.name}: pgstream needs its data_dir and service to re-point it")
    if check_system:
        check_same_system(node, upstream)
    version = server_version(node)
    data_dir, service, host = Path(node.data_dir), node.service, node.host
    address = cluster.address_of(upstream)
    auth = cluster.auth
    slot_name, app = cluster.slot_for(node), stream_names(node)[1]
    passfile, named = passfile_for(version, data_dir, node.os_user, cluster.passfile_of(node))
    recovery = RecoveryConfig.build(
        version, upstream=address, user=auth.user, application_name=app, slot=slot_name,
        passfile=passfile if named and auth.password is not None else None)
    steps: list[Step] = []

    def step(kind: StepKind, title: str, detail: str,
             action: Callable[[Report], StepResult],
             undo: Callable[[], None] | None = None) -> None:
        steps.append(Step(node.name, kind, title, detail, action=action, undo=undo,
                          host=host.name, concurrent=concurrent))

    made: list[str] = []  # "slot": this plan created it; "configured": the node points at it

    def slot(report: Report) -> StepResult:
        if upstream.slot(slot_name) is not None:
            return StepResult(False, f"slot {slot_name} exists on {upstream.name}")
        upstream.create_slot(slot_name)
        made.append("slot")
        return StepResult(True, f"created slot {slot_name} on {upstream.name}")

    def drop_unused_slot() -> None:
        # Rolled back before the node was pointed at the slot: nobody would ever use it, and
        # it would hold WAL on the upstream for good. Once configured, the node may come to
        # stream through it: kept.
        if "slot" in made and "configured" not in made and upstream.ping():
            state = upstream.slot(slot_name)
            if state is not None and not state.active:
                upstream.drop_slot(slot_name)
        made.clear()

    step(StepKind.SLOT, f"slot {slot_name} on {upstream.name}",
         queries.shown(queries.create_slot(upstream.version, slot_name))
         + f"  -- on {upstream.name}", slot, undo=drop_unused_slot)

    if auth.password is not None:
        steps.append(passfile_step(node.name, host, passfile, address=address, user=auth.user,
                                   password=auth.password, owner=node.os_user,
                                   title=f"passfile entry for {upstream.name}",
                                   concurrent=concurrent))

    def configure(report: Report) -> StepResult:
        made.append("configured")
        written = recovery.write(host, data_dir, node.os_user)
        return StepResult(True, f"now streams from {address[0]}:{address[1]} "
                                f"({', '.join(written)})")

    step(StepKind.RECOVERY_CONFIG, f"recovery configuration: stream from {upstream.name}",
         recovery.describe(), configure)

    reload = version.adapter.supports("reload_primary_conninfo")
    reload_query = queries.reload_conf()

    def apply_config(report: Report) -> StepResult:
        node.close()
        if not service.running():
            if not start:
                return StepResult(False, "not running: it reads the configuration at start")
            service.start()
            node.wait_ready(timeout)
            return StepResult(True, "started")
        if reload:
            node.execute(*reload_query)
            return StepResult(True, "reloaded: primary_conninfo applies without a restart")
        service.restart()
        node.wait_ready(timeout)
        return StepResult(True, f"restarted (PostgreSQL {version.major} applies "
                                "primary_conninfo only at start)")

    step(StepKind.RELOAD if reload else StepKind.RESTART,
         "apply it: reload (13+) or restart", queries.shown(reload_query) + "  -- or, if stopped: "
         + service.describe("start") if reload else service.describe("restart", "fast"),
         apply_config)

    def check(report: Report) -> StepResult:
        if not start and not service.running():
            return StepResult(False, "not running")
        wait_for(lambda: node.in_recovery and upstream.streams_to(app, slot_name),
                 timeout=timeout, what=f"{node.name} to stream from {upstream.name}",
                 detail=lambda: service.log_tail(8))
        cluster.apply(RoleChange("follow", history or "", record=history is not None,
                                 upstreams=((node.name, upstream.name),)))
        return StepResult(True, f"streams from {upstream.name}")

    step(StepKind.CHECK, f"{node.name} streams from {upstream.name}",
         queries.shown(queries.walsender_state(app, slot_name))
         + f"  -- on {upstream.name}: streaming", check)

    if previous is not None and previous.name != upstream.name:
        old = previous

        def drop_old(report: Report) -> StepResult:
            if not old.ping():
                return StepResult(False, f"{old.name} is down: its slot {slot_name} goes "
                                         "when it rejoins")
            state = old.slot(slot_name)
            if state is None:
                return StepResult(False, f"no slot {slot_name} on {old.name}")
            if state.active:
                return StepResult(False, f"slot {slot_name} on {old.name} is still active")
            old.drop_slot(slot_name)
            return StepResult(True, f"dropped slot {slot_name} on {old.name}")

        step(StepKind.SLOT, f"drop {node.name}'s old slot on {previous.name}",
             queries.shown(queries.drop_slot(version, slot_name))
             + f"  -- on {previous.name}, if inactive", drop_old)
    return steps


def drop_stale_slots_step(node: Node, keep: set[str], names: set[str]) -> Step:
    """After a former primary rejoins: drop its inactive slots among ``names`` (the slots
    the cluster's nodes stream through), except ``keep``."""

    def action(report: Report) -> StepResult:
        dropped = []
        for state in node.slots():
            if state.name in names and state.name not in keep and not state.active:
                node.drop_slot(state.name)
                dropped.append(state.name)
        if not dropped:
            return StepResult(False, "no stale slots")
        return StepResult(True, "dropped " + ", ".join(dropped))

    version = server_version(node)
    candidates = sorted(names - keep)
    return Step(node.name, StepKind.SLOT, f"drop {node.name}'s stale slots",
                "each of these that exists and is inactive (slots of cluster nodes, left from "
                "its time as primary):\n"
                + ("\n".join(queries.shown(queries.drop_slot(version, n)) for n in candidates)
                   or "none"),
                action=action, host=node.host.name, concurrent=True)

