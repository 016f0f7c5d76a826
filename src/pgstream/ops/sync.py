"""Synchronous replication on a primary: ``synchronous_standby_names`` from a :class:`SyncSpec`.

``synchronous_plan(primary, spec)`` is a plan of three steps on the primary: the settings
(``ALTER SYSTEM``, only where the configuration files hold something else), a reload (only when
a file changed or holds a value not yet in effect; it waits until the new value is), and, given
``wait_for``, a check that waits until ``pg_stat_replication.sync_state`` of the named standbys
is as expected. Applying it twice changes nothing the second time.

``sync_states(primary)`` is ``pg_stat_replication`` as ``{application_name: (sync_priority,
sync_state)}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from psycopg import sql

from pgstream.errors import InvalidInput, OperationFailed, PgStreamError, ServerStateError
from pgstream.facts import identifiers
from pgstream.facts.settings import parse_bool
from pgstream.hosts.wait import DEFAULT_TIMEOUT
from pgstream.hosts.wait import wait_for as _poll
from pgstream.nodes.node import Primary
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.setup import reload_until, restore_auto_conf
from pgstream.ops.view import RoleChange
from pgstream.render import probes, queries
from pgstream.render.sync_spec import ALL, SYNC_STATES, SyncSpec

SYNCHRONOUS_COMMIT = ("on", "remote_write", "remote_apply", "local", "off")
STANDBY_NAMES = "synchronous_standby_names"
COMMIT = "synchronous_commit"
# Where a value set by ALTER SYSTEM wins; a higher source (the server's command line, a role's
# or database's setting) overrides the configuration files.
_FILE_SOURCES = frozenset({"default", "configuration file"})
_RELOAD_TIMEOUT = 10.0


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)


def sync_states(primary: Primary) -> dict[str, tuple[int, str]]:
    """``{application_name: (sync_priority, sync_state)}`` from the primary's walsenders.

    Where two walsenders share a name (a standby reconnecting before its old walsender exited),
    the newer one is shown.
    """
    states: dict[str, tuple[int, str]] = {}
    for name, priority, state in primary.query(probes.sync_states(primary.version)):
        if state is None or priority is None:
            raise ServerStateError(
                f"cannot read sync_state on {primary.name}: pg_stat_replication hides it from "
                "this role; connect as a superuser (or, from 10.2, a member of pg_monitor)")
        states[str(name)] = (int(priority), str(state))
    return states


def _equal(value: str, other: str) -> bool:
    if value.lower() == other.lower():
        return True
    as_bool = parse_bool(value)
    return as_bool is not None and as_bool == parse_bool(other)


def _check_names(spec: SyncSpec, wait_for: Mapping[str, str] | None, primary: Primary,
                 standbys: Iterable[str]) -> None:
    known = list(standbys)
    named = [n for n in spec.names if n != ALL]
    named += [n for n in (wait_for or {}) if n not in named]
    ghosts = [n for n in named if n not in known]
    if ghosts:
        raise InvalidInput(
            f"{', '.join(ghosts)} {'is not a standby' if len(ghosts) == 1 else 'are not standbys'}"
            f" streaming from {primary.name} (its standbys: {', '.join(known) or 'none'}): "
            "a commit waiting for a standby that never connects would wait forever")


class _Settings:
    """The wanted values and how to compare them with a server's, for one spec and version."""

    def __init__(self, primary: Primary, spec: SyncSpec, synchronous_commit: str | None) -> None:
        adapter = primary.version.adapter
        self.primary = primary
        self.spec = spec
        self.names_setting = adapter.setting(STANDBY_NAMES)
        self.wanted = {self.names_setting: spec.render(primary.version)}
        if synchronous_commit is not None:
            self.wanted[adapter.setting(COMMIT)] = synchronous_commit
        self.file_changed = False
        self.changed = False
        """Did a step of this apply change something (a file, or the values in effect)?"""
        self.previous: dict[str, str | None] = {}
        """What postgresql.auto.conf held for each setting the step changed (None: none)."""

    def same(self, name: str, value: str) -> bool:
        """Is ``value`` the wanted one (for the standby names: the same in effect)?"""
        if value == self.wanted[name]:
            return True
        if name != self.names_setting:
            return False
        try:
            return SyncSpec.parse(value, self.primary.version).effective == self.spec.effective
        except InvalidInput:
            return False

    def read(self) -> dict[str, tuple[str, str, str, str | None]]:
        """name -> (value in effect, its source, value in the configuration files, value in
        postgresql.auto.conf or None)."""
        rows: list[tuple[Any, ...]] = self.primary.query(*queries.file_settings(
            list(self.wanted)))
        found = {str(name): (str(setting), str(source), str(in_file),
                             None if auto is None else str(auto))
                 for name, setting, source, in_file, auto in rows}
        missing = [name for name in self.wanted if name not in found]
        if missing:
            raise InvalidInput(f"{self.primary.name} has no setting(s) {', '.join(missing)} "
                               f"(PostgreSQL {self.primary.version.major})")
        return found

    def not_in_effect(self) -> list[str]:
        """Settings whose value in effect is not the wanted one (where a file value would win)."""
        return [name for name, (setting, source, _file, _auto) in self.read().items()
                if source in _FILE_SOURCES and not self.same(name, setting)]

    def restore(self) -> None:
        """Undo: postgresql.auto.conf as it was before the step, reloaded and in effect."""
        if not self.previous:
            return
        failed = restore_auto_conf(self.primary, self.previous)
        restored = list(self.previous)
        self.previous.clear()
        def back() -> bool:
            now = self.read()
            return all(now[n][1] not in _FILE_SOURCES or _equal(now[n][0], now[n][2])
                       for n in restored)

        if failed:
            self.primary.execute(queries.reload_conf()[0])
            raise OperationFailed(f"could not restore {self.primary.name}'s "
                                  + "; ".join(failed))
        reload_until(self.primary, back, timeout=_RELOAD_TIMEOUT,
                     what=f"{self.primary.name} to apply the restored configuration")


