"""Cross-checks: what a live server reports about itself, against what the caller declared.

A node is declared with a conninfo and, when pgstream manages it, a host, a data directory and
a service. Nothing guarantees that these name the same server: a data directory one letter
off, a conninfo with another port, a "primary" that is in recovery, a node of another cluster.
Acting on such a node stops, fences, promotes or wipes the wrong server. So before a plan acts,
:func:`probe` asks the server in one round trip (``SHOW data_directory``, ``SHOW port``,
``pg_is_in_recovery()``, ``pg_control_system()``, ``pg_backend_pid()``), reads the
``postmaster.pid`` of the *reported* data directory on the node's host, and :func:`check`
compares that with the declaration: a difference is a :class:`~pgstream.errors.ServerMismatch`
naming both values, raised before anything changes.

The postmaster's pid is proven, not assumed: it is the one in the reported data directory's
``postmaster.pid``, and where ``/proc`` of the node's host can be read, the parent of the
backend that answered (so the conninfo and the host name the same machine and server).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Literal

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    PgStreamError,
    ServerMismatch,
    UnsafeDataDirectory,
)
from pgstream.facts.lsn import Lsn
from pgstream.hosts import files
from pgstream.hosts.host import LocalHost
from pgstream.hosts.parallel import in_parallel
from pgstream.nodes.node import Node
from pgstream.render import queries

Role = Literal["primary", "standby"]


@attrs.frozen
class ServerReport:
    """What a live server said about itself (one query), and its postmaster on its host."""

    node: str
    data_directory: Path
    """As the server reports it (``SHOW data_directory``)."""
    resolved: Path
    """The same, resolved through symlinks on the node's host."""
    port: int
    in_recovery: bool
    system_identifier: str
    backend_pid: int
    postmaster_pid: int | None
    """From ``postmaster.pid`` of the reported data directory on the node's host (None when
    the node declares no data directory, so pgstream does not look at its files)."""
    current_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    replay_paused: bool | None = None
    streams_to: bool = False
    resolutions: tuple[tuple[str, str], ...] = ()
    """Declared paths already resolved on the node's host (``(path, resolved)``), so that a
    re-check with this report as ``known`` resolves nothing again."""

    @property
    def role(self) -> Role:
        """``standby`` when in recovery, else ``primary``."""
        return "standby" if self.in_recovery else "primary"


def _pidfile_pid(node: Node, data_directory: Path) -> int | None:
    try:
        text = node.host.read_text(data_directory / "postmaster.pid")
    except (OSError, PgStreamError):
        return None
    first = text.split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


def _parent_pid(node: Node, pid: int) -> int | None:
    """The parent of ``pid`` on the node's host (``/proc/PID/stat``), None if unreadable."""
    try:
        stat = node.host.read_text(Path(f"/proc/{pid}/stat"))
    except (OSError, PgStreamError, UnicodeDecodeError):
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


def _postmaster_and_parent(node: Node, data_directory: Path,
                           backend: int) -> tuple[int | None, int | None]:
    """The pid in ``postmaster.pid`` and the parent of ``backend``, read in one command on
    the node's host (None where unreadable)."""
    pidfile, stat = data_directory / "postmaster.pid", Path(f"/proc/{backend}/stat")
    try:
        found = files.read_files(node.host, (pidfile, stat))
    except (OSError, PgStreamError, UnicodeDecodeError):
        return _pidfile_pid(node, data_directory), _parent_pid(node, backend)
    first = (found[pidfile] or "").split("\n", 1)[0].strip()
    fields = (found[stat] or "").rsplit(")", 1)[-1].split()
    return (int(first) if first.isdigit() else None,
            int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None)


def _resolve(node: Node, path: Path) -> Path:
    try:
        return node.host.resolve(path)
    except (OSError, PgStreamError):
        return Path(os.path.normpath(path))


