"""ServerVersion: parsing, majors, ordering, hashing, at_least."""

from __future__ import annotations

import pytest

from pgstream.errors import PgStreamError, UnsupportedVersion
from pgstream.facts.version import ServerVersion, major_num


@pytest.mark.parametrize(
    ("value", "num", "major"),
    [
        ("9.6", 90600, "9.6"),
        ("9.6.0", 90600, "9.6"),
        ("9.6.24", 90624, "9.6"),
        ("10", 100000, "10"),
        ("10.23", 100023, "10"),
        ("12.22", 120022, "12"),
        ("15.4 (Debian 15.4-1.pgdg120+1)", 150004, "15"),
        ("17beta1", 170000, "17"),
        ("17rc1", 170000, "17"),
        ("18devel", 180000, "18"),
        ("postgres (PostgreSQL) 15.18", 150018, "15"),
        ("PostgreSQL 16.2 on x86_64-pc-linux-gnu, compiled by gcc", 160002, "16"),
        ("  13.1  ", 130001, "13"),
        ("150004", 150004, "15"),
        (90624, 90624, "9.6"),
        (150004, 150004, "15"),
        (180000, 180000, "18"),
    ],
)
def test_parse(value: str | int, num: int, major: str) -> None:
    version = ServerVersion.parse(value)
    assert version.num == num
    assert version.major == major


@pytest.mark.parametrize(
    ("value", "minor"),
    [("9.6.24", 24), ("9.6", 0), ("15.4", 4), ("10.23", 23), ("17beta1", 0), (150018, 18)],
)
def test_minor(value: str | int, minor: int) -> None:
    assert ServerVersion.parse(value).minor == minor


@pytest.mark.parametrize(
    ("value", "major_num_"),
    [("9.6.24", 90600), ("10.3", 100000), ("15.4", 150000), (180002, 180000)],
)
def test_major_num(value: str | int, major_num_: int) -> None:
    assert ServerVersion.parse(value).major_num == major_num_


def test_parse_returns_same_instance_for_a_version() -> None:
    version = ServerVersion.parse("14.2")
    assert ServerVersion.parse(version) is version


@pytest.mark.parametrize(
    "value",
    ["9.5.3", "9.5", "9.4.26", "9", "8.4", 90500, 90426, 80400, "90500"],
)
def test_below_96_is_unsupported(value: str | int) -> None:
    with pytest.raises(UnsupportedVersion):
        ServerVersion.parse(value)


@pytest.mark.parametrize(
    "value",
    ["abc", "", "   ", "version fifteen", "15.x", "1.2.3.4", "9.6.24.1", "-15"],
)
def test_garbage_text_is_unsupported(value: str) -> None:
    with pytest.raises(UnsupportedVersion):
        ServerVersion.parse(value)


@pytest.mark.parametrize("value", [None, True, False, 12.5, 15.0, b"15.4", [15], object()])
def test_garbage_types_are_unsupported(value: object) -> None:
    with pytest.raises(UnsupportedVersion):
        ServerVersion.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, 1, 12, 96, 9999, -150004])
def test_small_ints_are_not_server_version_nums(value: int) -> None:
    with pytest.raises(UnsupportedVersion):
        ServerVersion.parse(value)


def test_unsupported_version_is_a_pgstream_error() -> None:
    assert issubclass(UnsupportedVersion, PgStreamError)
    with pytest.raises(PgStreamError, match=r"9\.6 or newer"):
        ServerVersion.parse("9.5.3")


def test_equality_ignores_text() -> None:
    a = ServerVersion.parse("15.4 (Debian 15.4-1.pgdg120+1)")
    b = ServerVersion.parse(150004)
    c = ServerVersion.parse("15.4")
    assert a == b == c
    assert a != ServerVersion.parse("15.5")
    assert hash(a) == hash(b) == hash(c)
    assert len({a, b, c}) == 1


def test_equality_with_other_types_is_false() -> None:
    version = ServerVersion.parse("15.4")
    assert version != 150004
    assert version != "15.4"
    assert version != None  # noqa: E711


def test_usable_as_dict_key() -> None:
    table = {ServerVersion.parse("15.4"): "fifteen"}
    assert table[ServerVersion.parse(150004)] == "fifteen"


def test_ordering() -> None:
    texts = ["18devel", "9.6.24", "15.4", "10.23", "9.6.1", "17beta1", "15.10", "12"]
    ordered = sorted(ServerVersion.parse(t) for t in texts)
    assert [v.num for v in ordered] == [90601, 90624, 100023, 120000, 150004, 150010, 170000,
                                        180000]
    a, b = ServerVersion.parse("9.6.24"), ServerVersion.parse("10.0")
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert a <= ServerVersion.parse(90624)
    assert a >= ServerVersion.parse(90624)
    assert not a < ServerVersion.parse(90624)
    assert max(a, b) is b
    assert min(a, b) is a


def test_ordering_against_other_types_raises_type_error() -> None:
    """Rich comparisons with a foreign type must return NotImplemented (-> TypeError)."""
    version = ServerVersion.parse("15.4")
    with pytest.raises(TypeError):
        _ = version < 150004  # type: ignore[operator]
    with pytest.raises(TypeError):
        _ = version >= "15"  # type: ignore[operator]


@pytest.mark.parametrize(
    ("version", "bound", "expected"),
    [
        ("12.0", 12, True),
        ("11.22", 12, False),
        ("13.1", 12, True),
        ("9.6.24", "9.6", True),
        ("9.6.0", "9.6", True),
        ("10.1", "9.6", True),
        ("9.6.24", 10, False),
        ("15.4", 150004, True),
        ("15.4", 150005, False),
        ("15.4", "15.4", True),
        ("15.4", "15.5", False),
        ("18devel", 18, True),
        ("17.9", "18devel", False),
        ("15.4", ServerVersion.parse("15.0"), True),
        ("15.4", ServerVersion.parse("16.0"), False),
    ],
)
def test_at_least(version: str, bound: str | int | ServerVersion, expected: bool) -> None:
    assert ServerVersion.parse(version).at_least(bound) is expected


@pytest.mark.parametrize("bound", [9, 0, 100, 9999, True, "abc", 12.5, None])
def test_at_least_rejects_garbage(bound: object) -> None:
    with pytest.raises(UnsupportedVersion):
        ServerVersion.parse("15.4").at_least(bound)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "num"), [(12, 120000), ("9.6", 90600), ("15.4", 150004), (150004, 150004)]
)
def test_major_num_function(value: str | int, num: int) -> None:
    assert major_num(value) == num


def test_str_and_repr() -> None:
    text = "15.4 (Debian 15.4-1.pgdg120+1)"
    assert str(ServerVersion.parse(text)) == text
    assert str(ServerVersion.parse(150004)) == "15.4"
    assert str(ServerVersion.parse(90624)) == "9.6.24"
    assert repr(ServerVersion.parse(text)) == "ServerVersion('15.4')"
    assert repr(ServerVersion.parse("9.6.24")) == "ServerVersion('9.6.24')"


def test_frozen() -> None:
    version = ServerVersion.parse("15.4")
    with pytest.raises(AttributeError):
        version.num = 1  # type: ignore[misc]


def test_adapter_is_cached_and_for_this_version() -> None:
    version = ServerVersion.parse("15.4")
    assert version.adapter is version.adapter
    assert version.adapter.version == version
