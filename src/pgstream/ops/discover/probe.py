"""Discovery, one server at a time: what a server and its host say of it.

:func:`probe` asks one server, in two or three round trips, for its version, role, system
identifier, paths, port, logging settings, walsenders, slots and (a standby) its walreceiver
and recovery settings; with ``deep``, its host for the postmaster's owner, programs, unit and
log (:func:`pgstream.hosts.running.postmaster_facts`). A ``primary_conninfo`` is parsed with
``psycopg.conninfo`` at once and its password dropped: only whether it had one is kept.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import conninfo as pg_conninfo

from pgstream.errors import NodeUnreachable, PgStreamError, QueryError
from pgstream.facts import compat, identifiers
from pgstream.facts.version import ServerVersion
from pgstream.hosts import binaries
from pgstream.hosts.host import Host, LocalHost, OsUser
from pgstream.hosts.running import PostmasterFacts, postmaster_facts, unit_main_pid
from pgstream.hosts.service import DebianClusterService, PgCtlService, SystemdService
from pgstream.nodes.node import Node
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.discover.elsewhere import UnknownHost
from pgstream.render import probes, queries

_DEBIAN_CONF = re.compile(r"/etc/postgresql/([^/]+)/([^/]+)/postgresql\.conf")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@attrs.frozen
class NodeSpec:
    """What a caller (or the topology file) says of one node; everything else is asked of
    the server. ``service``: ``pg_ctl``, ``pg_ctlcluster`` or ``systemd:<unit>``."""

    conninfo: str
    name: str | None = None
    host: Host | None = attrs.field(default=None, eq=False)
    data_dir: Path | None = None
    service: str | None = None
    slot: str | None = None
    application_name: str | None = None


def safe_conninfo(params: dict[str, Any]) -> tuple[dict[str, str], bool]:
    """A parsed conninfo without its password, and whether it had one."""
    kept = {k: str(v) for k, v in params.items() if v is not None and k != "password"}
    return kept, "password" in params and bool(params["password"])


def parse_conninfo(text: str | None) -> tuple[dict[str, str], bool]:
    """``primary_conninfo`` as keywords (password dropped) and whether it held a password."""
    if not text:
        return {}, False
    try:
        return safe_conninfo(pg_conninfo.conninfo_to_dict(text))
    except psycopg.ProgrammingError:
        return {}, False


@attrs.frozen
class Probe:
    """What one server said (``reachable`` False: only ``error``)."""

    reachable: bool
    error: str = ""
    version: ServerVersion | None = None
    in_recovery: bool = False
    system_identifier: str = ""
    settings: dict[str, str] = attrs.field(factory=dict)
    walsenders: tuple[dict[str, Any], ...] = ()
    slots: tuple[SlotStatus, ...] = ()
    receiver: dict[str, Any] | None = None
    upstream_conninfo: dict[str, str] = attrs.field(factory=dict)
    """Its ``primary_conninfo`` (12+ the setting, else the walreceiver's), password dropped."""
    upstream_conninfo_had_password: bool = False
    primary_slot_name: str | None = None
    postmaster: PostmasterFacts | None = None

    @property
    def port(self) -> int | None:
        """The ``port`` setting the server reported (None: not read)."""
        value = self.settings.get("port", "")
        return int(value) if value.isdigit() else None

    @property
    def data_directory(self) -> Path | None:
        """The ``data_directory`` it reported (None: not readable by this role)."""
        value = self.settings.get("data_directory")
        return Path(value) if value else None

    @property
    def slot_used(self) -> str | None:
        """The slot this standby streams (or would stream) through."""
        got = (self.receiver or {}).get("slot_name") or self.primary_slot_name
        return str(got) if got else None

    @property
    def own_application_name(self) -> str:
        """What its walreceiver calls itself: the conninfo's, else cluster_name (12+), else
        ``walreceiver``."""
        name = self.upstream_conninfo.get("application_name") or ""
        if not name and self.version is not None and self.version.adapter.supports(
                "walreceiver_cluster_name"):
            name = self.settings.get("cluster_name", "")
        return name or "walreceiver"


def probe(node: Node, *, deep: bool) -> Probe:
    """Ask ``node`` (and, with ``deep``, its host) what discovery needs."""
    try:
        row = node.query(*probes.server_facts())[0]
    except (NodeUnreachable, QueryError) as exc:
        return Probe(False, str(exc))
    settings = {name: "" if value is None else str(value)
                for name, value in zip(probes.SERVER_FACTS, row, strict=True)}
    version = ServerVersion.parse(int(settings["version_num"]))
    recovering = bool(row[1])
    try:
        statement, params, names = queries.replication_status(version, recovering)
        senders = tuple(dict(zip(names, r, strict=True)) for r in node.query(statement, params))
        slots = tuple(node.slots())
        receiver = None
        conninfo: dict[str, str] = {}
        had_password = False
        slot_name = None
        if recovering:
            got = node.query(*probes.wal_receiver_facts(version))
            receiver = dict(zip(probes.WAL_RECEIVER_FIELDS, got[0], strict=True)) if got \
                else None
            configured, slot_name = node.query(*probes.recovery_settings(version))[0]
            # Parsed at once, the password dropped (the walreceiver shows it as ********).
            conninfo, had_password = parse_conninfo(
                configured or (receiver or {}).get("conninfo"))
    except (NodeUnreachable, QueryError) as exc:
        return Probe(False, str(exc))
    facts = None
    if deep and settings["data_directory"] and not isinstance(node.host, UnknownHost):
        try:
            facts = postmaster_facts(node.host, Path(settings["data_directory"]))
        except PgStreamError:
            facts = None
    return Probe(True, "", version, recovering, str(row[2]), settings, senders, slots,
                 receiver, conninfo, had_password, slot_name or None, facts)


def host_slug(host: str, port: int) -> str:
    """A node name from an address: ``local_5432`` (loopback, socket), ``db1_5432``."""
    if not host or host.startswith("/") or host in _LOOPBACK:
        base = "local"
    else:
        base = re.sub(r"[^a-z0-9]+", "_", host.lower()).strip("_") or "node"
        if not base[0].isalpha():
            base = "h" + base
    return f"{base}_{port}"[:63]


def is_node_name(name: str) -> bool:
    """Would ``name`` be accepted as a node name?"""
    try:
        identifiers.node_name(name)
    except PgStreamError:
        return False
    return True


def is_application_name(name: str) -> bool:
    """Would pgstream write ``name`` as an ``application_name``?"""
    try:
        identifiers.application_name(name)
    except PgStreamError:
        return False
    return True


@attrs.frozen
class Service:
    """The service discovery chose for a node, and why."""

    handle: PgCtlService | None
    kind: str
    how: str
    bindir: Path | None
    bindir_how: str
    log_file: Path | None
    log_how: str


def _bindir(host: Host, version: ServerVersion, facts: PostmasterFacts | None
            ) -> tuple[Path | None, str]:
    if facts is not None and facts.bindir is not None:
        return facts.bindir, f"the running postmaster (/proc/{facts.pid}/exe)"
    if isinstance(host, LocalHost):
        for inst in binaries.discover():
            if compat.same_major(inst.version, version) and inst.has_server:
                return inst.bindir, f"an installation of {version.major} ({inst.source})"
        return None, "not found: no installation of that major here"
    guess = Path(f"/usr/lib/postgresql/{version.major}/bin")
    if host.executable(guess / "postgres"):
        return guess, "Debian's layout on that host"
    return None, "not found on that host"


def build_service(host: Host, probe_: Probe, user: OsUser | None,
                  forced: str | None) -> Service:
    """pg_ctlcluster when the configuration is Debian's (``/etc/postgresql/MAJOR/NAME``), a
    systemd unit when one runs that postmaster, else pg_ctl; ``forced`` overrides."""
    assert probe_.version is not None and probe_.data_directory is not None
    facts = probe_.postmaster
    version, data_dir = probe_.version, probe_.data_directory
    bindir, bindir_how = _bindir(host, version, facts)
    stderr = facts.stderr if facts is not None else None
    debian = _DEBIAN_CONF.fullmatch(probe_.settings.get("config_file", ""))
    log, log_how = (stderr, "the postmaster's stderr (/proc/PID/fd/2)") if stderr else (
        data_dir.with_name(data_dir.name + ".log"), "none found: beside the data directory")
    if probe_.settings.get("logging_collector") == "on":
        log_how += f"; logging_collector writes {probe_.settings.get('log_directory')}/" \
                   f"{probe_.settings.get('log_filename')}"
    if bindir is None:
        return Service(None, "unknown", "no bin directory found", None, bindir_how, log, log_how)
    want = forced or ""
    if (want == "pg_ctlcluster" or (not want and facts is not None and facts.has_pg_ctlcluster)) \
            and debian is not None:
        major, name = debian[1], debian[2]
        if stderr is None:
            log = Path(f"/var/log/postgresql/postgresql-{major}-{name}.log")
            log_how = "Debian's log for that cluster"
        handle: PgCtlService = DebianClusterService(
            host=host, bindir=bindir, data_dir=data_dir, user=user, log_file=log,
            version=version, major=major, cluster=name)
        return Service(handle, "pg_ctlcluster", f"configuration in /etc/postgresql/{major}/"
                       f"{name}", bindir, bindir_how, log, log_how)
    unit = want.removeprefix("systemd:") if want.startswith("systemd:") else (
        facts.unit if facts is not None and facts.has_systemd and not want else None)
    if unit and (want or (facts is not None and unit_main_pid(host, unit) == facts.pid)):
        handle = SystemdService(host=host, bindir=bindir, data_dir=data_dir, user=user,
                                log_file=log, version=version, unit=unit)
        return Service(handle, "systemd", f"unit {unit} runs the postmaster", bindir,
                       bindir_how, log, log_how)
    handle = PgCtlService(host, bindir, data_dir, user, log, version=version)
    return Service(handle, "pg_ctl", "forced" if want else "no Debian layout, no systemd unit",
                   bindir, bindir_how, log, log_how)
