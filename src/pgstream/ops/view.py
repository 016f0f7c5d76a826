"""What an operation sees of a cluster, and what it hands back.

Operations (switchover, failover, follow, rejoin, ...) are functions over a
:class:`ClusterView`: a narrow, structural view that :class:`pgstream.Cluster` satisfies
without this package importing it. An operation never rearranges the cluster itself: when a
step has changed roles on the servers, it commits a frozen :class:`RoleChange`, and only the
cluster applies it (and records it in its history).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import attrs

from pgstream.nodes.node import Node, Primary, Standby
from pgstream.nodes.roles import as_primary, as_standby
from pgstream.ops.setup import ReplicationAuth


@attrs.frozen
class RoleChange:
    """Roles after a step that changed them on the servers.

    ``new_primary`` is the primary from now on (``None``: unchanged); ``rejoined`` stream from
    it; ``failed`` are set aside until they rejoin; ``detached`` leave the cluster;
    ``upstreams`` re-point standbys (``None``: the primary); ``added`` are new standbys, with
    their own settings (``node_settings``) and the addresses others reach them at
    (``addresses``); ``old_data_dirs`` are those a major upgrade kept. ``operation`` and
    ``detail`` go to the history, unless ``record`` is false (an intermediate change that a
    later one completes).
    """

    operation: str
    detail: str = ""
    new_primary: str | None = None
    rejoined: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    detached: tuple[str, ...] = ()
    upstreams: tuple[tuple[str, str | None], ...] = ()
    added: tuple[Standby, ...] = ()
    node_settings: tuple[tuple[str, Mapping[str, str]], ...] = ()
    addresses: tuple[tuple[str, tuple[str, int]], ...] = ()
    record: bool = True
    old_data_dirs: tuple[tuple[str, Path], ...] = ()
    """Nodes now running from a new data directory (a major upgrade), each with its old
    one, kept until removed."""


class ClusterView(Protocol):
    """The members of a cluster that operations use (``Cluster`` has them all)."""

    @property
    def primary(self) -> Primary:
        """The node that accepts writes."""

    @property
    def standbys(self) -> list[Standby]:
        """The standbys, cascading ones included."""

    @property
    def failed(self) -> list[Node]:
        """Former primaries lost in a failover, until they rejoin."""

    @property
    def auth(self) -> ReplicationAuth:
        """The replication role and its password."""

    @property
    def node_settings(self) -> dict[str, dict[str, str]]:
        """Per node: its own settings, merged in after a clone or rewind."""

    @property
    def nodes(self) -> list[Node]:
        """The primary, then the standbys."""

    def node(self, name: str) -> Node:
        """The node of that name (raises ``InvalidInput``)."""

    def standby(self, name: str) -> Standby:
        """The standby of that name (raises ``InvalidInput``)."""

    def address_of(self, node: Node) -> tuple[str, int]:
        """Where other nodes reach ``node`` for replication."""

    def passfile_of(self, node: Node) -> Path | None:
        """Where ``node`` keeps the replication password (None: the default)."""

    def slot_for(self, standby: Node) -> str:
        """The slot ``standby`` streams through."""

    def apply(self, change: RoleChange) -> None:
        """Rearrange the cluster after roles changed on the servers."""


def rearrange(primary: Primary, standbys: list[Standby], failed: list[Node], change: RoleChange,
              stream_names: Mapping[str, tuple[str, str]]
              ) -> tuple[Primary, list[Standby], list[Node]]:
    """The primary, standbys and failed nodes after ``change`` (what ``Cluster.apply`` sets).

    A node back as a standby streams with the slot and ``application_name`` it used as one
    before (``stream_names``), else its name.
    """
    everyone = {n.name: n for n in [primary, *standbys, *failed]}
    old_primary = primary.name
    new_primary = change.new_primary or old_primary
    lost, back, gone = set(change.failed), set(change.rejoined), set(change.detached)
    head = everyone[new_primary]
    kept: list[Standby] = []
    for name, node in everyone.items():
        if name == new_primary or name in lost or name in gone:
            continue
        if name in back:
            slot, app = stream_names.get(name, (name, name))
            kept.append(as_standby(node, None, slot_name=slot, application_name=app))
        elif isinstance(node, Standby):
            if node.upstream in (new_primary, old_primary):
                node.upstream = None  # None: streams from the primary
            kept.append(node)
    kept += [s for s in change.added if s.name not in everyone]
    for name, upstream in change.upstreams:
        for standby in kept:
            if standby.name == name:
                standby.upstream = None if upstream == new_primary else upstream
    still = [n for n in failed
             if n.name not in back and n.name != new_primary and n.name not in gone]
    still += [everyone[name] for name in lost if name in everyone]
    return (head if isinstance(head, Primary) else as_primary(head)), kept, still
