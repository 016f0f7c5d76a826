"""Cluster status: the seed's steps 11 to 13 as typed, frozen values.

``ClusterStatus`` holds the primary's position and, per standby, what the primary's
``pg_stat_replication`` says of it (state, LSNs, lag in bytes and time, sync state, slot) and
what the standby says of itself (``pg_is_in_recovery()``, replay position). ``str()`` is a
table (lag in human units, problems marked); ``to_dict()`` is JSON-ready; notebooks get the
topology drawn (:mod:`pgstream.render.html`); ``to_prometheus()`` is the metrics text.
:func:`pgstream.ops.observe.cluster_status` reads it from the servers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import attrs

from pgstream.facts.lsn import Lsn
from pgstream.render import html as render_html
from pgstream.render import prometheus
from pgstream.render.shapes import Finding
from pgstream.render.units import human_bytes, human_seconds


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, dt.timedelta):
        return human_seconds(value.total_seconds())
    return str(value)


def _cell(item: StandbyStatus, attr: str) -> str:
    """A table cell: lag and slot-held WAL in kB/MB/GB, times in ms/s, problems marked
    with ``!``."""
    value = getattr(item, attr)
    if attr in ("replay_lag_bytes", "slot_retained_bytes"):
        return human_bytes(value)
    if attr == "name" and item.problem is not None:
        return f"!{value}"
    if attr == "state" and item.replay_paused:
        return f"{value}, replay paused"
    if attr == "problem":
        return value or ""
    return _fmt(value)


def _jsonable(value: object) -> object:
    if isinstance(value, Lsn):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


@attrs.frozen
class HistoryEntry:
    """One operation done on the cluster (switchover, failover, rejoin, ...)."""

    at: dt.datetime
    operation: str
    detail: str
    timeline: int | None = None

    def __str__(self) -> str:
        tl = f" (timeline {self.timeline})" if self.timeline is not None else ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.operation}: {self.detail}{tl}"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict: ``at`` as ISO 8601, the other fields as they are."""
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


@attrs.frozen
class PrimaryStatus:
    """The primary at the moment of a status: its name, version (``server_version``),
    current WAL position (``lsn``), whether it is in recovery (true: it is no primary, a
    problem) and its timeline (None when it could not be read).
    """
    name: str
    version: str
    lsn: Lsn
    in_recovery: bool = False
    timeline: int | None = None

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field (the LSN as text)."""
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


@attrs.frozen
class StandbyStatus:
    """One standby, as its primary and as it itself sees it.

    ``state`` is pg_stat_replication's (``streaming``, ``catchup``, ...) or ``disconnected``
    when the primary has no walsender for it. ``replay_lag_bytes`` is how far replay is
    behind: while it streams, its upstream's position minus ``replay_lsn``
    (``pg_wal_lsn_diff``); while disconnected, the primary's current LSN minus the replay LSN
    the standby reports itself; None when it cannot be known (disconnected and unreachable).
    ``slot_retained_bytes`` is what its slot holds back, a separate thing. ``replay_lag`` is the
    time lag (``replay_lag`` from 10, ``now() - pg_last_xact_replay_timestamp()`` on the standby
    for 9.6), None when unknown.
    ``problem`` is the code of the standby's most severe finding (``cluster.check()``; set
    when it does not stream or its replay is paused) and ``replay_paused`` whether replay is
    paused (None when it cannot be asked). The table shows lag in kB/MB/GB and ms/s and marks
    a standby with a problem with ``!``; ``to_dict()`` keeps the raw numbers.
    """

    name: str
    state: str
    sent_lsn: Lsn | None = None
    write_lsn: Lsn | None = None
    flush_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    replay_lag_bytes: int | None = None
    replay_lag: dt.timedelta | None = None
    sync_state: str | None = None
    sync_priority: int | None = None
    slot_name: str | None = None
    slot_active: bool | None = None
    slot_wal_status: str | None = None
    slot_retained_bytes: int | None = None
    in_recovery: bool | None = None
    reachable: bool = True
    upstream: str | None = None
    problem: str | None = None
    """The code of this standby's most severe finding (see ``cluster.check()``), or None."""
    replay_paused: bool | None = None

    @property
    def streaming(self) -> bool:
        """Is its walsender in ``streaming`` state?"""
        return self.state == "streaming"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field (LSNs as text, lag in seconds)."""
        return {k: _jsonable(v) for k, v in attrs.asdict(self, recurse=False).items()}


COLUMNS = (("name", "name"), ("upstream", "upstream"), ("state", "state"), ("sent", "sent_lsn"),
           ("replay", "replay_lsn"), ("lag bytes", "replay_lag_bytes"), ("lag", "replay_lag"),
           ("sync", "sync_state"), ("slot", "slot_name"), ("slot wal", "slot_wal_status"),
           ("slot held", "slot_retained_bytes"), ("recovery", "in_recovery"),
           ("problem", "problem"))


@attrs.frozen
class ClusterStatus:
    """The whole cluster at one moment (``taken_at``, UTC)."""

    primary: PrimaryStatus
    standbys: tuple[StandbyStatus, ...]
    taken_at: dt.datetime
    history: tuple[HistoryEntry, ...] = ()
    failed: tuple[str, ...] = ()

    def standby(self, name: str) -> StandbyStatus:
        """The status of the standby named ``name`` (raises ``KeyError``)."""
        for item in self.standbys:
            if item.name == name:
                return item
        raise KeyError(name)

    @property
    def all_streaming(self) -> bool:
        """Does every standby stream (none is ``disconnected``, ``catchup``, ...)?"""
        return all(s.streaming for s in self.standbys)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (``docs/status.schema.json``): ``primary``, ``standbys``,
        ``taken_at`` (ISO 8601), ``history`` and ``failed``.
        """
        return {"primary": self.primary.to_dict(),
                "standbys": [s.to_dict() for s in self.standbys],
                "taken_at": self.taken_at.isoformat(),
                "history": [h.to_dict() for h in self.history],
                "failed": list(self.failed)}

    def rows(self) -> list[list[str]]:
        """The table's cells, one row per standby, in the order of :data:`COLUMNS`."""
        return [[_cell(s, attr) for _, attr in COLUMNS] for s in self.standbys]

    def __str__(self) -> str:
        tl = f", timeline {self.primary.timeline}" if self.primary.timeline is not None else ""
        head = (f"{self.primary.name}: the primary, PostgreSQL {self.primary.version}, at "
                f"{self.primary.lsn}{tl}, in_recovery={_fmt(self.primary.in_recovery)}")
        titles = [title for title, _ in COLUMNS]
        rows = self.rows()
        widths = [max(len(t), *(len(r[i]) for r in rows)) if rows else len(t)
                  for i, t in enumerate(titles)]
        line = "  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()
        out = [head, line, "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        if not rows:
            out.append("(no standbys)")
        if self.failed:
            out.append("failed (awaiting rejoin): " + ", ".join(self.failed))
        out += [f"history: {entry}" for entry in self.history[-5:]]
        return "\n".join(out)

    def to_prometheus(self, findings: Iterable[Finding] | None = None) -> str:
        """Prometheus text exposition (``findings``: ``(code, severity, node)`` or objects)."""
        return prometheus.render(self, findings)

    def _repr_html_(self) -> str:
        return render_html.status_html(self)
