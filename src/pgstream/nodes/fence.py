"""Fencing: stop a primary and prove it is gone, before anything is promoted.

A stop command that exits 0 proves nothing: ``pg_ctl stop`` on a data directory one letter
off, ``systemctl stop`` of another unit, or a stop that timed out all leave the real server
running. So :func:`stop_proven` stops through the node's service, giving it the postmaster
pid the live server was proven to run as (:mod:`pgstream.nodes.identity`), and then proves
both halves of "gone":

1. that postmaster process no longer runs on the node's host, and
2. the node's conninfo reaches no server that accepts writes: no connection at all, or only a
   server in recovery (read-only).

If either cannot be proven it raises :class:`~pgstream.errors.PrimaryStillAlive` saying
which, and the caller promotes nothing.
"""

from __future__ import annotations

from pgstream.errors import (
    CommandFailed,
    NodeUnreachable,
    PgStreamError,
    PrimaryStillAlive,
    ServerMismatch,
    WaitTimeout,
)
from pgstream.nodes.identity import ServerReport
from pgstream.nodes.node import Node
from pgstream.render import commands


def down_state(node: Node, pid: int | None) -> tuple[bool, str]:
    """``(proven, what was seen)``: is ``node``'s postmaster ``pid`` gone, and does its
    conninfo reach no writable server? One process check and one connection attempt."""
    if pid is not None:
        try:
            alive = node.host.process_alive(pid)
        except PgStreamError as exc:
            return False, f"cannot tell whether its postmaster {pid} still runs: {exc}"
        if alive:
            return False, f"its postmaster {pid} still runs on {node.host.name}"
    try:
        recovering = node.in_recovery
    except NodeUnreachable:
        gone = f"postmaster {pid} gone, " if pid is not None else ""
        return True, f"{gone}no connection accepted"
    except PgStreamError as exc:
        return False, f"its conninfo still reaches a server, whose state is unknown: {exc}"
    finally:
        node.close()
    if not recovering:
        return False, "its conninfo still reaches a server that accepts writes"
    return True, "its conninfo reaches only a server in recovery (read-only)"


def prove_down(node: Node, pid: int | None, *, why: str = "") -> str:
    """Raise :class:`~pgstream.errors.PrimaryStillAlive` unless ``node`` is proven down
    (see :func:`down_state`); returns what proves it."""
    proven, seen = down_state(node, pid)
    if not proven:
        raise PrimaryStillAlive(
            f"{node.name} is not proven stopped: {seen}. Nothing was promoted: stop or fence "
            "it yourself (and check its declared data_dir and service), then fail over"
            + (f"\n{why}" if why else ""))
    return seen


def stop_proven(node: Node, mode: commands.StopMode, *,
                report: ServerReport | None = None) -> str:
    """Stop ``node``'s server with its service and prove it gone; returns the proof.

    ``report``: what the live server reported just before (its postmaster pid); without it
    (the server did not answer) the pid comes from the service's own data directory.
    """
    service = node.service
    if service is None:
        raise PrimaryStillAlive(f"{node.name}: pgstream cannot stop it (no service)")
    pid = report.postmaster_pid if report is not None else service.pid()
    node.close()
    failure = ""
    try:
        service.stop(mode, pid=pid)
    except ServerMismatch as exc:
        raise PrimaryStillAlive(f"{node.name} was not stopped: {exc}") from exc
    except (CommandFailed, WaitTimeout) as exc:
        failure = f"the stop failed: {exc}"
    return prove_down(node, pid, why=failure)
