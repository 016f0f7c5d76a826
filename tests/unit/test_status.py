"""ClusterStatus: the str() table, JSON-ready to_dict(), escaped HTML; cluster_status over fakes."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import attrs
import pytest

from pgstream.errors import InvalidInput, NodeUnreachable
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.ops.observe import STATUS_CONNECT_TIMEOUT, cluster_status
from pgstream.ops.status import (
    COLUMNS,
    ClusterStatus,
    PrimaryStatus,
    StandbyStatus,
)

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
    assert lines[0] == "primary: the primary, PostgreSQL 15.4, at 0/3006D00, in_recovery=f"
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
                        replay_paused=True, slot_retained_bytes=5 * 1024 ** 3 // 2)
    down = StandbyStatus(name="standby2", state="disconnected", problem="hba_missing")
    text = str(cluster(item, down))
    row1, row2 = text.splitlines()[3:5]
    assert row1.startswith("!standby1") and "3.0 MB" in row1 and "250 ms" in row1
    assert "streaming, replay paused" in row1 and row1.endswith("replay_paused")
    assert "2.5 GB" in row1 and str(5 * 1024 ** 3 // 2) not in row1  # slot held
    assert row2.startswith("!standby2") and row2.endswith("hba_missing")
    data = cluster(item).to_dict()["standbys"][0]  # type: ignore[index]
    assert data["replay_lag_bytes"] == 3 * 1024 * 1024 and data["replay_lag"] == 0.25
    assert data["slot_retained_bytes"] == 5 * 1024 ** 3 // 2
    assert data["problem"] == "replay_paused" and data["replay_paused"] is True


# ---------------------------------------------------------------------------------------------
# cluster_status over fake nodes: concurrency, one round trip per node, lag semantics


class FakeNode:
    """What cluster_status uses of a node; ``delay`` seconds per round trip."""

    def __init__(self, name: str, facts: tuple[object, ...], *, upstream: str | None = None,
                 walsenders: list[tuple[object, ...]] | None = None,
                 slots: list[tuple[object, ...]] | None = None, delay: float = 0.0,
                 down: bool = False) -> None:
        self.name, self.upstream, self.delay, self.down = name, upstream, delay, down
        self.slot_name = self.application_name = name
        self.facts, self.walsenders, self.slots = facts, walsenders or [], slots or []
        self.version = ServerVersion.parse("16")
        self.connected = False
        self.round_trips: list[int] = []
        self.timeouts: list[float | None] = []
        self.hangs = False
        self.aborted = threading.Event()

    def connect(self, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)
        time.sleep(self.delay)
        if self.down:
            raise NodeUnreachable(f"cannot connect to {self.name}")
        self.connected = True

    def query_sets(self, statements: list[object], *,
                   timeout: float | None = None) -> list[list[tuple[object, ...]]]:
        self.round_trips.append(len(statements))
        if self.hangs:
            self.aborted.wait(30)
            raise NodeUnreachable(f"lost the connection to {self.name}")
        time.sleep(self.delay)
        return [[self.facts], self.walsenders, self.slots][:len(statements)]

    def abort(self) -> None:
        self.aborted.set()


class FakeView:
    def __init__(self, primary: FakeNode, standbys: list[FakeNode]) -> None:
        self.primary, self.standbys = primary, standbys
        self.failed: list[FakeNode] = []

    def slot_for(self, standby: FakeNode) -> str:
        return standby.name


def _walsender(name: str, lag: int) -> tuple[object, ...]:
    return (name, "streaming", "0/3000100", "0/3000100", "0/3000100", "0/3000000", 0,
            "async", "127.0.0.1", 4242, lag, dt.timedelta(milliseconds=5), name)


def _slot(name: str, active: bool, retained: int) -> tuple[object, ...]:
    return (name, active, 4242 if active else None, "0/3000000", retained, "reserved", None,
            None, False, None)


def _cluster(delay: float = 0.0, *, down: bool = False) -> FakeView:
    primary = FakeNode("primary", (False, "0/3000100", 1, None, None, None), delay=delay,
                       walsenders=[_walsender("s1", 256)],
                       slots=[_slot("s1", True, 256), _slot("s2", False, 9000)])
    s1 = FakeNode("s1", (True, "0/3000100", 1, "0/3000000", None, False), delay=delay)
    s2 = FakeNode("s2", (True, "0/2FFFF00", 1, "0/2FFFF00", None, True), delay=delay, down=down)
    return FakeView(primary, [s1, s2])


def test_cluster_status_asks_each_node_once_in_one_round_trip() -> None:
    view = _cluster()
    status = cluster_status(view)  # type: ignore[arg-type]
    assert view.primary.round_trips == [3]  # its facts, walsenders and slots together
    assert [s.round_trips for s in view.standbys] == [[1], [1]]
    assert view.primary.timeouts == [STATUS_CONNECT_TIMEOUT]
    assert status.primary == PrimaryStatus("primary", str(view.primary.version),
                                           Lsn.parse("0/3000100"), False, 1)
    one = status.standby("s1")
    assert one.state == "streaming" and one.replay_lag_bytes == 256
    assert one.slot_retained_bytes == 256 and one.in_recovery is True


def test_a_disconnected_standby_shows_its_own_lag_not_its_slot() -> None:
    status = cluster_status(_cluster())  # type: ignore[arg-type]
    two = status.standby("s2")
    assert two.state == "disconnected" and two.reachable
    assert two.replay_lag_bytes == Lsn.parse("0/3000100") - Lsn.parse("0/2FFFF00")
    assert two.slot_retained_bytes == 9000  # what the slot holds, in its own field


def test_an_unreachable_disconnected_standby_has_no_lag() -> None:
    status = cluster_status(_cluster(down=True))  # type: ignore[arg-type]
    two = status.standby("s2")
    assert not two.reachable and two.in_recovery is None
    assert two.replay_lag_bytes is None and two.slot_retained_bytes == 9000


def test_nodes_are_asked_at_once() -> None:
    view = _cluster(delay=0.2)
    started = time.monotonic()
    cluster_status(view)  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert took < 0.7, took  # 3 nodes x (connect + query) x 0.2 s would be 1.2 s


def test_an_unreachable_primary_raises() -> None:
    view = _cluster()
    view.primary.down = True
    with pytest.raises(NodeUnreachable, match="primary"):
        cluster_status(view)  # type: ignore[arg-type]


def test_connect_timeout_is_validated() -> None:
    for bad in (0, -1, True, "3"):
        with pytest.raises(InvalidInput, match="connect_timeout"):
            cluster_status(_cluster(), connect_timeout=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="answer_timeout"):
            cluster_status(_cluster(), answer_timeout=bad)  # type: ignore[arg-type]


def test_a_node_that_does_not_answer_is_cut_off() -> None:
    view = _cluster()
    view.standbys[0].hangs = True
    started = time.monotonic()
    status = cluster_status(view, connect_timeout=0.2, answer_timeout=0.3)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.5
    assert view.standbys[0].aborted.is_set()
    assert not status.standby("s1").reachable and status.standby("s2").reachable
