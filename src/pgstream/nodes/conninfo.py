"""Conninfo strings checked and shown without their secrets.

:func:`check_conninfo` parses a libpq conninfo (keywords or URI) and checks its hosts and
ports; its errors never quote the string, since libpq's own parse errors quote a token or the
whole URI, which may be (or hold) the password. :func:`masked_conninfo` is the string with its
password masked, for reprs, logs and errors.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidAddress, InvalidInput
from pgstream.facts import identifiers


def masked_conninfo(conninfo: str) -> str:
    """The conninfo with any password replaced by ``********`` (for reprs, logs, errors)."""
    try:
        params = pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "<unparsable conninfo>"
    if "password" in params:
        params["password"] = identifiers.MASK
    return pg_conninfo.make_conninfo("", **params)


_QUOTED = re.compile(r'"[^"]*"')


def scrub_conninfo_error(message: str) -> str:
    """libpq's conninfo parse error without what it quotes of the string (a quoted token, or
    the whole URI, may be or hold the password): ``invalid percent-encoded token: "…"``."""
    def keep(match: re.Match[str]) -> str:
        token = match[0][1:-1]
        return match[0] if len(token) <= 2 and not any(c.isalnum() for c in token) else '"…"'

    return _QUOTED.sub(keep, " ".join(message.split()))


def check_conninfo(value: object) -> dict[str, Any]:
    """Parse a conninfo (libpq keywords or a URI) and check its hosts and ports; the error,
    an ``InvalidInput``, never quotes the string (nor any password in it)."""
    if not isinstance(value, str):
        raise InvalidInput(f"a conninfo must be a string, not {type(value).__name__}")
    try:
        params = pg_conninfo.conninfo_to_dict(value)
    except psycopg.ProgrammingError as exc:
        raise InvalidInput(f"invalid conninfo: {scrub_conninfo_error(str(exc))} (quoted parts "
                           "withheld: they may hold a password)") from None
    for key in ("host", "hostaddr"):
        for item in str(params.get(key) or "").split(","):
            if item:
                (identifiers.host if key == "host" else _ip)(item)
    for item in str(params.get("port") or "").split(","):
        if item:
            identifiers.port_text(item)
    return params


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidAddress(f"invalid hostaddr {value!r}: give an IP address") from None
