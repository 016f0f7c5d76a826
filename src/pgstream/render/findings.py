"""What ``cluster.check()`` can find, as data: codes, severities, log-line patterns, units.

Pure: no I/O. Every finding code pgstream reports is in :data:`CODES` with its severity,
what it means and how to fix it (``docs/check.md`` documents the same table). The standby's
own log is read since its last start (:func:`since_last_start`) and matched line by line
(:func:`scan_log`) against :data:`LOG_PATTERNS`, the messages PostgreSQL's walreceiver,
walsender and startup process write, 9.6 to 18. :func:`report_table` is the text table of a
report (the units come from :mod:`pgstream.render.units`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence

import attrs

from pgstream.errors import InvalidInput


class Severity(enum.Enum):
    """How bad a finding is: an ``error`` breaks replication (or a promise), a ``warning``
    will if left alone, an ``info`` is worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for errors, 1 for warnings, 2 for infos (the order a report lists them in)."""
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@attrs.frozen
class CodeInfo:
    """One finding code: its default severity, what it means and the fix, in words."""

    code: str
    severity: Severity
    meaning: str
    fix: str


def _c(code: str, severity: str, meaning: str, fix: str) -> CodeInfo:
    return CodeInfo(code, Severity(severity), meaning, fix)


CODES: dict[str, CodeInfo] = {c.code: c for c in (
    _c("node_unreachable", "error", "pgstream cannot connect to the node (or it did not answer "
       "in time)", "start the server, or fix the address in its conninfo"),
    _c("hba_missing", "error", "the upstream's pg_hba.conf has no line allowing the standby's "
       "replication connection", "add a 'host replication <user> <address> <method>' line to "
       "the upstream's pg_hba.conf and reload it"),
    _c("auth_failed", "error", "the upstream rejected the replication role's password",
       "put the role's password into the standby's passfile (or set the role's password to it)"),
    _c("role_missing", "error", "the replication role does not exist on the upstream, or lacks "
       "REPLICATION or LOGIN", "CREATE ROLE <user> WITH LOGIN REPLICATION (or ALTER ROLE ... "
       "WITH LOGIN REPLICATION) on the primary"),
    _c("slot_missing", "error", "the standby streams through a slot its upstream does not "
       "have", "create the physical slot on the upstream"),
    _c("wal_removed", "error", "the upstream has already removed WAL the standby still needs: "
       "it can never catch up by streaming", "re-clone the standby (and give it a slot, or "
       "keep more WAL, so it does not happen again)"),
    _c("max_wal_senders", "error", "every walsender of the upstream is taken "
       "(max_wal_senders): another standby cannot connect", "raise max_wal_senders on the "
       "upstream (restart), or end the connections that hold walsenders"),
    _c("max_replication_slots", "error", "every replication slot of the upstream is in use "
       "(max_replication_slots): a standby's slot cannot be created", "drop unused slots, or "
       "raise max_replication_slots on the upstream (restart)"),
    _c("upstream_unreachable", "error", "the standby cannot reach the upstream named in its "
       "primary_conninfo", "start the upstream, or fix host/port in the standby's "
       "primary_conninfo (and the network between them)"),
    _c("timeline_diverged", "error", "the standby's history left the upstream's timeline (it "
       "was promoted, or is ahead of a new primary): it cannot stream", "rejoin it with "
       "pg_rewind (cluster.rejoin_plan(node, rewind=True)), or re-clone it"),
    _c("replay_paused", "warning", "WAL replay is paused on the standby (pg_wal_replay_pause): "
       "it receives WAL but applies none", "SELECT pg_wal_replay_resume() on the standby"),
    _c("hot_standby_off", "warning", "hot_standby is off: the standby streams but accepts no "
       "connections, so no read can go to it and pgstream cannot look inside it",
       "set hot_standby = on on the standby and restart it"),
    _c("wal_level_too_low", "error", "wal_level is minimal: the server writes too little WAL "
       "for any standby", "set wal_level = replica (and max_wal_senders > 0) on the primary and "
       "restart it; standbys must then be cloned anew"),
    _c("sync_standby_missing", "error", "synchronous_standby_names names standbys that are "
       "not connected: commits wait for them (or for fewer than required)", "start or repair "
       "the named standby, or change synchronous_standby_names (cluster.set_synchronous)"),
    _c("slot_inactive_retaining", "warning", "a replication slot no standby uses holds WAL "
       "back: the upstream's disk fills", "drop the slot if no standby will use it again, or "
       "advance it (ops.slots.advance_slot)"),
    _c("slot_wal_unreserved", "warning", "a slot holds more WAL than max_slot_wal_keep_size: "
       "its WAL is removed at the next checkpoint unless its standby catches up", "let the "
       "standby catch up now, or raise max_slot_wal_keep_size"),
    _c("slot_wal_lost", "error", "a slot's WAL was removed (wal_status lost): the standby "
       "using it can never catch up by streaming", "drop the slot and re-clone its standby"),
    _c("lag_high", "warning", "the standby is further behind than the configured threshold "
       "(bytes or time)", "look for a slow disk or network, long queries on the standby, or a "
       "paused replay"),
    _c("system_id_mismatch", "error", "the node is not a copy of the primary (another "
       "system identifier): it cannot stream from it", "re-clone it from the primary, or "
       "remove it from the cluster"),
    _c("standby_not_in_recovery", "error", "a node declared a standby is not in recovery: it "
       "accepts writes of its own, a second primary (split brain)", "stop writes to it, then "
       "rejoin it with pg_rewind or re-clone it; never let clients write to both"),
    _c("log_unreadable", "info", "the standby's server log could not be read, so findings "
       "from it are missing", "let the user running pgstream read the log (group adm or the "
       "server user), or run it as that user"),
    _c("no_standbys", "info", "the cluster has no standbys", "add one (cluster.add_standby)"),
    _c("not_streaming", "error", "the standby does not stream and no cause was found in the "
       "views or its log", "read the standby's server log and the upstream's"),
)}


def info(code: str) -> CodeInfo:
    """The table row of ``code`` (:class:`InvalidInput` for a code pgstream does not know)."""
    try:
        return CODES[code]
    except KeyError:
        raise InvalidInput(f"unknown finding code {code!r}: one of "
                           f"{', '.join(sorted(CODES))}") from None


# -- log lines ---------------------------------------------------------------------------------

@attrs.frozen
class LogPattern:
    """A server log message that names a finding's cause."""

    code: str
    regex: re.Pattern[str]


