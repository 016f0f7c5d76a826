"""SQL about what a cluster holds: databases, extensions, tablespaces, locale, size, slots.

The pytest plugin creates and drops databases with these statements; a major upgrade's
pre-checks (:mod:`pgstream.ops.upgrade.checks`) read the rest. Pure, like
:mod:`pgstream.render.queries`: each builder returns a ``(statement, params)`` pair or a
``sql.Composed``.
"""

from __future__ import annotations

from psycopg import sql

from pgstream.render.queries import Query


def create_database(name: str) -> sql.Composed:
    """``CREATE DATABASE name`` (a copy of template1), for the pytest plugin's ``pgstream_db``."""
    return sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))


def drop_database(name: str) -> sql.Composed:
    """``DROP DATABASE IF EXISTS name``: the undo of :func:`create_database` (end its other
    sessions first with :func:`terminate_sessions`)."""
    return sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name))


def terminate_sessions(dbname: str) -> Query:
    """End every other session connected to ``dbname`` (so that it can be dropped)."""
    return sql.SQL(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()"), (dbname,)


def database_exists(dbname: str) -> Query:
    """One boolean row: is there a database named ``dbname``?"""
    return sql.SQL("SELECT count(*) > 0 FROM pg_database WHERE datname = %s"), (dbname,)


def connectable_databases() -> Query:
    """The names of the databases that accept connections (``datallowconn``), sorted: those
    an upgrade pre-check visits, one connection each."""
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
    """One row: the size of every database together, in bytes (what a copy must make room
    for)."""
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


NOT_CARRIED = ("data_directory", "config_file", "hba_file", "ident_file", "external_pid_file",
               "primary_conninfo", "primary_slot_name")
"""Settings an upgrade never carries to the new cluster: file locations and recovery."""


def carried_settings() -> Query:
    """Settings a server took from its configuration files, as ``current_setting`` shows them
    (with units), without file locations and recovery settings (what an upgrade carries)."""
    return sql.SQL(
        "SELECT name, current_setting(name) FROM pg_settings "
        "WHERE source = 'configuration file' AND NOT (name = ANY(%s)) ORDER BY name"
    ), (list(NOT_CARRIED),)
