"""``Cluster``: a primary and its standbys, set up by plans, observed by status.

``Cluster.sandbox(standbys=2)`` builds a local, temporary cluster (initdb, configure, start a
primary, a slot per standby, ``pg_basebackup`` clones, streaming) and removes it all when the
``with`` block ends, on error or KeyboardInterrupt too. ``Cluster(primary, standbys, ...)``
wraps servers that already exist; ``cluster.setup_plan()`` is the runbook that sets them up.
"""

from __future__ import annotations

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

from pgstream import binaries, queries
from pgstream.binaries import Installation
from pgstream.config import ConfigRenderer
from pgstream.errors import (
    BinaryNotFound,
    InvalidInput,
    NodeUnreachable,
    NotAvailable,
    QueryError,
)
from pgstream.host import server_user
from pgstream.identifiers import Secret
from pgstream.lsn import Lsn
from pgstream.node import Node, Primary, Standby
from pgstream.plan import Plan, ProgressCallback
from pgstream.primary_setup import ReplicationAuth, primary_setup_steps
from pgstream.sandbox import Sandbox
from pgstream.standby_clone import standby_clone_steps
from pgstream.status import ClusterStatus, PrimaryStatus, StandbyStatus
from pgstream.wait import DEFAULT_TIMEOUT

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
    """Per standby: its own settings (port, cluster_name, ...), merged into its
    postgresql.auto.conf after the clone, since the clone copies the primary's."""
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
        :mod:`pgstream.binaries`); ``pg_basebackup`` from the same place or a newer one. As
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
            cluster = cls(
                primary, [node for node, _ in nodes],
                auth=auth,
                primary_address=("127.0.0.1", int(primary_port(primary))),
                hba_addresses=["127.0.0.1"], settings=wanted,
                passfiles={node.name: box.passfile for node, _ in nodes},
                _sandbox=box, node_settings={node.name: own for node, own in nodes},
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

    def slot_for(self, standby: Standby) -> str:
        return standby.name

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
            srv = server or binaries.probe(standby.service.bindir)
            cli = client or binaries.find_client("pg_basebackup", version, prefer=srv)
            passfile = self.passfiles.get(standby.name)
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
        statement, params, names = queries.replication_status(version)
        rows = {row[0]: dict(zip(names, row, strict=True))
                for row in primary.query(statement, params)}
        slots = {slot.name: slot for slot in primary.slots()}
        head = PrimaryStatus(primary.name, str(version), primary.current_lsn(),
                             primary.in_recovery)
        items = []
        for standby in self.standbys:
            row = rows.get(standby.name)
            slot_name = (row or {}).get("slot_name") or self.slot_for(standby)
            slot = slots.get(slot_name)
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
                replay_lag_bytes=row["replay_lag_bytes"] if row else None,
                replay_lag=lag,
                sync_state=row["sync_state"] if row else None,
                sync_priority=row["sync_priority"] if row else None,
                slot_name=slot.name if slot else None,
                slot_active=slot.active if slot else None,
                slot_wal_status=slot.wal_status if slot else None,
                slot_retained_bytes=slot.retained_bytes if slot else None,
                in_recovery=in_recovery, reachable=reachable,
                upstream=standby.upstream or primary.name,
            ))
        return ClusterStatus(head, tuple(items), dt.datetime.now(dt.UTC))

    # -- lifetime
    def close(self) -> None:
        """Close connections; for a sandbox, stop every server and remove its directory."""
        for node in self.nodes:
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