def _p(code: str, *patterns: str) -> list[LogPattern]:
    return [LogPattern(code, re.compile(p)) for p in patterns]


# The most specific first: the walreceiver wraps the upstream's error in its own
# ("could not connect to the primary server: ... FATAL: <the reason>"), so a reason is
# matched before the generic "cannot connect".
LOG_PATTERNS: tuple[LogPattern, ...] = (
    *_p("hba_missing", r"no pg_hba\.conf entry for replication connection",
        r"pg_hba\.conf rejects replication connection"),
    *_p("auth_failed", r"password authentication failed for user",
        r"fe_sendauth: no password supplied", r"authentication failed for user \""),
    *_p("role_missing", r"role \"[^\"]+\" does not exist",
        r"must be superuser or replication role to start walsender",
        r"permission denied to start WAL sender",
        r"role \"[^\"]+\" is not permitted to log in"),
    *_p("slot_missing", r"replication slot \"[^\"]+\" does not exist"),
    *_p("slot_wal_lost", r"can no longer (?:get changes from|access) replication slot",
        r"This (?:replication )?slot has been invalidated"),
    *_p("wal_removed", r"requested WAL segment \S+ has already been removed"),
    *_p("max_wal_senders",
        r"number of requested standby connections exceeds \"?max_wal_senders\"?"),
    *_p("max_replication_slots", r"all replication slots are in use"),
    *_p("system_id_mismatch",
        r"database system identifier differs between the primary and standby"),
    *_p("timeline_diverged", r"highest timeline \d+ of the primary is behind recovery timeline",
        r"requested timeline \d+ is not a child of this server's history",
        r"new timeline \d+ forked off current database system timeline",
        r"new timeline \d+ is not a child of database system timeline",
        r"requested starting point \S+ on timeline \d+ is not in this server's history"),
    *_p("wal_level_too_low", r"WAL was generated with \"?wal_level=minimal",
        r"wal_level=minimal\"?.*cannot continue recovering"),
    *_p("hot_standby_off", r"Hot standby mode is disabled"),
    *_p("upstream_unreachable",
        r"could not connect to .*(?:Connection refused|timed out|timeout expired|could not "
        r"translate host name|Name or service not known|No route to host|Network is "
        r"unreachable|No such file or directory)"),
    # A walreceiver failure in words pgstream does not know: the line is still the evidence.
    *_p("not_streaming", r"could not connect to the primary server",
        r"could not receive data from WAL stream", r"could not start WAL streaming"),
)

