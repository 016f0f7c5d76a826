"""A cluster's members: the checks when a cluster is built, lookups across roles, history,
status.

:class:`pgstream.Cluster` calls these; they hold what its methods would otherwise repeat.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from pgstream.errors import InvalidInput, PgStreamError
from pgstream.facts import identifiers
from pgstream.nodes import identity
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.check import annotate_status
from pgstream.ops.observe import STATUS_ANSWER_TIMEOUT, STATUS_CONNECT_TIMEOUT, cluster_status
from pgstream.ops.status import ClusterStatus, HistoryEntry
from pgstream.ops.view import ClusterView

N = TypeVar("N", bound=Node)


def named(nodes: Sequence[N], name: str, what: str) -> N:
    """The one of ``nodes`` named ``name``; else :class:`~pgstream.errors.InvalidInput`
    naming ``what`` was asked for (``node``, ``standby``) and the names there are."""
    for node in nodes:
        if node.name == name:
            return node
    raise InvalidInput(f"no {what} named {name!r} ({what}s: "
                       f"{', '.join(n.name for n in nodes) or 'none'})")


def standby_list(items: Iterable[Standby]) -> list[Standby]:
    """``items`` as a new list (a cluster's ``standbys``, which it rearranges)."""
    return list(items)


def str_list(items: Iterable[str]) -> list[str]:
    """``items`` as a new list (a cluster's ``hba_addresses``)."""
    return list(items)


def address_map(items: Mapping[str, tuple[str, int]]) -> dict[str, tuple[str, int]]:
    """A copy of ``items`` (a cluster's ``addresses``: it binds addresses to names in it)."""
    return dict(items)


def checked_addresses(nodes: Sequence[Node], failed: Sequence[Node], primary: Node,
                      primary_address: tuple[str, int] | None,
                      addresses: Mapping[str, tuple[str, int]]
                      ) -> tuple[tuple[str, int] | None, dict[str, tuple[str, int]]]:
    """A new cluster's ``(primary_address, addresses)``, each address validated, the primary's
    bound to the node that is primary now (an address belongs to a node, not to a role).

    Raises :class:`~pgstream.errors.InvalidInput` for names used twice, a bad address, or
    two nodes sharing a data directory or an address (see
    :func:`pgstream.nodes.identity.refuse_shared_places`)."""
    names = [n.name for n in nodes]
    if len(set(names)) != len(names):
        raise InvalidInput(f"node names must be unique: {', '.join(names)}")
    found = dict(addresses)
    if primary_address is not None:
        primary_address = identifiers.address(primary_address)
        found.setdefault(primary.name, primary_address)
    found = {name: identifiers.address(where) for name, where in found.items()}
    identity.refuse_shared_places([*nodes, *failed], found)
    return primary_address, found


def node_or_failed(cluster: ClusterView, node: Node | str) -> Node:
    """``node``, or the node of that name, former primaries lost in a failover included
    (raises :class:`~pgstream.errors.InvalidInput` for an unknown name)."""
    if not isinstance(node, str):
        return node
    return next((n for n in [*cluster.failed, *cluster.nodes] if n.name == node), None) \
        or cluster.node(node)


def history_entry(primary: Primary, operation: str, detail: str) -> HistoryEntry:
    """A history entry for ``operation`` done now, with the primary's timeline (None when
    the primary cannot tell)."""
    timeline = None
    with contextlib.suppress(PgStreamError):
        timeline = primary.timeline()
    return HistoryEntry(dt.datetime.now(dt.UTC), operation, detail, timeline)


def status(cluster: ClusterView, history: Sequence[HistoryEntry]) -> ClusterStatus:
    """The cluster's status (:func:`pgstream.ops.observe.cluster_status`, every node asked at
    once, each in one round trip), each standby that does not stream carrying its problem:
    the code of its most severe :func:`~pgstream.ops.check.check` finding."""
    return annotate_status(cluster_status(cluster, history=history), cluster,
                           timeout=STATUS_CONNECT_TIMEOUT + STATUS_ANSWER_TIMEOUT)
