"""Every error pgstream raises, in one tree.

Catch :class:`PgStreamError` to handle them all, or a category by what it means:

- :class:`InvalidInput`: a caller's argument, name, value, address, path or file was refused
  before anything changed;
- :class:`Refused`: an operation's pre-check refused to act (nothing changed): a switchover
  that could lose commits, a failover while the primary lives, a rejoin that needs a rewind;
- :class:`Unreachable`: a node or host could not be reached;
- :class:`ServerStateError`: a server is not in the state the operation needs or the caller
  declared (a mismatch between what was said and what the server reports);
- :class:`OperationFailed`: something was tried and failed (a command, a statement, a wait,
  a plan).

Messages are written for the person running the command: they say what was wrong and what
to do, and they never contain a password.
"""

from __future__ import annotations


class PgStreamError(Exception):
    """Base class of every error raised by pgstream."""


# -- categories


class InvalidInput(PgStreamError, ValueError):
    """An argument was rejected before anything was changed."""


class Refused(PgStreamError):
    """An operation refused to act after checking the servers: nothing was changed."""


class Unreachable(PgStreamError):
    """A node or host could not be reached."""


class ServerStateError(PgStreamError):
    """A server is not in the state the operation needs, or not what the caller declared."""


class OperationFailed(PgStreamError):
    """Something pgstream tried failed: a program, a statement, a wait or a plan."""


# -- bad input


class InvalidName(InvalidInput):
    """A slot, role or node name that PostgreSQL (or pgstream) would not accept."""


class InvalidAddress(InvalidInput):
    """A host address or CIDR that is not one."""


class UnsupportedVersion(InvalidInput):
    """A PostgreSQL version pgstream cannot work with (below 9.6, or unparsable)."""


class NotAvailable(InvalidInput):
    """A function, column, setting or feature that the server's version does not have."""

    def __init__(self, message: str, *, name: str = "", since: str | None = None) -> None:
        super().__init__(message)
        self.name = name
        self.since = since


class BinaryNotFound(InvalidInput):
    """No usable PostgreSQL server or client program was found."""


class TopologyError(InvalidInput):
    """A topology file (``pgstream.toml``) that pgstream refuses: unknown key, a password in
    it, two nodes on one data directory, a bad port, ...; ``path`` and ``key`` say where."""

    def __init__(self, message: str, *, path: str = "", key: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class UnsafeDataDirectory(InvalidInput):
    """A data directory pgstream refused to wipe or write, because that could lose data."""


# -- refusals


class SwitchoverRefused(Refused):
    """A switchover pre-check failed: nothing was changed."""


class PrimaryStillAlive(Refused):
    """A failover was asked (or a fence could not be proven) while the primary still runs."""


class RejoinRefused(Refused):
    """The node cannot rejoin as it is (running, another system, diverged without pg_rewind)."""


class UpgradeRefused(Refused):
    """A major-upgrade pre-check failed (``pg_upgrade --check``, a missing extension, a
    standby not caught up, ...): nothing was changed."""


class SlotError(Refused):
    """A replication slot operation was refused (active slot, missing slot, ...)."""


class SlotInUse(SlotError):
    """The slot is active: a walsender is using it."""


class SlotNotFound(SlotError):
    """No slot of that name exists."""


# -- unreachable


class NodeUnreachable(Unreachable):
    """A server could not be connected to."""


class HostUnreachable(Unreachable):
    """ssh could not reach or log in to the host."""


# -- server state


class NotAStandby(ServerStateError):
    """An operation for standbys (promote, ...) was asked of a server not in recovery."""


class ServerMismatch(ServerStateError):
    """What the caller declared (data directory, port, role, system) is not what the server
    reports; ``declared`` and ``reported`` name both values."""

    def __init__(self, message: str, *, node: str = "", field: str = "",
                 declared: object = None, reported: object = None) -> None:
        super().__init__(message)
        self.node = node
        self.field = field
        self.declared = declared
        self.reported = reported


# -- failures


class CommandFailed(OperationFailed):
    """An external program (initdb, pg_ctl, pg_basebackup, ...) failed."""

    def __init__(self, message: str, *, argv: tuple[str, ...] = (), returncode: int | None = None,
                 output: str = "") -> None:
        super().__init__(message)
        self.argv = argv
        self.returncode = returncode
        self.output = output


class QueryError(OperationFailed):
    """A statement failed on the server; ``sqlstate`` says why, ``__cause__`` is psycopg's error."""

    def __init__(self, message: str, *, node: str = "", sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.node = node
        self.sqlstate = sqlstate


class ReadOnlyNode(QueryError):
    """A write was sent to a server in recovery (a standby)."""


class WaitTimeout(OperationFailed, TimeoutError):
    """A wait (for catch-up, for streaming, for a server to start) ran out of time."""


class PlanFailed(OperationFailed):
    """A plan stopped at a failing step; says which one, what was done and what was undone.

    ``cause`` is the error the step raised (also ``__cause__``); ``undo_failed`` lists the undos
    that failed, each with its error: what they leave behind needs a person's attention.
    """

    def __init__(self, message: str, *, step: object = None, done: tuple[object, ...] = (),
                 undone: tuple[object, ...] = (), cause: BaseException | None = None,
                 undo_failed: tuple[tuple[object, BaseException], ...] = ()) -> None:
        super().__init__(message)
        self.step = step
        self.done = done
        self.undone = undone
        self.cause = cause
        self.undo_failed = undo_failed


# -- not errors: how the process is asked to end


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives while a sandbox lives or a plan is
    applied (see :mod:`pgstream.hosts.sigterm`): a ``KeyboardInterrupt``, so that whatever
    cleans up after Ctrl-C (``with`` blocks, plans rolling back, fixtures) stops the servers
    too."""
