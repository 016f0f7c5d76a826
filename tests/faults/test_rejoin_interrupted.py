"""A rejoin interrupted right after its ``pg_rewind``: the rewound former primary, started by
hand before any retry, comes up as a standby, never as a second primary; a retry then
finishes the rejoin.

"Writable" is asked of every server running in the test's directory (helpers.writable).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pgstream import Cluster, ProgressEvent, StepKind

from ._internal import Installation
from .helpers import kill_server, wait_until, writable


def test_rewound_former_primary_started_by_hand_is_a_standby(
        sandbox: Callable[..., Cluster], box_dir: Path, pgstream_server: Installation) -> None:
    if not pgstream_server.has("pg_rewind"):
        pytest.skip("no pg_rewind here")
    if int(pgstream_server.version.major) < 13:
        pytest.skip("pg_rewind before 13 cannot recover the killed primary")
    cluster = sandbox(1)
    cluster.primary.execute("CREATE TABLE t AS SELECT 1 AS id")
    cluster.wait_for_catchup()
    old = cluster.primary
    service = old.service
    assert service is not None and old.data_dir is not None
    pid = service.pid()
    assert pid is not None
    old.close()
    kill_server(pid)
    wait_until(lambda: not service.running(), timeout=30, what="the primary to die")
    cluster.failover()
    assert cluster.primary.name == "standby1"

    def interrupt_after_the_rewind(event: ProgressEvent) -> None:
        if event.step.kind is StepKind.REWIND and event.event == "done":
            raise KeyboardInterrupt

    plan = cluster.rejoin_plan("primary")
    assert "standby.signal written" in str(plan)
    with pytest.raises(KeyboardInterrupt):
        plan.apply(interrupt_after_the_rewind)
    data_dir = Path(old.data_dir)
    assert (data_dir / "standby.signal").exists(), "the rewound node has no standby.signal"

    # Someone starts it by hand before any retry: it must not take writes beside standby1.
    service.start()
    try:
        wait_until(lambda: old.ping(), timeout=30, what="the hand-started node")
        assert old.query("SELECT pg_is_in_recovery()") == [(True,)]
        assert [Path(p).name for p in writable(box_dir)] == ["standby1"]
    finally:
        old.close()
        service.stop("fast")

    wait_until(lambda: not service.running(), timeout=30, what="the node to stop")
    cluster.rejoin("primary")  # the retry finishes what was interrupted
    cluster.primary.execute("INSERT INTO t VALUES (2)")
    cluster.wait_for_catchup()
    assert cluster.standby("primary").query("SELECT count(*) FROM t") == [(2,)]
    assert [Path(p).name for p in writable(box_dir)] == ["standby1"]
