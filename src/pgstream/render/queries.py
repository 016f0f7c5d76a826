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


def _position(version: ServerVersion, in_recovery: bool | None) -> sql.Composable:
    """This server's WAL position: a primary's current LSN, a standby's received (else
    replayed) LSN; ``in_recovery=None`` decides on the server (``pg_is_in_recovery()``)."""
    standby = sql.SQL("COALESCE({}(), {}())").format(
        _fn(version, "pg_last_wal_receive_lsn"), _fn(version, "pg_last_wal_replay_lsn"))
    primary = sql.SQL("{}()").format(_fn(version, "pg_current_wal_lsn"))
    if in_recovery is None:
        return sql.SQL("CASE WHEN pg_is_in_recovery() THEN {} ELSE {} END").format(
            standby, primary)
    return standby if in_recovery else primary


def node_facts(version: ServerVersion) -> Query:
    """What ``status()`` asks of every node, in one statement, primary or standby alike:
    ``pg_is_in_recovery()``, its WAL position (:func:`_position`), its timeline (as
    :func:`timeline`), its replay LSN (NULL on a primary), ``now() -
    pg_last_xact_replay_timestamp()`` (9.6's only time lag) and whether replay is paused
    (NULL on a primary)."""
    return sql.SQL(
        "SELECT pg_is_in_recovery(), ({})::text, "
        "CASE WHEN pg_is_in_recovery() THEN ({}) ELSE ({}) END, {}()::text, "
        "now() - {}(), CASE WHEN pg_is_in_recovery() THEN {}() END"
    ).format(
        _position(version, None), timeline(version, True)[0], timeline(version, False)[0],
        _fn(version, "pg_last_wal_replay_lsn"), _fn(version, "pg_last_xact_replay_timestamp"),
        _fn(version, "pg_is_wal_replay_paused"),
    ), ()


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
    """On a standby: the last replayed LSN (``pg_last_xlog_replay_location`` on 9.6)."""
    return sql.SQL("SELECT {}()::text").format(_fn(version, "pg_last_wal_replay_lsn")), ()


def lsn_reached(version: ServerVersion, target: str) -> Query:
    """On a standby: has replay reached ``target``? (``pg_wal_lsn_diff`` >= 0)."""
    return sql.SQL("SELECT COALESCE({}({}(), %s::pg_lsn) >= 0, false)").format(
        _fn(version, "pg_wal_lsn_diff"), _fn(version, "pg_last_wal_replay_lsn")
    ), (target,)


REPLICATION_FIELDS = ("application_name", "state", "sent_lsn", "write_lsn", "flush_lsn",
                      "replay_lsn", "sync_priority", "sync_state", "client_addr", "pid")


def replication_status(version: ServerVersion, in_recovery: bool | None = False
                       ) -> tuple[sql.Composable, tuple[object, ...], tuple[str, ...]]:
    """Rows of ``pg_stat_replication`` under canonical names, plus lag in bytes and time.

    Columns: the :data:`REPLICATION_FIELDS`, then ``replay_lag_bytes`` (this server's position
    minus ``replay_lsn``, via ``pg_wal_lsn_diff``: a primary's current LSN, or for a cascading
    standby the WAL it has received itself) and ``replay_lag`` (an interval; NULL on 9.6,
    which has no lag columns), and the slot this walsender uses (if any). ``in_recovery``
    None: the server's own ``pg_is_in_recovery()`` picks the position.
    """
    adapter = version.adapter
    view = "pg_stat_replication"
    cols: list[sql.Composable] = []
    for name in REPLICATION_FIELDS:
        actual = sql.Identifier("r", adapter.column(view, name))
        cast = sql.SQL("::text") if name.endswith("_lsn") or name == "client_addr" else sql.SQL("")
        cols.append(sql.SQL("{}{} AS {}").format(actual, cast, sql.Identifier(name)))
    position = _position(version, in_recovery)
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


