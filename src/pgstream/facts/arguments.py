"""Numeric arguments of the operations, checked before anything changes.

A timeout of ``-1``, ``0``, ``nan`` or ``"x"`` would otherwise reach a wait deep inside a plan,
after a server was stopped; a byte bound of ``"x"`` would fail as a bare ``TypeError``. Each
check returns the value as the type the operations use, or raises
:class:`~pgstream.errors.InvalidInput` naming the argument and what it accepts.
"""

from __future__ import annotations

import math

from pgstream.errors import InvalidInput


def timeout(value: object, name: str = "timeout") -> float:
    """A positive, finite number of seconds (``int`` or ``float``, not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a positive number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(f"{name} must be a positive, finite number of seconds, "
                           f"not {value!r}")
    return seconds


def byte_count(value: object, name: str) -> int:
    """A whole number of bytes, zero or more (``int``, not ``bool``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be a whole number of bytes (0 or more), not {value!r}")
    if value < 0:
        raise InvalidInput(f"{name} must be 0 or more bytes, not {value}")
    return value


def flag(value: object, name: str) -> bool:
    """``True`` or ``False`` (not a truthy string such as ``"no"``)."""
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False, not {value!r}")
    return value