# Where a server's run begins in its log: "starting PostgreSQL" from 10; 9.6 begins with what
# the startup process found ("database system was shut down ...").
_START = re.compile(r"\bLOG:\s+starting PostgreSQL\b")
_START_96 = re.compile(r"\bLOG:\s+database system was (?:shut down|interrupted|not properly)")


def since_last_start(text: str) -> str:
    """The part of a server log written since the server last started (all of it when no
    start is found)."""
    lines = text.splitlines()
    for marker in (_START, _START_96):
        starts = [i for i, line in enumerate(lines) if marker.search(line)]
        if starts:
            return "\n".join(lines[starts[-1]:])
    return text


def logical_lines(text: str) -> list[str]:
    """Log records as single lines: libpq's multi-line messages (continuations begin with a
    tab) and DETAIL/HINT lines stay separate records, continuation lines are joined."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith("\t") and out:
            out[-1] = out[-1] + " " + line.strip()
        elif line.strip():
            out.append(line.rstrip())
    return out


@attrs.frozen
class LogHit:
    """A log line that names a finding: its code and the line (the evidence)."""

    code: str
    line: str


def classify(line: str) -> str | None:
    """The finding code a log line names, or None."""
    for pattern in LOG_PATTERNS:
        if pattern.regex.search(line):
            return pattern.code
    return None


def scan_log(text: str) -> list[LogHit]:
    """Every line of ``text`` naming a finding, oldest first (read :func:`since_last_start`
    first to see only the current run)."""
    hits = []
    for line in logical_lines(text):
        code = classify(line)
        if code is not None:
            hits.append(LogHit(code, line))
    return hits


def latest_cause(text: str) -> LogHit | None:
    """The newest line naming a finding in the log since the last start (the current cause
    of a standby that does not stream), or None."""
    hits = scan_log(since_last_start(text))
    return hits[-1] if hits else None


# -- units -------------------------------------------------------------------------------------





# -- the report table --------------------------------------------------------------------------

REPORT_COLUMNS = ("severity", "node", "code", "summary")


def report_table(rows: Iterable[Sequence[str]], *, width: int = 100) -> list[str]:
    """The lines of a findings table (``severity node code summary``), aligned; the summary
    column is cut at ``width`` characters."""
    cells = [[str(c) for c in row] for row in rows]
    if not cells:
        return []
    widths = [max(len(title), *(len(r[i]) for r in cells))
              for i, title in enumerate(REPORT_COLUMNS[:-1])]
    head = "  ".join(t.ljust(w) for t, w in zip(REPORT_COLUMNS, [*widths, 0], strict=True))
    out = [head.rstrip(), "  ".join("-" * w for w in [*widths, len(REPORT_COLUMNS[-1])])]
    for row in cells:
        summary = row[-1] if len(row[-1]) <= width else row[-1][:width - 3] + "..."
        out.append("  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)),
                              summary]).rstrip())
    return out