def _settings_step(settings: _Settings) -> Step:
    primary = settings.primary
    detail = "\n".join(_text(queries.alter_system(name, value)) + ";"
                       for name, value in settings.wanted.items())

    def action(report: Report) -> StepResult:
        settings.changed = False
        current = settings.read()
        setting, source, _file, _auto = current[settings.names_setting]
        if source not in _FILE_SOURCES:
            raise ServerStateError(
                f"{settings.names_setting} on {primary.name} comes from the {source} "
                f"(value {setting!r}), which overrides ALTER SYSTEM: remove it there first")
        changed = []
        try:
            for name, value in settings.wanted.items():
                if settings.same(name, current[name][2]):
                    continue
                settings.previous[name] = current[name][3]
                primary.execute(queries.alter_system(name, value))
                changed.append(name)
        except BaseException as exc:
            try:
                settings.restore()
            except PgStreamError as undo:
                raise OperationFailed(f"{exc}; restoring the settings failed too: {undo}") \
                    from exc
            raise
        if not changed:
            return StepResult(False, "already set in postgresql.auto.conf or postgresql.conf")
        settings.file_changed = settings.changed = True
        return StepResult(True, "set: " + ", ".join(changed))

    return Step(primary.name, StepKind.SETTING, "synchronous replication settings (ALTER SYSTEM)",
                detail, action=action, undo=settings.restore, host=primary.host.name)


def _reload_step(settings: _Settings) -> Step:
    primary = settings.primary
    reload = queries.reload_conf()

    def action(report: Report) -> StepResult:
        pending = settings.not_in_effect()
        if not settings.file_changed and not pending:
            return StepResult(False, "already in effect")
        settings.file_changed = False
        reload_until(primary, lambda: not settings.not_in_effect(), timeout=_RELOAD_TIMEOUT,
                     what=f"{primary.name} to apply the reloaded configuration",
                     detail=lambda: ", ".join(f"{n} = {v[0]!r}"
                                              for n, v in settings.read().items()),
                     reload=reload)
        settings.changed = True
        return StepResult(True, "reloaded: " + ", ".join(
            f"{name} = {value!r}" for name, value in settings.wanted.items()))

    return Step(primary.name, StepKind.RELOAD, "reload the configuration, if a setting changed",
                queries.shown(reload), action=action, host=primary.host.name)


def _describe(states: Mapping[str, object]) -> str:
    return ", ".join(f"{name} {state}" for name, state in sorted(states.items())) or "none"


