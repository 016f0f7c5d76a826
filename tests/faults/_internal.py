"""The only place the fault suite imports names from inside the ``pgstream`` package.

The package's modules are being moved into subpackages; when a path changes, change it here
and nowhere else. Everything else in ``tests/faults`` imports top-level ``pgstream`` names,
``pgstream.workload``, or this module.
"""

from __future__ import annotations

from pgstream.binaries import Installation
from pgstream.host import server_user

__all__ = ["Installation", "server_user"]
