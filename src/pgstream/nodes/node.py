"""Nodes: ``Primary`` and ``Standby``, each a connection plus where its server lives.

A node is built from a conninfo (libpq string or keywords) and, when pgstream manages the
server itself, the host, data directory and service that run it. Queries go through psycopg
with parameters; errors come back as :class:`~pgstream.errors.PgStreamError` subclasses.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    NotAStandby,
    QueryError,
    SlotError,
    SlotInUse,
    SlotNotFound,
)
from pgstream.facts import identifiers
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, LocalHost, OsUser
from pgstream.hosts.service import PgCtlService
from pgstream.hosts.wait import DEFAULT_TIMEOUT, wait_for
from pgstream.nodes.conninfo import check_conninfo, masked_conninfo
from pgstream.nodes.slot import ReplicationSlot, SlotStatus, slot_status_of
from pgstream.nodes.statements import Params, log_statement, translated
from pgstream.render import probes, queries

CONNECT_TIMEOUT = 10
"""Seconds a node waits for a connection to open (per address), unless told otherwise."""


@attrs.frozen
class ServerPaths:
    """Where a running server keeps its files, as it reports them (``SHOW``): its data
    directory, ``postgresql.conf`` and ``pg_hba.conf``."""
    data_directory: Path
    config_file: Path
    hba_file: Path


def _check_conninfo(_inst: object, _attr: object, value: str) -> None:
    check_conninfo(value)


@attrs.define(eq=False, repr=False)
class Node:
    """A PostgreSQL server pgstream talks to."""

    name: str = attrs.field(validator=lambda _i, _a, v: identifiers.node_name(v))
    conninfo: str = attrs.field(validator=_check_conninfo)
    host: Host = attrs.field(factory=LocalHost)
    data_dir: Path | None = None
    service: PgCtlService | None = None
    os_user: OsUser | None = None
    _conn: psycopg.Connection[tuple[Any, ...]] | None = attrs.field(default=None, init=False)
    _version: ServerVersion | None = attrs.field(default=None, init=False)

    def __repr__(self) -> str:
        where = f", data_dir={str(self.data_dir)!r}" if self.data_dir else ""
        return (f"{type(self).__name__}(name={self.name!r}, "
                f"conninfo={masked_conninfo(self.conninfo)!r}{where})")

    def moved(self, data_dir: Path, service: PgCtlService | None, *,
              version: ServerVersion | None = None) -> None:
        """The server now runs from ``data_dir`` under ``service`` (after a major upgrade);
        ``version`` is the one it runs there (None: asked of the server on next use)."""
        self.close()
        self.data_dir = data_dir
        self.service = service
        self._version = version

    # -- connection
    def connect(self, timeout: float | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        """The node's connection (autocommit), opened on first use and after a failure.

        Opening it waits at most ``timeout`` seconds per address tried (libpq's
        ``connect_timeout``, whole seconds, at least 2; default :data:`CONNECT_TIMEOUT`).
        """
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self.close()
        seconds = CONNECT_TIMEOUT if timeout is None else max(2, math.ceil(timeout))
        try:
            # client_encoding utf8: a SQL_ASCII database (initdb in a C locale, common on
            # servers) would otherwise hand back bytes instead of str.
            # TCP keepalives and tcp_user_timeout: over a cut network a query fails within
            # seconds instead of hanging (ignored on Unix sockets).
            self._conn = psycopg.connect(self.conninfo, autocommit=True,
                                         connect_timeout=seconds,
                                         client_encoding="utf8", keepalives=1,
                                         keepalives_idle=5, keepalives_interval=2,
                                         keepalives_count=3, tcp_user_timeout=8000)
        except psycopg.OperationalError as exc:
            raise NodeUnreachable(
                f"cannot connect to {self.name} ({masked_conninfo(self.conninfo)}): "
                f"{str(exc).strip()}") from None
        return self._conn

    @property
    def connected(self) -> bool:
        """Does the node hold a connection that has not failed yet (it may still be stale)?"""
        return self._conn is not None and not self._conn.closed and not self._conn.broken

    def abort(self) -> None:
        """From another thread: make what waits on this node's connection fail now (its
        socket is shut down; the connection is then broken and reopened on next use)."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        with contextlib.suppress(OSError, psycopg.Error):
            sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()

    def close(self) -> None:
        """Close the node's connection (the next query opens a new one)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def execute(self, statement: sql.Composable | str, params: Params = None) -> int:
        """Run one statement; returns the affected row count (-1 when none applies)."""
        conn = self.connect()
        log_statement(self.name, conn, statement, params)
        with translated(self.name, conn, self.close), conn.cursor() as cur:
            cur.execute(_as_query(statement), params)
            return cur.rowcount

    def query(self, statement: sql.Composable | str,
              params: Params = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows as tuples."""
        conn = self.connect()
        log_statement(self.name, conn, statement, params)
        with translated(self.name, conn, self.close), conn.cursor() as cur:
            cur.execute(_as_query(statement), params)
            return cur.fetchall() if cur.description is not None else []

    def query_sets(self, statements: Sequence[sql.Composable], *,
                   timeout: float | None = None) -> list[list[tuple[Any, ...]]]:
        """Several statements in one round trip (libpq's pipeline mode, where libpq has it):
        one list of rows per statement. ``timeout`` bounds opening the connection."""
        conn = self.connect(timeout)
        with translated(self.name, conn, self.close), contextlib.ExitStack() as stack:
            cursors = [stack.enter_context(conn.cursor()) for _ in statements]
            with conn.pipeline() if psycopg.Pipeline.is_supported() else contextlib.nullcontext():
                for cur, statement in zip(cursors, statements, strict=True):
                    cur.execute(_as_query(statement))
            return [cur.fetchall() if cur.description is not None else [] for cur in cursors]

    def _run(self, built: queries.Query) -> list[tuple[Any, ...]]:
        statement, params = built
        return self.query(statement, params)

    def value(self, built: queries.Query) -> Any:
        """The first column of the first row of a built ``(statement, params)`` query (None:
        no row); raises what :meth:`query` raises."""
        rows = self._run(built)
        return rows[0][0] if rows else None

    # -- facts
    @property
    def version(self) -> ServerVersion:
        """The server's version, from ``server_version_num`` (asked once)."""
        if self._version is None:
            num = self.connect().info.server_version
            self._version = ServerVersion.parse(num)
        return self._version

    @property
    def in_recovery(self) -> bool:
        """Is the server in recovery (``pg_is_in_recovery()``), asked each time?"""
        return bool(self.value(probes.in_recovery()))

    def system_identifier(self) -> str:
        """The server's system identifier (``pg_control_system()``), as text."""
        return str(self.value(queries.system_identifier()))

    def timeline(self) -> int:
        """The timeline: a primary's from its current WAL file; a standby's from its
        walreceiver (else its last restartpoint)."""
        return int(self.value(queries.timeline(self.version, self.in_recovery)))

    def server_paths(self) -> ServerPaths:
        """Where this server keeps its files, asked of the server itself (SHOW), never assumed
        to be in the data directory (Debian keeps its configuration in /etc/postgresql)."""
        return ServerPaths(Path(self.show("data_directory")), Path(self.show("config_file")),
                           Path(self.show("hba_file")))

    def show(self, setting: str) -> str:
        """The value of ``setting`` as ``SHOW`` gives it (units included)."""
        return str(self.query(queries.show(setting))[0][0])

    def streams_to(self, standby: str, slot: str | None = None) -> bool:
        """Does this server have a walsender for ``standby`` (its ``application_name``; and
        through ``slot`` when given) in ``streaming`` state?"""
        return any(state == "streaming"
                   for (state,) in self._run(queries.walsender_state(standby, slot)))

    def ping(self) -> bool:
        """Does the server answer ``SELECT 1`` (never raises)?"""
        try:
            self.query("SELECT 1")
        except (NodeUnreachable, QueryError):
            return False
        return True

    def wait_ready(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until the server accepts connections (after a start or restart)."""
        wait_for(self.ping, timeout=timeout, what=f"{self.name} to accept connections",
                 detail=self._log_detail)

    def _log_detail(self) -> str:
        if self.service is None:
            return "(no server log)"
        return "server log tail:\n" + self.service.log_tail(10)

    # -- slots (on any node: cascading standbys keep slots too)
    def slots(self) -> list[SlotStatus]:
        """Physical slots with the WAL each holds back (``retained_bytes``)."""
        rows = self._run(queries.slot_status(self.version, None))
        return [slot_status_of(row) for row in rows]

    def slot(self, name: str) -> SlotStatus | None:
        """The physical slot named ``name`` with the WAL it holds back, or None (a bad name
        raises :class:`~pgstream.errors.InvalidInput`)."""
        identifiers.slot_name(name)
        rows = self._run(queries.slot_status(self.version, None, name))
        return slot_status_of(rows[0]) if rows else None

    def create_slot(self, name: str | ReplicationSlot, *,
                    exist_ok: bool = False) -> ReplicationSlot:
        """The seed's step 4: a physical slot reserving WAL at once."""
        slot = name if isinstance(name, ReplicationSlot) else ReplicationSlot(name)
        try:
            self._run(queries.create_slot(self.version, slot.name))
        except QueryError as exc:
            if exc.sqlstate == pg_errors.DuplicateObject.sqlstate:
                if exist_ok:
                    return slot
                raise SlotError(f"replication slot {slot.name!r} already exists on "
                                f"{self.name}") from None
            raise
        return slot

    def drop_slot(self, name: str | ReplicationSlot) -> None:
        """The seed's step 14. Refuses an active slot (a standby is streaming through it)."""
        slot = name if isinstance(name, ReplicationSlot) else ReplicationSlot(name)
        state = self.slot(slot.name)
        if state is None:
            raise SlotNotFound(f"no replication slot {slot.name!r} on {self.name}")
        if state.active:
            raise SlotInUse(
                f"replication slot {slot.name!r} on {self.name} is active (walsender pid "
                f"{state.active_pid}): stop or re-point the standby using it first")
        try:
            self._run(queries.drop_slot(self.version, slot.name))
        except QueryError as exc:
            if exc.sqlstate == pg_errors.ObjectInUse.sqlstate:
                raise SlotInUse(f"replication slot {slot.name!r} on {self.name} became "
                                "active while dropping it") from None
            if exc.sqlstate == pg_errors.UndefinedObject.sqlstate:
                raise SlotNotFound(f"no replication slot {slot.name!r} on {self.name}") from None
            raise


@attrs.define(eq=False, repr=False)
class Primary(Node):
    """The server that accepts writes and streams WAL to standbys."""

    def current_lsn(self) -> Lsn:
        """``pg_current_wal_lsn()`` (``pg_current_xlog_location()`` on 9.6)."""
        return Lsn.parse(self.value(queries.current_lsn(self.version)))


@attrs.define(eq=False, repr=False)
class Standby(Node):
    """A server in recovery, streaming from an upstream.

    ``slot_name`` and ``application_name`` are what it streams with (default: its name); a
    standby built by hand may use others (``pg_basebackup -R`` leaves ``walreceiver``).
    """

    upstream: str | None = None
    slot_name: str = attrs.field(
        default=attrs.Factory(lambda self: self.name, takes_self=True),
        validator=lambda _i, _a, v: identifiers.slot_name(v), kw_only=True)
    application_name: str = attrs.field(
        default=attrs.Factory(lambda self: self.name, takes_self=True),
        validator=lambda _i, _a, v: identifiers.application_name(v), kw_only=True)

    def replay_lsn(self) -> Lsn | None:
        """``pg_last_wal_replay_lsn()``: how far this standby has replayed."""
        return Lsn.maybe(self.value(queries.replay_lsn(self.version)))

    def has_replayed(self, target: Lsn) -> bool:
        """Has replay reached ``target`` (``pg_wal_lsn_diff`` >= 0)?"""
        return bool(self.value(queries.lsn_reached(self.version, str(target))))

    def wait_for_replay(self, target: Lsn, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until replay reaches ``target`` (e.g. a primary's ``current_lsn()``)."""
        wait_for(lambda: self.has_replayed(target), timeout=timeout,
                 what=f"{self.name} to replay up to {target}",
                 detail=lambda: f"{self.name} replayed up to {self.replay_lsn()}")

    def promote(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Promote this standby; return when it accepts writes, with its new timeline.

        ``SELECT pg_promote()`` from 12, ``pg_ctl promote`` before (the version table decides).
        """
        if not self.in_recovery:
            raise NotAStandby(f"{self.name} is not in recovery: there is nothing to promote")
        if self.version.adapter.supports("pg_promote"):
            # wait => false: pg_promote's own wait polls every 100 ms; pgstream watches closer.
            if not self.value(self._promotion()):
                raise QueryError(f"{self.name} refused to promote (pg_promote returned false)",
                                 node=self.name)
        elif self.service is not None:
            self.service.promote()
        else:
            raise InvalidInput(
                f"{self.name} runs PostgreSQL {self.version.major}, which has no pg_promote(): "
                "pgstream needs its service (pg_ctl) to promote it")
        wait_for(lambda: not self.in_recovery, timeout=timeout,
                 what=f"{self.name} to leave recovery")
        return self.timeline()

    def _promotion(self) -> queries.Query:
        return queries.promote(self.version, wait=False)

    def promote_command(self) -> str:
        """What :meth:`promote` runs, as a plan prints it: ``SELECT pg_promote(false, 60)``
        from 12, the service's ``pg_ctl promote`` before; then it watches
        ``pg_is_in_recovery()``."""
        if self.version.adapter.supports("pg_promote"):
            text = queries.shown(self._promotion())
        elif self.service is not None:
            text = self.service.describe("promote")
        else:
            text = "(no pg_promote() and no service: cannot promote)"
        return f"{text}  -- then until SELECT pg_is_in_recovery() is false"

    def wal_receiver(self) -> tuple[str, Lsn | None, str | None] | None:
        """``(status, flushed LSN, slot)`` of the walreceiver, or None when not streaming."""
        rows = self._run(queries.wal_receiver(self.version))
        if not rows:
            return None
        status, flushed, slot = rows[0]
        return str(status), Lsn.maybe(flushed), slot


def _as_query(statement: sql.Composable | str) -> Any:
    # psycopg wants a LiteralString or a Composable; user SQL arrives as a plain str.
    return statement


def stream_names(node: Node) -> tuple[str, str]:
    """``(slot, application_name)`` that ``node`` streams with, or would as a standby."""
    if isinstance(node, Standby):
        return node.slot_name, node.application_name
    return node.name, node.name
