"""Major upgrade of a primary with two standbys on real servers: 15 (Debian) to 18 (the wheel).

One 15 cluster is refused (an extension the new installation lacks; a column type that
``pg_upgrade --check`` itself refuses) with nothing changed, then interrupted before the point
of no return (the 15 cluster runs again), then upgraded with ``--link`` and rsync, switched
over, and its old directories removed. A second is upgraded with ``--copy`` and re-cloned
standbys. Runs once: in the session whose server is the pair's new installation.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from pgstream import Cluster, UpgradeRefused
from pgstream.cli import main
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.wait import wait_for
from pgstream.ops.plan import Plan, ProgressEvent, Report, StepKind, StepResult

from ..recording import Recorder, apply_and_compare, record_through

TOOLS = ("pg_upgrade", "pg_controldata", "pg_dump", "pg_config")
ROWS = 100_000
CHECKSUM = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t"


def upgrade_pair() -> tuple[Installation, Installation] | str:
    """(old, new) full installations with pg_upgrade, or why there is none here."""
    full = [i for i in binaries.discover() if i.has_server and all(i.has(t) for t in TOOLS)]
    if not full:
        return "no PostgreSQL installation with pg_upgrade and pg_controldata was found"
    new = full[0]
    older = [i for i in full if i.version.major_num < new.version.major_num]
    if not older:
        return (f"only PostgreSQL {new.version.major} has pg_upgrade here: an upgrade needs a "
                "full older major too (Debian: apt-get install postgresql)")
    return older[0], new


@pytest.fixture(scope="module")
def pair(pgstream_server: Installation) -> tuple[Installation, Installation]:
    found = upgrade_pair()
    if isinstance(found, str):
        pytest.skip(found)
    old, new = found
    if pgstream_server.bindir != new.bindir:
        pytest.skip(f"the {old.version.major} -> {new.version.major} upgrade runs once, in "
                    f"the session whose server is {new.bindir} (nox -s tests)")
    return old, new


def _all_stream(cluster: Cluster) -> bool:
    status = cluster.status()
    return all(s.state == "streaming" and s.in_recovery for s in status.standbys)


def _checksums(cluster: Cluster) -> dict[str, tuple[object, ...]]:
    return {n.name: n.query(CHECKSUM)[0] for n in cluster.nodes}


def _fill(cluster: Cluster) -> tuple[object, ...]:
    cluster.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) || repeat('x', 40) AS v "
        "FROM generate_series(1, %s) g", (ROWS,))
    cluster.wait_for_catchup()
    return cluster.primary.query(CHECKSUM)[0]


@pytest.fixture(scope="module")
def old_cluster(pair: tuple[Installation, Installation]) -> Iterator[Cluster]:
    with Cluster.sandbox(standbys=2, bindir=pair[0].bindir) as cluster:
        yield cluster


def test_refused_with_nothing_changed(old_cluster: Cluster,
                                      pair: tuple[Installation, Installation]) -> None:
    cluster, new = old_cluster, pair[1]
    assert cluster.base_dir is not None
    before = sorted(os.listdir(cluster.base_dir))
    # adminpack exists in 15 and was removed in 17: the new installation has no control file.
    cluster.primary.execute("CREATE EXTENSION adminpack")
    with pytest.raises(UpgradeRefused, match=r"FAILED\] every extension exists in "
                                             r"PostgreSQL 18: missing: adminpack"):
        cluster.upgrade_plan(new.bindir)
    cluster.primary.execute("DROP EXTENSION adminpack")
    # A regproc column: pgstream's own checks pass, pg_upgrade --check refuses.
    cluster.primary.execute("CREATE TABLE bad (p regproc)")
    with pytest.raises(UpgradeRefused, match=r"FAILED\] pg_upgrade --check: failed:(?s:.*)"
                                             r"reg\* data types"):
        cluster.upgrade_plan(new.bindir)
    cluster.primary.execute("DROP TABLE bad")
    assert sorted(os.listdir(cluster.base_dir)) == before
    assert cluster.primary.version.major == pair[0].version.major
    assert not cluster.primary.in_recovery
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the 15 standbys streaming")


def _interrupt_at(plan: Plan, title_part: str) -> Plan:
    def interrupted(report: Report) -> StepResult:
        raise KeyboardInterrupt

    steps = [attrs.evolve(s, action=interrupted) if title_part in s.title else s
             for s in plan.steps]
    return Plan(plan.title, steps)


def test_interrupted_before_point_of_no_return_leaves_the_old_cluster(
        old_cluster: Cluster, pair: tuple[Installation, Installation]) -> None:
    cluster, new = old_cluster, pair[1]
    expected = _fill(cluster)
    plan = cluster.upgrade_plan(new.bindir)
    assert cluster.base_dir is not None

    def ctrl_c_in_pg_upgrade(event: ProgressEvent) -> None:
        if event.event == "output" and event.step.kind is StepKind.UPGRADE and \
                "Performing Upgrade" in event.message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # while pg_upgrade runs: it is stopped, undone
        plan.apply(ctrl_c_in_pg_upgrade)
    assert not cluster.primary.in_recovery
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the 15 standbys streaming again")
    assert not (cluster.base_dir / "primary_18").exists()
    plan = cluster.upgrade_plan(new.bindir)
    with pytest.raises(KeyboardInterrupt):  # at the marker, after pg_upgrade --link is done
        _interrupt_at(plan, "POINT OF NO RETURN").apply()
    # pg_upgrade --link had run: pg_control renamed back, the new directory gone, all running.
    assert (cluster.base_dir / "primary" / "global" / "pg_control").exists()
    assert not (cluster.base_dir / "primary_18").exists()
    assert cluster.primary.version.major == pair[0].version.major
    assert not cluster.primary.in_recovery
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the 15 standbys streaming again")
    cluster.primary.execute("INSERT INTO t VALUES (0, 'after the rollback')")
    cluster.wait_for_catchup()
    cluster.primary.execute("DELETE FROM t WHERE id = 0")
    cluster.wait_for_catchup()
    assert set(_checksums(cluster).values()) == {expected}


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed "
                    "(Debian: apt-get install rsync)")
def test_link_and_rsync_then_switchover_then_remove_old(
        old_cluster: Cluster, pair: tuple[Installation, Installation],
        recorder: Recorder) -> None:
    cluster, new = old_cluster, pair[1]
    expected = cluster.primary.query(CHECKSUM)[0]
    cluster.primary.create_slot("backup_tool")  # a slot no standby uses: recreated too
    record_through(cluster, recorder)  # before the plan: its steps keep the hosts it saw
    plan = cluster.upgrade_plan(new.bindir)
    text = str(plan)
    assert "POINT OF NO RETURN" in text
    assert "rsync --archive --delete --hard-links --size-only --no-inc-recursive" in text
    assert "--link" in text and "pg_controldata" in text and "--analyze-in-stages" in text
    assert text.index("POINT OF NO RETURN") < text.index("rsync --archive")
    report = apply_and_compare(plan, recorder)  # what ran is what it printed
    assert report.changed
    assert {n.version.major for n in cluster.nodes} == {new.version.major}
    assert set(_checksums(cluster).values()) == {expected}
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the 18 standbys streaming")
    status = cluster.status()
    assert {(s.slot_name, s.slot_active) for s in status.standbys} == {
        ("standby1", True), ("standby2", True)}
    assert {s.name for s in cluster.primary.slots()} == {"backup_tool", "standby1",
                                                          "standby2"}
    assert status.history[-1].operation == "upgrade"
    # rsync --hard-links: the standby's new relation file is its own old one, linked.
    base = cluster.base_dir
    assert base is not None
    relpath = str(cluster.primary.query("SELECT pg_relation_filepath('t')")[0][0])
    assert (base / "standby1_18" / relpath).stat().st_ino == (
        base / "standby1" / relpath).stat().st_ino
    cluster.primary.execute("INSERT INTO t VALUES (-1, 'on 18')")
    cluster.wait_for_catchup()
    assert all(n.query("SELECT v FROM t WHERE id = -1") == [("on 18",)] for n in cluster.nodes)

    cluster.switchover("standby1")
    assert cluster.primary.name == "standby1"
    wait_for(lambda: _all_stream(cluster), timeout=30, what="streaming after the switchover")

    record_through(cluster, recorder)
    removal = cluster.remove_old_cluster_plan()
    assert len(removal) == 3
    apply_and_compare(removal, recorder)
    assert not any((base / name).exists() for name in ("primary", "standby1", "standby2"))
    cluster.primary.execute("DELETE FROM t WHERE id = -1")
    cluster.wait_for_catchup()
    assert set(_checksums(cluster).values()) == {expected}  # --link's files survive it


def test_copy_and_reclone(pgstream_sandbox: Callable[..., Cluster],
                          pair: tuple[Installation, Installation], recorder: Recorder) -> None:
    old, new = pair
    cluster = pgstream_sandbox(2, bindir=old.bindir)
    expected = _fill(cluster)
    record_through(cluster, recorder)  # before the plan: its steps keep the hosts it saw
    plan = cluster.upgrade_plan(new.bindir, method="reclone", mode="copy", analyze=False)
    text = str(plan)
    assert "--copy" in text and "rsync" not in text and "pg_basebackup" in text
    assert text.index("POINT OF NO RETURN") < text.index("pg_basebackup")
    apply_and_compare(plan, recorder)  # what ran is what it printed
    assert {n.version.major for n in cluster.nodes} == {new.version.major}
    assert set(_checksums(cluster).values()) == {expected}
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the re-cloned standbys streaming")
    assert {s.slot_name for s in cluster.status().standbys} == {"standby1", "standby2"}
    base = cluster.base_dir
    assert base is not None
    # --copy and a re-clone leave every old directory as it was (pg_control in place).
    for name in ("primary", "standby1", "standby2"):
        assert (base / name / "global" / "pg_control").exists()
        assert Path(base / name / "PG_VERSION").read_text().strip() == old.version.major


def test_cli_dry_run_changes_nothing(pair: tuple[Installation, Installation], empty_dir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    old, new = pair
    assert main(["demo-upgrade", "--to", str(new.bindir), "--from", str(old.bindir), "--dry-run",
                 "--standbys", "1", "--rows", "10", "--base-dir", str(empty_dir)]) == 0
    out = capsys.readouterr().out
    assert "[ok] pg_upgrade --check: passed" in out and "POINT OF NO RETURN" in out
    assert "dry run: nothing was changed" in out
    assert list(empty_dir.iterdir()) == []
    assert main(["demo-upgrade", "--to", str(empty_dir)]) == 2  # not an installation: refused
