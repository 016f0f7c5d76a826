"""Synchronous replication on real servers: PostgreSQL's src/test/recovery/t/007_sync_rep.pl
re-enacted through SyncSpec and synchronous_plan, and a commit that waits for its standby.

007 checks ``SELECT application_name, sync_priority, sync_state FROM pg_stat_replication ORDER
BY application_name`` after each setting; the rows below are its expected tables. Which of two
standbys of equal priority is ``sync`` depends on their order in the primary's WalSnd array
(the order their walsenders connected), so standbys are started one at a time, each waited for.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable

import psycopg
import pytest

from pgstream import Cluster, InvalidInput, Standby
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Primary
from pgstream.ops.sync import sync_states, synchronous_plan
from pgstream.render.queries import alter_system, reload_conf
from pgstream.render.sync_spec import SyncSpec

MakeCluster = Callable[..., Cluster]
Row = tuple[str, int, str]


def rows(primary: Primary) -> list[Row]:
    """007's check query, as (application_name, sync_priority, sync_state) rows."""
    return [(name, priority, state) for name, (priority, state) in sorted(
        sync_states(primary).items())]


def expect(primary: Primary, wanted: list[Row]) -> None:
    """Wait until the primary shows exactly these rows (007's poll_query_until)."""
    wait_for(lambda: rows(primary) == wanted, timeout=30, what=f"rows {wanted}",
             detail=lambda: str(rows(primary)))


def apply(primary: Primary, spec: SyncSpec, wanted: list[Row]) -> None:
    """Set the spec, waiting for the states through the plan's check, then compare all rows."""
    report = synchronous_plan(primary, spec, wait_for={n: s for n, _, s in wanted},
                              timeout=30).apply()
    assert report.changed, str(report)
    expect(primary, wanted)


def stop(primary: Primary, *standbys: Standby) -> None:
    """Stop standbys and wait until their walsenders have left the primary's WalSnd array."""
    for standby in standbys:
        assert standby.service is not None
        standby.close()
        standby.service.stop()
    names = {s.name for s in standbys}
    wait_for(lambda: not names & set(sync_states(primary)), timeout=30,
             what=f"the walsenders of {sorted(names)} to exit")


def registered(primary: Primary, name: str) -> bool:
    return name in sync_states(primary)


def start(primary: Primary, *standbys: Standby) -> None:
    """Start standbys one by one, each waited for in pg_stat_replication (007's
    start_standby_and_wait), so they take WalSnd slots in this order."""
    for standby in standbys:
        assert standby.service is not None
        standby.service.start()
        wait_for(functools.partial(registered, primary, standby.name), timeout=30,
                 what=f"{standby.name}'s walsender on {primary.name}")


