"""History is recorded one way, on real servers: applying ``follow_plan`` or
``synchronous_plan`` yourself records the same entry as the ``Cluster`` verb (``follow``,
``set_synchronous``), because the plan commits it, not the verb (issue 9)."""

from __future__ import annotations

from collections.abc import Callable

from pgstream import Cluster
from pgstream.render.sync_spec import SyncSpec

MakeCluster = Callable[..., Cluster]


def _entries(cluster: Cluster) -> list[tuple[str, str, int | None]]:
    """The history without the times: (operation, detail, timeline)."""
    return [(e.operation, e.detail, e.timeline) for e in cluster.history]


def test_follow_plan_applied_records_what_follow_records(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(2)
    cluster.follow_plan("standby2", "standby1").apply()
    by_plan = _entries(cluster)
    assert by_plan == [("follow", "standby2 streams from standby1", 1)]
    assert cluster.standby("standby2").upstream == "standby1"
    cluster.follow("standby2", "primary")
    cluster.follow("standby2", "standby1")
    assert _entries(cluster) == [*by_plan, ("follow", "standby2 streams from primary", 1),
                                 *by_plan]
    assert [e.operation for e in cluster.status().history] == ["follow"] * 3


def test_synchronous_plan_applied_records_what_set_synchronous_records(
        pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    spec = SyncSpec.first(1, ["standby1"])
    version = cluster.primary.version
    cluster.synchronous_plan(spec, wait_for={"standby1": "sync"}).apply()
    by_plan = _entries(cluster)
    assert by_plan == [("synchronous",
                        f"synchronous_standby_names = {spec.render(version)!r}", 1)]
    cluster.set_synchronous(SyncSpec.off())
    cluster.set_synchronous(spec, wait_for={"standby1": "sync"})
    off = ("synchronous", f"synchronous_standby_names = {SyncSpec.off().render(version)!r}", 1)
    assert _entries(cluster) == [*by_plan, off, *by_plan]
    # Nothing changed: nothing recorded, by either way.
    report = cluster.synchronous_plan(spec).apply()
    assert not report.changed
    assert not cluster.set_synchronous(spec).changed
    assert _entries(cluster) == [*by_plan, off, *by_plan]
