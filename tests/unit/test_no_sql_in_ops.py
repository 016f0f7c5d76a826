"""No SQL typed by hand in the operations: every statement a step runs or prints is rendered
by :mod:`pgstream.render` (render/queries.py, render/probes.py), from the very statement object
its action executes, so that ``print(plan)`` cannot drift from what runs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pgstream

OPS = Path(pgstream.__file__).parent / "ops"
SQL = re.compile(r"^\s*(SELECT|ALTER|CHECKPOINT|CREATE|DROP|SHOW|SET|RESET|GRANT|REVOKE)\b")


def _literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings and SQL.match(node.value):
            found.append((node.lineno, node.value))
    return found


def test_no_sql_literal_in_the_operations() -> None:
    found = [f"{path.name}:{line}: {text!r}" for path in sorted(OPS.glob("*.py"))
             for line, text in _literals(path)]
    assert not found, "SQL typed by hand in src/pgstream/ops (render it from " \
        "render/queries.py, the statement the action executes):\n" + "\n".join(found)
