"""The version table, checked against /work/shared/reference/versions.md for every major.

The expectations below are written out independently of ``pgstream.facts.capabilities.TABLE``:
each fact of the reference is restated as (canonical name, first major, last-major-excl,
old name, renamed-in) and compared with what :class:`VersionAdapter` answers on 9.6, 10..18.
"""

from __future__ import annotations

import re

import pytest

from pgstream.errors import NotAvailable, PgStreamError
from pgstream.facts.capabilities import TABLE, Name, VersionAdapter
from pgstream.facts.version import ServerVersion, known_majors

MAJORS = ["9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"]
NUM = {m: ServerVersion.parse(m).num for m in MAJORS}


def adapter(major: str) -> VersionAdapter:
    return ServerVersion.parse(major).adapter


def name_on(major: str, canonical: str, *, old: str | None = None,
            renamed: str | None = None) -> str:
    if old is not None and renamed is not None and NUM[major] < NUM[renamed]:
        return old
    return canonical


def exists_on(major: str, since: str = "9.6", until: str | None = None) -> bool:
    return NUM[major] >= NUM[since] and (until is None or NUM[major] < NUM[until])


# ---------------------------------------------------------------------------------------------
# functions

RENAMED_FUNCTIONS = [
    ("pg_current_wal_lsn", "pg_current_xlog_location"),
    ("pg_current_wal_insert_lsn", "pg_current_xlog_insert_location"),
    ("pg_current_wal_flush_lsn", "pg_current_xlog_flush_location"),
    ("pg_last_wal_receive_lsn", "pg_last_xlog_receive_location"),
    ("pg_last_wal_replay_lsn", "pg_last_xlog_replay_location"),
    ("pg_wal_lsn_diff", "pg_xlog_location_diff"),
    ("pg_walfile_name", "pg_xlogfile_name"),
    ("pg_walfile_name_offset", "pg_xlogfile_name_offset"),
    ("pg_switch_wal", "pg_switch_xlog"),
    ("pg_wal_replay_pause", "pg_xlog_replay_pause"),
    ("pg_wal_replay_resume", "pg_xlog_replay_resume"),
    ("pg_is_wal_replay_paused", "pg_is_xlog_replay_paused"),
]

# (function, since, until)
LIFETIME_FUNCTIONS = [
    ("pg_is_in_recovery", "9.6", None),
    ("pg_last_xact_replay_timestamp", "9.6", None),
    ("pg_create_physical_replication_slot", "9.6", None),
    ("pg_drop_replication_slot", "9.6", None),
    ("pg_replication_slot_advance", "11", None),
    ("pg_promote", "12", None),
    ("pg_copy_physical_replication_slot", "12", None),
    ("pg_get_wal_replay_pause_state", "14", None),
    ("pg_start_backup", "9.6", "15"),
    ("pg_stop_backup", "9.6", "15"),
    ("pg_backup_start", "15", None),
    ("pg_backup_stop", "15", None),
]


@pytest.mark.parametrize("major", MAJORS)
def test_renamed_functions(major: str) -> None:
    a = adapter(major)
    for canonical, old in RENAMED_FUNCTIONS:
        expected = old if major == "9.6" else canonical
        assert a.function(canonical) == expected
        # asking by the old name gives this version's name as well
        assert a.function(old) == expected
        assert a.has("function", canonical)


@pytest.mark.parametrize("major", MAJORS)
def test_no_wal_names_on_96_and_no_xlog_names_from_10(major: str) -> None:
    a = adapter(major)
    names = [a.function(c) for c, _ in RENAMED_FUNCTIONS]
    if major == "9.6":
        assert all("xlog" in n for n in names)
        assert not any("wal" in n.replace("xlog", "") or n.endswith("_lsn") for n in names)
    else:
        assert not any("xlog" in n or "location" in n for n in names)


def check_missing(major: str, error: NotAvailable, name: str, since: str,
                  until: str | None) -> None:
    """``error`` names the thing, the asking version and the version that decided."""
    message = str(error)
    assert name in message
    assert f"PostgreSQL {major}:" in message
    if NUM[major] < NUM[since]:
        assert f"introduced in PostgreSQL {since}" in message
        assert error.since == since
    else:
        assert until is not None
        assert f"removed in PostgreSQL {until}" in message


