"""SQL builders: every statement pgstream sends, composed with ``psycopg.sql`` per version.

Pure: each builder returns a ``(statement, params)`` pair or a ``sql.Composed``; names
come from :class:`~pgstream.facts.capabilities.VersionAdapter`, values travel as
parameters (or, in utility statements that take no parameters, as ``sql.Literal``).
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from pgstream.facts import identifiers
from pgstream.facts.version import ServerVersion

Query = tuple[sql.Composable, tuple[object, ...]]


def shown(query: Query) -> str:
    """The statement as a plan prints it: parameters shown as quoted literals (display only;
    execution always sends them as parameters)."""
    statement, params = query
    text = statement.as_string(None).replace("{", "{{").replace("}", "}}")
    return sql.SQL(text.replace("%s", "{}")).format(
        *(sql.Literal(p) for p in params)).as_string(None) + ";"


def _fn(version: ServerVersion, name: str) -> sql.Identifier:
    return sql.Identifier(version.adapter.function(name))


def current_lsn(version: ServerVersion) -> Query:
    """The primary's current WAL write position (``pg_current_xlog_location`` on 9.6)."""
    return sql.SQL("SELECT {}()::text").format(_fn(version, "pg_current_wal_lsn")), ()


def standby_lsns(version: ServerVersion) -> Query:
    """On a standby: received and replayed LSN, replay timestamp, in recovery."""
    return sql.SQL(
        "SELECT {}()::text, {}()::text, {}(), pg_is_in_recovery()"
    ).format(
        _fn(version, "pg_last_wal_receive_lsn"),
        _fn(version, "pg_last_wal_replay_lsn"),
        _fn(version, "pg_last_xact_replay_timestamp"),
    ), ()


def replay_lsn(version: ServerVersion) -> Query:
    return sql.SQL("SELECT {}()::text").format(_fn(version, "pg_last_wal_replay_lsn")), ()


def lsn_reached(version: ServerVersion, target: str) -> Query:
    """On a standby: has replay reached ``target``? (``pg_wal_lsn_diff`` >= 0)."""
    return sql.SQL("SELECT COALESCE({}({}(), %s::pg_lsn) >= 0, false)").format(
        _fn(version, "pg_wal_lsn_diff"), _fn(version, "pg_last_wal_replay_lsn")
    ), (target,)


REPLICATION_FIELDS = ("application_name", "state", "sent_lsn", "write_lsn", "flush_lsn",
                      "replay_lsn", "sync_priority", "sync_state", "client_addr", "pid")


def replication_status(version: ServerVersion, in_recovery: bool = False
                       ) -> tuple[sql.Composable, tuple[object, ...], tuple[str, ...]]:
    """Rows of ``pg_stat_replication`` under canonical names, plus lag in bytes and time.

    Columns: the :data:`REPLICATION_FIELDS`, then ``replay_lag_bytes`` (this server's position
    minus ``replay_lsn``, via ``pg_wal_lsn_diff``: a primary's current LSN, or for a cascading
    standby the WAL it has received itself) and ``replay_lag`` (an interval; NULL on 9.6,
    which has no lag columns), and the slot this walsender uses (if any).
    """
    adapter = version.adapter
    view = "pg_stat_replication"
    cols: list[sql.Composable] = []
    for name in REPLICATION_FIELDS:
        actual = sql.Identifier("r", adapter.column(view, name))
        cast = sql.SQL("::text") if name.endswith("_lsn") or name == "client_addr" else sql.SQL("")
        cols.append(sql.SQL("{}{} AS {}").format(actual, cast, sql.Identifier(name)))
    if in_recovery:
        position = sql.SQL("COALESCE({}(), {}())").format(
            _fn(version, "pg_last_wal_receive_lsn"), _fn(version, "pg_last_wal_replay_lsn"))
    else:
        position = sql.SQL("{}()").format(_fn(version, "pg_current_wal_lsn"))
    cols.append(sql.SQL("{}({}, {})::bigint AS replay_lag_bytes").format(
        _fn(version, "pg_wal_lsn_diff"), position,
        sql.Identifier("r", adapter.column(view, "replay_lsn"))))
    if adapter.has("column", "replay_lag", view):
        cols.append(sql.SQL("{} AS replay_lag").format(sql.Identifier("r", "replay_lag")))
    else:
        cols.append(sql.SQL("NULL::interval AS replay_lag"))
    cols.append(sql.SQL("s.slot_name::text AS slot_name"))
    names = (*REPLICATION_FIELDS, "replay_lag_bytes", "replay_lag", "slot_name")
    query = sql.SQL(
        "SELECT {} FROM pg_stat_replication r "
        "LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid "
        "ORDER BY r.application_name"
    ).format(sql.SQL(", ").join(cols))
    return query, (), names


