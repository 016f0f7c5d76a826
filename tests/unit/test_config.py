"""ConfigRenderer per version, and the postgresql.conf-style quote/parse/merge helpers."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgstream.errors import InvalidAddress, InvalidInput, InvalidName, NotAvailable
from pgstream.facts.version import ServerVersion
from pgstream.render.config import (
    CONNINFO_OPTIONS_SINCE,
    ConfigRenderer,
    merge_settings,
    parse_settings,
    passfile_line,
    quote_value,
    render_settings,
)

MAJORS = ["9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"]
BEFORE_12 = ["9.6", "10", "11"]
FROM_12 = ["12", "13", "14", "15", "16", "17", "18"]
BEFORE_13 = ["9.6", "10", "11", "12"]
FROM_13 = ["13", "14", "15", "16", "17", "18"]


def renderer(major: str) -> ConfigRenderer:
    return ConfigRenderer(ServerVersion.parse(major))


def test_renderer_accepts_strings_and_ints() -> None:
    assert ConfigRenderer("15").version == ServerVersion.parse(150000)
    assert ConfigRenderer(90624).version.major == "9.6"
    assert ConfigRenderer(ServerVersion.parse("12.3")).version.num == 120003


# ---------------------------------------------------------------------------------------------
# primary settings


@pytest.mark.parametrize("major", MAJORS)
def test_primary_settings_defaults(major: str) -> None:
    settings = renderer(major).primary_settings()
    assert settings["wal_level"] == "replica"
    assert settings["listen_addresses"] == "*"
    assert settings["max_wal_senders"] == "10"
    assert settings["max_replication_slots"] == "10"
    assert settings["hot_standby"] == "on"
    assert settings["wal_log_hints"] == "on"
    if major in FROM_13:
        assert "wal_keep_segments" not in settings
        assert settings["wal_keep_size"] == "1600"
    else:
        assert "wal_keep_size" not in settings
        assert settings["wal_keep_segments"] == "100"
    assert all(isinstance(v, str) for v in settings.values())


@pytest.mark.parametrize("major", MAJORS)
def test_wal_keep_conversion(major: str) -> None:
    for segments, segment_mb in ((100, 16), (8, 64), (0, 16), (1, 1)):
        settings = renderer(major).primary_settings(wal_keep_segments=segments,
                                                    wal_segment_size_mb=segment_mb)
        if major in FROM_13:
            assert settings["wal_keep_size"] == str(segments * segment_mb)
            assert "wal_keep_segments" not in settings
        else:
            assert settings["wal_keep_segments"] == str(segments)
            assert "wal_keep_size" not in settings


def test_primary_settings_seed_values() -> None:
    """The seed's step 1 (on 9.6): max_wal_senders 8, wal_keep_segments 100, 2 slots."""
    settings = renderer("9.6").primary_settings(max_wal_senders=8, max_replication_slots=2,
                                                hot_standby=True, wal_log_hints=False)
    assert settings == {
        "listen_addresses": "*",
        "wal_level": "replica",
        "max_wal_senders": "8",
        "max_replication_slots": "2",
        "wal_keep_segments": "100",
        "hot_standby": "on",
        "wal_log_hints": "off",
    }


def test_primary_settings_flags_off() -> None:
    settings = renderer("15").primary_settings(hot_standby=False, wal_log_hints=False,
                                               listen_addresses="127.0.0.1,::1")
    assert settings["hot_standby"] == "off"
    assert settings["wal_log_hints"] == "off"
    assert settings["listen_addresses"] == "127.0.0.1,::1"


@pytest.mark.parametrize("field", ["max_wal_senders", "max_replication_slots",
                                   "wal_keep_segments", "wal_segment_size_mb"])
def test_primary_settings_rejects_bad_numbers(field: str) -> None:
    for value in (-1, True, "10", 1.5, None):
        with pytest.raises(InvalidInput, match=field):
            renderer("15").primary_settings(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "x'y", "*\nwal_level = minimal"])
def test_primary_settings_rejects_bad_listen_addresses(value: str) -> None:
    with pytest.raises(InvalidInput, match="listen_addresses"):
        renderer("15").primary_settings(listen_addresses=value)


# ---------------------------------------------------------------------------------------------
# auth method