def test_007_priority_lists_asterisk_and_first(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(4)
    primary = cluster.primary
    s1, s2, s3, s4 = cluster.standbys
    # 007 starts standby1, 2 and 3 in that order; standby4 comes later.
    stop(primary, s1, s2, s3, s4)
    start(primary, s1, s2, s3)

    # Old syntax: the plain list.
    apply(primary, SyncSpec.priority(["standby1", "standby2"]),
          [("standby1", 1, "sync"), ("standby2", 2, "potential"), ("standby3", 0, "async")])
    # '*': all of equal priority; standby1 is first in the WalSnd array.
    apply(primary, SyncSpec.priority(["*"]),
          [("standby1", 1, "sync"), ("standby2", 1, "potential"), ("standby3", 1, "potential")])

    # Rearrange the WalSnd array: standby2, then standby3.
    stop(primary, s1, s2, s3)
    start(primary, s2, s3)
    apply(primary, SyncSpec.first(2, ["standby1", "standby2", "standby3"]),
          [("standby2", 2, "sync"), ("standby3", 3, "sync")])

    start(primary, s1, s4)
    expect(primary, [("standby1", 1, "sync"), ("standby2", 2, "sync"),
                     ("standby3", 3, "potential"), ("standby4", 0, "async")])

    # num_sync above the number of names: PostgreSQL accepts it (and every commit would wait
    # forever); SyncSpec refuses it, so the raw setting is written as 007 does.
    with pytest.raises(InvalidInput, match="wait forever"):
        SyncSpec.parse("6(standby4,standby0,standby3,standby2)")
    primary.execute(alter_system("synchronous_standby_names",
                                 "6(standby4,standby0,standby3,standby2)"))
    primary.execute(reload_conf()[0])
    expect(primary, [("standby1", 0, "async"), ("standby2", 4, "sync"),
                     ("standby3", 3, "sync"), ("standby4", 1, "sync")])

    # '*' before another name: standby2 matches '*' first, so its priority is 2.
    apply(primary, SyncSpec.first(2, ["standby1", "*", "standby2"]),
          [("standby1", 1, "sync"), ("standby2", 2, "sync"),
           ("standby3", 2, "potential"), ("standby4", 2, "potential")])
    # 2 (*): standby2 and standby3 come first in the WalSnd array.
    apply(primary, SyncSpec.first(2, ["*"]),
          [("standby1", 1, "potential"), ("standby2", 1, "sync"),
           ("standby3", 1, "sync"), ("standby4", 1, "potential")])

    # standby3 (sync) goes: standby1, earlier in the array than standby4, becomes sync.
    stop(primary, s3)
    expect(primary, [("standby1", 1, "sync"), ("standby2", 1, "sync"),
                     ("standby4", 1, "potential")])
    apply(primary, SyncSpec.first(2, ["standby1", "standby2"]),
          [("standby1", 1, "sync"), ("standby2", 2, "sync"), ("standby4", 0, "async")])

    # Applying the same spec again changes nothing.
    again = synchronous_plan(primary, SyncSpec.first(2, ["standby1", "standby2"])).apply()
    assert not again.changed, str(again)


@pytest.mark.pg(">= 10")
def test_007_any_quorum(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(4)
    primary = cluster.primary
    s3 = cluster.standbys[2]
    stop(primary, s3)  # as at this point of 007
    apply(primary, SyncSpec.any(2, ["standby1", "standby2"]),
          [("standby1", 1, "quorum"), ("standby2", 1, "quorum"), ("standby4", 0, "async")])
    start(primary, s3)
    apply(primary, SyncSpec.any(2, ["*"]),
          [("standby1", 1, "quorum"), ("standby2", 1, "quorum"),
           ("standby3", 1, "quorum"), ("standby4", 1, "quorum")])
    assert primary.show("synchronous_standby_names") == "ANY 2 (*)"


class Insert(threading.Thread):
    """One INSERT on its own connection, so the test can watch it wait."""

    def __init__(self, primary: Primary, value: int) -> None:
        super().__init__(daemon=True)
        self.conn = psycopg.connect(primary.conninfo, autocommit=True)
        self.pid = self.conn.info.backend_pid
        self.notices: list[str] = []
        self.conn.add_notice_handler(lambda diag: self.notices.append(
            f"{diag.severity}: {diag.message_primary}"))
        self.value = value
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.conn.execute("INSERT INTO sync_t VALUES (%s)", (self.value,))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.conn.close()


def test_commit_waits_for_the_only_sync_standby(pgstream_sandbox: MakeCluster) -> None:
    cluster = pgstream_sandbox(1)
    primary, standby = cluster.primary, cluster.standbys[0]
    spec = SyncSpec.first(1, ["standby1"])
    synchronous_plan(primary, spec, synchronous_commit="remote_apply",
                     wait_for={"standby1": "sync"}).apply()
    assert primary.show("synchronous_commit") == "remote_apply"
    primary.execute("CREATE TABLE sync_t (v int)")  # commits: standby1 answers
    count = "SELECT count(*) FROM sync_t"
    stop(primary, standby)

    waiting = Insert(primary, 1)
    try:
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive(), "the commit returned with no synchronous standby"
        # Committed locally, but not visible to others while it waits for the standby.
        assert primary.query(count) == [(0,)]
        assert primary.query("SELECT state, query FROM pg_stat_activity WHERE pid = %s",
                             (waiting.pid,)) == [("active", "INSERT INTO sync_t VALUES ($1)")]
        # A cancelled wait does not undo the commit: it returns, with a WARNING.
        assert primary.query("SELECT pg_cancel_backend(%s)", (waiting.pid,)) == [(True,)]
        waiting.join(10)
        assert not waiting.is_alive() and waiting.error is None
        assert any(n.startswith("WARNING: canceling wait for synchronous replication")
                   for n in waiting.notices), waiting.notices
        assert primary.query(count) == [(1,)]

        blocked = Insert(primary, 2)
        blocked.start()
        blocked.join(0.5)
        assert blocked.is_alive()
        assert primary.query(count) == [(1,)]
        start(primary, standby)
        blocked.join(30)
        assert not blocked.is_alive() and blocked.error is None, blocked.error
        assert blocked.notices == []
        assert primary.query(count) == [(2,)]
        # remote_apply: once the commit returned, the standby shows both rows.
        assert standby.query("SELECT v FROM sync_t ORDER BY v") == [(1,), (2,)]
    finally:
        # Never leave a commit waiting: without synchronous standbys every wait ends.
        synchronous_plan(primary, SyncSpec.off()).apply()
    assert sync_states(primary) == {"standby1": (0, "async")}