@pytest.mark.parametrize("major", MAJORS)
def test_function_lifetimes(major: str) -> None:
    a = adapter(major)
    for function, since, until in LIFETIME_FUNCTIONS:
        if exists_on(major, since, until):
            assert a.function(function) == function
            assert a.has("function", function)
            continue
        assert not a.has("function", function)
        with pytest.raises(NotAvailable) as info:
            a.function(function)
        check_missing(major, info.value, function, since, until)
        assert info.value.name == function


def test_removed_backup_functions_name_their_replacement() -> None:
    with pytest.raises(NotAvailable, match="pg_backup_start"):
        adapter("15").function("pg_start_backup")
    with pytest.raises(NotAvailable, match="pg_backup_stop"):
        adapter("18").function("pg_stop_backup")


# ---------------------------------------------------------------------------------------------
# pg_stat_replication

STAT_REPLICATION_96 = ["pid", "usesysid", "usename", "application_name", "client_addr",
                       "client_hostname", "client_port", "backend_start", "backend_xmin",
                       "state", "sent_location", "write_location", "flush_location",
                       "replay_location", "sync_priority", "sync_state"]


def expected_stat_replication(major: str) -> dict[str, str]:
    cols = {c: c for c in STAT_REPLICATION_96 if not c.endswith("_location")}
    for w in ("sent", "write", "flush", "replay"):
        cols[f"{w}_lsn"] = f"{w}_location" if major == "9.6" else f"{w}_lsn"
    if exists_on(major, "10"):
        cols.update({c: c for c in ("write_lag", "flush_lag", "replay_lag")})
    if exists_on(major, "12"):
        cols["reply_time"] = "reply_time"
    return cols


@pytest.mark.parametrize("major", MAJORS)
def test_stat_replication_columns(major: str) -> None:
    got = adapter(major).columns("pg_stat_replication")
    assert got == expected_stat_replication(major)
    if major == "9.6":
        assert sorted(got.values()) == sorted(STAT_REPLICATION_96)


@pytest.mark.parametrize("major", MAJORS)
def test_stat_replication_lsn_columns(major: str) -> None:
    a = adapter(major)
    for what in ("sent", "write", "flush", "replay"):
        expected = f"{what}_location" if major == "9.6" else f"{what}_lsn"
        assert a.column("pg_stat_replication", f"{what}_lsn") == expected
        assert a.column("pg_stat_replication", f"{what}_location") == expected


@pytest.mark.parametrize("major", MAJORS)
def test_stat_replication_lag_columns(major: str) -> None:
    a = adapter(major)
    for column in ("write_lag", "flush_lag", "replay_lag"):
        if major == "9.6":
            assert not a.has("column", column, "pg_stat_replication")
            with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 10\b") as info:
                a.column("pg_stat_replication", column)
            assert info.value.since == "10"
            assert column in str(info.value)
            assert not a.supports("lag_intervals")
        else:
            assert a.column("pg_stat_replication", column) == column
            assert a.supports("lag_intervals")


@pytest.mark.parametrize("major", MAJORS)
def test_stat_replication_reply_time(major: str) -> None:
    a = adapter(major)
    if exists_on(major, "12"):
        assert a.column("pg_stat_replication", "reply_time") == "reply_time"
    else:
        with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 12\b"):
            a.column("pg_stat_replication", "reply_time")


# ---------------------------------------------------------------------------------------------
# pg_stat_wal_receiver