SLOT_FIELDS = ("name", "active", "active_pid", "restart_lsn", "retained_bytes", "wal_status",
               "safe_wal_size", "inactive_since", "temporary", "invalidation_reason")


def slot_status(version: ServerVersion, in_recovery: bool = False,
                name: str | None = None) -> Query:
    """Physical slots with WAL retained in bytes; version-only columns NULL where absent."""
    adapter = version.adapter
    view = "pg_replication_slots"
    position = "pg_last_wal_receive_lsn" if in_recovery else "pg_current_wal_lsn"

    def optional(col: str, cast: str) -> sql.Composable:
        if adapter.has("column", col, view):
            return sql.Identifier(col)
        return sql.SQL("NULL::" + cast)  # a constant type name, never user input

    query = sql.SQL(
        "SELECT slot_name::text, active, active_pid, restart_lsn::text, "
        "{diff}({pos}(), restart_lsn)::bigint, {wal_status}, {safe}, {inactive}, {temporary}, "
        "{reason} "
        "FROM pg_replication_slots WHERE slot_type = 'physical'{filter} ORDER BY slot_name"
    ).format(
        diff=_fn(version, "pg_wal_lsn_diff"),
        pos=_fn(version, position),
        wal_status=optional("wal_status", "text"),
        safe=optional("safe_wal_size", "bigint"),
        inactive=optional("inactive_since", "timestamptz"),
        temporary=optional("temporary", "boolean"),
        reason=optional("invalidation_reason", "text"),
        filter=sql.SQL(" AND slot_name = %s") if name is not None else sql.SQL(""),
    )
    return query, ((name,) if name is not None else ())


def create_slot(version: ServerVersion, name: str) -> Query:
    """The seed's step 4: a physical slot that reserves WAL immediately."""
    identifiers.slot_name(name)
    return sql.SQL("SELECT * FROM {}(%s, true)").format(
        _fn(version, "pg_create_physical_replication_slot")), (name,)


def drop_slot(version: ServerVersion, name: str) -> Query:
    """The seed's step 14."""
    identifiers.slot_name(name)
    return sql.SQL("SELECT {}(%s)").format(_fn(version, "pg_drop_replication_slot")), (name,)


def role_state(name: str) -> Query:
    identifiers.role_name(name)
    # pg_authid (superuser) holds the verifier, so a re-apply can tell whether the password
    # already matches instead of resetting it every time.
    return sql.SQL(
        "SELECT rolreplication, rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s"
    ), (name,)


def create_role(name: str, verifier: str | None) -> sql.Composed:
    """The seed's step 3: ``CREATE ROLE name WITH LOGIN REPLICATION [PASSWORD verifier]``.

    ``verifier`` is a SCRAM (or md5) verifier computed on the client: the password itself never
    reaches the server, its logs or ``pg_stat_activity``.
    """
    identifiers.role_name(name)
    query = sql.SQL("CREATE ROLE {} WITH LOGIN REPLICATION").format(sql.Identifier(name))
    if verifier is not None:
        query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(verifier))
    return query


def alter_role(name: str, verifier: str | None = None) -> sql.Composed:
    identifiers.role_name(name)
    query = sql.SQL("ALTER ROLE {} WITH LOGIN REPLICATION").format(sql.Identifier(name))
    if verifier is not None:
        query = sql.SQL("{} PASSWORD {}").format(query, sql.Literal(verifier))
    return query


def settings_values(names: Sequence[str]) -> Query:
    """Current value, context and pending_restart of named settings."""
    return sql.SQL(
        "SELECT name, setting, context, pending_restart FROM pg_settings WHERE name = ANY(%s)"
    ), (list(names),)


def alter_system(name: str, value: str) -> sql.Composed:
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))


def pending_restart() -> Query:
    return sql.SQL("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name"), ()