def slot_status(version: ServerVersion, in_recovery: bool | None = False,
                name: str | None = None) -> Query:
    """Physical slots with WAL retained in bytes; version-only columns NULL where absent.

    Retained bytes are counted from the primary's current LSN, or on a standby from the WAL
    it received; ``in_recovery`` None lets the server choose (``pg_is_in_recovery()``).
    """
    adapter = version.adapter
    view = "pg_replication_slots"
    receive = sql.SQL("{}()").format(_fn(version, "pg_last_wal_receive_lsn"))
    current = sql.SQL("{}()").format(_fn(version, "pg_current_wal_lsn"))
    position = (sql.SQL("CASE WHEN pg_is_in_recovery() THEN {} ELSE {} END").format(
        receive, current) if in_recovery is None else receive if in_recovery else current)

    def optional(col: str, cast: str) -> sql.Composable:
        if adapter.has("column", col, view):
            return sql.Identifier(col)
        return sql.SQL("NULL::" + cast)  # a constant type name, never user input

    query = sql.SQL(
        "SELECT slot_name::text, active, active_pid, restart_lsn::text, "
        "{diff}({pos}, restart_lsn)::bigint, {wal_status}, {safe}, {inactive}, {temporary}, "
        "{reason} "
        "FROM pg_replication_slots WHERE slot_type = 'physical'{filter} ORDER BY slot_name"
    ).format(
        diff=_fn(version, "pg_wal_lsn_diff"),
        pos=position,
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
    """The role's attributes and stored verifier: whether setup must create or alter it."""
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
    """``ALTER ROLE name WITH LOGIN REPLICATION [PASSWORD verifier]``: the verifier is computed
    on the client, never the password itself."""
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


SETTING_FIELDS = ("name", "setting", "context", "vartype", "unit", "min_val", "max_val",
                  "enumvals", "auto_conf")


def setting_definitions(names: Sequence[str]) -> Query:
    """What a value of each named setting must look like, and what it is, in one statement:
    :data:`SETTING_FIELDS` from ``pg_settings`` (``enumvals`` as a text array), and
    ``auto_conf``, the value ``postgresql.auto.conf`` holds for it (NULL: none), from
    ``pg_file_settings`` (superuser) of the file in this server's data directory."""
    return sql.SQL(
        "SELECT s.name, s.setting, s.context, s.vartype, s.unit, s.min_val, s.max_val, "
        "s.enumvals::text[], (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name "
        "AND f.error IS NULL AND f.sourcefile = current_setting('data_directory') "
        "|| '/postgresql.auto.conf' ORDER BY f.seqno DESC LIMIT 1) "
        "FROM pg_settings s WHERE s.name = ANY(%s)"
    ), (list(names),)


def file_settings(names: Sequence[str]) -> Query:
    """Per named setting: the value in effect, its source, what the configuration files hold
    (the last valid ``pg_file_settings`` entry, else the built-in default), and what
    ``postgresql.auto.conf`` holds (NULL: no entry there)."""
    return sql.SQL(
        "SELECT s.name, s.setting, s.source, COALESCE(f.setting, s.boot_val), "
        "(SELECT a.setting FROM pg_file_settings a WHERE a.name = s.name AND a.error IS NULL "
        "AND a.sourcefile = current_setting('data_directory') || '/postgresql.auto.conf' "
        "ORDER BY a.seqno DESC LIMIT 1) "
        "FROM pg_settings s LEFT JOIN LATERAL ("
        "SELECT setting FROM pg_file_settings WHERE name = s.name AND error IS NULL "
        "ORDER BY seqno DESC LIMIT 1) f ON true "
        "WHERE s.name = ANY(%s)"), (list(names),)


def alter_system(name: str, value: str) -> sql.Composed:
    """``ALTER SYSTEM SET name = value`` (utility statement: the value is a literal)."""
    return sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value))


def alter_system_reset(name: str) -> sql.Composed:
    """Remove a setting from ``postgresql.auto.conf`` (undoes an ``ALTER SYSTEM SET`` that
    added it)."""
    return sql.SQL("ALTER SYSTEM RESET {}").format(sql.Identifier(name))


def pending_restart() -> Query:
    """The settings whose new value waits for a restart (``pg_settings.pending_restart``)."""
    return sql.SQL("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name"), ()


def reload_conf() -> Query:
    """``SELECT pg_reload_conf()``."""
    return sql.SQL("SELECT pg_reload_conf()"), ()


def system_identifier() -> Query:
    """The system identifier of the running server (``pg_control_system()``)."""
    return sql.SQL("SELECT system_identifier::text FROM pg_control_system()"), ()


def show(setting: str) -> sql.Composed:
    """``SHOW name`` for one setting (the name quoted as an identifier)."""
    return sql.SQL("SHOW {}").format(sql.Identifier(setting))


