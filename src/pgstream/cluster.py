"""``Cluster``: a primary and its standbys, set up by plans, observed by status.

``Cluster.sandbox(standbys=2)`` builds a local, temporary cluster (initdb, configure, start a
primary, a slot per standby, one ``pg_basebackup`` copied for every standby, streaming) and
removes it all when the ``with`` block ends, on error or KeyboardInterrupt too.
``Cluster(primary, standbys, ...)`` wraps servers that already exist; ``cluster.setup_plan()``
is the runbook that sets them up.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from pgstream.facts import arguments
from pgstream.facts.identifiers import Secret
from pgstream.facts.lsn import Lsn
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import Host
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops import assemble, members
from pgstream.ops.check import CheckReport, Thresholds, check
from pgstream.ops.discover.build import Found
from pgstream.ops.discover.cluster import discover_cluster
from pgstream.ops.discover.found import Discovery
from pgstream.ops.discover.from_file import found_in_file
from pgstream.ops.discover.probe import NodeSpec
from pgstream.ops.failover import failover_plan
from pgstream.ops.follow import promote_alone_plan
from pgstream.ops.observe import wait_for_catchup
from pgstream.ops.plan import Plan, PlanReport, ProgressCallback
from pgstream.ops.rejoin import rejoin_plan
from pgstream.ops.remove import remove_standby_plan
from pgstream.ops.sandbox.parts import sandbox_parts
from pgstream.ops.sandbox.servers import Sandbox
from pgstream.ops.setup import ReplicationAuth
from pgstream.ops.status import ClusterStatus, HistoryEntry
from pgstream.ops.switchover import DEFAULT_MAX_LAG_BYTES, switchover_plan
from pgstream.ops.upgrade.facts import UpgradeMethod
from pgstream.ops.upgrade.plan import remove_old_cluster_plan, upgrade_plan
from pgstream.ops.view import RoleChange, rearrange
from pgstream.render import commands
from pgstream.render.sync_spec import SyncSpec


@attrs.define(eq=False)
class Cluster:
    """A primary and its streaming standbys."""

    primary: Primary
    standbys: list[Standby] = attrs.field(factory=list, converter=members.standby_list)
    auth: ReplicationAuth = attrs.field(factory=ReplicationAuth)
    primary_address: tuple[str, int] | None = None
    hba_addresses: list[str] = attrs.field(factory=list, converter=members.str_list)
    settings: dict[str, str] | None = None
    passfiles: dict[str, Path] = attrs.field(factory=dict)
    """Per standby: where its passfile goes (default: beside its data directory)."""
    _sandbox: Sandbox | None = attrs.field(default=None, alias="_sandbox")
    node_settings: dict[str, dict[str, str]] = attrs.field(factory=dict)
    """Per node: its own settings (port, cluster_name, ...), merged into its
    postgresql.auto.conf after a clone or a rewind, which copy the primary's."""
    addresses: dict[str, tuple[str, int]] = attrs.field(factory=dict, converter=members.address_map)
    """Per node: the (host, port) other nodes stream from, else taken from its conninfo when
    that names a TCP host. ``primary_address`` is the address of the node that is the primary
    when the cluster is built: it stays that node's, whichever node is primary later."""
    failed: list[Node] = attrs.field(factory=list)
    """Former primaries lost in a failover, until they rejoin."""
    history: list[HistoryEntry] = attrs.field(factory=list)
    discovery: Discovery | None = None
    """What :meth:`discover` / :meth:`from_file` found (None for a cluster built by hand)."""
    old_data_dirs: dict[str, Path] = attrs.field(factory=dict)
    """Per node: the data directory a major upgrade left, until remove_old_cluster_plan()."""
    _finalizer: Any = attrs.field(default=None, init=False)
    _stream_names: dict[str, tuple[str, str]] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        self.primary_address, self.addresses = members.checked_addresses(
            self.nodes, self.failed, self.primary, self.primary_address, self.addresses)
        if self._sandbox is not None:
            self._finalizer = weakref.finalize(self, self._sandbox.destroy)

    # -- construction
    @classmethod
    def sandbox(cls, standbys: int = 1, *, bindir: str | Path | None = None,
                base_dir: str | Path | None = None, run_as: str | None = None,
                template: bool = True, progress: ProgressCallback | None = None,
                password: str | Secret | None = None,
                client_bindir: str | Path | None = None,
                settings: Mapping[str, str] | None = None,
                wal_segsize_mb: int | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> Cluster:
        """A local, temporary primary with ``standbys`` streaming standbys (loopback, sockets),
        set up (:meth:`setup_plan`, one base backup copied for every standby:
        :mod:`pgstream.ops.sandbox.setup`) within ``timeout``; removed by :meth:`close` or the
        end of a ``with`` block. The arguments: :func:`pgstream.ops.sandbox.parts.sandbox_parts`."""
        timeout = arguments.timeout(timeout)
        parts = sandbox_parts(standbys, bindir=bindir, base_dir=base_dir, run_as=run_as,
                              template=template, password=password,
                              client_bindir=client_bindir, settings=settings,
                              wal_segsize_mb=wal_segsize_mb)
        with parts.removed_on_error():
            cluster = cls(parts.primary, list(parts.standbys), auth=parts.auth,
                          primary_address=parts.addresses[parts.primary.name],
                          hba_addresses=["127.0.0.1"], settings=parts.settings,
                          _sandbox=parts.box, node_settings=parts.node_settings,
                          addresses=parts.addresses)
            parts.setup_plan(cluster.setup_plan(server=parts.server, client=parts.client,
                                                timeout=timeout), timeout).apply(progress)
        return cluster

    @classmethod
    def discover(cls, primary_conninfo: str | NodeSpec, *,
                 standbys: Sequence[str | NodeSpec] = (), host: Host | None = None,
                 auth: ReplicationAuth | None = None, deep: bool = True) -> Cluster:
        """The running cluster around ``primary_conninfo``, learnt from the servers
        (:mod:`pgstream.ops.discover.cluster`); :attr:`discovery` says what was found and how."""
        return cls._found(discover_cluster(primary_conninfo, standbys=standbys, host=host,
                                           deep=deep), auth)

    @classmethod
    def from_file(cls, path: str | Path, *, deep: bool = True) -> Cluster:
        """The cluster a topology file lists
        (:func:`pgstream.ops.discover.from_file.found_in_file`)."""
        return cls._found(*found_in_file(path, deep=deep))

    @classmethod
    def _found(cls, found: Found, auth: ReplicationAuth | None) -> Cluster:
        cluster = cls(found.primary, list(found.standbys),
                      auth=auth or ReplicationAuth(found.replication_user or "replicator"),
                      primary_address=found.addresses.get(found.primary.name),
                      passfiles=found.passfiles, node_settings=found.node_settings,
                      addresses=found.addresses, discovery=found.discovery)
        cluster._stream_names.update(found.stream_names)
        return cluster

    # -- nodes
    @property
    def nodes(self) -> list[Node]:
        """The primary, then the standbys (cascading ones included)."""
        return [self.primary, *self.standbys]

    def node(self, name: str) -> Node:
        """The node named ``name`` (raises :class:`~pgstream.errors.InvalidInput`)."""
        return members.named(self.nodes, name, "node")

    @property
    def base_dir(self) -> Path | None:
        """The sandbox directory (None for a cluster of existing servers)."""
        return self._sandbox.base_dir if self._sandbox is not None else None

    def slot_for(self, standby: Node) -> str:
        """The slot ``standby`` streams through (``Standby.slot_name``; a former primary's:
        the one it used as a standby, else its name)."""
        if isinstance(standby, Standby):
            return standby.slot_name
        return self._stream_names.get(standby.name, (standby.name, ""))[0]

    def standby(self, name: str) -> Standby:
        """The standby named ``name`` (raises :class:`~pgstream.errors.InvalidInput`)."""
        return members.named(self.standbys, name, "standby")

    def address_of(self, node: Node) -> tuple[str, int]:
        """Where other nodes reach ``node`` for replication: its own ``addresses`` entry
        (``primary_address`` is the first primary's), else its conninfo's TCP host."""
        if node.name in self.addresses:
            return self.addresses[node.name]
        return assemble.address_from_conninfo(node)

    def passfile_of(self, node: Node) -> Path | None:
        """Where ``node`` keeps the replication password (None: the default beside its data
        directory; a sandbox shares one file)."""
        if node.name in self.passfiles:
            return self.passfiles[node.name]
        return self._sandbox.passfile if self._sandbox is not None else None

    def apply(self, change: RoleChange) -> None:
        """Rearrange the cluster after a step changed roles on the servers (the only place
        where operations' results change a cluster); record it in :attr:`history`."""
        self._stream_names.update((s.name, (s.slot_name, s.application_name))
                                  for s in self.standbys)
        self.primary, self.standbys, self.failed = rearrange(
            self.primary, self.standbys, self.failed, change, self._stream_names)
        self.node_settings.update((name, dict(own)) for name, own in change.node_settings)
        self.addresses.update(change.addresses)
        self.old_data_dirs.update(change.old_data_dirs)
        if change.record:
            self.history.append(members.history_entry(self.primary, change.operation,
                                                      change.detail))

    def record_roles(self, *, new_primary: str, rejoined: Iterable[str] = (),
                     failed: Iterable[str] = (), operation: str, detail: str,
                     note: bool = True) -> None:
        """After a promotion done outside pgstream: ``new_primary`` is the primary,
        ``rejoined`` stream from it, ``failed`` wait aside until they rejoin (a
        :class:`~pgstream.ops.view.RoleChange` given to :meth:`apply`)."""
        self.apply(RoleChange(operation, detail, new_primary=new_primary,
                              rejoined=tuple(rejoined), failed=tuple(failed), record=note))

    # -- operations (each also a plan: print it for a dry run)
    def promote_plan(self, standby: Standby | str, *, timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Promote one standby alone: it leaves the cluster (the primary and the other
        standbys carry on). To replace a primary use :meth:`switchover` / :meth:`failover`."""
        target = self.standby(standby) if isinstance(standby, str) else standby
        return promote_alone_plan(self, target, timeout=timeout)

    def follow_plan(self, standby: Standby | str, upstream: Node | str, *,
                    timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Re-point a standby at another upstream (:func:`pgstream.ops.assemble.follow_plan`)."""
        return assemble.follow_plan(self, standby, upstream, timeout=timeout)

    def follow(self, standby: Standby | str, upstream: Node | str,
               progress: ProgressCallback | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`follow_plan` (which records it in :attr:`history`)."""
        return self.follow_plan(standby, upstream, timeout=timeout).apply(progress)

    def switchover_plan(self, to: Standby | str, *,
                        max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                        timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """A planned switchover to ``to`` (see :mod:`pgstream.ops.switchover`); print = dry run."""
        return switchover_plan(self, to, max_lag_bytes=max_lag_bytes, timeout=timeout)

    def switchover(self, to: Standby | str, *, max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                   progress: ProgressCallback | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`switchover_plan`; raises what it raises, or
        :class:`~pgstream.errors.PlanFailed`."""
        return self.switchover_plan(to, max_lag_bytes=max_lag_bytes,
                                    timeout=timeout).apply(progress)

    def failover_plan(self, candidate: Standby | str | None = None, *, force: bool = False,
                      timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """An unplanned failover (see :mod:`pgstream.ops.failover`); print = dry run."""
        return failover_plan(self, candidate, force=force, timeout=timeout)

    def failover(self, candidate: Standby | str | None = None, *, force: bool = False,
                 progress: ProgressCallback | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`failover_plan`; raises what it raises, or
        :class:`~pgstream.errors.PlanFailed`."""
        return self.failover_plan(candidate, force=force, timeout=timeout).apply(progress)

    def rejoin_plan(self, node: Node | str, *, rewind: bool | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """A former primary back as a standby (see :mod:`pgstream.ops.rejoin`)."""
        return rejoin_plan(self, members.node_or_failed(self, node), rewind=rewind,
                           timeout=timeout)

    def rejoin(self, node: Node | str, *, rewind: bool | None = None,
               progress: ProgressCallback | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`rejoin_plan`."""
        return self.rejoin_plan(node, rewind=rewind, timeout=timeout).apply(progress)

    def synchronous_plan(self, spec: SyncSpec, *, synchronous_commit: str | None = None,
                         wait_for: Mapping[str, str] | None = None,
                         timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Set ``synchronous_standby_names`` from a typed spec (see :mod:`pgstream.ops.sync`)."""
        return assemble.synchronous_plan(self, spec, synchronous_commit=synchronous_commit,
                                         wait_for=wait_for, timeout=timeout)

    def set_synchronous(self, spec: SyncSpec, *, synchronous_commit: str | None = None,
                        wait_for: Mapping[str, str] | None = None,
                        progress: ProgressCallback | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`synchronous_plan` (a change is recorded in :attr:`history`)."""
        return self.synchronous_plan(spec, synchronous_commit=synchronous_commit,
                                     wait_for=wait_for, timeout=timeout).apply(progress)

    def add_standby_plan(self, standby: Standby, *, upstream: Node | str | None = None,
                         replace: bool = False, timeout: float = DEFAULT_TIMEOUT,
                         hba_address: str | None = None,
                         node_settings: Mapping[str, str] | None = None,
                         address: tuple[str, int] | None = None) -> Plan:
        """Clone one more standby from ``upstream`` (default the primary), everything checked
        first (:func:`pgstream.ops.assemble.add_standby_plan`)."""
        return assemble.add_standby_plan(self, standby, upstream=upstream, replace=replace,
                                         sync=self._sandbox is None, timeout=timeout,
                                         hba_address=hba_address, node_settings=node_settings,
                                         address=address)

    def remove_standby_plan(self, standby: Standby | str, *, wipe: bool = False,
                            timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Take a standby out (see :mod:`pgstream.ops.remove`); print = dry run."""
        return remove_standby_plan(self, standby, wipe=wipe, timeout=timeout)

    def remove_standby(self, standby: Standby | str, *, wipe: bool = False,
                       progress: ProgressCallback | None = None,
                       timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`remove_standby_plan`."""
        return self.remove_standby_plan(standby, wipe=wipe, timeout=timeout).apply(progress)

    def add_standby(self, name: str, *, upstream: Node | str | None = None,
                    progress: ProgressCallback | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Standby:
        """Sandbox: clone and start one more standby, from the primary or from a standby
        (checked first: :func:`pgstream.ops.assemble.sandbox_standby_plan`)."""
        node, plan = assemble.sandbox_standby_plan(self, self._sandbox, name,
                                                   upstream=upstream, timeout=timeout)
        plan.apply(progress)
        return node

    def upgrade_plan(self, to: str | Path | Installation, *, method: UpgradeMethod = "rsync",
                     mode: commands.TransferMode | None = None, analyze: bool = True,
                     data_dirs: Mapping[str, Path] | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Major upgrade to the installation ``to``, standbys included (see
        :mod:`pgstream.ops.upgrade.plan`); pre-checked, ``print(plan)`` = dry run."""
        box = self._sandbox
        return upgrade_plan(self, to, method=method, mode=mode, analyze=analyze,
                            data_dirs=data_dirs, register=box.adopt if box else None,
                            sync=box is None, timeout=timeout)

    def upgrade(self, to: str | Path | Installation, *, method: UpgradeMethod = "rsync",
                mode: commands.TransferMode | None = None, analyze: bool = True,
                data_dirs: Mapping[str, Path] | None = None,
                progress: ProgressCallback | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        """Apply :meth:`upgrade_plan`."""
        return self.upgrade_plan(to, method=method, mode=mode, analyze=analyze,
                                 data_dirs=data_dirs, timeout=timeout).apply(progress)

    def remove_old_cluster_plan(self) -> Plan:
        """Remove the data directories a major upgrade kept (:attr:`old_data_dirs`)."""
        return remove_old_cluster_plan(self, self.old_data_dirs)

    # -- setup
    def setup_plan(self, *, replace: bool = False, server: Installation | None = None,
                   client: Installation | None = None, sync: bool | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """The runbook: prepare the primary (seed steps 1-5), clone each standby (6-11); all
        validated while building the plan (:func:`pgstream.ops.assemble.setup_plan`)."""
        return assemble.setup_plan(
            self, auth=self.auth, settings=self.settings, hba_addresses=self.hba_addresses,
            replace=replace, server=server, client=client,
            sync=(self._sandbox is None) if sync is None else sync, timeout=timeout)

    # -- waiting and status
    def wait_for_catchup(self, timeout: float = 30.0) -> Lsn:
        """Wait until every standby has replayed the primary's current LSN; return that LSN."""
        return wait_for_catchup(self, arguments.timeout(timeout))

    def status(self) -> ClusterStatus:
        """Positions, lag, sync state, slots and recovery of every node, asked at once
        (:func:`pgstream.ops.observe.cluster_status`), each problem as its :meth:`check` code."""
        return members.status(self, self.history)

    def check(self, *, thresholds: Thresholds | None = None,
              timeout: float = 10.0) -> CheckReport:
        """Why standbys do not stream, and what else will break replication
        (:func:`pgstream.ops.check.check`); never raises for a node's trouble."""
        return check(self, thresholds=thresholds, timeout=timeout)

    # -- lifetime
    def close(self) -> None:
        """Close connections; for a sandbox, stop every server and remove its directory."""
        for node in [*self.nodes, *self.failed]:
            node.close()
        if self._finalizer is not None:
            self._finalizer()

    def detach(self) -> Path | None:
        """Keep a sandbox running after this object is gone; returns its directory."""
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._sandbox is not None:
            self._sandbox.keep()
        for node in self.nodes:
            node.close()
        return self.base_dir

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f", base_dir={str(self.base_dir)!r}" if self.base_dir else ""
        return (f"Cluster(primary={self.primary.name!r}, "
                f"standbys={[s.name for s in self.standbys]!r}{where})")
