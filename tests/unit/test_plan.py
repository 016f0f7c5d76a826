"""Plans with fake in-memory steps: printing, order, failure, rollback, parallel lanes."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pgstream.errors import InvalidInput, PgStreamError, PlanFailed
from pgstream.ops.plan import (
    Plan,
    PlanReport,
    ProgressEvent,
    Report,
    Step,
    StepKind,
    StepResult,
)


class Log:
    """Records what the fake steps did, thread-safely."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)


def step(log: Log, node: str, title: str, *, fail: BaseException | None = None,
         result: StepResult | None = None, undo: bool = True, concurrent: bool = False,
         kind: StepKind = StepKind.SQL, detail: str = "", host: str = "localhost",
         before: Callable[[], None] | None = None) -> Step:
    def action(report: Report) -> StepResult | None:
        if before is not None:
            before()
        log.add(f"do {node}:{title}")
        if fail is not None:
            raise fail
        return result

    def undo_it() -> None:
        log.add(f"undo {node}:{title}")

    return Step(node, kind, title, detail, action=action, undo=undo_it if undo else None,
                host=host, concurrent=concurrent)


# ---------------------------------------------------------------------------------------------
# printing


def test_print_numbers_steps_with_node_kind_and_detail() -> None:
    log = Log()
    plan = Plan("seed", [
        step(log, "primary", "set wal_level", kind=StepKind.SETTING,
             detail="ALTER SYSTEM SET wal_level = 'replica'", host="db1"),
        step(log, "primary", "allow replication", kind=StepKind.HBA,
             detail="host replication repl 192.0.2.10/32 scram-sha-256\n"),
        step(log, "standby1", "clone", kind=StepKind.BASE_BACKUP, detail="line one\nline two"),
        step(log, "standby1", "start", kind=StepKind.START),
    ])
    text = str(plan)
    lines = text.splitlines()
    assert lines[0] == "Plan: seed (4 steps)"
    assert lines[1] == " 1. [primary@db1] setting: set wal_level"
    assert lines[2] == "        ALTER SYSTEM SET wal_level = 'replica'"
    assert lines[3] == " 2. [primary@localhost] hba line: allow replication"
    assert lines[4] == "        host replication repl 192.0.2.10/32 scram-sha-256"
    assert lines[5] == " 3. [standby1@localhost] base backup: clone"
    assert lines[6] == "        line one"
    assert lines[7] == "        line two"
    assert lines[8] == " 4. [standby1@localhost] start: start"
    assert len(lines) == 9
    assert log.events == []  # printing runs nothing


def test_describe_numbers_two_digits() -> None:
    s = step(Log(), "n", "t", kind=StepKind.CHECK)
    assert s.describe(12) == "12. [n@localhost] check: t"
    assert s.describe(3) == " 3. [n@localhost] check: t"


def test_step_repr_hides_callables() -> None:
    text = repr(step(Log(), "n", "t"))
    assert "action" not in text
    assert "undo" not in text


def test_len_and_add() -> None:
    log = Log()
    a = Plan("a", [step(log, "n", "1")])
    b = Plan("b", (step(log, "n", "2"), step(log, "n", "3")))
    both = a + b
    assert len(both) == 3
    assert both.title == "a; b"
    assert [s.title for s in both.steps] == ["1", "2", "3"]
    assert isinstance(both.steps, tuple)


def test_empty_plan() -> None:
    plan = Plan("nothing", [])
    assert str(plan) == "Plan: nothing (0 steps)"
    report = plan.apply()
    assert report.applied == ()
    assert not report.changed


# ---------------------------------------------------------------------------------------------
# applying


def test_apply_runs_in_order_and_reports() -> None:
    log = Log()
    plan = Plan("p", [
        step(log, "primary", "a"),
        step(log, "primary", "b", result=StepResult(changed=False, message="already set")),
        step(log, "standby1", "c", result=StepResult(changed=True, message="cloned")),
    ])
    report = plan.apply()
    assert log.events == ["do primary:a", "do primary:b", "do standby1:c"]
    assert isinstance(report, PlanReport)
    assert report.plan_title == "p"
    assert [a.step.title for a in report.applied] == ["a", "b", "c"]
    assert [a.result.changed for a in report.applied] == [True, False, True]
    assert report.applied[0].result == StepResult()  # None from the action means "changed"
    assert all(a.seconds >= 0 for a in report.applied)
    assert report.changed
    text = str(report)
    lines = text.splitlines()
    assert lines[0] == "p: 3 steps"
    assert lines[1].startswith(" 1. [primary] a: changed (")
    assert lines[2].startswith(" 2. [primary] b: unchanged (")
    assert lines[2].endswith(" - already set")
    assert lines[3].endswith(" - cloned")


