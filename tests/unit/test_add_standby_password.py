"""A new standby's replication password is known before its plan is built (issue 10).

Over fakes (tests/fakes.py), no server. ``add_standby_plan`` refuses, while it builds the plan
and with nothing changed, a cluster given no replication password whose standbys show that the
role authenticates with one (a passfile, or a password discovery found in a
``primary_conninfo``): the clone's ``pg_basebackup`` would fail after the new slot was made.
The error says where the password is expected and never holds one. A topology file naming an
unset ``password_env``, or a passfile without the role, is refused when it is read
(:func:`pgstream.ops.discover.from_file.replication_password`), naming the variable or file.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgstream.errors import InvalidInput
from pgstream.ops.discover.found import Discovery, NodeFacts
from pgstream.ops.discover.from_file import replication_password
from pgstream.render.topology import ReplicationEntry
from tests.fakes import PASSWORD, FakeHost, FakeStandby, Rig, fake_cluster, fake_node, unchanged

VAR = "PGSTREAM_UNIT_REPLICATION_PW"


def _new_standby(rig: Rig, name: str = "s3") -> FakeStandby:
    host = FakeHost(f"{name}-new-host")
    node = fake_node(FakeStandby, name, rig.servers["pg"].version, host, fresh=True)
    assert isinstance(node, FakeStandby)
    rig.hosts[name], rig.servers[name] = host, node.server
    return node


def _facts(name: str, role: str, *, had_password: bool = False) -> NodeFacts:
    return NodeFacts(name, "given", role, True, f"host={name}.example user=postgres",
                     f"{name}-host", primary_conninfo_had_password=had_password)


def test_refused_when_a_standby_reads_the_password_from_a_passfile() -> None:
    rig = fake_cluster(password=None)
    rig.cluster.passfiles["s1"] = Path("/var/lib/postgresql/s1.pgpass")
    with pytest.raises(InvalidInput) as caught:
        rig.cluster.add_standby_plan(_new_standby(rig))
    message = str(caught.value)
    assert "s3 would connect to pg as replicator with a password" in message
    assert "s1 reads it from the passfile /var/lib/postgresql/s1.pgpass" in message
    assert "password_env" in message and "ReplicationAuth(password=...)" in message
    assert "nothing was changed" in message
    unchanged(rig)


def test_refused_when_discovery_found_a_password_in_a_primary_conninfo() -> None:
    rig = fake_cluster(password=None)
    rig.cluster.discovery = Discovery((_facts("pg", "primary"), _facts("s1", "standby"),
                                       _facts("s2", "standby", had_password=True)))
    with pytest.raises(InvalidInput, match="s2's primary_conninfo holds one"):
        rig.cluster.add_standby_plan(_new_standby(rig), upstream="s1")
    unchanged(rig)


def test_built_without_a_password_when_no_standby_uses_one() -> None:
    """No sign of a password (trust, certificates, the OS user's own ~/.pgpass): the plan is
    built as before, without a passfile step."""
    rig = fake_cluster(password=None)
    rig.cluster.discovery = Discovery((_facts("pg", "primary"), _facts("s1", "standby"),
                                       _facts("s2", "standby")))
    plan = rig.cluster.add_standby_plan(_new_standby(rig))
    assert "passfile" not in [s.kind.value for s in plan.steps]
    unchanged(rig)


def test_built_with_the_password_known() -> None:
    rig = fake_cluster()
    rig.cluster.passfiles["s1"] = Path("/var/lib/postgresql/s1.pgpass")
    plan = rig.cluster.add_standby_plan(_new_standby(rig))
    assert plan.title == "add s3 streaming from pg"
    assert PASSWORD not in str(plan) and PASSWORD not in repr(plan)
    unchanged(rig)


# -- where the topology file says the password comes from


def test_an_unset_password_env_is_named_never_valued(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VAR, raising=False)
    with pytest.raises(InvalidInput, match=rf"names \${VAR} for the replication password, "
                                           "but it is not set"):
        replication_password(ReplicationEntry("repuser", password_env=VAR), "repuser")
    monkeypatch.setenv(VAR, "")
    with pytest.raises(InvalidInput, match=VAR):
        replication_password(ReplicationEntry("repuser", password_env=VAR), "repuser")
    monkeypatch.setenv(VAR, "pw from env")
    secret = replication_password(ReplicationEntry("repuser", password_env=VAR), "repuser")
    assert secret is not None and secret.reveal() == "pw from env"
    assert "pw from env" not in repr(secret)


def test_a_passfile_without_the_role_is_named_never_valued(tmp_path: Path) -> None:
    path = tmp_path / "pgpass"
    path.write_text("db1:5432:*:other:other-secret\n")
    os.chmod(path, 0o600)
    entry = ReplicationEntry("repuser", passfile=str(path))
    with pytest.raises(InvalidInput) as caught:
        replication_password(entry, "repuser")
    assert str(path) in str(caught.value) and "repuser" in str(caught.value)
    assert "other-secret" not in str(caught.value)
    path.write_text("db1:5432:*:other:other-secret\n*:*:*:repuser:rep\\:pw\n")
    secret = replication_password(entry, "repuser")
    assert secret is not None and secret.reveal() == "rep:pw" and "rep:pw" not in repr(secret)
    os.chmod(path, 0o644)
    with pytest.raises(InvalidInput, match="readable by others: chmod 600"):
        replication_password(entry, "repuser")
    missing = ReplicationEntry("repuser", passfile=str(tmp_path / "none"))
    with pytest.raises(InvalidInput, match="cannot read the passfile"):
        replication_password(missing, "repuser")
