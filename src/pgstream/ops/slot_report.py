"""Which physical slots hold WAL back, for how long: :func:`slot_report` and its values.

The report lists every physical slot with the WAL it retains (bytes), its
``wal_status``/``safe_wal_size`` (13+) and how long it has been inactive (17+), and flags the
inactive ones that hold at least ``min_retained_bytes`` or have been inactive for at least
``min_inactive``. What to do about them is in :mod:`pgstream.ops.slots`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import attrs

from pgstream.errors import InvalidInput, NotAvailable, SlotNotFound
from pgstream.nodes.node import Node
from pgstream.nodes.slot import SlotStatus
from pgstream.render import probes
from pgstream.render.units import human_bytes, pretty_duration


def _check_bytes(value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or value < 0):
        raise InvalidInput(f"min_retained_bytes must be a non-negative integer (bytes), "
                           f"not {value!r}")
    return value


def _check_duration(value: dt.timedelta | None) -> dt.timedelta | None:
    if value is not None and (not isinstance(value, dt.timedelta)
                              or value < dt.timedelta(0)):
        raise InvalidInput(f"min_inactive must be a non-negative datetime.timedelta, "
                           f"not {value!r}")
    return value


def _require(node: Node, feature: str, what: str, hint: str = "") -> None:
    """The adapter's NotAvailable, saying what the caller asked for (and what to do)."""
    try:
        node.version.adapter.require(feature)
    except NotAvailable as exc:
        raise NotAvailable(f"cannot {what} on {node.name}: {exc}{hint}", name=exc.name,
                           since=exc.since) from None


@attrs.frozen
class SlotFinding:
    """One physical slot, how long it has been inactive, and why it was flagged (if it was).

    ``inactive_for`` is the server's clock minus ``inactive_since`` (17+; None before, and for
    active slots). ``reasons`` is empty for a slot that is not flagged; only inactive slots
    are flagged.
    """

    status: SlotStatus
    inactive_for: dt.timedelta | None = None
    reasons: tuple[str, ...] = ()

    @classmethod
    def of(cls, status: SlotStatus, *, now: dt.datetime | None,
           min_retained_bytes: int | None = None,
           min_inactive: dt.timedelta | None = None) -> SlotFinding:
        """Judge one slot against the thresholds (either one matching flags it)."""
        inactive_for = None
        if not status.active and status.inactive_since is not None and now is not None:
            inactive_for = max(dt.timedelta(0), now - status.inactive_since)
        reasons: list[str] = []
        if not status.active:
            if (min_retained_bytes is not None and status.retained_bytes is not None
                    and status.retained_bytes >= min_retained_bytes):
                reasons.append(f"holds {human_bytes(status.retained_bytes)} of WAL "
                               f"(threshold {human_bytes(min_retained_bytes)})")
            if (min_inactive is not None and inactive_for is not None
                    and inactive_for >= min_inactive):
                reasons.append(f"inactive for {pretty_duration(inactive_for)} "
                               f"(threshold {pretty_duration(min_inactive)})")
        return cls(status, inactive_for, tuple(reasons))

    @property
    def name(self) -> str:
        """The slot's name."""
        return self.status.name

    @property
    def flagged(self) -> bool:
        """Was it flagged (inactive and past a threshold)?"""
        return bool(self.reasons)

    def __str__(self) -> str:
        status = self.status
        parts = ["active" if status.active else "inactive",
                 f"holds {human_bytes(status.retained_bytes)} of WAL"]
        if status.restart_lsn is not None:
            parts.append(f"restart_lsn {status.restart_lsn}")
        if status.wal_status is not None:
            parts.append(f"wal_status {status.wal_status}")
        if status.safe_wal_size is not None:
            parts.append(f"safe_wal_size {human_bytes(status.safe_wal_size)}")
        if self.inactive_for is not None:
            parts.append(f"inactive for {pretty_duration(self.inactive_for)}")
        text = f"{status.name}: " + ", ".join(parts)
        if self.reasons:
            text += "; flagged: " + "; ".join(self.reasons)
        return text

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        data = self.status.to_dict()
        data["inactive_for_seconds"] = (None if self.inactive_for is None
                                        else self.inactive_for.total_seconds())
        data["flagged"] = self.flagged
        data["reasons"] = list(self.reasons)
        return data


