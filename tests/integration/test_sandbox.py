"""Cluster.sandbox against real servers: streaming, reads on standbys, status, slots, plans."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from psycopg import sql

from pgstream import (
    Cluster,
    InvalidName,
    Lsn,
    PlanFailed,
    ReadOnlyNode,
    ReplicationSlot,
    SlotError,
    SlotInUse,
    SlotNotFound,
    Step,
    StepKind,
)
from pgstream.errors import PgStreamError
from pgstream.hosts.wait import wait_for

MakeCluster = Callable[..., Cluster]


def _pid_alive(pid: int) -> bool:
    """A live process (a zombie waiting for init to reap it is not running anything)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_one_standby_replicates_reads_and_refuses_writes(pgstream_cluster: Cluster) -> None:
    cluster = pgstream_cluster
    primary, standby = cluster.primary, cluster.standbys[0]
    assert [n.name for n in cluster.nodes] == ["primary", "standby1"]
    assert primary.in_recovery is False
    assert standby.in_recovery is True
    primary.execute("CREATE TABLE t1 (id int)")
    primary.execute("INSERT INTO t1 SELECT generate_series(1, %s)", (1000,))
    cluster.wait_for_catchup(timeout=30)
    assert standby.query("SELECT count(*) FROM t1") == [(1000,)]
    with pytest.raises(ReadOnlyNode, match="read-only"):
        standby.execute("INSERT INTO t1 VALUES (1)")
    assert isinstance(ReadOnlyNode("x"), PgStreamError)


def test_status_before_and_after_catchup(pgstream_cluster: Cluster) -> None:
    cluster = pgstream_cluster
    cluster.primary.execute("CREATE TABLE IF NOT EXISTS t2 (id int)")
    cluster.wait_for_catchup()
    # Hold replay on the standby so the status shows a real lag, then release it.
    version = cluster.primary.version
    pause = version.adapter.function("pg_wal_replay_pause")
    resume = version.adapter.function("pg_wal_replay_resume")
    standby = cluster.standbys[0]
    standby.execute(sql.SQL("SELECT {}()").format(sql.Identifier(pause)))
    try:
        cluster.primary.execute("INSERT INTO t2 SELECT generate_series(1, 5000)")
        target = cluster.primary.current_lsn()
        # Wait until the standby has received (not replayed) the new WAL.
        wait_for(lambda: (s := cluster.status().standbys[0]).flush_lsn is not None
                 and s.flush_lsn >= target, timeout=30, what="flush")
        lagging = cluster.status().standbys[0]
        assert lagging.replay_lag_bytes is not None and lagging.replay_lag_bytes > 0
        assert lagging.replay_lsn is not None and lagging.replay_lsn < target
    finally:
        standby.execute(sql.SQL("SELECT {}()").format(sql.Identifier(resume)))
    cluster.wait_for_catchup()
    # The primary learns the standby's replay position from its next status reply.
    wait_for(lambda: cluster.status().standby("standby1").replay_lag_bytes == 0, timeout=30,
             what="the primary to see the replay")
    status = cluster.status()
    assert status.primary.name == "primary"
    assert status.primary.in_recovery is False
    assert status.primary.lsn >= target
    item = status.standby("standby1")
    assert item.state == "streaming"
    assert item.in_recovery is True
    assert item.sync_state == "async"
    assert item.slot_name == "standby1" and item.slot_active is True
    assert item.replay_lsn == item.sent_lsn
    assert item.replay_lsn is not None and status.primary.lsn >= item.replay_lsn
    assert item.replay_lag_bytes == 0
    assert isinstance(item.replay_lsn, Lsn)
    text = str(status)
    assert "standby1" in text and "streaming" in text
    data = json.loads(json.dumps(status.to_dict()))
    assert data["standbys"][0]["state"] == "streaming"
    assert "<table" in status._repr_html_() and "<svg" in status._repr_html_()


