"""``cluster.check()`` against real servers broken as a DBA would break them.

One module-scoped sandbox (a primary and three standbys, 1 MB WAL segments where initdb has
the option, walreceivers retrying every 200 ms); each test breaks one thing on one standby,
checks the finding (code, node, evidence), applies its fix plan where there is one (or
restores by hand), and leaves the cluster healthy for the next. A last test builds separate
clusters of odd servers: a foreign server declared a standby, a primary with wal_level
minimal and no standbys, unreachable and silent nodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import pq, sql
from psycopg.conninfo import make_conninfo
from psycopg.pq.abc import PGconn

from pgstream.cli import main
from pgstream.cluster import Cluster
from pgstream.hosts.binaries import Installation
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.check import CheckReport, Finding, Thresholds
from pgstream.ops.check.fixes import has_rewind
from pgstream.ops.recovery import RecoveryConfig, passfile_for
from pgstream.ops.sandbox.servers import free_port
from pgstream.render.config import merge_settings

from .conftest import Rig


@pytest.fixture(scope="module")
def cluster(pgstream_server: Installation) -> Iterator[Cluster]:
    small = pgstream_server.version.adapter.has("option", "--wal-segsize", "initdb")
    with Cluster.sandbox(standbys=3, bindir=pgstream_server.bindir,
                         settings={"wal_retrieve_retry_interval": "200ms"},
                         wal_segsize_mb=1 if small else None) as made:
        yield made


def _until(cluster: Cluster, want: Callable[[CheckReport], bool], what: str,
           timeout: float = 30.0, thresholds: Thresholds | None = None) -> CheckReport:
    deadline = time.monotonic() + timeout
    while True:
        report = cluster.check(thresholds=thresholds)
        if want(report):
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}; last report:\n{report}")
        time.sleep(0.2)


def _finding(cluster: Cluster, code: str, node: str) -> Finding:
    report = _until(cluster, lambda r: r.first(code, node) is not None, f"{code} on {node}")
    found = report.first(code, node)
    assert found is not None
    return found


def _healthy(cluster: Cluster) -> CheckReport:
    return _until(cluster, lambda r: r.ok, "a healthy cluster")


def _kick(cluster: Cluster, standby: str) -> None:
    """End the walsender of ``standby`` on the primary: its walreceiver connects anew."""
    cluster.primary.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication "
                            "WHERE application_name = %s", (standby,))


def _write_wal(node: Node, rows: int) -> None:
    node.execute("CREATE TABLE IF NOT EXISTS check_fill (id int, pad text)")
    node.execute("INSERT INTO check_fill SELECT g, repeat('x', 100) FROM generate_series(1, %s) g",
                 (rows,))


def _point_at(cluster: Cluster, standby: Standby, address: tuple[str, int], *,
              slot: str | None = "", start: bool = True) -> None:
    """Rewrite the standby's recovery configuration to stream from ``address`` through
    ``slot`` (default its own; None: no slot), as a DBA editing primary_conninfo would: it is
    stopped, and started again unless ``start`` is false."""
    assert standby.service is not None and standby.data_dir is not None
    version = standby.version
    path, named = passfile_for(version, standby.data_dir, standby.os_user,
                               cluster.passfile_of(standby))
    config = RecoveryConfig.build(version, upstream=address, user=cluster.auth.user,
                                  application_name=standby.name,
                                  slot=standby.name if slot == "" else slot,
                                  passfile=path if named else None)
    standby.close()
    standby.service.stop()
    config.write(standby.host, standby.data_dir, standby.os_user)
    auto = standby.data_dir / "postgresql.auto.conf"
    if slot is None:  # from 12 a setting: remove it (recovery.conf before is written whole)
        standby.host.write_text(auto, merge_settings(auto.read_text(), {
            "primary_slot_name": None}), owner=standby.os_user)
    if start:
        standby.service.start()


# -- healthy ------------------------------------------------------------------------------------

def test_healthy_cluster_has_no_error_or_warning(cluster: Cluster) -> None:
    report = _healthy(cluster)
    assert report.nodes == ("primary", "standby1", "standby2", "standby3")
    assert "no findings" in str(report)
    assert json.loads(json.dumps(report.to_dict()))["ok"] is True
    status = cluster.status()
    assert all(s.problem is None and s.replay_paused is False for s in status.standbys)


def test_cli_check_json_and_exit_code(cluster: Cluster,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "--primary", cluster.primary.conninfo]
    for standby in cluster.standbys:
        argv += ["--standby", f"{standby.name}={standby.conninfo}"]
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    primary = cluster.primary
    primary.execute("ALTER SYSTEM SET synchronous_standby_names = 'ghost'")
    primary.execute("SELECT pg_reload_conf()")
    try:
        _finding(cluster, "sync_standby_missing", "primary")
        assert main(argv) == 1
        assert "sync_standby_missing" in capsys.readouterr().out
    finally:
        primary.execute("ALTER SYSTEM RESET synchronous_standby_names")
        primary.execute("SELECT pg_reload_conf()")
    assert main(["check", "--primary", primary.conninfo, "--standby", "nonsense"]) == 2


# -- connections a standby makes ----------------------------------------------------------------

@contextlib.contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    """The log file unreadable for the server user and for us (root: owned by root, 0000)."""
    info = path.stat()
    os.chmod(path, 0)
    if os.geteuid() == 0:
        os.chown(path, 0, 0)
    try:
        yield
    finally:
        if os.geteuid() == 0:
            os.chown(path, info.st_uid, info.st_gid)
        os.chmod(path, info.st_mode & 0o777)


def test_hba_missing_with_fix_plan_and_unreadable_log(cluster: Cluster) -> None:
    primary = cluster.primary
    hba = Path(primary.show("hba_file"))
    original = hba.read_text()
    kept = [line for line in original.splitlines()
            if "replication" not in line or line.lstrip().startswith("#")]
    hba.write_text("".join(f"{line}\n" for line in kept))
    primary.execute("SELECT pg_reload_conf()")
    try:
        _kick(cluster, "standby1")
        found = _finding(cluster, "hba_missing", "standby1")
        assert found.severity.value == "error" and found.source.startswith("log")
        assert "no pg_hba.conf entry for replication connection" in found.evidence
        status = cluster.status()
        assert status.standby("standby1").problem == "hba_missing"
        assert "hba_missing" in str(status)
        service = cluster.standby("standby1").service
        assert service is not None and service.log_file is not None
        with _unreadable(service.log_file):
            blind = cluster.check()
            assert blind.first("log_unreadable", "standby1") is not None
            assert blind.first("not_streaming", "standby1") is not None
        assert found.plan is not None and "host    replication    replicator" in str(found.plan)
        found.plan.apply()
        _healthy(cluster)
    finally:
        hba.write_text(original)
        primary.execute("SELECT pg_reload_conf()")
    _healthy(cluster)


def test_auth_failed_wrong_password_in_passfile(cluster: Cluster) -> None:
    passfile = cluster.passfile_of(cluster.standby("standby1"))
    assert passfile is not None
    original = passfile.read_text()
    passfile.write_text("".join(line.rsplit(":", 1)[0] + ":not-the-password\n"
                                for line in original.splitlines() if line))
    try:
        _kick(cluster, "standby1")
        found = _finding(cluster, "auth_failed", "standby1")
        assert "password authentication failed" in found.evidence
        assert "not-the-password" not in str(found.plan) and "********" in str(found.plan)
        assert found.plan is not None
        found.plan.apply()
        _healthy(cluster)
    finally:
        if "not-the-password" in passfile.read_text():
            passfile.write_text(original)
    _healthy(cluster)


def test_causes_from_the_logging_collectors_file(pgstream_server: Installation) -> None:
    """logging_collector=on: the service's own log only says "redirecting log output", the
    causes are in the collector's file, which check() finds (pg_current_logfile(), 10+)."""
    with Cluster.sandbox(standbys=1, bindir=pgstream_server.bindir,
                         settings={"logging_collector": "on",
                                   "wal_retrieve_retry_interval": "200ms"}) as made:
        primary, standby = made.primary, made.standby("standby1")
        assert standby.show("logging_collector") == "on"
        hba = Path(primary.show("hba_file"))
        original = hba.read_text()
        hba.write_text("".join(f"{line}\n" for line in original.splitlines()
                               if "replication" not in line or line.lstrip().startswith("#")))
        primary.execute("SELECT pg_reload_conf()")
        _kick(made, "standby1")
        found = _finding(made, "hba_missing", "standby1")
        assert "no pg_hba.conf entry for replication connection" in found.evidence
        service = standby.service
        assert service is not None and service.log_file is not None
        assert "no pg_hba.conf entry" not in service.log_file.read_text()
        hba.write_text(original)
        primary.execute("SELECT pg_reload_conf()")
        _healthy(made)

        passfile = made.passfile_of(standby)
        assert passfile is not None
        kept = passfile.read_text()
        passfile.write_text("".join(line.rsplit(":", 1)[0] + ":not-the-password\n"
                                    for line in kept.splitlines() if line))
        _kick(made, "standby1")
        wrong = _finding(made, "auth_failed", "standby1")
        assert "password authentication failed" in wrong.evidence
        passfile.write_text(kept)
        _healthy(made)