def test_report_unchanged_when_every_step_found_things_in_place() -> None:
    log = Log()
    same = StepResult(changed=False)
    report = Plan("p", [step(log, "n", "a", result=same), step(log, "n", "b", result=same)]).apply()
    assert not report.changed
    assert "unchanged" in str(report)


def test_progress_events() -> None:
    log = Log()
    events: list[ProgressEvent] = []

    def talker(report: Report) -> StepResult:
        report("copying", None)
        report("copying", 50.0)
        return StepResult(changed=False, message="done it")

    plan = Plan("p", [step(log, "n", "a"),
                      Step("n", StepKind.BASE_BACKUP, "b", action=talker)])
    plan.apply(events.append)
    assert [(e.index, e.total, e.event) for e in events] == [
        (1, 2, "start"), (1, 2, "done"),
        (2, 2, "start"), (2, 2, "output"), (2, 2, "percent"), (2, 2, "done"),
    ]
    assert events[4].percent == 50.0
    assert events[3].message == "copying"
    assert events[5].message == "done it"
    assert events[1].message == "changed"
    assert events[2].step.title == "b"


def test_first_failure_raises_plan_failed_naming_step_and_done() -> None:
    log = Log()
    plan = Plan("seed", [
        step(log, "primary", "create slot"),
        step(log, "primary", "set wal_level", undo=False),
        step(log, "standby1", "clone", fail=InvalidInput("disk full")),
        step(log, "standby1", "start"),
    ])
    with pytest.raises(PlanFailed) as info:
        plan.apply()
    error = info.value
    message = str(error)
    assert isinstance(error, PgStreamError)
    assert "step 3" in message
    assert "[standby1] clone" in message
    assert "disk full" in message
    assert "already done: [primary] create slot; [primary] set wal_level" in message
    assert "rolled back: [primary] create slot" in message
    assert error.step is plan.steps[2]
    assert error.done == plan.steps[:2]
    assert error.undone == (plan.steps[0],)
    assert isinstance(error.__cause__, InvalidInput)
    assert "do standby1:start" not in log.events  # nothing after the failure ran
    assert log.events == ["do primary:create slot", "do primary:set wal_level",
                          "do standby1:clone", "undo primary:create slot"]


def test_undo_runs_in_reverse_order() -> None:
    log = Log()
    plan = Plan("p", [step(log, "n", "1"), step(log, "n", "2"), step(log, "n", "3"),
                      step(log, "n", "4", fail=OSError("boom"))])
    with pytest.raises(PlanFailed) as info:
        plan.apply()
    undos = [e for e in log.events if e.startswith("undo")]
    assert undos == ["undo n:3", "undo n:2", "undo n:1"]
    assert [s.title for s in info.value.undone] == ["3", "2", "1"]  # type: ignore[attr-defined]
    # the failed step itself did not complete: it is not undone
    assert "undo n:4" not in log.events


def test_no_rollback() -> None:
    log = Log()
    plan = Plan("p", [step(log, "n", "1"), step(log, "n", "2", fail=OSError("boom"))])
    with pytest.raises(PlanFailed) as info:
        plan.apply(rollback=False)
    assert not any(e.startswith("undo") for e in log.events)
    assert info.value.undone == ()
    assert "rolled back" not in str(info.value)


def test_failure_at_first_step_says_nothing_changed() -> None:
    log = Log()
    with pytest.raises(PlanFailed, match="nothing had been changed") as info:
        Plan("p", [step(log, "n", "1", fail=OSError("nope")), step(log, "n", "2")]).apply()
    assert info.value.done == ()
    assert "step 1" in str(info.value)


def test_any_exception_fails_the_plan() -> None:
    log = Log()
    with pytest.raises(PlanFailed, match="division by zero") as info:
        Plan("p", [step(log, "n", "1"),
                   step(log, "n", "2", fail=ZeroDivisionError("division by zero"))]).apply()
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert "undo n:1" in log.events


def test_keyboard_interrupt_rolls_back_then_propagates() -> None:
    """Ctrl-C during a step: undo what was done, then let the KeyboardInterrupt through.

    Turning it into PlanFailed (an ordinary Exception) lets ``except Exception`` handlers
    swallow the user's interrupt.
    """
    log = Log()
    plan = Plan("p", [step(log, "n", "1"), step(log, "n", "2", fail=KeyboardInterrupt())])
    with pytest.raises(KeyboardInterrupt):
        plan.apply()
    assert "undo n:1" in log.events


