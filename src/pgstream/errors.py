"""Every error pgstream raises: one base class, one subclass per kind of failure.

Catch :class:`PgStreamError` to handle them all. Messages are written for the
person running the command: they say what was wrong and what to do, and they
never contain a password.
"""

from __future__ import annotations


class PgStreamError(Exception):
    """Base class of every error raised by pgstream."""


class InvalidInput(PgStreamError, ValueError):
    """An argument was rejected before anything was changed."""


class InvalidName(InvalidInput):
    """A slot, role or node name that PostgreSQL (or pgstream) would not accept."""


class InvalidAddress(InvalidInput):
    """A host address or CIDR that is not one."""


class UnsupportedVersion(PgStreamError):
    """A PostgreSQL version pgstream cannot work with (below 9.6, or unparsable)."""


class NotAvailable(PgStreamError):
    """A function, column, setting or feature that the server's version does not have."""

    def __init__(self, message: str, *, name: str = "", since: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.since = since


class BinaryNotFound(PgStreamError):
    """No usable PostgreSQL server or client program was found."""


class CommandFailed(PgStreamError):
    """An external program (initdb, pg_ctl, pg_basebackup, ...) failed."""

    def __init__(self, message: str, *, argv: tuple[str, ...] = (), returncode: int | None = None,
                 output: str = "") -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.output = output


class QueryError(PgStreamError):
    """A statement failed on the server; ``sqlstate`` says why, ``__cause__`` is psycopg's error."""

    def __init__(self, message: str, *, node: str = "", sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.sqlstate = sqlstate


class ReadOnlyNode(QueryError):
    """A write was sent to a server in recovery (a standby)."""


class NotAStandby(PgStreamError):
    """An operation for standbys (promote, ...) was asked of a server not in recovery."""


class NodeUnreachable(PgStreamError):
    """A server could not be connected to."""


class UnsafeDataDirectory(PgStreamError):
    """A data directory pgstream refused to wipe or write, because that could lose data."""


class SlotError(PgStreamError):
    """A replication slot operation was refused (active slot, missing slot, ...)."""


class SlotInUse(SlotError):
    """The slot is active: a walsender is using it."""


class SlotNotFound(SlotError):
    """No slot of that name exists."""


class WaitTimeout(PgStreamError, TimeoutError):
    """A wait (for catch-up, for streaming, for a server to start) ran out of time."""


class PlanFailed(PgStreamError):
    """A plan stopped at a failing step; says which one and what was already done."""

    def __init__(self, message: str, *, step: object = None, done: tuple[object, ...] = (),
                 undone: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.step = step
        self.done = done
        self.undone = undone
