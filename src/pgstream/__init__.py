"""pgstream: set up, check and operate PostgreSQL physical streaming replication, 9.6 to 18.

>>> from pgstream import Cluster
>>> with Cluster.sandbox(standbys=2) as cluster:   # doctest: +SKIP
...     cluster.primary.execute("CREATE TABLE t (id int)")
...     cluster.wait_for_catchup()
...     print(cluster.status())
"""

from pgstream.capabilities import VersionAdapter
from pgstream.cluster import Cluster
from pgstream.config import ConfigRenderer
from pgstream.errors import (
    BinaryNotFound,
    CommandFailed,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    NodeUnreachable,
    NotAStandby,
    NotAvailable,
    PgStreamError,
    PlanFailed,
    QueryError,
    ReadOnlyNode,
    SlotError,
    SlotInUse,
    SlotNotFound,
    UnsafeDataDirectory,
    UnsupportedVersion,
    WaitTimeout,
)
from pgstream.host import LocalHost, OsUser
from pgstream.identifiers import Secret
from pgstream.lsn import Lsn
from pgstream.node import Node, Primary, Standby
from pgstream.plan import Plan, PlanReport, ProgressEvent, Step, StepKind
from pgstream.primary_setup import ReplicationAuth
from pgstream.service import PgCtlService
from pgstream.slot import ReplicationSlot, SlotStatus
from pgstream.status import ClusterStatus, PrimaryStatus, StandbyStatus
from pgstream.version import ServerVersion

__version__ = "0.1.0"

__all__ = [
    "BinaryNotFound",
    "Cluster",
    "ClusterStatus",
    "CommandFailed",
    "ConfigRenderer",
    "InvalidAddress",
    "InvalidInput",
    "InvalidName",
    "LocalHost",
    "Lsn",
    "Node",
    "NodeUnreachable",
    "NotAStandby",
    "NotAvailable",
    "OsUser",
    "PgCtlService",
    "PgStreamError",
    "Plan",
    "PlanFailed",
    "PlanReport",
    "Primary",
    "PrimaryStatus",
    "ProgressEvent",
    "QueryError",
    "ReadOnlyNode",
    "ReplicationAuth",
    "ReplicationSlot",
    "Secret",
    "ServerVersion",
    "SlotError",
    "SlotInUse",
    "SlotNotFound",
    "SlotStatus",
    "Standby",
    "StandbyStatus",
    "Step",
    "StepKind",
    "UnsafeDataDirectory",
    "UnsupportedVersion",
    "VersionAdapter",
    "WaitTimeout",
]
