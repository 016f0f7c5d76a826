"""Cluster status: the seed's steps 11 to 13 as typed, frozen values.

``ClusterStatus`` holds the primary's position and, per standby, what the primary's
``pg_stat_replication`` says of it (state, LSNs, lag in bytes and time, sync state, slot) and
what the standby says of itself (``pg_is_in_recovery()``, replay position). ``str()`` is a
table; ``to_dict()`` is JSON-ready; notebooks get an HTML table.

:func:`cluster_status` reads it: one thread per node, one round trip per node (a standby's
own facts; an upstream's also its walsenders and slots), each connection opened within
:data:`STATUS_CONNECT_TIMEOUT` seconds and each answer awaited at most
:data:`STATUS_ANSWER_TIMEOUT` seconds more, so a standby that cannot be reached costs that
bound once, not libpq's full timeout per node in turn.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import threading
import time
from collections.abc import Iterable
from typing import Any

import attrs
from psycopg import sql

from pgstream.errors import InvalidInput, NodeUnreachable, QueryError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Node, slot_status_of
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.view import ClusterView
from pgstream.render import queries

STATUS_CONNECT_TIMEOUT = 3.0
"""Seconds ``status()`` waits for a connection to a node to open (per address; libpq counts
whole seconds, at least 2). A refused or missing server fails at once."""
STATUS_ANSWER_TIMEOUT = 3.0
"""Seconds more ``status()`` gives a node to answer: one that has not answered
``STATUS_CONNECT_TIMEOUT + STATUS_ANSWER_TIMEOUT`` seconds after the call began (a host that
drops packets on an open connection, a server that hangs) is cut off, reported unreachable."""


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.timedelta):
        return f"{value.total_seconds():.3f}s"
    return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, Lsn):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@attrs.frozen
class HistoryEntry:
    """One operation done on the cluster (switchover, failover, rejoin, ...)."""

    at: dt.datetime
    operation: str
    detail: str
    timeline: int | None = None

    def __str__(self) -> str:
        tl = f" (timeline {self.timeline})" if self.timeline is not None else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.operation}: {self.detail}{tl}"

    def to_dict(self) -> dict[str, object]:
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


@attrs.frozen
class PrimaryStatus:
    name: str
    version: str
    lsn: Lsn
    in_recovery: bool = False
    timeline: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


@attrs.frozen
class StandbyStatus:
    """One standby, as its primary and as it itself sees it.

    ``state`` is pg_stat_replication's (``streaming``, ``catchup``, ...) or ``disconnected``
    when the primary has no walsender for it. ``replay_lag_bytes`` is how far replay is
    behind: while it streams, its upstream's position minus ``replay_lsn``
    (``pg_wal_lsn_diff``); while disconnected, the primary's current LSN minus the replay LSN
    the standby reports itself; None when it cannot be known (disconnected and unreachable).
    ``slot_retained_bytes`` is what its slot holds back, a separate thing. ``replay_lag`` is the
    time lag (``replay_lag`` from 10, ``now() - pg_last_xact_replay_timestamp()`` on the standby
    for 9.6), None when unknown.
    """

    name: str
    state: str
    sent_lsn: Lsn | None = None
    write_lsn: Lsn | None = None
    flush_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    replay_lag_bytes: int | None = None
    replay_lag: dt.timedelta | None = None
    sync_state: str | None = None
    sync_priority: int | None = None
    slot_name: str | None = None
    slot_active: bool | None = None
    slot_wal_status: str | None = None
    slot_retained_bytes: int | None = None
    in_recovery: bool | None = None
    reachable: bool = True
    upstream: str | None = None

    @property
    def streaming(self) -> bool:
        return self.state == "streaming"

    def to_dict(self) -> dict[str, object]:
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


COLUMNS = (("name", "name"), ("upstream", "upstream"), ("state", "state"), ("sent", "sent_lsn"),
           ("replay", "replay_lsn"), ("lag bytes", "replay_lag_bytes"), ("lag", "replay_lag"),
           ("sync", "sync_state"), ("slot", "slot_name"), ("slot wal", "slot_wal_status"),
           ("slot held", "slot_retained_bytes"), ("recovery", "in_recovery"))


@attrs.frozen
class ClusterStatus:
    """The whole cluster at one moment (``taken_at``, UTC)."""

    primary: PrimaryStatus
    standbys: tuple[StandbyStatus, ...]
    taken_at: dt.datetime
    history: tuple[HistoryEntry, ...] = ()
    failed: tuple[str, ...] = ()

    def standby(self, name: str) -> StandbyStatus:
        for item in self.standbys:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def all_streaming(self) -> bool:
        return all(s.streaming for s in self.standbys)

    def to_dict(self) -> dict[str, object]:
        return {"primary": self.primary.to_dict(),
                "standbys": [s.to_dict() for s in self.standbys],
                "taken_at": self.taken_at.isoformat(),
                "history": [h.to_dict() for h in self.history],
                "failed": list(self.failed)}

    def rows(self) -> list[list[str]]:
        return [[_fmt(getattr(s, attr)) for _, attr in COLUMNS] for s in self.standbys]

    def __str__(self) -> str:
        tl = f", timeline {self.primary.timeline}" if self.primary.timeline is not None else ""
        head = (f"primary {self.primary.name} (PostgreSQL {self.primary.version}) at "
                f"{self.primary.lsn}{tl}, in_recovery={_fmt(self.primary.in_recovery)}")
        titles = [title for title, _ in COLUMNS]
        rows = self.rows()
        widths = [max(len(t), *(len(r[i]) for r in rows)) if rows else len(t)
                  for i, t in enumerate(titles)]
        line = "  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()
        out = [head, line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        if not rows:
            out.append("(no standbys)")
        if self.failed:
            out.append("failed (awaiting rejoin): " + ", ".join(self.failed))
        out += [f"history: {entry}" for entry in self.history[-5:]]
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(t)}</th>" for t, _ in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                       for r in self.rows())
        return (f"<p>primary <b>{html.escape(self.primary.name)}</b> "
                f"(PostgreSQL {html.escape(self.primary.version)}) at "
                f"<code>{self.primary.lsn}</code></p>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


# -- reading it


@attrs.frozen
class _Seen:
    """What one node says of itself (and, as an upstream, of its walsenders and slots)."""

    in_recovery: bool
    lsn: Lsn | None
    timeline: int | None
    replay_lsn: Lsn | None
    replay_delay: dt.timedelta | None
    walsenders: dict[str, dict[str, Any]]
    slots: dict[str, SlotStatus]


@functools.lru_cache(maxsize=32)
def _statements(num: int) -> tuple[tuple[sql.SQL, ...], tuple[str, ...]]:
    """The three statements of a status round trip, rendered once per server version."""
    version = ServerVersion.parse(num)
    replication, _params, names = queries.replication_status(version, None)
    built = (queries.node_facts(version)[0], replication, queries.slot_status(version, None)[0])
    return tuple(sql.SQL(b.as_string(None)) for b in built), names


def _observe(node: Node, upstream: bool, timeout: float) -> _Seen:
    """One round trip to ``node`` (plus one retry at once if a kept connection had gone)."""
    for attempt in (1, 2):
        kept = node.connected
        started = time.monotonic()
        try:
            node.connect(timeout)
            statements, names = _statements(node.version.num)
            sets = node.query_sets(statements if upstream else statements[:1], timeout=timeout)
            break
        except NodeUnreachable:
            # A connection kept from before a restart fails at once: open a fresh one.
            if attempt == 2 or not kept or time.monotonic() - started > 1.0:
                raise
    in_recovery, lsn, timeline, replay, delay = sets[0][0]
    walsenders: dict[str, dict[str, Any]] = {}
    slots: dict[str, SlotStatus] = {}
    if upstream:
        for row in sets[1]:
            walsenders[str(row[0])] = dict(zip(names, row, strict=True))
        slots = {kept.name: kept for kept in map(slot_status_of, sets[2])}
    return _Seen(bool(in_recovery), Lsn.maybe(lsn), None if timeline is None else int(timeline),
                 Lsn.maybe(replay), delay, walsenders, slots)


def _observe_all(nodes: list[Node], upstreams: set[str], timeout: float,
                 answer_timeout: float) -> dict[str, _Seen | Exception]:
    """Every node in its own thread; one that has not answered ``timeout + answer_timeout``
    seconds after the start is cut off (its socket shut down) and reported unreachable."""
    results: dict[str, _Seen | Exception] = {}
    lock = threading.Lock()

    def one(node: Node) -> None:
        try:
            seen: _Seen | Exception = _observe(node, node.name in upstreams, timeout)
        except (NodeUnreachable, QueryError) as exc:
            seen = exc
        with lock:
            results.setdefault(node.name, seen)

    threads = [threading.Thread(target=one, args=(node,), daemon=True,
                                name=f"pgstream-status-{node.name}") for node in nodes]
    for thread in threads:
        thread.start()
    bound = timeout + answer_timeout
    deadline = time.monotonic() + bound
    for node, thread in zip(nodes, threads, strict=True):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            node.abort()  # a server that accepted the connection but does not answer
            thread.join(0.5)
            with lock:
                results.setdefault(node.name, NodeUnreachable(
                    f"{node.name} did not answer within {bound:g} s"))
    return results


def cluster_status(view: ClusterView, *, history: Iterable[HistoryEntry] = (),
                   connect_timeout: float = STATUS_CONNECT_TIMEOUT,
                   answer_timeout: float = STATUS_ANSWER_TIMEOUT) -> ClusterStatus:
    """The cluster now: every node asked at once, each in one round trip.

    A standby that cannot be reached is ``reachable=False`` with ``in_recovery`` None; one
    whose upstream cannot be reached is ``disconnected``; neither raises. The primary must be
    reachable (its ``NodeUnreachable`` or ``QueryError`` is raised). A connection opens within
    ``connect_timeout`` seconds (:data:`STATUS_CONNECT_TIMEOUT`, per address), and a node that
    has not answered ``connect_timeout + answer_timeout`` seconds after the call began is cut
    off and reported unreachable: the call takes about the slowest node's time, at most that
    bound (6 s by default), not the sum over nodes.
    """
    for label, value in (("connect_timeout", connect_timeout),
                         ("answer_timeout", answer_timeout)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise InvalidInput(f"{label} must be a positive number of seconds, not {value!r}")
    primary = view.primary
    members = [primary, *view.standbys]
    upstreams = {s.upstream or primary.name for s in view.standbys}
    seen = _observe_all(members, upstreams, connect_timeout, answer_timeout)
    head = seen[primary.name]
    if isinstance(head, Exception):
        raise head
    head_lsn = head.lsn or Lsn(0)
    version = primary.version
    time_lag_from_standby = not version.adapter.has("column", "replay_lag",
                                                    "pg_stat_replication")
    items = []
    for standby in view.standbys:
        up = standby.upstream or primary.name
        upstream = seen.get(up)
        row = upstream.walsenders.get(standby.name) if isinstance(upstream, _Seen) else None
        slot_name = (row or {}).get("slot_name") or view.slot_for(standby)
        slot = upstream.slots.get(slot_name) if isinstance(upstream, _Seen) else None
        own = seen[standby.name]
        mine = own if isinstance(own, _Seen) else None
        lag = row.get("replay_lag") if row else None
        if lag is None and time_lag_from_standby and mine is not None:
            lag = mine.replay_delay
        if row:
            lag_bytes = row["replay_lag_bytes"]
        elif mine is not None and mine.replay_lsn is not None:
            lag_bytes = max(0, head_lsn - mine.replay_lsn)
        else:
            lag_bytes = None
        items.append(StandbyStatus(
            name=standby.name,
            state=row["state"] if row else "disconnected",
            sent_lsn=Lsn.maybe(row["sent_lsn"]) if row else None,
            write_lsn=Lsn.maybe(row["write_lsn"]) if row else None,
            flush_lsn=Lsn.maybe(row["flush_lsn"]) if row else None,
            replay_lsn=Lsn.maybe(row["replay_lsn"]) if row else None,
            replay_lag_bytes=lag_bytes, replay_lag=lag,
            sync_state=row["sync_state"] if row else None,
            sync_priority=row["sync_priority"] if row else None,
            slot_name=slot.name if slot else None,
            slot_active=slot.active if slot else None,
            slot_wal_status=slot.wal_status if slot else None,
            slot_retained_bytes=slot.retained_bytes if slot else None,
            in_recovery=mine.in_recovery if mine else None, reachable=mine is not None,
            upstream=up))
    return ClusterStatus(
        PrimaryStatus(primary.name, str(version), head_lsn, head.in_recovery, head.timeline),
        tuple(items), dt.datetime.now(dt.UTC), tuple(history),
        tuple(n.name for n in view.failed))


def wait_for_catchup(view: ClusterView, timeout: float = 30.0) -> Lsn:
    """Wait until every standby has replayed the primary's current LSN; return that LSN.

    ``timeout`` is for all standbys together.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, not {timeout!r}")
    target = view.primary.current_lsn()
    deadline = time.monotonic() + timeout
    for standby in view.standbys:
        standby.wait_for_replay(target, timeout=max(0.0, deadline - time.monotonic()))
    return target
