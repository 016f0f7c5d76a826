"""How a primary is prepared to serve standbys: the seed's steps 1 to 5, as plan steps.

1. settings (``ALTER SYSTEM``, only those that differ), 2. the ``pg_hba.conf`` replication line
(appended only when no equal rule exists), 3. the replication role (created once, its password
sent as a client-computed SCRAM verifier), 5. a reload, and a restart only when a changed
setting needs one (``pg_settings.context = 'postmaster'``), then 4. one physical slot per
standby: the seed creates slots before its restart, but a slot needs ``wal_level >= replica``
in effect, so pgstream creates them after it. Applying twice changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs
from psycopg import sql

from pgstream.errors import InvalidInput, PgStreamError, SlotError
from pgstream.facts import identifiers
from pgstream.facts.identifiers import MASK, Secret
from pgstream.facts.passwords import verifier_matches
from pgstream.hosts.wait import wait_for
from pgstream.nodes.node import Node, Primary
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.render import queries
from pgstream.render.config import ConfigRenderer


@attrs.frozen
class ReplicationAuth:
    """Who standbys connect as, and how (the seed's ``<replicationuser>`` and method)."""

    user: str = attrs.field(default="replicator",
                            validator=lambda _i, _a, v: identifiers.role_name(v))
    password: Secret | None = attrs.field(default=None, converter=identifiers.as_secret)
    method: str | None = None  # None: scram-sha-256 (md5 on 9.6)


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)


def settings_step(primary: Primary, settings: Mapping[str, str],
                  restart_needed: set[str], changed_files: set[str]) -> Step:
    names = list(settings)
    detail = "\n".join(_text(queries.alter_system(n, v)) + ";" for n, v in settings.items())

    def current_values() -> dict[str, tuple[str, str]]:
        rows = primary.query(*queries.settings_values(names))
        current = {name: (setting, context) for name, setting, context, _pending in rows}
        unknown = [n for n in names if n not in current]
        if unknown:
            raise InvalidInput(f"{primary.name} has no setting(s) {', '.join(unknown)} "
                               f"(PostgreSQL {primary.version.major})")
        return current

    current_values()  # unknown names fail now, while the plan is built

    def action(report: Report) -> StepResult:
        current = current_values()
        changed = []
        for name, value in settings.items():
            setting, context = current[name]
            if str(setting) == value:
                continue
            primary.execute(queries.alter_system(name, value))
            changed.append(name)
            if context == "postmaster":
                restart_needed.add(name)
        if not changed:
            return StepResult(False, "all settings already in place")
        changed_files.add("postgresql.auto.conf")
        return StepResult(True, "changed: " + ", ".join(changed))

    return Step(primary.name, StepKind.SETTING, "replication settings (ALTER SYSTEM)", detail,
                action=action, host=primary.host.name)


def _normalize_hba(line: str) -> list[str]:
    return line.split("#", 1)[0].split()


def hba_step(primary: Node, lines: Sequence[str], changed_files: set[str]) -> Step:
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
            raise PgStreamError(f"cannot append to {path} on {primary.host.name}: {exc}") from exc
        changed_files.add("pg_hba.conf")
        return StepResult(True, f"appended {len(missing)} line(s) to {path}")

    return Step(primary.name, StepKind.HBA, "allow replication connections (pg_hba.conf)",
                "\n".join(lines), action=action, host=primary.host.name)


def role_step(primary: Primary, auth: ReplicationAuth) -> Step:
    shown = _text(queries.create_role(auth.user, MASK if auth.password else None))

    def verifier() -> str | None:
        if auth.password is None:
            return None
        algorithm = "scram-sha-256" if primary.version.adapter.supports("scram") else "md5"
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

    return Step(primary.name, StepKind.ROLE, f"replication role {auth.user}", shown + ";",
                action=action, host=primary.host.name)


def slot_step(primary: Node, slot: str) -> Step:
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


def reload_step(primary: Primary, changed_files: set[str]) -> Step:
    def action(report: Report) -> StepResult:
        if not changed_files:
            return StepResult(False, "no configuration file changed")
        primary.execute(queries.reload_conf()[0])
        if primary.version.adapter.supports("hba_file_rules"):
            errors = primary.query("SELECT line_number, error FROM pg_hba_file_rules "
                                   "WHERE error IS NOT NULL")
            if errors:
                found = "; ".join(f"line {n}: {e}" for n, e in errors)
                raise PgStreamError(f"{primary.name}'s pg_hba.conf has errors: {found}")
        reloaded = ", ".join(sorted(changed_files))
        changed_files.clear()
        return StepResult(True, f"reloaded ({reloaded} changed)")

    return Step(primary.name, StepKind.RELOAD, "reload the configuration, if a file changed",
                "SELECT pg_reload_conf();", action=action, host=primary.host.name)


def restart_step(primary: Primary, restart_needed: set[str]) -> Step:
    def action(report: Report) -> StepResult:
        if not restart_needed:
            return StepResult(False, "no changed setting needs a restart")
        if primary.service is None:
            raise PgStreamError(
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
