"""What differs by major, shown on real servers. Each test declares the versions it is for
with the ``pg`` marker; the matrix (``nox -s matrix``) runs this file against 10 to 18."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgstream import BinaryNotFound, Cluster, NotAStandby, ServerVersion
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.service import PgCtlService
from pgstream.hosts.wait import wait_for
from pgstream.render.config import parse_settings


def _recovery_settings(cluster: Cluster) -> dict[str, str]:
    data = Path(str(cluster.standbys[0].data_dir))
    text = "".join(p.read_text() for p in (data / "postgresql.auto.conf", data / "recovery.conf")
                   if p.exists())
    return parse_settings(text)


@pytest.mark.pg("< 12")
def test_recovery_conf_before_12(pgstream_cluster: Cluster) -> None:
    data = Path(str(pgstream_cluster.standbys[0].data_dir))
    assert not (data / "standby.signal").exists()
    recovery = parse_settings((data / "recovery.conf").read_text())
    assert recovery["standby_mode"] == "on"
    assert recovery["primary_slot_name"] == "standby1"
    assert recovery["recovery_target_timeline"] == "latest"
    assert "application_name=standby1" in recovery["primary_conninfo"]


@pytest.mark.pg(">= 12")
def test_standby_signal_from_12(pgstream_cluster: Cluster) -> None:
    data = Path(str(pgstream_cluster.standbys[0].data_dir))
    assert (data / "standby.signal").read_text() == ""
    assert not (data / "recovery.conf").exists()
    settings = parse_settings((data / "postgresql.auto.conf").read_text())
    assert "standby_mode" not in settings
    assert settings["primary_slot_name"] == "standby1"
    standby = pgstream_cluster.standbys[0]
    assert standby.show("primary_slot_name") == "standby1"


@pytest.mark.pg("< 13")
def test_wal_keep_segments_before_13(pgstream_cluster: Cluster) -> None:
    assert pgstream_cluster.primary.show("wal_keep_segments") == "4"


@pytest.mark.pg(">= 13")
def test_wal_keep_size_from_13(pgstream_cluster: Cluster) -> None:
    assert pgstream_cluster.primary.show("wal_keep_size") == "64MB"  # 4 segments x 16 MB


@pytest.mark.pg(">= 13")
def test_slot_wal_status_from_13(pgstream_cluster: Cluster) -> None:
    slot = pgstream_cluster.primary.slot("standby1")
    assert slot is not None and slot.wal_status == "reserved"
    assert slot.safe_wal_size is None  # max_slot_wal_keep_size = -1: unlimited
    assert pgstream_cluster.status().standby("standby1").slot_wal_status == "reserved"


@pytest.mark.pg("< 13")
def test_no_wal_status_before_13(pgstream_cluster: Cluster) -> None:
    slot = pgstream_cluster.primary.slot("standby1")
    assert slot is not None and slot.wal_status is None and slot.safe_wal_size is None
    assert pgstream_cluster.status().standby("standby1").slot_wal_status is None


@pytest.mark.pg(">= 10")
def test_lag_in_bytes_and_time(pgstream_cluster: Cluster) -> None:
    cluster = pgstream_cluster
    cluster.primary.execute("CREATE TABLE IF NOT EXISTS lagged (id int)")
    cluster.primary.execute("INSERT INTO lagged SELECT generate_series(1, 1000)")
    cluster.wait_for_catchup()
    # The primary learns the standby's replay position from its next status reply.
    wait_for(lambda: cluster.status().standby("standby1").replay_lag_bytes == 0, timeout=30,
             what="the primary to see the replay")
    item = cluster.status().standby("standby1")
    # replay_lag is measured after each reply; it becomes NULL again once idle for a while.
    assert item.replay_lag is None or isinstance(item.replay_lag, dt.timedelta)
    assert item.sync_priority == 0


def _newer_client(server: Installation) -> Installation | None:
    newer = [i for i in binaries.discover() if i.has("pg_basebackup")
             and i.version.major_num > server.version.major_num]
    return max(newer, key=lambda i: i.version.num) if newer else None


@pytest.mark.pg("< 18")
def test_older_server_streams_with_newer_client_tools(
        pgstream_server: Installation, pgstream_sandbox: object) -> None:
    """The channel_binding / sslnegotiation trap: a newer pg_basebackup's -R output breaks an
    older standby; pgstream writes primary_conninfo for the standby's own libpq."""
    client = _newer_client(pgstream_server)
    if client is None:
        pytest.skip("no client tools newer than the server are installed")
    cluster = pgstream_sandbox(1, client_bindir=client.bindir)  # type: ignore[operator]
    assert cluster.status().standby("standby1").state == "streaming"
    keys = set(conninfo_to_dict(_recovery_settings(cluster)["primary_conninfo"]))
    version = pgstream_server.version
    assert all(version.adapter.has("conninfo", k) for k in keys), keys


def test_client_tools_older_than_the_server_are_refused(
        monkeypatch: pytest.MonkeyPatch, pgstream_server: Installation) -> None:
    with_tool = [i for i in binaries.discover() if i.has("pg_basebackup")]
    newest = max(with_tool, key=lambda i: i.version.num)
    later = ServerVersion.parse(newest.version.major_num + 10000)
    monkeypatch.setattr(binaries, "discover", lambda: with_tool)
    with pytest.raises(BinaryNotFound, match="older than the server"):
        binaries.find_client("pg_basebackup", later)


def test_explicit_older_client_is_refused_before_anything_is_made(
        pgstream_server: Installation, tmp_path: Path) -> None:
    older = [i for i in binaries.discover() if i.has("pg_basebackup")
             and i.version.major_num < pgstream_server.version.major_num]
    if not older:
        pytest.skip("no client tools older than the server are installed")
    with pytest.raises(BinaryNotFound, match="cannot clone"):
        Cluster.sandbox(standbys=1, client_bindir=older[0].bindir, base_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def _promote_and_check(cluster: Cluster) -> None:
    primary, standby = cluster.primary, cluster.standbys[0]
    primary.execute("CREATE TABLE promoted (id int)")
    primary.execute("INSERT INTO promoted VALUES (1)")
    cluster.wait_for_catchup()
    assert standby.promote(timeout=60) == 2
    assert standby.in_recovery is False
    standby.execute("INSERT INTO promoted VALUES (2)")
    assert standby.query("SELECT count(*) FROM promoted") == [(2,)]
    with pytest.raises(NotAStandby):
        standby.promote()


@pytest.mark.pg(">= 12")
def test_promote_with_pg_promote_from_12(pgstream_sandbox: object,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = pgstream_sandbox(1)  # type: ignore[operator]
    used: list[str] = []
    monkeypatch.setattr(PgCtlService, "promote",
                        lambda self, wait=True: used.append("pg_ctl"))
    _promote_and_check(cluster)
    assert used == []


@pytest.mark.pg("< 12")
def test_promote_with_pg_ctl_before_12(pgstream_sandbox: object,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = pgstream_sandbox(1)  # type: ignore[operator]
    used: list[str] = []
    real = PgCtlService.promote

    def spy(self: PgCtlService) -> None:
        used.append("pg_ctl")
        real(self)

    monkeypatch.setattr(PgCtlService, "promote", spy)
    _promote_and_check(cluster)
    assert used == ["pg_ctl"]
