"""The project's promises about itself: the README's commands, dependencies, typing."""

from __future__ import annotations

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


def test_layers_only_import_downwards() -> None:
    """facts < rendering < effects < nodes < orchestration < surfaces (DEVELOPERS.md)."""
    layers = {
        "errors": 0, "version": 1, "passwords": 1, "capabilities": 1, "lsn": 1, "identifiers": 1,
        "config": 2, "queries": 2, "commands": 2, "sync_spec": 2,
        "host": 3, "service": 3, "binaries": 3, "datadir": 3, "wait": 3, "controlfile": 3, "ssh": 3,
        "node": 4, "slot": 4,
        "plan": 5, "primary_setup": 5, "standby_clone": 5, "sandbox": 5, "status": 5,
        "cluster": 5, "recovery_config": 5, "follow": 5, "switchover": 5, "failover": 5,
        "rejoin": 5, "slot_hygiene": 5,
        "sync_rep": 5,
        "cli": 6, "pytest_plugin": 6, "workload": 6, "__main__": 6, "__init__": 6,
    }
    package = ROOT / "src" / "pgstream"
    found = {p.stem for p in package.glob("*.py")}
    assert found == set(layers), found ^ set(layers)
    for path in package.glob("*.py"):
        level = layers[path.stem]
        for imported in re.findall(r"^\s*(?:from|import) pgstream\.(\w+)", path.read_text(),
                                   re.MULTILINE):
            assert layers[imported] <= level, f"{path.name} imports pgstream.{imported}"
