"""A sandbox's setup plan with one base backup, copied for the other standbys (the plan's
shape; real servers: tests/integration/test_sandbox.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

from pgstream.ops.plan import Plan, _blocks
from pgstream.ops.sandbox.setup import copy_argv, shared_backup_plan
from tests.fake_host import FakeHost
from tests.fakes import fake_cluster, kinds

CLONE = ["wipe", "file", "base backup", "recovery config", "start", "check"]


def _shared(standbys: tuple[str, ...], host: FakeHost) -> tuple[Plan, Plan]:
    rig = fake_cluster(standbys, fresh=True)
    plan = rig.cluster.setup_plan()
    dirs = {s.name: Path(str(s.data_dir)) for s in rig.cluster.standbys}
    return plan, shared_backup_plan(plan, primary="pg", data_dirs=dirs, host=host, user=None,
                                    timeout=5.0)


def test_one_backup_then_copies_then_every_standby_starts_at_once() -> None:
    host = FakeHost("local")
    plan, shared = _shared(("s1", "s2", "s3"), host)
    assert len(shared) == len(plan)
    h = len([s for s in plan.steps if s.node == "pg"])
    head = kinds(plan)[:h]
    assert kinds(shared) == [*head, "wipe", "file", "base backup",
                             "wipe", "file", "base backup", "wipe", "file", "base backup",
                             "recovery config", "start", "check",
                             *["recovery config", "start", "check"] * 2]
    nodes = [s.node for s in shared.steps[h:]]
    assert nodes == ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3 + ["s1"] * 3 + ["s2"] * 3 + ["s3"] * 3
    seed_backup = shared.steps[h + 2]
    assert seed_backup is not plan.steps[h + 2] and "pg_basebackup" in seed_backup.detail
    assert "-S s1" in seed_backup.detail and not seed_backup.concurrent
    # The blocks: the seed's backup alone, the copies together, the seed's recovery
    # configuration alone (no copy reads a directory being written), then all the rest.
    blocks = [[step.kind.value + ":" + step.node for _, step in block]
              for block in _blocks(shared.steps, True)][h:]
    assert blocks[0] == ["wipe:s1", "file:s1"]
    assert blocks[1] == ["base backup:s1"]
    assert sorted(blocks[2]) == sorted(f"{k}:{n}" for k in ("wipe", "file", "base backup")
                                       for n in ("s2", "s3"))
    assert blocks[3] == ["recovery config:s1"]
    assert len(blocks[4]) == 2 + 3 + 3 and len(blocks) == 5


def test_a_copy_runs_the_command_it_prints_and_keeps_the_clone_cleanup() -> None:
    host = FakeHost("local")
    plan, shared = _shared(("s1", "s2"), host)
    h = len([s for s in plan.steps if s.node == "pg"])
    copy = shared.steps[h + 5]
    assert copy.node == "s2" and copy.title.startswith("copy s1's fresh base backup")
    original = plan.steps[h + 8]
    assert original.kind.value == "base backup" and original.node == "s2"
    assert copy.cleanup is original.cleanup and copy.undo is original.undo
    argv = shlex.split(copy.detail.splitlines()[0])
    assert argv[:3] == ["cp", "-a", "--reflink=auto"] and argv[3].endswith("/.")

    def report(message: str, percent: float | None = None) -> None:
        pass

    copy.action(report)
    assert host.ran[-1] == tuple(argv)
    assert copy_argv(Path("/a/s1"), Path("/a/s2")) == (
        "cp", "-a", "--reflink=auto", "/a/s1/.", "/a/s2")


def test_fewer_than_two_clones_keep_the_plan() -> None:
    host = FakeHost("local")
    for standbys in ((), ("s1",)):
        plan, shared = _shared(standbys, host)
        assert shared is plan
    rig = fake_cluster(("s1", "s2"))  # both stream already: only their checks
    plan = rig.cluster.setup_plan()
    dirs = {s.name: Path(str(s.data_dir)) for s in rig.cluster.standbys}
    assert shared_backup_plan(plan, primary="pg", data_dirs=dirs, host=host, user=None,
                              timeout=5.0) is plan
    assert "base backup" not in kinds(plan)
    assert CLONE[-1] in kinds(plan)
