"""How a standby is cloned: the seed's steps 6 to 11, as plan steps.

6. stop the standby's server (only with ``replace=True``) and prove its data directory safe to
wipe, then wipe it; 7. write the passfile (0600) and clone the primary with ``pg_basebackup``
through the standby's slot, WAL streamed, progress reported; 8. write the recovery
configuration for the *standby server's* version (never ``-R``); 9. its own settings; 10. start
it; 11. check it is in recovery and streaming. A failure after the clone began removes the
half-made copy and drops the slot this plan created: a clone that fails (or is killed, or
outlives ``timeout``) cleans up after itself, but only in a directory this plan created or
emptied, so that the same call can simply be tried again. Clones from one upstream share a
:class:`~pgstream.ops.senders.SenderBudget`: no more run at once than it has walsenders for.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path

from pgstream.errors import InvalidInput, PgStreamError, ServerStateError, UnsafeDataDirectory
from pgstream.facts import compat
from pgstream.hosts import datadir
from pgstream.hosts.binaries import Installation
from pgstream.hosts.wait import DEFAULT_TIMEOUT, wait_for
from pgstream.nodes.node import Node, Standby
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.ops.recovery import RecoveryConfig, passfile_for, passfile_step
from pgstream.ops.senders import SenderBudget
from pgstream.ops.setup import ReplicationAuth
from pgstream.render import commands, probes, queries

_PERCENT = re.compile(r"\((\d+)%\)")


def standby_clone_steps(
    primary: Node,
    standby: Standby,
    *,
    auth: ReplicationAuth,
    primary_host: str,
    primary_port: int,
    slot: str | None,
    server: Installation,
    client: Installation,
    passfile: Path | None,
    replace: bool = False,
    node_settings: Mapping[str, str] | None = None,
    sync: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    senders: SenderBudget | None = None,
    parent_made: bool = False,
) -> list[Step]:
    """Steps 6-11 of the seed for ``standby``; validates every input before returning.

    A standby that already streams from ``primary`` (same system, in recovery, a walsender
    for it in ``streaming`` state) gets only the check step: applying twice changes nothing.
    ``timeout`` bounds each wait and the ``pg_basebackup`` run itself. ``senders``: the
    walsender budget shared with the plan's other clones from ``primary`` (default: its own,
    checked now). ``parent_made``: an earlier step of the caller's plan makes the data
    directory's parent (a major upgrade's Debian ``/var/lib/postgresql/NEW``).
    """
    if standby.data_dir is None or standby.service is None:
        raise InvalidInput(f"{standby.name}: pgstream needs its data_dir and service to clone it")
    data_dir = Path(standby.data_dir)
    if already_streaming(primary, standby):
        return [_check_step(primary, standby, timeout,
                            f"{standby.name} already streams from {primary.name}: "
                            "nothing to clone")]
    if not compat.replica_fits(server.version, primary.version):
        raise InvalidInput(
            f"{standby.name} would run PostgreSQL {server.version.major} ({server.bindir}) but "
            f"the primary runs {primary.version.major}: physical replication needs the same "
            "major on both")
    if not compat.client_fits(client.version, primary.version):
        raise InvalidInput(f"pg_basebackup {client.version.major} cannot clone a "
                           f"PostgreSQL {primary.version.major} server")
    same_host = primary.host.name == standby.host.name
    primary_dir = primary.data_dir
    if primary_dir is None and same_host and primary.ping():
        primary_dir = primary.server_paths().data_directory  # as the server reports it
    protected = [primary_dir] if primary_dir is not None and same_host else []
    datadir.check_replaceable(data_dir, replace=replace, protected=protected,
                              allow_running=replace, host=standby.host, parent_made=parent_made)
    if senders is None:
        senders = SenderBudget(primary)
        senders.plan_clone()
        senders.check()
    else:
        senders.plan_clone()
    if auth.password is not None:
        passfile, named = passfile_for(server.version, data_dir, standby.os_user, passfile)
    else:
        passfile, named = None, False
    recovery = RecoveryConfig.build(
        server.version, upstream=(primary_host, primary_port), user=auth.user,
        application_name=standby.application_name, slot=slot,
        passfile=passfile if named else None,
        own_settings=node_settings)
    user = standby.os_user
    host = standby.host
    service = standby.service
    name = standby.name
    steps: list[Step] = []

    def step(kind: StepKind, title: str, detail: str, action: Callable[[Report], StepResult],
             undo: Callable[[], None] | None = None,
             cleanup: Callable[[], None] | None = None) -> None:
        steps.append(Step(name, kind, title, detail, action=action, undo=undo, cleanup=cleanup,
                          host=host.name, concurrent=True))

    # What this plan did to the directory: only then may a failure wipe it again.
    made: dict[str, bool] = {}

    # -- 6: stop, prove safe, wipe
    def stop_and_wipe(report: Report) -> StepResult:
        state = datadir.inspect(data_dir, host)
        if state.running_pid is not None:
            if not replace:
                raise UnsafeDataDirectory(
                    f"a server (pid {state.running_pid}) is running on {data_dir}: stop it "
                    "first, or pass replace=True")
            if not host.postmaster_proven(state.running_pid, data_dir):
                raise UnsafeDataDirectory(
                    f"{data_dir}/postmaster.pid names pid {state.running_pid}, which runs but "
                    "cannot be proven to be that directory's server (a recycled pid?): "
                    "pgstream signals no such process; stop the server yourself, or remove "
                    "the stale postmaster.pid if none runs")
            service.stop("fast")
        datadir.check_replaceable(data_dir, replace=replace, protected=protected, host=host)
        if not host.exists(data_dir):
            host.make_dir(data_dir, owner=user)
            made["created"] = True
            return StepResult(True, f"created {data_dir}")
        made["emptied"] = True
        if datadir.wipe_contents(data_dir, host):
            return StepResult(True, f"wiped {data_dir}")
        return StepResult(False, f"{data_dir} is empty")

    step(StepKind.WIPE, f"prove {data_dir} safe, stop its server if replacing, wipe it",
         f"checks: no server running, empty or a data directory with replace=True, not the "
         f"primary's; with replace=True and a server proven to run there: "
         f"{service.describe('stop', 'fast')}\n"
         f"then, if it holds anything: {shlex.join(commands.wipe_contents(data_dir))} (the "
         f"directory itself, its owner and mode kept); if it is missing: create it",
         stop_and_wipe)

    # -- 7: passfile and base backup
    if auth.password is not None and passfile is not None:
        steps.append(passfile_step(name, host, passfile, address=(primary_host, primary_port),
                                   user=auth.user, password=auth.password, owner=user,
                                   concurrent=True))

    argv = commands.pg_basebackup(client.bindir, client.version, data_dir, host=primary_host,
                                  port=primary_port, user=auth.user, slot=slot,
                                  application_name=name, sync=sync)
    env = {"PGPASSFILE": str(passfile)} if passfile is not None else {}

    def base_backup(report: Report) -> StepResult:
        def on_line(text: str) -> None:
            match = _PERCENT.search(text)
            report(text.strip(), float(match[1]) if match else None)

        with senders.clone(timeout):
            done = host.run(argv, user=user, env=env, timeout=timeout, cwd=data_dir,
                            on_output=on_line, what=f"pg_basebackup for {name}")
        return StepResult(True, f"cloned {primary.name} in {done.seconds:.2f} s")

    def remove_clone() -> None:
        """Remove what the clone wrote; only in a directory this plan created or emptied."""
        if not made:
            return
        standby.close()
        if service.running():
            service.kill()
            wait_for(lambda: not service.running(), timeout=timeout,
                     what=f"the server on {data_dir} to stop")
        datadir.wipe_contents(data_dir, host)
        if made.get("created"):
            datadir.remove_empty(data_dir, host)
            made.clear()

    step(StepKind.BASE_BACKUP, f"clone {primary.name} with pg_basebackup "
         f"{client.version.major} ({client.bindir})",
         shlex.join(argv) + (f"\n(env PGPASSFILE={passfile})" if passfile else ""),
         base_backup, remove_clone, cleanup=remove_clone)

    # -- 8/9: recovery configuration and the standby's own settings
    def write_recovery(report: Report) -> StepResult:
        return StepResult(True, "wrote " + ", ".join(recovery.write(host, data_dir, user)))

    step(StepKind.RECOVERY_CONFIG, f"recovery configuration for PostgreSQL "
         f"{server.version.major} ({', '.join(recovery.files)})", recovery.describe(),
         write_recovery)

    # -- 10/11: start and check
    def start(report: Report) -> StepResult:
        standby.close()
        service.start()
        standby.wait_ready(timeout)
        return StepResult(True, "started")

    def stop_again() -> None:
        standby.close()
        if service.running():
            service.stop("immediate")

    step(StepKind.START, "start the standby", service.describe("start"), start, stop_again,
         cleanup=stop_again)

    steps.append(_check_step(primary, standby, timeout))
    return steps


def already_streaming(primary: Node, standby: Standby) -> bool:
    """Is ``standby`` up, in recovery, of the same system, and streaming from ``primary``?"""
    if standby.service is None or not standby.service.running() or not standby.ping():
        return False
    try:
        return (standby.in_recovery
                and standby.system_identifier() == primary.system_identifier()
                and primary.streams_to(standby.application_name, standby.slot_name))
    except PgStreamError:
        return False


def _check_step(primary: Node, standby: Standby, timeout: float, title: str = "") -> Step:
    name = standby.name
    service = standby.service
    app, slot = standby.application_name, standby.slot_name

    def check(report: Report) -> StepResult:
        if not standby.in_recovery:
            raise ServerStateError(f"{name} started but is not in recovery: it is not a standby")
        wait_for(lambda: primary.streams_to(app, slot), timeout=timeout,
                 what=f"{name} to stream from {primary.name}",
                 detail=lambda: service.log_tail(8) if service else "")
        return StepResult(not title, "in recovery and streaming")

    return Step(name, StepKind.CHECK,
                title or f"{name} is in recovery and {primary.name} streams to it",
                queries.shown(probes.in_recovery()) + "  -- on the standby: t\n"
                + queries.shown(queries.walsender_state(app, slot))
                + f"  -- on {primary.name}: streaming",
                action=check, host=standby.host.name, concurrent=True)
