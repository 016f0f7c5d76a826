"""Validation of the names and addresses users hand to pgstream, and the ``Secret`` wrapper.

Everything here is pure: it runs before anything is changed, so bad input fails early
with an error that says what a valid value looks like.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from pgstream.errors import InvalidAddress, InvalidInput, InvalidName

_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_APP = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_OS_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,30}[a-z0-9_$-]?$")
# Words pg_hba.conf reads as keywords in the user column, and role names PostgreSQL reserves.
_HBA_KEYWORDS = frozenset({"all", "replication", "sameuser", "samerole", "samegroup"})
_RESERVED_ROLES = frozenset({"public", "none", "current_user", "session_user", "current_role"})


def slot_name(name: object) -> str:
    """A physical replication slot name: lower-case letters, digits and ``_``, 1 to 63 long."""
    if not isinstance(name, str) or not _SLOT.fullmatch(name):
        raise InvalidName(
            f"invalid replication slot name {name!r}: use 1 to 63 lower-case letters, "
            "digits or underscores (PostgreSQL's rule for slot names)"
        )
    return name


def role_name(name: object) -> str:
    """A role name pgstream will create: a plain lower-case identifier, 1 to 63 long.

    PostgreSQL accepts more (quoted identifiers), but a name that needs quoting in pg_hba.conf,
    in conninfo strings and in passfiles is a trap; pgstream refuses it.
    """
    if not isinstance(name, str) or not _ROLE.fullmatch(name):
        raise InvalidName(
            f"invalid role name {name!r}: use a lower-case letter or underscore followed by "
            "up to 62 lower-case letters, digits or underscores"
        )
    if name in _HBA_KEYWORDS or name in _RESERVED_ROLES or name.startswith("pg_"):
        raise InvalidName(
            f"invalid role name {name!r}: it is a pg_hba.conf keyword or a name PostgreSQL "
            "reserves (all, replication, public, none, current_user, pg_*, ...)"
        )
    return name


def os_user_name(name: object) -> str:
    """An operating-system account name (the portable POSIX form Debian's useradd accepts)."""
    if not isinstance(name, str) or not _OS_USER.fullmatch(name):
        raise InvalidName(
            f"invalid OS user name {name!r}: use a lower-case letter or underscore followed by "
            "up to 31 lower-case letters, digits, '_', '.' or '-'"
        )
    return name


def node_name(name: object) -> str:
    """A node name (used as cluster_name, application_name and slot name)."""
    if not isinstance(name, str) or not _NODE.fullmatch(name):
        raise InvalidName(
            f"invalid node name {name!r}: use a lower-case letter followed by up to 62 "
            "lower-case letters, digits or underscores (it becomes cluster_name, "
            "application_name and the slot name)"
        )
    return name


def application_name(name: object) -> str:
    """A standby's ``application_name`` pgstream writes into ``primary_conninfo``: 1 to 63
    ASCII letters, digits, ``_``, ``.`` or ``-`` (``walreceiver``, ``node-2``; nothing that
    needs quoting in a conninfo or in ``synchronous_standby_names``)."""
    if not isinstance(name, str) or not _APP.fullmatch(name):
        raise InvalidName(
            f"invalid application_name {name!r}: use 1 to 63 ASCII letters, digits, '_', "
            "'.' or '-'"
        )
    return name


def hba_address(address: object) -> str:
    """A pg_hba address: an IP address (made a /32 or /128) or a CIDR network."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidAddress(f"invalid address {address!r}: give an IP address or a CIDR")
    text = address.strip()
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_network(ipaddress.ip_address(text)))
    except ValueError as exc:
        raise InvalidAddress(
            f"invalid address {address!r}: {exc}; give an IP address such as 192.0.2.10 "
            "or a network such as 192.0.2.0/24 (host bits zero)"
        ) from None


def port(value: object) -> int:
    """A TCP port, 1 to 65535, from an int or digits; raises :class:`InvalidInput` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(f"invalid port {value!r}: give an integer from 1 to 65535")
    return value


@attrs.frozen(repr=False)
class Secret:
    """A password. Its ``repr``/``str`` are masked; call :meth:`reveal` where it must be used."""

    _value: str = attrs.field(alias="value")

    @_value.validator
    def _check(self, _attr: object, value: object) -> None:
        if not isinstance(value, str) or not value:
            raise InvalidInput("a password must be a non-empty string")
        if "\0" in value:
            raise InvalidInput("a password cannot contain a NUL character")

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it (stdin, a 0600 file, a SCRAM
        verifier).
        """
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


MASK = "********"


def as_secret(value: str | Secret | None) -> Secret | None:
    """``value`` as a :class:`Secret` (a Secret is returned as it is)."""
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)