@pytest.mark.parametrize("major", MAJORS)
def test_default_auth_method_and_password_encryption(major: str) -> None:
    r = renderer(major)
    if major == "9.6":
        assert r.default_auth_method() == "md5"
        assert r.password_encryption() == "on"
    else:
        assert r.default_auth_method() == "scram-sha-256"
        assert r.password_encryption() == "scram-sha-256"


# ---------------------------------------------------------------------------------------------
# pg_hba lines


@pytest.mark.parametrize("major", MAJORS)
def test_hba_line_ipv4(major: str) -> None:
    line = renderer(major).hba_line("replicator", "192.0.2.10", "md5")
    assert line.split() == ["host", "replication", "replicator", "192.0.2.10/32", "md5"]
    assert "\n" not in line


def test_hba_line_ipv6_and_cidr() -> None:
    r = renderer("15")
    assert r.hba_line("repl", "2001:db8::1").split()[3] == "2001:db8::1/128"
    assert r.hba_line("repl", "192.0.2.0/24").split()[3] == "192.0.2.0/24"
    assert r.hba_line("repl", "2001:db8::/48").split()[3] == "2001:db8::/48"


def test_hba_line_default_method_is_scram() -> None:
    assert renderer("10").hba_line("repl", "10.0.0.1").split()[-1] == "scram-sha-256"


def test_hba_line_uses_replication_keyword_never_all() -> None:
    fields = renderer("15").hba_line("repl", "10.0.0.1").split()
    assert fields[1] == "replication"
    assert "all" not in fields


@pytest.mark.parametrize("address", ["192.0.2.10/24", "10.0.0.1/8", "2001:db8::1/64"])
def test_hba_line_rejects_host_bits(address: str) -> None:
    with pytest.raises(InvalidAddress):
        renderer("15").hba_line("repl", address)


@pytest.mark.parametrize("address", ["garbage", "", "999.1.1.1", "10.0.0.1 trust",
                                     "10.0.0.1\nhost all all 0.0.0.0/0 trust"])
def test_hba_line_rejects_garbage_addresses(address: str) -> None:
    with pytest.raises(InvalidAddress):
        renderer("15").hba_line("repl", address)


@pytest.mark.parametrize("user", ["Repl", "repl user", "repl'", "", "1repl", "a" * 64,
                                  "repl\nhost all all 0.0.0.0/0 trust", "repl\n", "all"])
def test_hba_line_rejects_bad_roles(user: str) -> None:
    with pytest.raises(InvalidName):
        renderer("15").hba_line(user, "10.0.0.1")


@pytest.mark.parametrize("method", ["", "all", "scram", "MD5", "trust\nhost all all all trust",
                                    "md5 # comment"])
def test_hba_line_rejects_unknown_methods(method: str) -> None:
    with pytest.raises(InvalidInput, match="method"):
        renderer("15").hba_line("repl", "10.0.0.1", method)


def test_hba_line_scram_on_96_is_not_available() -> None:
    with pytest.raises(NotAvailable, match=r"introduced in PostgreSQL 10\b") as info:
        renderer("9.6").hba_line("repl", "10.0.0.1", "scram-sha-256")
    assert info.value.since == "10"
    assert "md5" in str(info.value)
    assert renderer("9.6").hba_line("repl", "10.0.0.1", "md5").endswith("md5")


@pytest.mark.parametrize("major", MAJORS[1:])
def test_hba_line_scram_from_10(major: str) -> None:
    assert renderer(major).hba_line("repl", "10.0.0.1", "scram-sha-256").endswith(
        "scram-sha-256")


# ---------------------------------------------------------------------------------------------
# primary_conninfo


@pytest.mark.parametrize("major", MAJORS)
def test_primary_conninfo_basic(major: str) -> None:
    text = renderer(major).primary_conninfo(host="192.0.2.1", port=5432, user="repl",
                                            application_name="standby1")
    assert conninfo_to_dict(text) == {"host": "192.0.2.1", "port": "5432", "user": "repl",
                                      "application_name": "standby1"}
    assert "password" not in text


@pytest.mark.parametrize("major", MAJORS)
def test_primary_conninfo_never_takes_a_password(major: str) -> None:
    with pytest.raises(InvalidInput, match="passfile"):
        renderer(major).primary_conninfo(host="h", port=5432, user="repl", password="secret")


def test_primary_conninfo_password_error_does_not_echo_it() -> None:
    with pytest.raises(InvalidInput) as info:
        renderer("15").primary_conninfo(host="h", port=5432, user="repl",
                                        password="hunter2")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("key", ["PASSWORD", "Password", "sslpassword_x", "nope"])