def test_role_missing_replication(cluster: Cluster) -> None:
    primary = cluster.primary
    primary.execute("ALTER ROLE replicator NOREPLICATION")
    try:
        _kick(cluster, "standby1")
        found = _finding(cluster, "role_missing", "standby1")
        assert "WAL sender" in found.evidence or "walsender" in found.evidence
        assert found.plan is not None
        found.plan.apply()
        _healthy(cluster)
    finally:
        primary.execute("ALTER ROLE replicator REPLICATION")
    _healthy(cluster)


def test_role_missing_when_the_role_is_dropped(cluster: Cluster) -> None:
    """A dropped role logs only "password authentication failed" (SCRAM); pg_roles tells."""
    primary = cluster.primary
    primary.execute("DROP ROLE replicator")
    try:
        _kick(cluster, "standby1")
        found = _finding(cluster, "role_missing", "standby1")
        assert "no such role" in found.evidence
        assert found.plan is not None
        found.plan.apply()
        _healthy(cluster)
    finally:
        password = cluster.auth.password
        if password is not None and not primary.query(
                "SELECT 1 FROM pg_roles WHERE rolname = 'replicator'"):
            primary.execute("CREATE ROLE replicator REPLICATION LOGIN PASSWORD %s",
                            (password.reveal(),))
    _healthy(cluster)


