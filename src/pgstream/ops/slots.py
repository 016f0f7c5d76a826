"""Slot hygiene: which physical slots hold WAL back, for how long, and what to do about them.

- :func:`~pgstream.ops.slot_report.slot_report` (in its own module) lists every physical
  slot with the WAL it retains and flags the inactive ones past a threshold.
- :func:`drop_inactive_slots_plan` drops inactive slots only, re-checking at apply time.
- :func:`advance_slot` moves a slot forward with ``pg_replication_slot_advance`` (11+).
- :func:`slot_wal_limit_plan` caps the WAL any slot may hold: ``max_slot_wal_keep_size`` (13+).

Every version-dependent name comes from the node's
:class:`~pgstream.facts.capabilities.VersionAdapter`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from psycopg import errors as pg_errors
from psycopg import sql

from pgstream.errors import (
    InvalidInput,
    PgStreamError,
    QueryError,
    SlotError,
    SlotInUse,
    SlotNotFound,
)
from pgstream.facts import identifiers
from pgstream.facts.lsn import Lsn
from pgstream.nodes.node import Node
from pgstream.nodes.slot import SlotStatus
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult
from pgstream.ops.setup import reload_until
from pgstream.ops.slot_report import _check_bytes, _require
from pgstream.render import probes, queries
from pgstream.render.units import human_bytes

MAX_SETTING_MB = 2**31 - 1  # max_slot_wal_keep_size is an int GUC in MB
RELOAD_TIMEOUT = 10.0


def _mb(value: int) -> str:
    return "-1 (unlimited)" if value == -1 else f"{value}MB"


def _text(statement: sql.Composable) -> str:
    return statement.as_string(None)


# -- dropping inactive slots --------------------------------------------------------------------

def _why_kept(status: SlotStatus, min_retained_bytes: int | None) -> str | None:
    if status.active:
        return f"active, walsender pid {status.active_pid}"
    if min_retained_bytes is not None and (status.retained_bytes is None
                                           or status.retained_bytes < min_retained_bytes):
        return (f"holds {human_bytes(status.retained_bytes)} of WAL, under "
                f"{human_bytes(min_retained_bytes)}")
    return None


def drop_inactive_slots_plan(node: Node, names: Iterable[str] | None = None, *,
                             min_retained_bytes: int | None = None) -> Plan:
    """A plan that drops inactive physical slots on ``node`` (the seed's step 14, in bulk).

    ``names`` None: every inactive slot; given: exactly those, and an active one among them
    raises :class:`SlotInUse` (a missing one :class:`SlotNotFound`) before anything is done.
    ``min_retained_bytes`` keeps slots holding less WAL than that. At apply time a first
    step re-checks that every slot is still inactive (nothing is dropped otherwise), and each
    drop re-checks its slot, since a standby may connect in between.
    """
    _check_bytes(min_retained_bytes)
    wanted = None if names is None else list(dict.fromkeys(
        identifiers.slot_name(n) for n in ([names] if isinstance(names, str) else names)))
    current = {s.name: s for s in node.slots()}
    if wanted is not None:
        missing = [n for n in wanted if n not in current]
        if missing:
            raise SlotNotFound(f"no physical replication slot(s) {', '.join(missing)} on "
                               f"{node.name}")
        active = [f"{n} (walsender pid {current[n].active_pid})"
                  for n in wanted if current[n].active]
        if active:
            raise SlotInUse(f"refusing to drop active replication slot(s) on {node.name}: "
                            f"{', '.join(active)}; stop or re-point the standby using it "
                            "first. Nothing was dropped")
    considered = [current[n] for n in (wanted if wanted is not None else current)]
    targets = [s for s in considered if _why_kept(s, min_retained_bytes) is None]
    kept = [(s.name, why) for s in considered
            if (why := _why_kept(s, min_retained_bytes)) is not None]
    host = node.host.name
    lines = [f"{s.name}: inactive, holds {human_bytes(s.retained_bytes)} of WAL"
             for s in targets] or ["(no slot to drop)"]
    lines += [f"keep {name}: {why}" for name, why in kept]
    steps = [Step(node.name, StepKind.CHECK, "every slot to drop is still inactive",
                  "\n".join(lines), action=_recheck_action(node, [s.name for s in targets]),
                  host=host)]
    steps += [_drop_step(node, s) for s in targets]
    shown = ", ".join(s.name for s in targets) or "none"
    return Plan(f"drop inactive replication slots on {node.name}: {shown}", steps)


def _recheck_action(node: Node, names: list[str]) -> Callable[[Report], StepResult]:
    def action(report: Report) -> StepResult:
        active, gone = [], []
        for name in names:
            state = node.slot(name)
            if state is None:
                gone.append(name)
            elif state.active:
                active.append(f"{name} (walsender pid {state.active_pid})")
        if active:
            raise SlotInUse(f"replication slot(s) on {node.name} became active since the plan "
                            f"was made: {', '.join(active)}. Nothing was dropped")
        message = f"{len(names) - len(gone)} slot(s) still inactive"
        if gone:
            message += f"; already gone: {', '.join(gone)}"
        return StepResult(False, message)

    return action


def _drop_step(node: Node, status: SlotStatus) -> Step:
    name = status.name
    statement, _params = queries.drop_slot(node.version, name)
    detail = _text(statement).replace("%s", _text(sql.Literal(name))) + ";"

    def action(report: Report) -> StepResult:
        state = node.slot(name)
        if state is None:
            return StepResult(False, f"slot {name} is already gone")
        if state.active:
            raise SlotInUse(f"replication slot {name!r} on {node.name} became active (walsender "
                            f"pid {state.active_pid}) since the plan was made: not dropped")
        try:
            node.drop_slot(name)
        except SlotNotFound:
            return StepResult(False, f"slot {name} is already gone")
        return StepResult(True, f"dropped {name} (it held "
                                f"{human_bytes(state.retained_bytes)} of WAL)")

    return Step(node.name, StepKind.SLOT, f"drop inactive slot {name}", detail, action=action,
                host=node.host.name)


# -- advancing a slot ---------------------------------------------------------------------------

def _position(node: Node) -> Lsn:
    """Where a slot can be advanced to: current WAL (primary) or replayed WAL (standby)."""
    built = queries.replay_lsn(node.version) if node.in_recovery else \
        queries.current_lsn(node.version)
    value = node.value(built)
    if value is None:
        raise SlotError(f"{node.name} reports no WAL position to advance a slot to")
    return Lsn.parse(value)


def advance_slot(node: Node, name: str, to: Lsn | str | None = None) -> Lsn:
    """Move inactive slot ``name`` forward with ``pg_replication_slot_advance`` (11+).

    ``to`` defaults to the node's current WAL position (``pg_current_wal_lsn()``; on a
    standby, ``pg_last_wal_replay_lsn()``); PostgreSQL caps a later target there. Returns the
    slot's new position. The WAL it no longer needs is freed at the next checkpoint.
    Raises :class:`NotAvailable` before 11, :class:`SlotNotFound`, :class:`SlotInUse` for an
    active slot, :class:`SlotError` for one without WAL (lost or never reserved) and
    :class:`InvalidInput` for a target behind the slot (slots never move back).
    """
    identifiers.slot_name(name)
    _require(node, "slot_advance", f"advance slot {name} (pg_replication_slot_advance)")
    target = None if to is None else Lsn.parse(to)
    if target is not None and target.value == 0:
        raise InvalidInput(f"cannot advance slot {name!r} to {target}: not a WAL position")
    state = node.slot(name)
    if state is None:
        raise SlotNotFound(f"no physical replication slot {name!r} on {node.name}")
    if state.active:
        raise SlotInUse(f"replication slot {name!r} on {node.name} is active (walsender pid "
                        f"{state.active_pid}): only an inactive slot can be advanced")
    if state.restart_lsn is None:
        why = ("its WAL was removed (wal_status lost): drop it and re-clone the standby"
               if state.wal_status == "lost" else "it has not reserved WAL yet")
        raise SlotError(f"replication slot {name!r} on {node.name} cannot be advanced: {why}")
    if target is None:
        target = _position(node)
    if target < state.restart_lsn:
        raise InvalidInput(f"cannot move replication slot {name!r} back to {target}: it is "
                           f"at {state.restart_lsn} (slots only move forward)")
    try:
        end = node.value(queries.advance_slot(node.version, name, str(target)))
    except QueryError as exc:
        mapped = _advance_error(exc, node, name)
        if mapped is None:
            raise
        raise mapped from None
    return Lsn.parse(end)


def _advance_error(exc: QueryError, node: Node, name: str) -> PgStreamError | None:
    cause = str(exc.__cause__ or exc).strip()
    where = f"replication slot {name!r} on {node.name}"
    if exc.sqlstate == pg_errors.ObjectInUse.sqlstate:
        return SlotInUse(f"{where} became active while advancing it: {cause}")
    if exc.sqlstate == pg_errors.UndefinedObject.sqlstate:
        return SlotNotFound(f"{where} was dropped while advancing it")
    if exc.sqlstate == pg_errors.InvalidParameterValue.sqlstate:
        return InvalidInput(f"cannot advance {where}: {cause}")
    if exc.sqlstate == pg_errors.ObjectNotInPrerequisiteState.sqlstate:
        return SlotError(f"cannot advance {where}: {cause}")
    return None


# -- max_slot_wal_keep_size ---------------------------------------------------------------------

def slot_wal_limit_plan(primary: Node, max_slot_wal_keep_size_mb: int) -> Plan:
    """A plan that caps the WAL any slot may hold: ``max_slot_wal_keep_size`` (13+), in MB.

    ``-1`` removes the cap. ``ALTER SYSTEM`` only when the value differs, then a reload (it
    is a sighup setting) that waits until the server uses the new value; applying it again
    changes nothing. A slot past the cap loses its WAL at the next checkpoint (``lost``).
    """
    value = max_slot_wal_keep_size_mb
    if isinstance(value, bool) or not isinstance(value, int) or not (
            -1 <= value <= MAX_SETTING_MB):
        raise InvalidInput(f"max_slot_wal_keep_size_mb must be -1 (unlimited) or a size in MB "
                           f"from 0 to {MAX_SETTING_MB}, not {value!r}")
    _require(primary, "slot_wal_limit", "limit the WAL slots hold (max_slot_wal_keep_size)")
    name = primary.version.adapter.setting("max_slot_wal_keep_size")
    literal = "-1" if value == -1 else f"{value}MB"
    changed: list[bool] = []

    def current() -> tuple[int, str, str | None]:
        rows = primary.query(*probes.setting_source(name))
        if not rows:
            raise InvalidInput(f"{primary.name} has no setting {name} "
                               f"(PostgreSQL {primary.version.major})")
        setting, source, sourcefile = rows[0]
        return int(setting), str(source), sourcefile

    def set_value(report: Report) -> StepResult:
        now = current()[0]
        if now == value:
            return StepResult(False, f"{name} is already {_mb(value)}")
        primary.execute(queries.alter_system(name, literal))
        changed.append(True)
        return StepResult(True, f"{name}: {_mb(now)} -> {_mb(value)} (postgresql.auto.conf)")

    def reload(report: Report) -> StepResult:
        if not changed:
            return StepResult(False, "no setting changed")
        def seen() -> str:
            now, source, sourcefile = current()
            where = f"{source}, {sourcefile}" if sourcefile else source
            return f"{name} = {_mb(now)} (source: {where})"

        reload_until(primary, lambda: current()[0] == value, timeout=RELOAD_TIMEOUT,
                     what=f"{primary.name} to use {name} = {_mb(value)} after the reload "
                          "(a command-line -c setting would override postgresql.auto.conf)",
                     detail=seen)
        changed.clear()
        return StepResult(True, f"reloaded; {name} is now {_mb(value)}")

    host = primary.host.name
    steps = [
        Step(primary.name, StepKind.SETTING, f"{name} = {_mb(value)} (WAL a slot may hold)",
             _text(queries.alter_system(name, literal)) + ";", action=set_value, host=host),
        Step(primary.name, StepKind.RELOAD, f"reload the configuration ({name} is sighup)",
             _text(queries.reload_conf()[0]) + ";", action=reload, host=host),
    ]
    return Plan(f"limit WAL held by replication slots on {primary.name}: "
                f"{name} = {_mb(value)}", steps)
