"""The command line's progress (``pgstream.cli.common.Progress``), without servers: what it
writes on stderr for each plan event (a bar with the copy rate while ``pg_basebackup``
reports ``done/total kB (N%)``, a line per finished, failed or rolled-back step, nothing for
the others), on a clock the tests move; and ``run_plan`` giving it to a plan only when stderr
is a terminal."""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from typing import Any

import pytest

from pgstream.cli.common import Progress, run_plan
from pgstream.ops.plan import Plan, ProgressEvent, Step, StepKind, StepResult


class Clock:
    """``time.monotonic`` as the tests set it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    made = Clock()
    monkeypatch.setattr(time, "monotonic", made)
    return made


class Stderr:
    """Everything written on stderr so far (pytest's capture of it)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def getvalue(self) -> str:
        self.text += self.capsys.readouterr().err
        return self.text


@pytest.fixture
def err(capsys: pytest.CaptureFixture[str]) -> Stderr:
    return Stderr(capsys)


def _step(node: str = "s1", title: str = "clone pg with pg_basebackup 18") -> Step:
    return Step(node, StepKind.BASE_BACKUP, title, "", action=lambda report: StepResult())


def _event(step: Step, event: str, message: str = "", percent: float | None = None, *,
           index: int = 3, total: int = 9) -> ProgressEvent:
    return ProgressEvent(index, total, step, event, message, percent)


def _kb(done: int, total: int = 409600) -> str:
    return f"{done}/{total} kB ({done * 100 // total}%), 0/1 tablespace"


def test_a_bar_with_its_rate_while_pg_basebackup_copies(clock: Clock,
                                                        err: Stderr) -> None:
    progress = Progress()
    step = _step()
    clock.now += 1.5
    progress(_event(step, "percent", _kb(0), 0.0))
    first = err.getvalue()
    assert first == "\r   1.5s [ 3/9] s1 [....................]   0%"  # no rate yet
    clock.now += 2.0
    progress(_event(step, "percent", _kb(102400), 25.0))  # 100 MB in 2 s
    second = err.getvalue()[len(first):]
    assert second == "\r   3.5s [ 3/9] s1 [#####...............]  25%    50.0 MB/s"
    clock.now += 2.0
    progress(_event(step, "percent", _kb(409600), 100.0))  # 400 MB in 4 s since the first
    assert err.getvalue().endswith("[####################] 100%   100.0 MB/s")
    assert "\n" not in err.getvalue()  # the bar stays on one line


def test_a_bar_without_sizes_has_no_rate(clock: Clock, err: Stderr) -> None:
    progress = Progress()
    clock.now += 2.0
    progress(_event(_step(), "percent", "waiting for checkpoint (40%)", 40.0))
    assert err.getvalue() == "\r   2.0s [ 3/9] s1 [########............]  40%"


def test_start_output_and_percent_without_a_number_write_nothing(
        clock: Clock, err: Stderr) -> None:
    progress = Progress()
    step = _step()
    progress(_event(step, "start", step.title))
    progress(_event(step, "output", "pg_basebackup: initiating base backup"))
    progress(_event(step, "percent", _kb(10), None))
    assert err.getvalue() == ""


def test_done_failed_and_undone_lines(clock: Clock, err: Stderr) -> None:
    progress = Progress()
    step = _step()
    clock.now += 0.25
    progress(_event(step, "done", "cloned pg in 1.20 s"))
    clock.now += 1.0
    progress(_event(step, "failed", "pg_basebackup failed"))
    progress(_event(step, "undone"))
    assert err.getvalue().split("\n") == [
        "\r\x1b[K   0.2s [ 3/9] s1 clone pg with pg_basebackup 18: cloned pg in 1.20 s",
        "\r\x1b[K   1.2s [ 3/9] s1 FAILED: clone pg with pg_basebackup 18",
        "   1.2s rolled back: [s1] clone pg with pg_basebackup 18", ""]


def test_the_rate_starts_again_with_the_next_copy(clock: Clock, err: Stderr) -> None:
    progress = Progress()
    first, second = _step("s1"), _step("s2")
    progress(_event(first, "percent", _kb(0), 0.0))
    clock.now += 1.0
    progress(_event(first, "percent", _kb(409600), 100.0))
    progress(_event(first, "done", "cloned"))
    clock.now += 10.0
    progress(_event(second, "percent", _kb(0), 0.0, index=4))
    clock.now += 2.0
    progress(_event(second, "percent", _kb(20480), 5.0, index=4))
    assert err.getvalue().endswith("[4/9] s2 [#...................]   5%    10.0 MB/s"
                                   .replace("[4/9]", "[ 4/9]"))


def test_concurrent_copies_each_have_their_own_rate(clock: Clock, err: Stderr) -> None:
    """Clones run at once (setup with several standbys): each step's rate is its own copy's,
    not the difference between two copies' sizes."""
    progress = Progress()
    one, two = _step("s1"), _step("s2")
    progress(_event(one, "percent", _kb(0), 0.0, index=5))
    clock.now += 1.0
    progress(_event(two, "percent", _kb(0), 0.0, index=6))
    clock.now += 1.0
    progress(_event(one, "percent", _kb(40960), 10.0, index=5))  # 40 MB in 2 s: 20 MB/s
    line_one = err.getvalue().rsplit("\r", 1)[-1]
    clock.now += 1.0
    progress(_event(two, "percent", _kb(20480), 5.0, index=6))  # 20 MB in 2 s: 10 MB/s
    line_two = err.getvalue().rsplit("\r", 1)[-1]
    assert line_one.endswith("s1 [##..................]  10%    20.0 MB/s"), line_one
    assert line_two.endswith("s2 [#...................]   5%    10.0 MB/s"), line_two
    progress(_event(one, "done", "cloned"))
    clock.now += 1.0
    progress(_event(two, "percent", _kb(61440), 15.0, index=6))  # 60 MB in 3 s: 20 MB/s
    assert err.getvalue().endswith("s2 [###.................]  15%    20.0 MB/s")


# -- run_plan: progress only on a terminal


class _Plan:
    """A plan double: records the progress callback ``apply`` gets."""

    title = "a plan"

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.progress: Any = "not applied"

    def apply(self, progress: Any = None) -> Any:
        self.progress = progress
        return Plan("a plan", []).apply()

    def __str__(self) -> str:
        return "a plan (0 steps)"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _args(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"json": False, "dry_run": False, "command": "setup", **kw})


def test_run_plan_shows_progress_only_on_a_terminal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    plan = _Plan()
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe, a file, CI's log
    assert run_plan(_args(), plan) == 0  # type: ignore[arg-type]
    assert plan.progress is None
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    plan = _Plan()
    assert run_plan(_args(), plan) == 0  # type: ignore[arg-type]
    assert isinstance(plan.progress, Progress)
    assert re.search(r"a plan", capsys.readouterr().out)


def test_run_plan_dry_run_applies_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    plan = _Plan()
    assert run_plan(_args(dry_run=True), plan) == 0  # type: ignore[arg-type]
    assert plan.progress == "not applied"
    assert capsys.readouterr().out.strip() == "a plan (0 steps)"