WAL_RECEIVER_96 = ["pid", "status", "receive_start_lsn", "receive_start_tli", "received_lsn",
                   "received_tli", "last_msg_send_time", "last_msg_receipt_time",
                   "latest_end_lsn", "latest_end_time", "slot_name", "conninfo"]


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver_columns(major: str) -> None:
    got = adapter(major).columns("pg_stat_wal_receiver")
    actual = set(got.values())
    base = set(WAL_RECEIVER_96) - {"received_lsn"}
    assert base <= actual
    if exists_on(major, "13"):
        assert {"written_lsn", "flushed_lsn"} <= actual
        assert "received_lsn" not in actual
    else:
        assert "received_lsn" in actual
        assert not {"written_lsn", "flushed_lsn"} & actual
    if exists_on(major, "11"):
        assert {"sender_host", "sender_port"} <= actual
    else:
        assert not {"sender_host", "sender_port"} & actual
    if major == "9.6":
        assert sorted(actual) == sorted(WAL_RECEIVER_96)


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver_flushed_lsn_maps_to_received_lsn_before_13(major: str) -> None:
    a = adapter(major)
    expected = "flushed_lsn" if exists_on(major, "13") else "received_lsn"
    assert a.column("pg_stat_wal_receiver", "flushed_lsn") == expected
    assert a.column("pg_stat_wal_receiver", "received_lsn") == expected


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver_written_lsn(major: str) -> None:
    a = adapter(major)
    if exists_on(major, "13"):
        assert a.column("pg_stat_wal_receiver", "written_lsn") == "written_lsn"
    else:
        with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 13\b"):
            a.column("pg_stat_wal_receiver", "written_lsn")


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver_sender(major: str) -> None:
    a = adapter(major)
    for column in ("sender_host", "sender_port"):
        if exists_on(major, "11"):
            assert a.column("pg_stat_wal_receiver", column) == column
        else:
            with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 11\b"):
                a.column("pg_stat_wal_receiver", column)


# ---------------------------------------------------------------------------------------------
# pg_replication_slots

SLOTS_96 = ["slot_name", "plugin", "slot_type", "datoid", "database", "active", "active_pid",
            "xmin", "catalog_xmin", "restart_lsn", "confirmed_flush_lsn"]
SLOTS_ADDED = {
    "temporary": "10",
    "wal_status": "13",
    "safe_wal_size": "13",
    "two_phase": "14",
    "conflicting": "16",
    "inactive_since": "17",
    "invalidation_reason": "17",
    "failover": "17",
    "synced": "17",
    "two_phase_at": "18",
}


@pytest.mark.parametrize("major", MAJORS)
def test_replication_slots_columns(major: str) -> None:
    expected = set(SLOTS_96) | {c for c, since in SLOTS_ADDED.items() if exists_on(major, since)}
    got = adapter(major).columns("pg_replication_slots")
    assert set(got) == expected
    assert all(k == v for k, v in got.items())


@pytest.mark.parametrize("major", MAJORS)
def test_replication_slots_added_columns(major: str) -> None:
    a = adapter(major)
    for column, since in SLOTS_ADDED.items():
        if exists_on(major, since):
            assert a.column("pg_replication_slots", column) == column
            assert a.has("column", column, "pg_replication_slots")
            continue
        assert not a.has("column", column, "pg_replication_slots")
        with pytest.raises(NotAvailable) as info:
            a.column("pg_replication_slots", column)
        check_missing(major, info.value, column, since, None)
        assert "pg_replication_slots" in str(info.value)


def test_columns_are_scoped_by_view() -> None:
    a = adapter("15")
    assert not a.has("column", "replay_lsn")  # no scope given
    assert not a.has("column", "replay_lsn", "pg_replication_slots")
    with pytest.raises(NotAvailable, match="knows no column"):
        a.column("pg_replication_slots", "replay_lsn")


# ---------------------------------------------------------------------------------------------
# settings

# (setting, since, until, old name, renamed in)
SETTINGS: list[tuple[str, str, str | None, str | None, str | None]] = [
    ("wal_level", "9.6", None, None, None),
    ("max_wal_senders", "9.6", None, None, None),
    ("max_replication_slots", "9.6", None, None, None),
    ("hot_standby", "9.6", None, None, None),
    ("hot_standby_feedback", "9.6", None, None, None),
    ("wal_log_hints", "9.6", None, None, None),
    ("full_page_writes", "9.6", None, None, None),
    ("listen_addresses", "9.6", None, None, None),
    ("synchronous_standby_names", "9.6", None, None, None),
    ("synchronous_commit", "9.6", None, None, None),
    ("password_encryption", "9.6", None, None, None),
    ("wal_keep_segments", "9.6", "13", None, None),
    ("wal_keep_size", "13", None, None, None),
    ("max_slot_wal_keep_size", "13", None, None, None),
    ("wal_receiver_create_temp_slot", "13", None, None, None),
    ("synchronized_standby_slots", "17", None, None, None),
    ("sync_replication_slots", "17", None, None, None),
    ("idle_replication_slot_timeout", "18", None, None, None),
]

