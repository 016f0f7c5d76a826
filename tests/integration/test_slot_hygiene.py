"""Slot hygiene against real servers: the report, dropping inactive slots, advancing a slot,
max_slot_wal_keep_size, and PostgreSQL's 019_replslot_limit.pl progression of wal_status
(reserved -> extended -> unreserved -> lost) on a cluster with 1 MB WAL segments."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from psycopg import sql

from pgstream import (
    Cluster,
    InvalidInput,
    InvalidName,
    Lsn,
    Node,
    NotAvailable,
    SlotError,
    SlotInUse,
    SlotNotFound,
    StandbyStatus,
)
from pgstream.hosts.wait import wait_for
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.slot_report import slot_report
from pgstream.ops.slots import advance_slot, drop_inactive_slots_plan, slot_wal_limit_plan

MakeCluster = Callable[..., Cluster]
MB = 1024 * 1024


def _fn(node: Node, name: str) -> sql.Identifier:
    return sql.Identifier(node.version.adapter.function(name))


def _switch_wal(node: Node) -> None:
    """Finish the current WAL segment (after a little WAL, so there is something to switch)."""
    node.execute("CREATE TABLE hygiene_switch (); DROP TABLE hygiene_switch")
    node.execute(sql.SQL("SELECT {}()").format(_fn(node, "pg_switch_wal")))


def _write_wal(node: Node, rows: int = 10000) -> None:
    """About 1.3 MB of WAL per 10000 rows."""
    node.execute("CREATE TABLE IF NOT EXISTS hygiene_fill (id int, pad text)")
    node.execute("INSERT INTO hygiene_fill SELECT g, repeat('x', 100) "
                 "FROM generate_series(1, %s) g", (rows,))


@pytest.fixture
def scratch_slots(pgstream_cluster: Cluster) -> Iterator[list[str]]:
    """Slot names a test creates on the shared cluster's primary; dropped afterwards."""
    names: list[str] = []
    yield names
    primary = pgstream_cluster.primary
    for name in names:
        state = primary.slot(name)
        if state is not None and not state.active:
            primary.drop_slot(name)


# -- the report ---------------------------------------------------------------------------------

def test_report_flags_only_inactive_slots_holding_wal(pgstream_cluster: Cluster,
                                                      scratch_slots: list[str]) -> None:
    primary = pgstream_cluster.primary
    scratch_slots.append("hygiene_idle")
    primary.create_slot("hygiene_idle")
    _write_wal(primary)

    report = slot_report(primary, min_retained_bytes=MB)
    idle = report.finding("hygiene_idle")
    assert idle.flagged and not idle.status.active
    assert idle.status.retained_bytes is not None and idle.status.retained_bytes >= MB
    assert "holds" in idle.reasons[0] and "threshold 1.0 MB" in idle.reasons[0]
    standby = report.finding("standby1")
    assert standby.status.active and not standby.flagged
    assert [f.name for f in report.flagged] == ["hygiene_idle"]

    # Active slots are never flagged, whatever the threshold.
    assert [f.name for f in slot_report(primary, min_retained_bytes=0).flagged] == \
        ["hygiene_idle"]
    # Without thresholds the report only lists.
    assert slot_report(primary).flagged == ()

    text = str(report)
    assert "hygiene_idle" in text and "standby1" in text and "1 flagged" in text
    assert "flagged hygiene_idle: holds" in text
    assert str(idle).startswith("hygiene_idle: inactive, holds")
    data = json.loads(json.dumps(report.to_dict()))
    assert data["flagged"] == ["hygiene_idle"]
    assert {s["name"] for s in data["slots"]} >= {"hygiene_idle", "standby1"}
    with pytest.raises(SlotNotFound):
        report.finding("no_such_slot")


@pytest.mark.pg(">= 13")
def test_report_has_wal_status_from_13(pgstream_cluster: Cluster) -> None:
    standby = slot_report(pgstream_cluster.primary).finding("standby1")
    assert standby.status.wal_status == "reserved"
    assert standby.status.safe_wal_size is None  # max_slot_wal_keep_size = -1: unlimited


