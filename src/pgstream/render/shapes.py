"""What the status, plan and report renderers read, as Protocols.

The values themselves (``ClusterStatus``, ``Plan``, ``PlanReport``, a check report's findings)
live in ``ops/``, a layer above ``render/``; the renderers name only the attributes they read,
so they stay pure and the layering holds. Every member is a read-only property, which frozen
``attrs`` fields satisfy.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from pgstream.facts.lsn import Lsn


class PrimaryLike(Protocol):
    """``ClusterStatus.primary``."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def lsn(self) -> Lsn: ...
    @property
    def in_recovery(self) -> bool: ...
    @property
    def timeline(self) -> int | None: ...


class StandbyLike(Protocol):
    """One of ``ClusterStatus.standbys``."""

    @property
    def name(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def upstream(self) -> str | None: ...
    @property
    def sent_lsn(self) -> Lsn | None: ...
    @property
    def flush_lsn(self) -> Lsn | None: ...
    @property
    def replay_lsn(self) -> Lsn | None: ...
    @property
    def replay_lag_bytes(self) -> int | None: ...
    @property
    def replay_lag(self) -> dt.timedelta | None: ...
    @property
    def sync_state(self) -> str | None: ...
    @property
    def slot_name(self) -> str | None: ...
    @property
    def slot_active(self) -> bool | None: ...
    @property
    def slot_wal_status(self) -> str | None: ...
    @property
    def slot_retained_bytes(self) -> int | None: ...
    @property
    def in_recovery(self) -> bool | None: ...
    @property
    def reachable(self) -> bool: ...


class HistoryLike(Protocol):
    """One of ``ClusterStatus.history``."""

    @property
    def at(self) -> dt.datetime: ...
    @property
    def operation(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def timeline(self) -> int | None: ...


class StatusLike(Protocol):
    """``ClusterStatus``: the whole cluster at one moment."""

    @property
    def primary(self) -> PrimaryLike: ...
    @property
    def standbys(self) -> Sequence[StandbyLike]: ...
    @property
    def taken_at(self) -> dt.datetime: ...
    @property
    def history(self) -> Sequence[HistoryLike]: ...
    @property
    def failed(self) -> Sequence[str]: ...


@runtime_checkable
class FindingLike(Protocol):
    """A check finding: a stable ``code``, a ``severity`` (error, warning, info), the ``node``.

    A check report's findings may carry more (``summary``, ``evidence``, ``fix``, a ``plan``);
    the HTML view shows those it finds.
    """

    @property
    def code(self) -> str: ...
    @property
    def severity(self) -> str | enum.Enum: ...
    @property
    def node(self) -> str | None: ...


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
    def node(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def kind(self) -> enum.Enum: ...
    @property
    def title(self) -> str: ...
    @property
    def detail(self) -> str: ...


@runtime_checkable
class PlanLike(Protocol):
    """A ``Plan``: a title and ordered steps."""

    @property
    def title(self) -> str: ...
    @property
    def steps(self) -> Sequence[StepLike]: ...


class ResultLike(Protocol):
    """What a step did."""

    @property
    def changed(self) -> bool: ...
    @property
    def message(self) -> str: ...


class AppliedLike(Protocol):
    """One applied step of a ``PlanReport``."""

    @property
    def step(self) -> StepLike: ...
    @property
    def result(self) -> ResultLike: ...
    @property
    def seconds(self) -> float: ...


class PlanReportLike(Protocol):
    """A ``PlanReport``: what ``apply`` did."""

    @property
    def plan_title(self) -> str: ...
    @property
    def applied(self) -> Sequence[AppliedLike]: ...