# Recovery parameters: recovery.conf entries up to 11, server settings from 12 (versions.md).
# Up to 11 only their names are checked here, not whether the table calls them "settings".
# (parameter, until, old name, renamed in)
RECOVERY_PARAMETERS: list[tuple[str, str | None, str | None, str | None]] = [
    ("primary_conninfo", None, None, None),
    ("primary_slot_name", None, None, None),
    ("restore_command", None, None, None),
    ("recovery_target_timeline", None, None, None),
    ("standby_mode", "12", None, None),
    ("promote_trigger_file", "16", "trigger_file", "12"),
]


@pytest.mark.parametrize("major", MAJORS)
def test_settings(major: str) -> None:
    a = adapter(major)
    for setting, since, until, old, renamed in SETTINGS:
        if exists_on(major, since, until):
            assert a.has("setting", setting), setting
            assert a.setting(setting) == name_on(major, setting, old=old, renamed=renamed)
            if old is not None:
                assert a.setting(old) == a.setting(setting)
            continue
        assert not a.has("setting", setting), setting
        with pytest.raises(NotAvailable) as info:
            a.setting(setting)
        check_missing(major, info.value, setting, since, until)


@pytest.mark.parametrize("major", MAJORS)
def test_recovery_parameters(major: str) -> None:
    a = adapter(major)
    for parameter, until, old, renamed in RECOVERY_PARAMETERS:
        expected = name_on(major, parameter, old=old, renamed=renamed)
        if NUM[major] < NUM["12"]:
            if a.has("setting", parameter):
                assert a.setting(parameter) == expected
            continue
        if exists_on(major, "12", until):
            assert a.has("setting", parameter), parameter
            assert a.setting(parameter) == expected
            continue
        assert not a.has("setting", parameter)
        with pytest.raises(NotAvailable) as info:
            a.setting(parameter)
        check_missing(major, info.value, parameter, "9.6", until)


@pytest.mark.parametrize("major", MAJORS)
def test_trigger_file_names(major: str) -> None:
    a = adapter(major)
    if major in ("9.6", "10", "11"):
        assert a.setting("promote_trigger_file") == "trigger_file"
        assert a.setting("trigger_file") == "trigger_file"
    elif exists_on(major, "12", "16"):
        assert a.setting("promote_trigger_file") == "promote_trigger_file"
        assert a.setting("trigger_file") == "promote_trigger_file"
    else:
        with pytest.raises(NotAvailable, match=r"removed in PostgreSQL 16\b.*pg_promote"):
            a.setting("promote_trigger_file")
        with pytest.raises(NotAvailable, match=r"removed in PostgreSQL 16\b"):
            a.setting("trigger_file")


@pytest.mark.parametrize("major", ["13", "14", "18"])
def test_wal_keep_segments_removed_names_replacement(major: str) -> None:
    with pytest.raises(NotAvailable, match=r"removed in PostgreSQL 13\b.*wal_keep_size"):
        adapter(major).setting("wal_keep_segments")


@pytest.mark.parametrize("major", ["12", "15", "18"])
def test_standby_mode_removed_names_standby_signal(major: str) -> None:
    with pytest.raises(NotAvailable, match=r"removed in PostgreSQL 12\b.*standby\.signal"):
        adapter(major).setting("standby_mode")


@pytest.mark.parametrize("major", MAJORS)
def test_reloadable_recovery_settings(major: str) -> None:
    a = adapter(major)
    for setting, since in (("primary_conninfo", "13"), ("primary_slot_name", "13"),
                           ("restore_command", "14")):
        if not exists_on(major, "12"):  # a recovery.conf entry, not a setting, before 12
            with pytest.raises(NotAvailable, match="introduced in PostgreSQL 12"):
                a.reloadable(setting)
            continue
        assert a.reloadable(setting) is exists_on(major, since), setting