def wal_receiver(version: ServerVersion) -> Query:
    """On a standby: the walreceiver's status, sender and flushed LSN (received_lsn before 13)."""
    adapter = version.adapter
    flushed = adapter.column("pg_stat_wal_receiver", "flushed_lsn")
    return sql.SQL("SELECT status, {}::text, slot_name FROM pg_stat_wal_receiver").format(
        sql.Identifier(flushed)), ()


def promote(version: ServerVersion, wait: bool = True, wait_seconds: int = 60) -> Query:
    """``SELECT pg_promote(wait, seconds)`` (12+)."""
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


def walsender_state(application_name: str, slot: str | None = None) -> Query:
    """On an upstream: the state of its walsender(s) for that standby (through ``slot``, when
    given: two standbys may share an ``application_name`` such as ``walreceiver``)."""
    if slot is None:
        return sql.SQL("SELECT state FROM pg_stat_replication WHERE application_name = %s"), (
            application_name,)
    return sql.SQL(
        "SELECT r.state FROM pg_stat_replication r JOIN pg_replication_slots s "
        "ON s.active_pid = r.pid WHERE r.application_name = %s AND s.slot_name = %s"), (
        application_name, slot)


def resume_replay(version: ServerVersion) -> Query:
    """On a standby: resume paused WAL replay."""
    return sql.SQL("SELECT {}()").format(_fn(version, "pg_wal_replay_resume")), ()


IDENTITY_FIELDS = ("data_directory", "port", "in_recovery", "system_identifier", "backend_pid",
                   "current_lsn", "replay_lsn", "replay_paused", "streams_to")


def server_identity(version: ServerVersion,
                    streaming_to: tuple[str, str | None] | None = None) -> Query:
    """What a live server says about itself, in one round trip (:data:`IDENTITY_FIELDS`).

    Its data directory and port (superuser or ``pg_read_all_settings``), whether it is in
    recovery, its ``system_identifier`` (``pg_control_system()``, 9.6+) and this backend's
    pid; a primary's current LSN, or a standby's replay LSN and whether replay is paused
    (each NULL where it does not apply); and whether it has a streaming walsender for the
    standby ``streaming_to``: its ``(application_name, slot)``, the slot None when it uses
    none (false when ``streaming_to`` is None).
    """
    app, slot = streaming_to if streaming_to is not None else (None, None)
    return sql.SQL(
        "SELECT current_setting('data_directory'), current_setting('port')::int, "
        "pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system()), "
        "pg_backend_pid(), "
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE {}()::text END, "
        "CASE WHEN pg_is_in_recovery() THEN {}()::text END, "
        "CASE WHEN pg_is_in_recovery() THEN {}() END, "
        "EXISTS (SELECT 1 FROM pg_stat_replication r "
        "WHERE r.application_name = %s AND r.state = 'streaming' AND (%s::text IS NULL OR "
        "r.pid IN (SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s)))"
    ).format(_fn(version, "pg_current_wal_lsn"), _fn(version, "pg_last_wal_replay_lsn"),
             _fn(version, "pg_is_wal_replay_paused")), (app, slot, slot)


def walsenders() -> Query:
    """On an upstream: ``max_wal_senders`` and how many walsenders run now (base backups
    included: a ``pg_basebackup -X stream`` takes two)."""
    return sql.SQL("SELECT current_setting('max_wal_senders')::int, "
                   "(SELECT count(*) FROM pg_stat_replication)::int"), ()


def replication_slots() -> Query:
    """On an upstream: ``max_replication_slots`` and the names of every slot that exists now
    (physical and logical: each takes one of ``max_replication_slots``)."""
    return sql.SQL("SELECT current_setting('max_replication_slots')::int, "
                   "ARRAY(SELECT slot_name::text FROM pg_replication_slots ORDER BY 1)"), ()


def checkpoint() -> Query:
    """``CHECKPOINT`` (superuser): the server's ``pg_control`` then names its current state."""
    return sql.SQL("CHECKPOINT"), ()


def advance_slot(version: ServerVersion, name: str, target: str) -> Query:
    """``pg_replication_slot_advance(name, target)`` (11+): move a slot forward; returns where
    it ended."""
    identifiers.slot_name(name)
    fn = sql.Identifier(version.adapter.function("pg_replication_slot_advance"))
    return sql.SQL("SELECT end_lsn::text FROM {}(%s, %s::pg_lsn)").format(fn), (name, target)
