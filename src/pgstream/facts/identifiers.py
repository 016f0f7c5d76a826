"""Validation of the names and addresses users hand to pgstream, and the ``Secret`` wrapper.

Everything here is pure: it runs before anything is changed, so bad input fails early
with an error that says what a valid value looks like.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import unicodedata

from pgstream.errors import InvalidAddress, InvalidInput, InvalidName

_SLOT = re.compile(r"^[a-z0-9_]{1,63}$")
_ROLE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_NODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_APP = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
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
    """A TCP port: an integer from 1 to 65535."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidInput(f"invalid port {value!r}: give an integer from 1 to 65535")
    return value


def port_text(value: object) -> int:
    """A port as a conninfo or configuration file writes it (``"5432"``), or an int."""
    if isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not text.isdigit():
            raise InvalidInput(f"invalid port {value!r}: give an integer from 1 to 65535")
        return port(int(text))
    return port(value)


def host(value: object) -> str:
    """Where a server is reached: an IP address, a DNS host name, or (for a local server) the
    absolute path of its Unix-socket directory."""
    if not isinstance(value, str) or not value or value != value.strip():
        raise InvalidAddress(f"invalid host {value!r}: give an IP address, a host name or a "
                             "socket directory (an absolute path)")
    if value.startswith("/") or value.startswith("@"):  # a socket directory (@: abstract)
        if "\0" in value or "\n" in value:
            raise InvalidAddress(f"invalid socket directory {value!r}")
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in
                                   value.removesuffix(".").split(".")):
        raise InvalidAddress(
            f"invalid host {value!r}: give an IP address such as 192.0.2.10, a host name "
            "such as db1.example.com (letters, digits, '-', dots), or a socket directory")
    return value


def address(value: object) -> tuple[str, int]:
    """A ``(host, port)`` pair other nodes connect to."""
    if not isinstance(value, tuple | list) or len(value) != 2:
        raise InvalidAddress(f"invalid address {value!r}: give a (host, port) pair")
    return host(value[0]), port(value[1])


def _check_password(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput("a password must be a non-empty string")
    if any(unicodedata.category(c) == "Cc" for c in value):
        # A line break ends a passfile entry; no control character belongs in a password.
        raise InvalidInput("a password cannot contain a line break, NUL or other control "
                           "character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput("a password must be valid Unicode (it has a lone surrogate)") \
            from None
    return value


class Secret:
    """A password. Its ``repr``/``str`` are masked; call :meth:`reveal` where it must be used.

    Not an attrs class on purpose: ``attrs.asdict`` of a value holding a ``Secret`` keeps the
    ``Secret`` (masked) instead of recursing into it. Immutable, comparable, hashable. A
    password must be a non-empty string without control characters (a line break would split
    a passfile entry).
    """

    __slots__ = ("_value",)
    _value: str

    def __init__(self, value: str) -> None:
        object.__setattr__(self, "_value", _check_password(value))

    def reveal(self) -> str:
        """The password in clear, for the one place that must use it."""
        return self._value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("a Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("a Secret is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> tuple[type[Secret], tuple[str]]:
        return Secret, (self._value,)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


MASK = "********"


def as_secret(value: str | Secret | None) -> Secret | None:
    """``value`` as a :class:`Secret` (``None`` stays ``None``)."""
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)
