"""Fakes for unit tests of the operations: a host, servers and nodes, in memory.

- :class:`FakeHost` (in :mod:`tests.fake_host`, re-exported here) implements
  :class:`pgstream.hosts.host.Host` in memory and records what was run and changed.
- :class:`FakeServer` is the scripted state of one PostgreSQL server: up or down, in recovery
  or not, LSNs, timeline, slots, walsenders, settings. It answers the statements pgstream
  sends (recognised by their text, see :meth:`FakeServer.answer`) and records those that
  would change something (``effects``); a statement it does not know fails the test.
- :class:`FakePrimary` and :class:`FakeStandby` are :class:`~pgstream.nodes.node.Primary` and
  :class:`~pgstream.nodes.node.Standby` whose transport (``query``, ``execute``,
  ``query_sets``, ``connect``, ``version``) goes to their :class:`FakeServer`: every other
  method (``ping``, ``in_recovery``, ``slots``, ``streams_to``, ``show``, ...) is the real one.
- :func:`fake_cluster` builds a :class:`~pgstream.Cluster` of such nodes, each on its own
  host, with ``postmaster.pid`` files that match what the servers report (the cross-checks
  of :mod:`pgstream.nodes.identity` pass), and :func:`stop` makes a node's server stopped
  with a ``pg_control`` to read.

For building plans only: nothing here pretends to apply one.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg
from psycopg import sql

from pgstream import Cluster, Plan
from pgstream.errors import NodeUnreachable, QueryError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts.controlfile import DbState
from pgstream.hosts.service import PgCtlService
from pgstream.nodes.node import Primary, Standby
from pgstream.nodes.statements import Params
from pgstream.ops.setup import ReplicationAuth
from tests.fake_host import POSTGRES, FakeHost

__all__ = ["POSTGRES", "FakeHost", "FakePrimary", "FakeServer", "FakeSlot", "FakeStandby",
           "Rig", "Walsender", "fake_cluster", "fake_node", "pg_control", "start", "stop"]

EFFECT_SQL = re.compile(
    r"^\s*(ALTER SYSTEM|CREATE ROLE|ALTER ROLE|DROP ROLE|CHECKPOINT|CREATE DATABASE|"
    r"DROP DATABASE|SELECT .*(pg_create_physical_replication_slot|pg_drop_replication_slot|"
    r"pg_promote|pg_reload_conf|pg_replication_slot_advance|pg_wal_replay_resume|"
    r"pg_xlog_replay_resume))", re.I | re.S)
_pids = itertools.count(4000)
LSN = Lsn.parse("0/5000000")
"""Where every fake server is by default (a primary's current LSN, a standby's replay)."""
SLOT_START = Lsn.parse("0/3000000")
PASSWORD = "secret"
"""The fake clusters' replication password (plans must never show it)."""


# -- the server ---------------------------------------------------------------------------------

@attrs.define
class FakeSlot:
    """A physical slot on a fake server."""

    name: str
    active: bool = False
    active_pid: int | None = None
    restart_lsn: Lsn | None = SLOT_START
    wal_status: str | None = "reserved"


@attrs.define
class Walsender:
    """A walsender of a fake server (a row of ``pg_stat_replication``)."""

    application_name: str
    slot: str | None = None
    state: str = "streaming"
    pid: int = attrs.field(factory=lambda: next(_pids))
    replay_lsn: Lsn = LSN
    sync_priority: int = 0
    sync_state: str = "async"


