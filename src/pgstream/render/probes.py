"""Read-only probes: what discovery (:mod:`pgstream.ops.discover.cluster`) and ``check()``
(:mod:`pgstream.ops.check`) ask each server about itself. Pure, like :mod:`.queries`: names
from the version table, values as parameters.
"""

from __future__ import annotations

from psycopg import sql

from pgstream.facts import identifiers
from pgstream.facts.version import ServerVersion
from pgstream.render.queries import Query, _fn

SERVER_FACTS = ("version_num", "in_recovery", "system_identifier", "data_directory",
                "config_file", "hba_file", "port", "cluster_name", "logging_collector",
                "log_directory", "log_filename", "listen_addresses",
                "unix_socket_directories")


def server_facts() -> Query:
    """One round trip for what discovery asks every server first (the names of
    :data:`SERVER_FACTS`, in that order); needs a superuser (or pg_read_all_settings)."""
    settings = [sql.SQL("current_setting({})").format(sql.Literal(name))
                for name in ("server_version_num",)]
    rest = [sql.SQL("current_setting({})").format(sql.Literal(name))
            for name in SERVER_FACTS[3:]]
    return sql.SQL(
        "SELECT {}, pg_is_in_recovery(), "
        "(SELECT system_identifier::text FROM pg_control_system()), {}"
    ).format(sql.SQL(", ").join(settings), sql.SQL(", ").join(rest)), ()


WAL_RECEIVER_FIELDS = ("status", "slot_name", "sender_host", "sender_port", "conninfo")


def wal_receiver_facts(version: ServerVersion) -> Query:
    """On a standby: its walreceiver's status, slot, sender (11+; NULL before) and conninfo
    (the password shown as ``********``), as :data:`WAL_RECEIVER_FIELDS`."""
    adapter = version.adapter
    view = "pg_stat_wal_receiver"
    sender = [sql.Identifier(col) if adapter.has("column", col, view)
              else sql.SQL("NULL")  # constant, never user input
              for col in ("sender_host", "sender_port")]
    return sql.SQL(
        "SELECT status, slot_name::text, {}::text, {}::int, conninfo FROM pg_stat_wal_receiver"
    ).format(*sender), ()


def recovery_settings(version: ServerVersion) -> Query:
    """On a standby of 12+: ``primary_conninfo`` and ``primary_slot_name`` as configured
    (before 12 they live in ``recovery.conf``, which is no setting: both NULL)."""
    adapter = version.adapter
    values = [sql.SQL("current_setting({})").format(sql.Literal(name))
              if adapter.has("setting", name) else sql.SQL("NULL::text")
              for name in ("primary_conninfo", "primary_slot_name")]
    return sql.SQL("SELECT {}, {}").format(*values), ()


def synchronous_names() -> Query:
    """The primary's ``synchronous_standby_names`` in effect, and where it comes from."""
    return sql.SQL(
        "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_standby_names'"), ()


def role_facts(version: ServerVersion) -> Query:
    """In one round trip: in recovery?, the system identifier, and (a standby) the conninfo
    it streams with (12+ the setting; before, the walreceiver's, password masked)."""
    if version.adapter.has("setting", "primary_conninfo"):
        conninfo: sql.Composable = sql.SQL(
            "CASE WHEN pg_is_in_recovery() THEN current_setting('primary_conninfo') END")
    else:
        conninfo = sql.SQL("(SELECT conninfo FROM pg_stat_wal_receiver)")
    return sql.SQL(
        "SELECT pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system()), "
        "{}").format(conninfo), ()


CHECK_SETTINGS = ("wal_level", "max_wal_senders", "max_replication_slots", "hot_standby",
                  "synchronous_standby_names", "max_slot_wal_keep_size", "logging_collector",
                  "log_directory", "data_directory", "cluster_name", "primary_conninfo",
                  "primary_slot_name")


def check_settings(version: ServerVersion) -> Query:
    """The settings ``check()`` judges, those this version has (``name, setting``)."""
    names = [version.adapter.setting(n) for n in CHECK_SETTINGS
             if version.adapter.has("setting", n)]
    return sql.SQL("SELECT name, setting FROM pg_settings WHERE name = ANY(%s)"), (names,)


