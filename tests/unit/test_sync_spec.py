"""SyncSpec: validation, rendering per major (9.6, 10-18), parsing; synchronous_plan's checks
and dry run, which need no server."""

from __future__ import annotations

import attrs
import pytest

from pgstream.errors import InvalidInput, InvalidName, NotAvailable
from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Primary
from pgstream.ops.plan import StepKind
from pgstream.ops.sync import synchronous_plan
from pgstream.render.sync_spec import SyncSpec

MAJORS = ["9.6", "10", "11", "12", "13", "14", "15", "16", "17", "18"]
FROM_10 = MAJORS[1:]
NAMES = ["standby1", "standby2", "standby3"]


# ---------------------------------------------------------------------------------------------
# construction and validation


def test_constructors() -> None:
    assert SyncSpec.first(2, NAMES) == SyncSpec("FIRST", 2, tuple(NAMES))
    assert SyncSpec.any(1, iter(NAMES)) == SyncSpec("ANY", 1, tuple(NAMES))
    assert SyncSpec.priority(NAMES) == SyncSpec("LIST", 1, tuple(NAMES))
    assert SyncSpec.off() == SyncSpec("OFF", 0, ())
    assert SyncSpec.off().is_off and not SyncSpec.priority(["*"]).is_off
    assert SyncSpec.first(1, ["a"]).names == ("a",)


def test_frozen_and_hashable() -> None:
    spec = SyncSpec.first(1, NAMES)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.num = 2  # type: ignore[misc]
    assert len({spec, SyncSpec.first(1, list(NAMES))}) == 1


@pytest.mark.parametrize(("build", "message"), [
    (lambda: SyncSpec.first(0, NAMES), "at least 1"),
    (lambda: SyncSpec.any(-1, NAMES), "at least 1"),
    (lambda: SyncSpec.first(4, NAMES), "lists only 3 standby"),
    (lambda: SyncSpec.any(2, ["standby1"]), "wait forever"),
    (lambda: SyncSpec.first(True, NAMES), "must be an integer"),
    (lambda: SyncSpec.first(1.0, NAMES), "must be an integer"),  # type: ignore[arg-type]
    (lambda: SyncSpec.first(1, []), "at least one standby name"),
    (lambda: SyncSpec.priority([]), "at least one standby name"),
    (lambda: SyncSpec.first(1, "standby1"), "list of names"),
    (lambda: SyncSpec.first(1, ["standby1", "standby1"]), "listed twice: standby1"),
    (lambda: SyncSpec.priority(["*", "a", "*"]), r"listed twice: \*"),
    (lambda: SyncSpec("LIST", 2, ("a", "b")), "waits for 1 standby"),
    (lambda: SyncSpec("OFF", 1, ()), "no names and num 0"),
    (lambda: SyncSpec("OFF", 0, ("a",)), "no names and num 0"),
    (lambda: SyncSpec("SOME", 1, ("a",)), "unknown synchronous replication method"),  # type: ignore[arg-type]
])
def test_invalid_specs(build: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("name", ["Standby1", "standby-1", "", "1standby", "a b", "x" * 64,
                                  "a'b", 'a"b', "a,b", "a)"])
def test_names_must_be_node_names(name: str) -> None:
    with pytest.raises(InvalidName, match="invalid node name"):
        SyncSpec.first(1, [name])


def test_asterisk_allows_any_count() -> None:
    assert SyncSpec.first(5, ["*"]).num == 5
    assert SyncSpec.any(3, ["standby1", "*"]).num == 3


# ---------------------------------------------------------------------------------------------
# rendering, per major


@pytest.mark.parametrize("major", MAJORS)
def test_render_priority_list_and_off(major: str) -> None:
    assert SyncSpec.priority(["standby1", "standby2"]).render(major) == "standby1, standby2"
    assert SyncSpec.priority(["*"]).render(major) == "*"
    assert SyncSpec.off().render(major) == ""


@pytest.mark.parametrize("major", FROM_10)
def test_render_first_and_any_from_10(major: str) -> None:
    assert SyncSpec.first(2, NAMES).render(major) == "FIRST 2 (standby1, standby2, standby3)"
    assert SyncSpec.any(2, NAMES).render(major) == "ANY 2 (standby1, standby2, standby3)"
    assert SyncSpec.first(2, ["standby1", "*", "standby2"]).render(major) == \
        "FIRST 2 (standby1, *, standby2)"
    assert SyncSpec.any(2, ["*"]).render(major) == "ANY 2 (*)"


def test_render_first_on_96_is_the_number_form() -> None:
    assert SyncSpec.first(2, NAMES).render("9.6") == "2 (standby1, standby2, standby3)"
    assert SyncSpec.first(1, ["*"]).render(90624) == "1 (*)"


def test_render_any_on_96_is_not_available() -> None:
    with pytest.raises(NotAvailable, match=r"quorum commit .* does not exist on PostgreSQL 9\.6: "
                                           r"it was introduced in PostgreSQL 10") as caught:
        SyncSpec.any(1, NAMES).render("9.6")
    assert caught.value.since == "10"
    assert caught.value.name == "ANY"
    assert "SyncSpec.first(1, ...)" in str(caught.value)


@pytest.mark.parametrize("major", MAJORS)
def test_keywords_are_quoted_only_where_they_are_keywords(major: str) -> None:
    spec = SyncSpec.priority(["first", "any", "anyone", "firstly"])
    if major == "9.6":
        assert spec.render(major) == "first, any, anyone, firstly"
    else:
        assert spec.render(major) == '"first", "any", anyone, firstly'
    assert SyncSpec.parse(spec.render(major), major) == spec


@pytest.mark.parametrize("major", MAJORS)
def test_render_accepts_every_version_form(major: str) -> None:
    spec = SyncSpec.first(1, ["standby1"])
    version = ServerVersion.parse(major)
    assert spec.render(version) == spec.render(major) == spec.render(version.num)


# ---------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize(("text", "spec"), [
    ("", SyncSpec.off()),
    ("standby1", SyncSpec.priority(["standby1"])),
    ("standby1,standby2", SyncSpec.priority(["standby1", "standby2"])),
    ("*", SyncSpec.priority(["*"])),
    ("2(standby1,standby2,standby3)", SyncSpec.first(2, NAMES)),
    ("2 ( standby1 , *, standby2 )", SyncSpec.first(2, ["standby1", "*", "standby2"])),
    ("FIRST 2(standby1, standby2)", SyncSpec.first(2, ["standby1", "standby2"])),
    ("first 1 (standby1)", SyncSpec.first(1, ["standby1"])),
    ("ANY 2(*)", SyncSpec.any(2, ["*"])),
    ("any\t2\n(standby1,standby2)", SyncSpec.any(2, ["standby1", "standby2"])),
    ('ANY 1 ("first", "Standby2", "*")', SyncSpec.any(1, ["first", "standby2", "*"])),
    ("Standby1, STANDBY2", SyncSpec.priority(["standby1", "standby2"])),
])
def test_parse(text: str, spec: SyncSpec) -> None:
    assert SyncSpec.parse(text) == spec


