"""Reading the cluster's status: one thread per node, one round trip per node (a standby's
own facts; an upstream's also its walsenders and slots), each connection opened within
:data:`STATUS_CONNECT_TIMEOUT` seconds and each answer awaited at most
:data:`STATUS_ANSWER_TIMEOUT` seconds more, so a standby that cannot be reached costs that
bound once, not libpq's full timeout per node in turn. The values are in :mod:`.status`.

A standby's walsender row is found by the slot it streams through, else by its
``application_name``: names and slots are data, not the node's name.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
import time
from collections.abc import Iterable
from typing import Any

import attrs
from psycopg import sql

from pgstream.errors import InvalidInput, NodeUnreachable, QueryError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Node, Standby
from pgstream.nodes.slot import SlotStatus, slot_status_of
from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus
from pgstream.ops.view import ClusterView
from pgstream.render import queries
from pgstream.render.shapes import upstream_or_primary

STATUS_CONNECT_TIMEOUT = 3.0
"""Seconds ``status()`` waits for a connection to a node to open (per address; libpq counts
whole seconds, at least 2). A refused or missing server fails at once."""
STATUS_ANSWER_TIMEOUT = 3.0
"""Seconds more ``status()`` gives a node to answer: one that has not answered
``STATUS_CONNECT_TIMEOUT + STATUS_ANSWER_TIMEOUT`` seconds after the call began (a host that
drops packets on an open connection, a server that hangs) is cut off, reported unreachable."""


@attrs.frozen
class _Seen:
    """What one node says of itself (and, as an upstream, of its walsenders and slots)."""

    in_recovery: bool
    lsn: Lsn | None
    timeline: int | None
    replay_lsn: Lsn | None
    replay_delay: dt.timedelta | None
    replay_paused: bool | None
    walsenders: tuple[dict[str, Any], ...]
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
    in_recovery, lsn, timeline, replay, delay, paused = sets[0][0]
    walsenders: tuple[dict[str, Any], ...] = ()
    slots: dict[str, SlotStatus] = {}
    if upstream:
        walsenders = tuple(dict(zip(names, row, strict=True)) for row in sets[1])
        slots = {kept.name: kept for kept in map(slot_status_of, sets[2])}
    return _Seen(bool(in_recovery), Lsn.maybe(lsn), None if timeline is None else int(timeline),
                 Lsn.maybe(replay), delay, None if paused is None else bool(paused),
                 walsenders, slots)


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


def _row_for(standby: Standby, rows: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    """The walsender row of ``standby``: by the slot it streams through, else by its
    ``application_name`` when only one walsender has it (two may both be ``walreceiver``)."""
    by_slot = [r for r in rows if r.get("slot_name") == standby.slot_name]
    if by_slot:
        return by_slot[0]
    by_name = [r for r in rows if r["application_name"] == standby.application_name]
    return by_name[0] if len(by_name) == 1 else None


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
    upstreams = {upstream_or_primary(s, primary.name) for s in view.standbys}
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
        up = upstream_or_primary(standby, primary.name)
        upstream = seen.get(up)
        row = _row_for(standby, upstream.walsenders) if isinstance(upstream, _Seen) else None
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
            replay_paused=mine.replay_paused if mine else None,
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
