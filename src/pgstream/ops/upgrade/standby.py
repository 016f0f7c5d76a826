"""The standbys' side of a major upgrade: PostgreSQL's rsync method, or a fresh clone.

rsync (``pg_upgrade``'s documented method, after the primary's ``pg_upgrade --link`` and
before its first start): ``rsync --archive --delete --hard-links --size-only
--no-inc-recursive OLD_PRIMARY NEW_PRIMARY STANDBY_BASE``. Only files whose size differs
travel; the new directory's hard links become links to the standby's own old files. The
standby's old directory must carry the primary's old directory's name inside
``STANDBY_BASE``: pgstream renames it into a staging directory beside it for the transfer and
back afterwards, then renames the copied new directory to the standby's new place (renames on
one file system keep the links). The copy then gets the standby's own settings and the
recovery configuration of the *new* major, and starts once the primary runs with its slots.

Re-clone: ``pg_basebackup`` of the upgraded primary into the standby's new data directory
(the clone steps of :mod:`pgstream.ops.clone`); the old standby directory is left untouched.
"""

from __future__ import annotations

import shlex

from pgstream.errors import ServerStateError
from pgstream.hosts import binaries
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.ops.recovery import RecoveryConfig, passfile_for, write_passfile
from pgstream.ops.upgrade.facts import UpgradeFacts, write_access_files, write_carried
from pgstream.ops.view import ClusterView
from pgstream.render import commands, debian, probes, queries
from pgstream.render.config import passfile_line


def rsync_steps(cluster: ClusterView, standby: Standby, facts: UpgradeFacts) -> list[Step]:
    """Transfer the upgraded primary to ``standby`` and give the copy its own configuration
    (run after ``pg_upgrade``, before the new primary's first start)."""
    primary = cluster.primary
    mine, theirs = facts.nodes[standby.name], facts.nodes[primary.name]
    stage = mine.old_dir.parent / f".pgstream_upgrade_{mine.old_dir.name}"
    host, user = standby.host, standby.os_user
    local = host.name == primary.host.name
    target = f"{stage}/" if local else f"{host.name}:{stage}/"
    sync = commands.rsync_upgrade(theirs.old_dir, theirs.new_dir, target)
    _base, rel_old, rel_new = commands.rsync_layout(theirs.old_dir, theirs.new_dir)
    moves = [commands.rename(mine.old_dir, stage / rel_old),
             commands.rename(stage / rel_old, mine.old_dir),
             commands.rename(stage / rel_new, mine.new_dir)]
    cleanup = commands.remove_tree(stage)
    # Directories the renames need: inside the staging one, and the new one's parent (Debian:
    # /var/lib/postgresql/NEW, which nothing else made on this host).
    parents = [p for p in ((stage / rel_old).parent, mine.new_dir.parent) if p != stage]

    def transfer(report: Report) -> StepResult:
        if host.exists(stage) or host.exists(mine.new_dir):
            raise ServerStateError(f"{stage} or {mine.new_dir} exists already")
        host.make_dir(stage, owner=user)
        for parent in parents:
            if not host.is_dir(parent):
                host.make_dir(parent, mode=0o755, owner=user)
        host.run(moves[0], user=user, what="rename into the staging directory")
        done = primary.host.run(sync, user=primary.os_user, timeout=24 * 3600.0,
                                what=f"rsync to {standby.name}")
        for argv in moves[1:]:
            # Debian: /var/lib/postgresql/NEW may be root's (pg_createcluster made it); the
            # host's user is root there (a pre-check), and a rename keeps every owner.
            host.run(argv, user=None if mine.debian else user,
                     what="rename out of the staging directory")
        host.run(cleanup, user=user, what="remove the staging directory")
        return StepResult(True, f"rsync done in {done.seconds:.1f} s")

    owner = user.name if user is not None else "the current user"
    detail = "\n".join([
        # What host.make_dir does (owned by the standby's OS user), as the SSH host runs it.
        shlex.join(commands.make_dir(stage)) + f"  # owned by {owner}",
        *(shlex.join(commands.make_dir(p, 0o755)) + f"  # if missing, owned by {owner}"
          for p in parents), shlex.join(moves[0]),
        shlex.join(sync) + f"   # on {primary.host.name}", *(shlex.join(m) for m in moves[1:]),
        shlex.join(cleanup)])
    steps = [Step(standby.name, StepKind.RSYNC, f"rsync the upgraded {primary.name} to "
                  f"{standby.name} (only files of another size travel)", detail,
                  action=transfer, host=host.name, concurrent=True)]
    steps.append(_config_step(cluster, standby, facts))
    if mine.debian is not None:
        steps.insert(1, debian_config_step(cluster.primary, standby, facts))
    return steps