def test_reloadable_unknown_setting_raises() -> None:
    with pytest.raises(NotAvailable):
        adapter("15").reloadable("no_such_setting")


# ---------------------------------------------------------------------------------------------
# files, tools, pg_basebackup options

# (canonical, since, until, old, renamed)
FILES: list[tuple[str, str, str | None, str | None, str | None]] = [
    ("recovery.conf", "9.6", "12", None, None),
    ("standby.signal", "12", None, None, None),
    ("recovery.signal", "12", None, None, None),
    ("pg_wal", "9.6", None, "pg_xlog", "10"),
    ("pg_xact", "9.6", None, "pg_clog", "10"),
    ("postgresql.auto.conf", "9.6", None, None, None),
]

TOOLS = [
    ("pg_receivewal", "pg_receivexlog"),
    ("pg_waldump", "pg_xlogdump"),
    ("pg_resetwal", "pg_resetxlog"),
    ("pg_basebackup", None),
    ("pg_rewind", None),
    ("pg_ctl", None),
    ("initdb", None),
    ("pg_controldata", None),
]

OPTIONS: list[tuple[str, str, str | None, str | None]] = [
    ("--wal-method", "9.6", "--xlog-method", "10"),
    ("--waldir", "9.6", "--xlogdir", "10"),
    ("--no-slot", "10", None, None),
    ("--no-sync", "10", None, None),
    ("--create-slot", "11", None, None),
    ("--no-manifest", "13", None, None),
]


@pytest.mark.parametrize("major", MAJORS)
def test_files(major: str) -> None:
    a = adapter(major)
    for file, since, until, old, renamed in FILES:
        if exists_on(major, since, until):
            assert a.file(file) == name_on(major, file, old=old, renamed=renamed)
            if old is not None:
                assert a.file(old) == a.file(file)
            continue
        with pytest.raises(NotAvailable) as info:
            a.file(file)
        check_missing(major, info.value, file, since, until)


def test_recovery_conf_removed_names_standby_signal() -> None:
    with pytest.raises(NotAvailable, match=r"removed in PostgreSQL 12\b.*standby\.signal"):
        adapter("12").file("recovery.conf")


@pytest.mark.parametrize("major", MAJORS)
def test_tools(major: str) -> None:
    a = adapter(major)
    for tool, old in TOOLS:
        expected = old if (old is not None and major == "9.6") else tool
        assert a.tool(tool) == expected
        if old is not None:
            assert a.tool(old) == expected


@pytest.mark.parametrize("major", MAJORS)
def test_basebackup_options(major: str) -> None:
    a = adapter(major)
    for option, since, old, renamed in OPTIONS:
        if exists_on(major, since):
            assert a.option(option) == name_on(major, option, old=old, renamed=renamed)
            assert a.has("option", option)
            continue
        assert not a.has("option", option)
        with pytest.raises(NotAvailable) as info:
            a.option(option)
        check_missing(major, info.value, option, since, None)


# ---------------------------------------------------------------------------------------------
# features

FEATURES = {
    "standby_signal": "12",
    "pg_promote": "12",
    "pg_ctl_promote_waits": "10",
    "temporary_slots": "10",
    "lag_intervals": "10",
    "scram": "10",
    "scram_default": "14",
    "quorum_sync": "10",
    "hba_file_rules": "10",
    "pidfile_status": "10",  # postmaster.pid's status line (not in versions.md)
    "local_replication_hba": "10",
    "basebackup_temp_slot": "10",
    "slot_advance": "11",
    "walreceiver_cluster_name": "12",
    "max_wal_senders_check": "12",
    "wal_status": "13",
    "slot_wal_limit": "13",
    "reload_primary_conninfo": "13",
    "rewind_writes_recovery_config": "13",
    "rewind_from_standby": "14",
    "replay_pause_state": "14",
    "exclusive_backup_removed": "15",
    "slot_inactive_since": "17",
    "failover_slots": "17",
    "checksums_default": "18",
    "upgrade_keeps_logical_slots": "17",
    "upgrade_output_dir": "15",
}


