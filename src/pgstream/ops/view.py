"""What an operation sees of a cluster, and what it hands back.

Operations (switchover, failover, follow, rejoin, ...) are functions over a
:class:`ClusterView`: a narrow, structural view that :class:`pgstream.Cluster` satisfies
without this package importing it. An operation never rearranges the cluster itself: when a
step has changed roles on the servers, it commits a frozen :class:`RoleChange`, and only the
cluster applies it (and records it in its history).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import attrs

from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.setup import ReplicationAuth


@attrs.frozen
class RoleChange:
    """Roles after a step that changed them on the servers.

    ``new_primary`` is the primary from now on (``None``: unchanged); ``rejoined`` stream from
    it; ``failed`` are set aside until they rejoin; ``detached`` leave the cluster;
    ``upstreams`` re-point standbys (``None``: the primary); ``added`` are new standbys.
    ``old_data_dirs`` are kept after a major upgrade.
    ``operation`` and ``detail`` go to the history, unless ``record`` is false (an
    intermediate change that a later one completes).
    """

    operation: str
    detail: str = ""
    new_primary: str | None = None
    rejoined: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    detached: tuple[str, ...] = ()
    upstreams: tuple[tuple[str, str | None], ...] = ()
    added: tuple[Standby, ...] = ()
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
