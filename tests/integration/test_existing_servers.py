"""The seed's flow on servers that already exist: a primary not yet set up for replication,
a directory for the standby; the plan configures, restarts only when needed, clones, streams."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstream import (
    Cluster,
    PlanFailed,
    ProgressEvent,
    ReplicationAuth,
    StepKind,
    UnsafeDataDirectory,
)

from .conftest import Rig


def test_plan_sets_up_an_existing_primary_and_restarts_only_when_needed(rig: Rig) -> None:
    # wal_level=minimal with no walsenders: the primary cannot serve a standby yet.
    primary = rig.existing_primary("main", wal_level="minimal", max_wal_senders="0")
    standby, own = rig.future_standby("replica")
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "s3cret:pw"),
                      primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    plan = cluster.setup_plan()
    text = str(plan)
    for expected in ("ALTER SYSTEM SET \"wal_level\" = 'replica'",
                     "host    replication    repuser    127.0.0.1/32",
                     "CREATE ROLE \"repuser\" WITH LOGIN REPLICATION PASSWORD '********'",
                     "pg_create_physical_replication_slot",
                     "pg_basebackup", "-S replica", "standby.signal" if
                     primary.version.adapter.supports("standby_signal") else "recovery.conf"):
        assert expected in text, expected
    assert "s3cret" not in text

    events: list[tuple[str, str]] = []
    report = plan.apply(lambda e: events.append((e.event, e.step.title)))
    kinds = {a.step.kind: a.result for a in report.applied}
    assert kinds[StepKind.RESTART].changed  # wal_level and max_wal_senders need a restart
    assert "wal_level" in kinds[StepKind.RESTART].message
    assert any(event == "percent" for event, _ in events)  # the base backup's progress
    assert primary.show("wal_level") == "replica"
    primary.execute("CREATE TABLE seed (id int)")
    primary.execute("INSERT INTO seed VALUES (1), (2), (3)")
    cluster.wait_for_catchup()
    assert standby.query("SELECT count(*) FROM seed") == [(3,)]
    status = cluster.status().standby("replica")
    assert status.state == "streaming" and status.slot_name == "replica"

    # Second apply: nothing changes, nothing restarts.
    started = primary.query("SELECT pg_postmaster_start_time()")
    again = cluster.setup_plan().apply()
    assert not again.changed, str(again)
    assert primary.query("SELECT pg_postmaster_start_time()") == started


def test_existing_role_gets_the_password_once(rig: Rig) -> None:
    primary = rig.existing_primary("main")
    primary.execute("CREATE ROLE repuser LOGIN PASSWORD 'old'")
    cluster = Cluster(primary, [], auth=ReplicationAuth("repuser", "new pw"),
                      primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"])
    first = {a.step.kind: a.result for a in cluster.setup_plan().apply().applied}
    assert first[StepKind.ROLE].changed
    assert "LOGIN REPLICATION" in first[StepKind.ROLE].message
    assert "password" in first[StepKind.ROLE].message
    again = {a.step.kind: a.result for a in cluster.setup_plan().apply().applied}
    assert not again[StepKind.ROLE].changed  # the stored verifier already matches


def test_reloadable_change_reloads_without_restart(rig: Rig) -> None:
    primary = rig.existing_primary("main", wal_keep_size="0") \
        if _has_wal_keep_size(rig) else rig.existing_primary("main")
    cluster = Cluster(primary, [], primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"],
                      settings={"wal_keep_size" if _has_wal_keep_size(rig)
                                else "wal_keep_segments": "7"})
    started = primary.query("SELECT pg_postmaster_start_time()")
    report = cluster.setup_plan().apply()
    results = {a.step.kind: a.result for a in report.applied}
    assert results[StepKind.SETTING].changed
    assert results[StepKind.RELOAD].changed
    assert not results[StepKind.RESTART].changed
    assert primary.query("SELECT pg_postmaster_start_time()") == started


def test_replace_is_needed_to_wipe_an_old_data_directory(rig: Rig) -> None:
    primary = rig.existing_primary("main")
    standby, own = rig.future_standby("replica")
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "pw"),
                      primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    cluster.setup_plan().apply()
    assert standby.service is not None
    # A running standby that already streams: the plan only checks it.
    assert "already streams" in str(cluster.setup_plan())
    # Stop it and break its recovery config: now it is an old data directory.
    standby.close()
    standby.service.stop()
    signal = Path(str(standby.data_dir)) / "standby.signal"
    recovery = Path(str(standby.data_dir)) / "recovery.conf"
    (signal if signal.exists() else recovery).unlink()
    with pytest.raises(UnsafeDataDirectory, match="replace=True"):
        cluster.setup_plan()
    report = cluster.setup_plan(replace=True).apply()
    assert report.changed
    assert cluster.status().standby("replica").state == "streaming"


def test_running_server_on_the_target_is_refused_before_any_change(rig: Rig) -> None:
    primary = rig.existing_primary("main")
    other = rig.existing_primary("other")  # a running server where the standby would go
    standby, own = rig.future_standby("replica")
    standby.data_dir = other.data_dir
    cluster = Cluster(primary, [standby], primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    hba = Path(primary.show("hba_file")).read_bytes()
    with pytest.raises(UnsafeDataDirectory, match="running"):
        cluster.setup_plan()
    standby.data_dir = primary.data_dir
    with pytest.raises(UnsafeDataDirectory, match="primary's data directory"):
        cluster.setup_plan(replace=True)
    assert Path(primary.show("hba_file")).read_bytes() == hba
    assert primary.slots() == []
    assert other.ping()


def test_failed_clone_drops_the_slot_it_created(rig: Rig) -> None:
    primary = rig.existing_primary("main")
    standby, own = rig.future_standby("replica")
    # A wrong password: pg_basebackup fails to authenticate.
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "right"),
                      primary_address=("127.0.0.1", _port(primary.conninfo)),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    plan = cluster.setup_plan()

    def change_password_behind_our_back(event: ProgressEvent) -> None:
        if event.event == "done" and event.step.kind is StepKind.ROLE:
            primary.execute("ALTER ROLE repuser PASSWORD 'other'")

    with pytest.raises(PlanFailed) as caught:
        plan.apply(change_password_behind_our_back)
    message = str(caught.value)
    assert "pg_basebackup" in message and "password authentication failed" in message
    assert "rolled back" in message and "slot replica" in message
    assert "right" not in message.replace("rolled back", "")
    assert primary.slot("replica") is None
    # The plan created the directory: its rollback removes it again.
    assert standby.data_dir is not None and not Path(standby.data_dir).exists()


def _port(conninfo: str) -> int:
    from psycopg.conninfo import conninfo_to_dict

    return int(conninfo_to_dict(conninfo)["port"] or 5432)


def _has_wal_keep_size(rig: Rig) -> bool:
    return rig.server.version.adapter.has("setting", "wal_keep_size")