def test_primary_conninfo_unknown_options_rejected(key: str) -> None:
    with pytest.raises(InvalidInput):
        renderer("15").primary_conninfo(host="h", port=5432, user="repl", **{key: "x"})


def test_primary_conninfo_passfile_on_96_has_a_hint() -> None:
    with pytest.raises(NotAvailable) as info:
        renderer("9.6").primary_conninfo(host="h", port=5432, user="repl",
                                         passfile="/var/lib/pg/.pgpass")
    message = str(info.value)
    assert "passfile" in message
    assert ".pgpass" in message
    assert info.value.since == "10"
    assert "10" in message


@pytest.mark.parametrize("major", MAJORS[1:])
def test_primary_conninfo_passfile_from_10(major: str) -> None:
    text = renderer(major).primary_conninfo(host="h", port=5432, user="repl",
                                            passfile="/var/lib/pg/.pgpass")
    assert conninfo_to_dict(text)["passfile"] == "/var/lib/pg/.pgpass"


@pytest.mark.parametrize("major", MAJORS)
def test_primary_conninfo_channel_binding(major: str) -> None:
    r = renderer(major)
    if major in BEFORE_13:
        with pytest.raises(NotAvailable, match="13") as info:
            r.primary_conninfo(host="h", port=5432, user="repl", channel_binding="prefer")
        assert info.value.since == "13"
        assert "channel_binding" in str(info.value)
    else:
        text = r.primary_conninfo(host="h", port=5432, user="repl", channel_binding="require")
        assert conninfo_to_dict(text)["channel_binding"] == "require"


@pytest.mark.parametrize("major", MAJORS)
def test_primary_conninfo_options_by_libpq_version(major: str) -> None:
    r = renderer(major)
    num = ServerVersion.parse(major).num
    for key, since in CONNINFO_OPTIONS_SINCE.items():
        if key in ("host", "port", "user"):
            continue
        value = "5" if key.endswith(("timeout", "count", "interval", "idle")) else "v"
        if num >= since:
            text = r.primary_conninfo(host="h", port=5432, user="repl", **{key: value})
            assert conninfo_to_dict(text)[key] == value
        else:
            with pytest.raises(NotAvailable):
                r.primary_conninfo(host="h", port=5432, user="repl", **{key: value})


def test_conninfo_option_versions_match_libpq() -> None:
    expected = {"passfile": 100000, "target_session_attrs": 100000, "gssencmode": 120000,
                "tcp_user_timeout": 120000, "channel_binding": 130000,
                "ssl_min_protocol_version": 130000, "ssl_max_protocol_version": 130000,
                "sslcrldir": 140000, "sslsni": 140000, "require_auth": 160000,
                "sslcertmode": 160000, "load_balance_hosts": 160000, "sslnegotiation": 170000}
    for key, since in expected.items():
        assert CONNINFO_OPTIONS_SINCE[key] == since, key
    assert "password" not in CONNINFO_OPTIONS_SINCE


@pytest.mark.parametrize(
    "value",
    ["/tmp/dir with spaces/.pgpass", "/tmp/it's/.pgpass", "/tmp/back\\slash/.pgpass",
     "/tmp/'\\'' =x/.pgpass", "/tmp/tab\there"],
)
def test_primary_conninfo_round_trips_awkward_values(value: str) -> None:
    text = renderer("15").primary_conninfo(host="db.example.com", port=5433, user="repl",
                                           passfile=value, options="-c search_path='a b'")
    parsed = conninfo_to_dict(text)
    assert parsed["passfile"] == value
    assert parsed["options"] == "-c search_path='a b'"
    assert parsed["host"] == "db.example.com"
    assert parsed["port"] == "5433"


@pytest.mark.parametrize("host", ["", "a b", "h\n", "h\tx"])
def test_primary_conninfo_rejects_bad_hosts(host: str) -> None:
    with pytest.raises(InvalidInput, match="host"):
        renderer("15").primary_conninfo(host=host, port=5432, user="repl")


@pytest.mark.parametrize("port", [0, 70000, True, "5432"])
def test_primary_conninfo_rejects_bad_ports(port: object) -> None:
    with pytest.raises(InvalidInput, match="port"):
        renderer("15").primary_conninfo(host="h", port=port, user="repl")  # type: ignore[arg-type]