def _check_step(primary: Primary, expected: Mapping[str, str], timeout: float) -> Step:
    detail = (_text(probes.sync_states(primary.version)) + ";\n"
              + "expect: " + _describe(expected))

    def action(report: Report) -> StepResult:
        seen: dict[str, tuple[int, str]] = {}

        def matches() -> bool:
            seen.clear()
            seen.update(sync_states(primary))
            return all(seen.get(name, (0, ""))[1] == state for name, state in expected.items())

        _poll(matches, timeout=timeout,
              what=f"sync_state on {primary.name}: {_describe(expected)}",
              detail=lambda: _describe({n: f"{s} (priority {p})" for n, (p, s) in seen.items()}))
        return StepResult(False, _describe(expected))

    return Step(primary.name, StepKind.CHECK, "wait for the standbys' sync_state", detail,
                action=action, host=primary.host.name)


def _recording(step: Step, settings: _Settings, record: Callable[[RoleChange], None]) -> Step:
    """``step`` (the plan's last), which then commits the history record of a change."""
    act = step.action
    detail = f"{STANDBY_NAMES} = {settings.spec.render(settings.primary.version)!r}"

    def action(report: Report) -> StepResult | None:
        result = act(report)
        if settings.changed:
            record(RoleChange("synchronous", detail))
        return result

    return attrs.evolve(step, action=action)


def _expected(spec: SyncSpec, wait_for: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(wait_for, Mapping):
        raise InvalidInput(f"wait_for must map standby names to sync states, not {wait_for!r}")
    expected: dict[str, str] = {}
    for name, state in wait_for.items():
        identifiers.node_name(name)
        if state not in SYNC_STATES:
            raise InvalidInput(f"unknown sync_state {state!r} for {name}: use one of "
                               + ", ".join(SYNC_STATES))
        possible = spec.possible_states(name)
        if state not in possible:
            raise InvalidInput(f"{name} can never be {state!r} with this spec ({spec.method} "
                               f"{spec.num} {list(spec.names)}): it can be "
                               + " or ".join(sorted(possible)))
        expected[name] = state
    return expected


def synchronous_plan(primary: Primary, spec: SyncSpec, *, synchronous_commit: str | None = None,
                     wait_for: Mapping[str, str] | None = None,
                     timeout: float = DEFAULT_TIMEOUT,
                     standbys: Iterable[str] | None = None,
                     record: Callable[[RoleChange], None] | None = None) -> Plan:
    """Set ``synchronous_standby_names`` (and ``synchronous_commit``) on ``primary``.

    ``wait_for`` maps standby names (their ``application_name``) to the ``sync_state`` to
    wait for (``sync``, ``potential``, ``quorum`` or ``async``), at most ``timeout`` seconds.
    ``standbys`` are the application names of the standbys streaming from ``primary``: a
    name in the spec or in ``wait_for`` that is none of them (``*`` aside) is refused
    (``Cluster.synchronous_plan`` passes its standbys; None checks nothing).
    Everything is validated while building the plan: an ``ANY`` spec on 9.6 raises
    :class:`~pgstream.errors.NotAvailable` here, before anything changes. If a step fails
    (the wait included), ``postgresql.auto.conf`` gets back what it held for these settings
    and the configuration is reloaded: no commit is left waiting for a standby that the plan
    could not see become synchronous. Given ``record`` (``Cluster.apply``), a plan that
    changed something commits a :class:`~pgstream.ops.view.RoleChange` that records it in
    the cluster's history (``synchronous``), when its last step is done.
    """
    if not isinstance(spec, SyncSpec):
        raise InvalidInput(f"spec must be a SyncSpec, not {spec!r}")
    if synchronous_commit is not None and synchronous_commit not in SYNCHRONOUS_COMMIT:
        raise InvalidInput(f"invalid synchronous_commit {synchronous_commit!r}: use one of "
                           + ", ".join(SYNCHRONOUS_COMMIT))
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, not {timeout!r}")
    expected = _expected(spec, wait_for) if wait_for is not None else {}
    if standbys is not None:
        _check_names(spec, wait_for, primary, standbys)
    settings = _Settings(primary, spec, synchronous_commit)
    steps = [_settings_step(settings), _reload_step(settings)]
    if expected:
        steps.append(_check_step(primary, expected, timeout))
    if record is not None:
        steps[-1] = _recording(steps[-1], settings, record)
    shown = settings.wanted[settings.names_setting] or "off"
    return Plan(f"synchronous replication on {primary.name}: {shown}", steps)
