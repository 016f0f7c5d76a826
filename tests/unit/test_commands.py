"""Argv builders: initdb, pg_ctl, pg_basebackup (options by client version, no passwords)."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgstream.errors import InvalidInput, InvalidName
from pgstream.facts.version import ServerVersion
from pgstream.render import commands

MAJORS = ["9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"]
BIN = Path("/usr/lib/postgresql/bin")
DATA = Path("/srv/pg/standby1")


def basebackup(major: str, **kwargs: object) -> tuple[str, ...]:
    options: dict[str, object] = {"host": "192.0.2.1", "port": 5432, "user": "repl"}
    options.update(kwargs)
    return commands.pg_basebackup(BIN, ServerVersion.parse(major), DATA,
                                  **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("major", MAJORS)
def test_pg_basebackup_wal_method_by_client_version(major: str) -> None:
    argv = basebackup(major, slot="standby1")
    assert argv[0] == str(BIN / "pg_basebackup")
    if major == "9.6":
        assert "--xlog-method=stream" in argv
        assert not any(a.startswith("--wal-method") for a in argv)
    else:
        assert "--wal-method=stream" in argv
        assert not any("xlog" in a for a in argv)
    i = argv.index("-D")
    assert argv[i + 1] == str(DATA)
    assert argv[argv.index("-h") + 1] == "192.0.2.1"
    assert argv[argv.index("-p") + 1] == "5432"
    assert argv[argv.index("-U") + 1] == "repl"
    assert argv[argv.index("-S") + 1] == "standby1"
    assert "-w" in argv  # never prompt for a password
    assert "-R" not in argv
    assert all(isinstance(a, str) for a in argv)


@pytest.mark.parametrize("major", MAJORS)
def test_pg_basebackup_never_contains_a_password(major: str) -> None:
    argv = basebackup(major, slot="s1", application_name="standby1", max_rate="10M")
    joined = " ".join(argv).lower()
    assert "password" not in joined
    assert "-W" not in argv
    with pytest.raises(TypeError):
        basebackup(major, password="secret")


@pytest.mark.parametrize("major", MAJORS[1:])
def test_pg_basebackup_no_sync_only_when_asked(major: str) -> None:
    assert "--no-sync" not in basebackup(major)
    assert "--no-sync" not in basebackup(major, sync=True)
    assert "--no-sync" in basebackup(major, sync=False)


def test_pg_basebackup_no_sync_is_skipped_by_a_96_client() -> None:
    """``sync=False`` only saves time; a 9.6 client has no --no-sync and syncs anyway."""
    assert "--no-sync" not in basebackup("9.6")
    assert "--no-sync" not in basebackup("9.6", sync=False)


@pytest.mark.parametrize("major", MAJORS)
def test_pg_basebackup_manifest_option_from_13(major: str) -> None:
    argv = basebackup(major)
    assert ("--no-manifest" in argv) is ServerVersion.parse(major).at_least(13)


@pytest.mark.parametrize("major", MAJORS)
def test_pg_basebackup_defaults(major: str) -> None:
    argv = basebackup(major)
    assert "-S" not in argv
    assert argv[argv.index("-c") + 1] == "fast"
    assert "-P" in argv
    assert "-r" not in argv
    assert "-d" not in argv


def test_pg_basebackup_switches_off() -> None:
    argv = basebackup("15", progress=False, fast_checkpoint=False)
    assert "-P" not in argv
    assert "-c" not in argv


@pytest.mark.parametrize("rate", ["100M", "32k", "1024", "5K", "7m"])
def test_pg_basebackup_max_rate(rate: str) -> None:
    argv = basebackup("15", max_rate=rate)
    assert argv[argv.index("-r") + 1] == rate


@pytest.mark.parametrize("rate", ["", "fast", "M", "10 M", "-1", "10M; rm -rf /", "1.5M"])
def test_pg_basebackup_bad_max_rate(rate: str) -> None:
    with pytest.raises(InvalidInput, match="max_rate"):
        basebackup("15", max_rate=rate)


def test_pg_basebackup_application_name() -> None:
    argv = basebackup("15", application_name="standby1")
    conninfo = argv[argv.index("-d") + 1]
    assert conninfo_to_dict(conninfo) == {"application_name": "standby1_basebackup"}


@pytest.mark.parametrize("slot", ["Standby1", "x'); DROP TABLE t; --", "s" * 64, "", "a b"])
def test_pg_basebackup_validates_slot(slot: str) -> None:
    with pytest.raises(InvalidName):
        basebackup("15", slot=slot)


@pytest.mark.parametrize("user", ["Repl", "repl; rm", ""])
def test_pg_basebackup_validates_user(user: str) -> None:
    with pytest.raises(InvalidName):
        basebackup("15", user=user)


@pytest.mark.parametrize("port", [0, 65536, "5432", True])
def test_pg_basebackup_validates_port(port: object) -> None:
    with pytest.raises(InvalidInput, match="port"):
        basebackup("15", port=port)


def test_pg_basebackup_validates_application_name() -> None:
    with pytest.raises(InvalidName):
        basebackup("15", application_name="Standby 1")


def test_initdb() -> None:
    argv = commands.initdb(BIN, DATA, superuser="postgres")
    assert argv[0] == str(BIN / "initdb")
    assert argv[argv.index("-D") + 1] == str(DATA)
    assert argv[argv.index("-U") + 1] == "postgres"
    assert argv[argv.index("--auth-local") + 1] == "trust"
    assert argv[argv.index("--auth-host") + 1] == "scram-sha-256"
    assert "--data-checksums" not in argv
    assert not any(a.startswith("--wal-segsize") for a in argv)
    argv = commands.initdb(BIN, DATA, superuser="postgres", wal_segsize_mb=64, checksums=True,
                           auth_host="md5", version=ServerVersion.parse("11"))
    assert "--wal-segsize=64" in argv
    assert "--data-checksums" in argv
    assert argv[argv.index("--auth-host") + 1] == "md5"
    with pytest.raises(InvalidName):
        commands.initdb(BIN, DATA, superuser="Postgres")


def test_pg_ctl() -> None:
    argv = commands.pg_ctl(BIN, "start", DATA, log_file=Path("/tmp/log"), timeout=30)
    assert argv == (str(BIN / "pg_ctl"), "start", "-D", str(DATA), "-l", "/tmp/log", "-w",
                    "-t", "30")
    assert commands.pg_ctl(BIN, "stop", DATA, mode="fast", wait=False) == (
        str(BIN / "pg_ctl"), "stop", "-D", str(DATA), "-m", "fast", "-W", "-t", "60")
    assert commands.pg_ctl(BIN, "reload", DATA) == (str(BIN / "pg_ctl"), "reload", "-D",
                                                     str(DATA))
    assert commands.pg_ctl(BIN, "status", DATA, mode="fast") == (
        str(BIN / "pg_ctl"), "status", "-D", str(DATA))
    promote = commands.pg_ctl(BIN, "promote", DATA, log_file=Path("/tmp/log"), mode="fast")
    assert "-l" not in promote
    assert "-m" not in promote
    assert "-w" in promote
    restart = commands.pg_ctl(BIN, "restart", DATA, log_file=Path("/tmp/log"), mode="immediate")
    assert restart[restart.index("-m") + 1] == "immediate"
    assert restart[restart.index("-l") + 1] == "/tmp/log"


def test_small_builders() -> None:
    assert commands.postgres_version(BIN) == (str(BIN / "postgres"), "--version")
    assert commands.postgres_version(BIN, "pg_basebackup") == (str(BIN / "pg_basebackup"),
                                                               "--version")
    assert commands.pg_controldata(BIN, DATA) == (str(BIN / "pg_controldata"), "-D", str(DATA))
