"""The one version table: what each replication name, file, setting and feature is called
on each major, from 9.6 to 18, and a ``VersionAdapter`` that answers from it.

Every version-dependent decision in pgstream goes through :class:`VersionAdapter`; no other
module compares version numbers to pick a name. Canonical names are the newest ones
(``pg_wal_lsn_diff``, ``replay_lsn``); asking for one on a version that calls it something else
returns that version's name, and asking for one the version does not have raises
:class:`~pgstream.errors.NotAvailable` naming the version that introduced (or removed) it.

Source: PostgreSQL's catalogs, system views, GUC tables and tool options, 9.6 to 18.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

import attrs

from pgstream.errors import NotAvailable

Kind = Literal["function", "column", "setting", "file", "tool", "option", "conninfo",
               "feature"]

V96, V10, V11, V12, V13, V14, V15, V16, V17, V18 = (
    90600, 100000, 110000, 120000, 130000, 140000, 150000, 160000, 170000, 180000,
)


@attrs.frozen
class Name:
    """One row of the table: a thing, when it exists, and what it was called before."""

    kind: Kind
    canonical: str
    scope: str = ""  # the view, for columns
    since: int = V96  # first version that has it (under any name)
    until: int | None = None  # first version that no longer has it
    old: str | None = None  # its name before ``renamed``
    renamed: int | None = None
    replaced_by: str | None = None  # what to use instead once it is gone
    reload_since: int | None = None  # settings: first version where a reload applies it
    note: str = ""

    def exists(self, num: int) -> bool:
        """Does a server of ``num`` (``server_version_num``) have it, under any name?"""
        return num >= self.since and (self.until is None or num < self.until)

    def name_on(self, num: int) -> str:
        """What a server of ``num`` calls it."""
        if self.old is not None and self.renamed is not None and num < self.renamed:
            return self.old
        return self.canonical


def _fn(canonical: str, old: str | None = None, since: int = V96, until: int | None = None,
        replaced_by: str | None = None) -> Name:
    return Name("function", canonical, since=since, until=until, old=old,
                renamed=V10 if old else None, replaced_by=replaced_by)


def _cols(view: str, *names: str, since: int = V96, until: int | None = None) -> list[Name]:
    return [Name("column", n, scope=view, since=since, until=until) for n in names]


def _set(canonical: str, since: int = V96, until: int | None = None, *,
         replaced_by: str | None = None, reload_since: int | None = None,
         old: str | None = None, renamed: int | None = None, note: str = "") -> Name:
    return Name("setting", canonical, since=since, until=until, replaced_by=replaced_by,
                reload_since=reload_since, old=old, renamed=renamed, note=note)


def _feature(canonical: str, since: int, note: str) -> Name:
    return Name("feature", canonical, since=since, note=note)


TABLE: tuple[Name, ...] = (
    # -- functions: renamed in 10 (no aliases remain)
    _fn("pg_current_wal_lsn", "pg_current_xlog_location"),
    _fn("pg_current_wal_insert_lsn", "pg_current_xlog_insert_location"),
    _fn("pg_current_wal_flush_lsn", "pg_current_xlog_flush_location"),
    _fn("pg_last_wal_receive_lsn", "pg_last_xlog_receive_location"),
    _fn("pg_last_wal_replay_lsn", "pg_last_xlog_replay_location"),
    _fn("pg_wal_lsn_diff", "pg_xlog_location_diff"),
    _fn("pg_walfile_name", "pg_xlogfile_name"),
    _fn("pg_walfile_name_offset", "pg_xlogfile_name_offset"),
    _fn("pg_switch_wal", "pg_switch_xlog"),
    _fn("pg_wal_replay_pause", "pg_xlog_replay_pause"),
    _fn("pg_wal_replay_resume", "pg_xlog_replay_resume"),
    _fn("pg_is_wal_replay_paused", "pg_is_xlog_replay_paused"),
    # -- functions: unchanged, or added later
    _fn("pg_is_in_recovery"),
    _fn("pg_last_xact_replay_timestamp"),
    _fn("pg_create_physical_replication_slot"),
    _fn("pg_drop_replication_slot"),
    _fn("pg_reload_conf"),
    _fn("pg_control_system"),
    _fn("pg_control_checkpoint"),
    _fn("pg_current_logfile", since=V10),
    _fn("pg_replication_slot_advance", since=V11),
    _fn("pg_promote", since=V12),
    _fn("pg_copy_physical_replication_slot", since=V12),
    _fn("pg_get_wal_replay_pause_state", since=V14),
    _fn("pg_start_backup", until=V15, replaced_by="pg_backup_start"),
    _fn("pg_stop_backup", until=V15, replaced_by="pg_backup_stop"),
    _fn("pg_backup_start", since=V15),
    _fn("pg_backup_stop", since=V15),
    # -- pg_stat_replication (primary side, one row per walsender)
    *_cols("pg_stat_replication", "pid", "usesysid", "usename", "application_name",
           "client_addr", "client_hostname", "client_port", "backend_start", "backend_xmin",
           "state", "sync_priority", "sync_state"),
    *(Name("column", f"{w}_lsn", scope="pg_stat_replication", old=f"{w}_location", renamed=V10)
      for w in ("sent", "write", "flush", "replay")),
    *_cols("pg_stat_replication", "write_lag", "flush_lag", "replay_lag", since=V10),
    *_cols("pg_stat_replication", "reply_time", since=V12),
    # -- pg_stat_wal_receiver (standby side)
    *_cols("pg_stat_wal_receiver", "pid", "status", "receive_start_lsn", "receive_start_tli",
           "received_tli", "last_msg_send_time", "last_msg_receipt_time", "latest_end_lsn",
           "latest_end_time", "slot_name", "conninfo"),
    # flushed_lsn has received_lsn's old meaning (flushed to disk); written_lsn is new in 13.
    Name("column", "flushed_lsn", scope="pg_stat_wal_receiver", old="received_lsn", renamed=V13),
    *_cols("pg_stat_wal_receiver", "written_lsn", since=V13),
    *_cols("pg_stat_wal_receiver", "sender_host", "sender_port", since=V11),
    # -- pg_replication_slots
    *_cols("pg_replication_slots", "slot_name", "plugin", "slot_type", "datoid", "database",
           "active", "active_pid", "xmin", "catalog_xmin", "restart_lsn", "confirmed_flush_lsn"),
    *_cols("pg_replication_slots", "temporary", since=V10),
    *_cols("pg_replication_slots", "wal_status", "safe_wal_size", since=V13),
    *_cols("pg_replication_slots", "two_phase", since=V14),
    *_cols("pg_replication_slots", "conflicting", since=V16),
    *_cols("pg_replication_slots", "inactive_since", "invalidation_reason", "failover", "synced",
           since=V17),
    *_cols("pg_replication_slots", "two_phase_at", since=V18),
    # -- settings
    _set("listen_addresses"),
    _set("port"),
    _set("cluster_name"),
    _set("data_directory"),
    _set("logging_collector"),
    _set("log_directory", note="default 'log' from 10 ('pg_log' before)"),
    _set("log_filename"),
    _set("wal_level", note="'replica' from 9.6; default replica from 10 (minimal before)"),
    _set("max_wal_senders", note="default 10 from 10 (0 before)"),
    _set("max_replication_slots", note="default 10 from 10 (0 before)"),
    _set("hot_standby", note="default on from 10 (off before)"),
    _set("wal_keep_segments", until=V13, replaced_by="wal_keep_size"),
    _set("wal_keep_size", since=V13, note="MB; was wal_keep_segments x segment size"),
    _set("max_slot_wal_keep_size", since=V13),
    _set("wal_receiver_create_temp_slot", since=V13),
    _set("wal_log_hints"),
    _set("full_page_writes"),
    _set("hot_standby_feedback"),
    _set("synchronous_standby_names"),
    _set("synchronous_commit"),
    _set("password_encryption", note="boolean (md5) on 9.6; md5/scram-sha-256 from 10"),
    _set("synchronized_standby_slots", since=V17),
    _set("sync_replication_slots", since=V17),
    _set("idle_replication_slot_timeout", since=V18),
    # recovery parameters: recovery.conf entries before 12, settings from 12
    _set("primary_conninfo", since=V12, reload_since=V13,
         note="a recovery.conf entry before 12"),
    _set("primary_slot_name", since=V12, reload_since=V13,
         note="a recovery.conf entry before 12"),
    _set("restore_command", since=V12, reload_since=V14,
         note="a recovery.conf entry before 12"),
    _set("recovery_target_timeline", note="default 'latest' from 12 ('current' before)"),
    _set("standby_mode", until=V12, replaced_by="standby.signal"),
    _set("promote_trigger_file", until=V16, old="trigger_file", renamed=V12,
         replaced_by="pg_promote()"),
    # -- files in the data directory
    Name("file", "recovery.conf", until=V12, replaced_by="standby.signal"),
    Name("file", "standby.signal", since=V12),
    Name("file", "recovery.signal", since=V12),
    Name("file", "pg_wal", old="pg_xlog", renamed=V10),
    Name("file", "pg_xact", old="pg_clog", renamed=V10),
    Name("file", "postgresql.auto.conf"),
    # -- client programs
    Name("tool", "pg_receivewal", old="pg_receivexlog", renamed=V10),
    Name("tool", "pg_waldump", old="pg_xlogdump", renamed=V10),
    Name("tool", "pg_resetwal", old="pg_resetxlog", renamed=V10),
    Name("tool", "pg_basebackup"),
    Name("tool", "pg_rewind"),
    Name("tool", "pg_ctl"),
    Name("tool", "initdb"),
    Name("tool", "pg_controldata"),
    Name("tool", "pg_upgrade"),
    Name("tool", "vacuumdb"),
    # -- pg_basebackup options
    Name("option", "--wal-method", old="--xlog-method", renamed=V10),
    Name("option", "--waldir", old="--xlogdir", renamed=V10),
    Name("option", "--no-slot", since=V10),
    Name("option", "--no-sync", since=V10),
    Name("option", "--create-slot", since=V11),
    Name("option", "--no-manifest", since=V13),
    Name("option", "--wal-segsize", scope="initdb", since=V11),
    Name("option", "--no-sync", scope="initdb", old="--nosync", renamed=V10),
    Name("option", "--no-data-checksums", scope="initdb", since=V18),
    # -- pg_upgrade options, by the *new* installation's pg_upgrade
    Name("option", "--link", scope="pg_upgrade"),
    Name("option", "--clone", scope="pg_upgrade", since=V12),
    Name("option", "--copy", scope="pg_upgrade", since=V16,
         note="explicit copy mode; the default (no option) before"),
    Name("option", "--no-sync", scope="pg_upgrade", since=V15),
    # -- libpq connection options, by the libpq of that major: a standby's walreceiver parses
    # primary_conninfo with its server's libpq, so an option newer than the standby server
    # breaks streaming ("invalid connection option channel_binding" on a 10 standby).
    *(Name("conninfo", key) for key in (
        "host", "hostaddr", "port", "user", "dbname", "application_name", "connect_timeout",
        "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "keepalives",
        "keepalives_idle", "keepalives_interval", "keepalives_count", "options", "krbsrvname",
        "requirepeer")),
    *(Name("conninfo", key, since=V10) for key in ("passfile", "target_session_attrs")),
    *(Name("conninfo", key, since=V12) for key in ("gssencmode", "tcp_user_timeout")),
    *(Name("conninfo", key, since=V13) for key in (
        "channel_binding", "ssl_min_protocol_version", "ssl_max_protocol_version")),
    *(Name("conninfo", key, since=V14) for key in ("sslcrldir", "sslsni")),
    *(Name("conninfo", key, since=V16) for key in (
        "require_auth", "sslcertmode", "load_balance_hosts")),
    Name("conninfo", "sslnegotiation", since=V17),
    # -- features
    _feature("standby_signal", V12, "standby.signal + settings replace recovery.conf"),
    _feature("pg_promote", V12, "SELECT pg_promote() promotes; pg_ctl promote before"),
    _feature("pg_ctl_promote_waits", V10, "pg_ctl promote waits for the promotion by default"),
    _feature("temporary_slots", V10, "temporary physical slots"),
    _feature("lag_intervals", V10, "write_lag/flush_lag/replay_lag in pg_stat_replication"),
    _feature("scram", V10, "scram-sha-256 authentication"),
    _feature("scram_default", V14, "password_encryption defaults to scram-sha-256"),
    _feature("quorum_sync", V10, "synchronous_standby_names FIRST n (...) / ANY n (...); "
             "first/any become keywords (such standby names are double-quoted); "
             "sync_state 'quorum'"),
    _feature("pidfile_status", V10, "postmaster.pid line 8: starting/ready/standby/stopping"),
    _feature("hba_file_rules", V10, "pg_hba_file_rules shows pg_hba.conf parse errors"),
    _feature("local_replication_hba", V10, "the default pg_hba.conf allows local replication"),
    _feature("basebackup_temp_slot", V10, "pg_basebackup uses a temporary slot without -S"),
    _feature("slot_advance", V11, "pg_replication_slot_advance()"),
    _feature("walreceiver_cluster_name", V12, "walreceiver application_name = cluster_name"),
    _feature("max_wal_senders_check", V12, "a standby needs max_wal_senders >= the primary's"),
    _feature("wal_status", V13, "pg_replication_slots.wal_status and safe_wal_size"),
    _feature("slot_wal_limit", V13, "max_slot_wal_keep_size"),
    _feature("reload_primary_conninfo", V13, "primary_conninfo/primary_slot_name reloadable"),
    _feature("rewind_writes_recovery_config", V13, "pg_rewind -R"),
    _feature("rewind_from_standby", V14, "pg_rewind's source may be a standby"),
    _feature("replay_pause_state", V14, "pg_get_wal_replay_pause_state()"),
    _feature("exclusive_backup_removed", V15, "pg_backup_start/stop; no exclusive backups"),
    _feature("slot_inactive_since", V17, "pg_replication_slots.inactive_since"),
    _feature("failover_slots", V17, "logical failover slots, synchronized_standby_slots"),
    _feature("checksums_default", V18, "initdb enables data checksums by default"),
    _feature("monitor_sees_replication", 100002,
             "pg_monitor/pg_read_all_stats members see pg_stat_replication LSNs (10.2)"),
    _feature("rewind_non_superuser_source", V11, "pg_rewind source needs no superuser"),
    _feature("rewind_crash_recovery", V13, "pg_rewind recovers an unclean target first"),
    _feature("rewind_config_file", V15, "pg_rewind --config-file: the target's "
             "postgresql.conf, for that crash recovery (needed where it is not in PGDATA)"),
    _feature("progress_basebackup", V13, "pg_stat_progress_basebackup"),
    _feature("pg_stat_wal", V14, "pg_stat_wal"),
    _feature("in_hot_standby", V14, "the in_hot_standby setting"),
    _feature("pg_stat_io", V16, "pg_stat_io"),
    _feature("pg_stat_checkpointer", V17, "pg_stat_checkpointer"),
    _feature("md5_deprecated", V18, "md5 passwords warn"),
    _feature("upgrade_keeps_logical_slots", V17,
             "pg_upgrade carries logical slots over (when the old cluster is 17+); "
             "physical slots are never carried"),
    _feature("upgrade_output_dir", V15,
             "pg_upgrade writes its logs to pg_upgrade_output.d in the new data directory"),
    Name("feature", "pg_control_prev_checkpoint", until=V11,
         note="pg_control holds prevCheckPoint before the checkpoint copy (gone in 11)"),
)

_INDEX: dict[tuple[Kind, str, str], Name] = {}
for _row in TABLE:
    _INDEX[(_row.kind, _row.scope, _row.canonical)] = _row
    if _row.old is not None:
        _INDEX.setdefault((_row.kind, _row.scope, _row.old), _row)


def _label(num: int) -> str:
    """A version number's major as PostgreSQL names it: 90600 -> "9.6", 150004 -> "15"."""
    return f"{num // 10000}.{num // 100 % 100}" if num < 100000 else str(num // 10000)


class Versioned(Protocol):
    """What the table needs of a version (``ServerVersion`` is one): its number and major."""

    @property
    def num(self) -> int:
        """``server_version_num``."""

    @property
    def major(self) -> str:
        """``"9.6"``, ``"15"``."""


@attrs.frozen
class VersionAdapter:
    """Answers "what is this called on N?" for one server version."""

    version: Versioned

    def _lookup(self, kind: Kind, name: str, scope: str = "") -> Name:
        row = _INDEX.get((kind, scope, name))
        if row is None:
            where = f" of {scope}" if scope else ""
            raise NotAvailable(f"pgstream knows no {kind}{where} named {name!r}", name=name)
        num = self.version.num
        if not row.exists(num):
            shown = f"{row.canonical}" + (f" ({scope})" if scope else "")
            if num < row.since:
                raise NotAvailable(
                    f"{kind} {shown} does not exist on PostgreSQL {self.version.major}: "
                    f"it was introduced in PostgreSQL {_label(row.since)}",
                    name=name, since=_label(row.since),
                )
            assert row.until is not None
            instead = f"; use {row.replaced_by}" if row.replaced_by else ""
            raise NotAvailable(
                f"{kind} {shown} does not exist on PostgreSQL {self.version.major}: "
                f"it was removed in PostgreSQL {_label(row.until)}{instead}",
                name=name, since=_label(row.since),
            )
        return row

    def function(self, name: str) -> str:
        """This version's name of a function: ``function("pg_wal_lsn_diff")``."""
        return self._lookup("function", name).name_on(self.version.num)

    def column(self, view: str, name: str) -> str:
        """A view's column on this version: ``column("pg_stat_replication", "replay_lsn")``."""
        return self._lookup("column", name, view).name_on(self.version.num)

    def setting(self, name: str) -> str:
        """This version's name of a setting: ``setting("wal_keep_size")`` is ``wal_keep_segments``
        before 13 (a different unit: see the config renderer).
        """
        return self._lookup("setting", name).name_on(self.version.num)

    def file(self, name: str) -> str:
        """This version's name of a data-directory file: ``standby.signal`` from 12,
        ``recovery.conf`` before.
        """
        return self._lookup("file", name).name_on(self.version.num)

    def tool(self, name: str) -> str:
        """This version's name of a program."""
        return self._lookup("tool", name).name_on(self.version.num)

    def option(self, name: str, program: str = "") -> str:
        """An option's name: pg_basebackup's by default, ``program="initdb"`` for initdb's."""
        return self._lookup("option", name, program).name_on(self.version.num)

    def has(self, kind: Kind, name: str, scope: str = "") -> bool:
        """Does this version have it (under any name)?"""
        row = _INDEX.get((kind, scope, name))
        return row is not None and row.exists(self.version.num)

    def supports(self, feature: str) -> bool:
        """``supports("pg_promote")``: is a feature from the table available?"""
        if ("feature", "", feature) not in _INDEX:
            raise NotAvailable(f"pgstream knows no feature named {feature!r}", name=feature)
        return self.has("feature", feature)

    def require(self, feature: str) -> None:
        """Raise :class:`NotAvailable` naming the version that introduced ``feature``."""
        self._lookup("feature", feature)

    def columns(self, view: str) -> dict[str, str]:
        """Every column of ``view`` this version has: canonical name -> this version's name."""
        return {row.canonical: row.name_on(self.version.num)
                for row in _rows("column", view) if row.exists(self.version.num)}

    def reloadable(self, setting: str) -> bool:
        """Does a configuration reload apply this recovery setting (else a restart is needed)?

        Only meaningful for the settings the table marks; others follow ``pg_settings.context``.
        """
        row = self._lookup("setting", setting)
        return row.reload_since is not None and self.version.num >= row.reload_since


def _rows(kind: Kind, scope: str = "") -> Iterator[Name]:
    return (row for row in TABLE if row.kind == kind and row.scope == scope)


def conninfo_options() -> dict[str, int]:
    """Every libpq option pgstream may write into primary_conninfo -> first version having it."""
    return {row.canonical: row.since for row in _rows("conninfo")}
