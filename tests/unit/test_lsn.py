"""Lsn: parse, print, compare, subtract."""

from __future__ import annotations

import pytest

from pgstream.errors import InvalidInput
from pgstream.facts.lsn import Lsn


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0/0", 0),
        ("0/3006D00", 0x3006D00),
        ("0/3006d00", 0x3006D00),
        ("1/0", 1 << 32),
        ("16/B374D848", (0x16 << 32) | 0xB374D848),
        ("FFFFFFFF/FFFFFFFF", (1 << 64) - 1),
        (" 0/10 ", 0x10),
        ("00000000/00000010", 0x10),
    ],
)
def test_parse(text: str, value: int) -> None:
    assert Lsn.parse(text).value == value


@pytest.mark.parametrize("text", ["0/3006D00", "16/B374D848", "0/0", "FFFFFFFF/FFFFFFFF"])
def test_str_round_trip(text: str) -> None:
    assert str(Lsn.parse(text)) == text
    assert Lsn.parse(str(Lsn.parse(text))) == Lsn.parse(text)


def test_str_is_upper_case_without_leading_zeros() -> None:
    assert str(Lsn.parse("00000000/0000abcd")) == "0/ABCD"


def test_repr() -> None:
    assert repr(Lsn.parse("0/3006D00")) == "Lsn('0/3006D00')"


@pytest.mark.parametrize("text", ["", "0", "0/", "/0", "0/0/0", "G/0", "0/G", "123456789/0",
                                  "0/123456789", "-1/0", "0x1/0", "0 / 0", "abc", "0/3006D00 x",
                                  "0/1\n0/2"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInput, match="LSN"):
        Lsn.parse(text)


def test_parse_rejects_non_strings() -> None:
    for value in (None, 0, 1.5, b"0/0"):
        with pytest.raises(InvalidInput):
            Lsn.parse(value)  # type: ignore[arg-type]


def test_parse_returns_lsn_unchanged() -> None:
    lsn = Lsn.parse("0/1")
    assert Lsn.parse(lsn) is lsn


def test_maybe() -> None:
    assert Lsn.maybe(None) is None
    assert Lsn.maybe("0/1") == Lsn(1)


def test_ordering_and_equality() -> None:
    a, b, c = Lsn.parse("0/FFFFFFFF"), Lsn.parse("1/0"), Lsn.parse("1/0")
    assert a < b
    assert b > a
    assert b == c
    assert b <= c
    assert b >= c
    assert hash(b) == hash(c)
    assert sorted([b, a]) == [a, b]
    assert max(a, b) == b


def test_subtraction_is_a_byte_distance() -> None:
    assert Lsn.parse("1/0") - Lsn.parse("0/FFFFFFFF") == 1
    assert Lsn.parse("0/3006D00") - Lsn.parse("0/3000000") == 0x6D00
    assert Lsn.parse("0/0") - Lsn.parse("0/10") == -16
    assert isinstance(Lsn.parse("0/2") - Lsn.parse("0/1"), int)


def test_frozen() -> None:
    lsn = Lsn(1)
    with pytest.raises(AttributeError):
        lsn.value = 2  # type: ignore[misc]
