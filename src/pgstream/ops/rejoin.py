"""How a former primary rejoins as a standby of the new one: plan steps.

Without a rewind when it stopped cleanly and is not ahead (its last checkpoint lies before the
point where the new primary's timeline branched off, read from the new primary's timeline
history); with ``pg_rewind`` (of the data directory's own major) when it diverged. A clear
error, before anything changes, when neither is possible.
"""

from __future__ import annotations

import contextlib
import shlex
from pathlib import Path

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.errors import BinaryNotFound, InvalidInput, PgStreamError, RejoinRefused
from pgstream.facts import arguments, compat
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts import binaries, controlfile
from pgstream.hosts.controlfile import ControlData, DbState
from pgstream.hosts.files import merge_auto_conf
from pgstream.hosts.host import LocalHost
from pgstream.hosts.service import DebianClusterService
from pgstream.nodes import identity
from pgstream.nodes.node import Node
from pgstream.ops.follow import (
    check_same_system,
    drop_stale_slots_step,
    follow_steps,
    server_version,
)
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.view import ClusterView, RoleChange
from pgstream.render import commands, probes, queries
from pgstream.render.config import passfile_line


@attrs.frozen
class Divergence:
    """How a former primary's WAL relates to the new primary's timeline: its
    ``pg_control``, the branch point (where the new timeline left the node's; None: no branch
    in the history), whether it needs ``pg_rewind`` before it can stream, and why."""
    control: ControlData
    branch_point: Lsn | None  # where the new primary's timeline left the node's timeline
    needs_rewind: bool
    reason: str


def timeline_history(primary: Node) -> dict[int, Lsn]:
    """The new primary's timeline history: parent timeline -> where the next one began."""
    timeline = primary.timeline()
    if timeline == 1:
        return {}
    rows = primary.query(*probes.timeline_history(primary.version, timeline))
    points: dict[int, Lsn] = {}
    for line in str(rows[0][0]).splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            points[int(parts[0])] = Lsn.parse(parts[1])
    return points


#: The state a clean (fast or smart) stop leaves, by the state a running server shows.
_AFTER_A_CLEAN_STOP = {DbState.IN_PRODUCTION: DbState.SHUTDOWNED,
                       DbState.IN_ARCHIVE_RECOVERY: DbState.SHUTDOWNED_IN_RECOVERY}


def divergence(node: Node, primary: Node, *, stopping: bool = False) -> Divergence:
    """Whether the stopped ``node`` must be rewound to stream from ``primary``: read from
    its ``pg_control`` and the primary's timeline history (see :class:`Divergence`).
    ``stopping``: the node still runs and a clean stop comes first, so a running state is
    read as the shut-down state that stop leaves. Raises
    :class:`~pgstream.errors.NodeUnreachable` when its version cannot be learnt."""
    version = server_version(node)
    assert node.data_dir is not None
    control = controlfile.read(Path(node.data_dir), version, node.host)
    if stopping and control.state in _AFTER_A_CLEAN_STOP:
        control = attrs.evolve(control, state=_AFTER_A_CLEAN_STOP[control.state])
    history = timeline_history(primary)
    point = history.get(control.timeline or 0)
    current = primary.timeline()
    if control.state is DbState.IN_ARCHIVE_RECOVERY and control.timeline == current and \
            node.host.exists(Path(node.data_dir) / "backup_label"):
        # What pg_rewind leaves (a rejoin stopped after its rewind): the source's timeline in
        # pg_control, a backup_label to start recovery from. Rewinding again would first run
        # crash recovery on it alone, which ends that recovery and makes it diverge anew.
        return Divergence(control, point, False, f"it was rewound to timeline {current} "
                          "already and not started since: it only needs to follow")
    if control.state is DbState.SHUTDOWNED_IN_RECOVERY and control.timeline != current:
        return Divergence(control, point, True, "it stopped as a standby: its last restartpoint "
                          "does not tell how far it replayed on the old timeline")
    if point is None and control.timeline not in (None, current):
        return Divergence(control, point, True, f"its timeline {control.timeline} is not in "
                          f"{primary.name}'s history: a branch of its own")
    if not control.clean_shutdown:
        return Divergence(control, point, True, f"it did not shut down cleanly "
                          f"({control.state.name}): its WAL may run past the branch point")
    if point is None:
        return Divergence(control, point, False, f"it is on timeline {control.timeline}, "
                          "which the new primary continues: no branch to undo")
    if control.checkpoint < point:
        return Divergence(control, point, False, f"its shutdown checkpoint {control.checkpoint}"
                          f" lies before the branch point {point}")
    return Divergence(control, point, True, f"its shutdown checkpoint {control.checkpoint} "
                      f"lies at or past the branch point {point}: it is ahead")