def test_upstream_unreachable_names_host_and_port(cluster: Cluster) -> None:
    standby = cluster.standby("standby1")
    closed = free_port(set())
    _point_at(cluster, standby, ("127.0.0.1", closed))
    try:
        found = _finding(cluster, "upstream_unreachable", "standby1")
        assert f"127.0.0.1:{closed}" in found.summary
        assert found.severity.value == "error"
    finally:
        _point_at(cluster, standby, cluster.address_of(cluster.primary))
    _healthy(cluster)


# -- slots and walsenders on the primary --------------------------------------------------------

def test_slot_missing_and_no_room_for_it(cluster: Cluster) -> None:
    primary = cluster.primary
    standby = cluster.standby("standby1")
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    primary.drop_slot("standby1")
    limit = int(primary.show("max_replication_slots"))
    fillers = [f"filler{i}" for i in range(limit - len(primary.slots()))]
    try:
        for name in fillers:
            primary.create_slot(name)
        standby.service.start()
        found = _finding(cluster, "slot_missing", "standby1")
        assert 'replication slot "standby1" does not exist' in found.evidence
        report = cluster.check()
        full = report.first("max_replication_slots", "primary")
        assert full is not None and full.severity.value == "error"
        assert {f.slot for f in report.by_code("slot_inactive_retaining")} == set(fillers)
        for name in fillers:
            primary.drop_slot(name)
        fillers.clear()
        assert found.plan is not None and "pg_create_physical_replication_slot" in str(
            found.plan)
        found.plan.apply()
    finally:
        for name in fillers:
            if primary.slot(name) is not None:
                primary.drop_slot(name)
        primary.create_slot("standby1", exist_ok=True)
    _healthy(cluster)


def _replication_connection(cluster: Cluster) -> PGconn:
    host, port = cluster.address_of(cluster.primary)
    password = cluster.auth.password
    assert password is not None
    conn = pq.PGconn.connect(make_conninfo(
        "", host=host, port=port, user=cluster.auth.user, password=password.reveal(),
        replication="true", dbname="replication").encode())
    return conn


def test_max_wal_senders_exhausted(cluster: Cluster) -> None:
    standby = cluster.standby("standby1")
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    held: list[PGconn] = []
    try:
        for _ in range(int(cluster.primary.show("max_wal_senders")) + 1):
            conn = _replication_connection(cluster)
            if conn.status != pq.ConnStatus.OK:
                assert b"max_wal_senders" in conn.error_message
                conn.finish()
                break
            held.append(conn)
        standby.service.start()
        found = _finding(cluster, "max_wal_senders", "standby1")
        assert "exceeds" in found.evidence and "max_wal_senders" in found.evidence
        on_primary = cluster.check().first("max_wal_senders", "primary")
        assert on_primary is not None and on_primary.severity.value == "error"
    finally:
        for conn in held:
            conn.finish()
    _healthy(cluster)


