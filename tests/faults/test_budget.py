"""Replication slots counted while the plan is built (issue 8), on real servers: a plan that
would create more slots than ``max_replication_slots`` leaves room for, beside the slots that
exist, is refused before anything changes, with the setting, the slots in use and the slots
needed named; once a slot is dropped, the same call succeeds.

Before the fix the plans were built and failed while applied, at the slot step ("all
replication slots are in use"), after other steps had run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pgstream import Cluster, InvalidInput

from ._internal import Installation
from .helpers import is_empty, owned_by, wait_until
from .test_validation import future_standby

MakeCluster = Callable[..., Cluster]


def _slots(cluster: Cluster) -> list[str]:
    return [str(r[0]) for r in cluster.primary.query(
        "SELECT slot_name FROM pg_replication_slots ORDER BY 1")]


def test_add_standby_refused_when_the_slots_are_used_up(sandbox: MakeCluster) -> None:
    cluster = sandbox(1, settings={"max_replication_slots": "2"})
    cluster.primary.execute("SELECT pg_create_physical_replication_slot('spare')")
    assert _slots(cluster) == ["spare", "standby1"]  # 2 of 2 in use
    standby = future_standby(cluster, "standby9")
    addresses = dict(cluster.addresses)
    for build in (lambda: cluster.add_standby_plan(standby, timeout=30),
                  lambda: cluster.add_standby("standby8", timeout=30)):
        with pytest.raises(InvalidInput) as refused:
            build()
        text = str(refused.value)
        assert "max_replication_slots = 2" in text, text
        assert "2 slot(s) in use" in text and "at least 3" in text, text
        assert _slots(cluster) == ["spare", "standby1"]
        assert [s.name for s in cluster.standbys] == ["standby1"]
        assert cluster.addresses == addresses
        assert standby.data_dir is not None and is_empty(standby.data_dir)
        assert cluster.base_dir is not None and is_empty(cluster.base_dir / "standby8")
    cluster.primary.execute("SELECT pg_drop_replication_slot('spare')")
    assert standby.service is not None
    try:
        cluster.add_standby_plan(standby, timeout=30).apply()
        assert _slots(cluster) == ["standby1", "standby9"]
        wait_until(lambda: cluster.primary.streams_to("standby9"), timeout=30,
                   what="standby9 to stream")
    finally:  # declared by hand: not the sandbox's to stop
        standby.close()
        if standby.service.running():
            standby.service.stop("immediate")


def _all_stream(cluster: Cluster) -> bool:
    status = cluster.status()
    return len(status.standbys) == 3 and all(s.state == "streaming" and s.in_recovery
                                             for s in status.standbys)


def test_switchover_refused_when_the_target_cannot_hold_the_slots(sandbox: MakeCluster
                                                                  ) -> None:
    """After its promotion standby1 would hold a slot for standby2, standby3 and the old
    primary: 3, and it allows 2. Refused while the plan is built, nothing changed."""
    cluster = sandbox(3)
    target = cluster.standby("standby1")
    assert target.service is not None
    target.execute("ALTER SYSTEM SET max_replication_slots = 2")
    target.close()
    target.service.restart()
    wait_until(lambda: _all_stream(cluster), timeout=30, what="the standbys streaming")
    assert target.show("max_replication_slots") == "2"
    primary_slots = _slots(cluster)
    for build in (lambda: cluster.switchover_plan("standby1", timeout=30),
                  lambda: cluster.switchover("standby1", timeout=30)):
        with pytest.raises(InvalidInput) as refused:
            build()
        text = str(refused.value)
        assert "standby1 has max_replication_slots = 2" in text, text
        assert "0 slot(s) in use" in text and "at least 3" in text, text
        assert "(standby2, standby3, primary)" in text, text
        assert cluster.primary.name == "primary" and not cluster.failed
        assert not cluster.primary.in_recovery and target.in_recovery
        assert _slots(cluster) == primary_slots
        assert target.query("SELECT slot_name FROM pg_replication_slots") == []
        assert _all_stream(cluster)


def test_sandbox_with_fewer_slots_than_standbys_refused(box_dir: Path,
                                                        pgstream_server: Installation) -> None:
    made: Cluster | None = None
    try:
        with pytest.raises(InvalidInput) as refused:
            made = Cluster.sandbox(3, bindir=pgstream_server.bindir, base_dir=box_dir,
                                   settings={"max_replication_slots": "2"}, timeout=60)
    finally:
        if made is not None:
            made.close()
    text = str(refused.value)
    assert "max_replication_slots = 2" in text and "0 slot(s) in use" in text, text
    assert "at least 3" in text and "standby1, standby2, standby3" in text, text
    wait_until(lambda: not owned_by(box_dir), timeout=10, what="the sandbox's servers to stop")
    assert list(box_dir.iterdir()) == []