def rejoin_plan(cluster: ClusterView, node: Node | str, *, rewind: bool | None = None,
                timeout: float = 60.0, stopping: bool = False) -> Plan:
    """``rewind``: None decides from the divergence; False refuses to rewind; True forces.
    ``stopping``: the plan for a node that a clean stop will stop first (``check()``'s
    ``timeline_diverged`` fix shows it before that stop; see :func:`divergence`).

    The node streams from the primary's own address (``cluster.address_of``), whichever node
    that is now. The primary is cross-checked against its declaration before the plan is
    built, and the node proven stopped once more just before a rewind.
    """
    timeout = arguments.timeout(timeout)
    if rewind is not None:
        arguments.flag(rewind, "rewind")
    target = cluster.node(node) if isinstance(node, str) else node
    primary = cluster.primary
    if target.name == primary.name:
        raise InvalidInput(f"{target.name} is the primary")
    if target.data_dir is None or target.service is None:
        raise InvalidInput(f"{target.name}: pgstream needs its data_dir and service")
    if target.ping() or target.service.running():
        raise RejoinRefused(f"{target.name} is running: stop it first (if it still acts as a "
                            "primary, it may have taken writes the new primary does not have)")
    identity.verify(primary, role="primary",
                    port=identity.declared_port(primary, cluster.node_settings.get(primary.name)))
    check_same_system(target, primary)
    found = divergence(target, primary, stopping=stopping)
    use_rewind = found.needs_rewind if rewind is None else rewind
    version = server_version(target)
    if found.needs_rewind and not use_rewind:
        raise RejoinRefused(f"{target.name} cannot simply follow {primary.name}: {found.reason};"
                            " it needs pg_rewind (rewind=True) or a new clone")
    steps: list[Step] = []
    detail = (f"pg_control: state {found.control.state.name}, checkpoint "
              f"{found.control.checkpoint}, timeline {found.control.timeline}\n"
              f"new primary's branch point: {found.branch_point}\n"
              f"decision: {'pg_rewind' if use_rewind else 'follow without rewind'} "
              f"({found.reason})")

    def decide(report: Report) -> StepResult:
        return StepResult(False, "pg_rewind" if use_rewind else "no rewind needed")

    steps.append(Step(target.name, StepKind.CHECK, f"can {target.name} follow {primary.name}?",
                      detail, action=decide, host=target.host.name))
    if use_rewind:
        steps.append(_rewind_step(cluster, target, primary, version, found, timeout))
    steps += follow_steps(cluster, target, primary, previous=None, timeout=timeout,
                          concurrent=False, check_system=False)
    steps.append(drop_stale_slots_step(target, keep=set(), names={
        cluster.slot_for(n) for n in [*cluster.nodes, *cluster.failed]}))

    def record(report: Report) -> StepResult:
        cluster.apply(RoleChange("rejoin", f"{target.name} follows {primary.name}"
                                 + (" after pg_rewind" if use_rewind else ""),
                                 new_primary=primary.name, rejoined=(target.name,)))
        return StepResult(True, f"{target.name} is a standby of {primary.name}")

    steps.append(Step(target.name, StepKind.RECORD, "record the new role", "", action=record,
                      host=target.host.name))
    return Plan(f"rejoin {target.name} as a standby of {primary.name}", steps)


KEPT_FILES = ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf", "pg_ident.conf")
"""The configuration files in a data directory that a rejoin's pg_rewind keeps as the node had
them (pg_rewind copies the source's over them)."""


def config_file_outside(node: Node) -> Path | None:
    """The ``postgresql.conf`` of ``node`` (stopped, so not asked of it) when pgstream knows
    it lies outside its data directory: a Debian cluster's, in ``/etc/postgresql/MAJOR/NAME``;
    None otherwise (the data directory's own)."""
    if not isinstance(node.service, DebianClusterService) or node.data_dir is None:
        return None
    conf = node.service.config_dir / "postgresql.conf"
    return None if conf.is_relative_to(Path(node.data_dir)) else conf


def rewind_config_file(node: Node, tool: ServerVersion, *, crash_recovery: bool) -> Path | None:
    """What a rejoin's pg_rewind (of version ``tool``) passes as ``--config-file``: the
    node's ``postgresql.conf`` when it lies outside its data directory and that pg_rewind has
    the option (15+); None when it is in the data directory. pg_rewind reads it only to run
    the single-user crash recovery (``crash_recovery``) of an unclean target: an older
    pg_rewind that would need it raises :class:`~pgstream.errors.RejoinRefused`, before
    anything changes."""
    conf = config_file_outside(node)
    if conf is None:
        return None
    assert node.service is not None and node.data_dir is not None
    if tool.adapter.supports("rewind_config_file"):
        return conf
    if crash_recovery:
        single = commands.postgres_single(node.service.bindir, Path(node.data_dir), conf)
        raise RejoinRefused(
            f"{node.name} did not shut down cleanly, and pg_rewind must first finish its crash "
            f"recovery with 'postgres --single -D {node.data_dir}', which finds no "
            f"postgresql.conf there (it is {conf}); pg_rewind {tool.major} has no "
            "--config-file (15+ has): nothing changed. Finish its crash recovery yourself, "
            f"as its owner: {shlex.join(single)}, then rejoin it; or clone it anew")
    return None  # a clean target: pg_rewind runs no server, and needs no configuration


