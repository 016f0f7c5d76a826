"""``Cluster``: a primary and its standbys, set up by plans, observed by status.

``Cluster.sandbox(standbys=2)`` builds a local, temporary cluster (initdb, configure, start a
primary, a slot per standby, ``pg_basebackup`` clones, streaming) and removes it all when the
``with`` block ends, on error or KeyboardInterrupt too. ``Cluster(primary, standbys, ...)``
wraps servers that already exist; ``cluster.setup_plan()`` is the runbook that sets them up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import time
import weakref
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.errors import (
    BinaryNotFound,
    InvalidInput,
    NodeUnreachable,
    NotAvailable,
    PgStreamError,
    QueryError,
)
from pgstream.facts import identifiers
from pgstream.facts.identifiers import Secret
from pgstream.facts.lsn import Lsn
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import server_user
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.nodes.node import Node, Primary, Standby, as_primary, as_standby
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.clone import standby_clone_steps
from pgstream.ops.failover import failover_plan
from pgstream.ops.follow import follow_steps, promote_step
from pgstream.ops.plan import Plan, PlanReport, ProgressCallback, Report, Step, StepKind, StepResult
from pgstream.ops.rejoin import rejoin_plan
from pgstream.ops.sandbox import Sandbox
from pgstream.ops.setup import ReplicationAuth, primary_setup_steps, slot_step
from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus
from pgstream.ops.switchover import DEFAULT_MAX_LAG_BYTES, switchover_plan
from pgstream.ops.sync import synchronous_plan
from pgstream.ops.upgrade import remove_old_cluster_plan, upgrade_plan
from pgstream.ops.upgrade_facts import UpgradeMethod
from pgstream.ops.view import RoleChange
from pgstream.render import commands, queries
from pgstream.render.config import ConfigRenderer
from pgstream.render.sync_spec import SyncSpec

MAX_SANDBOX_STANDBYS = 16


def _standby_list(items: Iterable[Standby]) -> list[Standby]:
    return list(items)


def _str_list(items: Iterable[str]) -> list[str]:
    return list(items)


@attrs.define(eq=False)
class Cluster:
    """A primary and its streaming standbys."""

    primary: Primary
    standbys: list[Standby] = attrs.field(factory=list, converter=_standby_list)
    auth: ReplicationAuth = attrs.field(factory=ReplicationAuth)
    primary_address: tuple[str, int] | None = None
    hba_addresses: list[str] = attrs.field(factory=list, converter=_str_list)
    settings: dict[str, str] | None = None
    passfiles: dict[str, Path] = attrs.field(factory=dict)
    """Per standby: where its passfile goes (default: beside its data directory)."""
    _sandbox: Sandbox | None = attrs.field(default=None, alias="_sandbox")
    node_settings: dict[str, dict[str, str]] = attrs.field(factory=dict)
    """Per node: its own settings (port, cluster_name, ...), merged into its
    postgresql.auto.conf after a clone or a rewind, which copy the primary's."""
    addresses: dict[str, tuple[str, int]] = attrs.field(factory=dict)
    """Per node: the (host, port) other nodes stream from (primary_address for the primary,
    else taken from its conninfo when that names a TCP host)."""
    failed: list[Node] = attrs.field(factory=list)
    """Former primaries lost in a failover, until they rejoin."""
    history: list[HistoryEntry] = attrs.field(factory=list)
    old_data_dirs: dict[str, Path] = attrs.field(factory=dict)
    """Per node: the data directory a major upgrade left, until remove_old_cluster_plan()."""
    _finalizer: Any = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise InvalidInput(f"node names must be unique: {', '.join(names)}")
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
        """A local, temporary primary with ``standbys`` streaming standbys (loopback, sockets).

        Server programs come from ``bindir``, ``$PGSTREAM_BINDIR`` or discovery (see
        :mod:`pgstream.hosts.binaries`); ``pg_basebackup`` from the same place or a newer one. As
        root, servers run as ``run_as`` (default ``postgres``). ``template`` reuses a cached
        initdb result (``~/.cache/pgstream``) to start faster. ``password`` is the replication
        role's (random by default); it reaches the standbys through a 0600 passfile only.
        ``client_bindir`` picks the ``pg_basebackup`` (it must be of the server's major or newer).
        ``settings`` are added to the primary's before its first start (standbys inherit them);
        ``wal_segsize_mb`` is initdb's ``--wal-segsize`` (11+), e.g. 1 for slot-limit tests.
        """
        if isinstance(standbys, bool) or not isinstance(standbys, int) or not (
                0 <= standbys <= MAX_SANDBOX_STANDBYS):
            raise InvalidInput(f"standbys must be an integer from 0 to {MAX_SANDBOX_STANDBYS}")
        auth = ReplicationAuth("replicator", password or secrets.token_urlsafe(24))
        server = binaries.find_server(bindir)
        asked = binaries.probe(client_bindir) if client_bindir is not None else server
        client = binaries.find_client("pg_basebackup", server.version, prefer=asked)
        if client_bindir is not None and client.bindir != asked.bindir:
            raise BinaryNotFound(
                f"pg_basebackup {asked.version.major} in {asked.bindir} cannot clone a "
                f"PostgreSQL {server.version.major} server: give client tools of "
                f"{server.version.major} or newer")
        user = server_user(run_as)
        if wal_segsize_mb is not None and not server.version.adapter.has(
                "option", "--wal-segsize", "initdb"):
            raise NotAvailable(f"initdb --wal-segsize needs PostgreSQL 11 or newer, not "
                               f"{server.version.major}", name="--wal-segsize", since="11")
        box = Sandbox.create(server, user, base_dir, template=template,
                             wal_segsize_mb=wal_segsize_mb)
        try:
            renderer = ConfigRenderer(server.version)
            wanted = renderer.primary_settings(
                listen_addresses="127.0.0.1", wal_keep_segments=4,
                wal_segment_size_mb=wal_segsize_mb or 16)
            wanted.update(settings or {})
            primary = box.init_primary("primary", wanted)
            nodes = [box.standby_node(f"standby{i}") for i in range(1, standbys + 1)]
            own = {node.name: settings for node, settings in nodes}
            own[primary.name] = box.node_settings(primary.name, primary_port(primary))
            cluster = cls(
                primary, [node for node, _ in nodes],
                auth=auth,
                primary_address=("127.0.0.1", primary_port(primary)),
                hba_addresses=["127.0.0.1"], settings=wanted,
                _sandbox=box, node_settings=own,
                addresses={n.name: ("127.0.0.1", primary_port(n))
                           for n in [primary, *(node for node, _ in nodes)]},
            )
            cluster.setup_plan(server=server, client=client, timeout=timeout).apply(progress)
        except BaseException:
            box.destroy()
            raise
        return cluster

    # -- nodes
    @property
    def nodes(self) -> list[Node]:
        return [self.primary, *self.standbys]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise InvalidInput(f"no node named {name!r} (nodes: "
                           f"{', '.join(n.name for n in self.nodes)})")

    @property
    def base_dir(self) -> Path | None:
        """The sandbox directory (None for a cluster of existing servers)."""
        return self._sandbox.base_dir if self._sandbox is not None else None

    def slot_for(self, standby: Node) -> str:
        return standby.name

    def standby(self, name: str) -> Standby:
        for standby in self.standbys:
            if standby.name == name:
                return standby
        raise InvalidInput(f"no standby named {name!r} (standbys: "
                           f"{', '.join(s.name for s in self.standbys) or 'none'})")

    def address_of(self, node: Node) -> tuple[str, int]:
        """Where other nodes reach ``node`` for replication."""
        if node.name in self.addresses:
            return self.addresses[node.name]
        if node.name == self.primary.name and self.primary_address is not None:
            return self.primary_address
        return _address_of(node)

    def passfile_of(self, node: Node) -> Path | None:
        """Where ``node`` keeps the replication password (None: the default beside its data
        directory; a sandbox shares one file)."""
        if node.name in self.passfiles:
            return self.passfiles[node.name]
        return self._sandbox.passfile if self._sandbox is not None else None

    def apply(self, change: RoleChange) -> None:
        """Rearrange the cluster after a plan step changed roles on the servers (the only
        place where operations' results change a cluster), and record it in :attr:`history`.
        """
        everyone = {n.name: n for n in [*self.nodes, *self.failed]}
        old_primary = self.primary.name
        new_primary = change.new_primary or old_primary
        lost, back, gone = set(change.failed), set(change.rejoined), set(change.detached)
        head = everyone[new_primary]
        standbys: list[Standby] = []
        for name, node in everyone.items():
            if name == new_primary or name in lost or name in gone:
                continue
            if name in back:
                standbys.append(as_standby(node, None))
            elif isinstance(node, Standby):
                if node.upstream in (new_primary, old_primary):
                    node.upstream = None  # None: streams from the primary
                standbys.append(node)
        standbys += [s for s in change.added if s.name not in everyone]
        for name, upstream in change.upstreams:
            for standby in standbys:
                if standby.name == name:
                    standby.upstream = None if upstream == new_primary else upstream
        self.failed = [n for n in self.failed
                       if n.name not in back and n.name != new_primary and n.name not in gone]
        self.failed += [everyone[name] for name in lost if name in everyone]
        self.primary = head if isinstance(head, Primary) else as_primary(head)
        self.standbys = standbys
        self.old_data_dirs.update(change.old_data_dirs)
        if change.record:
            self._note(change.operation, change.detail)

    def record_roles(self, *, new_primary: str, rejoined: Iterable[str] = (),
                     failed: Iterable[str] = (), operation: str, detail: str,
                     note: bool = True) -> None:
        """After a promotion done outside pgstream: ``new_primary`` is the primary,
        ``rejoined`` stream from it, ``failed`` wait aside until they rejoin (a
        :class:`~pgstream.ops.view.RoleChange` given to :meth:`apply`)."""
        self.apply(RoleChange(operation, detail, new_primary=new_primary,
                              rejoined=tuple(rejoined), failed=tuple(failed), record=note))

    def _note(self, operation: str, detail: str) -> None:
        timeline = None
        with contextlib.suppress(PgStreamError):
            timeline = self.primary.timeline()
        self.history.append(HistoryEntry(dt.datetime.now(dt.UTC), operation, detail, timeline))

    # -- operations (each also a plan: print it for a dry run)
    def promote_plan(self, standby: Standby | str, *, timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Promote one standby alone: it leaves the cluster (the primary and the other
        standbys carry on). To replace a primary use :meth:`switchover` / :meth:`failover`."""
        target = self.standby(standby) if isinstance(standby, str) else standby
        old = self.primary

        def record(report: Report) -> StepResult:
            with contextlib.suppress(PgStreamError):  # its slot would hold WAL forever
                if (slot := old.slot(self.slot_for(target))) is not None and not slot.active:
                    old.drop_slot(slot.name)
            self.apply(RoleChange(
                "promote", f"{target.name} promoted on timeline {target.timeline()} and "
                           f"detached from the cluster (its primary {old.name} and other "
                           "standbys unchanged; its slot dropped)", detached=(target.name,)))
            return StepResult(True, f"{target.name} accepts writes, apart from this cluster")

        return Plan(f"promote {target.name}", [
            promote_step(target, timeout),
            Step(target.name, StepKind.RECORD, "record the new role", "", action=record,
                 host=target.host.name)])

    def follow_plan(self, standby: Standby | str, upstream: Node | str, *,
                    timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Re-point a standby at another upstream (the primary or another standby)."""
        node = self.standby(standby) if isinstance(standby, str) else standby
        target = self.node(upstream) if isinstance(upstream, str) else upstream
        previous = self.node(node.upstream) if node.upstream not in (None, target.name) \
            and node.upstream in {n.name for n in self.nodes} else (
                self.primary if node.upstream is None and target is not self.primary else None)
        return Plan(f"{node.name} follows {target.name}", follow_steps(
            self, node, target, previous=previous, timeout=timeout, concurrent=False))

    def follow(self, standby: Standby | str, upstream: Node | str,
               progress: ProgressCallback | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        report = self.follow_plan(standby, upstream, timeout=timeout).apply(progress)
        name = standby if isinstance(standby, str) else standby.name
        target = upstream if isinstance(upstream, str) else upstream.name
        self._note("follow", f"{name} streams from {target}")
        return report

    def switchover_plan(self, to: Standby | str, *,
                        max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                        timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """A planned switchover to ``to`` (see :mod:`pgstream.ops.switchover`); print = dry run."""
        return switchover_plan(self, to, max_lag_bytes=max_lag_bytes, timeout=timeout)

    def switchover(self, to: Standby | str, *, max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES,
                   progress: ProgressCallback | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        return self.switchover_plan(to, max_lag_bytes=max_lag_bytes,
                                    timeout=timeout).apply(progress)

    def failover_plan(self, candidate: Standby | str | None = None, *, force: bool = False,
                      timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """An unplanned failover (see :mod:`pgstream.ops.failover`); print = dry run."""
        return failover_plan(self, candidate, force=force, timeout=timeout)

    def failover(self, candidate: Standby | str | None = None, *, force: bool = False,
                 progress: ProgressCallback | None = None,
                 timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        return self.failover_plan(candidate, force=force, timeout=timeout).apply(progress)

    def rejoin_plan(self, node: Node | str, *, rewind: bool | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """A former primary back as a standby (see :mod:`pgstream.ops.rejoin`)."""
        if isinstance(node, str):
            matches = [n for n in [*self.failed, *self.nodes] if n.name == node]
            if not matches:
                raise InvalidInput(f"no node named {node!r}")
            node = matches[0]
        return rejoin_plan(self, node, rewind=rewind, timeout=timeout)

    def rejoin(self, node: Node | str, *, rewind: bool | None = None,
               progress: ProgressCallback | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        return self.rejoin_plan(node, rewind=rewind, timeout=timeout).apply(progress)

    def synchronous_plan(self, spec: SyncSpec, *, synchronous_commit: str | None = None,
                         wait_for: Mapping[str, str] | None = None,
                         timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Set ``synchronous_standby_names`` from a typed spec (see :mod:`pgstream.ops.sync`)."""
        return synchronous_plan(self.primary, spec, synchronous_commit=synchronous_commit,
                                wait_for=wait_for, timeout=timeout)

    def set_synchronous(self, spec: SyncSpec, *, synchronous_commit: str | None = None,
                        wait_for: Mapping[str, str] | None = None,
                        progress: ProgressCallback | None = None,
                        timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        report = self.synchronous_plan(spec, synchronous_commit=synchronous_commit,
                                       wait_for=wait_for, timeout=timeout).apply(progress)
        if report.changed:
            self._note("synchronous", f"synchronous_standby_names = "
                                      f"{spec.render(self.primary.version)!r}")
        return report

    def add_standby_plan(self, standby: Standby, *, upstream: Node | str | None = None,
                         replace: bool = False, timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Clone one more standby from ``upstream`` (default the primary; a standby gives a
        cascading standby, with its slot on that standby)."""
        source = self.primary if upstream is None else (
            self.node(upstream) if isinstance(upstream, str) else upstream)
        if standby.name in {n.name for n in [*self.nodes, *self.failed]}:
            raise InvalidInput(f"a node named {standby.name!r} exists already")
        if standby.service is None:
            raise InvalidInput(f"{standby.name} needs a service to be cloned")
        server = binaries.probe(standby.service.bindir, host=standby.host)
        client = binaries.find_client("pg_basebackup", source.version, prefer=server)
        host, port = self.address_of(source)
        steps = [slot_step(source, standby.name)]
        steps += standby_clone_steps(
            source, standby, auth=self.auth, primary_host=host, primary_port=port,
            slot=standby.name, server=server, client=client, passfile=self.passfile_of(standby),
            replace=replace, node_settings=self.node_settings.get(standby.name),
            sync=self._sandbox is None, timeout=timeout)

        def record(report: Report) -> StepResult:
            self.apply(RoleChange("add standby", f"{standby.name} streams from {source.name}",
                                  added=(standby,), upstreams=((standby.name, source.name),)))
            return StepResult(True, f"{standby.name} streams from {source.name}")

        steps.append(Step(standby.name, StepKind.RECORD, "record the new standby", "",
                          action=record, host=standby.host.name))
        return Plan(f"add {standby.name} streaming from {source.name}", steps)

    def add_standby(self, name: str, *, upstream: Node | str | None = None,
                    progress: ProgressCallback | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> Standby:
        """Sandbox: clone and start one more standby, from the primary or from a standby."""
        if self._sandbox is None:
            raise InvalidInput("add_standby(name) makes local sandbox nodes; for existing "
                               "servers build a Standby and use add_standby_plan()")
        node, own = self._sandbox.standby_node(identifiers.node_name(name))
        self.node_settings[node.name] = own
        self.addresses[node.name] = ("127.0.0.1", primary_port(node))
        self.add_standby_plan(node, upstream=upstream, timeout=timeout).apply(progress)
        return node

    def upgrade_plan(self, to: str | Path | Installation, *, method: UpgradeMethod = "rsync",
                     mode: commands.TransferMode | None = None, analyze: bool = True,
                     data_dirs: Mapping[str, Path] | None = None,
                     timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """Major upgrade to the installation ``to``, standbys included (see
        :mod:`pgstream.ops.upgrade`); pre-checked, ``print(plan)`` = dry run."""
        box = self._sandbox
        return upgrade_plan(self, to, method=method, mode=mode, analyze=analyze,
                            data_dirs=data_dirs, register=box.adopt if box else None,
                            sync=box is None, timeout=timeout)

    def upgrade(self, to: str | Path | Installation, *, method: UpgradeMethod = "rsync",
                mode: commands.TransferMode | None = None, analyze: bool = True,
                data_dirs: Mapping[str, Path] | None = None,
                progress: ProgressCallback | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> PlanReport:
        return self.upgrade_plan(to, method=method, mode=mode, analyze=analyze,
                                 data_dirs=data_dirs, timeout=timeout).apply(progress)

    def remove_old_cluster_plan(self) -> Plan:
        """Remove the data directories a major upgrade kept (:attr:`old_data_dirs`)."""
        return remove_old_cluster_plan(self, self.old_data_dirs)

    # -- setup
    def setup_plan(self, *, replace: bool = False, server: Installation | None = None,
                   client: Installation | None = None, sync: bool | None = None,
                   timeout: float = DEFAULT_TIMEOUT) -> Plan:
        """The runbook: prepare the primary (seed steps 1-5), clone each standby (6-11).

        Everything is validated while building the plan, before anything changes.
        """
        version = self.primary.version
        renderer = ConfigRenderer(version)
        settings = self.settings or renderer.primary_settings()
        host, port = self.primary_address or _address_of(self.primary)
        steps = primary_setup_steps(self.primary, auth=self.auth, settings=settings,
                                    hba_addresses=self.hba_addresses,
                                    slots=[self.slot_for(s) for s in self.standbys])
        for standby in self.standbys:
            if standby.service is None or standby.data_dir is None:
                raise InvalidInput(f"{standby.name} needs data_dir and service to be cloned")
            srv = server or binaries.probe(standby.service.bindir, host=standby.host)
            cli = client or binaries.find_client("pg_basebackup", version, prefer=srv)
            passfile = self.passfile_of(standby)
            steps += standby_clone_steps(
                self.primary, standby, auth=self.auth, primary_host=host, primary_port=port,
                slot=self.slot_for(standby), server=srv, client=cli, passfile=passfile,
                replace=replace, node_settings=self.node_settings.get(standby.name),
                sync=(self._sandbox is None) if sync is None else sync, timeout=timeout)
        names = ", ".join(s.name for s in self.standbys) or "no standbys"
        return Plan(f"streaming replication {self.primary.name} -> {names} "
                    f"(PostgreSQL {version.major})", steps)

    # -- waiting and status
    def wait_for_catchup(self, timeout: float = 30.0) -> Lsn:
        """Wait until every standby has replayed the primary's current LSN; return that LSN."""
        target = self.primary.current_lsn()
        deadline = time.monotonic() + timeout
        for standby in self.standbys:
            standby.wait_for_replay(target, timeout=max(0.0, deadline - time.monotonic()))
        return target

    def status(self) -> ClusterStatus:
        """Primary position and per-standby state, lag, sync state, slot and recovery."""
        primary = self.primary
        version = primary.version
        head = PrimaryStatus(primary.name, str(version), primary.current_lsn(),
                             primary.in_recovery, primary.timeline())
        # Each standby as its upstream sees it: the primary, or (cascading) another standby.
        upstreams = {s.upstream or primary.name for s in self.standbys}
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        slots: dict[tuple[str, str], SlotStatus] = {}
        for name in upstreams:
            upstream = self.node(name)
            try:
                recovering = upstream.in_recovery
                statement, params, names = queries.replication_status(
                    upstream.version, recovering)
                for found in upstream.query(statement, params):
                    rows[(name, found[0])] = dict(zip(names, found, strict=True))
                for kept in upstream.slots():
                    slots[(name, kept.name)] = kept
            except (NodeUnreachable, QueryError):
                continue
        items = []
        for standby in self.standbys:
            up = standby.upstream or primary.name
            row = rows.get((up, standby.name))
            slot_name = (row or {}).get("slot_name") or self.slot_for(standby)
            slot = slots.get((up, slot_name))
            in_recovery: bool | None = None
            lag = row.get("replay_lag") if row else None
            reachable = True
            try:
                in_recovery = standby.in_recovery
                if lag is None and not version.adapter.has("column", "replay_lag",
                                                           "pg_stat_replication"):
                    lag = standby.value(queries.replay_delay())
            except (NodeUnreachable, QueryError):
                reachable = False
            items.append(StandbyStatus(
                name=standby.name,
                state=row["state"] if row else "disconnected",
                sent_lsn=Lsn.maybe(row["sent_lsn"]) if row else None,
                write_lsn=Lsn.maybe(row["write_lsn"]) if row else None,
                flush_lsn=Lsn.maybe(row["flush_lsn"]) if row else None,
                replay_lsn=Lsn.maybe(row["replay_lsn"]) if row else None,
                # Disconnected: what its slot holds back is how far behind it is (and grows).
                replay_lag_bytes=row["replay_lag_bytes"] if row else (
                    slot.retained_bytes if slot else None),
                replay_lag=lag,
                sync_state=row["sync_state"] if row else None,
                sync_priority=row["sync_priority"] if row else None,
                slot_name=slot.name if slot else None,
                slot_active=slot.active if slot else None,
                slot_wal_status=slot.wal_status if slot else None,
                slot_retained_bytes=slot.retained_bytes if slot else None,
                in_recovery=in_recovery, reachable=reachable,
                upstream=up,
            ))
        return ClusterStatus(head, tuple(items), dt.datetime.now(dt.UTC),
                             tuple(self.history), tuple(n.name for n in self.failed))

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


def primary_port(node: Node) -> int:
    return int(pg_conninfo.conninfo_to_dict(node.conninfo).get("port") or 5432)


def _address_of(node: Node) -> tuple[str, int]:
    params = pg_conninfo.conninfo_to_dict(node.conninfo)
    host = str(params.get("host") or params.get("hostaddr") or "")
    if not host or host.startswith("/"):
        raise InvalidInput(
            f"cannot tell from {node.name}'s conninfo which address standbys should connect "
            "to: pass primary_address=(host, port)")
    return host, int(params.get("port") or 5432)

