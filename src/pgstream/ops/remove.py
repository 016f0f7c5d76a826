"""How a standby leaves the cluster: plan steps, in the order that never blocks a commit.

1. When ``synchronous_standby_names`` lists it (by its ``application_name``), the primary
   stops waiting for it first (else every commit would wait for a standby that is gone);
2. stop it; 3. drop its slot on its upstream, once its walsender has gone; 4. remove from
   ``pg_hba.conf`` the line pgstream added for it (marked ``# pgstream: standby NAME``), only
   that line, and reload; 5. wipe its data directory, only with ``wipe=True``. Refused before
   anything changes when other standbys stream from it (re-point them first).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pgstream.errors import InvalidInput, Refused, ServerStateError
from pgstream.facts import arguments
from pgstream.hosts import datadir
from pgstream.hosts.host import OsUser
from pgstream.hosts.wait import DEFAULT_TIMEOUT, wait_for
from pgstream.nodes.node import Node, Standby
from pgstream.ops.assemble import hba_marker
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import commands, probes, queries
from pgstream.render.sync_spec import ALL, SyncSpec


def _without(spec: SyncSpec, name: str) -> SyncSpec:
    names = tuple(n for n in spec.names if n != name)
    if not names:
        return SyncSpec.off()
    if spec.method == "LIST":
        return SyncSpec.priority(names)
    num = min(spec.num, len(names)) if ALL not in names else spec.num
    return SyncSpec.any(num, names) if spec.method == "ANY" else SyncSpec.first(num, names)


def _sync_step(primary: Node, standby: Standby) -> Step | None:
    value, _source = primary.query(*probes.synchronous_names())[0]
    current = SyncSpec.parse(str(value), primary.version)
    if standby.application_name not in current.names:
        return None
    wanted = _without(current, standby.application_name).render(primary.version)
    setting = primary.version.adapter.setting("synchronous_standby_names")
    reload = queries.reload_conf()

    def set_to(text: str) -> None:
        primary.execute(queries.alter_system(setting, text))
        primary.execute(*reload)

    def action(report: Report) -> StepResult:
        set_to(wanted)
        return StepResult(True, f"{setting} = {wanted!r} (was {value!r})")

    return Step(primary.name, StepKind.SETTING,
                f"stop waiting for {standby.name} ({setting})",
                queries.alter_system(setting, wanted).as_string(None) + ";\n"
                + queries.shown(reload), action=action, undo=lambda: set_to(str(value)),
                host=primary.host.name)


def _hba_step(node: Node, name: str) -> Step:
    marker = hba_marker(name)
    reload = queries.reload_conf()

    def action(report: Report) -> StepResult:
        path = Path(node.show("hba_file"))
        lines = node.host.read_text(path).splitlines(keepends=True)
        kept = [line for line in lines if not line.rstrip().endswith(marker)]
        if len(kept) == len(lines):
            return StepResult(False, f"no line of {path} is marked for {name}")
        mode, uid, gid = node.host.run(("stat", "-c", "%a %u %g", str(path)),
                                       what="stat").output.split()[-3:]
        owner = OsUser(uid, int(uid), int(gid))  # kept as it was
        node.host.write_text(path, "".join(kept), mode=int(mode, 8), owner=owner)
        node.execute(*reload)
        return StepResult(True, f"removed {len(lines) - len(kept)} line(s) from {path}; "
                                "reloaded")

    return Step(node.name, StepKind.HBA, f"remove the pg_hba.conf line pgstream added for {name}",
                f"lines ending with '{marker}' (no other line is touched); then "
                + queries.shown(reload), action=action, host=node.host.name)


def remove_standby_plan(cluster: ClusterView, standby: Standby | str, *, wipe: bool = False,
                        timeout: float = DEFAULT_TIMEOUT) -> Plan:
    """Remove ``standby`` from the cluster (see the module docstring); print = dry run."""
    timeout = arguments.timeout(timeout)
    target = cluster.standby(standby) if isinstance(standby, str) else standby
    if target not in cluster.standbys:
        raise InvalidInput(f"{target.name} is not a standby of this cluster")
    below = [s.name for s in cluster.standbys if s.upstream == target.name]
    if below:
        raise Refused(f"{', '.join(below)} stream(s) from {target.name}: re-point them first "
                      f"(pgstream follow NAME {cluster.primary.name}); nothing was changed")
    upstream = cluster.node(target.upstream) if target.upstream else cluster.primary
    running = target.ping() or (target.service is not None and target.service.running())
    if running and target.service is None:
        raise InvalidInput(f"{target.name} runs and pgstream does not control its service: "
                           "stop it yourself first")
    if wipe and (target.data_dir is None or target.service is None):
        raise InvalidInput(f"{target.name}: pgstream does not know its data directory to wipe")
    if wipe:  # proven now, before anything changes
        others = [Path(n.data_dir) for n in cluster.nodes
                  if n is not target and n.data_dir is not None]
        datadir.check_replaceable(Path(str(target.data_dir)), replace=True, protected=others,
                                  allow_running=True, host=target.host)
    steps: list[Step] = []
    if cluster.primary.ping() and (sync := _sync_step(cluster.primary, target)) is not None:
        steps.append(sync)
    service = target.service
    if service is not None:
        def stop(report: Report) -> StepResult:
            target.close()
            if not service.running():
                return StepResult(False, "not running")
            service.stop("fast")
            return StepResult(True, "stopped")

        steps.append(Step(target.name, StepKind.STOP, f"stop {target.name}",
                          service.describe("stop", "fast"), action=stop,
                          undo=lambda: None if service.running() else service.start(),
                          host=target.host.name))
    slot = cluster.slot_for(target)

    def drop(report: Report) -> StepResult:
        if upstream.slot(slot) is None:
            return StepResult(False, f"no slot {slot} on {upstream.name}")
        wait_for(lambda: not (state := upstream.slot(slot)) or not state.active,
                 timeout=timeout, what=f"the walsender of {target.name} to end")
        upstream.drop_slot(slot)
        return StepResult(True, f"dropped slot {slot} on {upstream.name}")

    steps.append(Step(upstream.name, StepKind.SLOT, f"drop slot {slot} on {upstream.name}",
                      queries.shown(queries.drop_slot(upstream.version, slot)), action=drop,
                      host=upstream.host.name))
    for node in dict.fromkeys([upstream, cluster.primary]):
        if node.ping():
            steps.append(_hba_step(node, target.name))
    if wipe:
        data_dir = Path(str(target.data_dir))

        def wipe_it(report: Report) -> StepResult:
            if service is not None and service.running():
                raise ServerStateError(f"{target.name} still runs on {data_dir}: not wiped")
            removed = datadir.wipe_contents(data_dir, target.host)
            return StepResult(removed, f"wiped {data_dir}" if removed else "already empty")

        # The argv datadir.wipe_contents runs (when the directory holds anything).
        steps.append(Step(target.name, StepKind.WIPE, f"wipe {data_dir} (wipe=True)",
                          shlex.join(commands.wipe_contents(data_dir)), action=wipe_it,
                          host=target.host.name))

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange("remove standby", f"{target.name} removed"
                                 + (" and wiped" if wipe else " (data directory kept)"),
                                 detached=(target.name,)))
        return StepResult(True, f"{target.name} is no longer in the cluster")

    steps.append(Step(target.name, StepKind.RECORD, "record the removal", "", action=record,
                      host=target.host.name))
    return Plan(f"remove standby {target.name}", steps)
