"""Who is what after a role change: the one place where a :class:`RoleChange` is worked out.

Pure over node handles: :func:`rearrange` takes the cluster's primary, standbys and failed
nodes and a change, and returns the new three. ``Cluster.apply`` stores the result and
records the change in its history; operations only commit changes (see :mod:`.view`).
"""

from __future__ import annotations

from pgstream.nodes.node import Node, Primary, Standby, as_primary, as_standby
from pgstream.ops.view import RoleChange


def rearrange(primary: Primary, standbys: list[Standby], failed: list[Node],
              change: RoleChange) -> tuple[Primary, list[Standby], list[Node]]:
    """The primary, standbys and failed nodes after ``change``.

    ``new_primary`` becomes the primary (a :class:`Primary` handle); ``rejoined`` nodes become
    standbys of it; ``failed`` ones are set aside; ``detached`` ones leave; ``added`` join;
    ``upstreams`` re-point standbys. A standby that streamed from the old or the new primary
    streams from the primary (``upstream`` None) afterwards.
    """
    everyone = {n.name: n for n in [primary, *standbys, *failed]}
    old_primary = primary.name
    new_primary = change.new_primary or old_primary
    lost, back, gone = set(change.failed), set(change.rejoined), set(change.detached)
    head = everyone[new_primary]
    result: list[Standby] = []
    for name, node in everyone.items():
        if name == new_primary or name in lost or name in gone:
            continue
        if name in back:
            result.append(as_standby(node, None))
        elif isinstance(node, Standby):
            if node.upstream in (new_primary, old_primary):
                node.upstream = None  # None: streams from the primary
            result.append(node)
    result += [s for s in change.added if s.name not in everyone]
    for name, upstream in change.upstreams:
        for standby in result:
            if standby.name == name:
                standby.upstream = None if upstream == new_primary else upstream
    aside = [n for n in failed
             if n.name not in back and n.name != new_primary and n.name not in gone]
    aside += [everyone[name] for name in change.failed if name in everyone
              and name not in {n.name for n in aside}]
    return (head if isinstance(head, Primary) else as_primary(head)), result, aside