def probe(node: Node, *, streaming_to: tuple[str, str | None] | None = None,
          known: ServerReport | None = None) -> ServerReport:
    """Ask ``node``'s server what it is (one query), and find its postmaster on its host.

    ``known``: an earlier report of the same node, whose path resolution is reused when the
    server still reports the same data directory (a re-check just before a destructive step
    then costs one round trip). Raises :class:`~pgstream.errors.NodeUnreachable` when the
    server cannot be reached, and :class:`~pgstream.errors.ServerMismatch` when the conninfo
    reaches a server that is not the postmaster of that data directory on the node's host.
    """
    row = node.query(*queries.server_identity(node.version, streaming_to))[0]
    reported = Path(str(row[0]))
    same = known is not None and known.data_directory == reported
    resolved = known.resolved if known is not None and same else _resolve(node, reported)
    backend = int(row[4])
    postmaster: int | None = None
    if node.data_dir is not None or node.service is not None:
        postmaster, parent = _postmaster_and_parent(node, reported, backend)
        if postmaster is None:
            raise ServerMismatch(
                f"{node.name}: its conninfo reaches a server with data_directory {reported}, "
                f"but {node.host.name} has no postmaster.pid there (is the conninfo for "
                f"another machine than {node.host.name}?)", node=node.name, field="host",
                declared=node.host.name, reported=str(reported))
        if parent is not None and parent != postmaster:
            raise ServerMismatch(
                f"{node.name}: the server its conninfo reaches (backend {backend}, child of "
                f"{parent} on {node.host.name}) is not the postmaster {postmaster} of "
                f"{reported} on {node.host.name}", node=node.name, field="postmaster pid",
                declared=postmaster, reported=parent)
    return ServerReport(
        node=node.name, data_directory=reported, resolved=resolved, port=int(row[1]),
        in_recovery=bool(row[2]), system_identifier=str(row[3]), backend_pid=backend,
        postmaster_pid=postmaster, current_lsn=Lsn.maybe(row[5]), replay_lsn=Lsn.maybe(row[6]),
        replay_paused=None if row[7] is None else bool(row[7]), streams_to=bool(row[8]),
        resolutions=known.resolutions if known is not None else ())


def declared_port(node: Node, own_settings: Mapping[str, str] | None = None) -> int | None:
    """The port the caller declared for ``node``'s server, where there is one to compare.

    The ``port`` of its own settings (what pgstream writes into its configuration); else the
    conninfo's port when pgstream manages the node (data directory given) and the conninfo
    reaches it locally (a Unix socket, or a loopback address on this machine), where no port
    mapping can stand between the two. None: nothing declared that the server must match.
    """
    if own_settings and str(own_settings.get("port", "")).strip().isdigit():
        return int(str(own_settings["port"]).strip())
    if node.data_dir is None:
        return None
    params = pg_conninfo.conninfo_to_dict(node.conninfo)
    host = str(params.get("host") or params.get("hostaddr") or "")
    local_socket = host == "" or host.startswith(("/", "@"))
    loopback = isinstance(node.host, LocalHost) and (
        host in ("localhost", "::1") or host.startswith("127."))
    if not (local_socket or loopback) or "," in str(params.get("port") or ""):
        return None
    return int(str(params.get("port") or 5432))


def _mismatch(node: Node, field: str, declared: object, reported: object, why: str) -> None:
    raise ServerMismatch(
        f"{node.name}: declared {field} {declared} but the server reports {reported}: {why}",
        node=node.name, field=field, declared=declared, reported=reported)


def check(node: Node, report: ServerReport, *, role: Role | None = None,
          port: int | None = None, system_identifier: str | None = None) -> ServerReport:
    """Compare ``report`` with ``node``'s declaration; raise ``ServerMismatch`` on any
    difference (data directory of the node and of its service, port, role, system)."""
    cache = dict(report.resolutions)
    for what, path in (("data_dir", node.data_dir),
                       ("service data_dir", getattr(node.service, "data_dir", None))):
        if path is None:
            continue
        if str(path) not in cache:
            cache[str(path)] = str(_resolve(node, Path(path)))
        if Path(cache[str(path)]) != report.resolved:
            _mismatch(node, what, path, report.data_directory,
                      "that data directory is not the one of the server its conninfo "
                      "reaches (fix the declaration; nothing was changed)")
    if port is not None and port != report.port:
        _mismatch(node, "port", port, report.port,
                  "the conninfo reaches another server than declared")
    if role is not None and role != report.role:
        state = "in recovery" if report.in_recovery else "not in recovery"
        _mismatch(node, "role", role, f"{report.role} ({state})",
                  "a primary must not be in recovery, a standby must be")
    if system_identifier is not None and system_identifier != report.system_identifier:
        _mismatch(node, "system_identifier", system_identifier, report.system_identifier,
                  "it is not a copy of the same cluster as the others")
    return attrs.evolve(report, resolutions=tuple(sorted(cache.items())))