def reload_conf() -> Query:
    return sql.SQL("SELECT pg_reload_conf()"), ()


def system_identifier() -> Query:
    return sql.SQL("SELECT system_identifier::text FROM pg_control_system()"), ()


def show(setting: str) -> sql.Composed:
    return sql.SQL("SHOW {}").format(sql.Identifier(setting))


def wal_receiver(version: ServerVersion) -> Query:
    """On a standby: the walreceiver's status, sender and flushed LSN (received_lsn before 13)."""
    adapter = version.adapter
    flushed = adapter.column("pg_stat_wal_receiver", "flushed_lsn")
    return sql.SQL("SELECT status, {}::text, slot_name FROM pg_stat_wal_receiver").format(
        sql.Identifier(flushed)), ()


def promote(version: ServerVersion, wait: bool = True, wait_seconds: int = 60) -> Query:
    return sql.SQL("SELECT {}(%s, %s)").format(_fn(version, "pg_promote")), (wait, wait_seconds)


def replay_delay() -> Query:
    """On a standby: ``now() - pg_last_xact_replay_timestamp()`` (9.6's only time lag)."""
    return sql.SQL("SELECT now() - pg_last_xact_replay_timestamp()"), ()


def timeline(version: ServerVersion, in_recovery: bool = False) -> Query:
    """A primary's timeline from its current WAL file's name; a standby's from its walreceiver,
    else from its last restartpoint."""
    if in_recovery:
        return sql.SQL(
            "SELECT COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), "
            "(SELECT timeline_id FROM pg_control_checkpoint()))"), ()
    return sql.SQL("SELECT ('x' || substr({}({}()), 1, 8))::bit(32)::int").format(
        _fn(version, "pg_walfile_name"), _fn(version, "pg_current_wal_lsn")), ()


def replay_paused(version: ServerVersion) -> Query:
    """On a standby: is WAL replay paused (``pg_is_xlog_replay_paused`` on 9.6)?"""
    return sql.SQL("SELECT {}()").format(_fn(version, "pg_is_wal_replay_paused")), ()


def walsender_state(application_name: str) -> Query:
    """On an upstream: the state of its walsender(s) for that standby."""
    return sql.SQL(
        "SELECT state FROM pg_stat_replication WHERE application_name = %s"), (application_name,)


# -- major version upgrade (pgstream.ops.upgrade)

# Settings never carried to the new cluster: file locations (the new data directory has its
# own) and the recovery settings pgstream writes itself for the new major.
NOT_CARRIED = ("data_directory", "config_file", "hba_file", "ident_file", "external_pid_file",
               "primary_conninfo", "primary_slot_name")


def file_settings() -> Query:
    """Settings a server took from its configuration files, as ``current_setting`` shows them
    (with units), without file locations and recovery settings."""
    return sql.SQL(
        "SELECT name, current_setting(name) FROM pg_settings "
        "WHERE source = 'configuration file' AND NOT (name = ANY(%s)) ORDER BY name"
    ), (list(NOT_CARRIED),)


def connectable_databases() -> Query:
    return sql.SQL("SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname"), ()


def extensions() -> Query:
    """In the connected database: its extensions (plpgsql too)."""
    return sql.SQL("SELECT extname FROM pg_extension ORDER BY extname"), ()


def template_locale() -> Query:
    """Encoding, collation and ctype of template0 (the new cluster's initdb must match)."""
    return sql.SQL(
        "SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
        "WHERE datname = 'template0'"), ()


def bootstrap_superuser() -> Query:
    """The install user (OID 10): pg_upgrade must run as it, on both clusters."""
    return sql.SQL("SELECT rolname FROM pg_authid WHERE oid = 10"), ()


def total_database_size() -> Query:
    return sql.SQL("SELECT sum(pg_database_size(oid))::bigint FROM pg_database"), ()


def non_physical_slots() -> Query:
    """Slots a major upgrade may lose: logical ones (physical ones pgstream recreates)."""
    return sql.SQL(
        "SELECT slot_name::text, slot_type FROM pg_replication_slots "
        "WHERE slot_type <> 'physical' ORDER BY slot_name"), ()


def tablespaces() -> Query:
    """Tablespaces besides pg_default and pg_global (kept outside the data directory)."""
    return sql.SQL(
        "SELECT spcname FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global') "
        "ORDER BY spcname"), ()