# name -> (context, vartype, unit, min, max, enumvals, default)
DEFINITIONS: dict[str, tuple[str, str, str | None, str | None, str | None, tuple[str, ...],
                             str]] = {
    "listen_addresses": ("postmaster", "string", None, None, None, (), "localhost"),
    "port": ("postmaster", "integer", None, "1", "65535", (), "5432"),
    "cluster_name": ("postmaster", "string", None, None, None, (), ""),
    "wal_level": ("postmaster", "enum", None, None, None, ("minimal", "replica", "logical"),
                  "replica"),
    "max_wal_senders": ("postmaster", "integer", None, "0", "262143", (), "10"),
    "max_replication_slots": ("postmaster", "integer", None, "0", "262143", (), "10"),
    "wal_keep_size": ("sighup", "integer", "MB", "0", "2147483647", (), "0"),
    "wal_keep_segments": ("sighup", "integer", None, "0", "2147483647", (), "0"),
    "hot_standby": ("postmaster", "bool", None, None, None, (), "on"),
    "wal_log_hints": ("postmaster", "bool", None, None, None, (), "off"),
    "synchronous_standby_names": ("sighup", "string", None, None, None, (), ""),
    "synchronous_commit": ("user", "enum", None, None, None,
                           ("local", "remote_write", "remote_apply", "on", "off"), "on"),
    "max_slot_wal_keep_size": ("sighup", "integer", "MB", "-1", "2147483647", (), "-1"),
}


