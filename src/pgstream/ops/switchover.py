"""How a planned switchover is done without losing a committed transaction: plan steps.

Pre-checks (the target streams, its replay is not paused, it lags at most ``max_lag_bytes``),
then: a clean (fast) stop of the old primary, proof that the target received everything up to
the old primary's shutdown checkpoint (read from its ``pg_control``: the target's received
LSN must pass that record), promotion, every other standby re-pointed, and the old primary
back as a standby of the new one (it stopped cleanly and is not ahead: no rewind needed).
If the old primary was stopped but the target not yet promoted, rollback starts it again.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from pgstream.errors import InvalidInput, PgStreamError, SwitchoverRefused
from pgstream.facts.lsn import Lsn
from pgstream.hosts import controlfile
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Standby
from pgstream.ops.follow import drop_stale_slots_step, follow_steps, promote_step
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import queries

DEFAULT_MAX_LAG_BYTES = 16 * 1024 * 1024


@attrs.frozen
class PreCheck:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"[{'ok' if self.ok else 'FAILED'}] {self.name}: {self.detail}"


def prechecks(cluster: ClusterView, target: Standby, max_lag_bytes: int) -> list[PreCheck]:
    primary = cluster.primary
    results = []
    up = primary.ping()
    results.append(PreCheck("primary reachable", up, primary.name))
    managed = primary.service is not None and primary.data_dir is not None
    results.append(PreCheck("primary's service controlled by pgstream", managed,
                            "needed to stop it cleanly" if managed else "no service/data_dir"))
    reachable = target.ping()
    results.append(PreCheck("target reachable", reachable, target.name))
    if not (up and reachable):
        return results
    recovering = target.in_recovery
    results.append(PreCheck("target is a standby", recovering,
                            "in recovery" if recovering else "not in recovery"))
    streaming = primary.streams_to(target.application_name, target.slot_name)
    results.append(PreCheck(f"target streams from {primary.name}", streaming,
                            "streaming" if streaming else "no streaming walsender for it"))
    if recovering:
        paused = bool(target.value(queries.replay_paused(target.version)))
        results.append(PreCheck("target replay not paused", not paused,
                                "paused: resume it first" if paused else "replaying"))
        replayed = target.replay_lsn()
        lag = primary.current_lsn() - replayed if replayed is not None else None
        fine = lag is not None and lag <= max_lag_bytes
        results.append(PreCheck("target lag within bound", fine,
                                f"{lag} bytes behind (bound {max_lag_bytes})"))
    return results


def switchover_plan(cluster: ClusterView, to: Standby | str, *,
                    max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                    timeout: float = 60.0) -> Plan:
    target = cluster.standby(to) if isinstance(to, str) else to
    if target not in cluster.standbys:
        raise InvalidInput(f"{target.name} is not a standby of this cluster")
    if (target.upstream or cluster.primary.name) != cluster.primary.name:
        raise SwitchoverRefused(f"{target.name} streams from {target.upstream}, not from the "
                                "primary: switch over to a direct standby")
    results = prechecks(cluster, target, max_lag_bytes)
    if not all(r.ok for r in results):
        raise SwitchoverRefused("switchover refused, nothing changed:\n"
                                + "\n".join(str(r) for r in results))
    old = cluster.primary
    assert old.service is not None and old.data_dir is not None
    service, data_dir = old.service, Path(old.data_dir)
    others = [s for s in cluster.standbys
              if s is not target and (s.upstream or old.name) == old.name]
    shutdown: list[Lsn] = []
    steps: list[Step] = []

    def check(report: Report) -> StepResult:
        again = prechecks(cluster, target, max_lag_bytes)
        if not all(r.ok for r in again):
            raise SwitchoverRefused("\n".join(str(r) for r in again))
        return StepResult(False, "all pre-checks passed")

    steps.append(Step(old.name, StepKind.CHECK, "pre-checks",
                      "\n".join(str(r) for r in results), action=check, host=old.host.name))

    def stop(report: Report) -> StepResult:
        old.close()
        service.stop("fast")
        return StepResult(True, f"{old.name} stopped cleanly")

    def restart_if_not_promoted() -> None:
        if target.ping() and target.in_recovery and not service.running():
            service.start()

    steps.append(Step(old.name, StepKind.STOP, f"stop {old.name} cleanly (fast shutdown)",
                      "pg_ctl stop -m fast  -- walsenders send everything, up to the "
                      "shutdown checkpoint", action=stop, undo=restart_if_not_promoted,
                      host=old.host.name))

    def received(report: Report) -> StepResult:
        control = controlfile.read(data_dir, host=old.host)
        if not control.clean_shutdown:
            raise PgStreamError(f"{old.name} did not shut down cleanly ({control.state.name})")
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
    steps.append(promote_step(target, timeout))

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
