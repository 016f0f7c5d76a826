"""Operations after setup on real servers: switchover, failover, rejoin, follow, cascading.

Scenarios after PostgreSQL's own src/test/recovery: 001_stream_rep (cascading), 004_timeline_
switch (a standby follows a promoted standby across the timeline switch)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import psycopg
import pytest

from pgstream import Cluster, InvalidInput, Primary, Standby
from pgstream.errors import PrimaryStillAlive, RejoinRefused, ServerMismatch, SwitchoverRefused
from pgstream.hosts import binaries
from pgstream.hosts.wait import wait_for
from pgstream.workload import acked_writer

MakeCluster = Callable[..., Cluster]


def _all_stream_from(cluster: Cluster, primary: str) -> bool:
    status = cluster.status()
    return status.primary.name == primary and all(
        s.state == "streaming" and s.in_recovery for s in status.standbys)


def test_switchover_loses_no_acknowledged_commit(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(2)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    cluster.wait_for_catchup()
    with acked_writer(cluster.primary.conninfo) as acked:
        wait_for(lambda: len(acked) > 200, timeout=30, what="writes")
        report = cluster.switchover("standby1")
    assert len(acked) > 200
    assert cluster.primary.name == "standby1"
    assert isinstance(cluster.primary, Primary)
    assert sorted(s.name for s in cluster.standbys) == ["primary", "standby2"]
    assert all(isinstance(s, Standby) for s in cluster.standbys)
    found = cluster.primary.query("SELECT count(*) FROM acked WHERE id = ANY(%s)", (acked,))
    assert found == [(len(acked),)], "an acknowledged commit was lost"
    cluster.primary.execute("INSERT INTO acked VALUES (-1)")  # the new primary takes writes
    cluster.wait_for_catchup()
    for standby in cluster.standbys:
        assert standby.query("SELECT count(*) FROM acked WHERE id = -1") == [(1,)]
    wait_for(lambda: _all_stream_from(cluster, "standby1"), timeout=30, what="streaming")
    status = cluster.status()
    assert status.primary.timeline == 2
    assert status.history[-1].operation == "switchover"
    assert {s.slot_name for s in status.standbys} == {"primary", "standby2"}
    assert cluster.standby("primary").slots() == []  # its old slots were dropped
    assert "switchover" in str(status)
    assert report.changed


def test_switchover_dry_run_and_refusals(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    plan = cluster.switchover_plan("standby1")
    text = str(plan)
    assert "[ok] target streams from primary" in text
    assert "[ok] target lag within bound" in text
    assert "shutdown checkpoint" in text and "promote standby1" in text
    with pytest.raises(InvalidInput, match="no standby named"):
        cluster.switchover_plan("nosuch")
    standby = cluster.standbys[0]
    pause = standby.version.adapter.function("pg_wal_replay_pause")
    standby.execute(psycopg.sql.SQL("SELECT {}()").format(psycopg.sql.Identifier(pause)))
    with pytest.raises(SwitchoverRefused, match=r"FAILED\] target replay not paused"):
        cluster.switchover_plan("standby1")
    standby.close()
    assert standby.service is not None
    standby.service.stop()
    with pytest.raises(SwitchoverRefused, match="target reachable"):
        cluster.switchover_plan("standby1")
    assert cluster.primary.ping() and not cluster.primary.in_recovery  # nothing changed


def _kill_primary(cluster: Cluster) -> None:
    service = cluster.primary.service
    assert service is not None
    pid = service.pid()
    assert pid is not None
    cluster.primary.close()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not service.running(), timeout=30, what="the primary to die")


def _has_rewind(cluster: Cluster) -> bool:
    version = cluster.primary.version
    return any(i.has("pg_rewind") and i.version.major == version.major
               for i in binaries.discover())


def test_failover_after_kill_then_rejoin(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(2)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    with pytest.raises(PrimaryStillAlive, match="still alive"):
        cluster.failover_plan()
    with acked_writer(cluster.primary.conninfo) as acked:
        wait_for(lambda: len(acked) > 100, timeout=30, what="writes")
        _kill_primary(cluster)
    plan = cluster.failover_plan()
    assert "received" in str(plan)
    plan.apply()
    new = cluster.primary
    assert new.name in ("standby1", "standby2")
    assert [n.name for n in cluster.failed] == ["primary"]
    new.execute("INSERT INTO acked VALUES (-1)")
    wait_for(lambda: _all_stream_from(cluster, new.name), timeout=30, what="streaming")
    assert "failover" in str(cluster.status())
    # The killed primary did not shut down cleanly: it needs pg_rewind of its own major.
    if _has_rewind(cluster):
        report = cluster.rejoin("primary")
        assert any(a.step.kind.value == "rewind" for a in report.applied)
        wait_for(lambda: _all_stream_from(cluster, new.name), timeout=30, what="streaming")
        assert cluster.failed == []
        cluster.wait_for_catchup()
        assert cluster.standby("primary").query(
            "SELECT count(*) FROM acked WHERE id = -1") == [(1,)]
    else:
        with pytest.raises(RejoinRefused, match="pg_rewind"):
            cluster.rejoin_plan("primary")


def test_rejoin_a_diverged_former_primary(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    cluster.primary.execute("CREATE TABLE t (id int)")
    cluster.wait_for_catchup()
    _kill_primary(cluster)
    cluster.failover()
    old = cluster.failed[0]
    assert old.service is not None
    old.service.start()  # it comes back as a primary of its own and takes a write: diverged
    old.execute("INSERT INTO t VALUES (42)")
    old.close()
    with pytest.raises(RejoinRefused, match="running"):
        cluster.rejoin_plan(old)
    old.service.stop()
    with pytest.raises(RejoinRefused, match="ahead"):
        cluster.rejoin_plan(old, rewind=False)
    if not _has_rewind(cluster):
        with pytest.raises(RejoinRefused, match="pg_rewind must be"):
            cluster.rejoin_plan(old)
        return
    cluster.rejoin(old)
    rejoined = cluster.standby(old.name)
    cluster.primary.execute("INSERT INTO t VALUES (7)")
    cluster.wait_for_catchup()
    assert rejoined.query("SELECT id FROM t ORDER BY id") == [(7,)]  # 42 was rewound away


def test_cascading_standby_and_status_tree(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    cascaded = cluster.add_standby("standby2", upstream="standby1")
    assert cascaded.upstream == "standby1"
    cluster.primary.execute("CREATE TABLE c AS SELECT generate_series(1, 100) AS id")
    cluster.wait_for_catchup()
    assert cascaded.query("SELECT count(*) FROM c") == [(100,)]
    assert cluster.standbys[0].slot("standby2") is not None  # its slot is on its upstream
    wait_for(lambda: cluster.status().standby("standby2").replay_lag_bytes == 0,
             timeout=30, what="the upstream to see the replay")
    status = cluster.status()
    item = status.standby("standby2")
    assert item.upstream == "standby1" and item.state == "streaming"
    assert item.slot_name == "standby2" and item.slot_active
    assert status.standby("standby1").upstream == "primary"
    assert "standby2  standby1" in str(status)


def test_cascaded_standby_follows_its_promoted_upstream(pgstream_sandbox: MakeCluster) -> None:
    """004_timeline_switch: standby2 streams from standby1; standby1 becomes the primary;
    standby2 carries on across the timeline switch, its walreceiver untouched."""
    cluster = pgstream_sandbox(1)
    cluster.add_standby("standby2", upstream="standby1")
    cluster.primary.execute("CREATE TABLE tl (id int)")
    cluster.wait_for_catchup()
    receiver = cluster.standby("standby2").wal_receiver()
    assert receiver is not None
    pid_before = cluster.standby("standby2").query("SELECT pid FROM pg_stat_wal_receiver")
    _kill_primary(cluster)
    cluster.failover("standby1")
    assert cluster.primary.name == "standby1"
    cluster.primary.execute("INSERT INTO tl VALUES (1)")
    cluster.wait_for_catchup()
    standby2 = cluster.standby("standby2")
    assert standby2.query("SELECT count(*) FROM tl") == [(1,)]
    assert standby2.timeline() == 2
    assert standby2.query("SELECT pid FROM pg_stat_wal_receiver") == pid_before


def test_follow_re_points_a_standby(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(2)
    report = cluster.follow("standby2", "standby1")
    assert cluster.standby("standby2").upstream == "standby1"
    kinds = [a.step.kind.value for a in report.applied]
    supports_reload = cluster.primary.version.adapter.supports("reload_primary_conninfo")
    assert ("reload" if supports_reload else "restart") in kinds
    assert cluster.primary.slot("standby2") is None  # its old slot on the primary is gone
    wait_for(lambda: cluster.status().standby("standby2").state == "streaming",
             timeout=30, what="streaming")
    recovery_files = [p.name for p in (cluster.standby("standby2").data_dir or
                                       cluster.base_dir or "").glob("*.conf")]  # type: ignore[union-attr]
    assert recovery_files
    with pytest.raises(InvalidInput, match="no node named"):
        cluster.follow_plan("standby2", "nosuch")
    with pytest.raises(InvalidInput, match="from itself"):
        cluster.follow_plan("standby2", "standby2")


def test_follow_refuses_another_system(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    other = pgstream_sandbox(0, template=False)  # initdb afresh: another system identifier
    with pytest.raises(ServerMismatch, match="not copies of the same cluster"):
        cluster.follow_plan("standby1", other.primary)
    assert cluster.status().standby("standby1").state == "streaming"


def test_forced_failover_fences_a_live_primary(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    old = cluster.primary
    plan = cluster.failover_plan(force=True)
    assert "fence primary" in str(plan)
    plan.apply()
    assert old.service is not None and not old.service.running()
    assert cluster.primary.name == "standby1" and not cluster.primary.in_recovery
    assert [n.name for n in cluster.failed] == ["primary"]
    assert cluster.status().history[-1].operation == "failover"


def test_promote_alone_detaches_the_standby(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(2)
    plan = cluster.promote_plan("standby2")
    assert "pg_is_in_recovery" in str(plan)
    plan.apply()
    assert [s.name for s in cluster.standbys] == ["standby1"]
    assert cluster.primary.slot("standby2") is None  # it would hold WAL forever
    entry = cluster.status().history[-1]
    assert entry.operation == "promote" and "timeline 2" in entry.detail
    assert cluster.status().standby("standby1").state == "streaming"
