"""Physical replication slots: the name (a validated value) and a slot's observed state."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import attrs

from pgstream.facts import identifiers
from pgstream.facts.lsn import Lsn


@attrs.frozen
class ReplicationSlot:
    """A physical replication slot, by name. The name is checked on construction."""

    name: str = attrs.field(validator=lambda _i, _a, v: identifiers.slot_name(v))

    def __str__(self) -> str:
        return self.name


@attrs.frozen
class SlotStatus:
    """One row of ``pg_replication_slots`` (physical), with the WAL it holds back in bytes.

    ``wal_status``/``safe_wal_size`` exist from 13, ``inactive_since`` and
    ``invalidation_reason`` from 17: None before.
    """

    name: str
    active: bool
    active_pid: int | None
    restart_lsn: Lsn | None
    retained_bytes: int | None
    wal_status: str | None = None
    safe_wal_size: int | None = None
    inactive_since: dt.datetime | None = None
    temporary: bool | None = None
    invalidation_reason: str | None = None  # 17+: wal_removed, idle_timeout (18), ...

    @property
    def slot(self) -> ReplicationSlot:
        """The slot as a :class:`ReplicationSlot` handle."""
        return ReplicationSlot(self.name)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict of every field."""
        data = attrs.asdict(self)
        data["restart_lsn"] = None if self.restart_lsn is None else str(self.restart_lsn)
        if self.inactive_since is not None:
            data["inactive_since"] = self.inactive_since.isoformat()
        return data


def slot_status_of(row: Sequence[Any]) -> SlotStatus:
    """A row of :func:`~pgstream.render.queries.slot_status` as a :class:`SlotStatus`."""
    name, active, pid, restart, retained, wal_status, safe, inactive, temporary, reason = row
    return SlotStatus(name=name, active=bool(active), active_pid=pid,
                      restart_lsn=Lsn.maybe(restart), retained_bytes=retained,
                      wal_status=wal_status, safe_wal_size=safe, inactive_since=inactive,
                      temporary=temporary, invalidation_reason=reason)
