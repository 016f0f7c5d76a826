"""Major version upgrade of a replicated cluster, standbys included: the plan.

Pre-checks first (:mod:`pgstream.ops.upgrade.checks`; a refusal changes nothing), then the
steps of PostgreSQL's own procedure: the new cluster initialized and given the old one's
settings, ``pg_hba.conf`` and ``pg_ident.conf``; the primary stopped, then each standby once
it has replayed the primary's shutdown checkpoint; ``pg_upgrade`` (``--link`` by default
where one file system allows it, else ``--copy``; ``--clone`` on request); then the
standbys: by the documented rsync (after the proof that every node stopped at the same
checkpoint) or by a new clone of the upgraded primary; the physical slots recreated, reserved,
before any standby starts; ``vacuumdb --analyze-in-stages``.

The plan marks its point of no return: before the first rsync (which changes the old standby
directories), or before the new primary's first start (after which ``--link``'s shared files
are the new cluster's). Anything that fails or is interrupted before it rolls back to the old
cluster running as before. The old data directories are kept until
:func:`remove_old_cluster_plan`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from pgstream.errors import InvalidInput, ServerStateError, UnsafeDataDirectory
from pgstream.facts import arguments
from pgstream.hosts import datadir
from pgstream.hosts.binaries import Installation
from pgstream.hosts.service import DebianClusterService
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.setup import slot_step
from pgstream.ops.upgrade.checks import gather
from pgstream.ops.upgrade.facts import UpgradeMethod, remove_dir
from pgstream.ops.upgrade.primary import (
    Register,
    UpgradeState,
    analyze_step,
    carry_step,
    debian_start_conf_step,
    future_nodes,
    initdb_step,
    no_return_step,
    pg_upgrade_step,
    proof_step,
    recheck_step,
    record_step,
    role_step,
    start_primary_step,
    stop_primary_step,
    stop_standby_step,
)
from pgstream.ops.upgrade.standby import reclone_steps, rsync_steps, start_standby_steps
from pgstream.ops.view import ClusterView
from pgstream.render import commands, debian


def upgrade_plan(cluster: ClusterView, to: str | Path | Installation, *,
                 method: UpgradeMethod = "rsync",
                 mode: commands.TransferMode | None = None, analyze: bool = True,
                 data_dirs: Mapping[str, Path] | None = None,
                 register: Register | None = None, sync: bool = True,
                 timeout: float = DEFAULT_TIMEOUT) -> Plan:
    """The whole upgrade to the installation ``to`` (its bin directory), checked first.

    ``method``: ``"rsync"`` (PostgreSQL's documented method) or ``"reclone"``. ``mode``:
    pg_upgrade's ``"link"``, ``"copy"`` or ``"clone"`` (None: link where the old and new data
    directories share a file system, else copy). ``data_dirs``: per node, its new data
    directory (default: the old path with its major replaced, else ``<dir>_<major>``).
    ``register(key, service)`` is told of each new server before it starts (a sandbox stops
    them too). ``sync=False``: no fsync (throw-away clusters).
    """
    timeout = arguments.timeout(timeout)
    facts = gather(cluster, to, method=method, mode=mode, data_dirs=data_dirs, sync=sync)
    primary = cluster.primary
    state = UpgradeState()
    futures = future_nodes(cluster, facts)
    future_primary = futures[primary.name]
    assert isinstance(future_primary, Primary)
    steps = [recheck_step(cluster, facts), initdb_step(primary, facts, state),
             carry_step(primary, facts), stop_primary_step(primary, facts, state, timeout)]
    steps += [stop_standby_step(s, state, timeout) for s in cluster.standbys]
    if method == "rsync" and cluster.standbys:
        steps.append(proof_step(cluster, facts))
    steps.append(pg_upgrade_step(primary, facts, state))
    if method == "rsync" and cluster.standbys:
        why = ("The rsync below rewrites the old standby directories, and the new primary's "
               "first start writes to files that --link shares with the old cluster.")
    else:
        why = ("The new primary's first start below writes to the files that --link shares "
               "with the old cluster (and writes it accepts exist only in the new one).")
    steps.append(no_return_step(primary, state, why))
    if method == "rsync":
        for standby in cluster.standbys:
            steps += rsync_steps(cluster, standby, facts)
    steps.append(start_primary_step(future_primary, futures, facts, register, timeout))
    steps.append(role_step(future_primary, cluster.auth))
    steps += [slot_step(future_primary, slot) for slot in facts.slots]
    for standby in cluster.standbys:
        future = futures[standby.name]
        if method == "rsync":
            steps += start_standby_steps(future_primary, future, timeout)
        else:
            assert isinstance(future, Standby)
            steps += reclone_steps(cluster, standby, facts, future_primary, future,
                                   sync=sync, timeout=timeout)
    steps.append(record_step(cluster, facts, futures))
    steps += [debian_start_conf_step(n, facts) for n in cluster.nodes
              if facts.nodes[n.name].debian is not None]
    if analyze:
        steps.append(analyze_step(future_primary, facts))
    names = ", ".join(s.name for s in cluster.standbys) or "no standbys"
    return Plan(f"upgrade {primary.name} ({names}) from PostgreSQL {primary.version.major} "
                f"to {facts.new.version.major}: pg_upgrade --{facts.mode}, standbys by "
                f"{method}", steps)


def remove_old_cluster_plan(cluster: ClusterView, old_data_dirs: Mapping[str, Path]) -> Plan:
    """Remove the data directories a major upgrade kept (``old_data_dirs``: per node).

    Each is checked first: not a node's current data directory (nor inside or around one), no
    server running on it, a PostgreSQL data directory (``PG_VERSION``). Removing one after
    ``--link`` leaves the new cluster's files in place (they are other links to them).
    """
    nodes = {n.name: n for n in [*cluster.nodes, *cluster.failed]}
    steps: list[Step] = []
    for name, old in old_data_dirs.items():
        if name not in nodes:
            raise InvalidInput(f"no node named {name!r} in this cluster")
        node = nodes[name]
        host = node.host
        current = [Path(n.data_dir) for n in nodes.values()
                   if n.data_dir is not None and n.host.name == host.name]
        if not host.exists(old):
            steps.append(Step(name, StepKind.WIPE, f"remove {old}", f"{old}: already gone",
                              action=lambda report: StepResult(False, "already gone"),
                              host=host.name))
            continue
        for path in current:
            if path == old or path.is_relative_to(old) or old.is_relative_to(path):
                raise UnsafeDataDirectory(f"refusing to remove {old}: it is, holds or lies "
                                          f"inside {path}, a current data directory")
        state = datadir.inspect(old, host)
        if state.running_pid is not None or not state.is_data_dir:
            raise UnsafeDataDirectory(
                f"refusing to remove {old}: " + ("a server runs on it" if state.running_pid
                                                 else "it is not a PostgreSQL data directory"))

        drop = _old_debian_cluster(node, old, state.version)
        argv = drop if drop is not None else commands.remove_tree(old)

        def remove(report: Report, old: Path = old, node_name: str = name,
                   argv: tuple[str, ...] = argv, debian: bool = drop is not None) -> StepResult:
            again = datadir.inspect(old, nodes[node_name].host)
            if again.running_pid is not None:
                raise ServerStateError(f"a server started on {old} since the plan was made")
            if debian:
                nodes[node_name].host.run(argv, what="pg_dropcluster (old major)", timeout=300)
            remove_dir(nodes[node_name].host, old, nodes[node_name].os_user)
            return StepResult(True, f"removed {old}" + (" and its Debian configuration"
                                                        if debian else ""))

        what = (f"remove the old Debian cluster {state.version}/"
                f"{drop[-1]} (data {old} and configuration)" if drop is not None
                else f"remove the old data directory {old} (PostgreSQL {state.version})")
        steps.append(Step(name, StepKind.WIPE, what, shlex.join(argv), action=remove,
                          host=host.name))
    return Plan("remove the old cluster's data directories", steps)


def _old_debian_cluster(node: Node, old: Path, major: str | None) -> tuple[str, ...] | None:
    """``pg_dropcluster OLD NAME`` where ``old`` is the data directory of the Debian cluster
    ``OLD/NAME`` that a Debian node was upgraded from (its configuration directory names
    ``old`` as its data directory), else None (remove the directory alone)."""
    if not isinstance(node.service, DebianClusterService) or not major:
        return None
    conf = debian.config_dir(major, node.service.cluster) / "postgresql.conf"
    if major == node.service.major or not node.host.exists(conf):
        return None
    text = node.host.read_text(conf)
    if not re.search(r"^\s*data_directory\s*=\s*'" + re.escape(str(old)) + r"'", text,
                     re.MULTILINE):
        return None
    return commands.pg_dropcluster(major, node.service.cluster)
