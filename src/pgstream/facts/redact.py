"""Masking secrets in text that goes to logs: argv, environments, conninfo strings and SQL.

Pure. pgstream keeps passwords out of argv and SQL by design (passfiles, SCRAM verifiers);
this is the second fence for what the DEBUG log shows: a ``password=`` in a conninfo (also
inside a SQL literal), the user part of a ``postgresql://user:secret@host`` URI, the value of
``PGPASSWORD`` (or any variable named like a secret) and the literal after SQL's ``PASSWORD``
(a verifier is as good as a password to an md5 server) all become ``********``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from pgstream.facts.identifiers import MASK

# password=value, password = 'quoted value', password=''doubled'' (inside a SQL literal).
_CONNINFO_PASSWORD = re.compile(
    r"(?i)(\bpassword\s*=\s*)(''(?:[^']|'(?!'))*''|'(?:''|\\.|[^'\\])*'|[^\s']+)")
_URI_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)([^@\s/]*)(@)")
_SQL_PASSWORD = re.compile(r"(?i)(\bPASSWORD\s+)(E?'(?:''|[^'])*')")
_ENV_PASSWORD = re.compile(
    r"\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN)[A-Z0-9_]*=)('[^']*'|\"[^\"]*\"|[^\s'\"]+)")
_SECRET_VAR = re.compile(r"(?i)^[A-Z0-9_]*(PASSWORD|PASSWD|SECRET|TOKEN)[A-Z0-9_]*$")
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)


def text(value: str) -> str:
    """``value`` with every password it carries masked (conninfo, URI, SQL ``PASSWORD``,
    ``PGPASSWORD=`` and the like in a shell line)."""
    value = _CONNINFO_PASSWORD.sub(lambda m: m[1] + MASK, value)
    value = _ENV_PASSWORD.sub(lambda m: m[1] + MASK, value)
    value = _URI_PASSWORD.sub(lambda m: m[1] + MASK + m[3], value)
    return _SQL_PASSWORD.sub(lambda m: f"{m[1]}'{MASK}'", value)


def env(variables: Mapping[str, str] | None) -> dict[str, str]:
    """Environment variables as they may be logged: secret-named values masked."""
    return {k: MASK if _SECRET_VAR.match(k) else text(v) for k, v in (variables or {}).items()}


def argv(words: Sequence[object]) -> str:
    """An argv as one shell-quoted line for a log, secrets masked (``PGPASSWORD=x`` in an
    ``env`` prefix included)."""
    shown = []
    for word in map(str, words):
        assignment = _ASSIGNMENT.match(word)
        if assignment is not None and _SECRET_VAR.match(assignment[1]):
            word = f"{assignment[1]}={MASK}"
        shown.append(text(word))
    return shlex.join(shown)


def command(words: Sequence[object], variables: Mapping[str, str] | None = None) -> str:
    """``VAR=value ... argv`` for a log line: the extra environment first, all masked."""
    extra = " ".join(f"{k}={shlex.quote(v)}" for k, v in env(variables).items())
    line = argv(words)
    return f"{extra} {line}" if extra else line
