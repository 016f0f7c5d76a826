"""``Lsn``: a WAL position, as PostgreSQL prints it (``0/3006D00``) and as a byte offset."""

from __future__ import annotations

import re

import attrs

from pgstream.errors import InvalidInput

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


@attrs.frozen(order=True)
class Lsn:
    """A log sequence number. ``Lsn.parse("0/3006D00")``; ``a - b`` is a byte distance."""

    value: int

    @classmethod
    def parse(cls, text: str | Lsn) -> Lsn:
        """``"0/3000060"`` (or an int, or an Lsn) as an :class:`Lsn`; raises :class:`InvalidInput`.
        """
        if isinstance(text, Lsn):
            return text
        match = _LSN.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise InvalidInput(f"not a WAL position (LSN): {text!r}; expected e.g. '0/3006D00'")
        return cls(int(match[1], 16) << 32 | int(match[2], 16))

    @classmethod
    def maybe(cls, text: str | None) -> Lsn | None:
        """Like :meth:`parse`, with None for None (a column that is NULL)."""
        return None if text is None else cls.parse(text)

    def __sub__(self, other: Lsn) -> int:
        return self.value - other.value

    def __str__(self) -> str:
        return f"{self.value >> 32:X}/{self.value & 0xFFFFFFFF:X}"

    def __repr__(self) -> str:
        return f"Lsn('{self}')"
