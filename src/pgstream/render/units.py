"""Numbers as people read them: bytes like ``pg_size_pretty`` (kB, MB, GB), lags in ms, s, min,
h, and inactive durations as ``H:MM:SS``. One copy for every table, report and view."""

from __future__ import annotations

import datetime as dt


def pretty_duration(value: dt.timedelta | None) -> str:
    """Whole seconds, as ``H:MM:SS`` (``1 day, 2:03:04`` past a day); ``-`` for None."""
    if value is None:
        return "-"
    return str(dt.timedelta(seconds=int(value.total_seconds())))


def human_bytes(value: int | None) -> str:
    """``512 B``, ``1.5 kB``, ``16.0 MB``, ``2.0 GB`` (1024-based, as pg_size_pretty); ``-``."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    amount = float(abs(value))
    if amount < 1024:
        return f"{sign}{int(amount)} B"
    units = ("kB", "MB", "GB", "TB")
    index = 0
    amount /= 1024
    while amount >= 1024 and index < len(units) - 1:
        amount /= 1024
        index += 1
    return f"{sign}{amount:.1f} {units[index]}"


def human_seconds(value: float | None) -> str:
    """``0 ms``, ``850 ms``, ``3.2 s``, ``2 min 5 s``, ``1 h 2 min``; ``-`` for None."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    seconds = abs(value)
    if seconds < 1:
        return f"{sign}{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{sign}{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{sign}{whole // 60} min {whole % 60} s"
    return f"{sign}{whole // 3600} h {whole % 3600 // 60} min"
