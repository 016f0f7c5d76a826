"""``check()``: read every node at once (a thread each, bounded time), judge, attach fixes.

Also :func:`annotate_status`: what ``status()`` adds from the same rules, the finding code of
each standby that does not stream and whether replay is paused.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import attrs

from pgstream.errors import InvalidInput
from pgstream.facts import arguments
from pgstream.nodes.node import Node, Standby
from pgstream.ops.check.fixes import with_plan
from pgstream.ops.check.probe import NodeFacts, gather, probe
from pgstream.ops.check.report import CheckReport, Thresholds
from pgstream.ops.check.rules import Member, evaluate
from pgstream.ops.status import ClusterStatus
from pgstream.ops.view import ClusterView
from pgstream.render.shapes import upstream_or_primary

DEFAULT_TIMEOUT = 10.0


def _members(view: ClusterView) -> list[Member]:
    primary = view.primary.name
    return [Member(primary), *(Member(s.name, upstream_or_primary(s, primary), view.slot_for(s))
                               for s in view.standbys)]


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
    seconds = arguments.timeout(timeout)
    started = time.monotonic()
    taken = dt.datetime.now(dt.UTC)
    members = _members(view)
    facts = read_facts(view, seconds)
    found = evaluate(members, facts, limits)
    if plans:
        found = [with_plan(view, f) for f in found]
    return CheckReport(found, tuple(m.name for m in members), taken,
                       time.monotonic() - started)


def annotate_status(status: ClusterStatus, view: ClusterView,
                    timeout: float = DEFAULT_TIMEOUT,
                    report: CheckReport | None = None) -> ClusterStatus:
    """``status`` with, for each standby that does not stream (or whose replay is paused), the
    code of its most severe finding.

    Standbys the status found unreachable are ``node_unreachable`` without being asked again;
    the others are checked only when one of them does not stream, within ``timeout`` (not
    at all when ``report``, a check of the same moment, is given: its findings are used)."""
    if not status.standbys:
        return status
    silent = {s.name for s in status.standbys if not s.reachable}
    if report is None and any(not s.streaming for s in status.standbys
                              if s.name not in silent):
        report = check(_Without(view, silent), timeout=timeout, plans=False)
    items = []
    for item in status.standbys:
        code = "node_unreachable" if item.name in silent else None
        if report is not None and code is None:
            mine = [f for f in report.for_node(item.name) if f.severity.rank < 2]
            code = mine[0].code if mine else None
        if code is None and item.replay_paused:
            code = "replay_paused"
        items.append(attrs.evolve(item, problem=code))
    return attrs.evolve(status, standbys=tuple(items))


@attrs.define
class _Without:
    """``view`` without some standbys (those already known to be unreachable)."""

    view: ClusterView
    left_out: set[str]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.view, name)

    @property
    def standbys(self) -> list[Standby]:
        return [s for s in self.view.standbys if s.name not in self.left_out]

    @property
    def nodes(self) -> list[Node]:
        return [self.view.primary, *self.standbys]