@pytest.mark.parametrize(("user", "application_name"), [("Repl", None), ("repl", "Standby 1"),
                                                        ("repl'", None), ("repl", "a'b")])
def test_primary_conninfo_rejects_bad_names(user: str, application_name: str | None) -> None:
    with pytest.raises(InvalidName):
        renderer("15").primary_conninfo(host="h", port=5432, user=user,
                                        application_name=application_name)


def test_primary_conninfo_with_a_line_break_cannot_inject_settings() -> None:
    """A conninfo value with a line break must not add settings to the standby's config."""
    r = renderer("15")
    evil = "/tmp/x\nrestore_command = 'touch /tmp/pwned'"
    try:
        conninfo = r.primary_conninfo(host="h", port=5432, user="repl", passfile=evil)
    except InvalidInput:
        return  # refusing it is fine
    try:
        files = r.standby_files(conninfo, "s1")
    except InvalidInput:
        return
    assert set(parse_settings(files["postgresql.auto.conf"])) == {"primary_conninfo",
                                                                 "primary_slot_name"}


# ---------------------------------------------------------------------------------------------
# standby files

CONNINFO = "user=repl host=192.0.2.1 port=5432 application_name=standby1"


@pytest.mark.parametrize("major", BEFORE_12)
def test_standby_files_recovery_conf_before_12(major: str) -> None:
    files = renderer(major).standby_files(CONNINFO, "standby1")
    assert set(files) == {"recovery.conf"}
    settings = parse_settings(files["recovery.conf"])
    assert settings == {
        "standby_mode": "on",
        "primary_conninfo": CONNINFO,
        "primary_slot_name": "standby1",
        "recovery_target_timeline": "latest",
    }
    assert "standby_mode = 'on'\n" in files["recovery.conf"]
    assert "recovery_target_timeline = 'latest'\n" in files["recovery.conf"]


@pytest.mark.parametrize("major", FROM_12)
def test_standby_files_signal_from_12(major: str) -> None:
    files = renderer(major).standby_files(CONNINFO, "standby1")
    assert set(files) == {"standby.signal", "postgresql.auto.conf"}
    assert files["standby.signal"] == ""
    settings = parse_settings(files["postgresql.auto.conf"])
    assert settings == {"primary_conninfo": CONNINFO, "primary_slot_name": "standby1"}
    assert "standby_mode" not in files["postgresql.auto.conf"]
    assert "recovery.conf" not in files


@pytest.mark.parametrize("major", MAJORS)
def test_standby_files_without_slot(major: str) -> None:
    files = renderer(major).standby_files(CONNINFO)
    text = files.get("recovery.conf", files.get("postgresql.auto.conf", ""))
    assert "primary_slot_name" not in parse_settings(text)
    assert parse_settings(text)["primary_conninfo"] == CONNINFO


@pytest.mark.parametrize("major", MAJORS)
def test_standby_settings(major: str) -> None:
    settings = renderer(major).standby_settings(CONNINFO, "s1")
    if major in BEFORE_12:
        assert settings["standby_mode"] == "on"
        assert settings["recovery_target_timeline"] == "latest"
    else:
        assert "standby_mode" not in settings
        assert "recovery_target_timeline" not in settings
    assert settings["primary_conninfo"] == CONNINFO
    assert settings["primary_slot_name"] == "s1"


@pytest.mark.parametrize("slot", ["Bad", "x'); DROP TABLE t; --", "s" * 64, "s1\n"])
def test_standby_files_validate_the_slot(slot: str) -> None:
    for major in ("11", "12"):
        with pytest.raises(InvalidName):
            renderer(major).standby_files(CONNINFO, slot)


@pytest.mark.parametrize("major", MAJORS)
def test_standby_files_round_trip_a_real_conninfo(major: str) -> None:
    r = renderer(major)
    extra = {"passfile": "/tmp/it's a \\ file"} if major != "9.6" else {}
    conninfo = r.primary_conninfo(host="h", port=5432, user="repl",
                                  application_name="standby1", **extra)
    files = r.standby_files(conninfo, "standby1")
    text = files.get("recovery.conf") or files["postgresql.auto.conf"]
    parsed = parse_settings(text)
    assert parsed["primary_conninfo"] == conninfo
    assert conninfo_to_dict(parsed["primary_conninfo"]) == conninfo_to_dict(conninfo)


