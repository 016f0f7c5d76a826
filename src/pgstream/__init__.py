"""pgstream: set up, check and operate PostgreSQL physical streaming replication, 9.6 to 18.

>>> from pgstream import Cluster
>>> with Cluster.sandbox(standbys=2) as cluster:   # doctest: +SKIP
...     cluster.primary.execute("CREATE TABLE t (id int)")
...     cluster.wait_for_catchup()
...     print(cluster.status())
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any

from pgstream.errors import (
    BinaryNotFound,
    CommandFailed,
    HostUnreachable,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    NodeUnreachable,
    NotAStandby,
    NotAvailable,
    OperationFailed,
    PgStreamError,
    PlanFailed,
    PrimaryStillAlive,
    QueryError,
    ReadOnlyNode,
    Refused,
    RejoinRefused,
    ServerMismatch,
    ServerStateError,
    SlotError,
    SlotInUse,
    SlotNotFound,
    SwitchoverRefused,
    Unreachable,
    UnsafeDataDirectory,
    UnsupportedVersion,
    UpgradeRefused,
    WaitTimeout,
)

if TYPE_CHECKING:  # what the names below are, for type checkers; imported when first used
    from pgstream.cluster import Cluster
    from pgstream.facts.capabilities import VersionAdapter
    from pgstream.facts.identifiers import Secret
    from pgstream.facts.lsn import Lsn
    from pgstream.facts.version import ServerVersion
    from pgstream.hosts.host import Host, LocalHost, OsUser
    from pgstream.hosts.service import DebianClusterService, PgCtlService, SystemdService
    from pgstream.hosts.ssh import SshHost
    from pgstream.nodes.node import Node, Primary, ServerPaths, Standby
    from pgstream.nodes.slot import ReplicationSlot, SlotStatus
    from pgstream.ops.check import CheckReport, Finding, Severity, Thresholds
    from pgstream.ops.plan import Plan, PlanReport, ProgressEvent, Step, StepKind
    from pgstream.ops.setup import ReplicationAuth
    from pgstream.ops.slot_report import SlotFinding, SlotReport, slot_report
    from pgstream.ops.slots import advance_slot, drop_inactive_slots_plan, slot_wal_limit_plan
    from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus
    from pgstream.ops.sync import sync_states, synchronous_plan
    from pgstream.render.config import ConfigRenderer
    from pgstream.render.sync_spec import SyncSpec

# Everything but the errors is imported on first use, so that ``import pgstream`` (and every
# command-line call) does not pay for psycopg and the operations it does not need.
_LAZY: dict[str, str] = {
    "Cluster": "pgstream.cluster",
    "CheckReport": "pgstream.ops.check",
    "ClusterStatus": "pgstream.ops.status",
    "ConfigRenderer": "pgstream.render.config",
    "DebianClusterService": "pgstream.hosts.service",
    "HistoryEntry": "pgstream.ops.status",
    "Finding": "pgstream.ops.check",
    "Host": "pgstream.hosts.host",
    "LocalHost": "pgstream.hosts.host",
    "Lsn": "pgstream.facts.lsn",
    "Node": "pgstream.nodes.node",
    "OsUser": "pgstream.hosts.host",
    "PgCtlService": "pgstream.hosts.service",
    "Plan": "pgstream.ops.plan",
    "PlanReport": "pgstream.ops.plan",
    "Primary": "pgstream.nodes.node",
    "PrimaryStatus": "pgstream.ops.status",
    "ProgressEvent": "pgstream.ops.plan",
    "ReplicationAuth": "pgstream.ops.setup",
    "ReplicationSlot": "pgstream.nodes.slot",
    "Secret": "pgstream.facts.identifiers",
    "ServerPaths": "pgstream.nodes.node",
    "ServerVersion": "pgstream.facts.version",
    "Severity": "pgstream.ops.check",
    "SlotFinding": "pgstream.ops.slot_report",
    "SlotReport": "pgstream.ops.slot_report",
    "SlotStatus": "pgstream.nodes.slot",
    "SshHost": "pgstream.hosts.ssh",
    "Standby": "pgstream.nodes.node",
    "StandbyStatus": "pgstream.ops.status",
    "Step": "pgstream.ops.plan",
    "StepKind": "pgstream.ops.plan",
    "Thresholds": "pgstream.ops.check",
    "SyncSpec": "pgstream.render.sync_spec",
    "SystemdService": "pgstream.hosts.service",
    "VersionAdapter": "pgstream.facts.capabilities",
    "advance_slot": "pgstream.ops.slots",
    "drop_inactive_slots_plan": "pgstream.ops.slots",
    "slot_report": "pgstream.ops.slot_report",
    "slot_wal_limit_plan": "pgstream.ops.slots",
    "sync_states": "pgstream.ops.sync",
    "synchronous_plan": "pgstream.ops.sync",
}


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pgstream' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The exported names (``__all__``) and the module's own."""
    return sorted(set(globals()) | set(__all__))


logging.getLogger("pgstream").addHandler(logging.NullHandler())  # the application decides

__version__ = "0.1.0"

__all__ = [
    "BinaryNotFound",
    "CheckReport",
    "Cluster",
    "ClusterStatus",
    "CommandFailed",
    "ConfigRenderer",
    "DebianClusterService",
    "Finding",
    "HistoryEntry",
    "Host",
    "HostUnreachable",
    "InvalidAddress",
    "InvalidInput",
    "InvalidName",
    "LocalHost",
    "Lsn",
    "Node",
    "NodeUnreachable",
    "NotAStandby",
    "NotAvailable",
    "OperationFailed",
    "OsUser",
    "PgCtlService",
    "PgStreamError",
    "Plan",
    "PlanFailed",
    "PlanReport",
    "Primary",
    "PrimaryStatus",
    "PrimaryStillAlive",
    "ProgressEvent",
    "QueryError",
    "ReadOnlyNode",
    "Refused",
    "RejoinRefused",
    "ReplicationAuth",
    "ReplicationSlot",
    "Secret",
    "ServerMismatch",
    "ServerPaths",
    "ServerStateError",
    "ServerVersion",
    "Severity",
    "SlotError",
    "SlotFinding",
    "SlotInUse",
    "SlotNotFound",
    "SlotReport",
    "SlotStatus",
    "SshHost",
    "Standby",
    "StandbyStatus",
    "Step",
    "StepKind",
    "SwitchoverRefused",
    "SyncSpec",
    "SystemdService",
    "Thresholds",
    "Unreachable",
    "UnsafeDataDirectory",
    "UnsupportedVersion",
    "UpgradeRefused",
    "VersionAdapter",
    "WaitTimeout",
    "advance_slot",
    "drop_inactive_slots_plan",
    "slot_report",
    "slot_wal_limit_plan",
    "sync_states",
    "synchronous_plan",
]
