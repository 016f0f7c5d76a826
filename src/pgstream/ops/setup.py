"""How a primary is prepared to serve standbys: the seed's steps 1 to 5, as plan steps.

1. settings (``ALTER SYSTEM``, only those that differ), 2. the ``pg_hba.conf`` replication line
(appended only when no equal rule exists), 3. the replication role (created once, its password
sent as a client-computed SCRAM verifier), 5. a reload, and a restart only when a changed
setting needs one (``pg_settings.context = 'postmaster'``), then 4. one physical slot per
standby: the seed creates slots before its restart, but a slot needs ``wal_level >= replica``
in effect, so pgstream creates them after it. Applying twice changes nothing the second time.

Every setting value is checked against the primary's ``pg_settings`` while the plan is built
(:func:`check_settings`, one query); a value the server still refuses makes the settings step
restore what it already wrote to ``postgresql.auto.conf`` before it fails. The password is a
:class:`~pgstream.facts.identifiers.Secret` and is compared with the stored SCRAM verifier as
libpq hashes it (SASLprep, :mod:`pgstream.facts.saslprep`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs
from psycopg import sql

from pgstream.errors import (
    InvalidInput,
    OperationFailed,
    PgStreamError,
    ServerStateError,
    SlotError,
)
from pgstream.facts import compat, identifiers
from pgstream.facts.identifiers import MASK, Secret
from pgstream.facts.passwords import verifier_matches
from pgstream.facts.settings import SettingDefinition, check_value, same_value
from pgstream.hosts.wait import wait_for
from pgstream.nodes.conninfo import check_conninfo
from pgstream.nodes.node import Node, Primary
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.render import probes, queries
from pgstream.render.config import ConfigRenderer


@attrs.frozen
class ReplicationAuth:
    """Who standbys connect as, and how (the seed's ``<replicationuser>`` and method).

    ``password`` is kept a :class:`~pgstream.facts.identifiers.Secret` (a ``str`` is wrapped),
    so reprs and ``attrs.asdict`` never show it; it must be non-empty and hold no control
    character (a line break would split its passfile entry).
    """

    user: str = attrs.field(default="replicator",
                            validator=lambda _i, _a, v: identifiers.role_name(v))
    password: Secret | None = attrs.field(default=None, converter=identifiers.as_secret)
    method: str | None = None  # None: scram-sha-256 (md5 on 9.6)


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)


def _setting_text(name: object, value: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"a setting name must be a non-empty string, not {name!r}")
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise InvalidInput(f"the value for {name} must be a string, not {value!r}")
    return value


def read_definitions(node: Node, names: Sequence[str]) -> dict[str, tuple[SettingDefinition,
                                                                          str | None]]:
    """Per setting, its ``pg_settings`` definition and what ``postgresql.auto.conf`` holds
    for it (None: nothing), in one query; unknown names raise ``InvalidInput``."""
    rows = node.query(*queries.setting_definitions(names))
    found = {str(row[0]): (SettingDefinition.from_row(row), row[8]) for row in rows}
    unknown = [n for n in names if n not in found]
    if unknown:
        raise InvalidInput(f"{node.name} has no setting(s) {', '.join(unknown)} "
                           f"(PostgreSQL {node.version.major})")
    return found


def check_settings(node: Node, settings: Mapping[str, str]) -> dict[str, str]:
    """Every value checked against the server's ``pg_settings`` (one query), before anything
    changes: returns each value as ``pg_settings.setting`` shows it. All the bad values are
    named in one ``InvalidInput``."""
    definitions = read_definitions(node, list(settings))
    normalized: dict[str, str] = {}
    problems = []
    for name, value in settings.items():
        try:
            if name == "primary_conninfo" and "password" in check_conninfo(value):
                raise InvalidInput("primary_conninfo cannot hold a password (plans show "
                                   "settings): give it to ReplicationAuth, for a passfile")
            normalized[name] = check_value(definitions[name][0], value)
        except InvalidInput as exc:
            problems.append(str(exc))
    if problems:
        raise InvalidInput(f"{node.name} would refuse these settings (nothing was changed): "
                           + "; ".join(problems))
    return normalized


def restore_auto_conf(node: Node, previous: Mapping[str, str | None]) -> list[str]:
    """Put ``postgresql.auto.conf`` back as it was for these settings (``ALTER SYSTEM SET``
    the old value, or ``ALTER SYSTEM RESET`` where it held none), the last changed first;
    returns the errors of those that could not be restored (each names its setting)."""
    failed = []
    for name, old in reversed(list(previous.items())):
        try:
            node.execute(queries.alter_system_reset(name) if old is None
                         else queries.alter_system(name, old))
        except PgStreamError as exc:
            failed.append(f"{name}: {exc}")
    return failed


def settings_step(primary: Primary, settings: Mapping[str, str],
                  restart_needed: set[str], changed_files: set[str]) -> Step:
    """``ALTER SYSTEM`` for each setting whose value in effect differs. Every value is
    checked against the server's ``pg_settings`` now, while the plan is built; if one is still
    refused when applied, the values this step already wrote are restored before it fails."""
    wanted = {name: _setting_text(name, value) for name, value in settings.items()}
    names = list(wanted)
    detail = "\n".join(_text(queries.alter_system(n, v)) + ";" for n, v in wanted.items())
    normalized = check_settings(primary, wanted) if wanted else {}

    def action(report: Report) -> StepResult:
        if not wanted:
            return StepResult(False, "no settings to change")
        current = read_definitions(primary, names)
        previous: dict[str, str | None] = {}
        try:
            for name, value in wanted.items():
                definition, in_auto_conf = current[name]
                if same_value(definition, normalized[name]):
                    continue
                previous[name] = in_auto_conf
                primary.execute(queries.alter_system(name, value))
        except BaseException as exc:
            failed = restore_auto_conf(primary, previous)
            if failed:
                raise OperationFailed(
                    f"{exc}; restoring postgresql.auto.conf failed too for "
                    + "; ".join(failed)) from exc
            raise
        if not previous:
            return StepResult(False, "all settings already in place")
        restart_needed.update(n for n in previous if current[n][0].context == "postmaster")
        changed_files.add("postgresql.auto.conf")
        return StepResult(True, "changed: " + ", ".join(previous))

    return Step(primary.name, StepKind.SETTING, "replication settings (ALTER SYSTEM)", detail,
                action=action, host=primary.host.name)


def _normalize_hba(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def hba_step(primary: Node, lines: Sequence[str], changed_files: set[str]) -> Step:
    """A step that appends to ``primary``'s ``pg_hba.conf`` (the file the server names) those
    of ``lines`` it lacks, compared without comments and spacing; when it appends, it adds
    ``pg_hba.conf`` to ``changed_files`` (for :func:`reload_step`)."""
    def action(report: Report) -> StepResult:
        path = Path(primary.show("hba_file"))
        existing = {tuple(_normalize_hba(x)) for x in primary.host.read_text(path).splitlines()}
        missing = [line for line in lines if tuple(_normalize_hba(line)) not in existing]
        if not missing:
            return StepResult(False, f"rule(s) already in {path}")
        try:
            primary.host.append_text(path, "".join(f"{line}\n" for line in missing),
                                     owner=primary.os_user)
        except OSError as exc:
            raise OperationFailed(f"cannot append to {path} on {primary.host.name}: {exc}") from exc
        changed_files.add("pg_hba.conf")
        return StepResult(True, f"appended {len(missing)} line(s) to {path}")

    return Step(primary.name, StepKind.HBA, "allow replication connections (pg_hba.conf)",
                "\n".join(lines), action=action, host=primary.host.name)


def role_step(primary: Primary, auth: ReplicationAuth) -> Step:
    """A step that creates the replication role, or grants it LOGIN REPLICATION and sets
    its password when the stored verifier does not match; the password reaches the server
    only as a verifier computed here, and the plan shows it masked."""
    masked = MASK if auth.password else None
    # Each statement the action may run, as it runs it (the verifier masked).
    shown = "\n".join([
        _text(queries.create_role(auth.user, masked)) + ";  -- if there is no such role",
        *([_text(queries.alter_role(auth.user, masked))
           + ";  -- if it exists with another password"] if masked else []),
        _text(queries.alter_role(auth.user)) + ";  -- if it exists without LOGIN REPLICATION"
        + (" (and this password)" if masked else ""),
        "(nothing if it exists with LOGIN REPLICATION"
        + (" and this password)" if masked else ")")])

    def verifier() -> str | None:
        if auth.password is None:
            return None
        algorithm = compat.verifier_algorithm(primary.version)
        return primary.connect().pgconn.encrypt_password(
            auth.password.reveal().encode(), auth.user.encode(), algorithm.encode()).decode()

    def action(report: Report) -> StepResult:
        rows = primary.query(*queries.role_state(auth.user))
        if not rows:
            primary.execute(queries.create_role(auth.user, verifier()))
            return StepResult(True, f"created role {auth.user}")
        replication, login, stored = rows[0]
        stale = auth.password is not None and not verifier_matches(
            stored, auth.password.reveal(), auth.user)
        if replication and login and not stale:
            return StepResult(False, f"role {auth.user} exists with LOGIN REPLICATION"
                              + (" and this password" if auth.password is not None else ""))
        primary.execute(queries.alter_role(auth.user, verifier() if stale else None))
        done = [] if replication and login else ["granted LOGIN REPLICATION"]
        done += ["set its password"] if stale else []
        return StepResult(True, f"role {auth.user} exists: " + " and ".join(done))

    return Step(primary.name, StepKind.ROLE, f"replication role {auth.user}", shown,
                action=action, host=primary.host.name)


def slot_step(primary: Node, slot: str) -> Step:
    """A step that creates the physical slot ``slot`` on ``primary`` unless it exists;
    its undo drops the slot it created (once no walsender holds it)."""
    created: list[str] = []
    statement, _params = queries.create_slot(primary.version, slot)

    def action(report: Report) -> StepResult:
        existing = primary.slot(slot)
        if existing is not None:
            return StepResult(False, f"slot {slot} exists"
                              + (" (active)" if existing.active else ""))
        primary.create_slot(slot)
        created.append(slot)
        return StepResult(True, f"created slot {slot}")

    def undo() -> None:
        if created:
            def released() -> bool:  # a killed clone's walsender may hold it a moment
                state = primary.slot(slot)
                return state is None or not state.active

            wait_for(released, timeout=10.0, what=f"slot {slot} on {primary.name} to be "
                     "released by its walsender, to drop it")
            if primary.slot(slot) is not None:
                primary.drop_slot(slot)
            created.clear()

    detail = queries.shown((statement, _params))
    return Step(primary.name, StepKind.SLOT, f"physical replication slot {slot}", detail,
                action=action, undo=undo, host=primary.host.name)


def reload_until(node: Node, in_effect: Callable[[], bool], *, timeout: float, what: str,
                 detail: Callable[[], str] | None = None,
                 reload: queries.Query | None = None) -> None:
    """``SELECT pg_reload_conf()`` on ``node``, then wait until ``in_effect()`` (a session
    applies a reloaded configuration at a command boundary, once the postmaster has passed it
    on): the one "ALTER SYSTEM, reload, wait" ending, for every step that changes a setting
    that a reload applies. ``reload`` is the statement the step printed (default
    :func:`~pgstream.render.queries.reload_conf`)."""
    node.execute(*(reload or queries.reload_conf()))
    wait_for(in_effect, timeout=timeout, what=what, detail=detail)


def reload_step(primary: Node, changed_files: set[str]) -> Step:
    """A step that reloads ``primary``'s configuration when ``changed_files`` is not empty,
    then (10+) refuses a ``pg_hba.conf`` with errors (:class:`~pgstream.errors.PgStreamError`)."""
    reload = queries.reload_conf()

    def action(report: Report) -> StepResult:
        if not changed_files:
            return StepResult(False, "no configuration file changed")
        primary.execute(*reload)
        if primary.version.adapter.supports("hba_file_rules"):
            errors = primary.query(*probes.hba_errors())
            if errors:
                found = "; ".join(f"line {n}: {e}" for n, e in errors)
                raise ServerStateError(f"{primary.name}'s pg_hba.conf has errors: {found}")
        reloaded = ", ".join(sorted(changed_files))
        changed_files.clear()
        return StepResult(True, f"reloaded ({reloaded} changed)")

    return Step(primary.name, StepKind.RELOAD, "reload the configuration, if a file changed",
                queries.shown(reload), action=action, host=primary.host.name)


def restart_step(primary: Primary, restart_needed: set[str]) -> Step:
    """A step that restarts ``primary`` through its service when a changed setting needs
    it (``restart_needed``); without a service it raises, naming the settings."""
    def action(report: Report) -> StepResult:
        if not restart_needed:
            return StepResult(False, "no changed setting needs a restart")
        if primary.service is None:
            raise ServerStateError(
                f"{primary.name} must be restarted for {', '.join(sorted(restart_needed))} to "
                "take effect, but pgstream does not control its service: restart it, then "
                "apply the plan again")
        primary.close()
        primary.service.restart()
        primary.wait_ready()
        names = ", ".join(sorted(restart_needed))
        restart_needed.clear()
        return StepResult(True, f"restarted for {names}")

    return Step(primary.name, StepKind.RESTART,
                "restart, only if a changed setting needs it (context 'postmaster')",
                (primary.service.describe("restart", "fast") if primary.service is not None
                 else "restart the server") + "  (skipped when nothing needs it)",
                action=action, host=primary.host.name)


def primary_setup_steps(primary: Primary, *, auth: ReplicationAuth, settings: Mapping[str, str],
                        hba_addresses: Sequence[str], slots: Sequence[str]) -> list[Step]:
    """Steps 1-5 of the seed for ``primary``; validates every input before returning."""
    renderer = ConfigRenderer(primary.version)
    method = auth.method or renderer.default_auth_method()
    hba_lines = list(dict.fromkeys(renderer.hba_line(auth.user, address, method)
                                   for address in hba_addresses))
    for slot in slots:
        identifiers.slot_name(slot)
    if len(set(slots)) != len(slots):
        raise SlotError(f"slot names repeat: {', '.join(slots)}")
    restart_needed: set[str] = set()
    changed_files: set[str] = set()
    steps = [settings_step(primary, settings, restart_needed, changed_files)]
    if hba_lines:
        steps.append(hba_step(primary, hba_lines, changed_files))
    steps.append(role_step(primary, auth))
    steps += [reload_step(primary, changed_files), restart_step(primary, restart_needed)]
    # Slots last: creating one needs wal_level >= replica in effect (after the restart).
    steps += [slot_step(primary, slot) for slot in slots]
    return steps
