"""Recording what plans run, to compare it with what they print (a dry run is the truth).

A :class:`RecordingHost` wraps any host and records every effect argv (the programs that
change something) given to ``Host.run``, and every file written, appended to or wiped through
the host (``write_text``, ``append_text``, ``wipe_contents``); :func:`install_recorder` also
records every effect statement psycopg sends. :func:`apply_and_compare` applies a plan one step
at a time and fails naming each effect that ran but was not in its step's printed text (a file
by its path or name), and each effect printed (a line that is an effect program's argv or an
effect statement, before any trailing ``#``/``--`` comment) that did not run in a step that
changed something (one of them at least: steps are idempotent and conditional, a setting
already in place is not set again). Secrets are masked on both sides, as plans mask them.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

from pgstream import Cluster, Plan, ProgressEvent
from pgstream.facts import redact
from pgstream.hosts.host import Completed, Host, LocalHost
from pgstream.ops.plan import PlanReport
from pgstream.render import queries

EFFECT_PROGRAMS = {"pg_ctl", "pg_ctlcluster", "systemctl", "pg_basebackup", "pg_rewind",
                   "initdb", "rm", "rsync", "pg_upgrade", "vacuumdb", "pg_createcluster",
                   "pg_dropcluster", "find", "cp", "mv"}
EFFECT_FUNCTIONS = ("pg_create_physical_replication_slot", "pg_drop_replication_slot",
                    "pg_promote", "pg_reload_conf", "pg_replication_slot_advance",
                    "pg_wal_replay_resume", "pg_xlog_replay_resume")
EFFECT_SQL = re.compile(
    r"^\s*(?:(?:ALTER SYSTEM|CREATE ROLE|ALTER ROLE|DROP ROLE|CHECKPOINT|CREATE DATABASE|"
    r"DROP DATABASE)\b|SELECT\b[^;]*?\b(?:" + "|".join(EFFECT_FUNCTIONS) + r")\b)",
    re.I | re.S)
FILE_EFFECTS = ("write", "append", "wipe")
"""How a file effect is recorded: ``write PATH`` (``Host.write_text``), ``append PATH``,
``wipe PATH`` (``Host.wipe_contents``)."""


def is_effect_script(argv: Sequence[str]) -> bool:
    """A ``sh -c SCRIPT NAME ARGS...`` whose arguments run one of the effect programs (the
    stop and start that pgstream watches on the server's host, render/scripts)."""
    return len(argv) > 3 and Path(argv[0]).name == "sh" and argv[1] == "-c" and any(
        Path(a).name in EFFECT_PROGRAMS for a in argv[4:])


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(";")


@attrs.define
class Recorder:
    """What ran, by step: ``effects[n]`` lists the effects recorded while step n ran."""

    current: int = 0
    effects: dict[int, list[str]] = attrs.field(factory=dict)

    def add(self, text: str) -> None:
        # Secrets (a password, a SCRAM verifier) are masked in plans: compare masked.
        self.effects.setdefault(self.current, []).append(_norm(redact.text(text)))

    def progress(self, event: ProgressEvent) -> None:
        if event.event == "start":
            self.current = event.index
        elif event.event in ("done", "failed"):
            self.current = 0


def _is_effect(argv: Sequence[str]) -> bool:
    return Path(argv[0]).name in EFFECT_PROGRAMS or is_effect_script(argv)


@attrs.define
class RecordingHost:
    """A host that records every effect argv it runs and every file it writes, then does it
    on the host it wraps (whose own internal commands, e.g. an SSH ``write_text``, are not
    recorded twice)."""

    inner: Host
    recorder: Recorder
    name: str = ""

    def __attrs_post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        """Record ``argv`` if it is an effect, then run it."""
        argv = [str(a) for a in argv]
        if _is_effect(argv):
            self.recorder.add(shlex.join(argv))
        return self.inner.run(argv, **kwargs)

    def write_text(self, path: Path, text: str, **kwargs: Any) -> None:
        """Record ``write PATH``, then write."""
        self.recorder.add(f"write {path}")
        self.inner.write_text(path, text, **kwargs)

    def append_text(self, path: Path, text: str, **kwargs: Any) -> None:
        """Record ``append PATH``, then append."""
        self.recorder.add(f"append {path}")
        self.inner.append_text(path, text, **kwargs)

    def wipe_contents(self, path: Path) -> bool:
        """Record ``wipe PATH``, then wipe."""
        self.recorder.add(f"wipe {path}")
        return self.inner.wipe_contents(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@attrs.define
class RecordingLocalHost(LocalHost):
    """This machine, recording every effect argv it runs and every file it writes (still a
    ``LocalHost``: programs are found here as for any local node)."""

    recorder: Recorder = attrs.field(kw_only=True)
    _inside: int = attrs.field(default=0, init=False)

    def run(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        """Record ``argv`` if it is an effect, then run it."""
        argv = [str(a) for a in argv]
        if _is_effect(argv) and not self._inside:
            self.recorder.add(shlex.join(argv))
        return super().run(argv, **kwargs)

    def write_text(self, path: Path, text: str, **kwargs: Any) -> None:
        """Record ``write PATH`` (unless an append writes it), then write."""
        if not self._inside:
            self.recorder.add(f"write {path}")
        self._inside += 1
        try:
            super().write_text(path, text, **kwargs)
        finally:
            self._inside -= 1

    def append_text(self, path: Path, text: str, **kwargs: Any) -> None:
        """Record ``append PATH``, then append."""
        self.recorder.add(f"append {path}")
        self._inside += 1
        try:
            super().append_text(path, text, **kwargs)
        finally:
            self._inside -= 1

    def wipe_contents(self, path: Path) -> bool:
        """Record ``wipe PATH``, then wipe."""
        self.recorder.add(f"wipe {path}")
        return super().wipe_contents(path)


def recording(host: Host, recorder: Recorder) -> Host:
    """``host``, recording what it runs into ``recorder`` (a local host stays a
    ``LocalHost``; a host recording already records into ``recorder`` from now on)."""
    if isinstance(host, RecordingHost | RecordingLocalHost):
        host.recorder = recorder
        return host
    if isinstance(host, LocalHost):
        return RecordingLocalHost(host.name, recorder=recorder)
    return RecordingHost(host, recorder)


def install_recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A :class:`Recorder` that also records every effect statement psycopg sends."""
    made = Recorder()
    original = psycopg.Cursor.execute

    def execute(self: psycopg.Cursor[Any], query: Any, params: Any = None,
                **kwargs: Any) -> psycopg.Cursor[Any]:
        text = query.as_string(self.connection) if hasattr(query, "as_string") else str(query)
        if EFFECT_SQL.match(text):
            shown = queries.shown((psycopg.sql.SQL(text), tuple(params or ())))
            made.add(shown)
        return original(self, query, params, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    return made


def record_through(cluster: Cluster, recorder: Recorder) -> None:
    """Every node's host and service host records what it runs."""
    for node in [*cluster.nodes, *cluster.failed]:
        host = recording(node.host, recorder)
        node.host = host
        if node.service is not None:
            node.service.host = host


def _was_printed(effect: str, shown: str) -> bool:
    verb, _, path = effect.partition(" ")
    if verb in FILE_EFFECTS and path.startswith("/"):  # a file: named by its path or its name
        return path in shown or Path(path).name in shown
    return effect in shown


def printed_effects(detail: str) -> list[str]:
    """The effects a step's printed detail names, one a line: a line that is an effect
    program's argv, or an effect statement (a trailing ``  #``/``  --`` comment dropped)."""
    found = []
    lines = []
    for line in detail.splitlines():
        line, *comment = re.split(r"\s{2,}(?:#|--)\s", line, maxsplit=1)
        lines.append(line.strip())
        alternative = re.match(r"or\b[^:]*:\s*(.*)", comment[0].strip()) if comment else None
        if alternative:  # "X  -- or, if stopped: Y"
            lines.append(alternative.group(1))
    for line in filter(None, lines):
        if EFFECT_SQL.match(line):
            found.append(_norm(line))
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        if words and _is_effect(words):
            found.append(_norm(line))
    return found


def apply_and_compare(plan: Plan, recorder: Recorder, *, two_way: bool = True) -> PlanReport:
    """Apply ``plan`` one step at a time: each step's effects are in its printed text and
    (``two_way``) each effect a step that changed something printed is among those it ran (at
    least one of them: a step skips what is already in place).
    Returns the plan's report."""
    shown = {n: _norm(step.describe(n)) for n, step in enumerate(plan.steps, 1)}
    recorder.effects.clear()
    report = plan.apply(recorder.progress, parallel=False)
    problems = []
    for number, effects in sorted(recorder.effects.items()):
        for effect in effects:
            if number == 0 or not _was_printed(effect, shown[number]):
                problems.append(f"step {number}: ran {effect!r}\n   printed: "
                                f"{shown.get(number, '(outside any step)')!r}")
    if two_way:
        numbers = {id(step): n for n, step in enumerate(plan.steps, 1)}
        for applied in report.applied:
            number = numbers[id(applied.step)]
            ran = recorder.effects.get(number, [])
            printed = printed_effects(applied.step.detail) if applied.result.changed else []
            # A printed line may end with a note: "ARGV (force=True)".
            missing = [e for e in printed if not any(e in r or e.startswith(r) for r in ran)]
            if missing and len(missing) == len(printed):
                problems.append(f"step {number}: printed {missing!r}\n   but ran: {ran!r}")
    assert not problems, f"{plan.title}: what ran is not what the plan printed:\n" + \
        "\n".join(problems)
    return report


