"""A server seen in another role: the same node rebuilt as a primary or as a standby.

After a promotion or a rejoin the server is the same (name, conninfo, host, data directory,
service); only its class changes. The cluster rebuilds its nodes with these when it applies
a :class:`~pgstream.ops.view.RoleChange`.
"""

from __future__ import annotations

from pgstream.nodes.node import Node, Primary, Standby


def as_primary(node: Node) -> Primary:
    """The same server as a :class:`~pgstream.nodes.node.Primary` (after a promotion); the
    old handle's connection is closed."""
    node.close()
    return Primary(node.name, node.conninfo, host=node.host, data_dir=node.data_dir,
                   service=node.service, os_user=node.os_user)


def as_standby(node: Node, upstream: str | None, *, slot_name: str | None = None,
               application_name: str | None = None) -> Standby:
    """The same server as a :class:`~pgstream.nodes.node.Standby` of ``upstream`` (None: the
    primary; after it rejoined), streaming with ``slot_name`` and ``application_name``
    (default: its name); the old handle's connection is closed."""
    node.close()
    return Standby(node.name, node.conninfo, host=node.host, data_dir=node.data_dir,
                   service=node.service, os_user=node.os_user, upstream=upstream,
                   slot_name=slot_name or node.name,
                   application_name=application_name or node.name)
