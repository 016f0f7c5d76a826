"""How an unplanned failover is done: the caller decides, pgstream does it (no daemon).

The primary must be dead: no connection and, where pgstream controls it, no postmaster. A
live primary is refused (use a switchover), unless ``force=True``, which first stops it at
once when pgstream controls its service (fencing), so two primaries never run together. The
fence is proven (:mod:`pgstream.nodes.fence`): a live primary is first cross-checked against
its declaration (data directory, port, role), and after the stop its postmaster must be gone
and its conninfo reach no writable server, else ``PrimaryStillAlive`` and nothing promoted.
Just before the promotion the old primary is checked once more (one connection attempt). The
standby that has received the most WAL is promoted (unless one is named), then every other
standby follows it, through a slot on it: when the plan is built, those slots must fit in its
``max_replication_slots`` beside the slots it has, else ``InvalidInput`` and nothing changed.
The old primary is kept in ``cluster.failed`` until it rejoins.
"""

from __future__ import annotations

import attrs

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    PrimaryStillAlive,
    QueryError,
    Refused,
    ServerStateError,
)
from pgstream.facts import arguments
from pgstream.facts.lsn import Lsn
from pgstream.nodes import fence, identity
from pgstream.nodes.identity import ServerReport
from pgstream.nodes.node import Standby
from pgstream.ops.follow import follow_steps, promote_step
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.senders import SlotBudget
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries
from pgstream.render.shapes import upstream_or_primary


@attrs.frozen
class Candidate:
    """A standby that could become the new primary: how far it has received and replayed
    WAL (None: it cannot tell), as :func:`candidates` ranks them."""
    name: str
    received: Lsn | None
    replayed: Lsn | None

    def __str__(self) -> str:
        return f"{self.name}: received {self.received}, replayed {self.replayed}"


def candidates(cluster: ClusterView) -> list[Candidate]:
    """Reachable standbys of the (dead) primary, most WAL first."""
    found = []
    for standby in cluster.standbys:
        if upstream_or_primary(standby, cluster.primary.name) != cluster.primary.name:
            continue
        try:
            received, replayed, _ts, recovering = standby.query(
                *queries.standby_lsns(standby.version))[0]
        except (NodeUnreachable, QueryError):
            continue
        if recovering:
            found.append(Candidate(standby.name, Lsn.maybe(received), Lsn.maybe(replayed)))
    return sorted(found, key=lambda c: (-(c.received or Lsn(0)).value,
                                        -(c.replayed or Lsn(0)).value, c.name))


