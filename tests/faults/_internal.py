"""The only place the fault suite imports names from inside the ``pgstream`` package.

When a module path inside the package changes, change it here and nowhere else.
Everything else in ``tests/faults`` imports top-level ``pgstream`` names,
``pgstream.workload``, or this module.
"""

from __future__ import annotations

from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import server_user

__all__ = ["Installation", "server_user"]
