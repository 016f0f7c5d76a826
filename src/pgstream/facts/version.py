"""``ServerVersion``: a PostgreSQL version, parsed once, compared as an integer.

PostgreSQL's own ``server_version_num`` is the canonical form: ``90624`` is 9.6.24,
``150004`` is 15.4. Majors are ``9.6`` up to 9.x and a single number from 10 on.
"""

from __future__ import annotations

import re
from functools import cached_property

import attrs
from packaging.version import InvalidVersion, Version

from pgstream.errors import UnsupportedVersion
from pgstream.facts.capabilities import VersionAdapter

OLDEST_SUPPORTED = 90600
NEWEST_KNOWN_MAJOR = 18

# "15.4 (Debian 15.4-1.pgdg120+1)", "17beta1", "18devel", "9.6.24", "postgres (PostgreSQL) 15.18"
_TEXT = re.compile(
    r"^(?:postgres(?:ql)?\s*(?:\(PostgreSQL\)\s*)?)?"
    r"(?P<release>\d+(?:\.\d+){0,2})(?P<pre>(?:devel|alpha\d*|beta\d*|rc\d*))?(?:\s.*)?$",
    re.IGNORECASE,
)


def _num_from_release(release: str) -> int:
    try:
        parts = Version(release).release
    except InvalidVersion as exc:  # pragma: no cover - the regex only passes digits and dots
        raise UnsupportedVersion(f"cannot parse PostgreSQL version {release!r}") from exc
    major = parts[0]
    if major >= 10:
        minor = parts[1] if len(parts) > 1 else 0
        return major * 10000 + minor
    second = parts[1] if len(parts) > 1 else 0
    patch = parts[2] if len(parts) > 2 else 0
    return major * 10000 + second * 100 + patch


def _check_supported(num: int, shown: str) -> None:
    if num < OLDEST_SUPPORTED:
        raise UnsupportedVersion(
            f"PostgreSQL {shown} is not supported: pgstream needs 9.6 or newer "
            "(streaming replication with physical slots and the 'replica' wal_level)"
        )


@attrs.frozen(order=False, eq=False)
class ServerVersion:
    """A PostgreSQL server version. Compare, sort and hash by ``num``."""

    num: int
    text: str = attrs.field(default="", repr=False)

    @classmethod
    def parse(cls, value: str | int | ServerVersion) -> ServerVersion:
        """Parse ``"9.6"``, ``"15.4 (Debian ...)"``, ``"17beta1"``, ``"18devel"`` or ``150004``."""
        if isinstance(value, ServerVersion):
            return value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise UnsupportedVersion(f"not a PostgreSQL version: {value!r}")
        if isinstance(value, int):
            if value < 10000:
                raise UnsupportedVersion(
                    f"not a server_version_num: {value} (expected e.g. 90624 or 150004)"
                )
            _check_supported(value, _text_from_num(value))
            return cls(num=value, text=_text_from_num(value))
        text = value.strip()
        if text.isdigit() and len(text) >= 5:
            return cls.parse(int(text))
        match = _TEXT.match(text)
        if match is None:
            raise UnsupportedVersion(
                f"cannot parse PostgreSQL version {value!r}: expected something like "
                "'9.6.24', '15.4', '17beta1', '18devel' or a server_version_num such as 150004"
            )
        num = _num_from_release(match["release"])
        _check_supported(num, match["release"])
        return cls(num=num, text=text)

    @property
    def major_num(self) -> int:
        """The major as an integer in ``server_version_num`` units: 90600, 100000, 150000."""
        return self.num // 100 * 100 if self.num < 100000 else self.num // 10000 * 10000

    @property
    def major(self) -> str:
        """The major as PostgreSQL writes it: ``"9.6"``, ``"10"``, ``"15"``."""
        if self.num < 100000:
            return f"{self.num // 10000}.{self.num // 100 % 100}"
        return str(self.num // 10000)

    @property
    def minor(self) -> int:
        """The minor release: 24 for 9.6.24, 4 for 15.4."""
        return self.num % 100 if self.num < 100000 else self.num % 10000

    def at_least(self, other: str | int | ServerVersion) -> bool:
        """``at_least(12)``, ``at_least("9.6")``, ``at_least(150004)``: is this version >= that?"""
        return self.num >= _as_num(other)

    @cached_property
    def adapter(self) -> VersionAdapter:
        """Names, files and settings of this major (see :mod:`pgstream.facts.capabilities`)."""
        return VersionAdapter(self)

    def __str__(self) -> str:
        return self.text or _text_from_num(self.num)

    def __repr__(self) -> str:
        return f"ServerVersion({_text_from_num(self.num)!r})"

    def __hash__(self) -> int:
        return hash(self.num)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ServerVersion):
            return self.num == other.num
        return NotImplemented

    def __lt__(self, other: ServerVersion) -> bool:
        if not isinstance(other, ServerVersion):
            return NotImplemented
        return self.num < other.num

    def __le__(self, other: ServerVersion) -> bool:
        if not isinstance(other, ServerVersion):
            return NotImplemented
        return self.num <= other.num

    def __gt__(self, other: ServerVersion) -> bool:
        if not isinstance(other, ServerVersion):
            return NotImplemented
        return self.num > other.num

    def __ge__(self, other: ServerVersion) -> bool:
        if not isinstance(other, ServerVersion):
            return NotImplemented
        return self.num >= other.num


def _text_from_num(num: int) -> str:
    if num < 100000:
        return f"{num // 10000}.{num // 100 % 100}.{num % 100}"
    return f"{num // 10000}.{num % 10000}"


def _as_num(value: str | int | ServerVersion) -> int:
    """A major or version as a ``server_version_num`` lower bound: 12 -> 120000, "9.6" -> 90600."""
    if isinstance(value, ServerVersion):
        return value.num
    if isinstance(value, int) and not isinstance(value, bool):
        if 9 < value <= 99:
            return value * 10000
        if value >= 10000:
            return value
        raise UnsupportedVersion(f"not a PostgreSQL major or version number: {value}")
    if isinstance(value, str):
        match = _TEXT.match(value.strip())
        if match is None:
            raise UnsupportedVersion(f"cannot parse PostgreSQL version {value!r}")
        return _num_from_release(match["release"])
    raise UnsupportedVersion(f"not a PostgreSQL version: {value!r}")


def major_num(value: str | int | ServerVersion) -> int:
    """Public form of the lower bound used by :meth:`ServerVersion.at_least`."""
    return _as_num(value)


def known_majors() -> list[ServerVersion]:
    """The majors the version table describes, oldest first: 9.6, 10, ..., 18."""
    majors = ("9.6", *map(str, range(10, NEWEST_KNOWN_MAJOR + 1)))
    return [ServerVersion(major_num(m)) for m in majors]