_COLUMNS = ("slot", "active", "retained", "wal_status", "safe_wal_size", "inactive for",
            "flagged")


@attrs.frozen
class SlotReport:
    """The physical slots of one node at one moment (``taken_at``: the server's clock)."""

    node: str
    version: str
    taken_at: dt.datetime
    findings: tuple[SlotFinding, ...]
    min_retained_bytes: int | None = None
    min_inactive: dt.timedelta | None = None

    @property
    def flagged(self) -> tuple[SlotFinding, ...]:
        """The flagged findings."""
        return tuple(f for f in self.findings if f.flagged)

    def finding(self, name: str) -> SlotFinding:
        """The finding of slot ``name`` (raises :class:`SlotNotFound`)."""
        for item in self.findings:
            if item.name == name:
                return item
        raise SlotNotFound(f"no physical replication slot {name!r} on {self.node}")

    def __iter__(self) -> Iterator[SlotFinding]:
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def rows(self) -> list[list[str]]:
        """The text table's rows, one per slot."""
        return [[f.name, "t" if f.status.active else "f", human_bytes(f.status.retained_bytes),
                 f.status.wal_status or "-", human_bytes(f.status.safe_wal_size),
                 pretty_duration(f.inactive_for), "yes" if f.flagged else ""]
                for f in self.findings]

    def __str__(self) -> str:
        limits = []
        if self.min_retained_bytes is not None:
            limits.append(f"retained >= {human_bytes(self.min_retained_bytes)}")
        if self.min_inactive is not None:
            limits.append(f"inactive >= {pretty_duration(self.min_inactive)}")
        flag_rule = (" or ".join(limits) if limits else "no thresholds given")
        head = (f"physical slots on {self.node} (PostgreSQL {self.version}) at "
                f"{self.taken_at.isoformat(timespec='seconds')}: {len(self.findings)} slot(s), "
                f"{len(self.flagged)} flagged ({flag_rule})")
        rows = self.rows()
        if not rows:
            return head + "\n(no physical replication slots)"
        widths = [max(len(title), *(len(r[i]) for r in rows))
                  for i, title in enumerate(_COLUMNS)]
        out = [head, "  ".join(t.ljust(w) for t, w in zip(_COLUMNS, widths, strict=True)).rstrip(),
               "  ".join("-" * w for w in widths)]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]
        out += [f"flagged {f.name}: " + "; ".join(f.reasons) for f in self.flagged]
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "node": self.node,
            "version": self.version,
            "taken_at": self.taken_at.isoformat(),
            "min_retained_bytes": self.min_retained_bytes,
            "min_inactive_seconds": (None if self.min_inactive is None
                                     else self.min_inactive.total_seconds()),
            "slots": [f.to_dict() for f in self.findings],
            "flagged": [f.name for f in self.flagged],
        }


def slot_report(node: Node, *, min_retained_bytes: int | None = None,
                min_inactive: dt.timedelta | None = None) -> SlotReport:
    """Every physical slot on ``node``; inactive ones at or past a threshold are flagged.

    ``min_retained_bytes``: flag an inactive slot holding at least that much WAL.
    ``min_inactive``: flag a slot inactive for at least that long; it needs
    ``pg_replication_slots.inactive_since`` (17+) and raises :class:`NotAvailable` before.
    With both, either one flags a slot. ``wal_status``/``safe_wal_size`` are None before 13.
    """
    _check_bytes(min_retained_bytes)
    _check_duration(min_inactive)
    if min_inactive is not None:
        _require(node, "slot_inactive_since",
                 "flag slots by inactive time (pg_replication_slots.inactive_since)",
                 "; flag them by WAL held (min_retained_bytes) instead")
    statuses = node.slots()
    now = node.value(probes.server_clock())
    findings = tuple(SlotFinding.of(s, now=now, min_retained_bytes=min_retained_bytes,
                                    min_inactive=min_inactive) for s in statuses)
    return SlotReport(node.name, node.version.major, now, findings,
                      min_retained_bytes=min_retained_bytes, min_inactive=min_inactive)
