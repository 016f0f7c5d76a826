"""What the status, plan and report renderers read, as Protocols.

The values themselves (``ClusterStatus``, ``Plan``, ``PlanReport``, a check report's findings)
live in ``ops/``, a layer above ``render/``; the renderers name only the attributes they read,
so they stay pure and the layering holds. Every member is a read-only property, which frozen
``attrs`` fields satisfy.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Container, Iterable, Sequence
from typing import Protocol, runtime_checkable

from pgstream.facts.lsn import Lsn


class PrimaryLike(Protocol):
    """``ClusterStatus.primary``."""

    @property
    def name(self) -> str:
        """The primary's node name."""

    @property
    def version(self) -> str:
        """Its PostgreSQL version, as the server reports it (``18.1``)."""

    @property
    def lsn(self) -> Lsn:
        """Its current WAL write position."""

    @property
    def in_recovery(self) -> bool:
        """True when the node thought to be primary is in recovery (a problem)."""

    @property
    def timeline(self) -> int | None:
        """Its timeline (None: could not be read)."""


class HasUpstream(Protocol):
    """Anything that names the node it streams from: a standby node
    (:class:`pgstream.nodes.node.Standby`), a standby's status, a check's member."""

    @property
    def upstream(self) -> str | None:
        """The node it streams from (None: the primary)."""


def upstream_or_primary(standby: HasUpstream, primary: str, *,
                        known: Container[str] | None = None) -> str:
    """The name of the node ``standby`` streams from: its ``upstream`` when it names one,
    else ``primary`` (the primary's name). Given ``known`` (the names a caller can place),
    an upstream not among them counts as the primary too."""
    upstream = standby.upstream
    if upstream and (known is None or upstream in known):
        return upstream
    return primary


class StandbyLike(Protocol):
    """One of ``ClusterStatus.standbys``."""

    @property
    def name(self) -> str:
        """The standby's node name."""

    @property
    def state(self) -> str:
        """Its walsender's state on the upstream (``streaming``, ``catchup``, ...)."""

    @property
    def upstream(self) -> str | None:
        """The node it streams from (None: the primary)."""

    @property
    def sent_lsn(self) -> Lsn | None:
        """The last WAL position sent to it (None: no walsender)."""

    @property
    def flush_lsn(self) -> Lsn | None:
        """The last position it flushed to disk, as it reported."""

    @property
    def replay_lsn(self) -> Lsn | None:
        """The last position it replayed."""

    @property
    def replay_lag_bytes(self) -> int | None:
        """How far replay is behind the upstream, in bytes."""

    @property
    def replay_lag(self) -> dt.timedelta | None:
        """How far replay is behind in time (None on 9.6, or unknown)."""

    @property
    def sync_state(self) -> str | None:
        """``sync``, ``potential``, ``quorum`` or ``async`` (None: unknown)."""

    @property
    def slot_name(self) -> str | None:
        """The slot it streams through (None: none)."""

    @property
    def slot_active(self) -> bool | None:
        """Is that slot in use now (None: no slot)?"""

    @property
    def slot_wal_status(self) -> str | None:
        """The slot's ``wal_status`` (13+; None before or without slot)."""

    @property
    def slot_retained_bytes(self) -> int | None:
        """The WAL the slot holds back, in bytes."""

    @property
    def in_recovery(self) -> bool | None:
        """What the standby says of itself (None: not reachable)."""

    @property
    def reachable(self) -> bool:
        """Did the standby answer?"""


class HistoryLike(Protocol):
    """One of ``ClusterStatus.history``."""

    @property
    def at(self) -> dt.datetime:
        """When the operation finished (UTC)."""

    @property
    def operation(self) -> str:
        """Its name (``switchover``, ``failover``, ...)."""

    @property
    def detail(self) -> str:
        """What it did, in one line."""

    @property
    def timeline(self) -> int | None:
        """The primary's timeline afterwards (None: unknown)."""


class StatusLike(Protocol):
    """``ClusterStatus``: the whole cluster at one moment."""

    @property
    def primary(self) -> PrimaryLike:
        """The primary's status."""

    @property
    def standbys(self) -> Sequence[StandbyLike]:
        """Each standby's status, cascading ones included."""

    @property
    def taken_at(self) -> dt.datetime:
        """When the status was read (UTC)."""

    @property
    def history(self) -> Sequence[HistoryLike]:
        """The cluster's operations, oldest first."""

    @property
    def failed(self) -> Sequence[str]:
        """Names of former primaries set aside until they rejoin."""


@runtime_checkable
class FindingLike(Protocol):
    """A check finding: a stable ``code``, a ``severity`` (error, warning, info), the ``node``.

    A check report's findings may carry more (``summary``, ``evidence``, ``fix``, a ``plan``);
    the HTML view shows those it finds.
    """

    @property
    def code(self) -> str:
        """The finding's stable code (``docs/check.md``)."""

    @property
    def severity(self) -> str | enum.Enum:
        """``error``, ``warning`` or ``info`` (or an enum of those values)."""

    @property
    def node(self) -> str | None:
        """The node it is about (None: the whole cluster)."""


Finding = FindingLike | tuple[str, str, str | None]
"""What renderers accept as a finding: an object, or a plain ``(code, severity, node)``."""


def finding_triples(findings: Iterable[Finding] | None) -> list[tuple[str, str, str | None]]:
    """``(code, severity, node)`` of each finding, objects and tuples alike."""
    out: list[tuple[str, str, str | None]] = []
    for item in findings or ():
        if isinstance(item, tuple):
            code, severity, node = item
            out.append((str(code), str(severity), None if node is None else str(node)))
        else:
            level = item.severity
            severity = str(level.value) if isinstance(level, enum.Enum) else level
            out.append((item.code, severity, item.node))
    return out


class StepLike(Protocol):
    """One step of a ``Plan``."""

    @property
    def node(self) -> str:
        """The node the step acts on."""

    @property
    def host(self) -> str:
        """The host it runs on."""

    @property
    def kind(self) -> enum.Enum:
        """What kind of step it is (a :class:`~pgstream.ops.plan.StepKind`)."""

    @property
    def title(self) -> str:
        """What it does, in a few words."""

    @property
    def detail(self) -> str:
        """The exact command or SQL it runs, as a dry run prints it."""


@runtime_checkable
class PlanLike(Protocol):
    """A ``Plan``: a title and ordered steps."""

    @property
    def title(self) -> str:
        """What the plan does as a whole."""

    @property
    def steps(self) -> Sequence[StepLike]:
        """Its steps, in the order they run."""


class ResultLike(Protocol):
    """What a step did."""

    @property
    def changed(self) -> bool:
        """Did the step change anything?"""

    @property
    def message(self) -> str:
        """What it did, in one line."""


class AppliedLike(Protocol):
    """One applied step of a ``PlanReport``."""

    @property
    def step(self) -> StepLike:
        """The step that ran."""

    @property
    def result(self) -> ResultLike:
        """What it did."""

    @property
    def seconds(self) -> float:
        """How long it took."""


class PlanReportLike(Protocol):
    """A ``PlanReport``: what ``apply`` did."""

    @property
    def plan_title(self) -> str:
        """The applied plan's title."""

    @property
    def applied(self) -> Sequence[AppliedLike]:
        """The steps that ran, in order, each with its result."""
