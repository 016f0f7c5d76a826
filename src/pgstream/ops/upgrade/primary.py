"""The primary's side of a major upgrade, as plan steps.

The new cluster's initdb and the settings carried into it; a clean stop of the primary, then
of each standby once it has replayed the primary's shutdown checkpoint; (rsync) the proof
that every node stopped at the same "Latest checkpoint location"; ``pg_upgrade``; the point
of no return; the new primary started, its replication role checked, its physical slots
recreated (reserved) before any standby starts; the cluster's record; ``vacuumdb
--analyze-in-stages``.

Every step before the point of no return has an undo that brings the old cluster back as it
ran (``pg_control`` renamed back after ``--link``, the old servers started, the new directory
removed). Past that point an undo refuses to act: nothing starts an old server then.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable

import attrs
from psycopg.conninfo import conninfo_to_dict

from pgstream.errors import OperationFailed, ServerStateError
from pgstream.facts.lsn import Lsn
from pgstream.hosts import controlfile
from pgstream.hosts.service import DebianClusterService, PgCtlService
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.ops.setup import ReplicationAuth
from pgstream.ops.upgrade.facts import (
    UpgradeFacts,
    controldata_checkpoint,
    initdb_argv,
    make_new_cluster,
    pg_upgrade_argv,
    remove_new_cluster,
    write_carried,
)
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import commands, debian, queries

Register = Callable[[str, PgCtlService], None]


@attrs.define
class UpgradeState:
    """Shared by the steps of one upgrade plan while it runs."""

    past_no_return: bool = False
    checkpoint: Lsn | None = None


def _undo_allowed(state: UpgradeState, what: str) -> None:
    if state.past_no_return:
        raise OperationFailed(f"not undone: the plan passed its point of no return ({what} "
                            "stays as it is)")


def future_nodes(cluster: ClusterView, facts: UpgradeFacts) -> dict[str, Node]:
    """Each node as it will run after the upgrade: same name, conninfo and host, its new data
    directory, a pg_ctl service of the new installation."""
    made: dict[str, Node] = {}
    for node in cluster.nodes:
        assert node.service is not None
        layout = facts.nodes[node.name].debian
        new_dir = facts.nodes[node.name].new_dir
        service: PgCtlService
        if layout is not None:
            service = attrs.evolve(
                DebianClusterService.for_cluster(
                    node.host, layout.new_major, layout.name, version=facts.new.version,
                    timeout=node.service.timeout, user=node.service.user),
                data_dir=new_dir)
        else:
            service = attrs.evolve(node.service, bindir=facts.new.bindir, data_dir=new_dir,
                                   version=facts.new.version)
        future: Node
        if isinstance(node, Standby):
            future = Standby(node.name, node.conninfo, host=node.host, data_dir=new_dir,
                             service=service, os_user=node.os_user, upstream=node.upstream,
                             slot_name=node.slot_name, application_name=node.application_name)
        else:
            future = Primary(node.name, node.conninfo, host=node.host, data_dir=new_dir,
                             service=service, os_user=node.os_user)
        future.moved(new_dir, service, version=facts.new.version)
        made[node.name] = future
    return made


def service_key(node: str, facts: UpgradeFacts) -> str:
    """The name a sandbox keeps ``node``'s new server under (``primary_18``), so that
    the sandbox stops and removes it too."""
    return f"{node}_{facts.new.version.major.replace('.', '')}"


def recheck_step(cluster: ClusterView, facts: UpgradeFacts) -> Step:
    """A step that shows the pre-checks and, when applied, checks again that every
    standby streams (raises :class:`~pgstream.errors.PgStreamError` naming those that do not)."""
    primary = cluster.primary

    def action(report: Report) -> StepResult:
        lost = [s.name for s in cluster.standbys if not primary.streams_to(s.name)]
        if lost:
            raise ServerStateError(f"no longer streaming: {', '.join(lost)}")
        return StepResult(False, "every standby streams")

    return Step(primary.name, StepKind.CHECK, "pre-checks (standbys again when applied)",
                "\n".join(str(c) for c in facts.checks), action=action, host=primary.host.name)


def initdb_step(primary: Primary, facts: UpgradeFacts, state: UpgradeState) -> Step:
    """A step that runs the new major's initdb for ``primary`` (refusing a directory that
    appeared since the pre-checks); its undo removes that directory, before the point of no
    return only."""
    node = facts.nodes[primary.name]
    argv = initdb_argv(facts, node)

    def action(report: Report) -> StepResult:
        for path in (node.new_dir, node.new_config_dir):
            if primary.host.exists(path):
                raise ServerStateError(f"{path} appeared since the pre-checks")
        make_new_cluster(primary.host, facts, node, primary.os_user, "initdb (new major)")
        return StepResult(True, f"initialized {node.new_dir}")

    def undo() -> None:
        _undo_allowed(state, str(node.new_dir))
        remove_new_cluster(primary.host, node, primary.os_user)

    how = "pg_createcluster" if node.debian else "initdb"
    return Step(primary.name, StepKind.INITDB,
                f"{how} the PostgreSQL {facts.new.version.major} cluster", shlex.join(argv),
                action=action, undo=undo, host=primary.host.name)


def carry_step(primary: Primary, facts: UpgradeFacts) -> Step:
    """A step that writes the carried settings, ``pg_hba.conf`` and ``pg_ident.conf``
    into ``primary``'s new data directory."""
    node = facts.nodes[primary.name]

    def action(report: Report) -> StepResult:
        write_carried(primary.host, node, primary.os_user)
        return StepResult(True, f"{len(node.settings)} settings, pg_hba.conf, pg_ident.conf")

    return Step(primary.name, StepKind.SETTING,
                "carry settings, pg_hba.conf and pg_ident.conf over", node.describe_carry(),
                action=action, host=primary.host.name)