def test_failing_undo_does_not_stop_the_rest() -> None:
    log = Log()
    events: list[ProgressEvent] = []

    def bad_undo() -> None:
        raise OSError("cannot undo")

    plan = Plan("p", [
        step(log, "n", "1"),
        Step("n", StepKind.SLOT, "2", action=lambda report: None, undo=bad_undo),
        step(log, "n", "3"),
        step(log, "n", "4", fail=OSError("boom")),
    ])
    with pytest.raises(PlanFailed) as info:
        plan.apply(events.append)
    assert [e for e in log.events if e.startswith("undo")] == ["undo n:3", "undo n:1"]
    assert [s.title for s in info.value.undone] == ["3", "1"]  # type: ignore[attr-defined]
    failed = [e for e in events if e.event == "failed"]
    assert any("could not undo" in e.message for e in failed)
    assert [e.step.title for e in events if e.event == "undone"] == ["3", "1"]


# ---------------------------------------------------------------------------------------------
# parallel lanes


def test_concurrent_steps_of_different_nodes_run_in_parallel() -> None:
    log = Log()
    barrier = threading.Barrier(2, timeout=5)

    def meet() -> None:
        barrier.wait()

    plan = Plan("p", [
        step(log, "primary", "prepare"),
        step(log, "s1", "clone", concurrent=True, before=meet),
        step(log, "s2", "clone", concurrent=True, before=meet),
        step(log, "primary", "check"),
    ])
    report = plan.apply()  # with sequential execution the barrier would time out
    assert len(report.applied) == 4
    assert log.events[0] == "do primary:prepare"
    assert log.events[-1] == "do primary:check"


def test_each_nodes_steps_keep_their_order_in_lanes() -> None:
    log = Log()
    threads: dict[str, set[int]] = {}

    def mark(node: str) -> Callable[[], None]:
        def inner() -> None:
            with log.lock:
                threads.setdefault(node, set()).add(threading.get_ident())
        return inner

    steps = []
    for i in range(5):
        for node in ("s1", "s2", "s3"):
            steps.append(step(log, node, f"{i}", concurrent=True, before=mark(node)))
    Plan("p", steps).apply()
    for node in ("s1", "s2", "s3"):
        mine = [e for e in log.events if e.startswith(f"do {node}:")]
        assert mine == [f"do {node}:{i}" for i in range(5)]
        assert len(threads[node]) == 1  # one lane (thread) per node
    assert len(log.events) == 15


def test_parallel_false_runs_everything_in_plan_order() -> None:
    log = Log()
    steps = [step(log, node, f"{i}", concurrent=True) for i in range(3) for node in ("a", "b")]
    Plan("p", steps).apply(parallel=False)
    assert log.events == [f"do {s.node}:{s.title}" for s in steps]


def test_non_concurrent_step_is_a_barrier() -> None:
    log = Log()
    order: list[str] = []
    plan = Plan("p", [
        step(log, "a", "1", concurrent=True),
        step(log, "b", "1", concurrent=True),
        step(log, "primary", "middle", before=lambda: order.append(",".join(sorted(log.events)))),
        step(log, "a", "2", concurrent=True),
        step(log, "b", "2", concurrent=True),
    ])
    plan.apply()
    # when the middle step ran, both first concurrent steps were done and no second one
    assert order == ["do a:1,do b:1"]
    assert log.events[2] == "do primary:middle"


def test_failure_in_a_lane_rolls_back_completed_steps() -> None:
    log = Log()
    plan = Plan("p", [
        step(log, "primary", "slot"),
        step(log, "s1", "clone", concurrent=True),
        step(log, "s2", "clone", concurrent=True, fail=OSError("no space")),
        step(log, "primary", "after"),
    ])
    with pytest.raises(PlanFailed) as info:
        plan.apply()
    message = str(info.value)
    assert "step 3" in message
    assert "[s2] clone" in message
    assert "no space" in message
    assert "do primary:after" not in log.events
    undos = [e for e in log.events if e.startswith("undo")]
    assert undos == ["undo s1:clone", "undo primary:slot"]


def test_report_lists_parallel_steps_in_plan_order() -> None:
    """PlanReport numbers its lines 1..n: they must follow the plan's order, not finish times."""
    log = Log()
    first_may_finish = threading.Event()

    def wait_for_second() -> None:
        assert first_may_finish.wait(5)

    plan = Plan("p", [
        step(log, "s1", "slow", concurrent=True, before=wait_for_second),
        step(log, "s2", "fast", concurrent=True, before=first_may_finish.set),
    ])
    report = plan.apply()
    assert log.events == ["do s2:fast", "do s1:slow"]
    assert [a.step.title for a in report.applied] == ["slow", "fast"]
    assert str(report).splitlines()[1].startswith(" 1. [s1] slow")
