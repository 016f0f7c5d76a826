"""Plans that change roles, built over fakes (tests/fakes.py), no server: switchover,
failover, follow, rejoin and promoting a standby alone. Shapes (step kinds, nodes, hosts in
order) and refusals (the right error class while the plan is built, nothing changed)."""

from __future__ import annotations

import pytest

from pgstream import Cluster
from pgstream.errors import (
    InvalidInput,
    NodeUnreachable,
    PrimaryStillAlive,
    Refused,
    RejoinRefused,
    ServerMismatch,
    SwitchoverRefused,
)
from pgstream.facts.lsn import Lsn
from pgstream.hosts.controlfile import DbState
from pgstream.ops.setup import ReplicationAuth
from tests.fakes import (
    FakePrimary,
    FakeStandby,
    Rig,
    fake_cluster,
    kinds,
    shape,
    start,
    stop,
    unchanged,
)

FOLLOW = ["slot", "file", "recovery config", "reload", "check"]


def follows(node: str) -> list[tuple[str, str, str]]:
    return [(k, node, f"{node}-host") for k in FOLLOW]


# -- switchover -------------------------------------------------------------------------------

def test_switchover_stops_proves_promotes_and_turns_the_old_primary_around() -> None:
    rig = fake_cluster()
    plan = rig.cluster.switchover_plan("s1")
    assert plan.title == "switchover pg -> s1"
    assert shape(plan) == [
        ("check", "pg", "pg-host"), ("stop", "pg", "pg-host"), ("check", "s1", "s1-host"),
        ("promote", "s1", "s1-host"), ("record", "s1", "s1-host"),
        *follows("s2"), *follows("pg"),
        ("slot", "pg", "pg-host"), ("record", "pg", "pg-host")]
    assert "pg_ctl stop -D /var/lib/postgresql/16/pg -m fast" in plan.steps[1].detail
    assert plan.steps[5].title == "slot s2 on s1"
    assert "host=s1.example" in plan.steps[7].detail
    assert "secret" not in str(plan)
    unchanged(rig)


def test_switchover_on_9_6_promotes_with_pg_ctl() -> None:
    rig = fake_cluster(("s1",), version="9.6.24")
    plan = rig.cluster.switchover_plan("s1")
    promote = next(s for s in plan.steps if s.kind.value == "promote")
    assert "pg_ctl promote -D /var/lib/postgresql/9.6/s1" in promote.detail
    assert kinds(plan)[-7:-2] == ["slot", "file", "recovery config", "restart", "check"]
    unchanged(rig)


@pytest.mark.parametrize(("setup", "message"), [
    (lambda rig: setattr(rig.servers["s1"], "replay_lsn", Lsn.parse("0/1000000")),
     r"\[FAILED\] target lag within bound"),
    (lambda rig: setattr(rig.servers["s1"], "replay_paused", True),
     r"\[FAILED\] target replay not paused"),
    (lambda rig: rig.servers["pg"].walsenders.clear(),
     r"\[FAILED\] target streams from pg"),
    (lambda rig: setattr(rig.servers["s1"], "up", False), r"\[FAILED\] target reachable"),
])
def test_switchover_refused_by_a_failed_precheck(setup: object, message: str) -> None:
    rig = fake_cluster()
    setup(rig)  # type: ignore[operator]
    with pytest.raises(SwitchoverRefused, match=message):
        rig.cluster.switchover_plan("s1")
    unchanged(rig)


def test_switchover_refusals_before_any_check() -> None:
    rig = fake_cluster(("s1", "s2"), cascading={"s2": "s1"})
    with pytest.raises(SwitchoverRefused, match="streams from s1, not from the primary"):
        rig.cluster.switchover_plan("s2")
    with pytest.raises(InvalidInput, match="no standby named"):
        rig.cluster.switchover_plan("pg")
    with pytest.raises(InvalidInput, match="max_lag_bytes"):
        rig.cluster.switchover_plan("s1", max_lag_bytes=-1)
    assert rig.servers["pg"].statements == []  # refused before asking any server
    unchanged(rig)


def test_switchover_refuses_a_node_that_is_not_the_declared_server() -> None:
    rig = fake_cluster()
    rig.servers["s1"].data_directory = rig.servers["s1"].data_directory.with_name("other")
    with pytest.raises(ServerMismatch, match="s1"):
        rig.cluster.switchover_plan("s1")
    rig = fake_cluster()
    rig.servers["s2"].system_identifier = "7000000000000000999"
    with pytest.raises(ServerMismatch, match="system_identifier"):
        rig.cluster.switchover_plan("s1")
    unchanged(rig)


# -- failover ---------------------------------------------------------------------------------

