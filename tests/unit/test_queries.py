"""SQL builders rendered per version with ``as_string(None)``: names per major, values as params."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from psycopg import sql

from pgstream.errors import InvalidName, NotAvailable
from pgstream.facts.version import ServerVersion
from pgstream.render import queries

MAJORS = ["9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"]
INJECTION = "x'); DROP TABLE t; --"


def v(major: str) -> ServerVersion:
    return ServerVersion.parse(major)


def render(query: sql.Composable) -> str:
    return query.as_string(None)


def version_queries(version: ServerVersion) -> dict[str, str]:
    """Every version-dependent statement, rendered."""
    out = {
        "current_lsn": render(queries.current_lsn(version)[0]),
        "standby_lsns": render(queries.standby_lsns(version)[0]),
        "replay_lsn": render(queries.replay_lsn(version)[0]),
        "lsn_reached": render(queries.lsn_reached(version, "0/3000000")[0]),
        "replication_status": render(queries.replication_status(version)[0]),
        "slot_status": render(queries.slot_status(version)[0]),
        "slot_status_recovery": render(queries.slot_status(version, in_recovery=True)[0]),
        "slot_status_named": render(queries.slot_status(version, name="s1")[0]),
        "create_slot": render(queries.create_slot(version, "s1")[0]),
        "drop_slot": render(queries.drop_slot(version, "s1")[0]),
        "wal_receiver": render(queries.wal_receiver(version)[0]),
    }
    if version.at_least(12):
        out["promote"] = render(queries.promote(version)[0])
    return out


FUNCTION_CALL_LSN = re.compile(r'_lsn"?\s*\(')


@pytest.mark.parametrize("major", MAJORS)
def test_every_statement_uses_only_this_versions_names(major: str) -> None:
    for label, text in version_queries(v(major)).items():
        if major == "9.6":
            assert not FUNCTION_CALL_LSN.search(text), label
            assert "pg_wal" not in text, label
            assert '"sent_lsn"' not in text.replace('AS "sent_lsn"', ""), label
            assert '"r"."replay_lsn"' not in text, label
            assert "_lag\"" not in text, label
        else:
            assert "xlog" not in text, label
            assert "_location" not in text, label


@pytest.mark.parametrize("major", MAJORS)
def test_current_lsn(major: str) -> None:
    query, params = queries.current_lsn(v(major))
    expected = "pg_current_xlog_location" if major == "9.6" else "pg_current_wal_lsn"
    assert render(query) == f'SELECT "{expected}"()::text'
    assert params == ()


@pytest.mark.parametrize("major", MAJORS)
def test_standby_lsns(major: str) -> None:
    text = render(queries.standby_lsns(v(major))[0])
    if major == "9.6":
        assert '"pg_last_xlog_receive_location"()' in text
        assert '"pg_last_xlog_replay_location"()' in text
    else:
        assert '"pg_last_wal_receive_lsn"()' in text
        assert '"pg_last_wal_replay_lsn"()' in text
    assert '"pg_last_xact_replay_timestamp"()' in text
    assert "pg_is_in_recovery()" in text


@pytest.mark.parametrize("major", MAJORS)
def test_lsn_reached_passes_target_as_parameter(major: str) -> None:
    target = "0/3006D00"
    query, params = queries.lsn_reached(v(major), target)
    text = render(query)
    assert params == (target,)
    assert target not in text
    assert "%s::pg_lsn" in text
    diff = "pg_xlog_location_diff" if major == "9.6" else "pg_wal_lsn_diff"
    assert f'"{diff}"(' in text


@pytest.mark.parametrize("major", MAJORS)
def test_replication_status(major: str) -> None:
    query, params, names = queries.replication_status(v(major))
    text = render(query)
    assert params == ()
    assert names == (*queries.REPLICATION_FIELDS, "replay_lag_bytes", "replay_lag", "slot_name")
    for what in ("sent", "write", "flush", "replay"):
        column = f"{what}_location" if major == "9.6" else f"{what}_lsn"
        # the version's column, presented under the canonical name
        assert f'"r"."{column}"::text AS "{what}_lsn"' in text
    if major == "9.6":
        assert "NULL::interval AS replay_lag" in text
        assert '"pg_xlog_location_diff"("pg_current_xlog_location"(), "r"."replay_location")' \
            in text
    else:
        assert '"r"."replay_lag" AS replay_lag' in text
        assert '"pg_wal_lsn_diff"("pg_current_wal_lsn"(), "r"."replay_lsn")' in text
    assert "FROM pg_stat_replication r" in text
    assert "pg_replication_slots" in text
    # one output expression per declared name
    select = text.split(" FROM ", 1)[0]
    assert select.count(" AS ") == len(names)


# (column, major that introduced it, NULL cast used before)
SLOT_OPTIONALS = [("wal_status", "13", "NULL::text"), ("safe_wal_size", "13", "NULL::bigint"),
                  ("inactive_since", "17", "NULL::timestamptz"),
                  ("temporary", "10", "NULL::boolean")]


@pytest.mark.parametrize("major", MAJORS)
def test_slot_status_selects_null_for_missing_columns(major: str) -> None:
    query, params = queries.slot_status(v(major))
    text = render(query)
    assert params == ()
    assert "slot_type = 'physical'" in text
    assert "%s" not in text
    for column, since, null in SLOT_OPTIONALS:
        if v(major).at_least(since):
            assert f'"{column}"' in text, column
        else:
            assert f'"{column}"' not in text, column
            assert null in text, column
    # the output has as many columns as SLOT_FIELDS
    select = text.split(" FROM ", 1)[0].removeprefix("SELECT ")
    assert len(re.split(r",\s(?![^()]*\))", select)) == len(queries.SLOT_FIELDS)


@pytest.mark.parametrize("major", MAJORS)
def test_slot_status_position_function(major: str) -> None:
    primary = render(queries.slot_status(v(major))[0])
    standby = render(queries.slot_status(v(major), in_recovery=True)[0])
    if major == "9.6":
        assert '"pg_current_xlog_location"()' in primary
        assert '"pg_last_xlog_receive_location"()' in standby
    else:
        assert '"pg_current_wal_lsn"()' in primary
        assert '"pg_last_wal_receive_lsn"()' in standby


@pytest.mark.parametrize("name", ["s1", INJECTION, "Robert'); DROP TABLE students;--"])
def test_slot_status_name_is_a_parameter(name: str) -> None:
    query, params = queries.slot_status(v("15"), name=name)
    text = render(query)
    assert params == (name,)
    assert "slot_name = %s" in text
    assert name not in text


@pytest.mark.parametrize("major", MAJORS)
def test_create_slot(major: str) -> None:
    query, params = queries.create_slot(v(major), "standby1")
    text = render(query)
    assert params == ("standby1",)
    assert "standby1" not in text
    assert text == 'SELECT * FROM "pg_create_physical_replication_slot"(%s, true)'


@pytest.mark.parametrize("major", MAJORS)
def test_drop_slot(major: str) -> None:
    query, params = queries.drop_slot(v(major), "standby1")
    assert params == ("standby1",)
    assert render(query) == 'SELECT "pg_drop_replication_slot"(%s)'


SLOT_BUILDERS: list[Callable[[ServerVersion, str], queries.Query]] = [
    queries.create_slot, queries.drop_slot]


@pytest.mark.parametrize("builder", SLOT_BUILDERS)
@pytest.mark.parametrize("name", [INJECTION, "Standby", "", "s" * 64, "a b"])
def test_slot_builders_validate_before_building(
        builder: Callable[[ServerVersion, str], queries.Query], name: str) -> None:
    with pytest.raises(InvalidName):
        builder(v("15"), name)


@pytest.mark.parametrize("name", [INJECTION, "Repl", "", "r" * 64])
def test_role_builders_validate_before_building(name: str) -> None:
    with pytest.raises(InvalidName):
        queries.role_state(name)
    with pytest.raises(InvalidName):
        queries.create_role(name, None)
    with pytest.raises(InvalidName):
        queries.alter_role(name, "SCRAM-SHA-256$4096:abc")


def test_role_state() -> None:
    query, params = queries.role_state("repl")
    assert params == ("repl",)
    assert "repl" not in render(query).replace("rolreplication", "")


def test_create_role() -> None:
    assert render(queries.create_role("repl", None)) == (
        'CREATE ROLE "repl" WITH LOGIN REPLICATION')
    verifier = "SCRAM-SHA-256$4096:c2FsdA==$abc'def:ghi"
    text = render(queries.create_role("repl", verifier))
    assert text == ('CREATE ROLE "repl" WITH LOGIN REPLICATION PASSWORD '
                    "'SCRAM-SHA-256$4096:c2FsdA==$abc''def:ghi'")


def test_alter_role() -> None:
    assert render(queries.alter_role("repl")) == 'ALTER ROLE "repl" WITH LOGIN REPLICATION'
    assert render(queries.alter_role("repl", "md5abc")) == (
        "ALTER ROLE \"repl\" WITH LOGIN REPLICATION PASSWORD 'md5abc'")


def test_alter_system_quotes_name_and_value() -> None:
    assert render(queries.alter_system("wal_level", "replica")) == (
        "ALTER SYSTEM SET \"wal_level\" = 'replica'")
    text = render(queries.alter_system("primary_conninfo", "host=h user='u'"))
    assert text == "ALTER SYSTEM SET \"primary_conninfo\" = 'host=h user=''u'''"
    evil = render(queries.alter_system('x" = 1; DROP TABLE t; --', "v"))
    assert evil.startswith('ALTER SYSTEM SET "x"" = 1; DROP TABLE t; --" = ')


def test_show_quotes_the_setting() -> None:
    assert render(queries.show("wal_level")) == 'SHOW "wal_level"'
    assert render(queries.show('a"; DROP TABLE t; --')) == 'SHOW "a""; DROP TABLE t; --"'


def test_settings_values_passes_names_as_parameter() -> None:
    query, params = queries.settings_values(("wal_level", "max_wal_senders"))
    assert params == (["wal_level", "max_wal_senders"],)
    text = render(query)
    assert "= ANY(%s)" in text
    assert "wal_level" not in text


def test_constant_queries() -> None:
    for query, params in (queries.pending_restart(), queries.reload_conf(),
                          queries.system_identifier(), queries.replay_delay()):
        assert params == ()
        text = render(query)
        assert text.startswith("SELECT ")
        assert "%s" not in text
    assert "pg_reload_conf()" in render(queries.reload_conf()[0])
    assert "pg_control_system()" in render(queries.system_identifier()[0])
    assert "pg_last_xact_replay_timestamp()" in render(queries.replay_delay()[0])


@pytest.mark.parametrize("major", MAJORS)
def test_wal_receiver(major: str) -> None:
    query, params = queries.wal_receiver(v(major))
    text = render(query)
    assert params == ()
    column = "flushed_lsn" if v(major).at_least(13) else "received_lsn"
    assert text == f'SELECT status, "{column}"::text, slot_name FROM pg_stat_wal_receiver'


@pytest.mark.parametrize("major", MAJORS)
def test_promote(major: str) -> None:
    if v(major).at_least(12):
        query, params = queries.promote(v(major), wait_seconds=30)
        assert render(query) == 'SELECT "pg_promote"(%s, %s)'
        assert params == (True, 30)
        assert queries.promote(v(major), wait=False)[1] == (False, 60)
    else:
        with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 12\b"):
            queries.promote(v(major))
