"""The ``pg`` marker's version specs."""

from __future__ import annotations

import pytest

from pgstream.pytest_plugin import version_matches


@pytest.mark.parametrize(
    ("spec", "num", "expected"),
    [
        (">= 13", 150004, True),
        (">= 13", 130000, True),
        (">= 13", 120022, False),
        (">=13", 130001, True),
        ("  >=   13  ", 130001, True),
        ("> 13", 130022, False),
        ("> 13", 140000, True),
        ("< 12", 110022, True),
        ("< 12", 120000, False),
        ("<= 12", 120022, True),
        ("<= 9.6", 90624, True),
        ("< 10", 90624, True),
        ("== 9.6", 90624, True),
        ("== 9.6", 90600, True),
        ("9.6", 90624, True),
        ("15", 150004, True),
        ("15", 160000, False),
        ("== 15", 150018, True),
        ("!= 15", 150004, False),
        ("!= 15", 160000, True),
        ("> 9.6", 100000, True),
        ("> 9.6", 90624, False),
        (">= 10", 90624, False),
        (">= 18", 180000, True),
    ],
)
def test_version_matches(spec: str, num: int, expected: bool) -> None:
    assert version_matches(spec, num) is expected


@pytest.mark.parametrize("spec", ["", ">=", "=> 13", "~= 13", "13 or 14", ">= thirteen",
                                  ">= 13.1.2", "=13"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError, match="spec"):
        version_matches(spec, 150004)
