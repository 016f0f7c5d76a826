"""Replication slots counted while a plan is built (issue 8): a plan that would create more
slots than ``max_replication_slots`` leaves room for, beside the slots already there, is
refused (:class:`~pgstream.errors.InvalidInput`, the family the walsender budget uses) with
the setting, the slots in use and the slots needed named; nothing changed. Over fakes
(tests/fakes.py); tests/faults/test_budget.py does it against a real server."""

from __future__ import annotations

import pytest

from pgstream.errors import InvalidInput
from pgstream.ops.senders import SlotBudget
from tests.fakes import FakeHost, FakeSlot, FakeStandby, Rig, fake_cluster, fake_node, unchanged


def _new_standby(rig: Rig, name: str) -> FakeStandby:
    host = FakeHost(f"{name}-new-host")
    node = fake_node(FakeStandby, name, rig.servers["pg"].version, host, fresh=True)
    assert isinstance(node, FakeStandby)
    rig.hosts[name], rig.servers[name] = host, node.server
    return node


def test_add_standby_refused_when_every_slot_is_taken() -> None:
    rig = fake_cluster()  # s1 and s2 hold a slot each on pg
    rig.servers["pg"].settings["max_replication_slots"] = "3"
    rig.servers["pg"].slots["backup"] = FakeSlot("backup")  # a third, not a standby's
    with pytest.raises(InvalidInput) as refused:
        rig.cluster.add_standby_plan(_new_standby(rig, "s3"))
    text = str(refused.value)
    assert "max_replication_slots = 3" in text
    assert "3 slot(s) in use" in text and "at least 4" in text and "(s3)" in text
    unchanged(rig)
    del rig.servers["pg"].slots["backup"]
    plan = rig.cluster.add_standby_plan(_new_standby(rig, "s4"))  # room again: accepted
    assert plan.steps[0].title == "physical replication slot s4"
    unchanged(rig)


def test_add_cascading_standby_counts_the_upstreams_slots() -> None:
    rig = fake_cluster()
    rig.servers["s1"].settings["max_replication_slots"] = "0"
    with pytest.raises(InvalidInput, match=r"s1 has max_replication_slots = 0 .* at least 1"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s3"), upstream="s1")
    rig.servers["pg"].settings["max_replication_slots"] = "2"  # the primary's is not used
    rig.servers["s1"].settings["max_replication_slots"] = "1"
    rig.cluster.add_standby_plan(_new_standby(rig, "s4"), upstream="s1")
    unchanged(rig)


def test_setup_counts_the_slots_it_creates_against_the_setting_it_writes() -> None:
    rig = fake_cluster(("s1", "s2", "s3"), fresh=True)
    rig.servers["pg"].slots["old"] = FakeSlot("old")
    rig.cluster.settings = {"wal_level": "replica", "max_replication_slots": "3"}
    with pytest.raises(InvalidInput) as refused:
        rig.cluster.setup_plan()
    text = str(refused.value)
    assert "max_replication_slots = 3" in text and "1 slot(s) in use" in text
    assert "at least 4" in text and "creates 3 more (s1, s2, s3)" in text
    unchanged(rig)
    rig.cluster.settings["max_replication_slots"] = "4"
    rig.cluster.setup_plan()
    unchanged(rig)


def test_slots_that_exist_already_are_not_counted_twice() -> None:
    rig = fake_cluster(("s1", "s2"), fresh=True)
    server = rig.servers["pg"]
    server.settings["max_replication_slots"] = "2"
    server.slots["s1"] = FakeSlot("s1")  # a setup run again: s1's slot exists
    rig.cluster.setup_plan()
    budget = SlotBudget(rig.node("pg"))
    budget.plan_slots(["s1", "s2", "s2"])
    budget.check()  # s1 kept, s2 created: 2 of 2
    budget.plan_slots(["s3"])
    with pytest.raises(InvalidInput, match=r"at least 3: 1 slot\(s\) in use .* 2 more \(s2, s3\)"):
        budget.check()
    unchanged(rig)


def test_an_invalid_setting_is_left_to_the_settings_check() -> None:
    rig = fake_cluster(("s1",), fresh=True)
    budget = SlotBudget(rig.node("pg"))
    budget.check()  # nothing planned: not even a query
    assert rig.servers["pg"].statements == []
    budget.plan_slots(["s1"])
    budget.check("lots")  # refused where the settings are validated, not here
