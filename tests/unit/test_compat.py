"""Cross-version rules (pgstream.facts.compat): client tools, pg_rewind, standbys, pg_upgrade,
authentication methods, on every major the version table knows."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pgstream.facts import compat
from pgstream.facts.version import ServerVersion, known_majors

V = ServerVersion.parse
MAJORS = known_majors()
SRC = Path(__file__).resolve().parents[2] / "src" / "pgstream"


@pytest.mark.parametrize(("client", "server", "fits"), [
    ("15.2", "15.8", True),  # a minor apart: same major
    ("16", "15", True),  # newer client, older server
    ("18.1", "9.6.24", True),
    ("15.8", "16.0", False),  # older client
    ("9.6.24", "10.1", False),
])
def test_client_fits_same_major_or_newer(client: str, server: str, fits: bool) -> None:
    assert compat.client_fits(V(client), V(server)) is fits


def test_client_fits_every_pair_of_majors() -> None:
    for client in MAJORS:
        for server in MAJORS:
            assert compat.client_fits(client, server) is (client >= server)


@pytest.mark.parametrize(("tool", "data_dir", "fits"), [
    ("15.2", "15.8", True),
    ("15.8", "15.2", True),
    ("16.1", "15.4", False),  # newer is not enough: pg_rewind must be the same major
    ("14.1", "15.4", False),
    ("9.6.1", "9.6.24", True),
])
def test_rewind_fits_only_its_own_major(tool: str, data_dir: str, fits: bool) -> None:
    assert compat.rewind_fits(V(tool), V(data_dir)) is fits


def test_replica_fits_only_the_same_major() -> None:
    for standby in MAJORS:
        for primary in MAJORS:
            assert compat.replica_fits(standby, primary) is (standby == primary)
    assert compat.replica_fits(V("15.2"), V("15.8"))


def test_upgrade_fits_only_a_newer_major() -> None:
    assert compat.upgrade_fits(V("16.1"), V("15.8"))
    assert compat.upgrade_fits(V("18"), V("9.6"))
    assert not compat.upgrade_fits(V("15.8"), V("15.2"))  # a minor update is no upgrade
    assert not compat.upgrade_fits(V("14"), V("15"))


def test_auth_method_by_version() -> None:
    assert compat.default_auth_method(V("9.6")) == "md5"
    assert compat.password_encryption(V("9.6")) == "on"
    assert compat.verifier_algorithm(V("9.6")) == "md5"
    assert not compat.auth_method_exists("scram-sha-256", V("9.6"))
    assert compat.auth_method_exists("md5", V("9.6"))
    for version in MAJORS[1:]:  # 10 and newer
        assert compat.default_auth_method(version) == "scram-sha-256"
        assert compat.password_encryption(version) == "scram-sha-256"
        assert compat.verifier_algorithm(version) == "scram-sha-256"
        assert compat.auth_method_exists("scram-sha-256", version)
        assert compat.auth_method_exists("md5", version)


def test_callers_use_the_rules() -> None:
    """The renderer and the initdb argv agree with the rule on every major."""
    from pgstream.render import commands
    from pgstream.render.config import ConfigRenderer

    for version in MAJORS:
        renderer = ConfigRenderer(version)
        assert renderer.default_auth_method() == compat.default_auth_method(version)
        assert renderer.password_encryption() == compat.password_encryption(version)
        argv = commands.initdb(Path("/b"), Path("/d"), superuser="postgres", version=version)
        assert argv[argv.index("--auth-host") + 1] == compat.default_auth_method(version)


def _version_comparisons(path: Path) -> list[int]:
    """Lines comparing two versions' majors inline (``a.major_num >= b.major_num``,
    ``a.version.major != b.major``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare) and len(node.comparators) == 1:
            sides = [node.left, node.comparators[0]]
            if all(isinstance(s, ast.Attribute) and s.attr in {"major", "major_num"}
                   for s in sides):
                found.append(node.lineno)
    return found


def test_no_module_restates_a_cross_version_rule() -> None:
    """Comparing two versions' majors is done in facts/compat.py only."""
    offenders = {str(p.relative_to(SRC)): lines for p in SRC.rglob("*.py")
                 if p.name != "compat.py" and (lines := _version_comparisons(p))}
    assert offenders == {}
