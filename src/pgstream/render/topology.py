"""The topology file, ``pgstream.toml``: which servers make up a cluster, and how to reach
them. Pure: :func:`parse_topology` reads TOML text (``tomllib``) into a frozen
:class:`Topology`, strictly; :func:`render_topology` writes one back.

It lists nodes, not roles: which node is the primary is read from the servers at each run,
so a switchover done by anyone is seen the next time. It never holds a password: the
replication role's comes from an environment variable or a passfile named here.

.. code-block:: toml

    version = 1

    [replication]
    user = "repuser"
    password_env = "PGSTREAM_REPLICATION_PASSWORD"   # or: passfile = "/root/.pgpass"

    [nodes.main]
    conninfo = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    host = "local"                 # or an SSH destination: "admin@db1", with become = "root"
    data_dir = "/srv/pg/main"      # optional, when discovery cannot tell
    service = "pg_ctl"             # optional: pg_ctl, pg_ctlcluster, systemd:<unit>
"""

from __future__ import annotations

import tomllib
from pathlib import PurePosixPath
from typing import Any

import attrs
import psycopg
from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, TopologyError
from pgstream.facts import identifiers

FORMAT_VERSION = 1
LOCAL = "local"
_TOP = ("version", "replication", "nodes")
_REPLICATION = ("user", "password_env", "passfile")
_NODE = ("conninfo", "host", "become", "ssh_config", "data_dir", "service", "slot",
         "application_name")
_SECRET_KEYS = ("password", "passwd", "secret")
_SERVICES = ("pg_ctl", "pg_ctlcluster")


@attrs.frozen
class ReplicationEntry:
    """The replication role standbys connect as, and where its password comes from."""

    user: str | None = None
    password_env: str | None = None
    passfile: str | None = None


@attrs.frozen
class NodeEntry:
    """One ``[nodes.NAME]`` table."""

    name: str
    conninfo: str
    host: str = LOCAL
    become: str | None = None
    ssh_config: str | None = None
    data_dir: str | None = None
    service: str | None = None
    slot: str | None = None
    application_name: str | None = None

    @property
    def is_local(self) -> bool:
        """Does the node run on this machine (``host = "local"``)?"""
        return self.host == LOCAL


def _as_nodes(items: Any) -> tuple[NodeEntry, ...]:
    return tuple(items)


@attrs.frozen
class Topology:
    """The nodes of a cluster (in file order) and its replication role."""

    nodes: tuple[NodeEntry, ...] = attrs.field(converter=_as_nodes)
    replication: ReplicationEntry = attrs.field(factory=ReplicationEntry)

    def node(self, name: str) -> NodeEntry:
        """The entry named ``name`` (:class:`~pgstream.errors.InvalidInput` when none)."""
        for entry in self.nodes:
            if entry.name == name:
                return entry
        raise InvalidInput(f"no node named {name!r} in the topology")

    def with_node(self, entry: NodeEntry) -> Topology:
        """This topology with ``entry`` added (or replacing the node of that name)."""
        kept = [n for n in self.nodes if n.name != entry.name]
        return check_topology(attrs.evolve(self, nodes=(*kept, entry)))

    def without(self, name: str) -> Topology:
        """This topology without the node named ``name`` (unchanged when it has none)."""
        return attrs.evolve(self, nodes=tuple(n for n in self.nodes if n.name != name))


def _fail(message: str, path: str, key: str = "") -> TopologyError:
    return TopologyError(f"{path}: {message}", path=path, key=key)


def _unknown(table: dict[str, Any], allowed: tuple[str, ...], where: str, path: str) -> None:
    for key in table:
        if key.lower() in _SECRET_KEYS:
            raise _fail(f"{where}.{key}: a topology file never holds a password; name where "
                        "it comes from instead ([replication] password_env = \"VAR\" or "
                        "passfile = \"/path\")", path, f"{where}.{key}")
        if key not in allowed:
            raise _fail(f"unknown key {where}.{key} (known: {', '.join(allowed)})", path,
                        f"{where}.{key}")


