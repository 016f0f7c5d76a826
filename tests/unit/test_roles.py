"""``rearrange``: who is what after each kind of role change (no server needed)."""

from __future__ import annotations

from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.view import RoleChange, rearrange


def _cluster() -> tuple[Primary, list[Standby], list[Node]]:
    conninfo = "host=/tmp port=5432"
    return (Primary("p", conninfo), [Standby("a", conninfo), Standby("b", conninfo),
                                     Standby("c", conninfo, upstream="a")], [])


def test_switchover_old_primary_set_aside_then_rejoined() -> None:
    primary, standbys, failed = _cluster()
    head, rest, aside = rearrange(primary, standbys, failed,
                                  RoleChange("switchover", new_primary="a", failed=("p",)), {})
    assert isinstance(head, Primary) and head.name == "a"
    assert [s.name for s in rest] == ["b", "c"] and [n.name for n in aside] == ["p"]
    assert rest[1].upstream is None  # c streamed from a, now the primary
    head, rest, aside = rearrange(head, rest, aside,
                                  RoleChange("switchover", new_primary="a", rejoined=("p",)), {})
    assert head.name == "a" and {s.name for s in rest} == {"b", "c", "p"} and aside == []
    assert all(isinstance(s, Standby) for s in rest)


def test_detached_added_and_re_pointed() -> None:
    primary, standbys, failed = _cluster()
    new = Standby("d", "host=/tmp port=5433")
    head, rest, aside = rearrange(primary, standbys, failed, RoleChange(
        "add", added=(new,), upstreams=(("d", "b"),), detached=("c",)), {})
    assert head is primary and [s.name for s in rest] == ["a", "b", "d"]
    assert rest[2].upstream == "b" and aside == []
    _, rest, _ = rearrange(head, rest, aside, RoleChange("follow", upstreams=(("d", "p"),)), {})
    assert rest[2].upstream is None  # following the primary is upstream None


def test_failover_keeps_earlier_failed_nodes() -> None:
    primary, standbys, _ = _cluster()
    old = Node("old", "host=/tmp port=5434")
    _, _, aside = rearrange(primary, standbys, [old],
                            RoleChange("failover", new_primary="b", failed=("p",)), {})
    assert [n.name for n in aside] == ["old", "p"]
