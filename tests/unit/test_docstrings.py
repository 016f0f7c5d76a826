"""Every public callable in ``src/pgstream`` says what it does (the API reference is built from
these docstrings): every module, and every public function, class and method.

Exempt: names starting with ``_`` (dunders included: the protocol they implement documents
them), ``@x.setter`` methods (the property's getter holds the docstring) and anything defined
inside a function (not reachable by a caller).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def _is_setter(node: Definition) -> bool:
    return any(isinstance(d, ast.Attribute) and d.attr == "setter" for d in node.decorator_list)


def _public(body: list[ast.stmt], prefix: str) -> Iterator[tuple[str, Definition]]:
    """``(qualified name, definition)`` of the public definitions in ``body``, those in class
    bodies included, none inside a function."""
    for node in body:
        if not isinstance(node, Definition) or node.name.startswith("_"):
            continue
        if isinstance(node, ast.ClassDef):
            yield prefix + node.name, node
            yield from _public(node.body, f"{prefix}{node.name}.")
        elif not _is_setter(node):
            yield prefix + node.name, node


def undocumented(root: Path = SRC / "pgstream") -> list[str]:
    """``path:line: name`` of each module and public callable under ``root`` that has no
    docstring."""
    missing = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        shown = path.relative_to(root.parent)
        if not ast.get_docstring(tree):
            missing.append(f"{shown}:1: module")
        missing += [f"{shown}:{node.lineno}: {name}" for name, node in _public(tree.body, "")
                    if not ast.get_docstring(node)]
    return missing


def test_every_public_callable_has_a_docstring() -> None:
    missing = undocumented()
    assert not missing, "no docstring:\n" + "\n".join(missing)


def test_the_walk_finds_what_it_must_and_skips_what_it_may(tmp_path: Path) -> None:
    (tmp_path / "mod.py").write_text(
        "def f():\n    def inner():\n        pass\n"
        "class C:\n    '''C.'''\n    def m(self):\n        pass\n"
        "    def _private(self):\n        pass\n    def __len__(self):\n        return 0\n"
        "    @property\n    def p(self):\n        '''P.'''\n"
        "    @p.setter\n    def p(self, value):\n        pass\n"
        "    class Inner:\n        async def a(self):\n            pass\n")
    found = [line.split(": ", 1)[1] for line in undocumented(tmp_path)]
    assert found == ["module", "f", "C.m", "C.Inner", "C.Inner.a"]
