"""The ``timeline_diverged`` fix: what it prints is the rejoin plan it runs.

Its steps are a stop and then the steps of ``rejoin_plan(node, rewind=True)``, built for the
node as it will be once stopped; at apply time, once it is stopped, the rejoin plan is built
again and runs only if it is the one shown (else refused, the node started again).
"""

from __future__ import annotations

import pytest

from pgstream.errors import RejoinRefused
from pgstream.hosts.controlfile import DbState
from pgstream.hosts.service import PgCtlService
from pgstream.ops.check import Finding
from pgstream.ops.check.fixes import with_plan
from pgstream.ops.plan import Plan, Step
from tests.fakes import PASSWORD, Rig, fake_cluster, start, stop


def _diverged() -> Rig:
    """``s2`` runs, its pg_control on a timeline of its own (it was promoted once)."""
    rig = fake_cluster()
    s2 = rig.node("s2")
    stop(s2, rig.hosts["s2"], state=DbState.IN_ARCHIVE_RECOVERY, timeline=2)
    start(s2, rig.hosts["s2"])
    rig.hosts["s2"].changes.clear()
    return rig


def _fix(rig: Rig) -> Plan:
    finding = Finding.of("timeline_diverged", "s2", "s2's timeline diverged", upstream="pg")
    plan = with_plan(rig.cluster, finding).plan
    assert plan is not None, "no fix plan"
    return plan


def _shown(step: Step) -> tuple[str, str, str, str, str]:
    return (step.node, step.host, step.kind.value, step.title, step.detail)


def test_the_fix_shows_the_steps_of_the_rejoin_plan_it_runs() -> None:
    rig = _diverged()
    plan = _fix(rig)
    assert rig.changes() == {}, "building the fix changed something"
    assert rig.servers["s2"].up
    assert plan.steps[0].kind.value == "stop"
    assert "pg_ctl stop" in plan.steps[0].detail
    # what the rejoin plan is once s2 is stopped: the fix's steps after its stop
    stop(rig.node("s2"), rig.hosts["s2"], state=DbState.SHUTDOWNED_IN_RECOVERY, timeline=2)
    rejoin = rig.cluster.rejoin_plan("s2", rewind=True)
    assert [_shown(s)[:4] for s in plan.steps[1:]] == [_shown(s)[:4] for s in rejoin.steps]
    # every step's printed detail is the rejoin plan's own, but the decision's (read from
    # pg_control once stopped)
    assert [s.detail for s in plan.steps[2:]] == [s.detail for s in rejoin.steps[1:]]
    assert "decision: pg_rewind" in plan.steps[1].detail
    rewind = plan.steps[2]
    assert rewind.kind.value == "rewind"
    assert "CHECKPOINT" in rewind.detail
    assert "/usr/lib/postgresql/16/bin/pg_rewind --target-pgdata /var/lib/postgresql/16/s2" \
        in rewind.detail
    assert "recovery config" in [s.kind.value for s in plan.steps]
    assert "cluster.rejoin_plan('s2', rewind=True), built once" not in str(plan)
    assert PASSWORD not in str(plan)


def test_the_fix_refuses_when_the_rejoin_plan_differs_once_stopped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rig = _diverged()
    plan = _fix(rig)
    s2, host = rig.node("s2"), rig.hosts["s2"]
    monkeypatch.setattr(PgCtlService, "stop", lambda self, mode="fast", **_kw: stop(
        s2, host, state=DbState.SHUTDOWNED_IN_RECOVERY, timeline=2))
    monkeypatch.setattr(PgCtlService, "start", lambda self: start(s2, host))
    # between the dry run and the apply, the primary is reached at another address
    rig.cluster.addresses["pg"] = ("10.0.0.9", 5433)
    with pytest.raises(RejoinRefused, match=r"not the one shown \(step 5, 'passfile entry "
                       r"for pg', differs\): nothing rejoined, it is started again"):
        plan.apply()
    assert plan.steps[4].title == "passfile entry for pg"
    assert rig.servers["s2"].up, "s2 was not started again"
    assert rig.changes() == {}, "the refused fix ran more than its stop and start"


@pytest.mark.parametrize("version", ["12.20", "16.4"])
def test_the_fix_of_a_running_node_is_built_for_the_clean_stop_it_makes(version: str) -> None:
    """The running node's pg_control says it runs (not a clean shutdown): the fix, which
    stops it cleanly first, is built as for that clean stop, so pg_rewind before 13 (which
    cannot recover an unclean target) still gets a plan."""
    rig = fake_cluster(version=version)
    s2 = rig.node("s2")
    stop(s2, rig.hosts["s2"], state=DbState.IN_PRODUCTION, timeline=2)
    start(s2, rig.hosts["s2"])
    plan = _fix(rig)
    assert plan.steps[2].kind.value == "rewind"
    assert rig.servers["s2"].up
