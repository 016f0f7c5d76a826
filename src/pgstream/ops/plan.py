"""Plans: the runbook as data. An ordered list of steps, printable (a dry run), appliable.

Each :class:`Step` names its node and host, its kind (setting, hba line, SQL, restart, wipe,
base backup, recovery config, start, check, ...) and the exact SQL, command or file content it
will run or write, with passwords masked. ``print(plan)`` reads like the seed's runbook;
``plan.apply()`` runs it, reports progress to a callback, and stops at the first failure with a
:class:`~pgstream.errors.PlanFailed` that says which step failed, what was already done, what
was rolled back (a slot it created, a half-made standby it cloned) and what could not be (an
undo that failed: what it leaves needs a person). A failing step first takes back its own
partial effect (its ``cleanup``), then the completed steps' ``undo`` run in reverse order.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait

import attrs

from pgstream.errors import PlanFailed, Refused
from pgstream.hosts import sigterm
from pgstream.hosts.process import stop_commands
from pgstream.render import html as render_html

_log = logging.getLogger(__name__)


class StepKind(enum.Enum):
    """What a step does, as a plan prints it (``[node@host] kind: title``); the value is
    the printed word."""
    INITDB = "initdb"
    SETTING = "setting"
    HBA = "hba line"
    ROLE = "role"
    SLOT = "slot"
    SQL = "sql"
    RELOAD = "reload"
    RESTART = "restart"
    STOP = "stop"
    WIPE = "wipe"
    FILE = "file"
    BASE_BACKUP = "base backup"
    RECOVERY_CONFIG = "recovery config"
    START = "start"
    CHECK = "check"
    PROMOTE = "promote"
    REWIND = "rewind"
    RECORD = "record"
    UPGRADE = "upgrade"
    RSYNC = "rsync"


@attrs.frozen
class StepResult:
    """What a step did: ``changed`` False means it found things already as wanted."""

    changed: bool = True
    message: str = ""


@attrs.frozen
class ProgressEvent:
    """Sent to ``apply``'s callback: ``event`` is start, output, percent, done, failed, undone."""

    index: int
    total: int
    step: Step
    event: str
    message: str = ""
    percent: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]
Report = Callable[[str, "float | None"], None]


@attrs.frozen(eq=False)
class Step:
    """One runbook step. ``action(report)`` does it; ``undo()`` takes back what it made once
    it completed; ``cleanup()`` takes back what the action did before it *failed* (a half-made
    copy), and runs for the failing step itself when the plan rolls back."""

    node: str
    kind: StepKind
    title: str
    detail: str = ""
    action: Callable[[Report], StepResult | None] = attrs.field(repr=False, kw_only=True)
    undo: Callable[[], None] | None = attrs.field(default=None, repr=False, kw_only=True)
    cleanup: Callable[[], None] | None = attrs.field(default=None, repr=False, kw_only=True)
    host: str = attrs.field(default="localhost", kw_only=True)
    concurrent: bool = attrs.field(default=False, kw_only=True)

    def describe(self, number: int) -> str:
        """The step as a plan prints it, numbered ``number``: ``[node@host] kind: title``,
        then its detail (the exact command or SQL), indented."""
        head = f"{number:>2}. [{self.node}@{self.host}] {self.kind.value}: {self.title}"
        if not self.detail:
            return head
        body = "\n".join("        " + line for line in self.detail.rstrip("\n").splitlines())
        return f"{head}\n{body}"


@attrs.frozen
class AppliedStep:
    """A step that ran: what it did (``result``) and how many seconds it took."""
    step: Step
    result: StepResult
    seconds: float