def stop_primary_step(primary: Primary, facts: UpgradeFacts, state: UpgradeState,
                      timeout: float) -> Step:
    """A step that stops ``primary`` (fast) and proves a clean shutdown, keeping its
    shutdown checkpoint for the standbys; its undo starts the old server again, before the
    point of no return only."""
    service = primary.service
    assert service is not None
    old_dir = facts.nodes[primary.name].old_dir

    def action(report: Report) -> StepResult:
        primary.close()
        service.stop("fast")
        control = controlfile.read(old_dir, host=primary.host)
        if not control.clean_shutdown:
            raise ServerStateError(f"{primary.name} did not shut down cleanly "
                                   f"({control.state.name})")
        state.checkpoint = control.checkpoint
        return StepResult(True, f"stopped at its shutdown checkpoint {control.checkpoint}")

    def undo() -> None:
        _undo_allowed(state, f"{primary.name}'s old server")
        if not service.running():
            service.start()
            primary.wait_ready(timeout)

    return Step(primary.name, StepKind.STOP, f"stop {primary.name} cleanly: the cluster "
                "accepts no writes from here", service.describe("stop", "fast"),
                action=action, undo=undo, host=primary.host.name)


def stop_standby_step(standby: Standby, state: UpgradeState, timeout: float) -> Step:
    """A step that waits until ``standby`` replayed past the primary's shutdown
    checkpoint, then stops it (fast); its undo starts it again, before the point of no return
    only."""
    service = standby.service
    assert service is not None

    def past() -> bool:
        replayed = standby.replay_lsn()
        return replayed is not None and state.checkpoint is not None and \
            replayed > state.checkpoint

    def action(report: Report) -> StepResult:
        wait_for(past, timeout=timeout,
                 what=f"{standby.name} to replay the primary's shutdown checkpoint "
                      f"{state.checkpoint}", detail=lambda: f"replayed {standby.replay_lsn()}")
        standby.close()
        service.stop("fast")
        return StepResult(True, f"stopped after replaying {state.checkpoint}")

    def undo() -> None:
        _undo_allowed(state, f"{standby.name}'s old server")
        if not service.running():
            service.start()
            standby.wait_ready(timeout)

    return Step(standby.name, StepKind.STOP, f"stop {standby.name} once it replayed the "
                "primary's shutdown checkpoint",
                queries.shown(queries.replay_lsn(standby.version))
                + "  -- until past the checkpoint\n" + service.describe("stop", "fast"),
                action=action, undo=undo, host=standby.host.name, concurrent=True)


