"""check(): the log-line patterns, the report model and the rules, over made-up facts (the
integration tests in tests/integration/test_check.py break real servers)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pgstream.errors import InvalidInput
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.check import CheckReport, Finding, Severity, Thresholds
from pgstream.ops.check.probe import LogRead, NodeFacts, Receiver, conninfo_target
from pgstream.ops.check.rules import Member, evaluate
from pgstream.render import findings
from pgstream.render.findings import classify, latest_cause
from pgstream.render.units import human_bytes, human_seconds

TS = "2024-05-01 12:00:00.000 UTC [4242] "
# Lines as PostgreSQL writes them, 9.6 to 18 (18 quotes setting names; libpq before 14 wraps
# connection errors over lines that begin with a tab).
LINES = {
    "hba_missing": [
        TS + 'FATAL:  could not connect to the primary server: connection to server at '
        '"127.0.0.1", port 5432 failed: FATAL:  no pg_hba.conf entry for replication '
        'connection from host "127.0.0.1", user "replicator", no encryption',
        TS + 'FATAL:  could not connect to the primary server: FATAL:  pg_hba.conf rejects '
             'replication connection for host "10.0.0.2", user "replicator", SSL off'],
    "auth_failed": [
        TS + 'FATAL:  could not connect to the primary server: FATAL:  password '
             'authentication failed for user "replicator"',
        TS + "FATAL:  could not connect to the primary server: fe_sendauth: no password "
             "supplied"],
    "role_missing": [
        TS + 'FATAL:  could not connect to the primary server: FATAL:  role "replicator" does '
             'not exist',
        TS + "FATAL:  could not connect to the primary server: FATAL:  must be superuser or "
             "replication role to start walsender",
        TS + "FATAL:  could not connect to the primary server: connection to server at "
             '"127.0.0.1", port 5432 failed: FATAL:  permission denied to start WAL sender',
        TS + 'FATAL:  could not connect to the primary server: FATAL:  role "replicator" is '
             "not permitted to log in"],
    "slot_missing": [
        TS + 'FATAL:  could not start WAL streaming: ERROR:  replication slot "standby1" does '
             "not exist"],
    "wal_removed": [
        TS + "FATAL:  could not receive data from WAL stream: ERROR:  requested WAL segment "
             "000000010000000000000003 has already been removed"],
    "slot_wal_lost": [
        TS + 'FATAL:  could not start WAL streaming: ERROR:  can no longer access replication '
             'slot "standby1"'],
    "max_wal_senders": [
        TS + "FATAL:  could not connect to the primary server: FATAL:  number of requested "
             "standby connections exceeds max_wal_senders (currently 10)",
        TS + "FATAL:  could not connect to the primary server: FATAL:  number of requested "
             'standby connections exceeds "max_wal_senders" (currently 10)'],
    "max_replication_slots": [
        TS + "ERROR:  all replication slots are in use"],
    "upstream_unreachable": [
        TS + 'FATAL:  could not connect to the primary server: connection to server at '
             '"127.0.0.1", port 5999 failed: Connection refused',
        TS + "FATAL:  could not connect to the primary server: could not connect to server: "
             "Connection refused\n\tIs the server running on host \"127.0.0.1\" and "
             "accepting\n\tTCP/IP connections on port 5999?",
        TS + 'FATAL:  could not connect to the primary server: could not translate host name '
             '"nowhere" to address: Name or service not known'],
    "timeline_diverged": [
        TS + "FATAL:  highest timeline 1 of the primary is behind recovery timeline 2",
        TS + "LOG:  new timeline 3 forked off current database system timeline 2 before "
             "current recovery point 0/3000148",
        TS + "FATAL:  could not start WAL streaming: ERROR:  requested starting point "
             "0/4000000 on timeline 1 is not in this server's history"],
    "system_id_mismatch": [
        TS + "FATAL:  database system identifier differs between the primary and standby"],
    "wal_level_too_low": [
        TS + 'FATAL:  WAL was generated with "wal_level=minimal", cannot continue recovering',
        TS + "FATAL:  WAL was generated with wal_level=minimal, data may be missing"],
    "hot_standby_off": [TS + "DETAIL:  Hot standby mode is disabled."],
    "not_streaming": [
        TS + "FATAL:  could not connect to the primary server: invalid connection option "
             '"channel_binding"'],
}


@pytest.mark.parametrize(("code", "line"), [(c, line) for c, ls in LINES.items() for line in ls])
def test_each_log_line_names_its_code(code: str, line: str) -> None:
    record = findings.logical_lines(line)
    assert len(record) == 1
    assert classify(record[0]) == code


def test_every_pattern_code_is_a_known_code() -> None:
    assert {p.code for p in findings.LOG_PATTERNS} <= set(findings.CODES)
    assert {p.code for p in findings.LOG_PATTERNS} <= set(LINES)


def test_ordinary_lines_name_nothing() -> None:
    for line in ("LOG:  started streaming WAL from primary at 0/3000000 on timeline 1",
                 "LOG:  database system is ready to accept read-only connections",
                 "LOG:  checkpoint complete: wrote 3 buffers"):
        assert classify(TS + line) is None


def test_the_log_is_read_since_the_last_start_and_the_newest_cause_wins() -> None:
    old = LINES["hba_missing"][0]
    text = "\n".join([
        TS + "LOG:  starting PostgreSQL 18.1 on x86_64", old,
        TS + "LOG:  received fast shutdown request",
        TS + "LOG:  starting PostgreSQL 18.1 on x86_64", LINES["auth_failed"][0],
        LINES["slot_missing"][0]])
    since = findings.since_last_start(text)
    assert old not in since
    hit = latest_cause(text)
    assert hit is not None and hit.code == "slot_missing"
    assert [h.code for h in findings.scan_log(since)] == ["auth_failed", "slot_missing"]
    # 9.6 logs no "starting PostgreSQL": its run begins with what the startup process found
    old96 = "\n".join(["LOG:  database system was shut down at 2024-05-01", old,
                       "LOG:  database system was interrupted; last known up at 2024-05-02",
                       "LOG:  entering standby mode"])
    assert latest_cause(old96) is None
    assert latest_cause("no marker at all\n" + old) is not None


def test_human_units() -> None:
    assert [human_bytes(v) for v in (None, 0, 512, 1536, 3 * 1024**2, 5 * 1024**3, -2048)] == [
        "-", "0 B", "512 B", "1.5 kB", "3.0 MB", "5.0 GB", "-2.0 kB"]
    assert [human_seconds(v) for v in (None, 0, 0.25, 3.21, 125, 3725)] == [
        "-", "0 ms", "250 ms", "3.2 s", "2 min 5 s", "1 h 2 min"]


def test_conninfo_target() -> None:
    assert conninfo_target("host=10.0.0.1 port=5433 user=r password=secret") == ("10.0.0.1",
                                                                               5433)
    assert conninfo_target("hostaddr=10.0.0.2 user=r") == ("10.0.0.2", 5432)
    assert conninfo_target("host=a,b port=1,2") == ("a", 1)
    assert conninfo_target("not a conninfo ===") is None
    assert conninfo_target(None) is None


# -- the report model ---------------------------------------------------------------------------

def test_finding_codes_are_checked_and_defaults_come_from_the_table() -> None:
    with pytest.raises(InvalidInput, match="unknown finding code"):
        Finding.of("no_such_code", "n", "x")
    found = Finding.of("slot_missing", "standby1", "gone", evidence="line", source="log",
                       slot="standby1", upstream="primary")
    assert found.severity is Severity.ERROR and found.fix == findings.CODES["slot_missing"].fix
    assert "evidence (log): line" in str(found)
    assert Finding.of("lag_high", "s", "x", severity="info").severity is Severity.INFO


def test_report_orders_errors_first_and_is_json_ready() -> None:
    report = CheckReport([
        Finding.of("lag_high", "b", "behind"), Finding.of("no_standbys", "a", "alone"),
        Finding.of("hba_missing", "c", "refused")], nodes=("a", "b", "c"), seconds=0.5)
    assert [f.code for f in report] == ["hba_missing", "lag_high", "no_standbys"]
    assert not report.ok and len(report.errors) == 1 and len(report.warnings) == 1
    data = json.loads(json.dumps(report.to_dict()))
    assert data["errors"] == 1 and data["findings"][0]["code"] == "hba_missing"
    text = str(report)
    assert "1 error, 1 warning, 1 info" in text
    assert text.splitlines()[1].split() == ["severity", "node", "code", "summary"]
    assert CheckReport([Finding.of("no_standbys", "a", "alone")]).ok
    with pytest.raises(InvalidInput, match="lag_bytes"):
        Thresholds(lag_bytes=-1)
    with pytest.raises(InvalidInput, match="unknown finding code"):
        report.by_code("nonsense")


# -- the rules, over made-up facts ---------------------------------------------------------------

V = ServerVersion.parse("15.4")
V96 = ServerVersion.parse("9.6.24")


def _primary(**changes: object) -> NodeFacts:
    base: dict[str, object] = dict(
        name="p", reachable=True, version=V, in_recovery=False, system_id="1",
        lsn=Lsn.parse("0/5000000"),
        settings={"wal_level": "replica", "max_wal_senders": "10",
                  "max_replication_slots": "10", "synchronous_standby_names": ""},
        walsenders=({"application_name": "s", "state": "streaming", "replay_lag_bytes": 0,
                     "replay_lag": dt.timedelta(0)},),
        slots=(SlotStatus("s", True, 1, Lsn.parse("0/5000000"), 0, "reserved"),),
        role=(True, True), role_asked=True)
    base.update(changes)
    return NodeFacts(**base)  # type: ignore[arg-type]


def _standby(**changes: object) -> NodeFacts:
    base: dict[str, object] = dict(
        name="s", reachable=True, version=V, in_recovery=True, system_id="1",
        receiver=Receiver("streaming", 1, None, "s", "10.0.0.1", 5432, None),
        replay_paused=False, primary_conninfo="host=10.0.0.1 port=5432", slot_name="s")
    base.update(changes)
    return NodeFacts(**base)  # type: ignore[arg-type]


MEMBERS = [Member("p"), Member("s", "p", "s")]


def _codes(primary: NodeFacts, standby: NodeFacts, limits: Thresholds | None = None
           ) -> dict[tuple[str, str], Finding]:
    found = evaluate(MEMBERS, {"p": primary, "s": standby}, limits or Thresholds())
    return {(f.node, f.code): f for f in found}


def test_healthy_facts_give_nothing() -> None:
    assert _codes(_primary(), _standby()) == {}


def test_a_cause_from_the_views_when_the_log_says_nothing() -> None:
    down = _standby(receiver=None, log=LogRead("/x.log", "service", text="LOG:  nothing"))
    walsenders: tuple[dict[str, object], ...] = ()
    assert ("s", "slot_missing") in _codes(_primary(slots=(), walsenders=walsenders), down)
    assert ("s", "role_missing") in _codes(_primary(role=None, walsenders=walsenders), down)
    assert ("s", "upstream_unreachable") in _codes(
        _primary(reachable=False, error="refused"), down)
    found = _codes(_primary(walsenders=walsenders), down)
    assert ("s", "not_streaming") in found and "no walreceiver" in found[
        ("s", "not_streaming")].evidence
    blind = _codes(_primary(walsenders=walsenders),
                   _standby(receiver=None, log=LogRead("/x.log", "service", error="denied")))
    assert ("s", "log_unreadable") in blind


def test_a_failed_password_for_a_role_that_is_gone_is_role_missing() -> None:
    """With SCRAM, a dropped or NOLOGIN role logs only "password authentication failed"."""
    log = LogRead("/x.log", "service", text=LINES["auth_failed"][0])
    down = _standby(receiver=None, log=log)
    walsenders: tuple[dict[str, object], ...] = ()
    gone = _codes(_primary(role=None, walsenders=walsenders), down)
    assert ("s", "role_missing") in gone and ("s", "auth_failed") not in gone
    assert "no such role" in gone[("s", "role_missing")].evidence
    nologin = _codes(_primary(role=(True, False), walsenders=walsenders), down)
    assert ("s", "role_missing") in nologin
    assert ("s", "auth_failed") in _codes(_primary(walsenders=walsenders), down)


def test_the_log_cause_names_the_upstream_address() -> None:
    down = _standby(receiver=None, primary_conninfo="host=db1 port=6000", log=LogRead(
        "/x.log", "service", text=LINES["upstream_unreachable"][0]))
    found = _codes(_primary(walsenders=()), down)[("s", "upstream_unreachable")]
    assert "db1:6000" in found.summary and found.evidence.endswith("Connection refused")


def test_slots_lag_and_senders() -> None:
    slots = (SlotStatus("s", True, 1, Lsn.parse("0/5000000"), 0, "reserved"),
             SlotStatus("old", False, None, Lsn.parse("0/1000000"), 4 << 20, "extended"),
             SlotStatus("near", False, None, Lsn.parse("0/1000000"), 9 << 20, "unreserved"),
             SlotStatus("gone", False, None, None, None, "lost"))
    found = _codes(_primary(slots=slots), _standby())
    assert found[("p", "slot_inactive_retaining")].slot == "old"
    assert found[("p", "slot_wal_unreserved")].severity is Severity.WARNING
    assert found[("p", "slot_wal_lost")].severity is Severity.ERROR
    behind = ({"application_name": "s", "state": "streaming", "replay_lag_bytes": 64 << 20,
               "replay_lag": None},)
    lagging = _codes(_primary(walsenders=behind, version=V96), _standby(replay_age=99.0))
    assert "64.0 MB behind" in lagging[("s", "lag_high")].summary
    assert "1 min 39 s behind" in lagging[("s", "lag_high")].summary
    assert ("s", "lag_high") not in _codes(_primary(walsenders=behind), _standby(),
                                           Thresholds(lag_bytes=None, lag_seconds=None))
    full = _codes(_primary(settings={"max_wal_senders": "1", "wal_level": "replica"}),
                  _standby())
    assert full[("p", "max_wal_senders")].severity is Severity.INFO


def test_sync_names_hot_standby_and_foreign_nodes() -> None:
    waits = _codes(_primary(settings={"synchronous_standby_names": "FIRST 2 (s, t)"}),
                   _standby())
    assert waits[("p", "sync_standby_missing")].severity is Severity.ERROR
    fine = _codes(_primary(settings={"synchronous_standby_names": "ANY 1 (s, t)"}), _standby())
    assert fine[("p", "sync_standby_missing")].severity is Severity.WARNING
    assert _codes(_primary(settings={"synchronous_standby_names": "*"}), _standby()) == {}
    off = _standby(reachable=False, error="FATAL:  the database system is starting up")
    assert ("s", "hot_standby_off") in _codes(_primary(), off)
    assert ("s", "node_unreachable") in _codes(_primary(walsenders=()), off)
    other = _codes(_primary(), _standby(system_id="2"))
    assert ("s", "system_id_mismatch") in other
    writes = _codes(_primary(), _standby(in_recovery=False))
    assert ("s", "standby_not_in_recovery") in writes
    alone = evaluate([Member("p")], {"p": _primary(walsenders=(), slots=())}, Thresholds())
    assert [f.code for f in alone] == ["no_standbys"]
