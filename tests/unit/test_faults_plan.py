"""A failing step cleans up after itself; failed undos are named; interrupts in lanes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from pgstream.errors import InvalidInput, PlanFailed
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult


def _step(log: list[str], node: str, title: str, *, fail: BaseException | None = None,
          undo_error: Exception | None = None, cleanup: bool = False,
          concurrent: bool = False, pause: float = 0.0) -> Step:
    def action(report: Report) -> StepResult | None:
        log.append(f"do {node}:{title}")
        time.sleep(pause)
        if fail is not None:
            raise fail
        return None

    def undo() -> None:
        if undo_error is not None:
            raise undo_error
        log.append(f"undo {node}:{title}")

    def clean() -> None:
        log.append(f"cleanup {node}:{title}")

    return Step(node, StepKind.SQL, title, action=action, undo=undo,
                cleanup=clean if cleanup else None, concurrent=concurrent)


def test_the_failing_step_cleans_up_before_the_completed_ones_are_undone() -> None:
    log: list[str] = []
    plan = Plan("p", [_step(log, "primary", "slot"),
                      _step(log, "s1", "clone", fail=OSError("killed"), cleanup=True)])
    with pytest.raises(PlanFailed) as caught:
        plan.apply()
    assert log == ["do primary:slot", "do s1:clone", "cleanup s1:clone", "undo primary:slot"]
    assert caught.value.undone == (plan.steps[1], plan.steps[0])
    assert "rolled back: [s1] clone; [primary] slot" in str(caught.value)


def test_no_cleanup_without_rollback() -> None:
    log: list[str] = []
    plan = Plan("p", [_step(log, "s1", "clone", fail=OSError("killed"), cleanup=True)])
    with pytest.raises(PlanFailed):
        plan.apply(rollback=False)
    assert log == ["do s1:clone"]


def test_cleanup_runs_on_keyboard_interrupt_too() -> None:
    log: list[str] = []
    plan = Plan("p", [_step(log, "n", "a"),
                      _step(log, "n", "b", fail=KeyboardInterrupt(), cleanup=True)])
    with pytest.raises(KeyboardInterrupt):
        plan.apply()
    assert log == ["do n:a", "do n:b", "cleanup n:b", "undo n:a"]


def test_a_failed_undo_is_named_in_plan_failed() -> None:
    log: list[str] = []
    gone = ConnectionError("primary is down")
    plan = Plan("p", [_step(log, "primary", "slot s1", undo_error=gone),
                      _step(log, "s1", "clone", fail=OSError("connection lost"))])
    with pytest.raises(PlanFailed) as caught:
        plan.apply()
    error = caught.value
    assert error.undo_failed == ((plan.steps[0], gone),)
    assert error.cause is error.__cause__
    assert isinstance(error.cause, OSError)
    assert ("could not undo [primary] slot s1 (left behind, it needs a person): "
            "primary is down") in str(error)
    assert "rolled back" not in str(error)


def test_a_refusal_with_a_failed_undo_is_a_plan_failure() -> None:
    log: list[str] = []
    plan = Plan("p", [Step("n", StepKind.CHECK, "a", action=lambda r: StepResult(False),
                           undo=lambda: (_ for _ in ()).throw(OSError("x"))),
                      _step(log, "n", "b", fail=InvalidInput("bad"))])
    with pytest.raises(PlanFailed, match="could not undo"):
        plan.apply()


def test_failed_undos_are_notes_on_an_interrupt() -> None:
    log: list[str] = []
    plan = Plan("p", [_step(log, "n", "a", undo_error=OSError("cannot drop")),
                      _step(log, "n", "b", fail=KeyboardInterrupt())])
    with pytest.raises(KeyboardInterrupt) as caught:
        plan.apply()
    assert any("could not undo [n] a (left behind, it needs a person): cannot drop" in note
               for note in getattr(caught.value, "__notes__", []))


def test_after_a_failure_other_lanes_start_no_further_step() -> None:
    log: list[str] = []
    plan = Plan("p", [
        _step(log, "s1", "clone", fail=OSError("no space"), concurrent=True, pause=0.05),
        _step(log, "s2", "clone", concurrent=True, pause=0.3),
        _step(log, "s2", "start", concurrent=True),
    ])
    with pytest.raises(PlanFailed):
        plan.apply()
    assert "do s2:start" not in log
    assert "undo s2:clone" in log  # the step it was in completed: undone


def test_an_interrupt_in_the_main_thread_rolls_back_what_the_lanes_did() -> None:
    """Ctrl-C while the main thread waits for parallel lanes: not only inside a step."""
    log: list[str] = []
    entered = threading.Event()

    def interrupt_main() -> None:  # a real SIGINT: it wakes the main thread's wait
        entered.wait(5)
        os.kill(os.getpid(), signal.SIGINT)

    def enter(report: Report) -> None:
        entered.set()
        time.sleep(0.5)

    plan = Plan("p", [
        _step(log, "primary", "slot"),
        _step(log, "s1", "clone", concurrent=True, pause=0.5),
        Step("s2", StepKind.SQL, "clone", action=enter, concurrent=True),
        _step(log, "s1", "start", concurrent=True),
    ])
    threading.Thread(target=interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        plan.apply()
    assert "do s1:start" not in log
    assert log[-2:] == ["undo s1:clone", "undo primary:slot"]
