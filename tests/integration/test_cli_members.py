"""The member verbs of the command line, run as a user runs them (``python -m pgstream`` in a
subprocess, stdin not a terminal) on the seed's hand-built pair and its topology file
(``pgstream discover --write``): ``setup --dry-run`` changes nothing; ``add-standby`` clones a
streaming standby; ``follow`` makes it a cascade and then points it back at the primary;
``remove-standby`` is refused without ``--yes`` and then done (slot dropped, server stopped,
data directory kept); ``status --watch`` ends cleanly on SIGINT; ``add-standby`` with the
password's environment variable unset is refused (exit 2) with nothing made.

One pair is shared by the whole module (a module fixture, removed even when a test fails);
the tests run in file order, and the ones after ``add-standby`` use the standby it adds.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest

from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import server_user
from pgstream.hosts.wait import wait_for

from .conftest import Rig
from .seed_pair import PASSWORD, SeedPair, seed_pair

PW_ENV = "PGSTREAM_TEST_MEMBERS_PW"
NEW = "member2"  # the standby add-standby makes


@attrs.define
class Members:
    """The shared pair, its topology file and the environment the CLI runs in."""

    rig: Rig
    pair: SeedPair
    config: Path
    env: dict[str, str]

    @property
    def primary_name(self) -> str:
        return f"local_{self.pair.primary_port}"

    def cli(self, *argv: str, env: dict[str, str] | None = None,
            timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """``python -m pgstream ARGV -c CONFIG``, stdin not a terminal."""
        return subprocess.run([sys.executable, "-m", "pgstream", *argv, "-c", str(self.config)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env=self.env if env is None else env, timeout=timeout,
                              check=False)

    def json(self, *argv: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        done = self.cli(*argv, "--json", env=env)
        assert "Traceback" not in done.stderr, done.stderr
        lines = done.stdout.strip().splitlines()
        return done.returncode, (json.loads(lines[-1]) if lines else {"stderr": done.stderr})

    def nodes(self) -> dict[str, Any]:
        return dict(tomllib.loads(self.config.read_text())["nodes"])

    def conninfo(self, name: str) -> str:
        return str(self.nodes()[name]["conninfo"])

    @property
    def new_dir(self) -> Path:
        return self.rig.base / NEW


def _rows(conninfo: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        return conn.execute(query, params).fetchall()


def _senders(conninfo: str) -> dict[str, str]:
    """``application_name -> state`` of the walsenders of that server."""
    return {str(a): str(s) for a, s in _rows(
        conninfo, "SELECT application_name, state FROM pg_stat_replication")}


def _slots(conninfo: str) -> set[str]:
    return {str(r[0]) for r in _rows(conninfo, "SELECT slot_name FROM pg_replication_slots")}


def _receiver_port(conninfo: str) -> int | None:
    """The port the standby's walreceiver streams from (pg_stat_wal_receiver)."""
    rows = _rows(conninfo, "SELECT sender_port FROM pg_stat_wal_receiver WHERE status = "
                           "'streaming'")
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _server_state(members: Members) -> dict[str, object]:
    """What a change would show: per server its start time, role, slots, roles, settings
    changed, and every file under the rig (data directories, hba, auto.conf) with its size
    and mtime (logs excepted: the servers write them); the topology file's text."""
    state: dict[str, object] = {"topology": members.config.read_text()}
    for port in (members.pair.primary_port, members.pair.standby_port):
        conninfo = members.pair.conninfo(port)
        state[f"server {port}"] = _rows(conninfo, (
            "SELECT pg_postmaster_start_time(), pg_is_in_recovery(), "
            "(SELECT array_agg(slot_name ORDER BY slot_name) FROM pg_replication_slots), "
            "(SELECT array_agg(rolname ORDER BY rolname) FROM pg_roles), "
            "(SELECT array_agg(name || '=' || setting ORDER BY name) FROM pg_settings "
            " WHERE source NOT IN ('default', 'override'))"))
    files = {}
    for data_dir in (members.pair.primary.data_dir, members.pair.standby.data_dir):
        for name in ("postgresql.conf", "postgresql.auto.conf", "pg_hba.conf",
                     "postgresql.auto.conf.bak", "standby.signal"):
            path = data_dir / name
            files[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns) \
                if path.exists() else None
    state["files"] = files
    state["rig"] = sorted(p.name for p in members.rig.base.iterdir())
    return state


