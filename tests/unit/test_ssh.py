"""SshHost and the service controllers' argv (no network): quoting, sudo, secrets on stdin."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from pgstream.errors import CommandFailed, InvalidInput, InvalidName
from pgstream.hosts.host import Completed, OsUser
from pgstream.hosts.ssh import SshHost
from pgstream.render import commands

POSTGRES = OsUser("postgres", 101, 104, "/var/lib/postgresql")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: list[str], *, stdin: str | None = None, **_: object) -> Completed:
        self.calls.append((list(argv), stdin))
        return Completed(tuple(argv), 0, "<<b64:aGk=:b64>>", 0.01)


def host(**kwargs: object) -> tuple[SshHost, Recorder]:
    made = SshHost("db1.example", ssh_config=Path("/cfg"), **kwargs)  # type: ignore[arg-type]
    recorder = Recorder()
    made._local = recorder  # type: ignore[assignment]
    return made, recorder


def test_commands_are_quoted_for_the_remote_shell_and_run_as_the_user() -> None:
    ssh, rec = host(login="admin")
    evil = "/srv/pg data/$(rm -rf /); `x`"
    ssh.run(["pg_ctl", "start", "-D", evil], user=POSTGRES, env={"PGPASSFILE": "/p f"})
    argv, stdin = rec.calls[0]
    assert argv[:3] == ["ssh", "-F", "/cfg"]
    assert "BatchMode=yes" in argv
    assert argv[-3:-1] == ["db1.example", "--"]
    assert shlex.split(argv[-1]) == ["sudo", "-n", "-u", "postgres", "--", "env",
                                     "PGPASSFILE=/p f", "pg_ctl", "start", "-D", evil]
    assert stdin is None


def test_no_sudo_for_the_login_user() -> None:
    ssh, rec = host(login="postgres")
    ssh.run(["true"], user=POSTGRES)
    assert shlex.split(rec.calls[0][0][-1]) == ["true"]


def test_file_contents_travel_on_stdin_never_in_argv() -> None:
    ssh, rec = host()
    secret = "127.0.0.1:5432:*:replicator:s3cr3t'\"pw"
    ssh.write_text(Path("/srv/standby.pgpass"), secret, mode=0o600, owner=POSTGRES)
    argv, stdin = rec.calls[0]
    assert stdin == secret
    assert all("s3cr3t" not in word for word in argv)
    words = shlex.split(argv[-1])
    assert words[-3:] == ["/srv/standby.pgpass", "600", "101:104"]


def test_read_uses_markers() -> None:
    ssh, _rec = host()
    assert ssh.read_bytes(Path("/x")) == b"hi"


@pytest.mark.parametrize("bad", ["", "-oProxyCommand=x", "a b", "host\n"])
def test_bad_destinations(bad: str) -> None:
    with pytest.raises(InvalidInput, match="ssh destination"):
        SshHost(bad)


def test_pg_ctlcluster_and_systemctl_argv() -> None:
    assert commands.pg_ctlcluster("15", "main", "stop", mode="fast") == (
        "pg_ctlcluster", "15", "main", "stop", "-m", "fast")
    assert commands.pg_ctlcluster("15", "main", "start", wait=False) == (
        "pg_ctlcluster", "15", "main", "start", "--", "-W")
    assert commands.pg_ctlcluster("9.6", "main", "promote") == (
        "pg_ctlcluster", "9.6", "main", "promote")
    assert commands.systemctl("restart", "postgresql@15-main") == (
        "systemctl", "restart", "postgresql@15-main")
    with pytest.raises(InvalidInput):
        commands.systemctl("restart", "x; rm -rf /")
    with pytest.raises(InvalidInput):
        commands.systemctl("enable", "postgresql")
    with pytest.raises(InvalidInput):
        commands.pg_ctlcluster("15", "ma in", "start")


def test_systemd_service_runs_systemctl_and_promotes_with_pg_ctl() -> None:
    from pgstream.hosts.service import SystemdService

    ssh, rec = host(login="admin")
    svc = SystemdService(ssh, Path("/usr/lib/postgresql/15/bin"),
                         Path("/var/lib/postgresql/15/main"), POSTGRES, unit="postgresql@15-main")
    svc.reload()
    svc.promote()
    first, second = (shlex.split(call[0][-1]) for call in rec.calls)
    assert first == ["systemctl", "reload", "postgresql@15-main"]
    assert second == ["sudo", "-n", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                      "promote", "-D", "/var/lib/postgresql/15/main", "-W", "-t", "60"]


def test_the_login_is_asked_once_and_root_switches_with_runuser() -> None:
    ssh, rec = host()
    rec_output = rec.run  # the recorder answers "<<b64:...>>"; make "id -un" answer root

    def run(argv: list[str], *, stdin: str | None = None, **kw: object) -> Completed:
        done = rec_output(argv, stdin=stdin, **kw)
        if shlex.split(argv[-1]) == ["id", "-un"]:
            return Completed(done.argv, 0, "root\n", 0.01)
        return done

    ssh._local = type("R", (), {"run": staticmethod(run)})()
    ssh.run(["true"], user=POSTGRES)
    ssh.run(["true"], user=POSTGRES)
    commands_run = [shlex.split(call[0][-1]) for call in rec.calls]
    assert commands_run == [["id", "-un"], ["runuser", "-u", "postgres", "--", "true"],
                            ["runuser", "-u", "postgres", "--", "true"]]


def test_become_runs_the_userless_work_through_sudo() -> None:
    ssh, rec = host(login="admin", become="root")
    secret = "127.0.0.1:5432:*:replicator:s3cr3t"
    ssh.write_text(Path("/var/lib/postgresql/15/main.pgpass"), secret, owner=POSTGRES)
    ssh.run(["pg_ctlcluster", "15", "main", "reload"])
    ssh.run(["pg_basebackup", "-D", "."], user=POSTGRES, cwd=Path("/srv/pg data"))
    write, reload, clone = (shlex.split(call[0][-1]) for call in rec.calls)
    assert write[:6] == ["sudo", "-n", "-u", "root", "--", "sh"]
    assert rec.calls[0][1] == secret and all("s3cr3t" not in w for w in rec.calls[0][0])
    assert reload == ["sudo", "-n", "-u", "root", "--", "pg_ctlcluster", "15", "main", "reload"]
    # The directory is entered as the switched user (the login may not be allowed in).
    assert clone == ["sudo", "-n", "-u", "postgres", "--", "sh", "-c",
                     'cd "$1" && shift && exec "$@"', "sh", "/srv/pg data",
                     "pg_basebackup", "-D", "."]


def test_become_the_login_itself_switches_nothing() -> None:
    ssh, rec = host(login="root", become="root")
    ssh.run(["systemctl", "reload", "postgresql@15-main"])
    assert shlex.split(rec.calls[0][0][-1]) == ["systemctl", "reload", "postgresql@15-main"]


@pytest.mark.parametrize("bad", ["", "-u", "root;id", "Root", "a b", "x" * 40])
def test_become_must_be_a_user_name(bad: str) -> None:
    with pytest.raises(InvalidName, match="OS user name"):
        SshHost("db1.example", become=bad)


@pytest.mark.parametrize(("returncode", "output", "message"), [
    (1, "sudo: a password is required\n", "sudo asks admin for a password to run as root"),
    (127, "sh: 1: sudo: not found\n", "sudo is not installed there"),
    (127, "bash: line 1: sudo: command not found\n", "sudo is not installed there"),
    (1, "sudo: unknown user rooot\n", "no OS user root there"),
])
def test_a_failed_switch_raises_even_unchecked(returncode: int, output: str,
                                               message: str) -> None:
    """``test -e`` through a sudo that refused must not read as "the path is absent"."""
    ssh, rec = host(login="admin", become="root")
    rec.run = lambda argv, **_: Completed(tuple(argv), returncode, output, 0.01)  # type: ignore[method-assign]
    with pytest.raises(CommandFailed, match=message):
        ssh.exists(Path("/var/lib/postgresql"))


def test_a_command_failing_on_its_own_is_not_a_failed_switch() -> None:
    ssh, rec = host(login="admin", become="root")
    rec.run = lambda argv, **_: Completed(tuple(argv), 1, "", 0.01)  # type: ignore[method-assign]
    assert ssh.exists(Path("/nowhere")) is False
