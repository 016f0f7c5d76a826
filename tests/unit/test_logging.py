"""Logging: the pgstream logger, plan steps at INFO, argv at DEBUG, rollbacks at WARNING,
secrets masked everywhere."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from pgstream.errors import PlanFailed
from pgstream.facts import redact
from pgstream.hosts.host import LocalHost
from pgstream.ops.plan import Plan, Report, Step, StepKind

SECRET = "s3cr3t-Pa55"


def _ok(_report: Report) -> None:
    return None


def _fail(_report: Report) -> None:
    raise RuntimeError("disk full")


def _undo_fails() -> None:
    raise RuntimeError("cannot drop it")


def test_import_adds_only_a_null_handler() -> None:
    code = ("import logging, pgstream; log = logging.getLogger('pgstream'); "
            "print([type(h).__name__ for h in log.handlers], log.level)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.split() == ["['NullHandler']", "0"]


def test_plan_steps_at_info_rollback_and_failed_undo_at_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pgstream")
    plan = Plan("demo", [
        Step("primary", StepKind.SLOT, "create slot s1", action=_ok, undo=lambda: None),
        Step("primary", StepKind.ROLE, "create role r", action=_ok, undo=_undo_fails),
        Step("standby1", StepKind.BASE_BACKUP, "clone", action=_fail, host="db2"),
    ])
    with pytest.raises(PlanFailed):
        plan.apply()
    lines = [(r.name, r.levelname, r.getMessage()) for r in caplog.records]
    info = [m for n, lvl, m in lines if lvl == "INFO" and n == "pgstream.ops.plan"]
    assert info == [
        "step 1/3 [primary@localhost] slot: create slot s1: started",
        info[1],
        "step 2/3 [primary@localhost] role: create role r: started",
        info[3],
        "step 3/3 [standby1@db2] base backup: clone: started",
    ]
    assert info[1].startswith("step 1/3 [primary@localhost] create slot s1: done: changed (")
    warnings = [m for _, lvl, m in lines if lvl == "WARNING"]
    assert warnings == [
        "step 3/3 [standby1@db2] clone: failed: disk full",
        "rolling back [primary@localhost] create role r",
        "could not undo [primary@localhost] create role r: cannot drop it",
        "rolling back [primary@localhost] create slot s1",
    ]


def test_argv_at_debug_with_secrets_masked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pgstream")
    LocalHost().run(["sh", "-c", "cat >/dev/null; true", "sh", f"password={SECRET}",
                     f"postgresql://rep:{SECRET}@db/x"],
                    env={"PGPASSWORD": SECRET, "PGPASSFILE": "/tmp/pass"}, stdin=SECRET)
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert any(m.startswith("run: PGPASSWORD='********' PGPASSFILE=/tmp/pass sh -c")
               for m in debug), debug
    assert any("(stdin: 11 chars)" in m for m in debug)
    assert any(m.startswith("exit 0 after") for m in debug)
    assert not any(SECRET in r.getMessage() for r in caplog.records)


def test_nothing_formatted_when_debug_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pgstream")
    LocalHost().run(["true"])
    assert caplog.records == []


@pytest.mark.parametrize(("raw", "shown"), [
    ("host=a password=abc user=x", "host=a password=******** user=x"),
    ("host=a password = 'a b\\' c' user=x", "host=a password = ******** user=x"),
    ("primary_conninfo = 'host=a password=''x y'' user=r'",
     "primary_conninfo = 'host=a password=******** user=r'"),
    ("CREATE ROLE r WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:a''b'",
     "CREATE ROLE r WITH LOGIN PASSWORD '********'"),
    ("postgresql://u:pw@h/db and postgres://h/db", "postgresql://u:********@h/db and "
                                                   "postgres://h/db"),
    ("env PGPASSWORD=abc MY_TOKEN=\"x y\" pg_dump", "env PGPASSWORD=******** MY_TOKEN=******** "
                                                    "pg_dump"),
    ("PGPASSFILE=/x passfile=/y", "PGPASSFILE=/x passfile=/y"),
])
def test_redact_text(raw: str, shown: str) -> None:
    assert redact.text(raw) == shown


def test_redact_argv_and_env() -> None:
    assert redact.argv(["env", "PGPASSWORD=zz", "psql", "host=x password=qq"]) == \
        "env 'PGPASSWORD=********' psql 'host=x password=********'"
    assert redact.env({"PGPASSWORD": "x", "API_SECRET": "y", "PGHOST": "h"}) == {
        "PGPASSWORD": "********", "API_SECRET": "********", "PGHOST": "h"}


def test_cli_verbosity_sets_the_level_for_the_run_only(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from pgstream import cli
    from pgstream.hosts import binaries

    seen: list[int] = []

    def discover() -> list[object]:
        seen.append(logging.getLogger("pgstream").level)
        return []

    monkeypatch.setattr(binaries, "discover", discover)
    log = logging.getLogger("pgstream")
    before = (log.level, list(log.handlers))
    for argv, level in ((["binaries"], logging.WARNING), (["-v", "binaries"], logging.INFO),
                        (["-vv", "binaries"], logging.DEBUG),
                        (["-q", "binaries"], logging.ERROR)):
        assert cli.main(argv) == 1
        assert seen.pop() == level
    assert (log.level, list(log.handlers)) == before
    capsys.readouterr()


def test_ssh_argv_at_debug_names_host_and_user(caplog: pytest.LogCaptureFixture) -> None:
    from pathlib import Path

    from pgstream.hosts.host import Completed, OsUser
    from pgstream.hosts.ssh import SshHost

    class Recorder:
        def run(self, argv: list[str], **_: object) -> Completed:
            return Completed(tuple(argv), 0, "", 0.01)

    ssh = SshHost("db1.example", ssh_config=Path("/cfg"), login="admin")
    ssh._local = Recorder()  # type: ignore[assignment]
    caplog.set_level(logging.DEBUG, logger="pgstream")
    ssh.write_text(Path("/etc/pg/pass"), f"*:*:*:rep:{SECRET}\n")  # a passfile: on stdin
    ssh.run(["pg_ctl", "start"], user=OsUser("postgres", 1, 1), env={"PGPASSWORD": SECRET})
    messages = [r.getMessage() for r in caplog.records if r.name == "pgstream.hosts.ssh"]
    assert messages[0].startswith("run on db1.example: sh -c ") and "(stdin: " in messages[0]
    assert messages[1] == "run on db1.example as postgres: PGPASSWORD='********' pg_ctl start"
    assert not any(SECRET in r.getMessage() for r in caplog.records)
