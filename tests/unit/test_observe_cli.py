"""``pgstream check`` and ``pgstream metrics``: their threshold options, checked before any
node is asked."""

from __future__ import annotations

import pytest

from pgstream.cli import main, observe, parser
from pgstream.ops.check import Thresholds

MB = 1024 * 1024


@pytest.mark.parametrize("verb", ["check", "metrics"])
def test_threshold_options_build_the_thresholds(verb: str) -> None:
    args = parser().parse_args([verb, "--lag-bytes", "64MB", "--lag-seconds", "2.5",
                                "--slot-retained-bytes", "off"])
    assert observe._thresholds(args) == Thresholds(lag_bytes=64 * MB, lag_seconds=2.5,
                                                   slot_retained_bytes=None)
    assert observe._thresholds(parser().parse_args([verb])) == Thresholds()
    args = parser().parse_args([verb, "--lag-bytes", "1048576", "--slot-retained-bytes",
                                "1.5GB"])
    assert observe._thresholds(args) == Thresholds(lag_bytes=MB,
                                                   slot_retained_bytes=3 * 512 * MB)


@pytest.mark.parametrize("verb", ["check", "metrics"])
@pytest.mark.parametrize(("option", "value"), [
    ("--lag-bytes", "-1"), ("--lag-bytes", "lots"), ("--lag-bytes", "16 XB"),
    ("--lag-seconds", "nan"), ("--lag-seconds", "inf"), ("--lag-seconds", "-3"),
    ("--lag-seconds", "soon"), ("--slot-retained-bytes", "1e9")])
def test_a_bad_threshold_exits_2_before_any_node_is_asked(
        verb: str, option: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([verb, "--primary", "host=/nonexistent port=1", option, value])
    err = capsys.readouterr().err
    assert code == 2
    assert option in err and repr(value) in err