@pytest.mark.parametrize(("text", "message"), [
    ("  ", "expected a standby name, found the end"),
    ("FIRST (a)", "expected a number, found '\\('"),
    ("ANY 2 a", "expected '\\(', found 'a'"),
    ("FIRST 2 (a, b", "expected '\\)', found the end"),
    ("a,,b", "expected a standby name, found ','"),
    ("a b", "unexpected 'b' after the standby list"),
    ("(a)", "expected a standby name"),
    ("a-b", "unexpected '-' at position 2"),
    ("first", "expected a number"),
    ("0 (a)", "at least 1"),
    ("6(standby4,standby0,standby3,standby2)", "wait forever"),
    ("a, A", "listed twice"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        SyncSpec.parse(text)


def test_parse_rejects_names_that_are_not_node_names() -> None:
    with pytest.raises(InvalidName):
        SyncSpec.parse('"my-standby"')
    with pytest.raises(InvalidName):
        SyncSpec.parse("2, 3")  # numbers are standby names to PostgreSQL
    with pytest.raises(InvalidInput, match="must be a string"):
        SyncSpec.parse(None)  # type: ignore[arg-type]


def test_parse_96_grammar_has_no_keywords() -> None:
    assert SyncSpec.parse("first, any", "9.6") == SyncSpec.priority(["first", "any"])
    assert SyncSpec.parse("2 (a, b)", "9.6") == SyncSpec.first(2, ["a", "b"])
    with pytest.raises(InvalidInput, match="unexpected"):
        SyncSpec.parse("FIRST 1 (a)", "9.6")


SPECS = [SyncSpec.off(), SyncSpec.priority(NAMES), SyncSpec.priority(["*"]),
         SyncSpec.first(2, NAMES), SyncSpec.first(3, ["standby1", "*"]), SyncSpec.any(2, NAMES),
         SyncSpec.any(1, ["*"])]


@pytest.mark.parametrize(("major", "spec"), [
    (major, spec) for major in MAJORS for spec in SPECS if spec.method != "ANY" or major != "9.6"
])
def test_render_then_parse_keeps_the_meaning(major: str, spec: SyncSpec) -> None:
    assert SyncSpec.parse(spec.render(major), major).effective == spec.effective


def test_effective_equates_a_plain_list_with_first_1() -> None:
    assert SyncSpec.priority(NAMES).effective == SyncSpec.first(1, NAMES).effective
    assert SyncSpec.any(1, NAMES).effective != SyncSpec.first(1, NAMES).effective


# ---------------------------------------------------------------------------------------------
# what PostgreSQL makes of a spec (007_sync_rep's priorities)


def test_priority_of_follows_the_first_matching_entry() -> None:
    spec = SyncSpec.first(2, ["standby1", "*", "standby2"])
    assert [spec.priority_of(n) for n in ("standby1", "standby2", "standby3")] == [1, 2, 2]
    plain = SyncSpec.priority(["standby1", "standby2"])
    assert [plain.priority_of(n) for n in ("standby1", "standby2", "standby3")] == [1, 2, 0]
    assert SyncSpec.any(2, ["standby1", "standby2"]).priority_of("standby2") == 1
    assert SyncSpec.any(2, ["*"]).priority_of("standby4") == 1
    assert SyncSpec.off().priority_of("standby1") == 0
    with pytest.raises(InvalidName):
        SyncSpec.off().priority_of("Bad")


def test_possible_states() -> None:
    assert SyncSpec.first(1, ["standby1"]).possible_states("standby1") == {"sync", "potential"}
    assert SyncSpec.first(1, ["standby1"]).possible_states("standby2") == {"async"}
    assert SyncSpec.any(1, ["*"]).possible_states("standby2") == {"quorum", "potential"}
    assert SyncSpec.off().possible_states("standby1") == {"async"}


# ---------------------------------------------------------------------------------------------
# synchronous_plan: validated and printed before it touches a server


def offline_primary(major: str) -> Primary:
    """A primary whose version is known, so building a plan needs no connection."""
    primary = Primary("primary", "host=/nonexistent port=1 connect_timeout=1")
    primary._version = ServerVersion.parse(major)
    return primary


@pytest.mark.parametrize("major", FROM_10)
def test_plan_prints_the_settings(major: str) -> None:
    plan = synchronous_plan(offline_primary(major), SyncSpec.any(2, NAMES),
                            synchronous_commit="remote_apply",
                            wait_for={"standby1": "quorum", "standby4": "async"})
    assert [s.kind for s in plan.steps] == [StepKind.SETTING, StepKind.RELOAD, StepKind.CHECK]
    text = str(plan)
    assert ("ALTER SYSTEM SET \"synchronous_standby_names\" = "
            "'ANY 2 (standby1, standby2, standby3)';") in text
    assert "ALTER SYSTEM SET \"synchronous_commit\" = 'remote_apply';" in text
    assert "SELECT pg_reload_conf();" in text
    assert "expect: standby1 quorum, standby4 async" in text
    assert plan.title == ("synchronous replication on primary: "
                          "ANY 2 (standby1, standby2, standby3)")


def test_plan_on_96() -> None:
    primary = offline_primary("9.6")
    text = str(synchronous_plan(primary, SyncSpec.first(2, NAMES)))
    assert "'2 (standby1, standby2, standby3)'" in text
    assert "synchronous_commit" not in text
    assert len(synchronous_plan(primary, SyncSpec.off())) == 2
    with pytest.raises(NotAvailable, match="introduced in PostgreSQL 10"):
        synchronous_plan(primary, SyncSpec.any(1, NAMES))


def test_plan_quotes_keyword_names_inside_the_literal() -> None:
    text = str(synchronous_plan(offline_primary("18"), SyncSpec.priority(["first", "b"])))
    assert "= '\"first\", b';" in text


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"synchronous_commit": "yes"}, "invalid synchronous_commit 'yes'"),
    ({"synchronous_commit": "remote_apply; DROP TABLE t"}, "invalid synchronous_commit"),
    ({"wait_for": {"standby1": "streaming"}}, "unknown sync_state 'streaming'"),
    ({"wait_for": {"standby3": "sync"}}, "standby3 can never be 'sync'.*it can be async"),
    ({"wait_for": {"standby1": "quorum"}}, "can never be 'quorum'.*potential or sync"),
    ({"wait_for": {"standby1": "async"}}, "can never be 'async'"),
    ({"wait_for": ["standby1"]}, "wait_for must map"),
    ({"timeout": 0}, "timeout must be a positive number"),
    ({"timeout": True}, "timeout must be a positive number"),
])
def test_plan_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        synchronous_plan(offline_primary("15"), SyncSpec.first(1, ["standby1", "standby2"]),
                         **kwargs)  # type: ignore[arg-type]


def test_plan_refuses_bad_names_and_specs() -> None:
    with pytest.raises(InvalidName):
        synchronous_plan(offline_primary("15"), SyncSpec.off(), wait_for={"Bad": "async"})
    with pytest.raises(InvalidInput, match="must be a SyncSpec"):
        synchronous_plan(offline_primary("15"), "FIRST 1 (a)")  # type: ignore[arg-type]
