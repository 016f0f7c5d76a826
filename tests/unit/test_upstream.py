"""One answer to "which node does this standby stream from": ``upstream_or_primary``
(pgstream.render.shapes), used by the operations, the check, the status, the Prometheus
exposition and the HTML view alike (issue 9)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import attrs
import pytest

from pgstream.facts.lsn import Lsn
from pgstream.ops.check.run import _members
from pgstream.ops.status import ClusterStatus, PrimaryStatus, StandbyStatus
from pgstream.render import html, prometheus
from pgstream.render.shapes import upstream_or_primary
from tests.fakes import fake_cluster

SRC = Path(__file__).resolve().parents[2] / "src" / "pgstream"


@attrs.frozen
class Row:
    upstream: str | None


@pytest.mark.parametrize(("upstream", "expected"), [
    (None, "pg"), ("", "pg"), ("s1", "s1"), ("pg", "pg")])
def test_its_upstream_else_the_primary(upstream: str | None, expected: str) -> None:
    assert upstream_or_primary(Row(upstream), "pg") == expected


@pytest.mark.parametrize(("upstream", "expected"), [
    (None, "pg"), ("s1", "s1"), ("gone", "pg"), ("", "pg")])
def test_an_upstream_not_known_counts_as_the_primary(upstream: str | None,
                                                     expected: str) -> None:
    assert upstream_or_primary(Row(upstream), "pg", known={"s1", "s2"}) == expected


def test_nodes_and_statuses_alike() -> None:
    rig = fake_cluster(("s1", "s2"), cascading={"s2": "s1"})
    assert [upstream_or_primary(s, "pg") for s in rig.cluster.standbys] == ["pg", "s1"]
    assert [(m.name, m.upstream) for m in _members(rig.cluster)] == [
        ("pg", None), ("s1", "pg"), ("s2", "s1")]
    status = StandbyStatus("s3", "streaming", upstream=None)
    assert upstream_or_primary(status, "pg") == "pg"


def _status() -> ClusterStatus:
    rows = (StandbyStatus("s1", "streaming", upstream=None),
            StandbyStatus("s2", "streaming", upstream="s1"),
            StandbyStatus("s3", "disconnected", upstream="elsewhere", reachable=False))
    return ClusterStatus(PrimaryStatus("pg", "18.1", Lsn(0)), rows, dt.datetime.now(dt.UTC))


def test_the_renderers_name_the_same_upstream() -> None:
    text = prometheus.render(_status())
    found = dict(re.findall(r'pgstream_standby_up\{node="(\w+)",upstream="(\w+)"\}', text))
    assert found == {"s1": "pg", "s2": "s1", "s3": "elsewhere"}
    page = html.status_html(_status())
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", row)[:2]
             for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S)]
    # The table names each row's upstream; the drawing places one it cannot place (s3's,
    # not a node of this status) under the primary.
    assert [c for c in cells if c] == [["s1", "pg"], ["s2", "s1"], ["s3", "elsewhere"]]
    assert html._layout(_status()) == {"pg": (0, 0), "s1": (1, 0), "s2": (2, 0),
                                       "s3": (1, 1)}


def test_no_copy_of_the_rule_is_left() -> None:
    """``x.upstream or <the primary's name>`` is written once, in the helper."""
    copies = re.compile(r"\.upstream or [\w.]*(primary|old)\b"
                        r"|\.upstream if [\w.]*\.upstream in")
    found = [f"{p.relative_to(SRC)}:{n}" for p in sorted(SRC.rglob("*.py"))
             for n, line in enumerate(p.read_text().splitlines(), 1) if copies.search(line)]
    assert found == []