@pytest.mark.pg(">= 17")
def test_inactive_time_flags_from_17(pgstream_cluster: Cluster,
                                     scratch_slots: list[str]) -> None:
    primary = pgstream_cluster.primary
    scratch_slots.append("hygiene_quiet")
    primary.create_slot("hygiene_quiet")

    report = slot_report(primary, min_inactive=dt.timedelta(0))
    quiet = report.finding("hygiene_quiet")
    assert quiet.status.inactive_since is not None
    assert quiet.inactive_for is not None
    assert dt.timedelta(0) <= quiet.inactive_for < dt.timedelta(minutes=5)
    assert quiet.flagged and quiet.reasons[0].startswith("inactive for ")
    assert report.finding("standby1").inactive_for is None  # active: never inactive
    assert not report.finding("standby1").flagged

    later = slot_report(primary, min_inactive=dt.timedelta(hours=1))
    assert not later.finding("hygiene_quiet").flagged


@pytest.mark.pg("< 17")
def test_inactive_time_needs_17(pgstream_cluster: Cluster) -> None:
    with pytest.raises(NotAvailable, match=r"inactive_since.*introduced in PostgreSQL 17"):
        slot_report(pgstream_cluster.primary, min_inactive=dt.timedelta(minutes=5))
    report = slot_report(pgstream_cluster.primary)
    assert all(f.status.inactive_since is None and f.inactive_for is None for f in report)


# -- dropping inactive slots --------------------------------------------------------------------