@attrs.define(eq=False)
class FakeServer:
    """What one server reports (see the module docstring). ``settings`` hold the values in
    effect (``data_directory``, ``port``, ``hba_file`` ... and those of :data:`DEFINITIONS`)."""

    version: ServerVersion
    data_directory: Path
    port: int = 5432
    up: bool = True
    in_recovery: bool = False
    system_identifier: str = "7000000000000000001"
    timeline: int = 1
    current_lsn: Lsn = LSN
    received_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    replay_paused: bool = False
    slots: dict[str, FakeSlot] = attrs.field(factory=dict)
    walsenders: list[Walsender] = attrs.field(factory=list)
    settings: dict[str, str] = attrs.field(factory=dict)
    backend_pid: int = attrs.field(factory=lambda: next(_pids))
    history: str = ""
    """The timeline history file of the current timeline (``pg_read_file``)."""
    statements: list[str] = attrs.field(factory=list)
    """Every statement sent, as text (parameters not substituted)."""
    effects: list[str] = attrs.field(factory=list)
    """The statements that would change something (slots, settings, roles, promotion)."""

    def setting(self, name: str) -> str:
        """The value in effect: ``settings``, else the definition's default."""
        if name in self.settings:
            return self.settings[name]
        if name == "data_directory":
            return str(self.data_directory)
        if name == "port":
            return str(self.port)
        if name in ("hba_file", "config_file"):
            return str(self.data_directory / name.replace("_file", ".conf").replace(
                "config", "postgresql"))
        if name in DEFINITIONS:
            return DEFINITIONS[name][6]
        raise QueryError(f'unrecognized configuration parameter "{name}"', sqlstate="42704")

    def _streams(self, app: object, slot: object) -> bool:
        return any(w.application_name == app and w.state == "streaming"
                   and (slot is None or w.slot == slot) for w in self.walsenders)

    def _position(self) -> Lsn:
        return (self.received_lsn or self.replay_lsn or Lsn(0)) if self.in_recovery \
            else self.current_lsn

    def _slot_row(self, slot: FakeSlot) -> tuple[Any, ...]:
        retained = (self._position() - slot.restart_lsn) if slot.restart_lsn else None
        return (slot.name, slot.active, slot.active_pid,
                str(slot.restart_lsn) if slot.restart_lsn else None, retained,
                slot.wal_status, None, None, False, None)

    def answer(self, node: str, statement: sql.Composable | str,
               params: Params = None) -> list[tuple[Any, ...]]:
        """The rows this server returns for ``statement`` (see the module docstring)."""
        if not self.up:
            raise NodeUnreachable(f"cannot connect to {node}: connection refused")
        raw = statement.as_string(None) if isinstance(statement, sql.Composable) \
            else statement
        text = raw.replace('"', "")  # identifiers unquoted: one text whatever the quoting
        args = list(params or ()) if not isinstance(params, dict) else []
        self.statements.append(text)
        if EFFECT_SQL.match(text):
            self.effects.append(text)
            return [(True,)]
        if "current_setting('data_directory'), current_setting('port')" in text:
            rec = self.in_recovery
            return [(str(self.data_directory), self.port, rec, self.system_identifier,
                     self.backend_pid, None if rec else str(self.current_lsn),
                     str(self.replay_lsn) if rec and self.replay_lsn else None,
                     self.replay_paused if rec else None,
                     self._streams(args[0], args[1]) if args and args[0] else False)]
        if text == "SELECT 1":
            return [(1,)]
        if text == "SELECT pg_is_in_recovery()":
            return [(self.in_recovery,)]
        if text.startswith("SHOW "):
            return [(self.setting(text[5:].strip('"')),)]
        if "FROM pg_replication_slots WHERE slot_type = 'physical'" in text:
            wanted = args[0] if args else None
            return [self._slot_row(s) for n, s in sorted(self.slots.items())
                    if wanted is None or n == wanted]
        if text.startswith(("SELECT state FROM pg_stat_replication",
                            "SELECT r.state FROM pg_stat_replication")):
            slot = args[1] if len(args) > 1 else None
            return [(w.state,) for w in self.walsenders if w.application_name == args[0]
                    and (slot is None or w.slot == slot)]
        if "s.enumvals::text[]" in text:
            return [(n, self.setting(n), d[0], d[1], d[2], d[3], d[4], list(d[5]), None)
                    for n, d in DEFINITIONS.items() if n in args[0]]
        if "COALESCE(f.setting, s.boot_val)" in text:
            return [(n, self.setting(n), "configuration file" if n in self.settings
                     else "default", self.setting(n), None)
                    for n in DEFINITIONS if n in args[0]]
        if text.startswith("SELECT setting, source FROM pg_settings WHERE name = "
                           "'synchronous_standby_names'"):
            name = "synchronous_standby_names"
            return [(self.setting(name), "configuration file" if name in self.settings
                     else "default")]
        if text.startswith("SELECT setting, source, sourcefile FROM pg_settings"):
            return [(self.setting(args[0]), "default", None)] if args[0] in DEFINITIONS else []
        if "current_setting('max_wal_senders')::int" in text:
            return [(int(self.setting("max_wal_senders")), len(self.walsenders))]
        if "current_setting('max_replication_slots')::int" in text:
            return [(int(self.setting("max_replication_slots")), sorted(self.slots))]
        if text.startswith("SELECT status,") and "pg_stat_wal_receiver" in text:
            if not self.in_recovery:
                return []
            return [("streaming", str(self.received_lsn or self.replay_lsn), None)]
        if "received_tli" in text or "pg_walfile_name" in text:
            return [(self.timeline,)]
        if "pg_last_xact_replay_timestamp(), pg_is_in_recovery()" in text:
            if not self.in_recovery:
                return [(None, None, None, False)]
            return [(str(self.received_lsn) if self.received_lsn else None,
                     str(self.replay_lsn) if self.replay_lsn else None, None, True)]
        if text == "SELECT system_identifier::text FROM pg_control_system()":
            return [(self.system_identifier,)]
        if re.fullmatch(r"SELECT pg_current_(wal_lsn|xlog_location)\(\)::text", text):
            return [(str(self.current_lsn),)]
        if "FROM pg_authid WHERE rolname" in text:
            return []
        if text.startswith("SELECT pg_read_file"):
            return [(self.history,)]
        raise AssertionError(f"the fake server of {node} does not know this statement: {text}")


# -- nodes --------------------------------------------------------------------------------------