def verify(node: Node, *, role: Role | None = None, port: int | None = None,
           system_identifier: str | None = None,
           streaming_to: tuple[str, str | None] | None = None,
           known: ServerReport | None = None) -> ServerReport:
    """:func:`probe` then :func:`check`: the live server, proven to be the declared one."""
    report = probe(node, streaming_to=streaming_to, known=known)
    return check(node, report, role=role, port=port, system_identifier=system_identifier)


def verify_all(nodes: Iterable[tuple[Node, Role | None]],
               own_settings: Mapping[str, Mapping[str, str]], *,
               required: Iterable[str] = (),
               streaming_to: Mapping[str, tuple[str, str | None]] | None = None,
               system_identifier: str | None = None) -> dict[str, ServerReport]:
    """Cross-check every reachable node and that all share one ``system_identifier`` (the
    one given, else the first reachable node's); reports by node name.

    ``required`` nodes must be reachable (else ``NodeUnreachable``); the others are skipped
    when down. ``streaming_to``: per node, the standby whose walsender its report looks for.
    """
    must = set(required)
    reports: dict[str, ServerReport] = {}
    system = system_identifier
    first = "the others"
    items = list(nodes)

    def job(node: Node, role: Role | None) -> Callable[[], ServerReport | NodeUnreachable]:
        def run() -> ServerReport | NodeUnreachable:
            try:
                return verify(node, role=role,
                              port=declared_port(node, own_settings.get(node.name)),
                              streaming_to=(streaming_to or {}).get(node.name))
            except NodeUnreachable as exc:
                return exc
        return run

    # Every node at once (each its own connection and host): the slowest sets the time.
    found = in_parallel((str(i), job(node, role)) for i, (node, role) in enumerate(items))
    for i, (node, _role) in enumerate(items):
        report = found[str(i)]
        if isinstance(report, NodeUnreachable):
            if node.name in must:
                raise report
            continue  # a server that is down is checked from its files where it is used
        if system is None:
            system, first = report.system_identifier, node.name
        elif report.system_identifier != system:
            raise ServerMismatch(
                f"{node.name} reports system_identifier {report.system_identifier}, but "
                f"{first} has {system}: they are not copies of the same cluster",
                node=node.name, field="system_identifier", declared=system,
                reported=report.system_identifier)
        reports[node.name] = report
    return reports


def refuse_shared_places(nodes: Iterable[Node],
                         addresses: Mapping[str, tuple[str, int]]) -> None:
    """Two nodes can share neither a data directory on one host (both would be cloned into
    it at once: ``UnsafeDataDirectory``) nor a replication address (``InvalidInput``)."""
    seen: dict[tuple[str, str], str] = {}
    for node in nodes:
        places = {node.data_dir, getattr(node.service, "data_dir", None)} - {None}
        for place in places:
            key = (node.host.name, os.path.normpath(str(place)))
            other = seen.setdefault(key, node.name)
            if other != node.name:
                raise UnsafeDataDirectory(
                    f"{other} and {node.name} are both declared with the data directory "
                    f"{key[1]} on {key[0]}: each node needs its own")
    owners: dict[tuple[str, int], str] = {}
    for name, address in addresses.items():
        other = owners.setdefault((address[0], address[1]), name)
        if other != name:
            raise InvalidInput(f"{other} and {name} are both declared at {address[0]}:"
                               f"{address[1]}: each node needs its own address")

