"""Bad input gets a clear PgStreamError before anything changes, and loses nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pgstream import (
    BinaryNotFound,
    Cluster,
    InvalidAddress,
    InvalidInput,
    InvalidName,
    PgStreamError,
    ReplicationAuth,
    ServerVersion,
    UnsafeDataDirectory,
    UnsupportedVersion,
)
from pgstream.hosts.host import server_user

from .conftest import Rig

INJECTIONS = ["x'); DROP TABLE t; --", 'a"b', "Robert'); DROP ROLE postgres;--", "a b",
              "UPPER", "", "x" * 64, "slot\n1", "é"]


def _state(rig: Rig, cluster: Cluster) -> tuple[bytes, list[tuple[object, ...]], object]:
    primary = cluster.primary
    return (Path(primary.show("hba_file")).read_bytes(),
            primary.query("SELECT rolname FROM pg_roles ORDER BY 1"),
            primary.slots())


@pytest.mark.parametrize("name", INJECTIONS)
def test_bad_slot_names_are_refused(rig: Rig, name: str) -> None:
    primary = rig.existing_primary()
    with pytest.raises(InvalidName, match="slot name"):
        primary.create_slot(name)
    with pytest.raises(InvalidName):
        primary.drop_slot(name)
    assert primary.slots() == []


@pytest.mark.parametrize("name", INJECTIONS)
def test_bad_role_names_are_refused_before_any_change(name: str) -> None:
    with pytest.raises(InvalidName, match="role name"):
        ReplicationAuth(name, "pw")


def test_injection_in_password_is_just_a_password(pgstream_sandbox: object) -> None:
    make = pgstream_sandbox
    password = "'; DROP TABLE canary; -- \\ \" :x"
    cluster = make(1, password=password)  # type: ignore[operator]
    cluster.primary.execute("CREATE TABLE canary (id int)")
    cluster.wait_for_catchup()
    assert cluster.primary.query("SELECT count(*) FROM canary") == [(0,)]
    assert cluster.status().standby("standby1").state == "streaming"


@pytest.mark.parametrize("address", ["10.0.0.300", "192.168.1.1/24", "not-an-ip", "", "::g"])
def test_bad_cidr_is_refused_before_any_change(rig: Rig, address: str) -> None:
    primary = rig.existing_primary()
    standby, own = rig.future_standby("replica")
    cluster = Cluster(primary, [standby], primary_address=("127.0.0.1", 5432),
                      hba_addresses=[address], node_settings={"replica": own})
    before = _state(rig, cluster)
    with pytest.raises(InvalidAddress, match="address"):
        cluster.setup_plan()
    assert _state(rig, cluster) == before
    assert standby.data_dir is not None and not standby.data_dir.exists()


def test_non_empty_directory_is_never_wiped(rig: Rig) -> None:
    primary = rig.existing_primary()
    standby, own = rig.future_standby("replica")
    assert standby.data_dir is not None
    standby.data_dir.mkdir()
    precious = standby.data_dir / "precious.txt"
    precious.write_text("keep me")
    cluster = Cluster(primary, [standby], primary_address=("127.0.0.1", 5432),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    before = _state(rig, cluster)
    for replace in (False, True):
        with pytest.raises(UnsafeDataDirectory, match="not a PostgreSQL data directory"):
            cluster.setup_plan(replace=replace)
    assert precious.read_text() == "keep me"
    assert _state(rig, cluster) == before


@pytest.mark.parametrize("target", ["/", "home", "relative/dir"])
def test_dangerous_targets_are_refused(rig: Rig, target: str) -> None:
    primary = rig.existing_primary()
    standby, own = rig.future_standby("replica")
    standby.data_dir = Path(os.path.expanduser("~")) if target == "home" else Path(target)
    cluster = Cluster(primary, [standby], primary_address=("127.0.0.1", 5432),
                      hba_addresses=["127.0.0.1"], node_settings={"replica": own})
    with pytest.raises(UnsafeDataDirectory):
        cluster.setup_plan(replace=True)


def test_unsupported_versions(empty_dir: Path) -> None:
    for text in ("9.5", "9.4.26", "8.4", 90500):
        with pytest.raises(UnsupportedVersion, match=r"9\.6 or newer"):
            ServerVersion.parse(text)
    for text in ("ten", "", "15.x"):
        with pytest.raises(UnsupportedVersion, match="cannot parse"):
            ServerVersion.parse(text)
    # A bindir whose postgres is a 9.5: refused before anything is created.
    fake = empty_dir / "bin"
    fake.mkdir()
    for program in ("postgres", "initdb", "pg_ctl"):
        script = fake / program
        script.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 9.5.25'\n")
        script.chmod(0o755)
    base = empty_dir / "base"
    base.mkdir()
    with pytest.raises(UnsupportedVersion, match=r"9\.6 or newer"):
        Cluster.sandbox(bindir=fake, base_dir=base)
    assert list(base.iterdir()) == []


def test_bindir_without_postgres(empty_dir: Path) -> None:
    with pytest.raises(BinaryNotFound, match=r"holds no postgres"):
        Cluster.sandbox(bindir=empty_dir)
    with pytest.raises(BinaryNotFound, match=r"not a directory"):
        Cluster.sandbox(bindir=empty_dir / "missing")
    script = empty_dir / "postgres"
    script.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 15.4'\n")
    script.chmod(stat.S_IRUSR)
    if os.geteuid() != 0:  # root may execute anything with an x bit; here there is none
        with pytest.raises(BinaryNotFound, match="not executable"):
            Cluster.sandbox(bindir=empty_dir)
    script.chmod(0o755)
    with pytest.raises(BinaryNotFound, match="lacks the server program"):
        Cluster.sandbox(bindir=empty_dir)
    assert sorted(p.name for p in empty_dir.iterdir()) == ["postgres"]


def test_other_bad_arguments() -> None:
    for count in (-1, 17, True, "2"):
        with pytest.raises(InvalidInput, match="standbys"):
            Cluster.sandbox(standbys=count)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="base_dir"):
        Cluster.sandbox(base_dir="/nonexistent/pgstream")
    with pytest.raises(InvalidInput, match="password"):
        ReplicationAuth("replicator", "")
    if os.geteuid() == 0:
        with pytest.raises(InvalidInput, match="refuses to run as root"):
            Cluster.sandbox(run_as="root")
    else:
        assert server_user().uid == os.geteuid()
    with pytest.raises(InvalidInput, match="no OS user"):
        Cluster.sandbox(run_as="no_such_user_pgstream")
    assert issubclass(InvalidInput, PgStreamError)
