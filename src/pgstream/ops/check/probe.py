"""What ``check()`` reads from each node, as a frozen :class:`NodeFacts`, one thread per node.

From every node: recovery state, system identifier, WAL position, the settings
:data:`~pgstream.render.probes.CHECK_SETTINGS`, its walsenders (``pg_stat_replication``) and
physical slots. From a standby also: its walreceiver (``pg_stat_wal_receiver``), paused replay,
``primary_conninfo`` (a setting from 12, ``recovery.conf`` before) and, when it does not
stream or cannot be reached, the end of its own server log since its last start, read through
its host. Nothing here raises for a node that is down or slow: the facts say so instead, and
:func:`gather` gives up on a node after ``timeout`` seconds.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, PgStreamError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Node, Standby
from pgstream.nodes.slot import SlotStatus
from pgstream.render import commands, findings, probes, queries
from pgstream.render.config import parse_settings

LOG_BYTES = 1024 * 1024  # the end of a log that is read: enough for many retries' messages
_DEBIAN_DATA = re.compile(r"^/var/lib/postgresql/(?P<major>[0-9.]+)/(?P<cluster>[^/]+)/?$")


@attrs.frozen
class LogRead:
    """A standby's server log: where it is (``path``, how it was found), the text since the
    last start (``text``; None when it could not be read) or why not (``error``)."""

    path: str | None
    found_by: str
    text: str | None = None
    error: str = ""


@attrs.frozen
class Receiver:
    """The standby's ``pg_stat_wal_receiver`` row."""

    status: str
    received_tli: int | None
    flushed_lsn: Lsn | None
    slot_name: str | None
    sender_host: str | None
    sender_port: int | None
    conninfo: str | None

    @property
    def streaming(self) -> bool:
        """Is the walreceiver in ``streaming`` state?"""
        return self.status == "streaming"