def _rewind_step(cluster: ClusterView, target: Node, primary: Node, version: ServerVersion,
                 found: Divergence, timeout: float) -> Step:
    assert target.service is not None
    # pg_rewind runs on the node's own host, from its own installation when it has one.
    tool: binaries.Installation | None = binaries.probe(target.service.bindir, host=target.host)
    if tool is None or not tool.has("pg_rewind"):
        tool = None
        if isinstance(target.host, LocalHost):
            try:
                tool = binaries.find_client("pg_rewind", version)
            except BinaryNotFound:
                tool = None
    if tool is None or not compat.rewind_fits(tool.version, version):
        raise RejoinRefused(
            f"{target.name} needs pg_rewind, and pg_rewind must be of its own major "
            f"({version.major}); none was found: install PostgreSQL {version.major}'s client "
            "tools, or clone it anew")
    if not found.control.clean_shutdown and not version.adapter.supports(
            "rewind_crash_recovery"):
        raise RejoinRefused(
            f"{target.name} did not shut down cleanly and pg_rewind {version.major} cannot "
            "recover it (13+ can): start it once in single-user mode to finish crash "
            "recovery, or clone it anew")
    assert target.data_dir is not None and target.service is not None
    data_dir = Path(target.data_dir)
    config_file = rewind_config_file(target, tool.version,
                                     crash_recovery=not found.control.clean_shutdown)
    params = pg_conninfo.conninfo_to_dict(primary.conninfo)
    password = params.pop("password", None)
    source = pg_conninfo.make_conninfo("", **params)
    argv = commands.pg_rewind(tool.bindir, data_dir, source, config_file=config_file)
    # The password, if any, travels in a 0600 file on that host for this run only.
    secret = data_dir.parent / f".pgstream-rewind-{target.name}.pgpass"
    cleanup = commands.remove_file(secret)
    checkpoint = queries.checkpoint()
    own = cluster.node_settings.get(target.name, {})
    # Until the recovery configuration is written (the next steps), a rewound former primary
    # started by hand would come up as a primary: from 12 an empty standby.signal right after
    # the rewind makes any such start a standby's.
    signal = "standby.signal" if version.adapter.supports("standby_signal") else None

    def action(report: Report) -> StepResult:
        env: dict[str, str] = {}
        if password is not None:  # never in argv
            target.host.write_text(secret, passfile_line("*", "*", "*", str(password)),
                                   mode=0o600, owner=target.os_user)
            env["PGPASSFILE"] = str(secret)
        assert target.service is not None
        if target.ping() or target.service.running():  # it must still be down: rewinding
            raise RejoinRefused(f"{target.name} runs again: not rewound (stop it first)")
        target.service.wait_gone()
        # A freshly promoted source may still name its old timeline in pg_control until its
        # first checkpoint; pg_rewind before 16 reads it there ("no rewind required").
        primary.execute(*checkpoint)
        # pg_rewind copies the source's configuration files over the node's own (its
        # listen_addresses, port, pg_hba.conf): keep the node's, written back afterwards.
        kept = {name: target.host.read_text(data_dir / name) for name in KEPT_FILES
                if target.host.exists(data_dir / name)}
        try:
            done = target.host.run(argv, user=target.os_user, env=env, timeout=max(timeout, 600),
                                   cwd=data_dir.parent, what=f"pg_rewind of {target.name}",
                                   on_output=lambda line: report(line, None))
        finally:
            if password is not None:
                with contextlib.suppress(OSError, PgStreamError):
                    target.host.run(cleanup, what="remove passfile")
            for name, text in kept.items():
                target.host.write_text(data_dir / name, text, mode=0o600, owner=target.os_user)
        if signal is not None:  # a start before the recovery configuration: a standby
            target.host.write_text(data_dir / signal, "", mode=0o600, owner=target.os_user)
        if own:  # and the node's own settings that the cluster knows, on top
            merge_auto_conf(target.host, data_dir, dict(own), target.os_user)
        return StepResult(True, f"rewound in {done.seconds:.2f} s")

    return Step(target.name, StepKind.REWIND, f"pg_rewind {target.name} to {primary.name}",
                f"{queries.shown(checkpoint)}  -- on {primary.name}, so its pg_control names "
                "its new timeline\n"
                + shlex.join(argv)
                + (f"  -- password from the 0600 file {secret}, then: {shlex.join(cleanup)}"
                   if password is not None else "")
                + f"\n{target.name}'s own {', '.join(KEPT_FILES)} in {data_dir}: read before, "
                "written back after (pg_rewind copies the source's)"
                + (f"\n{signal} written (empty) in {data_dir} right after: until its recovery "
                   "configuration is written, a start makes it a standby, never a primary"
                   if signal is not None else ""),
                action=action, host=target.host.name)
