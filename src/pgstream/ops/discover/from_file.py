"""A cluster from its topology file: read ``pgstream.toml``, ask every node whether it is
in recovery (in parallel), take the one that is not as the primary, discover the rest.

The primary is never written in the file: it is whichever node the servers say. Two nodes
out of recovery are refused (two primaries of one system: a split brain). With no primary
reachable, the node the standbys stream from (by their ``primary_conninfo``) is kept as a
dead primary, so that a failover can be planned. The replication password comes from the
environment variable or the passfile the file names, never from the file itself.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path

from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, NodeUnreachable, PgStreamError, ServerStateError
from pgstream.facts.identifiers import Secret
from pgstream.hosts.host import Host, LocalHost
from pgstream.hosts.parallel import in_parallel
from pgstream.hosts.ssh import SshHost
from pgstream.nodes.node import Standby
from pgstream.ops.discover.build import Found
from pgstream.ops.discover.cluster import discover_cluster
from pgstream.ops.discover.probe import NodeSpec, parse_conninfo
from pgstream.ops.setup import ReplicationAuth
from pgstream.render import probes
from pgstream.render.topology import LOCAL, NodeEntry, ReplicationEntry, Topology, parse_topology


def read_topology(path: str | Path) -> Topology:
    """Parse the file at ``path`` (a clear error when it is missing)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the topology file {file}: {exc.strerror}") from None
    return parse_topology(text, str(file))


def make_host(host: str | None, *, become: str | None = None,
              ssh_config: str | None = None) -> Host:
    """``local`` (or None): this machine; else an :class:`SshHost` to that destination."""
    if host in (None, LOCAL):
        if become is not None:
            raise InvalidInput("become needs an SSH host")
        return LocalHost()
    return SshHost(host, become=become, ssh_config=Path(ssh_config) if ssh_config else None)


def host_of(entry: NodeEntry) -> Host:
    """The host of a topology entry (``become``, ``ssh_config``)."""
    return make_host(entry.host, become=entry.become, ssh_config=entry.ssh_config)


def spec_of(entry: NodeEntry) -> NodeSpec:
    """What to probe for a topology entry: its conninfo, name, host, data directory,
    service, slot and application_name."""
    return NodeSpec(entry.conninfo, name=entry.name, host=host_of(entry),
                    data_dir=Path(entry.data_dir) if entry.data_dir else None,
                    service=entry.service, slot=entry.slot,
                    application_name=entry.application_name)


def replication_password(entry: ReplicationEntry, user: str | None) -> Secret | None:
    """The replication role's password, from ``password_env`` or ``passfile`` (0600 only)."""
    if entry.password_env is not None:
        value = os.environ.get(entry.password_env)
        if not value:
            raise InvalidInput(f"the topology names ${entry.password_env} for the replication "
                               "password, but it is not set")
        return Secret(value)
    if entry.passfile is None:
        return None
    path = Path(entry.passfile).expanduser()
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read the passfile {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(f"the passfile {path} is readable by others: chmod 600 it")
    for line in text.splitlines():
        fields = _passfile_fields(line)
        if len(fields) == 5 and fields[3] in ("*", user or "*"):
            return Secret(fields[4])
    raise InvalidInput(f"the passfile {path} has no entry for the replication user "
                       f"{user or '(any)'}")


def _passfile_fields(line: str) -> list[str]:
    if not line.strip() or line.lstrip().startswith("#"):
        return []
    fields, current, escaped = [], "", False
    for char in line:
        if escaped:
            current, escaped = current + char, False
        elif char == "\\":
            escaped = True
        elif char == ":":
            fields.append(current)
            current = ""
        else:
            current += char
    return [*fields, current]


def _in_recovery(spec: NodeSpec) -> tuple[bool | None, str, tuple[str, str] | None]:
    """In recovery?, system identifier, and the upstream a standby names (host, port)."""
    node = Standby(spec.name or "node", spec.conninfo, host=spec.host or LocalHost())
    try:
        recovering, system, conninfo = node.query(*probes.role_facts(node.version))[0]
    except PgStreamError:
        return None, "", None
    finally:
        node.close()
    params = parse_conninfo(conninfo)[0]  # the password dropped at once
    return bool(recovering), str(system), _endpoint(params) if params else None


def _endpoint(params: dict[str, str]) -> tuple[str, str]:
    host = (params.get("host") or "").split(",")[0]
    if host in ("", "localhost", "::1") or host.startswith("/"):
        host = "127.0.0.1"
    return host, (params.get("port") or "5432").split(",")[0]


def locate_primary(specs: list[NodeSpec]) -> tuple[NodeSpec, list[NodeSpec], bool]:
    """``(primary, standbys, primary is dead)`` among ``specs``, asked in parallel."""
    roles = in_parallel((str(i), functools.partial(_in_recovery, spec))
                        for i, spec in enumerate(specs))
    up = [(spec, roles[str(i)]) for i, spec in enumerate(specs) if roles[str(i)][0] is not None]
    heads = [(spec, facts) for spec, facts in up if facts[0] is False]
    if len({facts[1] for _, facts in heads}) > 1:
        raise InvalidInput("the topology lists servers of different clusters (system "
                           f"identifiers {', '.join(sorted({f[1] for _, f in heads}))})")
    if len(heads) > 1:
        raise ServerStateError(
            f"{' and '.join(str(s.name) for s, _ in heads)} are both out of recovery, of the "
            "same system: two primaries (a split brain). pgstream changes nothing; fence one "
            "of them, then rejoin it")
    if heads:
        primary = heads[0][0]
        return primary, [s for s in specs if s is not primary], False
    if not up:
        raise NodeUnreachable("no node of the topology could be reached: "
                              + ", ".join(str(s.name) for s in specs))
    # No primary answers: the one the standbys stream from is the dead primary.
    wanted = {facts[2] for _, facts in up if facts[2] is not None}
    dead = [s for s in specs if s not in [u for u, _ in up]
            and _endpoint({k: str(v) for k, v in pg_conninfo.conninfo_to_dict(
                s.conninfo).items() if v is not None}) in wanted]
    if len(dead) != 1:
        raise ServerStateError("no primary is reachable and the standbys do not name one "
                               "node of the topology as their upstream")
    return dead[0], [s for s in specs if s is not dead[0]], True


def found_from_topology(topology: Topology, *, deep: bool = True) -> Found:
    """Discover the cluster a topology describes."""
    specs = [spec_of(entry) for entry in topology.nodes]
    primary, standbys, dead = locate_primary(specs)
    return discover_cluster(primary, standbys=standbys, deep=deep, scan_local=False,
                            dead_primary=dead)


def found_in_file(path: str | Path, *, deep: bool = True) -> tuple[Found, ReplicationAuth]:
    """The cluster the topology file at ``path`` lists, discovered (the primary is whichever
    node the servers say), and the replication role to use: the file's user, else the one
    found, else ``replicator``, with the file's password."""
    topology = read_topology(path)
    entry = topology.replication
    # A password source that cannot be read is bad input (exit 2), whatever the servers'
    # state: read it before any server is asked when the user it is for is known already.
    early: Secret | None = None
    if entry.password_env is not None or entry.user is not None:
        early = replication_password(entry, entry.user)
    found = found_from_topology(topology, deep=deep)
    user = entry.user or found.replication_user or "replicator"
    password = early if early is not None else replication_password(entry, user)
    return found, ReplicationAuth(user, password)
