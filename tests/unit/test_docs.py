"""The documentation keeps up with the code: the error tree in docs/api.md is the one in
errors.py."""

from __future__ import annotations

import re
from pathlib import Path

from pgstream import errors

ROOT = Path(__file__).resolve().parents[2]


def _tree(cls: type[BaseException], prefix: str = "") -> list[str]:
    order = list(vars(errors))
    subclasses = [c for c in cls.__subclasses__() if c.__module__ == errors.__name__]
    children = sorted(subclasses, key=lambda c: order.index(c.__name__))
    lines = []
    for n, child in enumerate(children):
        last = n == len(children) - 1
        extra = [b.__name__ for b in child.__bases__ if b.__module__ == "builtins"]
        also = f" (also {', '.join(extra)})" if extra else ""
        lines.append(f"{prefix}{'└── ' if last else '├── '}{child.__name__}{also}")
        lines += _tree(child, prefix + ("    " if last else "│   "))
    return lines


def test_error_tree_in_the_docs_is_the_code() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    block = re.search(r"<!-- error-tree:.*?```text\n(.*?)```", text, re.S)
    assert block is not None
    assert block.group(1).rstrip("\n").split("\n") == ["PgStreamError", *_tree(
        errors.PgStreamError)]


def test_every_error_class_lives_in_errors_py() -> None:
    import pgstream

    for name in pgstream.__all__:
        value = getattr(pgstream, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert value.__module__ == "pgstream.errors", name


def test_no_error_is_raised_as_the_bare_base_class() -> None:
    """Every raise names a class a caller can catch by meaning (errors.py's categories or
    their leaves), never ``PgStreamError`` itself."""
    import ast

    bare = []
    for path in (ROOT / "src" / "pgstream").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and getattr(
                    node.exc.func, "id", "") == "PgStreamError":
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, bare
