"""What discovery found, as frozen values: per node (:class:`NodeFacts`, each fact with how
it was learnt), slots no standby uses, and problems (a standby down, a walsender pgstream
could not follow). ``str()`` is a report; ``to_dict()`` is JSON-ready; :meth:`Discovery.
topology` is the ``pgstream.toml`` that describes the same nodes.
"""

from __future__ import annotations

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.render.topology import NodeEntry, ReplicationEntry, Topology


@attrs.frozen
class NodeFacts:
    """One node as discovery found it. ``named_by``: ``given``, ``application_name``,
    ``cluster_name`` or ``host and port``; ``role``: primary, standby or down."""

    name: str
    named_by: str
    role: str
    reachable: bool
    conninfo: str
    """As given or built, any password masked."""
    host: str
    """``local``, the SSH destination, or ``unknown`` (see :attr:`host_known`)."""
    become: str | None = None
    version: str | None = None
    system_identifier: str | None = None
    data_directory: str | None = None
    config_file: str | None = None
    hba_file: str | None = None
    port: int | None = None
    cluster_name: str | None = None
    os_user: str | None = None
    bindir: str | None = None
    bindir_how: str = ""
    service: str = "unknown"
    service_how: str = ""
    log: str | None = None
    log_how: str = ""
    upstream: str | None = None
    slot_name: str | None = None
    application_name: str | None = None
    state: str | None = None
    primary_conninfo: str | None = None
    """A standby's ``primary_conninfo``, without its password."""
    primary_conninfo_had_password: bool = False
    error: str | None = None
    host_known: bool = True
    """False for a standby found only by the address its upstream sees (its ``conninfo``'s
    host), on another machine: pgstream does not know how to reach that machine, so it runs
    nothing there (no service, no data directory) and the topology file leaves it out."""

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field (its conninfo with any password masked)."""
        return attrs.asdict(self)


@attrs.frozen
class UnusedSlot:
    """A slot that no known standby streams through (it may be a down standby's)."""

    node: str
    slot: str
    retained_bytes: int | None
    wal_status: str | None = None


@attrs.frozen
class Discovery:
    """The whole cluster as found, the primary first."""

    nodes: tuple[NodeFacts, ...]
    unused_slots: tuple[UnusedSlot, ...] = ()
    problems: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def primary(self) -> NodeFacts:
        """The primary's facts (always the first node)."""
        return self.nodes[0]

    def node(self, name: str) -> NodeFacts:
        """The facts of the node named ``name`` (raises ``KeyError``)."""
        for facts in self.nodes:
            if facts.name == name:
                return facts
        raise KeyError(name)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: ``nodes``, ``unused_slots``, ``problems``, ``seconds``."""
        return {"nodes": [n.to_dict() for n in self.nodes],
                "unused_slots": [attrs.asdict(s) for s in self.unused_slots],
                "problems": list(self.problems), "seconds": self.seconds}

    @property
    def hosts_unknown(self) -> tuple[NodeFacts, ...]:
        """The nodes whose host is not known (:attr:`NodeFacts.host_known`), which
        :meth:`topology` leaves out."""
        return tuple(n for n in self.nodes if not n.host_known)

    def topology(self, replication: ReplicationEntry | None = None) -> Topology:
        """The topology file for these nodes (conninfos without password). A standby's slot
        and ``application_name`` are written where they are not its name, so that they are
        kept once it is a primary and, later, a standby again. A node whose host is not known
        (:attr:`hosts_unknown`) is left out, never written with another node's host: read
        back, the file finds it again by address (see :meth:`topology_notes`)."""
        entries = []
        for facts in self.nodes:
            if not facts.host_known:
                continue
            params = {k: v for k, v in pg_conninfo.conninfo_to_dict(facts.conninfo).items()
                      if k != "password" and v is not None}
            slot = facts.slot_name if facts.slot_name not in (None, facts.name) else None
            app = facts.application_name \
                if facts.application_name not in (None, facts.name) else None
            entries.append(NodeEntry(
                name=facts.name, conninfo=pg_conninfo.make_conninfo("", **params),
                host=facts.host, become=facts.become, data_dir=facts.data_directory,
                service=facts.service if facts.service in ("pg_ctl", "pg_ctlcluster")
                else None, slot=slot, application_name=app))
        return Topology(tuple(entries), replication or ReplicationEntry())

    def topology_notes(self) -> str:
        """Comment text for the topology file: each node :meth:`topology` left out, why, and
        the table to add once its host is known (empty when none was)."""
        notes = []
        for n in self.hosts_unknown:
            params = {k: v for k, v in pg_conninfo.conninfo_to_dict(n.conninfo).items()
                      if k != "password" and v is not None}
            where = params.get("host") or "?"
            notes += [
                f"Not written: {n.name}, a standby found only at {where} (the address its "
                "upstream",
                "sees), on another machine: pgstream does not know that machine's host, so it "
                "does not",
                "control that server (the primary still finds it by that address at each run). "
                "To let",
                "pgstream control it, add it with its host (an SSH destination, or \"local\"):",
                f"[nodes.{n.name}]",
                f"conninfo = \"{pg_conninfo.make_conninfo('', **params)}\"",
                "host = \"admin@that-machine\"", ""]
        return "\n".join(notes).rstrip("\n")

    def __str__(self) -> str:
        out = []
        for n in self.nodes:
            head = f"{n.name} ({n.role}, named by {n.named_by})"
            if n.role != "primary":
                head += f": streams from {n.upstream or '?'}, state {n.state or '-'}, " \
                        f"slot {n.slot_name or '-'}, application_name {n.application_name}"
            out.append(head)
            if not n.reachable:
                out.append(f"    unreachable: {n.error}")
                continue
            on = n.host if n.host_known else "a host pgstream does not know"
            out += [f"    PostgreSQL {n.version} on {on}, port {n.port}, system "
                    f"{n.system_identifier}",
                    f"    data_directory {n.data_directory} (owner {n.os_user or '?'})",
                    f"    config_file {n.config_file}", f"    hba_file {n.hba_file}",
                    f"    bin {n.bindir or '?'} ({n.bindir_how})",
                    f"    service {n.service} ({n.service_how})",
                    f"    log {n.log or '?'} ({n.log_how})"]
            if n.primary_conninfo:
                out.append(f"    primary_conninfo {n.primary_conninfo}"
                           + (" (a password in it: not kept)"
                              if n.primary_conninfo_had_password else ""))
        out += [f"problem: {p}" for p in self.problems]
        out.append(f"(discovered in {self.seconds * 1000:.0f} ms)")
        return "\n".join(out)
