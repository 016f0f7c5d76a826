"""Slot hygiene without a server: flagging rules, the report's text and JSON, input checks and
version gates (checked before anything touches the server)."""

from __future__ import annotations

import datetime as dt
import json
from typing import cast

import attrs
import pytest

from pgstream.errors import InvalidInput, InvalidName, NotAvailable
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Node
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.slot_report import SlotFinding, SlotReport, slot_report
from pgstream.ops.slots import advance_slot, slot_wal_limit_plan
from pgstream.render.units import human_bytes, pretty_duration

MB = 1024 * 1024
NOW = dt.datetime(2025, 1, 2, 12, 0, tzinfo=dt.UTC)


@attrs.define
class FakeNode:
    """Only what the version gates read; any query would fail with AttributeError."""

    name: str
    version: ServerVersion


def node(major: str) -> Node:
    return cast(Node, FakeNode("primary", ServerVersion.parse(major)))


def status(name: str = "idle", *, active: bool = False, retained: int | None = 3 * MB,
           inactive_since: dt.datetime | None = None, wal_status: str | None = None,
           safe: int | None = None) -> SlotStatus:
    return SlotStatus(name=name, active=active, active_pid=4242 if active else None,
                      restart_lsn=None if retained is None else Lsn.parse("0/3000000"),
                      retained_bytes=retained, wal_status=wal_status, safe_wal_size=safe,
                      inactive_since=inactive_since, temporary=False)


@pytest.mark.parametrize(("value", "text"), [
    (None, "-"), (0, "0 B"), (1023, "1023 B"), (1536, "1.5 kB"), (16 * MB, "16.0 MB"),
    (-MB, "-1.0 MB"), (5 * 1024**4, "5.0 TB"), (2048 * 1024**4, "2048.0 TB"),
])
def test_human_bytes(value: int | None, text: str) -> None:
    assert human_bytes(value) == text


def test_pretty_duration_drops_fractions() -> None:
    assert pretty_duration(None) == "-"
    assert pretty_duration(dt.timedelta(seconds=3723.9)) == "1:02:03"
    assert pretty_duration(dt.timedelta(days=1, seconds=5)) == "1 day, 0:00:05"


def test_inactive_slot_over_the_byte_threshold_is_flagged() -> None:
    finding = SlotFinding.of(status(), now=NOW, min_retained_bytes=MB)
    assert finding.flagged
    assert finding.reasons == ("holds 3.0 MB of WAL (threshold 1.0 MB)",)
    assert SlotFinding.of(status(retained=MB), now=NOW, min_retained_bytes=MB).flagged
    assert not SlotFinding.of(status(retained=MB - 1), now=NOW, min_retained_bytes=MB).flagged
    # No WAL held (lost, or never reserved): nothing to flag by size.
    assert not SlotFinding.of(status(retained=None), now=NOW, min_retained_bytes=0).flagged


def test_active_slots_and_no_thresholds_are_never_flagged() -> None:
    assert not SlotFinding.of(status(active=True, retained=50 * MB), now=NOW,
                              min_retained_bytes=0, min_inactive=dt.timedelta(0)).flagged
    assert not SlotFinding.of(status(retained=50 * MB), now=NOW).flagged


def test_inactive_time_is_server_now_minus_inactive_since() -> None:
    since = NOW - dt.timedelta(hours=2)
    finding = SlotFinding.of(status(inactive_since=since), now=NOW,
                             min_inactive=dt.timedelta(hours=1))
    assert finding.inactive_for == dt.timedelta(hours=2)
    assert finding.reasons == ("inactive for 2:00:00 (threshold 1:00:00)",)
    assert not SlotFinding.of(status(inactive_since=since), now=NOW,
                              min_inactive=dt.timedelta(hours=3)).flagged
    # A clock a little behind inactive_since never gives a negative time.
    ahead = SlotFinding.of(status(inactive_since=NOW + dt.timedelta(seconds=1)), now=NOW)
    assert ahead.inactive_for == dt.timedelta(0)
    assert SlotFinding.of(status(), now=NOW).inactive_for is None  # before 17


