"""Discovery, the topology file, the CLI's codes and the PATH search, without servers."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from pgstream.cli import main
from pgstream.cli.common import classify, error_code
from pgstream.errors import (
    InvalidName,
    NodeUnreachable,
    PlanFailed,
    ServerMismatch,
    SwitchoverRefused,
    TopologyError,
)
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts import binaries
from pgstream.hosts.host import Completed
from pgstream.hosts.running import _file_target, _unit_of, postmaster_facts
from pgstream.ops.discover.found import Discovery, NodeFacts
from pgstream.ops.discover.probe import host_slug, parse_conninfo
from pgstream.ops.remove import _without
from pgstream.ops.status import ClusterStatus, PrimaryStatus, StandbyStatus
from pgstream.render.sync_spec import SyncSpec
from pgstream.render.topology import (
    NodeEntry,
    ReplicationEntry,
    Topology,
    parse_topology,
    render_topology,
)
from tests.jsonschema_lite import errors

ROOT = Path(__file__).resolve().parents[2]
GOOD = '''
[replication]
user = "repuser"
password_env = "PW"

[nodes.main]
conninfo = "host=127.0.0.1 port=5432 user=postgres"
data_dir = "/srv/pg/main"

[nodes.replica]
conninfo = "host=db2 port=5433 user=postgres"
host = "admin@db2"
become = "root"
service = "systemd:postgresql@15-main.service"
slot = "r1"
application_name = "walreceiver"
'''


def test_topology_round_trip() -> None:
    topology = parse_topology(GOOD)
    assert [n.name for n in topology.nodes] == ["main", "replica"]
    assert topology.node("replica").become == "root"
    text = render_topology(topology, comment="a comment\nover two lines")
    assert parse_topology(text) == topology
    odd = Topology((NodeEntry("a", 'host=/tmp port=1 options=\'-c x="y\\\\z"\''),),
                   ReplicationEntry(passfile="/root/p\u00e9ss"))
    assert parse_topology(render_topology(odd)) == odd


@pytest.mark.parametrize(("change", "expected"), [
    (("[nodes.main]", "[nodes.main]\ncolour = 'red'"), "unknown key nodes.main.colour"),
    (("[replication]", "[replication]\npassword = 'x'"), "never holds a password"),
    (("[nodes.main]", "[nodes.main]\npassword = 'x'"), "never holds a password"),
    (("user=postgres\"\ndata", "user=postgres password=x\"\ndata"), "holds a password"),
    (("port=5432", "port=70000"), "bad port '70000'"),
    (("port=5432", "port=abc"), "bad port 'abc'"),
    (("[nodes.replica]", "[nodes.other]\nconninfo = 'port=1'\ndata_dir = '/srv/pg/main/'\n"
      "[nodes.replica]"), "same data directory"),
    (('data_dir = "/srv/pg/main"', 'data_dir = "relative"'), "absolute path"),
    (('password_env = "PW"', 'password_env = "PW"\npassfile = "/x"'), "both"),
    (('service = "systemd:postgresql@15-main.service"', 'service = "init.d"'), "pg_ctl"),
    (("[nodes.main]", "[nodes.Main]"), "invalid node name"),
    (("[nodes.main]", "[nodes.main"), "not valid TOML"),
    (("host=db2 port=5433", "host=127.0.0.1 port=5432"), "same conninfo"),
])
def test_topology_errors_are_clear(change: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*change, 1)
    assert text != GOOD
    with pytest.raises(TopologyError, match=expected) as caught:
        parse_topology(text, "pgstream.toml")
    assert str(caught.value).startswith("pgstream.toml: ")
    assert "=x" not in str(caught.value) and "'x'" not in str(caught.value)


def test_discovery_writes_a_topology_without_password() -> None:
    facts = NodeFacts(name="main", named_by="host and port", role="primary", reachable=True,
                      conninfo="host=127.0.0.1 port=5432 password=********", host="local",
                      data_directory="/srv/main", service="pg_ctl")
    text = render_topology(Discovery((facts,)).topology())
    assert "password=" not in text and "*" not in text and 'data_dir = "/srv/main"' in text
    assert 'service = "pg_ctl"' in text


def test_primary_conninfo_password_is_dropped() -> None:
    params, had = parse_conninfo("user=repuser password='s3cr3t x' host=10.0.0.1 port=5432")
    assert had and "password" not in params and params["host"] == "10.0.0.1"
    assert parse_conninfo("user=repuser host=h") == ({"user": "repuser", "host": "h"}, False)
    assert parse_conninfo("not a conninfo ' ") == ({}, False)


def test_names_from_host_and_port() -> None:
    assert host_slug("127.0.0.1", 5432) == "local_5432"
    assert host_slug("/var/run/postgresql", 5433) == "local_5433"
    assert host_slug("10.0.0.5", 5432) == "h10_0_0_5_5432"
    assert host_slug("DB-1.example", 5432) == "db_1_example_5432"


def test_postmaster_facts_over_a_remote_host() -> None:
    output = ("warning from ssh\nowner=postgres\npasswd=postgres:x:113:120::/var/lib/postgresql:"
              "/bin/bash\npid=4242\nexe=/usr/lib/postgresql/15/bin/postgres\n"
              "stderr=/var/log/postgresql/postgresql-15-main.log\n"
              "cgroup=0::/system.slice/system-postgresql.slice/postgresql@15-main.service\n"
              "pg_ctlcluster=yes\n")

    class Remote:
        name = "db1"

        def run(self, argv: tuple[str, ...], **_: object) -> Completed:
            assert argv[:2] == ("sh", "-c") and argv[-1] == "/var/lib/postgresql/15/main"
            return Completed(argv, 0, output, 0.01)

    facts = postmaster_facts(Remote(), Path("/var/lib/postgresql/15/main"))  # type: ignore[arg-type]
    assert facts.pid == 4242 and facts.owner is not None and facts.owner.uid == 113
    assert facts.bindir == Path("/usr/lib/postgresql/15/bin")
    assert facts.stderr == Path("/var/log/postgresql/postgresql-15-main.log")
    assert facts.unit == "postgresql@15-main.service"
    assert facts.has_pg_ctlcluster and not facts.has_systemd
    assert _unit_of("0::/user.slice/user-0.slice/session-1.scope") is None
    assert _unit_of("0::/") is None
    assert _file_target("pipe:[1234]") is None and _file_target("/dev/null") is None


def test_sync_names_without_a_removed_standby() -> None:
    assert _without(SyncSpec.priority(["a", "b"]), "a") == SyncSpec.priority(["b"])
    assert _without(SyncSpec.priority(["a"]), "a") == SyncSpec.off()
    assert _without(SyncSpec.any(2, ["a", "b", "c"]), "c") == SyncSpec.any(2, ["a", "b"])
    assert _without(SyncSpec.first(2, ["a", "b"]), "a") == SyncSpec.first(1, ["b"])


def test_every_path_entry_is_searched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Debian's 15 first on PATH, 18's client tools later: both are found."""
    def fake(directory: Path, version: str, programs: tuple[str, ...]) -> None:
        directory.mkdir()
        for program in programs:
            exe = directory / program
            exe.write_text(f"#!/bin/sh\necho '{program} (PostgreSQL) {version}'\n")
            exe.chmod(0o755)

    fake(tmp_path / "pg15", "15.4", ("postgres", "initdb", "pg_ctl", "pg_basebackup"))
    fake(tmp_path / "pg18", "18.1", ("pg_basebackup", "psql"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'pg15'}{os.pathsep}{tmp_path / 'pg18'}")
    monkeypatch.delenv("PGSTREAM_BINDIR", raising=False)
    found = {i.bindir for i in binaries.discover()}
    assert {tmp_path / "pg15", tmp_path / "pg18"} <= found
    server16 = ServerVersion.parse("16.2")
    chosen = binaries.find_client("pg_basebackup", server16)
    assert chosen.version.major_num >= server16.major_num


def test_error_codes_and_exit_codes() -> None:
    assert error_code(SwitchoverRefused("x")) == "switchover_refused"
    assert error_code(NodeUnreachable("x")) == "node_unreachable"
    assert classify(TopologyError("x")) == ("invalid_input", 2)
    assert classify(SwitchoverRefused("x")) == ("refused", 1)
    assert classify(NodeUnreachable("x")) == ("unreachable", 3)
    assert classify(ServerMismatch("x")) == ("server_state", 4)
    assert classify(PlanFailed("x")) == ("operation_failed", 5)
    assert classify(InvalidName("x")) == ("invalid_input", 2)


def test_cli_modules_import_no_library_at_load() -> None:
    """``import pgstream.cli`` stays light: verbs import the library when they run."""
    for path in (ROOT / "src" / "pgstream" / "cli").glob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("pgstream") or node.module.startswith(
                    "pgstream.cli"), f"{path.name} imports {node.module} at load"
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith(("pgstream", "psycopg")) for a in node.names)


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--version"])
    assert caught.value.code == 0 and "pgstream" in capsys.readouterr().out
    assert main(["follow", "only-one", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "usage"


def test_status_schema_accepts_a_status_and_refuses_a_broken_one() -> None:
    schema = json.loads((ROOT / "docs" / "status.schema.json").read_text())
    status = ClusterStatus(
        PrimaryStatus("main", "18.1", Lsn.parse("0/3000060"), False, 1),
        (StandbyStatus("walreceiver", "streaming", replay_lag_bytes=0,
                       replay_lag=dt.timedelta(milliseconds=3), slot_name="r1",
                       sync_state="async", sync_priority=0, upstream="main"),),
        dt.datetime.now(dt.UTC))
    document = json.loads(json.dumps({"ok": True, "command": "status", **status.to_dict(),
                                      "problems": []}, default=str))
    assert errors(document, schema) == []
    document["standbys"][0]["state"] = 3
    del document["problems"]
    assert len(errors(document, schema)) == 2


def test_an_unset_password_variable_is_bad_input_before_any_server_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A topology naming an unset variable is refused as bad input (exit 2) even when no
    node can be reached: the file is wrong whatever the servers' state."""
    from pgstream.errors import InvalidInput
    from pgstream.ops.discover.from_file import found_in_file

    path = tmp_path / "pgstream.toml"
    # Ports 1 and 2 on loopback: nothing listens there; asking it would be NodeUnreachable.
    path.write_text(GOOD.replace("port=5432", "port=1").replace(
        "host=db2 port=5433", "host=127.0.0.1 port=2"), encoding="utf-8")
    monkeypatch.delenv("PW", raising=False)
    with pytest.raises(InvalidInput, match=r"\$PW"):
        found_in_file(path)
