"""Fix plans for findings pgstream can repair, built from the same steps its operations use.

``slot_missing``: create the slot (setup's slot step). ``hba_missing``: append the
replication line for the address the upstream refused, then reload (setup's hba and reload
steps). ``role_missing`` / ``auth_failed``: the replication role with LOGIN REPLICATION and
the cluster's password (setup's role step), and for ``auth_failed`` the standby's passfile
rewritten. ``slot_inactive_retaining``: drop the inactive slot (slot hygiene's drop plan).
``replay_paused``: resume replay. ``wal_removed`` / ``slot_wal_lost``: re-clone the standby
(a lost slot dropped and created anew, then the clone steps with ``replace=True``).
``timeline_diverged``: stop the standby, then the steps of the rejoin plan with ``pg_rewind``
(a re-clone where no ``pg_rewind`` of its major is found). That plan reads the stopped node's
``pg_control``: it is built when the fix is, for the node as it will be once stopped, and its
steps are the fix's; once the node is stopped it is built again and runs only if its steps are
the ones shown (else refused, the node started again). Where a plan
cannot be built (no service, no password known, ...), the finding keeps its fix in words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar, cast

import attrs

from pgstream.errors import (
    BinaryNotFound,
    InvalidInput,
    NodeUnreachable,
    PgStreamError,
    RejoinRefused,
)
from pgstream.facts import compat
from pgstream.hosts import binaries
from pgstream.hosts.host import LocalHost
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.check.report import Finding
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.recovery import passfile_for, passfile_step
from pgstream.ops.rejoin import rejoin_plan
from pgstream.ops.setup import hba_step, reload_step, role_step, slot_step
from pgstream.ops.slots import drop_inactive_slots_plan
from pgstream.ops.view import ClusterView
from pgstream.render import queries
from pgstream.render.config import ConfigRenderer

_T = TypeVar("_T", bound=attrs.AttrsInstance)
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


def _stopped(node: Node) -> Node:
    """A copy of ``node`` as it will be once stopped: nothing answers (``ping`` False, no
    connection opens) and its service does not run; everything else (host, data directory,
    service commands) is the node's own. Only to build the plan that node will get."""
    def down(_self: object, *_args: object, **_kw: object) -> NoReturn:
        raise NodeUnreachable(f"{node.name} is shown as stopped: not asked")

    service = node.service
    if service is not None:
        service = _copy_as(service, running=lambda _self: False)
    copy = _copy_as(node, ping=lambda _self: False, connect=down)
    copy.service = service
    return copy


def _copy_as(obj: _T, **methods: Callable[..., object]) -> _T:
    """A copy of the attrs instance ``obj`` (its init fields), ``methods`` replaced."""
    cls = type(obj)
    kind = type(f"Stopped{cls.__name__}", (cls,), dict(methods))
    return cast(_T, kind(**{field.alias: getattr(obj, field.name)
                            for field in attrs.fields(cls) if field.init}))


def _shown(step: Step, *, detail: bool = True) -> tuple[str, str, str, str, str]:
    return (step.node, step.host, step.kind.value, step.title, step.detail if detail else "")


def _rejoin_plan(view: ClusterView, finding: Finding) -> Plan | None:
    node = view.node(finding.node)
    service = node.service
    if service is None or node.data_dir is None:
        return None
    if not has_rewind(node):  # without pg_rewind of its major: a new clone
        return _reclone_plan(view, attrs.evolve(finding, upstream=finding.upstream
                                                or view.primary.name))
    # The rejoin plan reads the stopped node's pg_control: built now as for the node stopped
    # (its steps are shown), built again once it is stopped, and run only if it is the same.
    shown = rejoin_plan(view, _stopped(node), rewind=True, stopping=True).steps
    decision = 0  # its first step: the decision, from pg_control (read once stopped)
    primary = view.primary.name
    built: list[Plan] = []
    stopped: list[bool] = []

    def stop(report: Report) -> StepResult:
        built.clear()  # this apply's own (a plan may be applied again)
        stopped.clear()
        if service.running() or node.ping():
            node.close()
            stopped.append(True)
            service.stop("fast")
        plan = rejoin_plan(view, node, rewind=True)
        if (differs := _difference(shown, plan.steps, decision)) is not None:
            raise RejoinRefused(
                f"{node.name}: the rejoin plan built now that it is stopped is not the one "
                f"shown ({differs}): nothing rejoined"
                + (", it is started again" if stopped else "") + "; check() anew for a plan")
        built.append(plan)
        return StepResult(True, f"stopped {node.name}" if stopped else
                          f"{node.name} was stopped already")

    def start_again() -> None:  # the rejoin plan refused or failed to build: as it was
        if stopped and not built:
            stopped.clear()
            service.start()
            node.wait_ready()

    steps = [Step(node.name, StepKind.STOP, f"stop {node.name}",
                  service.describe("stop", "fast") + "\n"
                  f"then cluster.rejoin_plan({node.name!r}, rewind=True), built again now that "
                  "it is stopped (it reads pg_control), must be the steps below; else refused, "
                  "nothing rejoined, and started again:\n"
                  + service.describe("start") + "  -- only if refused",
                  action=stop, cleanup=start_again, host=node.host.name)]
    for number, step in enumerate(shown):
        detail = step.detail
        if number == decision:
            detail = (f"read once {node.name} is stopped: its pg_control (state, checkpoint, "
                      f"timeline) and {primary}'s branch point\ndecision: pg_rewind (its "
                      "timeline diverged)")
        steps.append(_delegated(step, detail, built, number, tell=number == decision))
    return Plan(f"rejoin {node.name} to {primary} with pg_rewind", steps)


def _delegated(step: Step, detail: str, built: list[Plan], number: int, *,
               tell: bool) -> Step:
    """``step`` as shown (with ``detail``), running step ``number`` of the plan built at
    apply time (its action, undo and cleanup); ``tell``: its detail is reported first."""
    def action(report: Report) -> StepResult | None:
        real = built[0].steps[number]
        if tell:  # what it read, now that the node is stopped
            for line in real.detail.splitlines():
                report(line, None)
        return real.action(report)

    def undo() -> None:
        if (real := built[0].steps[number].undo) is not None:
            real()

    def cleanup() -> None:
        if (real := built[0].steps[number].cleanup) is not None:
            real()

    return attrs.evolve(step, detail=detail, action=action,
                        undo=undo if step.undo is not None else None,
                        cleanup=cleanup if step.cleanup is not None else None)


def _difference(shown: Sequence[Step], real: Sequence[Step], decision: int) -> str | None:
    """How the plan built at apply time (``real``) differs from the one ``shown`` (None: it
    does not): node, host, kind, title and detail of each step, but the ``decision`` step's
    detail (what it read in pg_control)."""
    for number, (one, other) in enumerate(zip(shown, real, strict=False)):
        if _shown(one, detail=number != decision) != _shown(other, detail=number != decision):
            return f"step {number + 2}, {other.title!r}, differs"  # as the fix numbers it
    if len(real) != len(shown):
        return f"{len(real)} steps instead of {len(shown)}"
    return None


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