def test_failover_of_a_dead_primary_promotes_the_most_advanced_standby() -> None:
    rig = fake_cluster(("s1", "s2", "s3"))
    stop(rig.node("pg"), rig.hosts["pg"], state=DbState.IN_PRODUCTION)
    rig.servers["s2"].received_lsn = Lsn.parse("0/5000100")
    plan = rig.cluster.failover_plan()
    assert plan.title == "failover pg -> s2"
    assert shape(plan) == [("check", "s2", "s2-host"), ("promote", "s2", "s2-host"),
                           ("record", "s2", "s2-host"), *follows("s1"), *follows("s3")]
    assert plan.steps[0].detail.splitlines()[0] == "s2: received 0/5000100, replayed 0/5000000"
    unchanged(rig)


def test_failover_to_a_named_candidate() -> None:
    rig = fake_cluster()
    stop(rig.node("pg"), rig.hosts["pg"])
    plan = rig.cluster.failover_plan("s2")
    assert shape(plan)[:3] == [("check", "s2", "s2-host"), ("promote", "s2", "s2-host"),
                               ("record", "s2", "s2-host")]
    with pytest.raises(InvalidInput, match="no standby named"):
        rig.cluster.failover_plan("pg")
    unchanged(rig)


def test_failover_refuses_a_live_primary_without_force() -> None:
    rig = fake_cluster()
    with pytest.raises(PrimaryStillAlive, match="still alive"):
        rig.cluster.failover_plan()
    # It answers no connection, but its postmaster runs: still alive.
    rig.servers["pg"].up = False
    with pytest.raises(PrimaryStillAlive, match="still alive"):
        rig.cluster.failover_plan()
    unchanged(rig)


def test_failover_with_force_fences_the_live_primary_first() -> None:
    rig = fake_cluster()
    plan = rig.cluster.failover_plan(force=True)
    assert shape(plan)[:4] == [("stop", "pg", "pg-host"), ("check", "s1", "s1-host"),
                               ("promote", "s1", "s1-host"), ("record", "s1", "s1-host")]
    assert "-m immediate" in plan.steps[0].detail
    unchanged(rig)


def test_failover_refuses_two_writable_standbys_and_a_live_unmanaged_primary() -> None:
    rig = fake_cluster()
    stop(rig.node("pg"), rig.hosts["pg"])
    rig.servers["s1"].in_recovery = rig.servers["s2"].in_recovery = False
    with pytest.raises(PrimaryStillAlive, match="two primaries exist already"):
        rig.cluster.failover_plan()
    rig = fake_cluster()
    rig.cluster.primary.service = None
    rig.cluster.primary.data_dir = None
    with pytest.raises(PrimaryStillAlive, match="cannot stop it"):
        rig.cluster.failover_plan(force=True)
    unchanged(rig)


def test_failover_carries_on_with_a_standby_promoted_earlier() -> None:
    rig = fake_cluster()
    stop(rig.node("pg"), rig.hosts["pg"])
    rig.servers["s2"].in_recovery = False
    plan = rig.cluster.failover_plan()
    assert shape(plan)[:2] == [("check", "s2", "s2-host"), ("record", "s2", "s2-host")]
    assert plan.steps[0].title == "carry on with s2: promoted already"
    with pytest.raises(PrimaryStillAlive, match="accepts writes already"):
        rig.cluster.failover_plan("s1")
    unchanged(rig)


def test_failover_with_no_reachable_standby() -> None:
    rig = fake_cluster()
    stop(rig.node("pg"), rig.hosts["pg"])
    for name in ("s1", "s2"):
        rig.servers[name].up = False
    with pytest.raises(Refused, match="no reachable standby of the primary"):
        rig.cluster.failover_plan()
    unchanged(rig)


# -- follow and promote alone -----------------------------------------------------------------

def test_follow_re_points_a_standby_and_drops_its_old_slot() -> None:
    rig = fake_cluster()
    plan = rig.cluster.follow_plan("s2", "s1")
    assert plan.title == "s2 follows s1"
    assert shape(plan) == [*follows("s2"), ("slot", "s2", "s2-host")]
    assert plan.steps[0].title == "slot s2 on s1"
    assert plan.steps[-1].title == "drop s2's old slot on pg"
    unchanged(rig)


def test_follow_back_to_the_primary_on_12_restarts() -> None:
    rig = fake_cluster(("s1", "s2"), version="12.20", cascading={"s2": "s1"})
    plan = rig.cluster.follow_plan("s2", "pg")
    assert kinds(plan) == ["slot", "file", "recovery config", "restart", "check", "slot"]
    assert plan.steps[-1].title == "drop s2's old slot on s1"
    unchanged(rig)


def test_follow_refusals() -> None:
    rig = fake_cluster()
    with pytest.raises(InvalidInput, match="cannot stream from itself"):
        rig.cluster.follow_plan("s1", "s1")
    with pytest.raises(InvalidInput, match="no standby named"):
        rig.cluster.follow_plan("pg", "s1")
    rig.servers["s1"].system_identifier = "7000000000000000999"
    with pytest.raises(ServerMismatch, match="system_identifier"):
        rig.cluster.follow_plan("s2", "s1")
    unchanged(rig)


