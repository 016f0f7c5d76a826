"""Major upgrade, without servers: argv of pg_upgrade/rsync/vacuumdb/initdb by version, the
settings carried over, pg_controldata's checkpoint, preload libraries, new directory names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstream.errors import InvalidInput, PgStreamError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.ops.upgrade_facts import (
    carried_settings,
    controldata_checkpoint,
    default_new_dir,
    parse_describe_config,
    preload_libraries,
    upgrade_output_files,
)
from pgstream.render import commands

V = ServerVersion.parse
OLD, NEW, DATA = Path("/old/bin"), Path("/new/bin"), Path("/srv/pg")


def _upgrade(version: str, mode: commands.TransferMode, **kw: bool) -> tuple[str, ...]:
    return commands.pg_upgrade(NEW, V(version), old_bindir=OLD, old_data_dir=DATA / "15",
                               new_data_dir=DATA / "18", old_port=50432, new_port=50433,
                               superuser="postgres", socket_dir=DATA / "18", mode=mode, **kw)


def test_pg_upgrade_argv_by_new_version() -> None:
    argv = _upgrade("18", "link")
    assert argv[:3] == ("/new/bin/pg_upgrade", "-b", "/old/bin")
    assert "--link" in argv and "--check" not in argv
    assert "--copy" in _upgrade("18", "copy")
    assert "--copy" not in _upgrade("15", "copy")  # before 16 copy is the default, no option
    assert "--clone" in _upgrade("12", "clone")
    with pytest.raises(PgStreamError, match="introduced in PostgreSQL 12"):
        _upgrade("11", "clone")
    assert "--no-sync" in _upgrade("15", "link", sync=False)
    assert "--no-sync" not in _upgrade("14", "link", sync=False)
    assert "--no-sync" not in _upgrade("18", "link", sync=False, check=True)
    assert _upgrade("18", "link", check=True)[-1] == "--check"
    with pytest.raises(InvalidInput, match="unknown pg_upgrade mode"):
        _upgrade("18", "move")  # type: ignore[arg-type]


def test_rsync_is_the_documented_command() -> None:
    argv = commands.rsync_upgrade(Path("/a/15/main/"), Path("/a/18/main"), "standby:/a",
                                  skip_old_wal=False)
    assert argv == ("rsync", "--archive", "--delete", "--hard-links", "--size-only",
                    "--no-inc-recursive", "/a/15/main", "/a/18/main", "standby:/a")
    assert commands.rsync_upgrade(Path("/a/15/main"), Path("/a/18/main"), "/s/")[6] == (
        "--exclude=/main/pg_wal/*")
    for bad in ("", "-e sh", "a b"):
        with pytest.raises(InvalidInput):
            commands.rsync_upgrade(Path("/a"), Path("/b"), bad)


def test_initdb_for_upgrade_matches_the_old_cluster() -> None:
    argv = commands.upgrade_initdb(NEW, DATA, version=V("18"), superuser="postgres",
                                   encoding="UTF8", lc_collate="C", lc_ctype="en_US.UTF-8",
                                   checksums=False, wal_segsize_mb=1)
    assert "--no-data-checksums" in argv and "--wal-segsize=1" in argv
    assert argv[argv.index("--lc-ctype") + 1] == "en_US.UTF-8"
    on15 = commands.upgrade_initdb(NEW, DATA, version=V("15"), superuser="postgres",
                                   encoding="UTF8", lc_collate="C", lc_ctype="C",
                                   checksums=False)
    assert "--no-data-checksums" not in on15 and not any("segsize" in a for a in on15)
    assert "--data-checksums" in commands.upgrade_initdb(
        NEW, DATA, version=V("18"), superuser="postgres", encoding="UTF8", lc_collate="C",
        lc_ctype="C", checksums=True)
    with pytest.raises(InvalidInput, match="invalid encoding"):
        commands.upgrade_initdb(NEW, DATA, version=V("18"), superuser="postgres",
                                encoding="UTF8; rm", lc_collate="C", lc_ctype="C",
                                checksums=False)


def test_vacuumdb_and_helpers() -> None:
    assert commands.vacuumdb_analyze(NEW, host="/run", port=5432, user="postgres") == (
        "/new/bin/vacuumdb", "--all", "--analyze-in-stages", "-h", "/run", "-p", "5432",
        "-U", "postgres")
    assert commands.rename(Path("/a/b"), Path("/a/c"))[:2] == ("mv", "--no-target-directory")
    with pytest.raises(InvalidInput):
        commands.remove_tree(Path("/srv"))
    with pytest.raises(InvalidInput):
        commands.remove_tree(Path("/srv/a/../b"))


def test_default_new_dir() -> None:
    assert default_new_dir(Path("/var/lib/postgresql/15/main"), "15", "18") == Path(
        "/var/lib/postgresql/18/main")
    assert default_new_dir(Path("/dev/shm/box/primary"), "15", "18") == Path(
        "/dev/shm/box/primary_18")
    assert default_new_dir(Path("/data/15"), "15", "18") == Path("/data/15_18")


def test_carried_settings() -> None:
    known = parse_describe_config("port\tpostmaster\tx\tINTEGER\nDateStyle\tuser\tx\tSTRING\n"
                                  "wal_keep_size\tsighup\tx\tINTEGER\n")
    assert known == {"port", "datestyle", "wal_keep_size"}
    carried, dropped = carried_settings(
        {"port": "5433", "DateStyle": "ISO, MDY", "wal_keep_segments": "4",
         "vacuum_defer_cleanup_age": "0"}, known, V("12"), V("18"), 16)
    assert carried == {"port": "5433", "DateStyle": "ISO, MDY", "wal_keep_size": "64MB"}
    assert dropped == ("vacuum_defer_cleanup_age = '0' (PostgreSQL 18 has no such setting)",)


def test_controldata_and_preload_and_reports() -> None:
    out = ("pg_control version number:            1300\n"
           "Database cluster state:               shut down in recovery\n"
           "Latest checkpoint location:           0/51F87F8\n")
    assert controldata_checkpoint(out) == (Lsn.parse("0/51F87F8"), "shut down in recovery")
    with pytest.raises(PgStreamError, match="Latest checkpoint location"):
        controldata_checkpoint("nothing")
    assert preload_libraries("") == []
    assert preload_libraries("pg_stat_statements, '$libdir/auto_explain'".replace("'", '"')) \
        == ["pg_stat_statements", "auto_explain"]
    assert upgrade_output_files("Checking...  fatal\n    /d/pg_upgrade_output.d/x/"
                                "tables_using_reg.txt\n") == [
        Path("/d/pg_upgrade_output.d/x/tables_using_reg.txt")]
