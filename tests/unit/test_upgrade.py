"""Major upgrade, without servers: argv of pg_upgrade/rsync/vacuumdb/initdb by version, the
settings carried over, pg_controldata's checkpoint, preload libraries, new directory names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstream.errors import InvalidInput, PgStreamError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.ops.upgrade.facts import (
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
                    "--no-inc-recursive", "--relative", "/a/./15/main", "/a/./18/main",
                    "standby:/a")
    assert commands.rsync_upgrade(Path("/a/15/main"), Path("/a/18/main"), "/s/")[7] == (
        "--exclude=/15/main/pg_wal/*")
    assert commands.rsync_upgrade(Path("/b/primary"), Path("/b/primary_18"), "/s/")[-3:] == (
        "/b/./primary", "/b/./primary_18", "/s/")
    assert commands.rsync_layout(Path("/var/lib/postgresql/15/main"),
                                 Path("/var/lib/postgresql/18/main")) == (
        Path("/var/lib/postgresql"), Path("15/main"), Path("18/main"))
    for bad in ("", "-e sh", "a b"):
        with pytest.raises(InvalidInput):
            commands.rsync_upgrade(Path("/a"), Path("/b"), bad)
    for old, new in (("/a", "/a"), ("/a", "/a/b"), ("a", "/b")):
        with pytest.raises(InvalidInput):
            commands.rsync_layout(Path(old), Path(new))


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


def test_debian_layout_commands_and_files() -> None:
    from pgstream.render import debian

    argv = commands.pg_createcluster(
        "18", "main", owner="postgres", data_dir=Path("/var/lib/postgresql/18/main"),
        port=5432, encoding="UTF8", lc_collate="C.UTF-8", lc_ctype="C.UTF-8",
        initdb_options=("-U", "postgres"))
    assert argv == ("pg_createcluster", "-u", "postgres", "--datadir",
                    "/var/lib/postgresql/18/main", "--port", "5432", "--start-conf", "manual",
                    "--encoding", "UTF8", "--lc-collate", "C.UTF-8", "--lc-ctype", "C.UTF-8",
                    "--no-status", "18", "main", "--", "-U", "postgres")
    assert commands.pg_dropcluster("15", "main", stop=True) == (
        "pg_dropcluster", "--stop", "15", "main")
    for bad in ("", "a b", "x;y"):
        with pytest.raises(InvalidInput):
            commands.pg_dropcluster("15", bad)
    with pytest.raises(InvalidInput):
        commands.pg_dropcluster("fifteen", "main")
    conf = ("data_directory = '/var/lib/postgresql/18/main'\t\t# use data in another directory\n"
            "hba_file = '/etc/postgresql/18/main/pg_hba.conf'\n"
            "#ident_file = 'ConfigDir/pg_ident.conf'\n"
            "port = 5432\t\t\t\t# (change requires restart)\n"
            "cluster_name = '18/main'\n"
            "shared_buffers = 128MB\n")
    out = debian.rewrite_conf(conf, major="18", cluster="replica",
                              data_dir=Path("/var/lib/postgresql/18/replica"), port=5433)
    assert "data_directory = '/var/lib/postgresql/18/replica'" in out
    assert "# use data in another directory" in out
    assert "hba_file = '/etc/postgresql/18/replica/pg_hba.conf'" in out
    assert "ident_file = '/etc/postgresql/18/replica/pg_ident.conf'" in out
    assert "port = 5433" in out and "cluster_name = '18/replica'" in out
    assert "external_pid_file = '/var/run/postgresql/18-replica.pid'" in out
    assert "shared_buffers = 128MB" in out and "main" not in out
    with pytest.raises(InvalidInput):
        debian.rewrite_conf(conf, major="18", cluster="../x", data_dir=Path("/x"), port=1)
    assert debian.start_conf_value("# comment\n\nmanual # by hand\n") == "manual"
    assert debian.start_conf_value("# only comments\n") == "auto"
    with pytest.raises(InvalidInput):
        debian.start_conf_value("sometimes\n")
    assert debian.start_conf_text("disabled").strip().endswith("disabled")
    assert debian.config_dir("18", "main") == Path("/etc/postgresql/18/main")
    assert debian.bindir("18") == Path("/usr/lib/postgresql/18/bin")
