"""pgstream: set up, check and operate PostgreSQL physical streaming replication, 9.6 to 18.

>>> from pgstream import Cluster
>>> with Cluster.sandbox(standbys=2) as cluster:   # doctest: +SKIP
...     cluster.primary.execute("CREATE TABLE t (id int)")
...     cluster.wait_for_catchup()
...     print(cluster.status())
"""

from pgstream.cluster import Cluster
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
from pgstream.facts.capabilities import VersionAdapter
from pgstream.facts.identifiers import Secret
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, LocalHost, OsUser
from pgstream.hosts.service import DebianClusterService, PgCtlService, SystemdService
from pgstream.hosts.ssh import SshHost
from pgstream.nodes.node import Node, Primary, ServerPaths, Standby
from pgstream.nodes.slot import ReplicationSlot, SlotStatus
from pgstream.ops.plan import Plan, PlanReport, ProgressEvent, Step, StepKind
from pgstream.ops.setup import ReplicationAuth
from pgstream.ops.slots import (
    SlotFinding,
    SlotReport,
    advance_slot,
    drop_inactive_slots_plan,
    slot_report,
    slot_wal_limit_plan,
)
from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus
from pgstream.ops.sync import sync_states, synchronous_plan
from pgstream.render.config import ConfigRenderer
from pgstream.render.sync_spec import SyncSpec

__version__ = "0.1.0"

__all__ = [
    "BinaryNotFound",
    "Cluster",
    "ClusterStatus",
    "CommandFailed",
    "ConfigRenderer",
    "DebianClusterService",
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
