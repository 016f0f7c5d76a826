"""Sample values for the notebook-view and metrics tests: a cluster with one of everything
(fixtures ``sample_status``, ``sample_plan``, ``sample_report``, ``sample_findings``)."""

from __future__ import annotations

import datetime as dt

import attrs
import pytest

from pgstream.facts.lsn import Lsn
from pgstream.ops.plan import AppliedStep, Plan, PlanReport, Step, StepKind, StepResult
from pgstream.ops.status import ClusterStatus, HistoryEntry, PrimaryStatus, StandbyStatus

TAKEN = dt.datetime(2024, 5, 1, 12, 30, 0, tzinfo=dt.UTC)
EVIL = '<script>alert("x")</script>'


@pytest.fixture
def sample_status() -> ClusterStatus:
    """A primary, two streaming standbys (one cascading, one sync), one disconnected standby
    whose slot is lost, a 'standby' that accepts writes, a failed node and some history."""
    def standby(name: str, **kw: object) -> StandbyStatus:
        base: dict[str, object] = dict(
            name=name, state="streaming", sent_lsn=Lsn.parse("0/5000000"),
            write_lsn=Lsn.parse("0/5000000"), flush_lsn=Lsn.parse("0/4FFF000"),
            replay_lsn=Lsn.parse("0/4FF0000"), replay_lag_bytes=65536,
            replay_lag=dt.timedelta(milliseconds=42), sync_state="async", sync_priority=0,
            slot_name=name, slot_active=True, slot_wal_status="reserved",
            slot_retained_bytes=1 << 20, in_recovery=True, upstream="primary")
        base.update(kw)
        return StandbyStatus(**base)  # type: ignore[arg-type]

    return ClusterStatus(
        primary=PrimaryStatus("primary", "18.1", Lsn.parse("0/5000000"), False, 3),
        standbys=(
            standby("standby1", sync_state="sync", sync_priority=1),
            standby("standby2", upstream="standby1", replay_lag_bytes=3 << 20,
                    replay_lag=dt.timedelta(seconds=2.5)),
            standby("standby3", state="disconnected", sent_lsn=None, write_lsn=None,
                    flush_lsn=None, replay_lsn=None, replay_lag_bytes=900 << 20,
                    replay_lag=None, sync_state=None, slot_active=False,
                    slot_wal_status="lost", slot_retained_bytes=900 << 20, reachable=False,
                    in_recovery=None),
            standby("standby4", state="catchup", in_recovery=False, slot_name=None,
                    slot_active=None, slot_wal_status=None, slot_retained_bytes=None),
        ),
        taken_at=TAKEN,
        history=(HistoryEntry(TAKEN - dt.timedelta(minutes=5), "failover",
                              f"standby1 promoted; old {EVIL}", 3),
                 HistoryEntry(TAKEN - dt.timedelta(minutes=1), "rejoin", "node2 rewound", 3)),
        failed=("oldprimary",),
    )


@attrs.frozen
class Finding:
    """What a check report's finding looks like (the check engineer's class will have more)."""

    code: str
    severity: str
    node: str | None
    summary: str = ""
    evidence: str = ""
    fix: str = ""
    plan: Plan | None = None


@pytest.fixture
def sample_plan() -> Plan:
    return plan()


def plan() -> Plan:
    def nothing(_report: object) -> None:
        return None

    return Plan("add standby5", [
        Step("primary", StepKind.SLOT, "create slot standby5",
             "SELECT * FROM pg_create_physical_replication_slot('standby5', true);",
             action=nothing),
        Step("standby5", StepKind.BASE_BACKUP, "clone from primary",
             "pg_basebackup -h 127.0.0.1 -p 5432 -U replicator -D /srv/standby5 -X stream\n"
             "(env PGPASSFILE=/srv/standby5.pgpass)", action=nothing, host="db2.example"),
        Step("standby5", StepKind.START, f"start {EVIL}", "pg_ctl -D /srv/standby5 start",
             action=nothing, host="db2.example"),
    ])


@pytest.fixture
def sample_report() -> PlanReport:
    steps = plan().steps
    return PlanReport("add standby5", (
        AppliedStep(steps[0], StepResult(True, ""), 0.012),
        AppliedStep(steps[1], StepResult(True, "copied 31 MB"), 1.85),
        AppliedStep(steps[2], StepResult(False, "already running"), 0.2)))


@pytest.fixture
def sample_findings() -> list[Finding]:
    return [
        Finding("slot_wal_lost", "error", "standby3", "standby3's slot lost WAL it needs",
                "pg_replication_slots: standby3 wal_status=lost", "re-clone standby3",
                plan()),
        Finding("standby_not_in_recovery", "error", "standby4",
                "standby4 accepts writes: a split brain", "pg_is_in_recovery() = false",
                "fence it, then rejoin it with rewind"),
        Finding("lag_high", "warning", "standby2", "standby2 is 3.0 MB behind",
                "replay_lag_bytes=3145728", f"look at its I/O {EVIL}"),
        Finding("replay_paused", "info", "standby1", "replay paused", "", ""),
    ]
