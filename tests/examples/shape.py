"""The shape of shown output: what the docs' output blocks must keep in step with."""

from __future__ import annotations

import re

_RULE = re.compile(r"^-+(?: +-+)*$")


def _tables(text: str) -> list[list[str]]:
    """The column headers of every table in ``text`` (a line above a ``----  ---`` rule)."""
    lines = [ln.strip() for ln in text.splitlines()]
    return [lines[i - 1].split() for i in range(1, len(lines)) if _RULE.match(lines[i])]


def check_shape(shown: str, real: str) -> None:
    """``real`` output has ``shown``'s tables (same headers, in order) and its fixed lines."""
    real_tables = _tables(real)
    for header in _tables(shown):
        assert header in real_tables, f"table {header} not in the real output:\n{real}"
    real_lines = {" ".join(ln.split()) for ln in real.splitlines()}
    for line in shown.splitlines():
        fixed = " ".join(line.split())
        if fixed and fixed != "..." and not _RULE.match(fixed) and not re.search(r"[\d/]",
                                                                                  fixed):
            assert fixed in real_lines, f"{fixed!r} not in the real output:\n{real}"


def skip_reason(mark: str, where: str) -> str | None:
    """The reason of an ``<!-- example: not run, REASON -->`` mark, None for no mark; an
    unknown mark, or one without a reason, fails the test that reads it."""
    if mark.startswith("not run"):
        reason = mark.removeprefix("not run").strip(" ,:")
        assert reason, f"{where}: say why the example is not run"
        return reason
    if mark:
        raise AssertionError(f"{where}: unknown example mark {mark!r}")
    return None
