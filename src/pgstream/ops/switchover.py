"""How a planned switchover is done without losing a committed transaction: plan steps.

Pre-checks, asked of the servers when the plan is built (one query per node: what each server
is, see :mod:`pgstream.nodes.identity`, and its replication state): every node is the server
it was declared to be, the target streams, its replay is not paused, it lags at most
``max_lag_bytes``. Then, each step re-checking what it relies on just before it acts:

1. a clean (fast) stop of the old primary, after the same pre-checks once more (one query on
   each of the two nodes), proven: its postmaster gone and no writable server behind its
   conninfo (:mod:`pgstream.nodes.fence`), else ``PrimaryStillAlive`` and nothing promoted;
2. proof that the target received everything up to the old primary's shutdown checkpoint
   (read from its ``pg_control``: the target's received LSN must pass that record);
3. promotion (the old primary proven down once more), every other standby re-pointed, and the
   old primary back as a standby of the new one (it stopped cleanly and is not ahead).

Each of those streams from the target through a slot on it: when the plan is built, they must
fit in the target's ``max_replication_slots`` beside the slots it has, else ``InvalidInput``
(:class:`~pgstream.ops.senders.SlotBudget`) and nothing changed.

If the old primary was stopped but the promotion not yet requested, rollback starts it again.
Once the promotion has been requested it is never started again as a primary: it stays
stopped, and the error says so.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    OperationFailed,
    ServerStateError,
    SwitchoverRefused,
)
from pgstream.facts import arguments
from pgstream.facts.lsn import Lsn
from pgstream.hosts import controlfile
from pgstream.hosts.wait import wait_for
from pgstream.nodes import fence, identity
from pgstream.nodes.identity import ServerReport
from pgstream.nodes.node import Node, Standby
from pgstream.ops.follow import drop_stale_slots_step, follow_steps, promote_step
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.senders import SlotBudget
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries
from pgstream.render.shapes import upstream_or_primary

DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024


@attrs.frozen
class PreCheck:
    """One pre-check of a switchover: its name, whether it passed, and what was seen
    (``str()``: ``[ok] name: detail`` or ``[FAILED] ...``)."""
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'ok' if self.ok else 'FAILED'}] {self.name}: {self.detail}"


def evaluate(primary: Node, target: Standby, mine: ServerReport | None,
             theirs: ServerReport | None, max_lag_bytes: int) -> list[PreCheck]:
    """The pre-checks, from what the primary (``mine``) and the target (``theirs``) reported
    (None: unreachable)."""
    results = [PreCheck("primary reachable", mine is not None, primary.name)]
    managed = primary.service is not None and primary.data_dir is not None
    results.append(PreCheck("primary's service controlled by pgstream", managed,
                            "needed to stop it cleanly" if managed else "no service/data_dir"))
    results.append(PreCheck("target reachable", theirs is not None, target.name))
    if mine is None or theirs is None:
        return results
    recovering = theirs.in_recovery
    results.append(PreCheck("target is a standby", recovering,
                            "in recovery" if recovering else "not in recovery"))
    results.append(PreCheck(f"target streams from {primary.name}", mine.streams_to,
                            "streaming" if mine.streams_to else "no streaming walsender for it"))
    if recovering:
        paused = bool(theirs.replay_paused)
        results.append(PreCheck("target replay not paused", not paused,
                                "paused: resume it first" if paused else "replaying"))
        replayed, current = theirs.replay_lsn, mine.current_lsn
        lag = current - replayed if replayed is not None and current is not None else None
        fine = lag is not None and lag <= max_lag_bytes
        results.append(PreCheck("target lag within bound", fine,
                                f"{lag} bytes behind (bound {max_lag_bytes})"))
    return results


def _probe(node: Node, *, streaming_to: tuple[str, str | None] | None = None,
           known: ServerReport | None = None) -> ServerReport | None:
    try:
        return identity.probe(node, streaming_to=streaming_to, known=known)
    except NodeUnreachable:
        return None


def prechecks(cluster: ClusterView, target: Standby, max_lag_bytes: int) -> list[PreCheck]:
    """The pre-checks as they stand now (two queries: one on the primary, one on the target)."""
    primary = cluster.primary
    stream = (target.application_name, target.slot_name)
    return evaluate(primary, target, _probe(primary, streaming_to=stream),
                    _probe(target), max_lag_bytes)


def switchover_plan(cluster: ClusterView, to: Standby | str, *,
                    max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                    timeout: float = 60.0) -> Plan:
    """A planned switchover to ``to``: raises ``InvalidInput`` for bad arguments,
    ``ServerMismatch`` when a node is not the declared server and ``SwitchoverRefused`` when
    a pre-check fails, all before anything changes."""
    timeout = arguments.timeout(timeout)
    max_lag_bytes = arguments.byte_count(max_lag_bytes, "max_lag_bytes")
    target = cluster.standby(to) if isinstance(to, str) else to
    if target not in cluster.standbys:
        raise InvalidInput(f"{target.name} is not a standby of this cluster")
    if upstream_or_primary(target, cluster.primary.name) != cluster.primary.name:
        raise SwitchoverRefused(f"{target.name} streams from {target.upstream}, not from the "
                                "primary: switch over to a direct standby")
    old = cluster.primary
    stream = (target.application_name, target.slot_name)
    others = [s for s in cluster.standbys
              if s is not target and upstream_or_primary(s, old.name) == old.name]
    reports = identity.verify_all(
        [(old, "primary"), (target, "standby"),
         *((s, "standby") for s in cluster.standbys if s is not target)],
        cluster.node_settings, streaming_to={old.name: stream})
    mine, theirs = reports.get(old.name), reports.get(target.name)
    results = evaluate(old, target, mine, theirs, max_lag_bytes)
    if not all(r.ok for r in results):
        raise SwitchoverRefused("switchover refused, nothing changed:\n"
                                + "\n".join(str(r) for r in results))
    # After the promotion every re-pointed standby and the old primary stream from the target
    # through a slot on it: they must fit in its max_replication_slots (nothing changed else).
    slots = SlotBudget(target)
    slots.plan_slots(cluster.slot_for(n) for n in [*others, old])
    slots.check()
    assert old.service is not None and old.data_dir is not None
    assert mine is not None and theirs is not None
    service, data_dir = old.service, Path(old.data_dir)
    system = mine.system_identifier
    ports = {n.name: identity.declared_port(n, cluster.node_settings.get(n.name))
             for n in (old, target)}
    stopped: list[int | None] = []
    shutdown: list[Lsn] = []
    requested: list[bool] = []
    steps: list[Step] = []

    def check(report: Report) -> StepResult:
        return StepResult(False, "passed when the plan was built; asked again just before "
                                 f"{old.name} is stopped")

    steps.append(Step(old.name, StepKind.CHECK, "pre-checks",
                      "\n".join(str(r) for r in results), action=check, host=old.host.name))

    def stop(report: Report) -> StepResult:
        # The state may have changed since the plan was built: the same checks, one query
        # on each node, then the stop, proven.
        now_mine = _probe(old, streaming_to=stream, known=mine)
        now_theirs = _probe(target, known=theirs)
        again = evaluate(old, target, now_mine, now_theirs, max_lag_bytes)
        if not all(r.ok for r in again):
            raise SwitchoverRefused("switchover refused just before the stop, nothing "
                                    "changed:\n" + "\n".join(str(r) for r in again))
        assert now_mine is not None and now_theirs is not None
        identity.check(old, now_mine, role="primary", port=ports[old.name],
                       system_identifier=system)
        identity.check(target, now_theirs, role="standby", port=ports[target.name],
                       system_identifier=system)
        proof = fence.stop_proven(old, "fast", report=now_mine)
        stopped.append(now_mine.postmaster_pid)
        return StepResult(True, f"{old.name} stopped cleanly ({proof})")

    def restart_if_not_promoted() -> None:
        if requested:
            raise OperationFailed(
                f"{old.name} is left stopped: the promotion of {target.name} had been "
                f"requested, and starting {old.name} again could make two primaries. Check "
                f"{target.name} (SELECT pg_is_in_recovery()); once it accepts writes, "
                f"cluster.record_roles(new_primary={target.name!r}, failed=[{old.name!r}]) "
                f"and cluster.rejoin({old.name!r})")
        # Nothing was promoted by us: the old primary comes back, even when the target died
        # meanwhile (else the cluster has no primary), unless the target answers and accepts
        # writes (someone else promoted it): then two primaries must not run.
        if target.ping() and not target.in_recovery:
            raise OperationFailed(
                f"{old.name} is left stopped: {target.name} accepts writes although pgstream "
                "did not promote it; decide which one is the primary")
        if not service.running():
            service.start()

    steps.append(Step(old.name, StepKind.STOP, f"stop {old.name} cleanly (fast shutdown)",
                      f"re-check, on {old.name} and on {target.name}: "
                      + queries.shown(queries.server_identity(old.version, stream)) + "\n"
                      + service.describe("stop", "fast")
                      + "  -- walsenders send everything, up to the shutdown checkpoint\n"
                      "proof: its postmaster gone, no writable server behind its conninfo",
                      action=stop, undo=restart_if_not_promoted, host=old.host.name))

    def received(report: Report) -> StepResult:
        control = controlfile.read(data_dir, host=old.host)
        if not control.clean_shutdown:
            raise ServerStateError(f"{old.name} did not shut down cleanly ({control.state.name})")
        shutdown.append(control.checkpoint)

        def past() -> bool:
            lsns = target.query(*queries.standby_lsns(target.version))[0]
            got = Lsn.maybe(lsns[0])
            return got is not None and got > control.checkpoint

        wait_for(past, timeout=timeout,
                 what=f"{target.name} to receive {old.name}'s shutdown checkpoint "
                      f"{control.checkpoint}")
        return StepResult(True, f"{target.name} received past the shutdown checkpoint "
                                f"{control.checkpoint}")

    steps.append(Step(target.name, StepKind.CHECK,
                      f"{target.name} received everything up to {old.name}'s shutdown "
                      "checkpoint", "pg_control of the old primary: latest checkpoint C;\n"
                      "pg_last_wal_receive_lsn() on the target > C", action=received,
                      host=target.host.name))

    def old_still_down() -> str:
        return fence.prove_down(old, stopped[0] if stopped else None)

    steps.append(promote_step(
        target, timeout, port=ports[target.name], system_identifier=system,
        guard=old_still_down, on_request=lambda: requested.append(True), known=theirs,
        after_request=f"{old.name} is left stopped (never started again beside a possibly "
                      f"promoted {target.name}); once {target.name} accepts writes: cluster."
                      f"record_roles(new_primary={target.name!r}, failed=[{old.name!r}]), "
                      f"then cluster.rejoin({old.name!r})"))

    def promoted(report: Report) -> StepResult:
        # Recorded at once: if a later step fails, the cluster already names the new primary.
        cluster.apply(RoleChange("switchover", new_primary=target.name, failed=(old.name,),
                                 record=False))
        return StepResult(True, f"{target.name} is the primary")

    steps.append(Step(target.name, StepKind.RECORD, "record the new primary", "",
                      action=promoted, host=target.host.name))
    for other in others:
        steps += follow_steps(cluster, other, target, previous=None, timeout=timeout)
    steps += follow_steps(cluster, old, target, previous=None, timeout=timeout,
                          check_system=False)
    names = {cluster.slot_for(n) for n in cluster.nodes}
    steps.append(drop_stale_slots_step(old, keep=set(), names=names))

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange("switchover", f"{old.name} -> {target.name}",
                                 new_primary=target.name, rejoined=(old.name,)))
        return StepResult(True, f"{old.name} is a standby of {target.name}")

    steps.append(Step(old.name, StepKind.RECORD, f"record {old.name} as a standby", "",
                      action=record, host=old.host.name))
    return Plan(f"switchover {old.name} -> {target.name}", steps)
