"""A cluster status in Prometheus' text exposition format (version 0.0.4). Pure.

``render(status, findings=...)`` is what ``ClusterStatus.to_prometheus()`` and the
``/metrics`` listener serve. Every metric is a gauge named ``pgstream_...`` with its unit in
the name (``_bytes``, ``_seconds``); labels are ``node`` (the server the value is about),
``upstream`` (the server it streams from, which also holds its slot) and ``slot``. States
(``state``, ``sync_state``, a slot's ``wal_status``) are labelled gauges of value 1, so a
query can select on them; a slot's ``wal_status`` is a full state set (one series per known
value, 1 for the current one). ``findings`` are ``(code, severity, node)`` triples or objects
with those attributes (a check report's): one ``pgstream_finding`` series per finding and
``pgstream_findings`` counted per severity.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping

from pgstream.render.shapes import (
    Finding,
    StandbyLike,
    StatusLike,
    finding_triples,
    upstream_or_primary,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SEVERITIES = ("error", "warning", "info")
WAL_STATUSES = ("reserved", "extended", "unreserved", "lost")

Labels = Mapping[str, str]
Value = int | float | bool


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: Value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class Exposition:
    """Metric families in order of first use, each with HELP, TYPE and its samples."""

    def __init__(self) -> None:
        self._families: dict[str, tuple[str, list[str]]] = {}

    def declare(self, name: str, help_text: str) -> None:
        """Announce a family (so it is listed, with HELP and TYPE, even without samples)."""
        self._families.setdefault(name, (help_text, []))

    def add(self, name: str, help_text: str, value: Value, labels: Labels | None = None) -> None:
        """One sample of the gauge ``name``."""
        self.declare(name, help_text)
        pairs = ",".join(f'{k}="{_escape_label(v)}"' for k, v in (labels or {}).items())
        self._families[name][1].append(f"{name}{{{pairs}}} {_number(value)}" if pairs
                                       else f"{name} {_number(value)}")

    def text(self) -> str:
        """The exposition: ``# HELP``, ``# TYPE`` and the samples of each family."""
        lines: list[str] = []
        for name, (help_text, samples) in self._families.items():
            lines += [f"# HELP {name} {_escape_help(help_text)}", f"# TYPE {name} gauge",
                      *samples]
        return "\n".join(lines) + "\n"


def _standby(out: Exposition, s: StandbyLike, primary: str) -> None:
    where = {"node": s.name, "upstream": upstream_or_primary(s, primary)}
    out.add("pgstream_standby_up", "1 when pgstream could query the standby itself",
            s.reachable, where)
    out.add("pgstream_standby_streaming", "1 when the upstream has a walsender for it in "
            "state streaming", s.state == "streaming", where)
    out.add("pgstream_standby_state", "the walsender state as the upstream reports it "
            "(disconnected when it has none)", 1, {**where, "state": s.state})
    if s.in_recovery is not None:
        out.add("pgstream_standby_in_recovery", "pg_is_in_recovery() on the standby "
                "(0: it accepts writes)", s.in_recovery, where)
    if s.replay_lag_bytes is not None:
        out.add("pgstream_standby_replay_lag_bytes", "WAL the standby has yet to replay: the "
                "upstream's position minus replay_lsn", s.replay_lag_bytes, where)
    if s.replay_lag is not None:
        out.add("pgstream_standby_replay_lag_seconds", "replay lag in time (pg_stat_replication"
                ".replay_lag)", s.replay_lag.total_seconds(), where)
    if None not in (s.replay_lag_bytes, s.flush_lsn, s.replay_lsn):
        assert s.replay_lag_bytes is not None and s.flush_lsn and s.replay_lsn
        out.add("pgstream_standby_flush_lag_bytes", "WAL the standby has yet to flush to disk: "
                "the upstream's position minus flush_lsn",
                max(0, s.replay_lag_bytes - (s.flush_lsn - s.replay_lsn)), where)
    flush_lag = getattr(s, "flush_lag", None)  # carried by statuses that read it
    if isinstance(flush_lag, dt.timedelta):
        out.add("pgstream_standby_flush_lag_seconds", "flush lag in time "
                "(pg_stat_replication.flush_lag)", flush_lag.total_seconds(), where)
    if s.sync_state is not None:
        out.add("pgstream_standby_sync_state", "the standby's sync_state (async, potential, "
                "sync, quorum)", 1, {**where, "sync_state": s.sync_state})
    if s.slot_name is None:
        return
    slot = {**where, "slot": s.slot_name}
    if s.slot_active is not None:
        out.add("pgstream_slot_active", "1 when a walsender uses the slot", s.slot_active, slot)
    if s.slot_retained_bytes is not None:
        out.add("pgstream_slot_retained_bytes", "WAL the slot keeps on its server (from its "
                "restart_lsn)", s.slot_retained_bytes, slot)
    if s.slot_wal_status is not None:
        known = (*WAL_STATUSES, *(() if s.slot_wal_status in WAL_STATUSES
                                  else (s.slot_wal_status,)))
        for value in known:
            out.add("pgstream_slot_wal_status", "the slot's wal_status (13+): 1 for the current "
                    "value", value == s.slot_wal_status, {**slot, "wal_status": value})


