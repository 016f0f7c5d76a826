"""How a node runs a statement: the DEBUG line it logs, and the errors it raises.

psycopg's errors come back in pgstream's error tree (:mod:`pgstream.errors`): a write on a
standby is :class:`~pgstream.errors.ReadOnlyNode`, a lost connection
:class:`~pgstream.errors.NodeUnreachable`, anything else a
:class:`~pgstream.errors.QueryError` carrying the SQLSTATE. The log line masks secrets and
never shows parameter values.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from pgstream.errors import NodeUnreachable, QueryError, ReadOnlyNode
from pgstream.facts import redact

Params = Sequence[Any] | dict[str, Any] | None
"""Parameters of one statement: positional (``%s``) or named (``%(name)s``)."""
_log = logging.getLogger("pgstream.nodes.node")  # the name pgstream has always logged SQL as


@contextlib.contextmanager
def translated(node: str, conn: psycopg.Connection[tuple[Any, ...]],
               close: Callable[[], None]) -> Iterator[None]:
    """Run the ``with`` block with psycopg's errors raised as pgstream's, naming ``node``.

    A broken ``conn`` is closed through ``close`` (the node reconnects on next use) and
    raises :class:`~pgstream.errors.NodeUnreachable`.
    """
    try:
        yield
    except pg_errors.ReadOnlySqlTransaction as exc:
        raise ReadOnlyNode(
            f"{node} is read-only (a standby in recovery): {exc.diag.message_primary}",
            node=node, sqlstate=exc.sqlstate) from exc
    except psycopg.OperationalError as exc:
        if conn.broken:
            close()
            raise NodeUnreachable(f"lost the connection to {node}: {exc}") from exc
        raise QueryError(f"on {node}: {exc}", node=node, sqlstate=exc.sqlstate) from exc
    except psycopg.Error as exc:
        raise QueryError(f"on {node}: {str(exc).strip()}", node=node,
                         sqlstate=exc.sqlstate) from exc


def log_statement(node: str, conn: psycopg.Connection[tuple[Any, ...]],
                  statement: sql.Composable | str, params: Params) -> None:
    """Log ``statement`` at DEBUG, secrets masked; parameter values never (only how many).

    Never raises: a statement that cannot be rendered is logged as such.
    """
    if not _log.isEnabledFor(logging.DEBUG):
        return
    try:
        text = statement.as_string(conn) if isinstance(statement, sql.Composable) \
            else statement
    except Exception:  # noqa: BLE001 - a log line never fails the query
        text = "<statement that could not be rendered>"
    count = f" [{len(params)} parameter(s)]" if params else ""
    _log.debug("sql on %s: %s%s", node, redact.text(text), count)
