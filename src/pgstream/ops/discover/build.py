"""Discovery's last step: node handles, facts and problems from what the servers said.

:func:`build` asks nothing: it turns the matched probes of :mod:`pgstream.ops.discover.cluster` into
the ``Primary``/``Standby`` handles a ``Cluster`` is made of (data directory, OS user,
service, slot and ``application_name``), the addresses other nodes stream from, and the
frozen :class:`~pgstream.ops.discover.found.Discovery`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.hosts.service import PgCtlService
from pgstream.hosts.ssh import SshHost
from pgstream.nodes.conninfo import masked_conninfo
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.discover.elsewhere import UnknownHost
from pgstream.ops.discover.found import Discovery, NodeFacts, UnusedSlot
from pgstream.ops.discover.probe import (
    NodeSpec,
    Probe,
    Service,
    build_service,
    is_application_name,
)


@attrs.define
class Seen:
    """One server during discovery: its handle, what was said of it, what it said."""
    node: Node
    spec: NodeSpec
    probe: Probe
    given: bool
    upstream: Seen | None = None
    row: dict[str, Any] | None = None
    name: str = ""
    named_by: str = ""
    remote: bool = False
    """Found only by the address its upstream sees, on another machine: no host control."""


@attrs.frozen
class Found:
    """Discovery's result: the frozen :class:`Discovery` and the handles built from it."""

    discovery: Discovery
    primary: Primary
    standbys: tuple[Standby, ...]
    addresses: dict[str, tuple[str, int]]
    passfiles: dict[str, Path]
    node_settings: dict[str, dict[str, str]]
    replication_user: str | None
    stream_names: dict[str, tuple[str, str]] = attrs.field(factory=dict)
    """For a node that is not a standby now (the primary, once a standby), the slot and
    ``application_name`` it streams with when it becomes one again (a topology file's
    ``slot``/``application_name``)."""


def _params(conninfo: str) -> dict[str, Any]:
    return dict(pg_conninfo.conninfo_to_dict(conninfo))


def seen_rows(all_seen: Sequence[Seen]) -> set[tuple[int, int]]:
    """Which walsender rows (by upstream and row) a known standby was matched to."""
    return {(id(s.upstream), id(s.row)) for s in all_seen if s.row is not None}


def _address(seen: Seen, standbys: Sequence[Seen]) -> tuple[str, int] | None:
    """Where other nodes reach ``seen`` for replication."""
    port = seen.probe.port or int(_params(seen.spec.conninfo).get("port") or 5432)
    for down in standbys:  # how its own standbys reach it: the truth, if any streams
        if down.upstream is seen and down.probe.upstream_conninfo.get("host"):
            conn = down.probe.upstream_conninfo
            return conn["host"].split(",")[0], int(str(conn.get("port", port)).split(",")[0])
    host = str(_params(seen.spec.conninfo).get("host") or "")
    if host and not host.startswith("/"):
        return host.split(",")[0], port
    if seen.row is not None and seen.row.get("client_addr"):
        return str(seen.row["client_addr"]).split("/")[0], port
    sockets = seen.probe.settings.get("unix_socket_directories", "")
    if host or sockets:
        return (host or sockets.split(",")[0].strip()), port
    return None