def test_either_threshold_flags_and_both_reasons_are_given() -> None:
    since = NOW - dt.timedelta(days=1)
    both = SlotFinding.of(status(inactive_since=since), now=NOW, min_retained_bytes=MB,
                          min_inactive=dt.timedelta(hours=1))
    assert len(both.reasons) == 2
    only_time = SlotFinding.of(status(retained=10, inactive_since=since), now=NOW,
                               min_retained_bytes=MB, min_inactive=dt.timedelta(hours=1))
    assert only_time.reasons == ("inactive for 1 day, 0:00:00 (threshold 1:00:00)",)


def test_finding_text_and_json() -> None:
    finding = SlotFinding.of(
        status(inactive_since=NOW - dt.timedelta(minutes=5), wal_status="extended",
               safe=-2 * MB), now=NOW, min_retained_bytes=MB)
    assert str(finding) == (
        "idle: inactive, holds 3.0 MB of WAL, restart_lsn 0/3000000, wal_status extended, "
        "safe_wal_size -2.0 MB, inactive for 0:05:00; flagged: holds 3.0 MB of WAL "
        "(threshold 1.0 MB)")
    data = json.loads(json.dumps(finding.to_dict()))
    assert data["name"] == "idle" and data["flagged"] is True
    assert data["restart_lsn"] == "0/3000000" and data["inactive_for_seconds"] == 300.0
    assert data["retained_bytes"] == 3 * MB and data["safe_wal_size"] == -2 * MB
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        finding.reasons = ()  # type: ignore[misc]


def test_report_table_and_json() -> None:
    findings = (SlotFinding.of(status(), now=NOW, min_retained_bytes=MB),
                SlotFinding.of(status("standby1", active=True, retained=0), now=NOW,
                               min_retained_bytes=MB))
    report = SlotReport("primary", "15", NOW, findings, min_retained_bytes=MB)
    lines = str(report).splitlines()
    assert lines[0] == ("physical slots on primary (PostgreSQL 15) at 2025-01-02T12:00:00+00:00: "
                        "2 slot(s), 1 flagged (retained >= 1.0 MB)")
    assert lines[1].split() == ["slot", "active", "retained", "wal_status", "safe_wal_size",
                                "inactive", "for", "flagged"]
    assert lines[3].split() == ["idle", "f", "3.0", "MB", "-", "-", "-", "yes"]
    assert lines[4].split() == ["standby1", "t", "0", "B", "-", "-", "-"]
    assert lines[5] == "flagged idle: holds 3.0 MB of WAL (threshold 1.0 MB)"
    assert [f.name for f in report.flagged] == ["idle"] and len(report) == 2
    assert [f.name for f in report] == ["idle", "standby1"]
    data = json.loads(json.dumps(report.to_dict()))
    assert data["flagged"] == ["idle"] and data["min_inactive_seconds"] is None
    empty = SlotReport("primary", "15", NOW, ())
    assert str(empty).endswith("(no thresholds given)\n(no physical replication slots)")


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1MB"])
def test_bad_byte_threshold_is_refused_before_any_query(bad: object) -> None:
    with pytest.raises(InvalidInput, match="min_retained_bytes"):
        slot_report(node("15"), min_retained_bytes=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [dt.timedelta(seconds=-1), 60])
def test_bad_duration_is_refused_before_any_query(bad: object) -> None:
    with pytest.raises(InvalidInput, match="min_inactive"):
        slot_report(node("17"), min_inactive=bad)  # type: ignore[arg-type]


def test_inactive_time_needs_17() -> None:
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 17") as caught:
        slot_report(node("16"), min_inactive=dt.timedelta(hours=1))
    assert caught.value.since == "17"
    assert "inactive_since" in str(caught.value)


def test_advance_needs_11() -> None:
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 11") as caught:
        advance_slot(node("10"), "standby1")
    assert caught.value.since == "11"
    with pytest.raises(InvalidName):
        advance_slot(node("15"), "Bad-Name")


def test_wal_limit_needs_13_and_a_size_in_mb() -> None:
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 13") as caught:
        slot_wal_limit_plan(node("12"), 1024)
    assert caught.value.since == "13"
    for bad in (-2, 2**31, True, 1.5, "64MB"):
        with pytest.raises(InvalidInput, match="max_slot_wal_keep_size_mb"):
            slot_wal_limit_plan(node("15"), bad)  # type: ignore[arg-type]