def failover_plan(cluster: ClusterView, candidate: Standby | str | None = None, *,
                  force: bool = False, timeout: float = 60.0) -> Plan:
    """An unplanned failover; raises before anything changes when an argument is bad, a
    reachable node is not the declared server (``ServerMismatch``) or the primary lives and
    ``force`` is not given or cannot fence it (``PrimaryStillAlive``)."""
    timeout = arguments.timeout(timeout)
    force = arguments.flag(force, "force")
    old = cluster.primary
    port = identity.declared_port(old, cluster.node_settings.get(old.name))
    seen: ServerReport | None = None
    try:  # a live primary must be the declared one: fencing another server proves nothing
        seen = identity.verify(old, role="primary", port=port)
    except NodeUnreachable:
        seen = None
    alive = seen is not None or (old.service is not None and old.service.running())
    if alive and not force:
        raise PrimaryStillAlive(
            f"{old.name} is still alive (it accepts connections or its postmaster runs): "
            "refusing to fail over, as two primaries would diverge. Use switchover() for a "
            "planned change, or failover(force=True) to stop it first")
    if alive and old.service is None:
        raise PrimaryStillAlive(f"{old.name} is alive and pgstream cannot stop it (no "
                                "service): stop or fence it yourself, then fail over")
    direct = [s for s in cluster.standbys if upstream_or_primary(s, old.name) == old.name]
    # A direct standby's role is read, not assumed: one may have been promoted already (a
    # promotion that outlived an earlier failover's timeout).
    reports = identity.verify_all(
        [(s, None if s in direct else "standby") for s in cluster.standbys],
        cluster.node_settings,
        system_identifier=seen.system_identifier if seen is not None else None)
    writable = [s for s in direct if s.name in reports and not reports[s.name].in_recovery]
    if len(writable) > 1:
        raise PrimaryStillAlive(
            f"{', '.join(s.name for s in writable)} all accept writes: two primaries exist "
            "already. pgstream will not choose between them: keep one, stop the others, "
            "and rejoin them")
    ranked = candidates(cluster)
    if writable:
        target = writable[0]
        if candidate is not None and (candidate if isinstance(candidate, str)
                                      else candidate.name) != target.name:
            raise PrimaryStillAlive(
                f"{target.name} accepts writes already (promoted earlier): promoting "
                f"{candidate if isinstance(candidate, str) else candidate.name} too would make "
                f"two primaries; fail over to {target.name}")
    elif not ranked:
        raise Refused("no reachable standby of the primary can be promoted")
    elif candidate is None:
        target = cluster.standby(ranked[0].name)
    else:
        target = cluster.standby(candidate) if isinstance(candidate, str) else candidate
        if target.name not in {c.name for c in ranked}:
            raise InvalidInput(f"{target.name} is not a reachable standby of {old.name}")
    followers = [s for s in cluster.standbys
                 if s is not target and upstream_or_primary(s, old.name) == old.name]
    # Each follower streams from the new primary through a slot on it: they must fit in its
    # max_replication_slots (slots it has already are not counted twice), nothing changed else.
    slots = SlotBudget(target)
    slots.plan_slots(cluster.slot_for(s) for s in followers)
    slots.check()
    system = reports[target.name].system_identifier if target.name in reports else None
    fenced: list[int | None] = []
    steps: list[Step] = []
    if alive:
        service = old.service
        assert service is not None

        def fence_old(report: Report) -> StepResult:
            now: ServerReport | None
            try:  # the same server as at build, asked once more just before it is stopped
                now = identity.verify(old, role="primary", port=port,
                                      system_identifier=system, known=seen)
            except NodeUnreachable:
                now = seen  # gone meanwhile: prove that the pid seen at build is gone
            proof = fence.stop_proven(old, "immediate", report=now)
            fenced.append(now.postmaster_pid if now is not None else None)
            return StepResult(True, f"stopped {old.name} (immediate): {proof}")

        steps.append(Step(old.name, StepKind.STOP, f"fence {old.name}: stop it at once",
                          "re-check: " + queries.shown(queries.server_identity(old.version))
                          + "  -- the declared server\n"
                          + service.describe("stop", "immediate") + "  (force=True)\n"
                          "proof: its postmaster gone, no writable server behind its conninfo",
                          action=fence_old, host=old.host.name))

    def still_down() -> str:
        proof = fence.prove_down(old, fenced[0] if fenced else None)
        if old.service is not None and old.service.running():
            raise PrimaryStillAlive(f"{old.name}'s postmaster runs again ({old.service.pid()}):"
                                    " nothing was promoted")
        return f"{old.name}: {proof}"

    if writable:
        def carry_on(report: Report) -> StepResult:
            proof = still_down()
            if target.in_recovery:
                raise ServerStateError(f"{target.name} is in recovery again: fail over anew")
            return StepResult(False, f"{target.name} accepts writes already; {proof}")

        steps.append(Step(target.name, StepKind.CHECK,
                          f"carry on with {target.name}: promoted already",
                          queries.shown(queries.server_identity(target.version))
                          + f"  -- {target.name} is not in recovery; {old.name} stays down",
                          action=carry_on, host=target.host.name))
    else:
        def choose(report: Report) -> StepResult:
            return StepResult(False, f"promoting {target.name}")

        steps.append(Step(target.name, StepKind.CHECK,
                          f"choose {target.name} (most WAL received)",
                          "\n".join(str(c) for c in ranked), action=choose,
                          host=target.host.name))
        steps.append(promote_step(
            target, timeout, port=identity.declared_port(target, cluster.node_settings.get(
                target.name)), system_identifier=system, guard=still_down,
            known=reports.get(target.name)))

    def record(report: Report) -> StepResult:
        # Recorded at once: if a later step fails, the cluster already names the new primary.
        cluster.apply(RoleChange("failover", f"{old.name} lost; {target.name} promoted",
                                 new_primary=target.name, failed=(old.name,)))
        return StepResult(True, f"{target.name} is the primary; {old.name} awaits rejoin()")

    steps.append(Step(target.name, StepKind.RECORD, "record the new roles", "", action=record,
                      host=target.host.name))
    for other in followers:
        steps += follow_steps(cluster, other, target, previous=None, timeout=timeout)
    return Plan(f"failover {old.name} -> {target.name}", steps)