class _Scripted:
    """The transport of a fake node: its :class:`FakeServer` answers."""

    name: str
    server: FakeServer
    _version: ServerVersion | None

    def connect(self, timeout: float | None = None) -> psycopg.Connection[tuple[Any, ...]]:
        raise AssertionError(f"{self.name} is a fake node: nothing connects to a server")

    def close(self) -> None:
        return None

    def query(self, statement: sql.Composable | str,
              params: Params = None) -> list[tuple[Any, ...]]:
        return self.server.answer(self.name, statement, params)

    def execute(self, statement: sql.Composable | str, params: Params = None) -> int:
        self.server.answer(self.name, statement, params)
        return 1

    def query_sets(self, statements: Sequence[sql.Composable], *,
                   timeout: float | None = None) -> list[list[tuple[Any, ...]]]:
        return [self.server.answer(self.name, s) for s in statements]

    @property
    def version(self) -> ServerVersion:
        """As a real node: asked of the server once (unreachable when down), then kept."""
        if self._version is None:
            if not self.server.up:
                raise NodeUnreachable(f"cannot connect to {self.name}: connection refused")
            self._version = self.server.version
        return self._version


@attrs.define(eq=False, repr=False)
class FakePrimary(_Scripted, Primary):
    """A :class:`~pgstream.nodes.node.Primary` over a :class:`FakeServer`."""

    server: FakeServer = attrs.field(kw_only=True)


@attrs.define(eq=False, repr=False)
class FakeStandby(_Scripted, Standby):
    """A :class:`~pgstream.nodes.node.Standby` over a :class:`FakeServer`."""

    server: FakeServer = attrs.field(kw_only=True)


FakeNode = FakePrimary | FakeStandby


# -- a whole cluster ----------------------------------------------------------------------------

def pg_control(system_identifier: str, state: DbState, checkpoint: Lsn, timeline: int,
               version: ServerVersion) -> bytes:
    """The leading bytes of a ``global/pg_control`` as :mod:`pgstream.hosts.controlfile`
    reads them."""
    head = struct.pack("<QIIi4xqQ", int(system_identifier), 1300, 202307071, int(state), 0,
                       checkpoint.value)
    offset = 56 if version.adapter.supports("pg_control_prev_checkpoint") else 48
    body = bytearray(head.ljust(offset + 4, b"\0"))
    struct.pack_into("<I", body, offset, timeline)
    return bytes(body.ljust(256, b"\0"))


def _place(host: FakeHost, name: str, version: ServerVersion
           ) -> tuple[Path, PgCtlService]:
    bindir = host.install(f"/usr/lib/postgresql/{version.major}/bin", str(version))
    data_dir = Path(f"/var/lib/postgresql/{version.major}/{name}")
    host.add_dir(data_dir)
    host.add_file(data_dir / "PG_VERSION", f"{version.major}\n")
    return data_dir, PgCtlService(host, bindir, data_dir, user=POSTGRES, version=version)


def start(node: FakeNode, host: FakeHost) -> None:
    """The node's server runs: a live postmaster whose pid is in its ``postmaster.pid``."""
    node.server.up = True
    pid = next(_pids)
    host.alive.add(pid)
    host.postmasters[pid] = node.server.data_directory
    host.add_file(node.server.data_directory / "postmaster.pid",
                  f"{pid}\n{node.server.data_directory}\n1700000000\n{node.server.port}\n"
                  "/var/run/postgresql\n*\n  1234  5678\nready   \n")


def stop(node: FakeNode, host: FakeHost, *, state: DbState = DbState.SHUTDOWNED,
         checkpoint: str = "0/4000028", timeline: int | None = None) -> None:
    """The node's server is stopped (no postmaster, nothing answers), its ``pg_control``
    saying ``state`` at ``checkpoint`` on ``timeline`` (default its current one)."""
    server = node.server
    server.up = False
    pidfile = server.data_directory / "postmaster.pid"
    if pidfile in host.files:
        pid = int(host.files.pop(pidfile).split(b"\n", 1)[0])
        host.alive.discard(pid)
        host.postmasters.pop(pid, None)
    host.add_file(server.data_directory / "global" / "pg_control", pg_control(
        server.system_identifier, state, Lsn.parse(checkpoint),
        server.timeline if timeline is None else timeline, server.version))