def proof_step(cluster: ClusterView, facts: UpgradeFacts) -> Step:
    """Every node stopped at the same "Latest checkpoint location" (rsync needs it)."""
    primary = cluster.primary
    argvs = {}
    for node in cluster.nodes:
        assert node.service is not None
        argvs[node.name] = commands.pg_controldata(node.service.bindir,
                                                   facts.nodes[node.name].old_dir)

    def action(report: Report) -> StepResult:
        seen: dict[str, Lsn] = {}
        for node in cluster.nodes:
            out = node.host.run(argvs[node.name], user=node.os_user, timeout=60,
                                what=f"pg_controldata ({node.name})").output
            checkpoint, shown = controldata_checkpoint(out)
            if not shown.startswith("shut down"):
                raise ServerStateError(f"{node.name}'s cluster state is {shown!r}, not shut "
                                       "down")
            seen[node.name] = checkpoint
        if len(set(seen.values())) != 1:
            raise ServerStateError("the nodes stopped at different checkpoints, rsync would "
                                   "copy a wrong standby: " + ", ".join(
                                       f"{n} {c}" for n, c in seen.items()))
        return StepResult(False, f"every node at {seen[primary.name]}")

    detail = "\n".join(shlex.join(a) + f"   # {n}" for n, a in argvs.items())
    return Step(primary.name, StepKind.CHECK, "every node stopped at the same \"Latest "
                "checkpoint location\" (pg_controldata)", detail, action=action,
                host=primary.host.name)


def pg_upgrade_step(primary: Primary, facts: UpgradeFacts, state: UpgradeState) -> Step:
    """A step that runs ``pg_upgrade`` for ``primary`` (its output streamed to the
    progress callback); its undo gives back the ``pg_control`` that ``--link`` renamed."""
    node = facts.nodes[primary.name]
    argv = pg_upgrade_argv(facts, node)
    control = node.old_dir / "global" / "pg_control"
    host, user = primary.host, primary.os_user
    script = node.new_dir / "delete_old_cluster.sh"  # remove_old_cluster_plan() instead
    remove = commands.remove_tree(script)

    def action(report: Report) -> StepResult:
        done = host.run(argv, user=user, cwd=node.new_dir, timeout=24 * 3600.0,
                        on_output=lambda line: report(line.strip(), None),
                        what="pg_upgrade")
        if host.exists(script):
            host.run(remove, user=user, what="remove the script")
        return StepResult(True, f"upgraded ({facts.mode}) in {done.seconds:.1f} s")

    def undo() -> None:
        _undo_allowed(state, "the upgraded primary")
        renamed = control.with_name("pg_control.old")
        if host.exists(renamed) and not host.exists(control):
            host.run(commands.rename(renamed, control), user=user,
                     what="rename pg_control.old back")

    return Step(primary.name, StepKind.UPGRADE,
                f"pg_upgrade --{facts.mode} to PostgreSQL {facts.new.version.major}",
                shlex.join(argv) + f"\n(run as {user.name if user else 'the current user'} in "
                f"{node.new_dir}; then, if pg_upgrade wrote it:)\n" + shlex.join(remove),
                action=action, undo=undo, host=host.name)


def no_return_step(primary: Primary, state: UpgradeState, why: str) -> Step:
    """The point of no return: after this step the old cluster is never started again
    (``why`` says what makes it so), and no later step has an undo."""
    def action(report: Report) -> StepResult:
        state.past_no_return = True
        return StepResult(True, "passed the point of no return")

    return Step(primary.name, StepKind.CHECK,
                "=== POINT OF NO RETURN: the old cluster is not started again after here ===",
                why + "\nEvery step above is undone on failure or interruption (the old "
                "cluster runs again as before); no step below is.",
                action=action, host=primary.host.name)


def start_primary_step(future: Primary, futures: dict[str, Node], facts: UpgradeFacts,
                       register: Register | None, timeout: float) -> Step:
    """A step that starts the upgraded primary ``future`` (handing every new server
    to ``register`` first, for a sandbox) and waits until it accepts connections."""
    service = future.service
    assert service is not None

    def action(report: Report) -> StepResult:
        if register is not None:
            for name, node in futures.items():
                assert node.service is not None
                register(service_key(name, facts), node.service)
        future.close()
        service.start()
        future.wait_ready(timeout)
        return StepResult(True, f"PostgreSQL {facts.new.version.major} accepts writes")

    return Step(future.name, StepKind.START, f"start {future.name} on PostgreSQL "
                f"{facts.new.version.major}: the cluster accepts writes again",
                service.describe("start"), action=action, host=future.host.name)


