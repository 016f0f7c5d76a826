"""ClusterStatus: the str() table, JSON-ready to_dict(), escaped HTML."""

from __future__ import annotations

import datetime as dt
import json

import attrs
import pytest

from pgstream.facts.lsn import Lsn
from pgstream.ops.status import COLUMNS, ClusterStatus, PrimaryStatus, StandbyStatus

TAKEN = dt.datetime(2024, 5, 1, 12, 30, 0, tzinfo=dt.UTC)


def primary(name: str = "primary") -> PrimaryStatus:
    return PrimaryStatus(name=name, version="15.4", lsn=Lsn.parse("0/3006D00"))


def streaming(name: str = "standby1") -> StandbyStatus:
    return StandbyStatus(
        name=name, state="streaming",
        sent_lsn=Lsn.parse("0/3006D00"), write_lsn=Lsn.parse("0/3006D00"),
        flush_lsn=Lsn.parse("0/3006C00"), replay_lsn=Lsn.parse("0/3006B00"),
        replay_lag_bytes=512, replay_lag=dt.timedelta(milliseconds=1500),
        sync_state="async", sync_priority=0, slot_name=name, slot_active=True,
        slot_wal_status="reserved", slot_retained_bytes=1024, in_recovery=True,
        upstream="primary",
    )


def cluster(*standbys: StandbyStatus, name: str = "primary") -> ClusterStatus:
    return ClusterStatus(primary=primary(name), standbys=standbys, taken_at=TAKEN)


def test_str_table() -> None:
    down = StandbyStatus(name="standby2", state="disconnected", reachable=False)
    text = str(cluster(streaming(), down))
    lines = text.splitlines()
    assert lines[0] == "primary primary (PostgreSQL 15.4) at 0/3006D00, in_recovery=f"
    headers = lines[1].split()
    assert headers[:3] == ["name", "upstream", "state"]
    for title, _ in COLUMNS:
        assert title in lines[1]
    assert set(lines[2].replace(" ", "")) == {"-"}
    row1, row2 = lines[3], lines[4]
    for cell in ("standby1", "streaming", "0/3006D00", "0/3006B00", "512 B", "1.5 s", "async",
                 "reserved", "t"):
        assert cell in row1
    assert row2.split()[:3] == ["standby2", "-", "disconnected"]
    assert set(row2.split()[3:]) == {"-"}
    assert len(lines) == 5


def test_str_columns_are_aligned() -> None:
    text = str(cluster(streaming("a"), streaming("a_much_longer_standby_name")))
    lines = text.splitlines()[1:]
    starts = {line.index("streaming") for line in lines[2:]}
    assert len(starts) == 1
    assert lines[0].index("state") in starts


def test_str_without_standbys() -> None:
    text = str(cluster())
    assert text.splitlines()[-1] == "(no standbys)"
    assert "name" in text


def test_to_dict_is_json_serialisable() -> None:
    status = cluster(streaming(), StandbyStatus(name="standby2", state="catchup"))
    data = status.to_dict()
    decoded = json.loads(json.dumps(data))
    assert decoded["taken_at"] == "2024-05-01T12:30:00+00:00"
    assert decoded["primary"] == {"name": "primary", "version": "15.4", "lsn": "0/3006D00",
                                  "in_recovery": False, "timeline": None}
    s1 = decoded["standbys"][0]
    assert s1["name"] == "standby1"
    assert s1["replay_lsn"] == "0/3006B00"
    assert s1["replay_lag"] == 1.5
    assert s1["replay_lag_bytes"] == 512
    assert s1["slot_active"] is True
    s2 = decoded["standbys"][1]
    assert s2["replay_lsn"] is None
    assert s2["replay_lag"] is None
    assert s2["reachable"] is True


def test_standby_to_dict_has_every_field() -> None:
    data = streaming().to_dict()
    json.dumps(data)
    assert set(data) >= {"name", "state", "sent_lsn", "write_lsn", "flush_lsn", "replay_lsn",
                         "replay_lag_bytes", "replay_lag", "sync_state", "slot_name",
                         "in_recovery", "upstream"}


def test_streaming_flags_and_lookup() -> None:
    status = cluster(streaming("a"), streaming("b"))
    assert status.all_streaming
    assert status.standby("b").name == "b"
    with pytest.raises(KeyError):
        status.standby("zzz")
    mixed = cluster(streaming("a"), StandbyStatus(name="b", state="catchup"))
    assert not mixed.all_streaming
    assert not mixed.standby("b").streaming
    assert cluster().all_streaming


def test_repr_html_escapes_names() -> None:
    evil = "<script>alert('x')</script>&"
    status = cluster(StandbyStatus(name=evil, state="<b>streaming</b>"), name=evil)
    page = status._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert "&amp;" in page
    assert "<b>streaming</b>" not in page
    assert page.count("<tr") == 2  # header + one standby
    for title in ("standby", "upstream", "state", "lag", "sync", "slot", "recovery"):
        assert f">{title}</th>" in page


def test_repr_html_escapes_version() -> None:
    status = ClusterStatus(
        primary=PrimaryStatus(name="p", version="15 <i>", lsn=Lsn(0)), standbys=(),
        taken_at=TAKEN)
    assert "<i>" not in status._repr_html_()


def test_problems_are_marked_units_human_and_raw_numbers_kept() -> None:
    item = attrs.evolve(streaming(), replay_lag_bytes=3 * 1024 * 1024,
                        replay_lag=dt.timedelta(milliseconds=250), problem="replay_paused",
                        replay_paused=True)
    down = StandbyStatus(name="standby2", state="disconnected", problem="hba_missing")
    text = str(cluster(item, down))
    row1, row2 = text.splitlines()[3:5]
    assert row1.startswith("!standby1") and "3.0 MB" in row1 and "250 ms" in row1
    assert "streaming, replay paused" in row1 and row1.endswith("replay_paused")
    assert row2.startswith("!standby2") and row2.endswith("hba_missing")
    data = cluster(item).to_dict()["standbys"][0]  # type: ignore[index]
    assert data["replay_lag_bytes"] == 3 * 1024 * 1024 and data["replay_lag"] == 0.25
    assert data["problem"] == "replay_paused" and data["replay_paused"] is True