@attrs.frozen
class PlanReport:
    """What ``apply`` did, step by step."""

    plan_title: str
    applied: tuple[AppliedStep, ...]

    @property
    def changed(self) -> bool:
        """Did any step change anything?"""
        return any(a.result.changed for a in self.applied)

    def __str__(self) -> str:
        lines = [f"{self.plan_title}: {len(self.applied)} steps"]
        for number, item in enumerate(self.applied, 1):
            state = "changed" if item.result.changed else "unchanged"
            note = f" - {item.result.message}" if item.result.message else ""
            lines.append(f"{number:>2}. [{item.step.node}] {item.step.title}: {state}"
                         f" ({item.seconds:.2f} s){note}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return render_html.plan_report_html(self)


def _as_steps(steps: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(steps)


@attrs.frozen
class Plan:
    """An ordered list of steps. ``print(plan)`` is the dry run; ``plan.apply()`` runs it."""

    title: str
    steps: tuple[Step, ...] = attrs.field(converter=_as_steps)

    def __str__(self) -> str:
        count = len(self.steps)
        lines = [f"Plan: {self.title} ({count} step{'' if count == 1 else 's'})"]
        lines += [step.describe(n) for n, step in enumerate(self.steps, 1)]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return render_html.plan_html(self)

    def __add__(self, other: Plan) -> Plan:
        return Plan(f"{self.title}; {other.title}", self.steps + other.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def apply(self, progress: ProgressCallback | None = None, *, rollback: bool = True,
              parallel: bool = True) -> PlanReport:
        """Run every step in order; stop at the first failure.

        Consecutive steps marked ``concurrent`` run one thread per node (each node's steps
        still in order) when ``parallel``; after a failure in one lane the others start no
        further step. On failure, with ``rollback``, the ``cleanup`` of each failing step and
        then the ``undo`` of every completed step that has one run (in reverse order), then
        :class:`PlanFailed` is raised; its ``undo_failed`` (and its message) name every undo
        that failed. A ``KeyboardInterrupt`` (or any other ``BaseException``) rolls back the
        same way and then propagates, with the failed undos added as notes.

        From the main thread, SIGTERM (``timeout``, a CI runner) is held while it runs
        (:mod:`pgstream.hosts.sigterm`): it rolls back like Ctrl-C instead of killing the
        process between a stop and a promotion or in the middle of a clone.
        """
        held = threading.current_thread() is threading.main_thread()
        if held:
            sigterm.hold()
        try:
            return self._apply(progress, rollback, parallel)
        finally:
            if held:
                sigterm.release()

    def _apply(self, progress: ProgressCallback | None, rollback: bool,
               parallel: bool) -> PlanReport:
        runner = _Runner(self, progress)
        try:
            for block in _blocks(self.steps, parallel):
                runner.run_block(block)
        except _StepError as failure:
            undone, undo_failed = runner.rollback() if rollback else ((), ())
            done = tuple(a.step for a in runner.applied)
            if isinstance(failure.cause, Refused) and not any(
                    a.result.changed for a in runner.applied) and not undo_failed:
                # A pre-check refused before anything changed: the same error as from the
                # plan's builder, not a failed plan.
                raise failure.cause from None
            lines = [f"plan {self.title!r} failed at step {failure.number} "
                     f"([{failure.step.node}] {failure.step.title}): {failure.cause}"]
            if done:
                lines.append("already done: " + "; ".join(
                    f"[{s.node}] {s.title}" for s in done))
            else:
                lines.append("nothing had been changed")
            if undone:
                lines.append("rolled back: " + "; ".join(f"[{s.node}] {s.title}" for s in undone))
            lines += _undo_failures(undo_failed)
            raise PlanFailed("\n".join(lines), step=failure.step, done=done, undone=undone,
                             cause=failure.cause, undo_failed=undo_failed) from failure.cause
        except BaseException as exc:  # Ctrl-C, SIGTERM (see hosts.sigterm), SystemExit
            cause = exc.cause if isinstance(exc, _Interrupted) else exc
            if rollback:
                _undone, undo_failed = runner.rollback()
                for note in _undo_failures(undo_failed):
                    cause.add_note(note)
            if cause is exc:
                raise
            raise cause from None
        order = {id(step): n for n, step in enumerate(self.steps)}
        applied = sorted(runner.applied, key=lambda a: order.get(id(a.step), 0))
        return PlanReport(self.title, tuple(applied))


def _undo_failures(failed: tuple[tuple[Step, BaseException], ...]) -> list[str]:
    return [f"could not undo [{step.node}] {step.title} (left behind, it needs a person): "
            f"{error}" for step, error in failed]


class _Interrupted(BaseException):
    def __init__(self, number: int, step: Step, cause: BaseException) -> None:
        super().__init__(repr(cause))
        self.cause = cause


class _StepError(Exception):
    def __init__(self, number: int, step: Step, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.number = number
        self.step = step
        self.cause = cause


def _blocks(steps: Iterable[Step], parallel: bool) -> list[list[tuple[int, Step]]]:
    blocks: list[list[tuple[int, Step]]] = []
    for number, step in enumerate(steps, 1):
        joinable = parallel and step.concurrent and blocks and blocks[-1][-1][1].concurrent
        if joinable:
            blocks[-1].append((number, step))
        else:
            blocks.append([(number, step)])
    return blocks


class _Runner:
    def __init__(self, plan: Plan, progress: ProgressCallback | None) -> None:
        self.plan = plan
        self.progress = progress
        self.applied: list[AppliedStep] = []
        self.failed: list[Step] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def emit(self, number: int, step: Step, event: str, message: str = "",
             percent: float | None = None) -> None:
        if self.progress is not None:
            with self.lock:
                self.progress(ProgressEvent(number, len(self.plan.steps), step, event, message,
                                            percent))

    def run_one(self, number: int, step: Step) -> None:
        self.emit(number, step, "start", step.title)
        _log.info("step %d/%d [%s@%s] %s: %s: started", number, len(self.plan.steps),
                  step.node, step.host, step.kind.value, step.title)
        started = time.monotonic()

        def report(message: str, percent: float | None = None) -> None:
            self.emit(number, step, "percent" if percent is not None else "output", message,
                      percent)

        try:
            result = step.action(report) or StepResult()
        except Exception as exc:
            _log.warning("step %d/%d [%s@%s] %s: failed: %s", number, len(self.plan.steps),
                         step.node, step.host, step.title, exc)
            self._failed(step)
            self.emit(number, step, "failed", str(exc))
            raise _StepError(number, step, exc) from exc
        except BaseException as exc:  # KeyboardInterrupt too: roll back, then re-raise it
            _log.warning("step %d/%d [%s@%s] %s: interrupted (%r)", number,
                         len(self.plan.steps), step.node, step.host, step.title, exc)
            self._failed(step)
            self.emit(number, step, "failed", repr(exc))
            raise _Interrupted(number, step, exc) from exc
        with self.lock:
            self.applied.append(AppliedStep(step, result, time.monotonic() - started))
        _log.info("step %d/%d [%s@%s] %s: done: %s (%.2f s)", number, len(self.plan.steps),
                  step.node, step.host, step.title, result.message or
                  ("changed" if result.changed else "unchanged"), time.monotonic() - started)
        self.emit(number, step, "done", result.message or
                  ("changed" if result.changed else "unchanged"))

    def _failed(self, step: Step) -> None:
        with self.lock:
            self.failed.append(step)
        self.stopping.set()

    def run_block(self, block: list[tuple[int, Step]]) -> None:
        if len(block) == 1:
            self.run_one(*block[0])
            return
        lanes: dict[str, list[tuple[int, Step]]] = {}
        for number, step in block:
            lanes.setdefault(step.node, []).append((number, step))
        threads: set[int] = set()

        def lane(items: list[tuple[int, Step]]) -> None:
            threads.add(threading.get_ident())
            for number, step in items:
                if self.stopping.is_set():  # another lane failed: start nothing more
                    return
                self.run_one(number, step)

        pool = ThreadPoolExecutor(max_workers=len(lanes))
        try:
            futures = [pool.submit(lane, items) for items in lanes.values()]
            pending = set(futures)
            while pending:  # short waits: a signal another thread took is handled here soon
                _done, pending = wait(pending, timeout=0.05)
            errors = [f.exception() for f in futures]
        except BaseException:
            # Interrupted while the lanes run: they start nothing more, and the commands they
            # are running now (a pg_basebackup) are killed, so rollback need not wait for them.
            self.stopping.set()
            stop_commands(threads)
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        for error in errors:
            if error is not None:
                raise error

    def rollback(self) -> tuple[tuple[Step, ...], tuple[tuple[Step, BaseException], ...]]:
        """Clean up after each failed step, then undo the completed ones, newest first."""
        undone: list[Step] = []
        failed: list[tuple[Step, BaseException]] = []
        work = [(s, s.cleanup) for s in reversed(self.failed)]
        work += [(a.step, a.step.undo) for a in reversed(self.applied)]
        for step, undo in work:
            if undo is None:
                continue
            _log.warning("rolling back [%s@%s] %s", step.node, step.host, step.title)
            try:
                undo()
            except Exception as exc:  # noqa: BLE001 - report it, keep undoing the rest
                _log.warning("could not undo [%s@%s] %s: %s", step.node, step.host,
                             step.title, exc)
                failed.append((step, exc))
                self.emit(0, step, "failed", f"could not undo: {exc}")
                continue
            undone.append(step)
            self.emit(0, step, "undone", step.title)
        return tuple(undone), tuple(failed)