def role_step(future: Primary, auth: ReplicationAuth) -> Step:
    """A step that checks the replication role came through ``pg_upgrade`` with LOGIN
    REPLICATION (:class:`~pgstream.errors.ServerStateError` if not)."""
    built = queries.role_state(auth.user)

    def action(report: Report) -> StepResult:
        rows = future.query(*built)
        if not rows or not (rows[0][0] and rows[0][1]):
            raise ServerStateError(f"the replication role {auth.user} did not come through "
                                   "pg_upgrade with LOGIN REPLICATION")
        return StepResult(False, f"{auth.user} has LOGIN REPLICATION (carried by pg_upgrade)")

    return Step(future.name, StepKind.CHECK, f"replication role {auth.user} carried over",
                queries.shown(built), action=action, host=future.host.name)


def record_step(cluster: ClusterView, facts: UpgradeFacts, futures: dict[str, Node]) -> Step:
    """A step that points every node at its new data directory and service and commits
    the :class:`~pgstream.ops.view.RoleChange` that records the old data directories."""
    primary = cluster.primary
    detail = (f"PostgreSQL {cluster.primary.version.major} -> {facts.new.version.major} "
              f"(pg_upgrade --{facts.mode}, standbys by {facts.method})")

    def action(report: Report) -> StepResult:
        old = tuple((n.name, facts.nodes[n.name].old_dir) for n in cluster.nodes)
        for node in cluster.nodes:
            future = futures[node.name]
            future.close()
            node.moved(facts.nodes[node.name].new_dir, future.service)
        cluster.apply(RoleChange("upgrade", detail, old_data_dirs=old))
        return StepResult(True, "every node runs from its new data directory; the old ones "
                                "are kept until remove_old_cluster_plan()")

    return Step(primary.name, StepKind.RECORD, "record the new data directories", detail,
                action=action, host=primary.host.name)


def analyze_step(future: Primary, facts: UpgradeFacts) -> Step:
    """A step that rebuilds the optimizer statistics on ``future``
    (``vacuumdb --analyze-in-stages``; ``pg_upgrade`` keeps none)."""
    params = conninfo_to_dict(future.conninfo)
    argv = commands.vacuumdb_analyze(
        facts.new.bindir, host=str(params.get("host") or "localhost"),
        port=int(params.get("port") or 5432), user=str(params.get("user") or facts.superuser))
    env = {"PGPASSWORD": str(params["password"])} if params.get("password") else None

    def action(report: Report) -> StepResult:
        done = future.host.run(argv, user=future.os_user, env=env, timeout=24 * 3600.0,
                               on_output=lambda line: report(line.strip(), None),
                               what="vacuumdb --analyze-in-stages")
        return StepResult(True, f"statistics rebuilt in {done.seconds:.1f} s")

    return Step(future.name, StepKind.SQL, "optimizer statistics (pg_upgrade keeps none)",
                shlex.join(argv), action=action, host=future.host.name)


def debian_start_conf_step(node: Node, facts: UpgradeFacts) -> Step:
    """A Debian cluster's ``start.conf`` after the upgrade: the new cluster takes the old
    one's (``auto``: started at boot), the old one becomes ``manual``, so that a reboot
    starts the new major only."""
    layout = facts.nodes[node.name].debian
    assert layout is not None
    new_file, old_file = layout.new_config / "start.conf", layout.old_config / "start.conf"
    owner = node.os_user

    def action(report: Report) -> StepResult:
        node.host.write_text(new_file, debian.start_conf_text(layout.start_conf), mode=0o644,
                             owner=owner)
        node.host.write_text(old_file, debian.start_conf_text("manual"), mode=0o644,
                             owner=owner)
        return StepResult(True, f"{layout.new_major}/{layout.name}: {layout.start_conf}; "
                                f"{layout.old_major}/{layout.name}: manual")

    return Step(node.name, StepKind.SETTING, f"start.conf: PostgreSQL {layout.new_major} "
                f"starts at boot as {layout.old_major} did, {layout.old_major} only by hand",
                f"{new_file}: {layout.start_conf}\n{old_file}: manual", action=action,
                host=node.host.name, concurrent=True)
