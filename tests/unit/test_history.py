"""History over fakes (tests/fakes.py), no server: the synchronous plan itself commits its
history record, so applying ``synchronous_plan`` records what ``set_synchronous`` does, and
an apply that changed nothing records nothing (issue 9). On real servers, for follow too:
tests/integration/test_history.py."""

from __future__ import annotations

import re
from typing import Any

import pytest
from psycopg import sql

from pgstream.nodes.statements import Params
from pgstream.render.sync_spec import SyncSpec
from tests.fakes import FakeServer, fake_cluster

_ALTER = re.compile(r"^ALTER SYSTEM SET (\w+) = '((?:[^']|'')*)'$")


@pytest.fixture
def alter_system_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake servers whose ``ALTER SYSTEM`` sets the value (in effect at once)."""
    answer = FakeServer.answer

    def applying(self: FakeServer, node: str, statement: sql.Composable | str,
                 params: Params = None) -> list[tuple[Any, ...]]:
        text = (statement.as_string(None) if isinstance(statement, sql.Composable)
                else statement).replace('"', "")
        found = _ALTER.match(text)
        if found:
            self.settings[found[1]] = found[2].replace("''", "'")
        return answer(self, node, statement, params)

    monkeypatch.setattr(FakeServer, "answer", applying)


def _entries(history: list[Any]) -> list[tuple[str, str]]:
    return [(e.operation, e.detail) for e in history]


@pytest.mark.usefixtures("alter_system_applies")
def test_synchronous_plan_applied_records_it() -> None:
    rig = fake_cluster()
    spec = SyncSpec.first(1, ["s1"])
    report = rig.cluster.synchronous_plan(spec).apply()
    assert report.changed
    assert _entries(rig.cluster.history) == [
        ("synchronous", "synchronous_standby_names = 'FIRST 1 (s1)'")]
    assert len(rig.cluster.synchronous_plan(spec)) == 2  # no step added for the record


@pytest.mark.usefixtures("alter_system_applies")
def test_plan_and_verb_record_the_same() -> None:
    by_plan, by_verb = fake_cluster(), fake_cluster()
    spec = SyncSpec.any(1, ["s1", "s2"])
    by_plan.cluster.synchronous_plan(spec).apply()
    by_verb.cluster.set_synchronous(spec)
    assert _entries(by_plan.cluster.history) == _entries(by_verb.cluster.history) == [
        ("synchronous", "synchronous_standby_names = 'ANY 1 (s1, s2)'")]


def test_nothing_changed_nothing_recorded() -> None:
    rig = fake_cluster()
    rig.servers["pg"].settings["synchronous_standby_names"] = "FIRST 1 (s1)"
    report = rig.cluster.synchronous_plan(SyncSpec.first(1, ["s1"])).apply()
    assert not report.changed
    assert not rig.cluster.set_synchronous(SyncSpec.first(1, ["s1"])).changed
    assert rig.cluster.history == []

