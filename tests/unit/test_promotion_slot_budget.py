"""The slots a promotion's plan creates on the promoted node (issue 8): after a switchover
every re-pointed standby and the old primary, after a failover every follower, streams from
the new primary through a slot on it. They are counted while the plan is built, beside the
slots it has already (those are not counted twice), against its ``max_replication_slots``:
a plan that would not fit is refused (:class:`~pgstream.errors.InvalidInput`) naming the
setting, the slots in use and the slots needed, nothing changed. Over fakes (tests/fakes.py);
tests/faults/test_budget.py does the switchover against real servers."""

from __future__ import annotations

import pytest

from pgstream.errors import InvalidInput
from pgstream.hosts.controlfile import DbState
from tests.fakes import FakeSlot, fake_cluster, stop, unchanged


def test_switchover_refused_when_the_target_cannot_hold_the_others_slots() -> None:
    rig = fake_cluster(("s1", "s2", "s3"))
    rig.servers["s1"].settings["max_replication_slots"] = "2"  # s2, s3 and pg need 3
    with pytest.raises(InvalidInput) as refused:
        rig.cluster.switchover_plan("s1")
    text = str(refused.value)
    assert "s1 has max_replication_slots = 2" in text
    assert "0 slot(s) in use" in text and "at least 3" in text
    assert "creates 3 more (s2, s3, pg)" in text
    assert rig.cluster.primary.name == "pg"
    unchanged(rig)
    rig.servers["s1"].settings["max_replication_slots"] = "3"
    rig.cluster.switchover_plan("s1")  # room for all: accepted
    unchanged(rig)


def test_switchover_counts_the_slots_the_target_has_once() -> None:
    rig = fake_cluster(("s1", "s2"))
    target = rig.servers["s1"]
    target.settings["max_replication_slots"] = "2"
    target.slots["s2"] = FakeSlot("s2")  # left from an earlier attempt: kept, not counted again
    rig.cluster.switchover_plan("s1")  # s2 kept, pg created: 2 of 2
    target.slots["backup"] = FakeSlot("backup")  # another one: now 3 are needed
    with pytest.raises(InvalidInput, match=r"max_replication_slots = 2 but this plan needs at "
                                           r"least 3: 2 slot\(s\) in use .* 1 more \(pg\)"):
        rig.cluster.switchover_plan("s1")
    unchanged(rig)


def test_failover_refused_when_the_candidate_cannot_hold_the_followers_slots() -> None:
    rig = fake_cluster(("s1", "s2", "s3"))
    stop(rig.node("pg"), rig.hosts["pg"], state=DbState.IN_PRODUCTION)
    rig.servers["s2"].settings["max_replication_slots"] = "1"
    with pytest.raises(InvalidInput) as refused:
        rig.cluster.failover_plan("s2")
    text = str(refused.value)
    assert "s2 has max_replication_slots = 1" in text
    assert "0 slot(s) in use" in text and "at least 2" in text and "(s1, s3)" in text
    assert rig.cluster.primary.name == "pg" and not rig.cluster.failed
    unchanged(rig)
    rig.servers["s2"].settings["max_replication_slots"] = "2"
    rig.cluster.failover_plan("s2")
    unchanged(rig)


def test_failover_without_followers_needs_no_slot() -> None:
    rig = fake_cluster(("s1",))
    stop(rig.node("pg"), rig.hosts["pg"])
    rig.servers["s1"].settings["max_replication_slots"] = "0"
    rig.cluster.failover_plan()  # nobody follows s1: nothing to fit
    unchanged(rig)
