"""Recording what plans run, to compare it with what they print (a dry run is the truth).

A :class:`RecordingHost` wraps any host and records every effect argv (the programs that
change something) given to ``Host.run``; :func:`install_recorder` also records every effect
statement psycopg sends. :func:`apply_and_compare` applies a plan one step at a time and fails
naming each effect that ran but was not in its step's printed detail. Secrets are masked on
both sides, as plans mask them.
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
from pgstream.render import queries

EFFECT_PROGRAMS = {"pg_ctl", "pg_ctlcluster", "systemctl", "pg_basebackup", "pg_rewind",
                   "initdb", "rm", "rsync", "pg_upgrade", "vacuumdb", "pg_createcluster",
                   "pg_dropcluster"}
EFFECT_SQL = re.compile(
    r"^\s*(ALTER SYSTEM|CREATE ROLE|ALTER ROLE|DROP ROLE|CHECKPOINT|CREATE DATABASE|"
    r"DROP DATABASE|SELECT\s+\S*(pg_create_physical_replication_slot|pg_drop_replication_slot|"
    r"pg_promote|pg_reload_conf|pg_replication_slot_advance|pg_wal_replay_resume|"
    r"pg_xlog_replay_resume))", re.I)


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


@attrs.define
class RecordingHost:
    """A host that records every argv it runs, then runs it on the host it wraps."""

    inner: Host
    recorder: Recorder
    name: str = ""

    def __attrs_post_init__(self) -> None:
        self.name = self.inner.name

    def run(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        argv = [str(a) for a in argv]
        if Path(argv[0]).name in EFFECT_PROGRAMS or is_effect_script(argv):
            self.recorder.add(shlex.join(argv))
        return self.inner.run(argv, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@attrs.define
class RecordingLocalHost(LocalHost):
    """This machine, recording every effect argv it runs (still a ``LocalHost``: programs
    are found here as for any local node)."""

    recorder: Recorder = attrs.field(kw_only=True)

    def run(self, argv: Sequence[str], **kwargs: Any) -> Completed:
        argv = [str(a) for a in argv]
        if Path(argv[0]).name in EFFECT_PROGRAMS or is_effect_script(argv):
            self.recorder.add(shlex.join(argv))
        return super().run(argv, **kwargs)


def recording(host: Host, recorder: Recorder) -> Host:
    """``host``, recording what it runs (a local host stays a ``LocalHost``)."""
    if isinstance(host, RecordingHost | RecordingLocalHost):
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


def apply_and_compare(plan: Plan, recorder: Recorder) -> None:
    """Apply ``plan`` one step at a time; each step's effects are in its printed detail."""
    shown = {n: _norm(step.describe(n)) for n, step in enumerate(plan.steps, 1)}
    recorder.effects.clear()
    plan.apply(recorder.progress, parallel=False)
    problems = []
    for number, effects in sorted(recorder.effects.items()):
        for effect in effects:
            if number == 0 or effect not in shown[number]:
                problems.append(f"step {number}: ran {effect!r}\n   printed: "
                                f"{shown.get(number, '(outside any step)')!r}")
    assert not problems, f"{plan.title}: what ran is not what the plan printed:\n" + \
        "\n".join(problems)