@pytest.mark.parametrize("major", MAJORS)
def test_features(major: str) -> None:
    a = adapter(major)
    for feature, since in FEATURES.items():
        expected = exists_on(major, since)
        assert a.supports(feature) is expected, feature
        if expected:
            a.require(feature)
            continue
        with pytest.raises(NotAvailable) as info:
            a.require(feature)
        check_missing(major, info.value, feature, since, None)


def test_every_feature_checked_here_is_in_the_table() -> None:
    assert set(FEATURES) <= {row.canonical for row in TABLE if row.kind == "feature"}


def test_unknown_names_raise_not_available() -> None:
    a = adapter("15")
    with pytest.raises(NotAvailable, match="knows no feature"):
        a.supports("time_travel")
    with pytest.raises(NotAvailable, match="knows no feature"):
        a.require("time_travel")
    with pytest.raises(NotAvailable, match="knows no function"):
        a.function("pg_wal_location_diff")  # the seed tutorial's non-existent function
    with pytest.raises(NotAvailable, match="knows no setting"):
        a.setting("no_such_setting")
    with pytest.raises(NotAvailable, match="knows no tool"):
        a.tool("pg_nothing")
    with pytest.raises(NotAvailable, match="knows no file"):
        a.file("nothing.conf")
    with pytest.raises(NotAvailable, match="knows no option"):
        a.option("--nothing")
    assert not a.has("function", "pg_wal_location_diff")
    assert not a.has("feature", "time_travel")


def test_not_available_is_a_pgstream_error() -> None:
    assert issubclass(NotAvailable, PgStreamError)


def test_kinds_do_not_leak_into_each_other() -> None:
    a = adapter("15")
    # pg_promote is both a function and a feature; the kinds are separate keys
    assert a.function("pg_promote") == "pg_promote"
    assert a.supports("pg_promote")
    with pytest.raises(NotAvailable):
        a.setting("pg_promote")


# ---------------------------------------------------------------------------------------------
# the table itself


def test_table_has_no_duplicate_keys() -> None:
    keys = [(row.kind, row.scope, row.canonical) for row in TABLE]
    assert len(keys) == len(set(keys))


def test_old_names_do_not_shadow_canonical_names() -> None:
    canon = {(row.kind, row.scope, row.canonical) for row in TABLE}
    olds = {(row.kind, row.scope, row.old) for row in TABLE if row.old is not None}
    assert not canon & olds


def test_table_rows_are_consistent() -> None:
    for row in TABLE:
        check_row(row)


def check_row(row: Name) -> None:
    # 10.2: pg_monitor sees pg_stat_replication's LSNs (a minor, not a major)
    assert row.since in NUM.values() or row.since == 100002
    if row.until is not None:
        assert row.until in NUM.values()
        assert row.until > row.since
    assert (row.old is None) == (row.renamed is None)
    if row.renamed is not None:
        assert row.renamed in NUM.values()
        assert row.since < row.renamed
    assert (row.kind == "column") == bool(row.scope) or (row.kind, row.scope) in (
        ("option", "initdb"), ("option", "pg_upgrade"))
    if row.reload_since is not None:
        assert row.kind == "setting"


def test_known_majors() -> None:
    assert [v.major for v in known_majors()] == MAJORS
    assert known_majors() == sorted(known_majors())


@pytest.mark.parametrize("major", MAJORS)
def test_not_available_messages_name_the_versions(major: str) -> None:
    """Every NotAvailable the table can raise names the asking and the deciding versions."""
    a = adapter(major)
    for row in TABLE:
        if row.exists(NUM[major]):
            continue
        with pytest.raises(NotAvailable) as info:
            a._lookup(row.kind, row.canonical, row.scope)
        message = str(info.value)
        assert f"PostgreSQL {major}:" in message
        assert re.search(r"(introduced|removed) in PostgreSQL (9\.6|1\d)\b", message)
