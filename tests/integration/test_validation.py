"""Issue 8's input, secret and status items on real servers: bad settings, unknown
synchronous standbys, passwords SASLprep changes, and a status that unreachable standbys do
not slow down. One sandbox (primary + 2 standbys) for the module: each test puts back what it
changed."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgstream import Cluster, InvalidInput, NodeUnreachable, PlanFailed
from pgstream.facts.passwords import verifier_matches
from pgstream.facts.saslprep import scram_password
from pgstream.hosts.binaries import Installation
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.observe import STATUS_CONNECT_TIMEOUT, cluster_status
from pgstream.ops.plan import Plan, StepKind
from pgstream.ops.setup import primary_setup_steps, settings_step
from pgstream.ops.sync import synchronous_plan
from pgstream.render.sync_spec import SyncSpec

# U+00AD and U+200B are mapped to nothing by SASLprep, U+00AA to "a" by NFKC.
PASSWORD = "pa\u00adss\u200bw\u00aard-\u00e9t\u00e9"


@pytest.fixture(scope="module")
def cluster(pgstream_server: Installation, pgstream_cache_dir: str) -> Iterator[Cluster]:
    with Cluster.sandbox(standbys=2, bindir=pgstream_server.bindir,
                         password=PASSWORD) as made:
        yield made


def _auto_conf(primary: Primary, name: str) -> str | None:
    rows = primary.query(
        "SELECT setting FROM pg_file_settings WHERE name = %s AND sourcefile = "
        "current_setting('data_directory') || '/postgresql.auto.conf' ORDER BY seqno DESC "
        "LIMIT 1", (name,))
    return str(rows[0][0]) if rows else None


def _streaming(cluster: Cluster) -> bool:
    status = cluster.status()
    return all(s.state == "streaming" and s.in_recovery for s in status.standbys)


# -- passwords


def test_saslprep_password_is_set_once_and_standbys_authenticate(cluster: Cluster) -> None:
    assert scram_password(PASSWORD) != PASSWORD  # SASLprep changes this one
    primary = cluster.primary
    auth = cluster.auth
    assert auth.password is not None
    (stored,) = primary.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                              (auth.user,))[0]
    assert verifier_matches(stored, PASSWORD, auth.user)
    steps = primary_setup_steps(primary, auth=auth, settings=cluster.settings or {},
                                hba_addresses=cluster.hba_addresses,
                                slots=[cluster.slot_for(s) for s in cluster.standbys])
    again = Plan("setup again", steps).apply()
    role = next(a for a in again.applied if a.step.kind is StepKind.ROLE)
    assert not role.result.changed, role.result.message
    assert not again.changed, str(again)
    assert primary.query("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                         (auth.user,)) == [(stored,)]
    # The standbys streamed through a SCRAM login with it; so does a fresh connection.
    wait_for(lambda: _streaming(cluster), timeout=30, what="the standbys to stream")
    host, port = cluster.address_of(primary)
    with psycopg.connect(host=host, port=port, user=auth.user, dbname="postgres",
                         password=PASSWORD, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_empty_password_is_refused_before_anything_is_made(empty_dir: Path) -> None:
    made: list[Cluster] = []
    try:
        with pytest.raises(InvalidInput, match="password"):
            made.append(Cluster.sandbox(standbys=0, base_dir=empty_dir, password=""))
    finally:
        for cluster in made:  # before the fix: a random password replaced the empty one
            cluster.close()
    assert list(empty_dir.iterdir()) == []


@pytest.mark.parametrize("password", ["s3cr3t\nB", "s3cr3t\r", "s3cr3t\tB", "\as3cr3t",
                                      "s3cr3t\x85"])
def test_password_with_control_characters_is_refused_up_front(empty_dir: Path,
                                                             password: str) -> None:
    with pytest.raises(InvalidInput, match="control character") as caught:
        Cluster.sandbox(standbys=0, base_dir=empty_dir, password=password)
    assert "s3cr3t" not in str(caught.value)
    assert list(empty_dir.iterdir()) == []


def test_unreachable_error_names_no_password() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused at once
    node = Node("gone", make_conninfo(host="127.0.0.1", port=port, user="rep",
                                      password="S3cr3t-pw", dbname="postgres"))
    with pytest.raises(NodeUnreachable) as caught:
        node.query("SELECT 1")
    assert "S3cr3t" not in str(caught.value) and "S3cr3t" not in repr(node)


# -- settings


def test_bad_settings_are_refused_while_the_plan_is_built(cluster: Cluster) -> None:
    primary = cluster.primary
    before = {n: _auto_conf(primary, n) for n in ("work_mem", "max_wal_senders")}
    bad = {"work_mem": "5000", "max_wal_senders": "lots", "wal_level": "bogus",
           "hot_standby": "maybe", "maintenance_work_mem": "64XB",
           "max_replication_slots": "999999999"}
    with pytest.raises(InvalidInput) as caught:
        settings_step(primary, bad, set(), set())
    text = str(caught.value)
    for name in ("max_wal_senders", "wal_level", "hot_standby", "maintenance_work_mem",
                 "max_replication_slots"):
        assert name in text
    assert "'lots'" in text and "minimal, replica, logical" in text
    assert "nothing was changed" in text
    assert {n: _auto_conf(primary, n) for n in before} == before


def test_values_compare_in_the_servers_units(cluster: Cluster) -> None:
    primary = cluster.primary
    current = primary.query("SELECT setting, unit FROM pg_settings WHERE name = 'work_mem'")
    assert current == [("4096", "kB")]  # the default, 4MB
    for value in ("4MB", "4096", "4096kB", "0x1000"):
        report = Plan("same", [settings_step(primary, {"work_mem": value}, set(), set())]).apply()
        assert not report.changed, (value, str(report))
    assert _auto_conf(primary, "work_mem") is None


def test_a_failed_settings_step_restores_what_it_wrote(cluster: Cluster) -> None:
    primary = cluster.primary
    # TimeZone is a string: the server's own check refuses the zone, after work_mem was set.
    bad = {"work_mem": "5000", "maintenance_work_mem": "70MB", "TimeZone": "Mars/Olympus_Mons"}
    with pytest.raises(PlanFailed, match="nothing had been changed") as caught:
        Plan("settings", [settings_step(primary, bad, set(), set())]).apply()
    assert "TimeZone" in str(caught.value)
    assert _auto_conf(primary, "work_mem") is None
    assert _auto_conf(primary, "maintenance_work_mem") is None
    # A value postgresql.auto.conf held before is written back, not reset.
    primary.execute("ALTER SYSTEM SET work_mem = '6000kB'")
    try:
        with pytest.raises(PlanFailed):
            Plan("settings", [settings_step(primary, bad, set(), set())]).apply()
        assert _auto_conf(primary, "work_mem") == "6000kB"
        assert _auto_conf(primary, "maintenance_work_mem") is None
    finally:
        primary.execute("ALTER SYSTEM RESET work_mem")


# -- synchronous replication


def test_unknown_synchronous_standby_is_refused(cluster: Cluster) -> None:
    with pytest.raises(InvalidInput, match=r"ghost is not a standby streaming from primary"):
        cluster.synchronous_plan(SyncSpec.first(1, ["ghost"]))
    with pytest.raises(InvalidInput, match="ghost"):
        cluster.synchronous_plan(SyncSpec.any(1, ["standby1", "ghost"]))
    with pytest.raises(InvalidInput, match="ghost"):
        cluster.synchronous_plan(SyncSpec.first(1, ["*"]), wait_for={"ghost": "sync"})
    cluster.synchronous_plan(SyncSpec.first(1, ["*"]))  # '*' is every standby: allowed
    cluster.synchronous_plan(SyncSpec.first(2, ["standby2", "standby1"]))
    assert cluster.primary.show("synchronous_standby_names") == ""


@pytest.mark.parametrize(("spec", "wait"), [
    (SyncSpec.first(1, ["ghost"]), {"ghost": "sync"}),
    # standby2 can be sync only when standby1 is gone: with both streaming, the wait fails.
    (SyncSpec.first(1, ["standby1", "standby2"]), {"standby2": "sync"}),
])
def test_a_failed_sync_wait_restores_the_old_value(cluster: Cluster, spec: SyncSpec,
                                                   wait: dict[str, str]) -> None:
    primary = cluster.primary
    assert primary.show("synchronous_standby_names") == ""
    # Both standbys stream first (an earlier test restarts one): else standby2 could really
    # become the sync standby, and the wait this test needs to fail would succeed.
    wait_for(lambda: cluster.status().all_streaming, timeout=60,
             what="both standbys to stream again")
    try:
        with pytest.raises(PlanFailed, match="wait for the standbys' sync_state") as caught:
            synchronous_plan(primary, spec, wait_for=wait, timeout=1).apply()
        assert "rolled back: [primary] synchronous replication settings" in str(caught.value)
        assert _auto_conf(primary, "synchronous_standby_names") is None
        assert primary.show("synchronous_standby_names") == ""
        with psycopg.connect(primary.conninfo, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '5s'")
            conn.execute("CREATE TABLE IF NOT EXISTS sync_probe (id int)")
            notices: list[str] = []
            conn.add_notice_handler(lambda diag: notices.append(str(diag.message_primary)))
            conn.execute("INSERT INTO sync_probe VALUES (1)")  # a commit that does not wait
            assert notices == []  # (a cancelled sync wait would leave a WARNING)
    finally:  # never leave the module's primary waiting for a standby
        primary.execute("ALTER SYSTEM RESET synchronous_standby_names")
        primary.execute("SELECT pg_reload_conf()")
        wait_for(lambda: primary.show("synchronous_standby_names") == "", timeout=10,
                 what="synchronous_standby_names to be empty again")


# -- status


def _blackhole() -> tuple[socket.socket, list[socket.socket]]:
    """A TCP port that drops connection attempts: a listener whose accept queue is full
    (Linux then ignores further SYNs, as a firewall's DROP would)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            filler.connect(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.2)
    return listener, fillers


def _restart(cluster: Cluster, *standbys: Standby) -> None:
    for standby in standbys:
        assert standby.service is not None
        if not standby.service.running():
            standby.service.start()
    wait_for(lambda: _streaming(cluster), timeout=60, what="the standbys to stream again")


def test_status_of_a_stopped_standby_reports_no_lag_and_its_slot(cluster: Cluster) -> None:
    primary, standby = cluster.primary, cluster.standbys[1]
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    try:
        primary.execute("CREATE TABLE IF NOT EXISTS grow AS SELECT generate_series(1, 1000) i")
        primary.execute("INSERT INTO grow SELECT generate_series(1, 5000)")
        started = time.monotonic()
        status = cluster.status()
        assert time.monotonic() - started < 2.0  # a refused connection costs nothing
        item = status.standby("standby2")
        assert item.state == "disconnected" and not item.reachable
        assert item.in_recovery is None
        assert item.replay_lag_bytes is None  # unknown: not what the slot holds
        assert item.slot_retained_bytes is not None and item.slot_retained_bytes > 0
        assert "slot held" in str(status)
        assert status.standby("standby1").reachable
    finally:
        _restart(cluster, standby)


def test_status_is_bounded_when_standbys_drop_packets(cluster: Cluster) -> None:
    listener, fillers = _blackhole()
    standbys = cluster.standbys
    saved = [s.conninfo for s in standbys]
    try:
        for standby in standbys:
            assert standby.service is not None
            standby.close()
            standby.service.stop()
            standby.conninfo = make_conninfo(standby.conninfo, host="127.0.0.1",
                                             port=listener.getsockname()[1])
        started = time.monotonic()
        status = cluster.status()
        took = time.monotonic() - started
        # Both standbys were waited for at once, each at most the status connect timeout.
        assert took < STATUS_CONNECT_TIMEOUT + 1.5, took
        assert [s.reachable for s in status.standbys] == [False, False]
        assert status.primary.name == "primary"
    finally:
        for standby, conninfo in zip(standbys, saved, strict=True):
            standby.close()
            standby.conninfo = conninfo
        for sock in [*fillers, listener]:
            sock.close()
        _restart(cluster, *standbys)


@pytest.mark.pg(">= 13")
def test_status_of_a_running_disconnected_standby_shows_its_own_lag(cluster: Cluster) -> None:
    primary, standby = cluster.primary, cluster.standbys[0]
    conninfo = standby.show("primary_conninfo")
    # Without primary_conninfo (reloadable from 13) the walreceiver stops; the server runs.
    standby.execute("ALTER SYSTEM SET primary_conninfo = ''")
    standby.execute("SELECT pg_reload_conf()")
    try:
        wait_for(lambda: cluster.status().standby("standby1").state == "disconnected",
                 timeout=30, what="standby1's walsender to go")
        primary.execute("CREATE TABLE IF NOT EXISTS grow2 AS SELECT generate_series(1, 5000) i")
        status = cluster.status()
        item = status.standby("standby1")
        replayed = standby.replay_lsn()  # it does not move while disconnected
        assert item.reachable and item.in_recovery is True and item.state == "disconnected"
        assert replayed is not None
        assert item.replay_lag_bytes == status.primary.lsn - replayed > 0
    finally:
        standby.execute(psycopg.sql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(
            psycopg.sql.Literal(conninfo)))
        standby.execute("SELECT pg_reload_conf()")
        wait_for(lambda: _streaming(cluster), timeout=60, what="standby1 to stream again")


def test_status_cuts_off_a_server_that_does_not_answer(cluster: Cluster) -> None:
    standby = cluster.standbys[0]
    (backend,) = standby.query("SELECT pg_backend_pid()")[0]
    os.kill(backend, signal.SIGSTOP)  # the backend serving pgstream's connection hangs
    try:
        started = time.monotonic()
        status = cluster_status(cluster, connect_timeout=2, answer_timeout=1)
        took = time.monotonic() - started
        assert took < 4.5, took  # connect bound + answer bound, and a little
        assert not status.standby("standby1").reachable
        assert status.standby("standby1").state == "streaming"  # as the primary sees it
        assert status.standby("standby2").reachable
    finally:
        os.kill(backend, signal.SIGCONT)
    assert cluster.status().standby("standby1").reachable  # a fresh connection next time
