"""A dry run is the truth for the slot plans and for the fix plans ``check()`` attaches.

One module-scoped sandbox (a primary, two standbys, pg_ctl on this machine) whose hosts record
every effect argv; psycopg records every effect statement. Each test applies a plan with
:func:`tests.recording.apply_and_compare`: what each step ran is what ``print(plan)`` showed
for it, and what it showed ran. Each test leaves the cluster healthy for the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from psycopg import sql

from pgstream import Cluster, drop_inactive_slots_plan, slot_wal_limit_plan
from pgstream.hosts.binaries import Installation
from pgstream.ops.check import CheckReport, Finding
from pgstream.ops.check.fixes import has_rewind
from pgstream.ops.plan import Plan
from pgstream.ops.setup import slot_step

from ..recording import Recorder, apply_and_compare, record_through
from .test_check import _point_at


@pytest.fixture(scope="module")
def cluster(pgstream_server: Installation) -> Iterator[Cluster]:
    with Cluster.sandbox(standbys=2, bindir=pgstream_server.bindir,
                         settings={"wal_retrieve_retry_interval": "200ms"}) as made:
        yield made


@pytest.fixture
def recorded(cluster: Cluster, recorder: Recorder) -> Cluster:
    """The module's cluster, its hosts recording into this test's recorder."""
    record_through(cluster, recorder)
    return cluster


def _until(cluster: Cluster, want: Callable[[CheckReport], bool], what: str,
           timeout: float = 30.0) -> CheckReport:
    deadline = time.monotonic() + timeout
    while True:
        report = cluster.check()
        if want(report):
            return report
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout:g} s for {what}; last report:\n{report}")
        time.sleep(0.2)


def _fix(cluster: Cluster, code: str, node: str) -> Plan:
    report = _until(cluster, lambda r: r.first(code, node) is not None, f"{code} on {node}")
    found: Finding | None = report.first(code, node)
    assert found is not None and found.plan is not None, f"{code}: no fix plan"
    return found.plan


def _healthy(cluster: Cluster) -> None:
    _until(cluster, lambda r: r.ok, "a healthy cluster")


def _kick(cluster: Cluster, standby: str) -> None:
    """End the walsender of ``standby``: its walreceiver connects anew."""
    cluster.primary.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication "
                            "WHERE application_name = %s", (standby,))


# -- slot plans ---------------------------------------------------------------------------------

def test_slot_create_and_drop_plans(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    try:
        apply_and_compare(Plan("create slot spare", [slot_step(primary, "spare")]), recorder)
        assert recorder.effects, "the slot creation recorded nothing"
        assert primary.slot("spare") is not None
        apply_and_compare(Plan("create slot spare again", [slot_step(primary, "spare")]),
                          recorder)  # exists: nothing runs, nothing is claimed
        apply_and_compare(drop_inactive_slots_plan(primary, ["spare"]), recorder)
        assert primary.slot("spare") is None
        primary.create_slot("forgotten1")
        primary.create_slot("forgotten2")
        apply_and_compare(drop_inactive_slots_plan(primary), recorder)  # every inactive one
        assert {s.name for s in primary.slots()} == {"standby1", "standby2"}
    finally:
        for name in ("spare", "forgotten1", "forgotten2"):
            if primary.slot(name) is not None:
                primary.drop_slot(name)


def test_slot_wal_limit_plan(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    if not primary.version.adapter.supports("slot_wal_limit"):
        pytest.skip(f"max_slot_wal_keep_size is 13+, not {primary.version.major}")
    try:
        apply_and_compare(slot_wal_limit_plan(primary, 1024), recorder)
        assert primary.show("max_slot_wal_keep_size") == "1GB"
        apply_and_compare(slot_wal_limit_plan(primary, 1024), recorder)  # in place: unchanged
    finally:
        apply_and_compare(slot_wal_limit_plan(primary, -1), recorder)
    assert primary.show("max_slot_wal_keep_size") == "-1"


# -- fix plans from check() ---------------------------------------------------------------------

def test_fix_slot_missing(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    standby = recorded.standby("standby1")
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    primary.drop_slot("standby1")
    try:
        standby.service.start()
        apply_and_compare(_fix(recorded, "slot_missing", "standby1"), recorder)
    finally:
        primary.create_slot("standby1", exist_ok=True)
    _healthy(recorded)


def test_fix_slot_inactive_retaining(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    primary.create_slot("forgotten")
    try:
        primary.execute("CREATE TABLE IF NOT EXISTS dryrun_fill (pad text)")
        primary.execute("INSERT INTO dryrun_fill SELECT repeat('x', 100) "
                        "FROM generate_series(1, 2000)")
        apply_and_compare(_fix(recorded, "slot_inactive_retaining", "primary"), recorder)
        assert primary.slot("forgotten") is None
    finally:
        if primary.slot("forgotten") is not None:
            primary.drop_slot("forgotten")
    _healthy(recorded)


def test_fix_replay_paused(recorded: Cluster, recorder: Recorder) -> None:
    standby = recorded.standby("standby2")
    fn = standby.version.adapter.function
    standby.execute(sql.SQL("SELECT {}()").format(sql.Identifier(fn("pg_wal_replay_pause"))))
    try:
        apply_and_compare(_fix(recorded, "replay_paused", "standby2"), recorder)
    finally:
        standby.execute(sql.SQL("SELECT {}()").format(
            sql.Identifier(fn("pg_wal_replay_resume"))))
    _healthy(recorded)


def test_fix_role_missing(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    primary.execute("ALTER ROLE replicator NOREPLICATION")
    try:
        _kick(recorded, "standby1")
        apply_and_compare(_fix(recorded, "role_missing", "standby1"), recorder)
    finally:
        primary.execute("ALTER ROLE replicator REPLICATION")
    _healthy(recorded)


def test_fix_hba_missing(recorded: Cluster, recorder: Recorder) -> None:
    primary = recorded.primary
    hba = Path(primary.show("hba_file"))
    original = hba.read_text()
    kept = [line for line in original.splitlines()
            if "replication" not in line or line.lstrip().startswith("#")]
    hba.write_text("".join(f"{line}\n" for line in kept))
    primary.execute("SELECT pg_reload_conf()")
    try:
        _kick(recorded, "standby1")
        apply_and_compare(_fix(recorded, "hba_missing", "standby1"), recorder)
        _healthy(recorded)
    finally:
        hba.write_text(original)
        primary.execute("SELECT pg_reload_conf()")
    _healthy(recorded)


def test_fix_timeline_diverged(recorded: Cluster, recorder: Recorder) -> None:
    """Last: it promotes a standby and rejoins it."""
    standby = recorded.standby("standby2")
    if not has_rewind(standby):
        pytest.skip(f"no pg_rewind of {standby.version.major} here: the fix is a re-clone")
    standby.promote()
    standby.execute("CREATE TABLE dryrun_split_brain (id int)")
    _until(recorded, lambda r: r.first("standby_not_in_recovery", "standby2") is not None,
           "standby_not_in_recovery")
    _point_at(recorded, standby, recorded.address_of(recorded.primary))
    try:
        apply_and_compare(_fix(recorded, "timeline_diverged", "standby2"), recorder)
    finally:
        _healthy(recorded)
