"""Setting values checked as PostgreSQL parses them, from pg_settings rows (no server)."""

from __future__ import annotations

import pytest

from pgstream.errors import InvalidInput
from pgstream.facts.settings import SettingDefinition, check_value, parse_bool, same_value

WORK_MEM = SettingDefinition("work_mem", "4096", "user", "integer", "kB", "64", "2147483647")
SENDERS = SettingDefinition("max_wal_senders", "10", "postmaster", "integer", None, "0",
                            "262143")
TIMEOUT = SettingDefinition("statement_timeout", "0", "user", "integer", "ms", "0",
                            "2147483647")
BUFFERS = SettingDefinition("wal_buffers", "512", "postmaster", "integer", "8kB", "-1",
                            "262143")
OLD_MAX_WAL = SettingDefinition("max_wal_size", "64", "sighup", "integer", "16MB", "2",
                                "2147483647")  # 9.6 counts segments
FRACTION = SettingDefinition("checkpoint_completion_target", "0.9", "sighup", "real", None,
                             "0", "1")
DELAY = SettingDefinition("vacuum_cost_delay", "0", "user", "real", "ms", "-1", "100")
LEVEL = SettingDefinition("wal_level", "replica", "postmaster", "enum",
                          enumvals=("minimal", "replica", "logical"))
COMMIT = SettingDefinition("synchronous_commit", "on", "user", "enum",
                           enumvals=("local", "remote_write", "remote_apply", "on", "off"))
HOT = SettingDefinition("hot_standby", "on", "postmaster", "bool")
NAMES = SettingDefinition("synchronous_standby_names", "", "sighup", "string")
BLOCK = SettingDefinition("block_size", "8192", "internal", "integer", None, "8192", "8192")


@pytest.mark.parametrize(("text", "expected"), [
    ("on", True), ("ON", True), ("of", False), ("off", False), ("t", True), ("TRUE", True),
    ("f", False), ("y", True), ("yes", True), ("n", False), ("no", False), ("1", True),
    ("0", False), ("o", None), ("", None), ("maybe", None), ("2", None), ("onn", None),
    ("truex", None), ("01", None)])
def test_parse_bool_as_postgresql(text: str, expected: bool | None) -> None:
    assert parse_bool(text) == expected


@pytest.mark.parametrize(("definition", "value", "expected"), [
    (WORK_MEM, "5000", "5000"), (WORK_MEM, "4MB", "4096"), (WORK_MEM, "4 MB", "4096"),
    (WORK_MEM, " 64kB ", "64"), (WORK_MEM, "1GB", "1048576"), (WORK_MEM, "0x1000", "4096"),
    (WORK_MEM, "010000", "4096"), (WORK_MEM, "1.5MB", "1536"), (WORK_MEM, "1e3", "1000"),
    (WORK_MEM, "65536B", "64"), (SENDERS, "10", "10"), (SENDERS, "+3", "3"),
    (TIMEOUT, "1min", "60000"), (TIMEOUT, "2s", "2000"), (TIMEOUT, "1h", "3600000"),
    (TIMEOUT, "1500us", "2"), (BUFFERS, "-1", "-1"), (BUFFERS, "16MB", "2048"),
    (OLD_MAX_WAL, "1GB", "64"), (FRACTION, "0.5", "0.5"), (FRACTION, "1", "1"),
    (DELAY, "2ms", "2"), (DELAY, "0.5", "0.5"), (LEVEL, "REPLICA", "replica"),
    (COMMIT, "remote_apply", "remote_apply"), (COMMIT, "true", "on"), (COMMIT, "0", "off"),
    (HOT, "yes", "on"), (HOT, "OFF", "off"), (NAMES, "FIRST 1 (a, b)", "FIRST 1 (a, b)"),
])
def test_valid_values_in_the_settings_own_terms(definition: SettingDefinition, value: str,
                                               expected: str) -> None:
    assert check_value(definition, value) == expected


@pytest.mark.parametrize(("definition", "value", "message"), [
    (SENDERS, "lots", r"invalid value 'lots' for max_wal_senders: an integer from 0 to "
                      r"262143 is expected"),
    (SENDERS, "300000", "outside the range of max_wal_senders"),
    (SENDERS, "-1", "outside the range"),
    (SENDERS, "5kB", "invalid unit 'kB'.*valid units are none"),
    (WORK_MEM, "4XB", "invalid unit 'XB'.*B, kB, MB, GB, TB"),
    (WORK_MEM, "4mb", "invalid unit 'mb'"),        # units are case-sensitive there too
    (WORK_MEM, "32", r"outside the range of work_mem: an integer from 64 to 2147483647 "
                     r"\(in kB\)"),
    (WORK_MEM, "09", "an integer"),                 # octal has no 9
    (WORK_MEM, "", "an integer"), (WORK_MEM, "inf", "an integer"),
    (WORK_MEM, "nan", "an integer"), (WORK_MEM, "4 MB extra", "an integer"),
    (TIMEOUT, "5kB", "invalid unit 'kB'.*us, ms, s, min, h, d"),
    (FRACTION, "1.5", "outside the range"), (FRACTION, "x", "a number"),
    (LEVEL, "hot_standby", "use one of minimal, replica, logical"),
    (LEVEL, "on", "use one of"),                    # no on/off in wal_level
    (HOT, "maybe", "a boolean is expected"), (HOT, "", "a boolean"),
    (NAMES, "a\0b", "NUL"),
    (BLOCK, "8192", "cannot be set with ALTER SYSTEM"),
    (SettingDefinition("data_directory", "/x", "postmaster", "string"), "/y",
     "cannot be set with ALTER SYSTEM"),
])
def test_invalid_values_are_refused_with_what_is_expected(definition: SettingDefinition,
                                                         value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        check_value(definition, value)


def test_non_string_values_are_refused() -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        check_value(WORK_MEM, 5000)  # type: ignore[arg-type]


def test_same_value_compares_normalized() -> None:
    assert same_value(WORK_MEM, check_value(WORK_MEM, "4MB"))
    assert not same_value(WORK_MEM, check_value(WORK_MEM, "5MB"))
    assert same_value(FRACTION, check_value(FRACTION, "0.90"))
    assert same_value(COMMIT, check_value(COMMIT, "TRUE"))
    assert same_value(HOT, check_value(HOT, "1"))
    assert not same_value(SettingDefinition("x", None, "user", "string"), "a")


def test_from_row() -> None:
    row = ("wal_level", "replica", "postmaster", "enum", None, None, None,
           ["minimal", "replica", "logical"], "replica")
    definition = SettingDefinition.from_row(row)
    assert definition.enumvals == ("minimal", "replica", "logical")
    assert definition.unit is None and definition.vartype == "enum"