def test_standby_files_merge_into_auto_conf_idempotently() -> None:
    r = renderer("15")
    existing = ("# Do not edit this file manually!\n"
                "# It will be overwritten by the ALTER SYSTEM command.\n"
                "max_connections = '100'\n"
                "primary_conninfo = 'host=old'\n")
    settings = parse_settings(r.standby_files(CONNINFO, "s1")["postgresql.auto.conf"])
    once = merge_settings(existing, settings)
    twice = merge_settings(once, settings)
    assert once == twice
    assert parse_settings(once) == {"max_connections": "100", "primary_conninfo": CONNINFO,
                                    "primary_slot_name": "s1"}
    assert once.count("primary_conninfo") == 1


# ---------------------------------------------------------------------------------------------
# node settings


def test_node_settings() -> None:
    settings = renderer("15").node_settings(port=54321, socket_dir="/tmp/s",
                                            cluster_name="standby1")
    assert settings == {"port": "54321", "listen_addresses": "127.0.0.1",
                        "unix_socket_directories": "/tmp/s", "cluster_name": "standby1"}
    with pytest.raises(InvalidInput):
        renderer("15").node_settings(port=0, socket_dir="/tmp/s", cluster_name="n")
    with pytest.raises(InvalidName):
        renderer("15").node_settings(port=5432, socket_dir="/tmp/s", cluster_name="N 1")


# ---------------------------------------------------------------------------------------------
# quote / parse / merge

AWKWARD = ["plain", "", "it's", "''", "back\\slash", "\\", "\\'", "'\\", "a = b # c",
           "host=h user='u' password=\\'x\\'", "#hash", "trailing space ", " lead",
           "ünïcødé", "100MB", "tab\there"]


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("plain", "'plain'"), ("", "''"), ("it's", "'it''s'"), ("a\\b", "'a\\\\b'"),
     ("\\'", "'\\\\'''")],
)
def test_quote_value(value: str, quoted: str) -> None:
    assert quote_value(value) == quoted


def test_quote_parse_round_trip() -> None:
    for value in AWKWARD:
        text = render_settings({"some_setting": value})
        assert text.endswith("\n")
        assert text.count("\n") == 1
        assert parse_settings(text) == {"some_setting": value}, value


def test_render_settings_keeps_order() -> None:
    text = render_settings({"b": "2", "a": "1", "c": "3"})
    assert text == "b = '2'\na = '1'\nc = '3'\n"


@pytest.mark.parametrize("value", ["a\nb", "x\nrestore_command = 'rm -rf /'"])
def test_render_settings_never_writes_a_raw_newline_in_a_value(value: str) -> None:
    """A line break inside a value must be escaped or refused, never written raw.

    PostgreSQL's config lexer ends a quoted string at a newline; written raw, the rest of the
    value becomes a line of its own (here: a restore_command setting).
    """
    try:
        text = render_settings({"primary_conninfo": value})
    except InvalidInput:
        return
    assert text.count("\n") == 1
    assert text.endswith("\n")
    assert set(parse_settings(text)) == {"primary_conninfo"}


@pytest.mark.parametrize("value", ["a\x85b", "a\u2028b"])
def test_parse_and_merge_split_lines_only_at_newline(value: str) -> None:
    """PostgreSQL ends a config line only at ``\\n``; str.splitlines() also splits at these."""
    text = render_settings({"k": value})
    assert parse_settings(text) == {"k": value}
    assert merge_settings(text, {"other": "1"}) == text + "other = '1'\n"


def test_parse_settings_forms() -> None:
    text = """
# a comment
   # an indented comment
wal_level = replica
max_wal_senders=8            # trailing comment
hot_standby on
Listen_Addresses = '*'   # upper case name
shared_preload_libraries = 'a,b'  # 'quoted' comment
archive_command = 'cp %p /x/%f # not a comment'
empty = ''
quoted = 'it''s'
backslashed = 'a\\\\b\\'c'
wal_keep_segments = 10
wal_keep_segments = 20
"""
    assert parse_settings(text) == {
        "wal_level": "replica",
        "max_wal_senders": "8",
        "hot_standby": "on",
        "listen_addresses": "*",
        "shared_preload_libraries": "a,b",
        "archive_command": "cp %p /x/%f # not a comment",
        "empty": "",
        "quoted": "it's",
        "backslashed": "a\\b'c",
        "wal_keep_segments": "20",
    }