@attrs.define(eq=False)
class Rig:
    """A fake cluster and what it is made of, by node name."""

    cluster: Cluster
    hosts: dict[str, FakeHost]
    servers: dict[str, FakeServer]

    def node(self, name: str) -> FakeNode:
        """The fake node of that name (primary, standby or failed)."""
        for node in [*self.cluster.nodes, *self.cluster.failed]:
            if node.name == name:
                assert isinstance(node, FakePrimary | FakeStandby)
                return node
        raise KeyError(name)

    def changes(self) -> dict[str, list[str]]:
        """What changed, per node: host changes and effect statements (empty lists dropped)."""
        out = {name: [*host.changes, *self.servers[name].effects]
               for name, host in self.hosts.items()}
        return {name: done for name, done in out.items() if done}


def fake_node(kind: type[FakePrimary] | type[FakeStandby], name: str, version: ServerVersion,
              host: FakeHost, *, fresh: bool = False, **kw: Any) -> FakeNode:
    """A node of ``kind`` on ``host``: its server running (a data directory, a service), or
    with ``fresh`` an empty data directory and no server yet (a standby to be cloned)."""
    data_dir, service = _place(host, name, version)
    server = FakeServer(version, data_dir, in_recovery=kind is FakeStandby,
                        replay_lsn=LSN if kind is FakeStandby else None,
                        received_lsn=LSN if kind is FakeStandby else None)
    node = kind(name, f"host={name}.example port=5432 user=postgres dbname=postgres",
                host=host, data_dir=data_dir, service=service, os_user=POSTGRES,
                server=server, **kw)
    if fresh:
        server.up = False
        del host.files[data_dir / "PG_VERSION"]
    else:
        start(node, host)
    return node


def fake_cluster(standbys: Iterable[str] = ("s1", "s2"), *, version: str = "16.4",
                 cascading: Mapping[str, str] | None = None, fresh: bool = False,
                 password: str | None = PASSWORD) -> Rig:
    """A primary ``pg`` and ``standbys`` (``cascading``: name -> its upstream standby), all
    streaming through their slots, each node on its own host ``<name>-host``; with
    ``fresh``, standbys not cloned yet (empty data directories, no server, no slot)."""
    parsed = ServerVersion.parse(version)
    upstreams = dict(cascading or {})
    hosts: dict[str, FakeHost] = {"pg": FakeHost("pg-host")}
    primary = fake_node(FakePrimary, "pg", parsed, hosts["pg"])
    assert isinstance(primary, FakePrimary)
    nodes: list[FakeStandby] = []
    for name in standbys:
        hosts[name] = FakeHost(f"{name}-host")
        node = fake_node(FakeStandby, name, parsed, hosts[name], fresh=fresh,
                         upstream=upstreams.get(name))
        assert isinstance(node, FakeStandby)
        nodes.append(node)
    by_name: dict[str, FakeNode] = {"pg": primary, **{n.name: n for n in nodes}}
    for node in [] if fresh else nodes:
        upstream = by_name[node.upstream or "pg"].server
        sender = Walsender(node.application_name, node.slot_name)
        upstream.walsenders.append(sender)
        upstream.slots[node.slot_name] = FakeSlot(node.slot_name, True, sender.pid)
    cluster = Cluster(primary, nodes, auth=ReplicationAuth("replicator", password))
    return Rig(cluster, hosts, {name: n.server for name, n in by_name.items()})


# -- what the plan tests assert


def shape(plan: Plan) -> list[tuple[str, str, str]]:
    """(kind, node, host) of each step, in order."""
    return [(s.kind.value, s.node, s.host) for s in plan.steps]


def kinds(plan: Plan) -> list[str]:
    """The step kinds of ``plan``, in order."""
    return [s.kind.value for s in plan.steps]


def unchanged(rig: Rig) -> None:
    """Nothing was written, run or executed that changes something, anywhere."""
    assert rig.changes() == {}