def test_drop_plan_drops_only_inactive_slots_and_rechecks_at_apply(
        pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    primary, standby = cluster.primary, cluster.standbys[0]
    assert standby.service is not None
    primary.create_slot("idle_a")
    primary.create_slot("idle_b")

    # Naming an active slot refuses the whole plan: nothing is dropped.
    with pytest.raises(SlotInUse, match=r"standby1 \(walsender pid \d+\).*Nothing was dropped"):
        drop_inactive_slots_plan(primary, ["idle_a", "standby1"])
    with pytest.raises(SlotNotFound, match="no_such"):
        drop_inactive_slots_plan(primary, ["idle_a", "no_such"])
    with pytest.raises(InvalidName):
        drop_inactive_slots_plan(primary, ["Bad-Name"])
    assert {s.name for s in primary.slots()} == {"idle_a", "idle_b", "standby1"}

    # The standby is down while the plan is made, and back before it is applied.
    standby.close()
    standby.service.stop()
    wait_for(lambda: not _slot(primary, "standby1").active, timeout=30,
             what="the walsender to release standby1")
    stale = drop_inactive_slots_plan(primary)
    assert "drop inactive slot standby1" in str(stale)
    standby.service.start()
    wait_for(lambda: _slot(primary, "standby1").active, timeout=30,
             what="standby1 to stream again")
    # A refusal before anything changed is the refusal itself, as from the plan's builder.
    with pytest.raises(SlotInUse, match=r"became active.*Nothing was dropped"):
        stale.apply()
    assert {s.name for s in primary.slots()} == {"idle_a", "idle_b", "standby1"}

    plan = drop_inactive_slots_plan(primary, min_retained_bytes=0)
    text = str(plan)
    assert "pg_drop_replication_slot\"('idle_a');" in text
    assert "pg_drop_replication_slot\"('idle_b');" in text
    assert "keep standby1: active" in text and "slot standby1" not in text
    report = plan.apply()
    assert report.changed
    assert {s.name for s in primary.slots()} == {"standby1"}
    assert not plan.apply().changed  # the slots are gone: nothing left to do
    assert cluster.status().standby("standby1").slot_active is True


def _slot(node: Node, name: str) -> SlotStatus:
    state = node.slot(name)
    assert state is not None, f"slot {name} is gone"
    return state


# -- advancing ----------------------------------------------------------------------------------

@pytest.mark.pg(">= 11")
def test_advance_moves_an_inactive_slot_forward(pgstream_cluster: Cluster,
                                                scratch_slots: list[str]) -> None:
    primary = pgstream_cluster.primary
    scratch_slots += ["hygiene_adv", "hygiene_unreserved"]
    primary.create_slot("hygiene_adv")
    start = primary.slot("hygiene_adv")
    assert start is not None and start.restart_lsn is not None
    _write_wal(primary)

    with pytest.raises(InvalidInput, match="back"):
        advance_slot(primary, "hygiene_adv", Lsn(start.restart_lsn.value - 1))
    middle = primary.current_lsn()
    _write_wal(primary, 1000)
    moved = advance_slot(primary, "hygiene_adv", middle)
    assert start.restart_lsn < moved <= middle
    # Default target: the primary's current WAL position (pg_current_wal_lsn).
    end = advance_slot(primary, "hygiene_adv")
    now = primary.slot("hygiene_adv")
    assert now is not None and now.restart_lsn == end and end >= middle
    assert now.retained_bytes is not None and now.retained_bytes < MB

    with pytest.raises(SlotInUse, match="active"):
        advance_slot(primary, "standby1")
    with pytest.raises(SlotNotFound):
        advance_slot(primary, "no_such_slot")
    with pytest.raises(InvalidName):
        advance_slot(primary, "Bad-Name")
    # A slot created without reserving WAL has nothing to advance.
    primary.execute(sql.SQL("SELECT {}(%s)").format(
        _fn(primary, "pg_create_physical_replication_slot")), ("hygiene_unreserved",))
    with pytest.raises(SlotError, match="not reserved WAL"):
        advance_slot(primary, "hygiene_unreserved")


@pytest.mark.pg("< 11")
def test_advance_needs_11(pgstream_cluster: Cluster) -> None:
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 11"):
        advance_slot(pgstream_cluster.primary, "standby1")


# -- max_slot_wal_keep_size ---------------------------------------------------------------------

@pytest.mark.pg(">= 13")
def test_wal_limit_plan_applies_once(pgstream_cluster: Cluster) -> None:
    primary = pgstream_cluster.primary
    assert primary.data_dir is not None
    auto = primary.data_dir / "postgresql.auto.conf"
    plan = slot_wal_limit_plan(primary, 64)
    text = str(plan)
    assert re.search(r"ALTER SYSTEM SET \"?max_slot_wal_keep_size\"? = '64MB';", text), text
    assert "pg_reload_conf()" in text
    try:
        assert plan.apply().changed
        assert primary.show("max_slot_wal_keep_size") == "64MB"
        written = auto.read_bytes()
        again = plan.apply()
        assert not again.changed, str(again)
        assert auto.read_bytes() == written
        safe = slot_report(primary).finding("standby1").status.safe_wal_size
        assert safe is not None and safe > 0  # unlimited (-1) gives None
    finally:
        slot_wal_limit_plan(primary, -1).apply()
    assert primary.show("max_slot_wal_keep_size") == "-1"
    for bad in (-2, True, "6"):
        with pytest.raises(InvalidInput, match="max_slot_wal_keep_size_mb"):
            slot_wal_limit_plan(primary, bad)  # type: ignore[arg-type]


@pytest.mark.pg("< 13")
def test_wal_limit_needs_13(pgstream_cluster: Cluster) -> None:
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 13"):
        slot_wal_limit_plan(pgstream_cluster.primary, 64)


# -- 019_replslot_limit.pl: reserved -> extended -> unreserved -> lost ------------------------

MAX_WAL_SIZE_MB = 16
LIMIT_MB = 24
REMOVED = re.compile(r"requested WAL segment [0-9A-F]+ has already been removed"
                     r"|can no longer access replication slot")


def _segment_exists(node: Node, lsn: Lsn) -> bool:
    """Is the WAL file holding the byte at ``lsn`` in pg_wal? (``pg_walfile_name`` names the
    file that ends at an LSN, the previous one on a file boundary: ask for the next byte.)"""
    name = node.value((sql.SQL("SELECT {}(%s::pg_lsn)").format(_fn(node, "pg_walfile_name")),
                       (str(Lsn(lsn.value + 1)),)))
    return bool(node.value((sql.SQL("SELECT count(*) FROM pg_ls_waldir() WHERE name = %s"),
                            (name,))))


@pytest.mark.pg(">= 13")
def test_wal_status_goes_reserved_extended_unreserved_lost(
        pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1, wal_segsize_mb=1, settings={
        "min_wal_size": "2", "max_wal_size": str(MAX_WAL_SIZE_MB), "wal_keep_size": "0",
        "max_slot_wal_keep_size": "-1", "checkpoint_timeout": "3600", "log_checkpoints": "on",
    })
    primary, standby = cluster.primary, cluster.standbys[0]
    assert standby.service is not None and standby.service.log_file is not None
    cluster.wait_for_catchup()
    standby.close()
    standby.service.stop()

    def state() -> tuple[str | None, int | None, int | None]:
        slot = slot_report(primary).finding("standby1").status
        assert not slot.active
        return slot.wal_status, slot.safe_wal_size, slot.retained_bytes

    # Unlimited (-1): reserved, and no safe_wal_size.
    _switch_wal(primary)
    primary.execute("CHECKPOINT")
    assert state()[:2] == ("reserved", None)

    assert slot_wal_limit_plan(primary, LIMIT_MB).apply().changed
    seen = [state()]
    assert seen[0][0] == "reserved" and seen[0][1] is not None and seen[0][1] > 0
    # Fill WAL segment by segment up to 2 MB before the limit: reserved while within
    # max_wal_size, then extended (held by the slot alone), safe_wal_size shrinking.
    while (safe := seen[-1][1]) is not None and safe > 2 * MB:
        assert len(seen) < 2 * LIMIT_MB, seen
        _switch_wal(primary)
        seen.append(state())
    statuses = [s for s, _, _ in seen]
    assert "extended" in statuses, statuses
    turn = statuses.index("extended")
    assert turn > 0 and set(statuses[:turn]) == {"reserved"}, statuses
    assert set(statuses[turn:]) == {"extended"}, statuses
    for status, _safe, retained in seen:
        assert retained is not None
        if status == "reserved":
            assert retained <= (MAX_WAL_SIZE_MB + 2) * MB
        else:
            assert retained > MAX_WAL_SIZE_MB * MB
    safes = [s for _, s, _ in seen]
    assert all(a is not None and b is not None and b < a for a, b in pairwise(safes)), safes

    # Past the limit, before any checkpoint: unreserved, the segments are still there.
    primary.execute("CHECKPOINT")  # so that no automatic one comes in the next few segments
    while (current := state())[0] != "unreserved":
        assert current[0] == "extended", current
        _switch_wal(primary)
    _write_wal(primary, 100)
    status, safe, retained = state()
    assert status == "unreserved" and safe is not None and safe < 0
    assert retained is not None and retained > LIMIT_MB * MB
    restart = slot_report(primary).finding("standby1").status.restart_lsn
    assert restart is not None and _segment_exists(primary, restart)
    # check() names it (issue 11's slot_wal_unreserved), with the slot's row as evidence.
    unreserved = [f for f in cluster.check().findings if f.code == "slot_wal_unreserved"]
    assert unreserved and "standby1" in unreserved[0].evidence, cluster.check().findings
    assert state()[0] == "unreserved"  # check() read, and changed nothing

    # A checkpoint removes them: lost, no restart_lsn, no safe_wal_size.
    primary.execute("CHECKPOINT")
    wait_for(lambda: state()[0] == "lost", timeout=30, what="the slot to be lost")
    lost = slot_report(primary).finding("standby1")
    assert lost.status.restart_lsn is None and lost.status.safe_wal_size is None
    assert lost.status.retained_bytes is None
    assert not _segment_exists(primary, restart)
    assert "lost" in str(lost)

    # The standby, restarted, cannot stream: the primary no longer has the WAL it needs.
    log = Path(standby.service.log_file)
    offset = log.stat().st_size
    standby.service.start()
    wait_for(lambda: REMOVED.search(log.read_text(errors="replace")[offset:]), timeout=30,
             what="the standby to report its WAL is gone",
             detail=lambda: standby.service.log_tail(5) if standby.service else "")
    # The standby retries every few seconds; while a retry's walsender is alive, 13-16 report
    # the removed WAL as "unreserved" (the walsender might have moved on): wait for "lost".
    def lost_status() -> StandbyStatus | None:
        item = cluster.status().standby("standby1")
        return item if item.slot_wal_status == "lost" else None

    item = wait_for(lost_status, timeout=30, what="the status to report the slot lost",
                    detail=lambda: repr(cluster.status().standby("standby1")))
    assert item.state != "streaming"
    replayed = standby.replay_lsn()
    assert replayed is not None and replayed < primary.current_lsn()
