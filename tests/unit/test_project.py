"""The project's promises about itself: the README's commands, dependencies, typing."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```sh\n\s*(.+?)\n\s*```", section)]


def test_readme_has_two_commands_and_ci_runs_the_second() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    assert "pgstream demo" in commands[0]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1].strip() in ci.splitlines()


def test_runtime_dependencies_are_the_design_cards() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = sorted(re.split(r"[\[<>=~ ]", dep, maxsplit=1)[0] for dep in project["dependencies"])
    assert names == ["attrs", "packaging", "psycopg"]


def test_package_ships_py_typed() -> None:
    assert (ROOT / "src" / "pgstream" / "py.typed").exists()


# The layers, lowest first (docs/api.md, "Where things are"). A module may import its own
# package and the packages of lower layers, never a higher one; the facade
# (pgstream/__init__.py) only re-exports.
LAYERS: dict[str, int] = {
    "pgstream.errors": 0,
    "pgstream.facts": 1,
    "pgstream.render": 2,
    "pgstream.hosts": 3,
    "pgstream.nodes": 4,
    "pgstream.ops": 5,
    "pgstream.workload": 5,
    "pgstream.cluster": 6,
    "pgstream.cli": 7,
    "pgstream.pytest_plugin": 7,
    "pgstream.__main__": 8,
    "pgstream": 9,
}


def _modules() -> dict[str, Path]:
    src = ROOT / "src"
    found = {}
    for path in (src / "pgstream").rglob("*.py"):
        name = ".".join(path.relative_to(src).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every pgstream module ``name`` imports, in any form: ``import a.b``, ``from a import b``,
    relative, under ``TYPE_CHECKING`` or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules and target != name and target.startswith("pgstream"):
                found.add(target)
    return found


def _layer_of(module: str) -> tuple[str, int]:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return prefix, LAYERS[prefix]
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_layers_only_import_downwards() -> None:
    """facts < render < hosts < nodes < ops < cluster < cli, pytest plugin < facade."""
    modules = _modules()
    for name, path in modules.items():
        group, level = _layer_of(name)
        for imported in _imports(name, path, modules):
            other, other_level = _layer_of(imported)
            if name == "pgstream":
                continue  # the facade re-exports from every layer
            assert imported != "pgstream", f"{name} imports the facade (pgstream): import the " \
                                           "defining module instead"
            assert other == group or other_level < level, (
                f"{name} (layer {group}) imports {imported} (layer {other})")


def test_no_import_cycles() -> None:
    """No cycle of any kind, counting TYPE_CHECKING and function-level imports."""
    modules = _modules()
    graph = {name: _imports(name, path, modules) - {"pgstream"} for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for nxt in sorted(graph[name]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_modules_stay_small() -> None:
    """One concept per module: none over 400 lines."""
    big = {name: n for name, path in _modules().items()
           if (n := len(path.read_text().splitlines())) > 400}
    assert not big, big


def test_facade_is_lazy_and_consistent() -> None:
    """``import pgstream`` loads no psycopg; every exported name resolves, and the names the
    type checker sees (``TYPE_CHECKING`` imports) are the ones imported on first use."""
    import subprocess
    import sys

    probe = subprocess.run(
        [sys.executable, "-c", "import sys, pgstream; print('psycopg' in sys.modules)"],
        capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "False"
    import pgstream

    for name in pgstream.__all__:
        assert getattr(pgstream, name) is not None, name
    tree = ast.parse((ROOT / "src" / "pgstream" / "__init__.py").read_text())
    checked: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            for item in node.body:
                assert isinstance(item, ast.ImportFrom) and item.module
                checked.update({alias.name: item.module for alias in item.names})
    assert checked == pgstream._LAZY
    assert set(pgstream.__all__) - set(checked) == {
        name for name in pgstream.__all__ if getattr(pgstream, name).__module__ ==
        "pgstream.errors"}