def test_slot_inactive_retaining_dropped_by_its_plan(cluster: Cluster) -> None:
    primary = cluster.primary
    primary.create_slot("forgotten")
    try:
        _write_wal(primary, 2000)
        found = _finding(cluster, "slot_inactive_retaining", "primary")
        assert found.slot == "forgotten" and found.severity.value == "warning"
        assert "no standby of the cluster uses it" in found.summary
        assert found.plan is not None
        found.plan.apply()
        assert primary.slot("forgotten") is None
    finally:
        if primary.slot("forgotten") is not None:
            primary.drop_slot("forgotten")
    _healthy(cluster)


def test_sync_standby_missing_error_and_warning(cluster: Cluster) -> None:
    primary = cluster.primary
    try:
        primary.execute("ALTER SYSTEM SET synchronous_standby_names = 'ghost'")
        primary.execute("SELECT pg_reload_conf()")
        found = _finding(cluster, "sync_standby_missing", "primary")
        assert found.severity.value == "error" and "ghost" in found.summary
        primary.execute("ALTER SYSTEM SET synchronous_standby_names = 'standby2, ghost'")
        primary.execute("SELECT pg_reload_conf()")
        report = _until(cluster, lambda r: any(
            f.severity.value == "warning" for f in r.by_code("sync_standby_missing")),
            "the warning form")
        assert not report.errors
    finally:
        primary.execute("ALTER SYSTEM RESET synchronous_standby_names")
        primary.execute("SELECT pg_reload_conf()")
    _healthy(cluster)


# -- replay on a standby ------------------------------------------------------------------------

def test_replay_paused_and_lag_high(cluster: Cluster) -> None:
    standby = cluster.standby("standby2")
    fn = standby.version.adapter.function
    standby.execute(sql.SQL("SELECT {}()").format(sql.Identifier(fn("pg_wal_replay_pause"))))
    try:
        _write_wal(cluster.primary, 1000)
        tight = Thresholds(lag_bytes=1, lag_seconds=None)
        report = _until(cluster, lambda r: r.first("lag_high", "standby2") is not None,
                        "lag_high", thresholds=tight)
        paused = report.first("replay_paused", "standby2")
        assert paused is not None and paused.plan is not None
        lagging = report.first("lag_high", "standby2")
        assert lagging is not None and "B behind" in lagging.summary
        status = cluster.status()
        assert status.standby("standby2").replay_paused is True
        assert status.standby("standby2").problem == "replay_paused"
        assert "paused" in str(status)
        paused.plan.apply()
    finally:
        standby.execute(sql.SQL("SELECT {}()").format(
            sql.Identifier(fn("pg_wal_replay_resume"))))
    _healthy(cluster)


def test_hot_standby_off(cluster: Cluster) -> None:
    standby = cluster.standby("standby2")
    assert standby.service is not None and standby.data_dir is not None
    auto = standby.data_dir / "postgresql.auto.conf"
    standby.close()
    standby.service.stop()
    standby.host.write_text(auto, merge_settings(auto.read_text(), {"hot_standby": "off"}),
                            owner=standby.os_user)
    standby.service.start()
    try:
        found = _finding(cluster, "hot_standby_off", "standby2")
        assert found.severity.value == "warning"
    finally:
        standby.close()
        standby.service.stop()
        standby.host.write_text(auto, merge_settings(auto.read_text(), {"hot_standby": "on"}),
                                owner=standby.os_user)
        standby.service.start()
    _healthy(cluster)


# -- WAL the standby needs is gone --------------------------------------------------------------

def _remove_old_wal(primary: Primary) -> None:
    switch = sql.Identifier(primary.version.adapter.function("pg_switch_wal"))
    for _ in range(8):
        _write_wal(primary, 8000)
        primary.execute(sql.SQL("SELECT {}()").format(switch))
    primary.execute("CHECKPOINT")