def test_promote_alone_detaches_the_standby() -> None:
    rig = fake_cluster()
    plan = rig.cluster.promote_plan("s2")
    assert shape(plan) == [("promote", "s2", "s2-host"), ("slot", "pg", "pg-host"),
                           ("record", "s2", "s2-host")]
    assert "pg_promote" in plan.steps[0].detail
    unchanged(rig)


def test_promote_alone_refusals() -> None:
    rig = fake_cluster()
    rig.servers["s2"].in_recovery = False
    with pytest.raises(ServerMismatch, match="declared role standby"):
        rig.cluster.promote_plan("s2")
    rig.servers["s1"].up = False
    with pytest.raises(NodeUnreachable):
        rig.cluster.promote_plan("s1")
    unchanged(rig)


# -- rejoin -----------------------------------------------------------------------------------

def after_failover(rig: Rig, *, checkpoint: str = "0/4000028",
                   state: DbState = DbState.SHUTDOWNED) -> Rig:
    """The cluster once s1 was promoted (timeline 2, branching at 0/5000000) and pg,
    stopped with ``state`` at ``checkpoint``, waits aside."""
    old = rig.node("pg")
    stop(old, rig.hosts["pg"], state=state, checkpoint=checkpoint, timeline=1)
    s1 = rig.node("s1")
    server = s1.server
    server.in_recovery, server.timeline = False, 2
    server.history = "1\t0/5000000\tno recovery target specified\n"
    primary = FakePrimary("s1", s1.conninfo, host=s1.host, data_dir=s1.data_dir,
                          service=s1.service, os_user=s1.os_user, server=server)
    standbys = [s for s in rig.cluster.standbys if s.name != "s1"]
    for standby in standbys:
        assert isinstance(standby, FakeStandby)
    rig.cluster = Cluster(primary, standbys, auth=ReplicationAuth("replicator", "secret"),
                          failed=[old])
    return rig


def test_rejoin_of_a_clean_former_primary_follows_without_rewind() -> None:
    rig = after_failover(fake_cluster())
    plan = rig.cluster.rejoin_plan("pg")
    assert plan.title == "rejoin pg as a standby of s1"
    assert shape(plan) == [("check", "pg", "pg-host"), *follows("pg"),
                           ("slot", "pg", "pg-host"), ("record", "pg", "pg-host")]
    assert plan.steps[-2].title == "drop pg's stale slots"
    assert "decision: follow without rewind" in plan.steps[0].detail
    assert "branch point: 0/5000000" in plan.steps[0].detail
    unchanged(rig)


def test_rejoin_of_a_former_primary_ahead_needs_pg_rewind() -> None:
    rig = after_failover(fake_cluster(), checkpoint="0/6000028")
    with pytest.raises(RejoinRefused, match="it needs pg_rewind"):
        rig.cluster.rejoin_plan("pg", rewind=False)
    plan = rig.cluster.rejoin_plan("pg")
    assert kinds(plan)[:3] == ["check", "rewind", "slot"]
    assert plan.steps[1].title == "pg_rewind pg to s1"
    assert "/usr/lib/postgresql/16/bin/pg_rewind --target-pgdata /var/lib/postgresql/16/pg" \
        in plan.steps[1].detail
    assert "secret" not in str(plan)
    unchanged(rig)


def test_rejoin_refuses_a_running_node() -> None:
    rig = after_failover(fake_cluster())
    start(rig.node("pg"), rig.hosts["pg"])
    with pytest.raises(RejoinRefused, match="pg is running: stop it first"):
        rig.cluster.rejoin_plan("pg")
    unchanged(rig)


def test_rejoin_refuses_a_node_of_another_system() -> None:
    rig = after_failover(fake_cluster())
    rig.servers["pg"].system_identifier = "7000000000000000999"
    stop(rig.node("pg"), rig.hosts["pg"])  # its pg_control now says the other system
    with pytest.raises(ServerMismatch, match="not copies of the same cluster"):
        rig.cluster.rejoin_plan("pg")
    unchanged(rig)


def test_rejoin_refusals_before_any_server_is_asked() -> None:
    rig = after_failover(fake_cluster())
    with pytest.raises(InvalidInput, match="s1 is the primary"):
        rig.cluster.rejoin_plan("s1")
    with pytest.raises(InvalidInput, match="no node named"):
        rig.cluster.rejoin_plan("ghost")
    with pytest.raises(InvalidInput, match="rewind must be True or False"):
        rig.cluster.rejoin_plan("pg", rewind="yes")  # type: ignore[arg-type]
    unchanged(rig)


def test_rejoin_refuses_an_unclean_node_that_pg_rewind_12_cannot_recover() -> None:
    rig = after_failover(fake_cluster(version="12.20"), state=DbState.IN_PRODUCTION)
    with pytest.raises(RejoinRefused, match="did not shut down cleanly"):
        rig.cluster.rejoin_plan("pg")
    unchanged(rig)
