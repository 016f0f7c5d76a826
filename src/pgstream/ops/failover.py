"""How an unplanned failover is done: the caller decides, pgstream does it (no daemon).

The primary must be dead: no connection and, where pgstream controls it, no postmaster. A
live primary is refused (use a switchover), unless ``force=True``, which first stops it at
once when pgstream controls its service (fencing), so two primaries never run together. The
standby that has received the most WAL is promoted (unless one is named), then every other
standby follows it. The old primary is kept in ``cluster.failed`` until it rejoins.
"""

from __future__ import annotations

import attrs

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    PgStreamError,
    PrimaryStillAlive,
    QueryError,
)
from pgstream.facts.lsn import Lsn
from pgstream.nodes.node import Standby
from pgstream.ops.follow import follow_steps, promote_step
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries


@attrs.frozen
class Candidate:
    name: str
    received: Lsn | None
    replayed: Lsn | None

    def __str__(self) -> str:
        return f"{self.name}: received {self.received}, replayed {self.replayed}"


def candidates(cluster: ClusterView) -> list[Candidate]:
    """Reachable standbys of the (dead) primary, most WAL first."""
    found = []
    for standby in cluster.standbys:
        if (standby.upstream or cluster.primary.name) != cluster.primary.name:
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
    old = cluster.primary
    alive = old.ping() or (old.service is not None and old.service.running())
    if alive and not force:
        raise PrimaryStillAlive(
            f"{old.name} is still alive (it accepts connections or its postmaster runs): "
            "refusing to fail over, as two primaries would diverge. Use switchover() for a "
            "planned change, or failover(force=True) to stop it first")
    if alive and old.service is None:
        raise PrimaryStillAlive(f"{old.name} is alive and pgstream cannot stop it (no "
                                "service): stop or fence it yourself, then fail over")
    ranked = candidates(cluster)
    if not ranked:
        raise PgStreamError("no reachable standby of the primary can be promoted")
    if candidate is None:
        target = cluster.standby(ranked[0].name)
    else:
        target = cluster.standby(candidate) if isinstance(candidate, str) else candidate
        if target.name not in {c.name for c in ranked}:
            raise InvalidInput(f"{target.name} is not a reachable standby of {old.name}")
    steps: list[Step] = []
    if alive:
        service = old.service
        assert service is not None

        def fence(report: Report) -> StepResult:
            old.close()
            service.stop("immediate")
            return StepResult(True, f"stopped {old.name} (immediate)")

        steps.append(Step(old.name, StepKind.STOP, f"fence {old.name}: stop it at once",
                          "pg_ctl stop -m immediate  (force=True)", action=fence,
                          host=old.host.name))

    def choose(report: Report) -> StepResult:
        return StepResult(False, f"promoting {target.name}")

    steps.append(Step(target.name, StepKind.CHECK, f"choose {target.name} (most WAL received)",
                      "\n".join(str(c) for c in ranked), action=choose, host=target.host.name))
    steps.append(promote_step(target, timeout))
    followers = [s for s in cluster.standbys
                 if s is not target and (s.upstream or old.name) == old.name]

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
