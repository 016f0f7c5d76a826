"""Plans built over fakes (tests/fakes.py), no server: setup, add standby, remove standby,
synchronous replication and the slot plans. Each test asserts the plan's shape (step kinds,
the nodes and hosts they name, in order) or its refusal: the right error class, raised while
the plan is built, with nothing changed on any host or server. Building a plan never changes
anything, so every successful build is checked for that too. Roles: test_ops_plans_roles.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstream.errors import (
    BinaryNotFound,
    InvalidInput,
    NotAvailable,
    Refused,
    ServerMismatch,
    SlotInUse,
    SlotNotFound,
    UnsafeDataDirectory,
)
from pgstream.ops.slots import drop_inactive_slots_plan, slot_wal_limit_plan
from pgstream.render.sync_spec import SyncSpec
from tests.fakes import (
    FakeHost,
    FakeSlot,
    FakeStandby,
    Rig,
    fake_cluster,
    fake_node,
    kinds,
    shape,
    unchanged,
)

CLONE = ["wipe", "file", "base backup", "recovery config", "start", "check"]


# -- setup ------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", ["9.6.24", "12.20", "16.4", "18.1"])
def test_setup_prepares_the_primary_then_clones_each_standby(version: str) -> None:
    rig = fake_cluster(fresh=True, version=version)
    plan = rig.cluster.setup_plan()
    assert kinds(plan) == ["setting", "role", "reload", "restart", "slot", "slot",
                           *CLONE, *CLONE]
    assert [s.node for s in plan.steps[:6]] == ["pg"] * 6
    assert [s.title for s in plan.steps[4:6]] == ["physical replication slot s1",
                                                 "physical replication slot s2"]
    assert shape(plan)[6:] == [(k, "s1", "s1-host") for k in CLONE] + [
        (k, "s2", "s2-host") for k in CLONE]
    backup = plan.steps[8]
    assert f"pg_basebackup {version.split('.')[0] if version[0] != '9' else '9.6'}" \
        in backup.title
    assert "-h pg.example -p 5432 -U replicator" in backup.detail and "-S s1" in backup.detail
    files = plan.steps[9].title
    assert ("recovery.conf" in files) is (version in ("9.6.24",))
    assert "secret" not in str(plan)
    unchanged(rig)


def test_setup_of_streaming_standbys_only_checks_them() -> None:
    rig = fake_cluster()
    plan = rig.cluster.setup_plan()
    assert kinds(plan)[-2:] == ["check", "check"]
    assert [s.title for s in plan.steps[-2:]] == [
        "s1 already streams from pg: nothing to clone",
        "s2 already streams from pg: nothing to clone"]
    unchanged(rig)


def test_setup_with_an_hba_address_adds_the_line() -> None:
    rig = fake_cluster(fresh=True)
    rig.cluster.hba_addresses = ["10.0.0.0/24"]
    plan = rig.cluster.setup_plan()
    assert kinds(plan)[:3] == ["setting", "hba line", "role"]
    assert "host    replication    replicator    10.0.0.0/24    scram-sha-256" in \
        plan.steps[1].detail
    unchanged(rig)


def test_setup_refuses_a_bad_setting_before_anything() -> None:
    rig = fake_cluster(fresh=True)
    rig.cluster.settings = {"max_wal_senders": "lots"}
    with pytest.raises(InvalidInput, match="max_wal_senders"):
        rig.cluster.setup_plan()
    unchanged(rig)


def test_setup_refuses_too_few_walsenders_for_the_clones() -> None:
    rig = fake_cluster(("s1", "s2", "s3"), fresh=True)
    rig.cluster.settings = {"max_wal_senders": "3"}
    with pytest.raises(InvalidInput, match="max_wal_senders = 3 but cloning 3 standby"):
        rig.cluster.setup_plan()
    unchanged(rig)


def test_setup_refuses_a_non_data_directory_in_the_way() -> None:
    rig = fake_cluster(fresh=True)
    rig.hosts["s2"].add_file("/var/lib/postgresql/16/s2/notes.txt", "mine")
    with pytest.raises(UnsafeDataDirectory, match="not a PostgreSQL data directory"):
        rig.cluster.setup_plan()
    unchanged(rig)


def test_setup_refuses_a_standby_host_with_only_an_older_major() -> None:
    """The cross-version rule: pg_basebackup must be of the primary's major or newer, and on
    another machine only its own programs count."""
    rig = fake_cluster(fresh=True)
    host = rig.hosts["s1"]
    host.installations[Path("/usr/lib/postgresql/16/bin")] = "15.8"
    with pytest.raises(BinaryNotFound, match="no pg_basebackup of PostgreSQL 16 or newer"):
        rig.cluster.setup_plan()
    unchanged(rig)


# -- add standby ------------------------------------------------------------------------------

def _new_standby(rig: Rig, name: str, **kw: object) -> FakeStandby:
    """A standby to add, on a host of its own (watched by ``rig.changes()`` when its name is
    new), its data directory empty, no server yet."""
    host = FakeHost(f"{name}-new-host")
    node = fake_node(FakeStandby, name, rig.servers["pg"].version, host, fresh=True, **kw)
    assert isinstance(node, FakeStandby)
    if name not in rig.servers:
        rig.hosts[name], rig.servers[name] = host, node.server
    return node


def test_add_standby_makes_its_slot_then_clones_it() -> None:
    rig = fake_cluster()
    plan = rig.cluster.add_standby_plan(_new_standby(rig, "s3"))
    assert plan.title == "add s3 streaming from pg"
    assert shape(plan) == [("slot", "pg", "pg-host"),
                           *((k, "s3", "s3-new-host") for k in CLONE),
                           ("record", "s3", "s3-new-host")]
    assert plan.steps[0].title == "physical replication slot s3"
    unchanged(rig)


def test_add_cascading_standby_takes_its_slot_on_the_upstream() -> None:
    rig = fake_cluster()
    plan = rig.cluster.add_standby_plan(_new_standby(rig, "s3"), upstream="s1",
                                        hba_address="10.0.0.7")
    assert shape(plan)[:3] == [("hba line", "s1", "s1-host"), ("reload", "s1", "s1-host"),
                               ("slot", "s1", "s1-host")]
    assert "-h s1.example" in plan.steps[5].detail
    assert "# pgstream: standby s3" in plan.steps[0].detail
    unchanged(rig)


def test_add_standby_refusals_change_nothing() -> None:
    rig = fake_cluster()
    with pytest.raises(InvalidInput, match="exists already"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s2"))
    with pytest.raises(InvalidInput, match="another standby's"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s4", slot_name="s1"))
    with pytest.raises(InvalidInput, match="no node named"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s5"), upstream="nope")
    rig.servers["pg"].system_identifier = "7000000000000000999"
    with pytest.raises(ServerMismatch, match="system_identifier"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s6"), upstream="s1")
    unchanged(rig)


def test_add_standby_refuses_a_primary_in_recovery() -> None:
    rig = fake_cluster()
    rig.servers["pg"].in_recovery = True
    with pytest.raises(ServerMismatch, match="declared role primary"):
        rig.cluster.add_standby_plan(_new_standby(rig, "s3"))
    unchanged(rig)


def test_add_standby_refuses_a_standby_host_with_only_an_older_major() -> None:
    rig = fake_cluster()
    node = _new_standby(rig, "s3")
    assert node.service is not None
    rig.hosts["s3"].installations[node.service.bindir] = "15.8"
    with pytest.raises(BinaryNotFound, match="pg_basebackup of PostgreSQL 16 or newer"):
        rig.cluster.add_standby_plan(node)
    unchanged(rig)


def test_add_standby_refuses_a_standby_declared_with_another_nodes_data_directory() -> None:
    rig = fake_cluster()
    node = _new_standby(rig, "s3")
    node.host = rig.hosts["s1"]
    node.data_dir = rig.servers["s1"].data_directory
    with pytest.raises(UnsafeDataDirectory, match="both declared with the data directory"):
        rig.cluster.add_standby_plan(node)
    unchanged(rig)


# -- remove standby ---------------------------------------------------------------------------

def test_remove_standby_stops_it_drops_its_slot_and_hba_line() -> None:
    rig = fake_cluster()
    plan = rig.cluster.remove_standby_plan("s2")
    assert shape(plan) == [("stop", "s2", "s2-host"), ("slot", "pg", "pg-host"),
                           ("hba line", "pg", "pg-host"), ("record", "s2", "s2-host")]
    assert plan.steps[1].title == "drop slot s2 on pg"
    unchanged(rig)


def test_remove_a_synchronous_standby_first_stops_waiting_for_it_and_wipes() -> None:
    rig = fake_cluster()
    rig.servers["pg"].settings["synchronous_standby_names"] = "FIRST 1 (s1, s2)"
    plan = rig.cluster.remove_standby_plan("s2", wipe=True)
    assert kinds(plan) == ["setting", "stop", "slot", "hba line", "wipe", "record"]
    assert plan.steps[0].detail.startswith(
        "ALTER SYSTEM SET \"synchronous_standby_names\" = 'FIRST 1 (s1)';")
    assert plan.steps[4].title == "wipe /var/lib/postgresql/16/s2 (wipe=True)"
    unchanged(rig)


def test_remove_a_cascading_standby_drops_its_slot_on_its_upstream() -> None:
    rig = fake_cluster(("s1", "s2"), cascading={"s2": "s1"})
    plan = rig.cluster.remove_standby_plan("s2")
    assert shape(plan)[1:3] == [("slot", "s1", "s1-host"), ("hba line", "s1", "s1-host")]
    assert ("hba line", "pg", "pg-host") in shape(plan)
    unchanged(rig)


def test_remove_standby_refusals() -> None:
    rig = fake_cluster(("s1", "s2"), cascading={"s2": "s1"})
    with pytest.raises(Refused, match="s2 stream"):
        rig.cluster.remove_standby_plan("s1")
    with pytest.raises(InvalidInput, match="no standby named"):
        rig.cluster.remove_standby_plan("pg")
    unchanged(rig)


@pytest.mark.parametrize("bad", [-1, 0, float("nan"), float("inf"), "5", True])
def test_remove_standby_timeout_is_validated_first(bad: object) -> None:
    rig = fake_cluster()
    with pytest.raises(InvalidInput, match="timeout"):
        rig.cluster.remove_standby_plan("s2", timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="timeout"):
        rig.cluster.upgrade_plan("/usr/lib/postgresql/18/bin", timeout=bad)  # type: ignore[arg-type]
    unchanged(rig)


# -- synchronous replication ------------------------------------------------------------------

def test_synchronous_plan_sets_reloads_and_waits() -> None:
    rig = fake_cluster()
    plan = rig.cluster.synchronous_plan(SyncSpec.first(1, ["s1", "s2"]),
                                        wait_for={"s1": "sync", "s2": "potential"})
    assert shape(plan) == [("setting", "pg", "pg-host"), ("reload", "pg", "pg-host"),
                           ("check", "pg", "pg-host")]
    assert "'FIRST 1 (s1, s2)'" in plan.steps[0].detail
    assert plan.title == "synchronous replication on pg: FIRST 1 (s1, s2)"
    unchanged(rig)


def test_synchronous_plan_refuses_an_unknown_name() -> None:
    rig = fake_cluster()
    with pytest.raises(InvalidInput, match="ghost is not a standby streaming from pg"):
        rig.cluster.synchronous_plan(SyncSpec.priority(["s1", "ghost"]))
    with pytest.raises(InvalidInput, match="can never be 'quorum'"):
        rig.cluster.synchronous_plan(SyncSpec.first(1, ["s1"]), wait_for={"s1": "quorum"})
    unchanged(rig)


def test_synchronous_plan_counts_only_direct_standbys() -> None:
    rig = fake_cluster(("s1", "s2"), cascading={"s2": "s1"})
    with pytest.raises(InvalidInput, match="s2 is not a standby streaming from pg"):
        rig.cluster.synchronous_plan(SyncSpec.priority(["s2"]))
    unchanged(rig)


def test_any_is_refused_on_9_6() -> None:
    rig = fake_cluster(version="9.6.24")
    with pytest.raises(NotAvailable):
        rig.cluster.synchronous_plan(SyncSpec.any(1, ["s1", "s2"]))
    unchanged(rig)


# -- slots ------------------------------------------------------------------------------------

def test_drop_inactive_slots_checks_again_then_drops_each() -> None:
    rig = fake_cluster()
    rig.servers["pg"].slots["old"] = FakeSlot("old")
    rig.servers["pg"].slots["older"] = FakeSlot("older")
    plan = drop_inactive_slots_plan(rig.cluster.primary)
    assert shape(plan) == [("check", "pg", "pg-host"), ("slot", "pg", "pg-host"),
                           ("slot", "pg", "pg-host")]
    assert [s.title for s in plan.steps[1:]] == ["drop inactive slot old",
                                                "drop inactive slot older"]
    assert "s1" not in plan.title
    unchanged(rig)


def test_drop_named_slots_refuses_active_and_missing_ones() -> None:
    rig = fake_cluster()
    rig.servers["pg"].slots["old"] = FakeSlot("old")
    with pytest.raises(SlotInUse, match="s1"):
        drop_inactive_slots_plan(rig.cluster.primary, ["old", "s1"])
    with pytest.raises(SlotNotFound, match="nope"):
        drop_inactive_slots_plan(rig.cluster.primary, ["nope"])
    with pytest.raises(InvalidInput):
        drop_inactive_slots_plan(rig.cluster.primary, ["Bad Name"])
    unchanged(rig)


def test_slot_wal_limit_plan() -> None:
    rig = fake_cluster()
    plan = slot_wal_limit_plan(rig.cluster.primary, 1024)
    assert shape(plan) == [("setting", "pg", "pg-host"), ("reload", "pg", "pg-host")]
    assert plan.steps[0].detail == "ALTER SYSTEM SET \"max_slot_wal_keep_size\" = '1024MB';"
    with pytest.raises(InvalidInput):
        slot_wal_limit_plan(rig.cluster.primary, -2)
    unchanged(rig)


def test_slot_wal_limit_needs_13() -> None:
    rig = fake_cluster(version="12.20")
    with pytest.raises(NotAvailable, match="13"):
        slot_wal_limit_plan(rig.cluster.primary, 1024)
    unchanged(rig)
