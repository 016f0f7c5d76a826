"""Collecting a cluster's status from its servers: one task per node, nodes in parallel.

Each upstream (the primary, or a standby that cascades) is asked for its walsenders
(``pg_stat_replication``) and slots; each standby for itself (in recovery, replay delay on
9.6). A standby's walsender row is found by the slot it streams through, else by its
``application_name`` (two standbys may both be ``walreceiver``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import attrs

from pgstream.errors import NodeUnreachable, QueryError
from pgstream.facts.lsn import Lsn
from pgstream.nodes.node import Node, Standby
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus
from pgstream.ops.view import ClusterView
from pgstream.render import queries

T = TypeVar("T")


def in_parallel(tasks: Iterable[tuple[str, Callable[[], T]]]) -> dict[str, T]:
    """Run one callable per key, each in its own thread; their results by key (the first
    error, if any, is raised once all are done)."""
    items = list(tasks)
    if len(items) <= 1:
        return {key: call() for key, call in items}
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        futures = {key: pool.submit(call) for key, call in items}
        return {key: future.result() for key, future in futures.items()}


@attrs.frozen
class _Seen:
    """What one node said: as an upstream (walsender rows, slots) and as a standby."""

    rows: tuple[dict[str, Any], ...] = ()
    slots: tuple[SlotStatus, ...] = ()
    in_recovery: bool | None = None
    replay_delay: dt.timedelta | None = None
    reachable: bool = True
    head: PrimaryStatus | None = None


def _look(node: Node, *, upstream: bool, standby: bool, primary: bool) -> _Seen:
    if primary:  # unreachable primary: the error goes to the caller, as before
        head = PrimaryStatus(node.name, str(node.version), Lsn.parse(
            node.value(queries.current_lsn(node.version))), node.in_recovery, node.timeline())
    else:
        head = None
    try:
        recovering = node.in_recovery
        rows: list[dict[str, Any]] = []
        slots: list[SlotStatus] = []
        if upstream:
            statement, params, names = queries.replication_status(node.version, recovering)
            rows = [dict(zip(names, found, strict=True))
                    for found in node.query(statement, params)]
            slots = node.slots()
        delay = None
        if standby and not node.version.adapter.has("column", "replay_lag",
                                                    "pg_stat_replication"):
            delay = node.value(queries.replay_delay())
        return _Seen(tuple(rows), tuple(slots), recovering, delay, True, head)
    except (NodeUnreachable, QueryError):
        return _Seen(reachable=False, head=head)


def _row_for(standby: Standby, rows: tuple[dict[str, Any], ...]) -> dict[str, Any] | None:
    by_slot = [r for r in rows if r.get("slot_name") == standby.slot_name]
    if by_slot:
        return by_slot[0]
    by_name = [r for r in rows if r["application_name"] == standby.application_name]
    return by_name[0] if len(by_name) == 1 else None


def cluster_status(cluster: ClusterView, history: Iterable[HistoryEntry] = ()) -> ClusterStatus:
    """The seed's steps 11 to 13 for every node, nodes asked in parallel."""
    primary = cluster.primary
    upstreams = {s.upstream or primary.name for s in cluster.standbys}
    standby_names = {s.name for s in cluster.standbys}
    seen = in_parallel(
        (node.name, functools.partial(
            _look, node, upstream=node.name in upstreams, standby=node.name in standby_names,
            primary=node is primary))
        for node in cluster.nodes)
    head = seen[primary.name].head
    assert head is not None
    version = primary.version
    items = []
    for standby in cluster.standbys:
        up = standby.upstream or primary.name
        above = seen.get(up, _Seen(reachable=False))
        row = _row_for(standby, above.rows)
        slot_name = (row or {}).get("slot_name") or standby.slot_name
        slot = next((s for s in above.slots if s.name == slot_name), None)
        own = seen[standby.name]
        lag = row.get("replay_lag") if row else None
        if lag is None and not version.adapter.has("column", "replay_lag", "pg_stat_replication"):
            lag = own.replay_delay
        items.append(StandbyStatus(
            name=standby.name,
            state=row["state"] if row else "disconnected",
            sent_lsn=Lsn.maybe(row["sent_lsn"]) if row else None,
            write_lsn=Lsn.maybe(row["write_lsn"]) if row else None,
            flush_lsn=Lsn.maybe(row["flush_lsn"]) if row else None,
            replay_lsn=Lsn.maybe(row["replay_lsn"]) if row else None,
            # Disconnected: what its slot holds back is how far behind it is (and grows).
            replay_lag_bytes=row["replay_lag_bytes"] if row else (
                slot.retained_bytes if slot else None),
            replay_lag=lag,
            sync_state=row["sync_state"] if row else None,
            sync_priority=row["sync_priority"] if row else None,
            slot_name=slot.name if slot else None,
            slot_active=slot.active if slot else None,
            slot_wal_status=slot.wal_status if slot else None,
            slot_retained_bytes=slot.retained_bytes if slot else None,
            in_recovery=own.in_recovery, reachable=own.reachable,
            upstream=up,
        ))
    return ClusterStatus(head, tuple(items), dt.datetime.now(dt.UTC), tuple(history),
                         tuple(n.name for n in cluster.failed))
