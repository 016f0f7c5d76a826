"""Steps print what they run: the ``find DIR -mindepth 1 -delete`` that
:func:`pgstream.hosts.datadir.wipe_contents` runs is the very line the remove and clone plans
print (it was once printed as ``rm -rf DIR/*`` while a Python loop removed the files); the
replication role step prints the ``ALTER ROLE`` it runs for an existing role (it once printed
only ``CREATE ROLE``)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pgstream.errors import InvalidInput
from pgstream.facts.identifiers import MASK
from pgstream.hosts import datadir
from pgstream.ops.plan import Plan, StepKind
from pgstream.ops.setup import role_step
from pgstream.render import commands, queries
from tests.fake_host import FakeHost
from tests.fakes import fake_cluster, stop
from tests.recording import Recorder, RecordingHost, apply_and_compare, printed_effects


def test_the_remove_plans_wipe_runs_the_argv_it_prints() -> None:
    rig = fake_cluster()
    node = rig.node("s2")
    host = rig.hosts["s2"]
    stop(node, host)
    recorder = Recorder()
    node.host = RecordingHost(host, recorder)
    assert node.service is not None
    node.service.host = node.host
    plan = rig.cluster.remove_standby_plan("s2", wipe=True)
    wipe = next(s for s in plan.steps if s.kind is StepKind.WIPE)
    ran_before = len(host.ran)
    apply_and_compare(Plan("the wipe alone", [wipe]), recorder)
    assert host.ran[ran_before:] == [tuple(shlex.split(wipe.detail))]
    assert wipe.detail == "find /var/lib/postgresql/16/s2 -mindepth 1 -delete"


def test_wipe_contents_runs_the_rendered_argv_only_when_there_is_something() -> None:
    host = FakeHost()
    host.add_dir("/srv/pg/empty")
    assert not datadir.wipe_contents(Path("/srv/pg/missing"), host)
    assert not datadir.wipe_contents(Path("/srv/pg/empty"), host)
    assert host.ran == []
    host.add_file("/srv/pg/full/PG_VERSION", "16\n")
    assert datadir.wipe_contents(Path("/srv/pg/full"), host)
    assert host.ran == [commands.wipe_contents(Path("/srv/pg/full"))]


def test_the_clone_plan_prints_the_wipe_argv() -> None:
    rig = fake_cluster(("s1",), fresh=True)
    plan = rig.cluster.setup_plan()
    wipe = next(s for s in plan.steps if s.kind is StepKind.WIPE)
    assert shlex.join(commands.wipe_contents(Path("/var/lib/postgresql/16/s1"))) in wipe.detail


@pytest.mark.parametrize("bad", ["relative/dir", "/", "/srv/../etc"])
def test_wipe_argv_refuses_a_path_that_is_not_deep_and_absolute(bad: str) -> None:
    with pytest.raises(InvalidInput, match="refusing to wipe"):
        commands.wipe_contents(Path(bad))


def test_the_role_step_prints_each_statement_it_may_run() -> None:
    """An existing role is altered, not created: the ALTER ROLE it runs is printed too."""
    rig = fake_cluster(fresh=True)
    step = role_step(rig.cluster.primary, rig.cluster.auth)
    statements = [queries.create_role("replicator", MASK),
                  queries.alter_role("replicator", MASK), queries.alter_role("replicator")]
    assert printed_effects(step.detail) == [s.as_string(None) for s in statements]