def render(status: StatusLike, findings: Iterable[Finding] | None = None) -> str:
    """The status (and ``findings``, if given) as Prometheus text exposition."""
    out = Exposition()
    primary = status.primary
    at = status.taken_at if status.taken_at.tzinfo else status.taken_at.replace(tzinfo=dt.UTC)
    out.add("pgstream_status_timestamp_seconds", "when this status was read (Unix time)",
            at.timestamp())
    out.add("pgstream_primary_info", "the primary and its PostgreSQL version", 1,
            {"node": primary.name, "version": primary.version})
    out.add("pgstream_primary_in_recovery", "pg_is_in_recovery() on the primary (1: it is "
            "not accepting writes)", primary.in_recovery, {"node": primary.name})
    if primary.timeline is not None:
        out.add("pgstream_timeline", "the primary's timeline", primary.timeline,
                {"node": primary.name})
    out.add("pgstream_wal_position_bytes", "the primary's current WAL position (LSN) as a "
            "byte offset", primary.lsn.value, {"node": primary.name})
    out.add("pgstream_standbys", "standbys in the cluster", len(status.standbys))
    for standby in status.standbys:
        _standby(out, standby, primary.name)
    out.declare("pgstream_node_failed", "1 for a former primary awaiting rejoin")
    for name in status.failed:
        out.add("pgstream_node_failed", "1 for a former primary awaiting rejoin", 1,
                {"node": name})
    if findings is not None:
        triples = finding_triples(findings)
        out.declare("pgstream_finding", "one series per check finding")
        for code, severity, node in triples:
            out.add("pgstream_finding", "one series per check finding", 1,
                    {"code": code, "severity": severity, "node": node or ""})
        counts = Counter(severity for _, severity, _ in triples)
        for severity in (*SEVERITIES, *sorted(set(counts) - set(SEVERITIES))):
            out.add("pgstream_findings", "check findings by severity", counts[severity],
                    {"severity": severity})
    return out.text()


_SUCCESS_HELP = "whether the cluster was read (1) within the time allowed or not (0)"


def failure(reason: str, seconds: float) -> str:
    """What a scrape serves when reading the cluster failed or took too long: ``reason`` is
    a short category (``timeout``, ``unreachable``, ``error``), the details go to the log."""
    out = Exposition()
    out.add("pgstream_scrape_success", _SUCCESS_HELP, 0)
    out.add("pgstream_scrape_duration_seconds", "time spent reading the cluster", seconds)
    out.add("pgstream_scrape_error", "why the last scrape failed", 1, {"reason": reason})
    return out.text()


def scraped(text: str, seconds: float) -> str:
    """A successful scrape: ``text`` plus the scrape's own success and duration gauges."""
    out = Exposition()
    out.add("pgstream_scrape_success", _SUCCESS_HELP, 1)
    out.add("pgstream_scrape_duration_seconds", "time spent reading the cluster", seconds)
    return out.text() + text