def debian_config_step(primary: Primary, standby: Standby, facts: UpgradeFacts) -> Step:
    """A Debian standby's new configuration directory, ``/etc/postgresql/NEW/NAME``: the
    upgraded primary's files that ``pg_createcluster`` wrote (``postgresql.conf`` with this
    cluster's paths, name and port, ``start.conf``, ``pg_ctl.conf``, ``environment``) and an
    empty ``conf.d``; its own ``pg_hba.conf`` and ``pg_ident.conf`` follow with its settings.
    (A standby's data is a copy of the primary's, which ``pg_createcluster`` cannot make.)"""
    theirs, mine = facts.nodes[primary.name], facts.nodes[standby.name]
    assert theirs.debian is not None and mine.debian is not None
    source, target = theirs.debian.new_config, mine.debian.new_config
    layout = mine.debian
    owner = standby.os_user

    def action(report: Report) -> StepResult:
        if standby.host.exists(target):
            raise ServerStateError(f"{target} appeared since the pre-checks")
        texts = {name: primary.host.read_text(source / name) for name in debian.COPIED_FILES
                 if primary.host.exists(source / name)}
        texts["postgresql.conf"] = debian.rewrite_conf(
            texts.get("postgresql.conf", ""), major=layout.new_major,
            cluster=layout.name, data_dir=mine.new_dir, port=layout.port)
        for path in (target.parent, target, target / "conf.d", mine.new_dir.parent):
            if not standby.host.is_dir(path):
                standby.host.make_dir(path, mode=0o755, owner=owner)
        for name, text in texts.items():
            standby.host.write_text(target / name, text, mode=0o644, owner=owner)
        return StepResult(True, f"wrote {target} ({', '.join(sorted(texts))}, conf.d)")

    return Step(standby.name, StepKind.SETTING,
                f"{standby.name}'s Debian configuration {target}",
                f"{', '.join(debian.COPIED_FILES)} from {primary.name}'s {source} (on "
                f"{primary.host.name}), postgresql.conf with data_directory = {mine.new_dir}, "
                f"port = {mine.debian.port}, cluster_name = "
                f"'{mine.debian.new_major}/{mine.debian.name}' and this cluster's file paths; "
                f"an empty {target}/conf.d; {mine.new_dir.parent} if missing", action=action,
                host=standby.host.name, concurrent=True)


def _config_step(cluster: ClusterView, standby: Standby, facts: UpgradeFacts) -> Step:
    mine = facts.nodes[standby.name]
    version = facts.new.version
    auth = cluster.auth
    address = cluster.address_of(cluster.primary)
    passfile, named = passfile_for(version, mine.new_dir, standby.os_user,
                                   cluster.passfile_of(standby))
    recovery = RecoveryConfig.build(
        version, upstream=address, user=auth.user, application_name=standby.name,
        slot=cluster.slot_for(standby), passfile=passfile if named else None)
    own = cluster.node_settings.get(standby.name) or {}
    host, user = standby.host, standby.os_user

    def action(report: Report) -> StepResult:
        write_carried(host, mine, user, extra=own)
        written = recovery.write(host, mine.new_dir, user)
        if auth.password is not None:
            write_passfile(host, passfile, address=address, user=auth.user,
                           password=auth.password, owner=user)
        return StepResult(True, "wrote " + ", ".join(written))

    shown = recovery.describe() + mine.describe_carry()
    if auth.password is not None:
        shown += f"\n{passfile} (0600): " + passfile_line(
            address[0], address[1], auth.user, "********").strip()
    return Step(standby.name, StepKind.RECOVERY_CONFIG,
                f"{standby.name}'s own settings and the recovery configuration of PostgreSQL "
                f"{version.major}", shown, action=action, host=host.name, concurrent=True)


def start_standby_steps(future_primary: Primary, future: Node, timeout: float) -> list[Step]:
    """Start an rsync'ed standby and check it streams from the new primary through its slot."""
    service = future.service
    assert service is not None
    name = future.name

    def start(report: Report) -> StepResult:
        future.close()
        service.start()
        future.wait_ready(timeout)
        return StepResult(True, "started")

    def check(report: Report) -> StepResult:
        if not future.in_recovery:
            raise ServerStateError(f"{name} started but is not in recovery")
        wait_for(lambda: future_primary.streams_to(name), timeout=timeout,
                 what=f"{name} to stream from {future_primary.name}",
                 detail=lambda: service.log_tail(8))
        return StepResult(True, "in recovery and streaming")

    return [
        Step(name, StepKind.START, f"start {name} on PostgreSQL "
             f"{service.version.major if service.version else ''}", service.describe("start"),
             action=start, host=future.host.name, concurrent=True),
        Step(name, StepKind.CHECK, f"{name} is in recovery and streams from "
             f"{future_primary.name}",
             queries.shown(probes.in_recovery()) + "  -- on the standby: t\n"
             + queries.shown(queries.walsender_state(name))
             + f"  -- on {future_primary.name}: streaming", action=check,
             host=future.host.name, concurrent=True)]


def reclone_steps(cluster: ClusterView, standby: Standby, facts: UpgradeFacts,
                  future_primary: Primary, future: Standby, *, sync: bool,
                  timeout: float) -> list[Step]:
    """Clone the upgraded primary into ``standby``'s new data directory."""
    server = binaries.probe(facts.new.bindir, host=standby.host)
    client = binaries.find_client("pg_basebackup", facts.new.version, prefer=server)
    host, port = cluster.address_of(cluster.primary)
    own = {**facts.nodes[standby.name].settings, **(cluster.node_settings.get(standby.name)
                                                    or {})}
    steps = standby_clone_steps(
        future_primary, future, auth=cluster.auth, primary_host=host, primary_port=port,
        slot=cluster.slot_for(standby), server=server, client=client,
        passfile=cluster.passfile_of(standby), replace=False, node_settings=own, sync=sync,
        timeout=timeout, parent_made=facts.nodes[standby.name].debian is not None)
    if facts.nodes[standby.name].debian is not None:
        steps.insert(0, debian_config_step(future_primary, standby, facts))
        steps.insert(1, _hba_step(standby, facts))
    return steps


def _hba_step(standby: Standby, facts: UpgradeFacts) -> Step:
    mine = facts.nodes[standby.name]
    host, user = standby.host, standby.os_user

    def action(report: Report) -> StepResult:
        write_access_files(host, mine, user)
        return StepResult(True, "pg_hba.conf, pg_ident.conf")

    return Step(standby.name, StepKind.SETTING, f"{standby.name}'s own pg_hba.conf and "
                "pg_ident.conf", f"{mine.new_config_dir}/pg_hba.conf, pg_ident.conf: the old "
                "ones", action=action, host=host.name, concurrent=True)
