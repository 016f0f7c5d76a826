"""Upgrade plans over fakes (tests/fakes.py), no server: ``upgrade_plan``'s shape (the steps'
kinds, nodes and order, for both methods) and its refusals; ``remove_old_cluster_plan``'s
steps and refusals. Every refusal is raised while the plan is built, with nothing changed.

The pre-checks (:func:`pgstream.ops.upgrade.checks.gather`) ask real programs and servers
much (pg_config, df, pg_upgrade --check); for the shape, they are replaced by the facts they
would find. Their early refusals run for real, over the fakes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pgstream import Plan
from pgstream.errors import InvalidInput, UnsafeDataDirectory, UpgradeRefused
from pgstream.facts.version import ServerVersion
from pgstream.hosts.binaries import Installation
from pgstream.ops.upgrade import plan as upgrade_module
from pgstream.ops.upgrade.facts import NodeFacts, UpgradeFacts, UpgradeMethod
from pgstream.ops.view import ClusterView
from pgstream.render import commands
from tests.fakes import Rig, fake_cluster, kinds, shape, start, unchanged

OLD_BIN = Path("/usr/lib/postgresql/16/bin")
NEW_BIN = Path("/usr/lib/postgresql/18/bin")


def _facts(cluster: ClusterView, to: object, *, method: UpgradeMethod,
           mode: commands.TransferMode | None, data_dirs: Mapping[str, Path] | None,
           sync: bool) -> UpgradeFacts:
    """What the pre-checks would find on a healthy cluster of 16 upgraded to 18."""
    nodes = {n.name: NodeFacts(n.name, Path(str(n.data_dir)),
                               Path(str(n.data_dir).replace("/16/", "/18/")),
                               {"port": "5432"}, (), "local all all peer\n", "")
             for n in cluster.nodes}
    return UpgradeFacts(Installation(OLD_BIN, ServerVersion.parse("16.4")),
                        Installation(NEW_BIN, ServerVersion.parse("18.1")), mode or "link",
                        method, "postgres", "UTF8", "C", "C", False, 16, nodes,
                        tuple(cluster.slot_for(s) for s in cluster.standbys), (50001, 50002),
                        sync)


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Rig:
    """A fake cluster (pg, s1, s2 on 16.4) whose pre-checks pass, 18.1 on every host."""
    monkeypatch.setattr(upgrade_module, "gather", _facts)
    rig = fake_cluster()
    for host in rig.hosts.values():
        host.install(NEW_BIN, "18.1")
        host.add_dir("/var/lib/postgresql/18")
    return rig


# -- upgrade_plan: shape ----------------------------------------------------------------------

STOPS = [("stop", "pg", "pg-host"), ("stop", "s1", "s1-host"), ("stop", "s2", "s2-host")]
PREPARE = [("check", "pg", "pg-host"), ("initdb", "pg", "pg-host"), ("setting", "pg", "pg-host"),
           *STOPS]
AFTER_START = [("start", "pg", "pg-host"), ("check", "pg", "pg-host"),
               ("slot", "pg", "pg-host"), ("slot", "pg", "pg-host")]


def test_rsync_upgrade_shape(checked: Rig) -> None:
    plan = checked.cluster.upgrade_plan(NEW_BIN)
    assert plan.title == ("upgrade pg (s1, s2) from PostgreSQL 16 to 18: pg_upgrade --link, "
                          "standbys by rsync")
    assert shape(plan) == [
        *PREPARE,
        ("check", "pg", "pg-host"),        # every node stopped at the same checkpoint
        ("upgrade", "pg", "pg-host"),
        ("check", "pg", "pg-host"),        # the point of no return
        ("rsync", "s1", "s1-host"), ("recovery config", "s1", "s1-host"),
        ("rsync", "s2", "s2-host"), ("recovery config", "s2", "s2-host"),
        *AFTER_START,
        ("start", "s1", "s1-host"), ("check", "s1", "s1-host"),
        ("start", "s2", "s2-host"), ("check", "s2", "s2-host"),
        ("record", "pg", "pg-host"), ("sql", "pg", "pg-host")]
    titles = [s.title for s in plan.steps]
    assert titles[7] == "pg_upgrade --link to PostgreSQL 18"
    assert "POINT OF NO RETURN" in titles[8]
    # the point of no return comes before the first rsync, which changes the old standbys
    assert titles.index(titles[8]) < kinds(plan).index("rsync")
    assert titles[-2] == "record the new data directories"
    assert "secret" not in str(plan)
    unchanged(checked)


def test_upgrade_choices_show_in_the_plan(checked: Rig) -> None:
    """``mode`` names pg_upgrade's transfer, ``analyze=False`` drops the last step.
    (``method="reclone"`` builds its clones against the new primary's server: its shape is
    tested on real servers, tests/integration/test_upgrade.py.)"""
    plan = checked.cluster.upgrade_plan(NEW_BIN, mode="copy", analyze=False)
    assert plan.title.endswith("pg_upgrade --copy, standbys by rsync")
    assert plan.steps[7].title == "pg_upgrade --copy to PostgreSQL 18"
    assert kinds(plan)[-1] == "record"
    assert len(plan) == len(checked.cluster.upgrade_plan(NEW_BIN)) - 1
    unchanged(checked)


def test_upgrade_without_standbys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(upgrade_module, "gather", _facts)
    rig = fake_cluster(())
    rig.hosts["pg"].install(NEW_BIN, "18.1")
    plan = rig.cluster.upgrade_plan(NEW_BIN)
    assert plan.title.startswith("upgrade pg (no standbys)")
    assert kinds(plan) == ["check", "initdb", "setting", "stop", "upgrade", "check", "start",
                           "check", "record", "sql"]
    unchanged(rig)


# -- upgrade_plan: refusals (the real pre-checks, over fakes) ---------------------------------

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "dump"}, "unknown upgrade method 'dump'"),
    ({"mode": "hardlink"}, "unknown pg_upgrade mode 'hardlink'"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": True}, "timeout"),
])
def test_bad_arguments_are_refused(kwargs: dict[str, object], message: str) -> None:
    rig = fake_cluster()
    with pytest.raises(InvalidInput, match=message):
        rig.cluster.upgrade_plan(NEW_BIN, **kwargs)  # type: ignore[arg-type]
    unchanged(rig)


def test_a_node_without_a_data_directory_is_refused() -> None:
    rig = fake_cluster()
    rig.cluster.standby("s2").data_dir = None
    with pytest.raises(UpgradeRefused, match="not: s2"):
        rig.cluster.upgrade_plan(NEW_BIN)
    unchanged(rig)


def test_an_unreachable_primary_is_refused() -> None:
    rig = fake_cluster()
    rig.servers["pg"].up = False
    with pytest.raises(UpgradeRefused, match="primary reachable"):
        rig.cluster.upgrade_plan(NEW_BIN)
    unchanged(rig)


def test_a_missing_new_installation_is_refused() -> None:
    rig = fake_cluster()
    rig.hosts["pg"].install(NEW_BIN, "18.1")  # on the primary's host only
    with pytest.raises(UpgradeRefused, match="installations on s1-host"):
        rig.cluster.upgrade_plan(NEW_BIN)
    unchanged(rig)


def test_an_installation_not_newer_is_refused() -> None:
    rig = fake_cluster()
    for host in rig.hosts.values():
        host.install("/opt/pg16/bin", "16.9")
    with pytest.raises(UpgradeRefused, match="not newer than 16"):
        rig.cluster.upgrade_plan("/opt/pg16/bin")
    unchanged(rig)


# -- remove_old_cluster_plan ------------------------------------------------------------------

OLD_DIR = Path("/var/lib/postgresql/15/pg")


def _old_dir(rig: Rig, node: str = "pg", path: Path = OLD_DIR) -> Path:
    rig.hosts[node].add_file(path / "PG_VERSION", "15\n")
    return path


def test_remove_old_cluster_removes_each_old_directory() -> None:
    rig = fake_cluster()
    old = {"pg": _old_dir(rig), "s1": _old_dir(rig, "s1", Path("/var/lib/postgresql/15/s1"))}
    plan = rig.cluster.remove_old_cluster_plan()
    assert len(plan) == 0  # the cluster kept none
    rig.cluster.old_data_dirs.update(old)
    plan = rig.cluster.remove_old_cluster_plan()
    assert plan.title == "remove the old cluster's data directories"
    assert shape(plan) == [("wipe", "pg", "pg-host"), ("wipe", "s1", "s1-host")]
    assert plan.steps[0].title == f"remove the old data directory {OLD_DIR} (PostgreSQL 15)"
    assert str(OLD_DIR) in plan.steps[0].detail
    unchanged(rig)


def test_remove_old_cluster_of_a_directory_already_gone() -> None:
    rig = fake_cluster()
    rig.cluster.old_data_dirs["pg"] = OLD_DIR
    plan = rig.cluster.remove_old_cluster_plan()
    assert [(s.kind.value, s.title, s.detail) for s in plan.steps] == [
        ("wipe", f"remove {OLD_DIR}", f"{OLD_DIR}: already gone")]
    unchanged(rig)


def test_remove_old_cluster_refusals() -> None:
    rig = fake_cluster()
    current = Path(str(rig.cluster.primary.data_dir))
    for old, error, message in [
            ({"ghost": OLD_DIR}, InvalidInput, "no node named 'ghost'"),
            ({"pg": current}, UnsafeDataDirectory, "a current data directory"),
            ({"pg": current.parent}, UnsafeDataDirectory, "a current data directory"),
            ({"pg": current / "base"}, UnsafeDataDirectory, "a current data directory")]:
        if old.get("pg") == current / "base":
            rig.hosts["pg"].add_dir(current / "base")
        with pytest.raises(error, match=message):
            _plan(rig, old)
    rig.hosts["pg"].add_dir(Path("/srv/not-postgres"))
    with pytest.raises(UnsafeDataDirectory, match="not a PostgreSQL data directory"):
        _plan(rig, {"pg": Path("/srv/not-postgres")})
    unchanged(rig)


def test_remove_old_cluster_refuses_a_running_server() -> None:
    rig = fake_cluster()
    old = _old_dir(rig)
    # a server started on the old directory (its postmaster.pid names a live process)
    node = rig.node("pg")
    saved = node.server.data_directory
    node.server.data_directory = old
    start(node, rig.hosts["pg"])
    node.server.data_directory = saved
    with pytest.raises(UnsafeDataDirectory, match="a server runs on it"):
        _plan(rig, {"pg": old})
    unchanged(rig)


def _plan(rig: Rig, old: Mapping[str, Path]) -> Plan:
    """``remove_old_cluster_plan`` for ``old`` (what a cluster kept would be)."""
    return upgrade_module.remove_old_cluster_plan(rig.cluster, old)