def _mapping(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


@attrs.frozen
class NodeFacts:
    """Everything ``check()`` read from one node (``reachable`` False: ``error`` says why)."""

    name: str
    reachable: bool = False
    error: str = ""
    version: ServerVersion | None = None
    in_recovery: bool | None = None
    system_id: str | None = None
    lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    settings: dict[str, str] = attrs.field(factory=dict, converter=_mapping, hash=False)
    walsenders: tuple[dict[str, Any], ...] = attrs.field(default=(), hash=False)
    slots: tuple[SlotStatus, ...] = ()
    receiver: Receiver | None = None
    replay_paused: bool | None = None
    replay_age: float | None = None
    primary_conninfo: str | None = attrs.field(default=None, repr=False)
    slot_name: str | None = None
    role: tuple[bool, bool] | None = None
    role_asked: bool = False
    log: LogRead | None = None
    seconds: float = 0.0

    @property
    def upstream_target(self) -> tuple[str, int] | None:
        """host and port of ``primary_conninfo`` (None when unknown or unparsable)."""
        return conninfo_target(self.primary_conninfo)

    def walsender(self, name: str) -> dict[str, Any] | None:
        """The walsender row whose ``application_name`` is ``name``."""
        return next((w for w in self.walsenders if w.get("application_name") == name), None)

    def slot(self, name: str) -> SlotStatus | None:
        """The physical slot named ``name`` on this node, or None."""
        return next((s for s in self.slots if s.name == name), None)


def conninfo_target(conninfo: str | None) -> tuple[str, int] | None:
    """``(host, port)`` a conninfo connects to (port 5432 by default; the first of a list)."""
    if not conninfo:
        return None
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return None
    host = str(params.get("host") or params.get("hostaddr") or "").split(",")[0] or "localhost"
    port = str(params.get("port") or "5432").split(",")[0]
    return host, int(port) if port.isdigit() else 5432


def _lsn(value: object) -> Lsn | None:
    return Lsn.maybe(value) if isinstance(value, str) else None


def _slot(row: tuple[Any, ...]) -> SlotStatus:
    name, active, pid, restart, retained, wal_status, safe, inactive, temporary, reason = row
    return SlotStatus(name=name, active=bool(active), active_pid=pid,
                      restart_lsn=_lsn(restart), retained_bytes=retained,
                      wal_status=wal_status, safe_wal_size=safe, inactive_since=inactive,
                      temporary=temporary, invalidation_reason=reason)


def _receiver(node: Node, version: ServerVersion) -> Receiver | None:
    rows = node.query(*probes.wal_receiver_detail(version))
    if not rows:
        return None
    status, tli, flushed, slot, host, port, conninfo = rows[0]
    return Receiver(str(status), tli, _lsn(flushed), slot, host, port, conninfo)


def _recovery_settings(node: Node, version: ServerVersion,
                       settings: dict[str, str]) -> tuple[str | None, str | None]:
    """primary_conninfo and primary_slot_name: settings from 12, recovery.conf before."""
    if version.adapter.has("setting", "primary_conninfo"):
        return settings.get("primary_conninfo") or None, settings.get("primary_slot_name") or None
    try:
        text = node.value(probes.read_server_file(version.adapter.file("recovery.conf")))
    except PgStreamError:
        return None, None
    parsed = parse_settings(str(text or ""))
    return parsed.get("primary_conninfo") or None, parsed.get("primary_slot_name") or None


def locate_log(node: Node, settings: Mapping[str, str],
               version: ServerVersion | None) -> tuple[Path | None, str]:
    """Where ``node`` writes its server log, and how that was found: the logging collector's
    current file (``pg_current_logfile()``, 10+; the newest file of ``log_directory`` on 9.6),
    else the log file its service writes (``pg_ctl -l``, Debian's ``pg_ctlcluster``), else
    Debian's ``/var/log/postgresql/postgresql-MAJOR-CLUSTER.log`` for a Debian data directory.
    """
    data_dir = settings.get("data_directory") or (str(node.data_dir) if node.data_dir else "")
    if settings.get("logging_collector") == "on" and version is not None and data_dir:
        with_dir = Path(settings.get("log_directory") or "log")
        directory = with_dir if with_dir.is_absolute() else Path(data_dir) / with_dir
        if version.adapter.has("function", "pg_current_logfile"):
            current = node.value(probes.current_logfile(version))
            if current:
                path = Path(str(current))
                return (path if path.is_absolute() else Path(data_dir) / path,
                        "pg_current_logfile()")
        try:
            names = [n for n in node.host.list_dir(directory) if not n.startswith(".")]
        except (OSError, PgStreamError):
            names = []
        if names:
            return directory / sorted(names)[-1], "log_directory (newest file)"
    if node.service is not None and node.service.log_file is not None:
        return Path(node.service.log_file), "its service's log file"
    match = _DEBIAN_DATA.match(data_dir)
    if match:
        return (Path(f"/var/log/postgresql/postgresql-{match['major']}-{match['cluster']}.log"),
                "Debian's /var/log/postgresql")
    return None, ""


def read_log(node: Node, settings: Mapping[str, str], version: ServerVersion | None,
             timeout: float) -> LogRead:
    """The end of ``node``'s server log (at most :data:`LOG_BYTES`), since its last start.

    Read through the node's host as the server's OS user when pgstream may switch to it (the
    server owns its log), else as this process; any failure comes back as ``error``.
    """
    try:
        path, how = locate_log(node, settings, version)
    except PgStreamError as exc:
        return LogRead(None, "", error=f"cannot locate the log: {exc}")
    if path is None:
        return LogRead(None, "", error="no server log found (no service log file, logging "
                                       "collector off): log to a file to let check() read it")
    argv = commands.tail_bytes(path, LOG_BYTES)
    try:
        try:
            done = node.host.run(argv, user=node.os_user, check=False, timeout=timeout,
                                 what=f"read {node.name}'s log")
        except InvalidInput:  # may not switch to the server user: read as ourselves
            done = node.host.run(argv, check=False, timeout=timeout,
                                 what=f"read {node.name}'s log")
    except PgStreamError as exc:
        return LogRead(str(path), how, error=str(exc))
    if done.returncode != 0:
        why = done.output.strip().splitlines()[-1] if done.output.strip() else \
            f"tail exited {done.returncode}"
        return LogRead(str(path), how, error=why)
    return LogRead(str(path), how, text=findings.since_last_start(done.output))


def probe(node: Node, *, role_user: str | None = None, timeout: float = 10.0) -> NodeFacts:
    """Read one node's facts (see the module docstring); never raises for a node's trouble."""
    started = time.monotonic()
    standby = isinstance(node, Standby)
    try:
        version = node.version
        recovering, system_id, current, received, replayed = node.query(
            *probes.node_state(version))[0]
        settings = {str(k): str(v) for k, v in node.query(*probes.check_settings(version))}
        statement, params, names = queries.replication_status(version, bool(recovering))
        walsenders = tuple(dict(zip(names, row, strict=True))
                           for row in node.query(statement, params))
        slots = tuple(_slot(row) for row in node.query(
            *queries.slot_status(version, bool(recovering))))
        facts: dict[str, Any] = {}
        if recovering:
            receiver = _receiver(node, version)
            paused, age = node.query(*probes.standby_replay_state(version))[0]
            conninfo, slot_name = _recovery_settings(node, version, settings)
            facts.update(receiver=receiver, replay_paused=bool(paused), replay_age=age,
                         primary_conninfo=conninfo, slot_name=slot_name)
            if standby and (receiver is None or not receiver.streaming):
                facts["log"] = read_log(node, settings, version, timeout)
        if role_user is not None and not recovering:
            rows = node.query(*probes.role_flags(role_user))
            facts.update(role=(bool(rows[0][0]), bool(rows[0][1])) if rows else None,
                         role_asked=True)
        return NodeFacts(node.name, True, "", version, bool(recovering), system_id,
                         _lsn(current) if not recovering else _lsn(received),
                         _lsn(replayed), settings, walsenders, slots,
                         seconds=time.monotonic() - started, **facts)
    except PgStreamError as exc:
        log = read_log(node, {}, None, timeout) if standby else None
        return NodeFacts(node.name, False, str(exc).strip(), log=log,
                         seconds=time.monotonic() - started)


def gather(jobs: Mapping[str, Callable[[], NodeFacts]], timeout: float) -> dict[str, NodeFacts]:
    """Run each job in its own thread; a job not done within ``timeout`` seconds gives an
    unreachable :class:`NodeFacts` (its thread is left to finish on its own, as a daemon)."""
    results: dict[str, NodeFacts] = {}
    lock = threading.Lock()

    def run(name: str, job: Callable[[], NodeFacts]) -> None:
        try:
            found = job()
        except Exception as exc:  # noqa: BLE001 - a bug in a probe must not hide the others
            found = NodeFacts(name, False, f"check failed: {exc!r}")
        with lock:
            results[name] = found

    threads = [threading.Thread(target=run, args=(name, job), daemon=True,
                                name=f"pgstream-check-{name}") for name, job in jobs.items()]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        done = dict(results)
    for name in jobs:
        if name not in done:
            done[name] = NodeFacts(name, False, f"no answer within {timeout:g} s")
    return done