def build(head: Seen, everyone: list[Seen], problems: list[str], started: float) -> Found:
    """Handles, addresses and facts from the probed, matched and named servers."""
    facts: list[NodeFacts] = []
    standbys: list[Standby] = []
    addresses: dict[str, tuple[str, int]] = {}
    passfiles: dict[str, Path] = {}
    own: dict[str, dict[str, str]] = {}
    again: dict[str, tuple[str, str]] = {}
    users: list[str] = []
    matched = seen_rows(everyone)
    for seen in sorted(everyone, key=lambda s: s is not head):  # the primary first
        node, p = seen.node, seen.probe
        node.name = seen.name
        service = _service(seen, head)
        if seen.remote:
            service = Service(None, "unknown", "found by address on another machine: "
                              "pgstream does not control its host", None, "", None, "")
            node.data_dir, node.os_user = None, None
        elif p.reachable:
            node.data_dir = p.data_directory
            node.os_user = p.postmaster.owner if p.postmaster is not None else None
        else:
            node.data_dir = seen.spec.data_dir
        node.service = service.handle
        if not isinstance(node, Standby) and (seen.spec.slot or seen.spec.application_name):
            again[node.name] = (seen.spec.slot or seen.name,
                                seen.spec.application_name or seen.name)
        if isinstance(node, Standby):
            node.upstream = None if seen.upstream in (None, head) else seen.upstream.name
            node.slot_name = str((seen.row or {}).get("slot_name") or p.slot_used
                                 or seen.spec.slot or seen.name)
            app = str((seen.row or {}).get("application_name") or seen.spec.application_name
                      or (p.own_application_name if p.reachable else seen.name))
            if is_application_name(app):
                node.application_name = app
            else:
                node.application_name = seen.name
                problems.append(f"{seen.name}'s application_name {app!r} is not one pgstream "
                                f"writes: it becomes {seen.name} when pgstream re-points it")
            standbys.append(node)
            if p.upstream_conninfo.get("user"):
                users.append(p.upstream_conninfo["user"])
            if p.upstream_conninfo.get("passfile"):
                passfiles[node.name] = Path(p.upstream_conninfo["passfile"])
        if (address := _address(seen, everyone)) is not None:
            addresses[node.name] = address
        if p.reachable:
            own[node.name] = {k: p.settings[k] for k in (
                "port", "listen_addresses", "unix_socket_directories", "cluster_name")
                if p.settings.get(k)}
        facts.append(_facts(seen, head, service))
    unused: list[UnusedSlot] = []
    for seen in everyone:
        used = {s.node.slot_name for s in everyone
                if isinstance(s.node, Standby) and (s.upstream or head) is seen}
        for slot in seen.probe.slots:
            if not slot.active and slot.name not in used:
                unused.append(UnusedSlot(seen.name, slot.name, slot.retained_bytes,
                                         slot.wal_status))
                problems.append(
                    f"slot {slot.name} on {seen.name} is inactive and no known standby uses "
                    f"it ({slot.retained_bytes} bytes of WAL held): a standby that is down, "
                    "or a slot to drop")
        for row in seen.probe.walsenders:
            if (id(seen), id(row)) not in matched:
                problems.append(
                    f"{seen.name} streams to {row['application_name']} at "
                    f"{row.get('client_addr') or 'a local socket'} (slot "
                    f"{row.get('slot_name') or 'none'}), which pgstream could not reach: pass "
                    "its conninfo (--standby)")
    for seen in everyone:
        if not seen.probe.reachable:
            problems.append(f"{seen.name} is down or unreachable: {seen.probe.error}")
    assert isinstance(head.node, Primary)
    discovery = Discovery(tuple(facts), tuple(unused), tuple(problems),
                          round(time.monotonic() - started, 4))
    return Found(discovery, head.node, tuple(standbys), addresses, passfiles, own,
                 max(set(users), key=users.count) if users else None, again)


def _service(seen: Seen, head: Seen) -> Service:
    p = seen.probe
    if p.reachable and p.data_directory is not None and (
            p.postmaster is not None or seen.spec.service):
        return build_service(seen.node.host, p, p.postmaster.owner if p.postmaster else None,
                             seen.spec.service)
    if not p.reachable and seen.spec.data_dir is not None and head.probe.reachable \
            and type(head.node.service) is PgCtlService \
            and seen.node.host.name == head.node.host.name:
        # Down, on the primary's host: the same programs, owner and kind of control.
        data = seen.spec.data_dir
        handle = attrs.evolve(head.node.service, data_dir=data,
                              log_file=data.with_name(data.name + ".log"))
        seen.node.os_user = head.node.os_user
        return Service(handle, "pg_ctl", "down: the primary's programs, its data_dir given",
                       handle.bindir, "the primary's", handle.log_file, "beside data_dir")
    return Service(None, "unknown", "not inspected" if p.reachable else "unreachable", None,
                   "", None, "")


def _facts(seen: Seen, head: Seen, service: Service) -> NodeFacts:
    p = seen.probe
    role = ("primary" if seen is head else "standby") if p.reachable else "down"
    upstream = None if seen is head else (seen.upstream.name if seen.upstream else None)
    node = seen.node
    ssh = node.host if isinstance(node.host, SshHost) else None
    known = not isinstance(node.host, UnknownHost)
    return NodeFacts(
        name=seen.name, named_by=seen.named_by, role=role, reachable=p.reachable,
        conninfo=masked_conninfo(seen.spec.conninfo),
        host=ssh.destination if ssh is not None else ("local" if known else "unknown"),
        host_known=known,
        become=ssh.become if ssh is not None else None,
        version=str(p.version) if p.version else None,
        system_identifier=p.system_identifier or None,
        data_directory=str(p.data_directory) if p.data_directory else None,
        config_file=p.settings.get("config_file") or None,
        hba_file=p.settings.get("hba_file") or None, port=p.port,
        cluster_name=p.settings.get("cluster_name") or None,
        os_user=node.os_user.name if node.os_user else None,
        bindir=str(service.bindir) if service.bindir else None, bindir_how=service.bindir_how,
        service=service.kind, service_how=service.how,
        log=str(service.log_file) if service.log_file else None, log_how=service.log_how,
        upstream=upstream,
        slot_name=node.slot_name if isinstance(node, Standby) else None,
        application_name=node.application_name if isinstance(node, Standby) else None,
        state=str(seen.row["state"]) if seen.row else (None if seen is head else "disconnected"),
        primary_conninfo=pg_conninfo.make_conninfo("", **p.upstream_conninfo)
        if p.upstream_conninfo else None,
        primary_conninfo_had_password=p.upstream_conninfo_had_password,
        error=p.error or None)