def test_slots_create_list_drop_and_refuse_active(pgstream_cluster: Cluster) -> None:
    primary = pgstream_cluster.primary
    slot = primary.create_slot("extra")
    assert slot == ReplicationSlot("extra")
    listed = {s.name: s for s in primary.slots()}
    assert set(listed) >= {"extra", "standby1"}
    extra = listed["extra"]
    assert extra.active is False
    assert extra.restart_lsn is not None  # reserved immediately (the seed's 'true')
    assert extra.retained_bytes is not None and extra.retained_bytes >= 0
    assert listed["standby1"].active is True
    with pytest.raises(SlotError, match="already exists"):
        primary.create_slot("extra")
    primary.drop_slot("extra")
    assert "extra" not in {s.name for s in primary.slots()}
    with pytest.raises(SlotNotFound):
        primary.drop_slot("extra")
    with pytest.raises(SlotInUse, match="active"):
        primary.drop_slot("standby1")
    assert primary.slot("standby1") is not None
    with pytest.raises(InvalidName):
        primary.create_slot("Bad-Name")


def test_plan_prints_like_the_runbook_and_reapplies_as_a_noop(pgstream_cluster: Cluster) -> None:
    cluster = pgstream_cluster
    primary = cluster.primary
    hba = Path(primary.show("hba_file"))
    hba_before = hba.read_bytes()
    roles_before = primary.query("SELECT count(*) FROM pg_roles")
    started_before = primary.query("SELECT pg_postmaster_start_time()")
    plan = cluster.setup_plan()
    text = str(plan)
    assert text.index("ALTER SYSTEM SET") < text.index("host    replication    replicator") \
        < text.index("CREATE ROLE") < text.index("pg_create_physical_replication_slot")
    assert "PASSWORD '********'" in text
    assert cluster.auth.password is not None
    assert cluster.auth.password.reveal() not in text
    assert "already streams from primary" in text
    report = plan.apply()
    assert not report.changed, str(report)
    assert hba.read_bytes() == hba_before
    assert primary.query("SELECT count(*) FROM pg_roles") == roles_before
    assert primary.query("SELECT pg_postmaster_start_time()") == started_before
    assert cluster.status().standby("standby1").state == "streaming"