@pytest.fixture(scope="module")
def members(pgstream_server: Installation) -> Iterator[Members]:
    """The seed pair and its topology file, written by ``pgstream discover --write
    --password-env``; every server stopped and the directories removed afterwards."""
    user = server_user()
    base = Path(tempfile.mkdtemp(prefix="pgstream-members-"))
    if os.geteuid() == 0:
        os.chown(base, user.uid, user.gid)
    rig = Rig(base, pgstream_server, user)
    work = Path(tempfile.mkdtemp(prefix="pgstream-members-cfg-"))
    try:
        pair = seed_pair(rig)
        rig.service(NEW)  # the standby add-standby makes: stopped by the cleanup too
        env = {**os.environ, PW_ENV: PASSWORD}
        env.pop("PGSTREAM_CONFIG", None)
        made = Members(rig, pair, work / "pgstream.toml", env)
        done = subprocess.run(
            [sys.executable, "-m", "pgstream", "discover", pair.conninfo(pair.primary_port),
             "--write", str(made.config), "--password-env", PW_ENV, "--json"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120,
            check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert set(made.nodes()) == {made.primary_name, "walreceiver"}
        yield made
    finally:
        rig.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def test_setup_dry_run_changes_nothing(members: Members) -> None:
    before = _server_state(members)
    code, dry = members.json("setup", "--dry-run")
    assert code == 0, dry
    assert dry["dry_run"] is True and dry["plan"]["steps"], dry
    assert _server_state(members) == before
    done = members.cli("setup", "--dry-run")  # the text form: the plan, and still nothing
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip()
    assert _server_state(members) == before


def test_add_standby_without_the_password_is_refused(members: Members) -> None:
    """The topology takes the replication password from $PGSTREAM_TEST_MEMBERS_PW: unset, a
    new standby cannot authenticate, so add-standby is refused before anything is made (exit
    2, the variable named, no slot, no data directory, the file unchanged)."""
    env = {k: v for k, v in members.env.items() if k != PW_ENV}
    topology = members.config.read_text()
    code, refused = members.json("add-standby", NEW, "--data-dir", str(members.new_dir),
                                 env=env)
    assert code == 2, refused
    assert refused["error"]["category"] == "invalid_input", refused
    assert PW_ENV in refused["error"]["message"] and PASSWORD not in json.dumps(refused)
    assert not members.new_dir.exists()
    assert NEW not in _slots(members.pair.conninfo(members.pair.primary_port))
    assert members.config.read_text() == topology


def test_add_standby_without_a_password_source_is_refused(members: Members) -> None:
    """The topology names no password source while the standby streams with a password
    (pg_basebackup -R put one in its primary_conninfo): the new standby could not
    authenticate, so add-standby is refused before anything is made (exit 2, told where to
    give the password), instead of failing in pg_basebackup after its slot was made."""
    bare = members.config.with_name("no-password.toml")
    text = members.config.read_text()
    assert f'password_env = "{PW_ENV}"' in text
    bare.write_text(text.replace(f'password_env = "{PW_ENV}"\n', ""))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pgstream", "add-standby", NEW, "--data-dir",
             str(members.new_dir), "--json", "-c", str(bare)], stdin=subprocess.DEVNULL,
            capture_output=True, text=True, env=members.env, timeout=180, check=False)
        assert "Traceback" not in done.stderr, done.stderr
        refused = json.loads(done.stdout.strip().splitlines()[-1])
        assert done.returncode == 2, refused
        assert refused["error"]["category"] == "invalid_input", refused
        assert "password_env" in refused["error"]["message"], refused
        assert PASSWORD not in done.stdout + done.stderr
        assert not members.new_dir.exists()
        assert NEW not in _slots(members.pair.conninfo(members.pair.primary_port))
        assert NEW not in tomllib.loads(bare.read_text())["nodes"]
    finally:
        bare.unlink()


@pytest.fixture(scope="module")
def added(members: Members) -> Members:
    """``add-standby member2 --data-dir D``, done once for the tests that follow."""
    code, done = members.json("add-standby", NEW, "--data-dir", str(members.new_dir))
    assert code == 0, done
    return members


def test_add_standby_streams(added: Members) -> None:
    primary = added.pair.conninfo(added.pair.primary_port)
    wait_for(lambda: _senders(primary).get(NEW) == "streaming", timeout=60,
             what=f"{NEW} to stream from the primary")
    assert NEW in _slots(primary)
    entry = added.nodes()[NEW]
    assert entry["data_dir"] == str(added.new_dir) and "password" not in entry["conninfo"]
    assert PASSWORD not in added.config.read_text()
    code, status = added.json("status")
    assert code == 0, status
    assert {s["name"]: s["state"] for s in status["standbys"]}[NEW] == "streaming"


def test_follow_makes_a_cascade_and_back(added: Members) -> None:
    primary = added.pair.conninfo(added.pair.primary_port)
    middle = added.pair.conninfo(added.pair.standby_port)
    new = added.conninfo(NEW)
    code, done = added.json("follow", NEW, "walreceiver")
    assert code == 0, done
    wait_for(lambda: _senders(middle).get(NEW) == "streaming", timeout=60,
             what=f"{NEW} to stream from walreceiver")
    assert _receiver_port(new) == added.pair.standby_port
    assert NEW not in _senders(primary) and NEW not in _slots(primary)
    assert NEW in _slots(middle)

    code, done = added.json("follow", NEW, added.primary_name)
    assert code == 0, done
    wait_for(lambda: _senders(primary).get(NEW) == "streaming", timeout=60,
             what=f"{NEW} to stream from the primary again")
    assert _receiver_port(new) == added.pair.primary_port
    assert NEW not in _senders(middle) and NEW not in _slots(middle)
    assert NEW in _slots(primary)


def test_remove_standby_needs_yes_then_keeps_the_data(added: Members) -> None:
    primary = added.pair.conninfo(added.pair.primary_port)
    service = next(s for s in added.rig.services if s.data_dir == added.new_dir)
    assert service.running()
    code, refused = added.json("remove-standby", NEW)
    assert code == 1, refused
    assert refused["error"]["code"] == "confirmation_required"
    assert service.running() and NEW in _slots(primary) and NEW in added.nodes()

    code, done = added.json("remove-standby", NEW, "--yes")
    assert code == 0, done
    assert NEW not in _slots(primary)
    assert not service.running()
    assert (added.new_dir / "PG_VERSION").is_file()  # the data directory is kept
    assert NEW not in added.nodes()
    assert NEW not in _senders(primary)


def test_status_watch_ends_cleanly_on_sigint(members: Members) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgstream", "status", "--watch", "0.2", "-c",
         str(members.config)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=members.env)
    try:
        heads: list[str] = []
        deadline = time.monotonic() + 60
        assert proc.stdout is not None
        while len(heads) < 3 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            if ": the primary, PostgreSQL" in line:
                heads.append(line)
        assert len(heads) >= 3, f"{heads}; rc={proc.poll()}"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err, err
    assert "\x1b[" not in out  # no screen clearing when stdout is no terminal
