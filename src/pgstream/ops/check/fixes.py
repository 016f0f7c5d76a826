"""Fix plans for findings pgstream can repair, built from the same steps its operations use.

``slot_missing``: create the slot (setup's slot step). ``hba_missing``: append the
replication line for the address the upstream refused, then reload (setup's hba and reload
steps). ``role_missing`` / ``auth_failed``: the replication role with LOGIN REPLICATION and
the cluster's password (setup's role step), and for ``auth_failed`` the standby's passfile
rewritten. ``slot_inactive_retaining``: drop the inactive slot (slot hygiene's drop plan).
``replay_paused``: resume replay. ``wal_removed`` / ``slot_wal_lost``: re-clone the standby
(a lost slot dropped and created anew, then the clone steps with ``replace=True``).
``timeline_diverged``: stop the standby, then the rejoin plan with ``pg_rewind`` (a re-clone
where no ``pg_rewind`` of its major is found). Where a plan
cannot be built (no service, no password known, ...), the finding keeps its fix in words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from pgstream.errors import BinaryNotFound, InvalidInput, PgStreamError
from pgstream.facts import compat
from pgstream.hosts import binaries
from pgstream.hosts.host import LocalHost
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.check.report import Finding
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.plan import Plan, ProgressEvent, Report, Step, StepKind, StepResult
from pgstream.ops.recovery import passfile_for, passfile_step
from pgstream.ops.rejoin import rejoin_plan
from pgstream.ops.setup import hba_step, reload_step, role_step, slot_step
from pgstream.ops.slots import drop_inactive_slots_plan
from pgstream.ops.view import ClusterView
from pgstream.render import queries
from pgstream.render.config import ConfigRenderer

_FROM_HOST = re.compile(r"from host \"(?P<host>[^\"]+)\"")


def _nodes(view: ClusterView, finding: Finding) -> tuple[Node, Node | None]:
    node = view.node(finding.node)
    upstream = view.node(finding.upstream) if finding.upstream else None
    return node, upstream


def _slot_plan(view: ClusterView, finding: Finding) -> Plan | None:
    _node, upstream = _nodes(view, finding)
    if upstream is None or finding.slot is None:
        return None
    return Plan(f"create slot {finding.slot} on {upstream.name}",
                [slot_step(upstream, finding.slot)])


def _hba_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node, upstream = _nodes(view, finding)
    if not isinstance(upstream, Primary):
        return None
    match = _FROM_HOST.search(finding.evidence)
    address = match["host"] if match else view.address_of(node)[0]
    renderer = ConfigRenderer(upstream.version)
    line = renderer.hba_line(view.auth.user, address,
                             view.auth.method or renderer.default_auth_method())
    changed: set[str] = set()
    return Plan(f"allow {node.name}'s replication connections on {upstream.name}",
                [hba_step(upstream, [line], changed), reload_step(upstream, changed)])


def _passfile_step(view: ClusterView, standby: Node, upstream: Node) -> Step | None:
    password = view.auth.password
    if password is None or standby.data_dir is None:
        return None
    path, _named = passfile_for(standby.version, standby.data_dir, standby.os_user,
                                view.passfile_of(standby))
    address = view.address_of(upstream)
    user = view.auth.user

    return passfile_step(standby.name, standby.host, path, address=address, user=user,
                         password=password, owner=standby.os_user)


def _role_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node, upstream = _nodes(view, finding)
    primary = view.primary
    steps = [role_step(primary, view.auth)]
    if finding.code == "auth_failed" and upstream is not None:
        extra = _passfile_step(view, node, upstream)
        steps += [extra] if extra is not None else []
    return Plan(f"replication role {view.auth.user} for {node.name}", steps)


def _drop_slot_plan(view: ClusterView, finding: Finding) -> Plan | None:
    if finding.slot is None:
        return None
    return drop_inactive_slots_plan(view.node(finding.node), [finding.slot])


def _resume_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node = view.node(finding.node)
    built = queries.resume_replay(node.version)

    def action(report: Report) -> StepResult:
        node.query(*built)
        return StepResult(True, "replay resumed")

    return Plan(f"resume WAL replay on {node.name}", [
        Step(node.name, StepKind.SQL, "resume WAL replay", queries.shown(built),
             action=action, host=node.host.name)])


def _reclone_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node, upstream = _nodes(view, finding)
    if not isinstance(node, Standby) or node.service is None or upstream is None:
        return None
    slot = view.slot_for(node)
    steps: list[Step] = []
    state = upstream.slot(slot)
    if state is not None and (state.wal_status == "lost" or state.restart_lsn is None):
        steps += drop_inactive_slots_plan(upstream, [slot]).steps
    steps.append(slot_step(upstream, slot))
    server = binaries.probe(node.service.bindir, host=node.host)
    client = binaries.find_client("pg_basebackup", upstream.version, prefer=server)
    host, port = view.address_of(upstream)
    steps += standby_clone_steps(
        upstream, node, auth=view.auth, primary_host=host, primary_port=port, slot=slot,
        server=server, client=client, passfile=view.passfile_of(node), replace=True,
        node_settings=view.node_settings.get(node.name))
    return Plan(f"re-clone {node.name} from {upstream.name}", steps)


def has_rewind(node: Node) -> bool:
    """Is there a ``pg_rewind`` of ``node``'s own major where it runs (its installation, or
    one pgstream finds on this machine for a local node)?"""
    if node.service is None:
        return False
    tool = binaries.probe(node.service.bindir, host=node.host)
    if tool is not None and tool.has("pg_rewind"):
        return compat.rewind_fits(tool.version, node.version)
    if not isinstance(node.host, LocalHost):
        return False
    try:
        found = binaries.find_client("pg_rewind", node.version)
    except BinaryNotFound:
        return False
    return compat.rewind_fits(found.version, node.version)


def _rejoin_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node = view.node(finding.node)
    service = node.service
    if service is None or node.data_dir is None:
        return None
    if not has_rewind(node):  # without pg_rewind of its major: a new clone
        return _reclone_plan(view, attrs.evolve(finding, upstream=finding.upstream
                                                or view.primary.name))

    def stop(report: Report) -> StepResult:
        node.close()
        service.stop("fast")
        return StepResult(True, f"stopped {node.name}")

    def rejoin(report: Report) -> StepResult:
        def forward(event: ProgressEvent) -> None:
            if event.event in ("done", "failed"):
                report(f"{event.step.title}: {event.message}", None)

        done = rejoin_plan(view, node, rewind=True).apply(forward)
        return StepResult(True, f"rejoined {view.primary.name} ({len(done.applied)} steps)")

    return Plan(f"rejoin {node.name} to {view.primary.name} with pg_rewind", [
        Step(node.name, StepKind.STOP, f"stop {node.name}", service.describe("stop", "fast"),
             action=stop, host=node.host.name),
        Step(node.name, StepKind.REWIND, f"rejoin {node.name} with pg_rewind",
             f"cluster.rejoin_plan({node.name!r}, rewind=True), built once {node.name} is "
             "stopped (it reads its pg_control): pg_rewind from "
             f"{view.primary.name}, recovery configuration, start, check it streams",
             action=rejoin, host=node.host.name)])


FIXES: dict[str, Callable[[ClusterView, Finding], Plan | None]] = {
    "slot_missing": _slot_plan,
    "hba_missing": _hba_plan,
    "role_missing": _role_plan,
    "auth_failed": _role_plan,
    "slot_inactive_retaining": _drop_slot_plan,
    "replay_paused": _resume_plan,
    "wal_removed": _reclone_plan,
    "slot_wal_lost": lambda view, finding: (_reclone_plan(view, finding)
                                            if finding.upstream else None),
    "timeline_diverged": _rejoin_plan,
}


def with_plan(view: ClusterView, finding: Finding) -> Finding:
    """``finding`` with its fix plan, when pgstream can build one (never raises)."""
    build = FIXES.get(finding.code)
    if build is None:
        return finding
    try:
        plan = build(view, finding)
    except (PgStreamError, InvalidInput, KeyError):
        return finding
    return finding if plan is None else attrs.evolve(finding, plan=plan)