def _string(table: dict[str, Any], key: str, where: str, path: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise _fail(f"{where}.{key} must be a non-empty string, not {value!r}", path,
                    f"{where}.{key}")
    return value


def check_conninfo(conninfo: str, where: str, path: str = "<topology>") -> None:
    """A conninfo fit for the file: parsable, no password, a valid port."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise _fail(f"{where}.conninfo is not a valid conninfo: {exc}", path,
                    f"{where}.conninfo") from None
    if "password" in params:
        raise _fail(f"{where}.conninfo holds a password: remove it (libpq reads ~/.pgpass, "
                    "PGPASSFILE or passfile=... in the conninfo)", path, f"{where}.conninfo")
    port = str(params.get("port") or "5432")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise _fail(f"{where}.conninfo has a bad port {port!r}: give one from 1 to 65535",
                    path, f"{where}.conninfo")


def _node(name: str, table: Any, path: str) -> NodeEntry:
    where = f"nodes.{name}"
    if not isinstance(table, dict):
        raise _fail(f"{where} must be a table", path, where)
    try:
        identifiers.node_name(name)
    except InvalidInput as exc:
        raise _fail(f"{where}: {exc}", path, where) from None
    _unknown(table, _NODE, where, path)
    values = {key: _string(table, key, where, path) for key in _NODE}
    if values["conninfo"] is None:
        raise _fail(f"{where} needs a conninfo", path, f"{where}.conninfo")
    return NodeEntry(name=name, **{k: v for k, v in values.items() if v is not None})


def check_topology(topology: Topology, path: str = "<topology>") -> Topology:
    """Validate a whole topology (also one built in code); returns it."""
    seen_dirs: dict[tuple[str, str], str] = {}
    seen_conn: dict[str, str] = {}
    if not topology.nodes:
        raise _fail("no [nodes.NAME] table: list at least one node", path, "nodes")
    for entry in topology.nodes:
        where = f"nodes.{entry.name}"
        identifiers.node_name(entry.name)
        check_conninfo(entry.conninfo, where, path)
        canonical = pg_conninfo.make_conninfo(entry.conninfo)
        if canonical in seen_conn:
            raise _fail(f"{where} and nodes.{seen_conn[canonical]} have the same conninfo",
                        path, f"{where}.conninfo")
        seen_conn[canonical] = entry.name
        if entry.host != LOCAL and (entry.host.startswith("-")
                                    or any(c.isspace() for c in entry.host)):
            raise _fail(f"{where}.host {entry.host!r} is neither 'local' nor an SSH "
                        "destination", path, f"{where}.host")
        if entry.become is not None:
            if entry.is_local:
                raise _fail(f"{where}.become needs an SSH host", path, f"{where}.become")
            identifiers.os_user_name(entry.become)
        if entry.service is not None and entry.service not in _SERVICES and not (
                entry.service.startswith("systemd:") and len(entry.service) > 8):
            raise _fail(f"{where}.service {entry.service!r}: use pg_ctl, pg_ctlcluster or "
                        "systemd:<unit>", path, f"{where}.service")
        if entry.slot is not None:
            identifiers.slot_name(entry.slot)
        if entry.application_name is not None:
            identifiers.application_name(entry.application_name)
        if entry.data_dir is not None:
            if not PurePosixPath(entry.data_dir).is_absolute():
                raise _fail(f"{where}.data_dir must be an absolute path", path,
                            f"{where}.data_dir")
            key = (entry.host, str(PurePosixPath(entry.data_dir)))
            if key in seen_dirs:
                raise _fail(f"{where} and nodes.{seen_dirs[key]} name the same data directory "
                            f"{entry.data_dir} on {entry.host}: one server cannot be two "
                            "nodes", path, f"{where}.data_dir")
            seen_dirs[key] = entry.name
    rep = topology.replication
    if rep.user is not None:
        identifiers.role_name(rep.user)
    if rep.password_env is not None and rep.passfile is not None:
        raise _fail("[replication] names both password_env and passfile: keep one", path,
                    "replication")
    return topology


def parse_topology(text: str, path: str = "<topology>") -> Topology:
    """Read ``pgstream.toml`` text; raises :class:`~pgstream.errors.TopologyError`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"not valid TOML: {exc}", path) from None
    for key in data:
        if key.lower() in _SECRET_KEYS:
            raise _fail(f"{key}: a topology file never holds a password", path, key)
        if key not in _TOP:
            raise _fail(f"unknown key {key} (known: {', '.join(_TOP)})", path, key)
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        raise _fail(f"version {data['version']!r} is not one this pgstream reads "
                    f"({FORMAT_VERSION})", path, "version")
    rep = data.get("replication", {})
    if not isinstance(rep, dict):
        raise _fail("replication must be a table", path, "replication")
    _unknown(rep, _REPLICATION, "replication", path)
    replication = ReplicationEntry(**{k: _string(rep, k, "replication", path)
                                      for k in _REPLICATION})
    nodes = data.get("nodes", {})
    if not isinstance(nodes, dict):
        raise _fail("nodes must be tables: [nodes.NAME]", path, "nodes")
    topology = Topology(tuple(_node(name, table, path) for name, table in nodes.items()),
                        replication)
    try:
        return check_topology(topology, path)
    except TopologyError:
        raise
    except InvalidInput as exc:
        raise _fail(str(exc), path) from None


def _toml_string(value: str) -> str:
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char < " " or char == "\x7f":
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def render_topology(topology: Topology, *, comment: str = "") -> str:
    """TOML text for ``topology`` (``parse_topology`` reads it back to an equal value)."""
    check_topology(topology)
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += ["# pgstream topology: the nodes, not their roles (the primary is read from the",
              "# servers at each run). Never a password here.",
              f"version = {FORMAT_VERSION}", ""]
    rep = topology.replication
    if any((rep.user, rep.password_env, rep.passfile)):
        lines.append("[replication]")
        lines += [f"{key} = {_toml_string(value)}" for key in _REPLICATION
                  if (value := getattr(rep, key)) is not None]
        lines.append("")
    for entry in topology.nodes:
        lines.append(f"[nodes.{entry.name}]")
        for key in _NODE:
            value = getattr(entry, key)
            if value is not None:
                lines.append(f"{key} = {_toml_string(value)}")
        lines.append("")
    return "\n".join(lines)
