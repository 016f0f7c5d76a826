"""``check()``: read every node at once (a thread each, bounded time), judge, attach fixes.

Also :func:`annotate_status`: what ``status()`` adds from the same rules, the finding code of
each standby that does not stream and whether replay is paused.
"""

from __future__ import annotations

import datetime as dt
import time

import attrs

from pgstream.errors import InvalidInput
from pgstream.nodes.node import Node, Standby
from pgstream.ops.check.fixes import with_plan
from pgstream.ops.check.probe import NodeFacts, gather, probe
from pgstream.ops.check.report import CheckReport, Thresholds
from pgstream.ops.check.rules import Member, evaluate
from pgstream.ops.status import ClusterStatus
from pgstream.ops.view import ClusterView
from pgstream.render import queries

DEFAULT_TIMEOUT = 10.0


def _members(view: ClusterView) -> list[Member]:
    primary = view.primary.name
    return [Member(primary), *(Member(s.name, s.upstream or primary, view.slot_for(s))
                               for s in view.standbys)]


def _check_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise InvalidInput(f"timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


def read_facts(view: ClusterView, timeout: float = DEFAULT_TIMEOUT,
               nodes: list[Node] | None = None) -> dict[str, NodeFacts]:
    """Every node's facts, read concurrently; a node silent for ``timeout`` s is unreachable."""
    user = view.auth.user
    primary = view.primary.name

    def job(node: Node) -> NodeFacts:
        return probe(node, role_user=user if node.name == primary else None, timeout=timeout)

    chosen = view.nodes if nodes is None else nodes
    return gather({n.name: (lambda n=n: job(n)) for n in chosen}, timeout)  # type: ignore[misc]


def check(view: ClusterView, *, thresholds: Thresholds | None = None,
          timeout: float = DEFAULT_TIMEOUT, plans: bool = True) -> CheckReport:
    """Findings for the whole cluster (see :mod:`pgstream.ops.check`); never raises for a
    node's trouble: an unreachable node, an unreadable log, no standbys are findings.

    ``timeout``: seconds each node may take (nodes are read at the same time). ``plans``:
    attach fix plans (False skips building them, e.g. for metrics).
    """
    limits = thresholds if thresholds is not None else Thresholds()
    if not isinstance(limits, Thresholds):
        raise InvalidInput(f"thresholds must be a Thresholds, not {limits!r}")
    started = time.monotonic()
    taken = dt.datetime.now(dt.UTC)
    members = _members(view)
    facts = read_facts(view, _check_timeout(timeout))
    found = evaluate(members, facts, limits)
    if plans:
        found = [with_plan(view, f) for f in found]
    return CheckReport(found, tuple(m.name for m in members), taken,
                       time.monotonic() - started)


def annotate_status(status: ClusterStatus, view: ClusterView,
                    timeout: float = DEFAULT_TIMEOUT) -> ClusterStatus:
    """``status`` with, per standby, whether replay is paused and, for one that does not
    stream (or has a problem), the code of its most severe finding."""
    if not status.standbys:
        return status
    report = check(view, timeout=timeout, plans=False) if not status.all_streaming else None
    paused = _paused(view, timeout) if report is None else {
        f.node for f in report.by_code("replay_paused")}
    items = []
    for item in status.standbys:
        code = None
        if report is not None:
            mine = [f for f in report.for_node(item.name) if f.severity.rank < 2]
            code = mine[0].code if mine else None
        if code is None and item.name in paused:
            code = "replay_paused"
        items.append(attrs.evolve(item, problem=code, replay_paused=item.name in paused
                                  if item.reachable else None))
    return attrs.evolve(status, standbys=tuple(items))


def _paused(view: ClusterView, timeout: float) -> set[str]:
    """The standbys whose replay is paused (read concurrently; silent ones are skipped)."""
    from_view: dict[str, bool] = {}

    def ask(node: Standby) -> NodeFacts:
        value = node.value(queries.replay_paused(node.version))
        from_view[node.name] = bool(value)
        return NodeFacts(node.name, True)

    gather({s.name: (lambda s=s: ask(s)) for s in view.standbys}, timeout)  # type: ignore[misc]
    return {name for name, value in from_view.items() if value}
