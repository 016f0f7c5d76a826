"""Numbers as people read them: bytes like ``pg_size_pretty``, durations as ``H:MM:SS``."""

from __future__ import annotations

import datetime as dt


def pretty_bytes(value: int | None) -> str:
    """Like ``pg_size_pretty``: ``512 bytes``, ``1.5 kB``, ``16.0 MB`` (1024-based); ``-``."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    amount = float(abs(value))
    if amount < 1024:
        return f"{sign}{int(amount)} bytes"
    for unit in ("kB", "MB", "GB", "TB"):
        amount /= 1024
        if amount < 1024 or unit == "TB":
            break
    return f"{sign}{amount:.1f} {unit}"


def pretty_duration(value: dt.timedelta | None) -> str:
    """Whole seconds, as ``H:MM:SS`` (``1 day, 2:03:04`` past a day); ``-`` for None."""
    if value is None:
        return "-"
    return str(dt.timedelta(seconds=int(value.total_seconds())))