def node_state(version: ServerVersion) -> Query:
    """In recovery, system identifier, the timeline (a primary's), and this node's WAL
    position: current (primary) or received/replayed (standby), in one round trip."""
    return sql.SQL(
        "SELECT pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system()), "
        "CASE WHEN pg_is_in_recovery() THEN NULL ELSE {cur}()::text END, "
        "CASE WHEN pg_is_in_recovery() THEN {recv}()::text END, "
        "CASE WHEN pg_is_in_recovery() THEN {replay}()::text END"
    ).format(cur=_fn(version, "pg_current_wal_lsn"), recv=_fn(version, "pg_last_wal_receive_lsn"),
             replay=_fn(version, "pg_last_wal_replay_lsn")), ()


def standby_replay_state(version: ServerVersion) -> Query:
    """On a standby: is replay paused, and how old is the last replayed transaction
    (seconds; NULL when none was replayed)."""
    return sql.SQL(
        "SELECT {paused}(), EXTRACT(EPOCH FROM now() - {ts}())::float8"
    ).format(paused=_fn(version, "pg_is_wal_replay_paused"),
             ts=_fn(version, "pg_last_xact_replay_timestamp")), ()


WAL_RECEIVER_DETAIL_FIELDS = ("status", "received_tli", "flushed_lsn", "slot_name", "sender_host",
                              "sender_port", "conninfo")


def wal_receiver_detail(version: ServerVersion) -> Query:
    """On a standby: the walreceiver's row (no row when none runs), columns
    :data:`WAL_RECEIVER_DETAIL_FIELDS`; ``sender_host``/``sender_port`` NULL before 11."""
    adapter = version.adapter
    view = "pg_stat_wal_receiver"
    cols: list[sql.Composable] = []
    for name in WAL_RECEIVER_DETAIL_FIELDS:
        if adapter.has("column", name, view):
            cast = sql.SQL("::text") if name in ("flushed_lsn", "sender_host", "conninfo",
                                                 "slot_name", "status") else sql.SQL("")
            cols.append(sql.SQL("{}{}").format(sql.Identifier(adapter.column(view, name)), cast))
        else:
            cols.append(sql.SQL("NULL"))
    return sql.SQL("SELECT {} FROM pg_stat_wal_receiver WHERE pid IS NOT NULL").format(
        sql.SQL(", ").join(cols)), ()


def current_logfile(version: ServerVersion) -> Query:
    """The log file the logging collector writes now (10+; NULL without the collector)."""
    return sql.SQL("SELECT {}()").format(_fn(version, "pg_current_logfile")), ()


def read_server_file(name: str) -> Query:
    """A file of the data directory, read by the server (superuser): ``recovery.conf``."""
    return sql.SQL("SELECT pg_read_file(%s)"), (name,)


def role_flags(name: str) -> Query:
    """Does the role exist, and may it log in and replicate? (``pg_roles``: no superuser
    needed; no row when the role does not exist)."""
    identifiers.role_name(name)
    return sql.SQL("SELECT rolreplication, rolcanlogin FROM pg_roles WHERE rolname = %s"), (
        name,)


def in_recovery() -> Query:
    """``SELECT pg_is_in_recovery()``: is the server a standby (or recovering)?"""
    return sql.SQL("SELECT pg_is_in_recovery()"), ()


def server_clock() -> Query:
    """The server's own clock (``clock_timestamp()``), for ages measured server-side."""
    return sql.SQL("SELECT clock_timestamp()"), ()


def sync_states(version: ServerVersion) -> sql.Composed:
    """On a primary: each walsender's ``application_name``, ``sync_priority`` and
    ``sync_state``, ordered by name and start."""
    adapter = version.adapter
    view = "pg_stat_replication"
    name, priority, state, started = (
        sql.Identifier(adapter.column(view, column))
        for column in ("application_name", "sync_priority", "sync_state", "backend_start"))
    return sql.SQL("SELECT {}, {}, {} FROM pg_stat_replication ORDER BY {}, {}").format(
        name, priority, state, name, started)


def setting_source(name: str) -> Query:
    """One setting's value, its source and the file it comes from (``pg_settings``)."""
    return (sql.SQL("SELECT setting, source, sourcefile FROM pg_settings WHERE name = %s"),
            (name,))


def timeline_history(version: ServerVersion, timeline: int) -> Query:
    """The ``NNNNNNNN.history`` file of ``timeline`` in the WAL directory, read by the server
    (superuser): where each earlier timeline ended."""
    wal = version.adapter.file("pg_wal")
    return sql.SQL("SELECT pg_read_file(%s)"), (f"{wal}/{int(timeline):08X}.history",)


def hba_errors() -> Query:
    """The lines of ``pg_hba.conf`` the server could not load (10+: ``pg_hba_file_rules``)."""
    return sql.SQL("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL"), ()
