"""Walsenders for clones: how many standbys an upstream can serve while they are cloned.

Each ``pg_basebackup -X stream`` takes two walsenders of its upstream while it runs (the base
backup and the WAL stream); the standby it made takes one once it streams. Cloning N standbys
at once needs ``2 N`` free senders; one after another, ``N + 1``. A :class:`SenderBudget` is
shared by the clone steps of one plan: it refuses, while the plan is built, an upstream whose
``max_wal_senders`` (as it will be when the clones run) cannot serve even one clone at a time,
and while the plan runs it lets only as many clones run at once as there are free senders.

Replication slots are counted the same way, while the plan is built: a :class:`SlotBudget`
collects the slots a plan will create on one server (those that do not exist yet) and refuses
the plan when they would not fit beside the slots already there in ``max_replication_slots``
(as it will be when they are created), so that no plan stops halfway at "all replication
slots are in use".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import attrs

from pgstream.errors import InvalidInput, OperationFailed
from pgstream.nodes.node import Node
from pgstream.render import queries

PER_CLONE = 2  # pg_basebackup -X stream: the backup and the WAL stream


def needed_senders(clones: int, in_use: int = 0) -> int:
    """``max_wal_senders`` needed to clone ``clones`` standbys one after another while
    ``in_use`` walsenders already run (each finished clone keeps one for its streaming)."""
    return in_use + (clones - 1 + PER_CLONE if clones > 0 else 0)


@attrs.define(eq=False)
class SenderBudget:
    """The walsenders of ``source`` that one plan's clones may use (see the module doc)."""

    source: Node
    planned: int = 0
    _free: int | None = attrs.field(default=None, init=False)
    _running: int = attrs.field(default=0, init=False)
    _cond: threading.Condition = attrs.field(factory=threading.Condition, init=False)

    def plan_clone(self) -> None:
        """One more standby will be cloned from ``source`` by this plan."""
        self.planned += 1

    def check(self, setting: str | int | None = None) -> None:
        """Raise :class:`InvalidInput` (nothing changed) when ``source`` could not serve the
        planned clones even one at a time. ``setting``: the ``max_wal_senders`` the plan will
        have set by then (None: the server's current value)."""
        if not self.planned:
            return
        current, in_use = self.source.query(*queries.walsenders())[0]
        try:
            limit = int(setting) if setting is not None else int(current)
        except ValueError:
            return  # an invalid value is refused where the settings are validated
        need = needed_senders(self.planned, int(in_use))
        if limit < need:
            raise InvalidInput(
                f"{self.source.name} has max_wal_senders = {limit} but cloning "
                f"{self.planned} standby(s) needs at least {need}: {in_use} walsender(s) run "
                f"now, each clone takes {PER_CLONE} while it runs and 1 once it streams; set "
                f"max_wal_senders to {need} or more (to clone all at once: "
                f"{int(in_use) + PER_CLONE * self.planned})")

    @contextmanager
    def clone(self, timeout: float) -> Iterator[None]:
        """Hold two walsenders for a clone, waiting (up to ``timeout``) while other clones of
        this plan use them; afterwards keep one for the standby's streaming."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._free is None:  # the first clone: nothing of this plan runs yet
                limit, in_use = self.source.query(*queries.walsenders())[0]
                self._free = int(limit) - int(in_use)
            while self._free < PER_CLONE:
                left = deadline - time.monotonic()
                if self._running == 0 or left <= 0:
                    raise OperationFailed(
                        f"no free walsender on {self.source.name} for a clone: it has "
                        f"{self._free} free and a clone needs {PER_CLONE}; raise "
                        "max_wal_senders")
                self._cond.wait(left)
            self._free -= PER_CLONE
            self._running += 1
        kept = 0
        try:
            yield
            kept = 1
        finally:
            with self._cond:
                self._running -= 1
                self._free += PER_CLONE - kept
                self._cond.notify_all()


@attrs.define(eq=False)
class SlotBudget:
    """The replication slots one plan will create on ``source`` (see the module doc)."""

    source: Node
    planned: list[str] = attrs.field(factory=list)

    def plan_slots(self, names: Iterable[str]) -> None:
        """The plan creates these slots on ``source`` (those that exist already are kept)."""
        self.planned = list(dict.fromkeys([*self.planned, *names]))

    def check(self, setting: str | int | None = None) -> None:
        """Raise :class:`InvalidInput` (nothing changed) when the slots the plan creates would
        not fit in ``source``'s ``max_replication_slots`` beside those existing now.
        ``setting``: the value the plan will have set by then (None: the server's current
        value)."""
        if not self.planned:
            return
        current, existing = self.source.query(*queries.replication_slots())[0]
        try:
            limit = int(setting) if setting is not None else int(current)
        except ValueError:
            return  # an invalid value is refused where the settings are validated
        there = {str(n) for n in existing or ()}
        new = [n for n in self.planned if n not in there]
        need = len(there) + len(new)
        if new and limit < need:
            raise InvalidInput(
                f"{self.source.name} has max_replication_slots = {limit} but this plan "
                f"needs at least {need}: {len(there)} slot(s) in use there now and it "
                f"creates {len(new)} more ({', '.join(new)}); set max_replication_slots to "
                f"{need} or more, or drop a slot that is no longer used")