def test_parse_settings_empty() -> None:
    assert parse_settings("") == {}
    assert parse_settings("# only\n\n   \n") == {}


def test_merge_settings_appends_and_replaces() -> None:
    existing = "# header\nwal_level = minimal\nport = 5432\n"
    merged = merge_settings(existing, {"wal_level": "replica", "max_wal_senders": "10"})
    assert merged == "# header\nport = 5432\nwal_level = 'replica'\nmax_wal_senders = '10'\n"


def test_merge_settings_is_idempotent() -> None:
    existing = ("# comment\nwal_level = minimal\n#wal_level = logical\n"
                "WAL_KEEP_SEGMENTS = 5\nport = 5432\nwal_level = 'hot_standby'\n")
    settings: dict[str, str | None] = {"wal_level": "replica", "wal_keep_segments": None,
                                       "primary_conninfo": "host='h' user=\\'u\\'"}
    once = merge_settings(existing, settings)
    twice = merge_settings(once, settings)
    assert once == twice
    lines = once.splitlines()
    assert sum(1 for line in lines if line.startswith("wal_level")) == 1
    assert "#wal_level = logical" in lines
    assert "# comment" in lines
    assert "port = 5432" in lines
    assert parse_settings(once) == {"wal_level": "replica", "port": "5432",
                                    "primary_conninfo": "host='h' user=\\'u\\'"}


def test_merge_settings_none_removes() -> None:
    existing = "wal_keep_segments = 100\nport = 5432\n"
    merged = merge_settings(existing, {"wal_keep_segments": None})
    assert merged == "port = 5432\n"
    assert "wal_keep_segments" not in parse_settings(merged)
    assert merge_settings(merged, {"wal_keep_segments": None}) == merged


def test_merge_settings_into_empty_and_unterminated_text() -> None:
    assert merge_settings("", {"a": "1"}) == "a = '1'\n"
    assert merge_settings("b = 2", {"a": "1"}) == "b = 2\na = '1'\n"
    assert merge_settings("", {}) == ""
    assert merge_settings("", {"a": None}) == ""


def test_merge_settings_names_are_case_insensitive() -> None:
    merged = merge_settings("Primary_Conninfo = 'old'\n", {"primary_conninfo": "new"})
    assert parse_settings(merged) == {"primary_conninfo": "new"}
    assert merged.lower().count("primary_conninfo") == 1


def test_merge_settings_round_trips_values() -> None:
    for value in AWKWARD:
        merged = merge_settings("other = 'x'\n", {"primary_conninfo": value})
        assert parse_settings(merged) == {"other": "x", "primary_conninfo": value}, value
        assert merge_settings(merged, {"primary_conninfo": value}) == merged


# ---------------------------------------------------------------------------------------------
# passfile lines


def test_passfile_line_plain() -> None:
    assert passfile_line("db.example.com", 5432, "repl", "secret") == (
        "db.example.com:5432:*:repl:secret\n")
    assert passfile_line("h", 5432, "repl", "pw", database="replication") == (
        "h:5432:replication:repl:pw\n")


def test_passfile_line_escapes_colon_and_backslash() -> None:
    line = passfile_line("2001:db8::1", 5432, "repl", "a:b\\c")
    assert line == "2001\\:db8\\:\\:1:5432:*:repl:a\\:b\\\\c\n"


def split_passfile_line(line: str) -> list[str]:
    """libpq's reading of a .pgpass line: ``\\`` escapes the next character, ``:`` separates."""
    fields, current, escaped = [], "", False
    for ch in line.rstrip("\n"):
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            fields.append(current)
            current = ""
        else:
            current += ch
    fields.append(current)
    return fields


@pytest.mark.parametrize("password", ["p", "p:w", "p\\w", "\\:", ":\\", "a\\\\:b", "*", "p w"])
def test_passfile_line_round_trips(password: str) -> None:
    line = passfile_line("h:x", 5432, "repl", password)
    assert split_passfile_line(line) == ["h:x", "5432", "*", "repl", password]


@pytest.mark.parametrize("password", ["a\nb", "a\rb", "\n"])
def test_passfile_line_rejects_line_breaks(password: str) -> None:
    with pytest.raises(InvalidInput) as info:
        passfile_line("h", 5432, "repl", password)
    assert password.strip() not in str(info.value) or not password.strip()