def test_three_standbys_all_stream_and_everything_is_removed(
        pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(3)
    assert [s.name for s in cluster.standbys] == ["standby1", "standby2", "standby3"]
    cluster.primary.execute("CREATE TABLE t (id int)")
    cluster.primary.execute("INSERT INTO t SELECT generate_series(1, %s)", (1000,))
    cluster.wait_for_catchup(timeout=30)
    for standby in cluster.standbys:
        assert standby.query("SELECT count(*) FROM t") == [(1000,)]
    status = cluster.status()
    assert [s.name for s in status.standbys] == ["standby1", "standby2", "standby3"]
    assert status.all_streaming
    base = cluster.base_dir
    assert base is not None
    pids = [n.service.pid() for n in cluster.nodes if n.service is not None]
    assert all(pid is not None for pid in pids)
    cluster.close()
    assert not base.exists()
    assert not any(_pid_alive(pid) for pid in pids if pid is not None)


def test_failure_halfway_cleans_up_and_names_the_step(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgstream.render import commands

    real = commands.pg_basebackup

    def broken(*args: object, **kwargs: object) -> tuple[str, ...]:
        return (*real(*args, **kwargs), "--no-such-option")  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "pg_basebackup", broken)
    with pytest.raises(PlanFailed) as caught:
        Cluster.sandbox(standbys=1, base_dir=empty_dir)
    message = str(caught.value)
    assert "pg_basebackup" in message and "already done" in message
    assert "rolled back" in message
    step = caught.value.step
    assert isinstance(step, Step)
    assert step.kind is StepKind.BASE_BACKUP
    assert list(empty_dir.iterdir()) == []


def test_keyboard_interrupt_during_setup_stops_and_removes_everything(empty_dir: Path) -> None:
    seen: list[int] = []

    def interrupt(event: object) -> None:
        if getattr(event, "event", "") == "done" and \
                getattr(getattr(event, "step", None), "kind", None) is StepKind.START:
            seen.append(1)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Cluster.sandbox(standbys=1, base_dir=empty_dir, progress=interrupt)
    assert seen
    assert list(empty_dir.iterdir()) == []


def test_secret_never_shows(pgstream_sandbox: MakeCluster) -> None:
    password = "pa'ss\"wo\\rd: x;--"
    cluster = pgstream_sandbox(1, password=password)
    assert cluster.status().standby("standby1").state == "streaming"
    assert password not in repr(cluster)
    assert password not in repr(cluster.auth)
    assert password not in str(cluster.setup_plan())
    base = cluster.base_dir
    assert base is not None
    passfile = base / "replication.pgpass"
    assert passfile.stat().st_mode & 0o777 == 0o600
    for log in base.glob("*.log"):
        assert password not in log.read_text(errors="replace")
    for config in (base / "standby1").glob("*.conf"):
        assert password not in config.read_text()


def test_sixteen_standbys_each_stream_through_their_own_slot(
        pgstream_sandbox: MakeCluster) -> None:
    """The documented maximum: one base backup, copied for 15 standbys (see
    :mod:`pgstream.ops.sandbox.setup`); every one a standby of the primary's system on its
    own port, streaming through its own slot, and nothing left once closed."""
    cluster = pgstream_sandbox(16)
    primary, standbys = cluster.primary, cluster.standbys
    assert [s.name for s in standbys] == [f"standby{i}" for i in range(1, 17)]
    system = primary.system_identifier()
    slots = {slot.name: slot for slot in primary.slots()}
    for standby in standbys:
        assert standby.in_recovery and standby.system_identifier() == system
        assert primary.streams_to(standby.application_name, standby.slot_name), standby.name
        receiver = standby.wal_receiver()
        assert receiver is not None and receiver[0] == "streaming" \
            and receiver[2] == standby.slot_name, (standby.name, receiver)
        assert slots[standby.slot_name].active, standby.name
        assert standby.show("cluster_name") == standby.name
    assert len({standby.show("port") for standby in standbys}) == 16
    assert int(primary.show("max_wal_senders")) >= 2 * 16  # sized for 16 clones at once
    primary.execute("CREATE TABLE sixteen (id int)")
    primary.execute("INSERT INTO sixteen SELECT generate_series(1, %s)", (100,))
    cluster.wait_for_catchup(timeout=30)
    assert all(s.query("SELECT count(*) FROM sixteen") == [(100,)] for s in standbys)
    status = cluster.status()
    assert status.all_streaming and len(status.standbys) == 16
    report = cluster.check()
    assert not report.errors and not report.warnings, str(report)
    base = cluster.base_dir
    assert base is not None
    pids = [n.service.pid() for n in cluster.nodes if n.service is not None]
    assert len(pids) == 17 and all(pid is not None for pid in pids)
    cluster.close()
    assert not base.exists()
    assert not any(_pid_alive(pid) for pid in pids if pid is not None)


def test_a_failed_copy_cleans_up_and_names_the_step(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pgstream.ops.sandbox import setup as sandbox_setup

    real = sandbox_setup.copy_argv

    def broken(source: Path, target: Path) -> tuple[str, ...]:
        return (*real(source, target), "--no-such-option")

    monkeypatch.setattr(sandbox_setup, "copy_argv", broken)
    with pytest.raises(PlanFailed) as caught:
        Cluster.sandbox(standbys=2, base_dir=empty_dir)
    step = caught.value.step
    assert isinstance(step, Step)
    assert step.kind is StepKind.BASE_BACKUP and step.node == "standby2"
    assert "copy standby1's fresh base backup" in str(caught.value)
    assert "rolled back" in str(caught.value)
    assert list(empty_dir.iterdir()) == []
