"""The command line on the seed's hand-built pair, end to end: ``discover --write``,
``status --json`` (valid against docs/status.schema.json), ``switchover --dry-run`` (nothing
changes), ``switchover``, ``status`` naming the new primary; exit and error codes."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pgstream.cli import main
from pgstream.hosts.wait import wait_for
from tests.jsonschema_lite import errors

from .conftest import Rig
from .seed_pair import PASSWORD, SeedPair, seed_pair

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "status.schema.json").read_text())


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def _start_time(conninfo: str) -> object:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT pg_postmaster_start_time(), pg_is_in_recovery()").fetchone()


def _discovered(rig: Rig, empty_dir: Path, capsys: pytest.CaptureFixture[str],
                monkeypatch: pytest.MonkeyPatch) -> tuple[SeedPair, Path]:
    """The seed pair, and the topology file ``pgstream discover --write`` made of it."""
    pair = seed_pair(rig)
    monkeypatch.setenv("PGSTREAM_TEST_PW", PASSWORD)
    config = empty_dir / "pgstream.toml"
    code, found = _run(capsys, "discover", pair.conninfo(pair.primary_port), "--write",
                       str(config), "--password-env", "PGSTREAM_TEST_PW", "--json")
    assert code == 0, found
    return pair, config


def test_cli_on_the_seed_pair(rig: Rig, empty_dir: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    pair, config = _discovered(rig, empty_dir, capsys, monkeypatch)
    written = tomllib.loads(config.read_text())
    primary = f"local_{pair.primary_port}"
    assert set(written["nodes"]) == {primary, "walreceiver"}
    assert written["replication"] == {"user": "repuser", "password_env": "PGSTREAM_TEST_PW"}
    assert PASSWORD not in config.read_text() and "password=" not in config.read_text()
    # Refused without --force; printed, not written, with --dry-run.
    assert main(["discover", pair.conninfo(pair.primary_port), "--write", str(config)]) == 2
    capsys.readouterr()

    code, status = _run(capsys, "status", "-c", str(config), "--json")
    assert code == 0, status
    assert errors(status, SCHEMA) == []
    assert status["primary"]["name"] == primary
    (standby,) = status["standbys"]
    assert standby["name"] == "walreceiver" and standby["slot_name"] == "r1"
    assert standby["state"] == "streaming"

    before = (_start_time(pair.conninfo(pair.primary_port)),
              _start_time(pair.conninfo(pair.standby_port)))
    code, dry = _run(capsys, "switchover", "walreceiver", "-c", str(config), "--dry-run",
                     "--json")
    assert code == 0 and dry["dry_run"] is True
    kinds = [s["kind"] for s in dry["plan"]["steps"]]
    assert "promote" in kinds and "stop" in kinds
    assert (_start_time(pair.conninfo(pair.primary_port)),
            _start_time(pair.conninfo(pair.standby_port))) == before

    code, done = _run(capsys, "switchover", "walreceiver", "-c", str(config), "--json")
    assert code == 0, done
    assert done["primary"] == "walreceiver"
    # The next run reads the roles from the servers: walreceiver is the primary now.
    done_proc = subprocess.run(
        [sys.executable, "-m", "pgstream", "status", "-c", str(config), "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    after = json.loads(done_proc.stdout)
    assert done_proc.returncode == 0, done_proc.stdout + done_proc.stderr
    assert errors(after, SCHEMA) == []
    assert after["primary"]["name"] == "walreceiver"
    assert [s["name"] for s in after["standbys"]] == [primary]
    assert after["standbys"][0]["state"] == "streaming"
    main(["status", "-c", str(config)])
    assert "walreceiver: the primary" in capsys.readouterr().out

    # A destructive verb without --yes, stdin not a terminal: refused, nothing changed.
    code, refused = _run(capsys, "remove-standby", primary, "-c", str(config), "--json")
    assert code == 1 and refused["error"]["code"] == "confirmation_required"
    assert primary in tomllib.loads(config.read_text())["nodes"]


def test_cli_errors_have_codes(empty_dir: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSTREAM_CONFIG", raising=False)
    monkeypatch.chdir(empty_dir)
    code, doc = _run(capsys, "status", "--json")
    assert code == 2 and doc["error"]["code"] == "no_topology"
    code, doc = _run(capsys, "switchover", "--json")
    assert code == 2 and doc["error"]["code"] == "usage"
    code, doc = _run(capsys, "discover", "host=127.0.0.1 port=1 connect_timeout=2", "--json")
    assert code == 3 and doc["error"]["code"] == "node_unreachable"
    (empty_dir / "pgstream.toml").write_text('[nodes.a]\nconninfo = "port=5432"\nx = 1\n')
    code, doc = _run(capsys, "status", "--json")
    assert code == 2 and doc["error"]["code"] == "topology_error"


def _has_table(conninfo: str, table: str) -> bool:
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
            return bool(row and row[0])
    except psycopg.OperationalError:
        return False


def test_cli_failover_of_a_dead_primary_then_rejoin(
        rig: Rig, empty_dir: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``failover`` refused while the primary lives, then (primary stopped) refused without
    ``--yes``, then done; ``rejoin`` brings the old primary back as a standby of the new one."""
    pair, config = _discovered(rig, empty_dir, capsys, monkeypatch)
    old = f"local_{pair.primary_port}"
    with psycopg.connect(pair.conninfo(pair.primary_port), autocommit=True) as conn:
        conn.execute("CREATE TABLE before_failover AS SELECT 1 AS x")
    wait_for(lambda: _has_table(pair.conninfo(pair.standby_port), "before_failover"),
             timeout=30, what="the standby to replay the table")

    code, refused = _run(capsys, "failover", "walreceiver", "-c", str(config), "--yes",
                         "--json")
    assert code != 0 and "error" in refused, refused
    assert _start_time(pair.conninfo(pair.standby_port))[1] is True  # type: ignore[index]

    pair.primary.stop("fast")  # the primary dies
    code, refused = _run(capsys, "failover", "walreceiver", "-c", str(config), "--json")
    assert code == 1 and refused["error"]["code"] == "confirmation_required"
    assert _start_time(pair.conninfo(pair.standby_port))[1] is True  # type: ignore[index]
    code, done = _run(capsys, "failover", "walreceiver", "-c", str(config), "--yes", "--json")
    assert code == 0, done
    assert done["primary"] == "walreceiver"
    with psycopg.connect(pair.conninfo(pair.standby_port), autocommit=True) as conn:
        conn.execute("INSERT INTO before_failover VALUES (2)")

    code, back = _run(capsys, "rejoin", old, "-c", str(config), "--yes", "--json")
    assert code == 0, back
    code, status = _run(capsys, "status", "-c", str(config), "--json")
    assert code == 0 and errors(status, SCHEMA) == [], status.get("problems")
    wait_for(lambda: _count(pair.conninfo(pair.primary_port)) == 2, timeout=30,
             what="the rejoined node to replay the insert")


def _count(conninfo: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM before_failover").fetchone()
        return int(row[0]) if row else -1