@pytest.mark.pg(">= 11")  # 1 MB WAL segments (initdb --wal-segsize) keep this test small
def test_wal_removed_then_reclone_by_its_plan(cluster: Cluster) -> None:
    primary = cluster.primary
    standby = cluster.standby("standby3")
    assert standby.service is not None
    _point_at(cluster, standby, cluster.address_of(primary), slot=None, start=False)
    primary.drop_slot("standby3")
    _remove_old_wal(primary)
    standby.service.start()
    found = _finding(cluster, "wal_removed", "standby3")
    assert "has already been removed" in found.evidence
    assert found.plan is not None and "pg_basebackup" in str(found.plan)
    found.plan.apply()
    _healthy(cluster)


@pytest.mark.pg(">= 13")  # max_slot_wal_keep_size, wal_status
def test_slot_wal_lost_then_reclone(cluster: Cluster) -> None:
    primary = cluster.primary
    standby = cluster.standby("standby3")
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    primary.execute("ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'")
    primary.execute("SELECT pg_reload_conf()")
    try:
        _remove_old_wal(primary)
        report = _until(cluster, lambda r: r.first("slot_wal_lost", "primary") is not None,
                        "slot_wal_lost")
        lost = report.first("slot_wal_lost", "primary")
        assert lost is not None and lost.slot == "standby3" and "lost" in lost.evidence
        assert report.first("node_unreachable", "standby3") is not None
    finally:
        primary.execute("ALTER SYSTEM RESET max_slot_wal_keep_size")
        primary.execute("SELECT pg_reload_conf()")
    standby.service.start()
    report = _until(cluster, lambda r: bool({"wal_removed", "slot_wal_lost"} & {
        f.code for f in r.for_node("standby3")}), "standby3's own finding")
    mine = next(f for f in report.for_node("standby3")
                if f.code in ("wal_removed", "slot_wal_lost"))
    assert mine.plan is not None
    mine.plan.apply()
    _healthy(cluster)


# -- a standby that became a primary ------------------------------------------------------------

def test_promoted_standby_then_timeline_diverged_rejoined_by_its_plan(cluster: Cluster) -> None:
    standby = cluster.standby("standby2")
    standby.promote()
    standby.execute("CREATE TABLE check_split_brain (id int)")
    found = _finding(cluster, "standby_not_in_recovery", "standby2")
    assert found.severity.value == "error"
    _point_at(cluster, standby, cluster.address_of(cluster.primary))
    diverged = _finding(cluster, "timeline_diverged", "standby2")
    assert "timeline" in diverged.evidence
    # pg_rewind of the standby's major where there is one, else a new clone
    assert diverged.plan is not None
    assert ("pg_rewind" if has_rewind(standby) else "pg_basebackup") in str(diverged.plan)
    diverged.plan.apply()
    _healthy(cluster)


# -- odd servers: foreign, minimal, unreachable, silent -----------------------------------------

def test_foreign_minimal_unreachable_and_silent_nodes(cluster: Cluster, rig: Rig) -> None:
    lone = rig.existing_primary("lone", wal_level="minimal", max_wal_senders="0")
    report = Cluster(lone, []).check()
    assert {"wal_level_too_low", "no_standbys", "max_wal_senders"} <= report.codes
    assert report.first("wal_level_too_low", "lone") is not None

    foreign = Standby("foreign", lone.conninfo)
    mixed = Cluster(cluster.primary, [*cluster.standbys, foreign],
                    auth=cluster.auth).check()
    assert mixed.first("standby_not_in_recovery", "foreign") is not None
    assert mixed.first("system_id_mismatch", "foreign") is not None

    closed = free_port(set())
    down = Standby("down", make_conninfo("", host="127.0.0.1", port=closed, user="postgres",
                                         dbname="postgres"))
    started = time.monotonic()
    with_down = Cluster(cluster.primary, [*cluster.standbys, down], auth=cluster.auth).check()
    assert with_down.first("node_unreachable", "down") is not None
    nowhere = Cluster(Primary("nowhere", down.conninfo), []).check()
    assert nowhere.first("node_unreachable", "nowhere") is not None
    assert time.monotonic() - started < 10

    with socket.socket() as silent:  # accepts TCP, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        mute = Standby("mute", make_conninfo("", host="127.0.0.1", port=port, user="postgres",
                                             dbname="postgres"))
        started = time.monotonic()
        quiet = Cluster(cluster.primary, [*cluster.standbys, mute],
                        auth=cluster.auth).check(timeout=1.0)
        assert time.monotonic() - started < 3
        finding = quiet.first("node_unreachable", "mute")
        assert finding is not None and "no answer within 1 s" in finding.evidence
        assert quiet.first("node_unreachable", "standby1") is None
