"""SshHost and the service controllers' argv (no network): quoting, sudo, secrets on stdin; the
remote command's process group, its marker, and the command that stops it when interrupted."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from pgstream.errors import CommandFailed, HostUnreachable, InvalidInput, InvalidName, Terminated
from pgstream.hosts.host import Completed, LocalHost, OsUser
from pgstream.hosts.ssh import SshHost
from pgstream.render import commands
from pgstream.render.process_group import (
    GROUP,
    PRINT_GROUP,
    STOP_GROUP,
    GroupWatch,
    stop_group,
    without_marker,
)

POSTGRES = OsUser("postgres", 101, 104, "/var/lib/postgresql")


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: list[str], *, stdin: str | None = None, **_: object) -> Completed:
        self.calls.append((list(argv), stdin))
        return Completed(tuple(argv), 0, "<<b64:aGk=:b64>>", 0.01)


def remote(argv: list[str]) -> list[str]:
    """The remote command's words, without what puts it in a process group of its own (the
    login shell printing its pid, then ``exec``; ``sh -c GROUP sh`` inside a user switch)."""
    line = argv[-1]
    if line.startswith(PRINT_GROUP + "; exec "):
        return shlex.split(line.removeprefix(PRINT_GROUP + "; exec "))
    words = shlex.split(line)
    for at in range(len(words) - 3):
        if words[at:at + 4] == ["sh", "-c", GROUP, "sh"]:
            return words[:at] + words[at + 4:]
    raise AssertionError(f"no process-group wrapper in {line}")


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
    assert remote(argv) == ["sudo", "-n", "-u", "postgres", "--", "env",
                                     "PGPASSFILE=/p f", "pg_ctl", "start", "-D", evil]
    assert stdin is None


def test_no_sudo_for_the_login_user() -> None:
    ssh, rec = host(login="postgres")
    ssh.run(["true"], user=POSTGRES)
    assert remote(rec.calls[0][0]) == ["true"]


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
    first, second = (remote(call[0]) for call in rec.calls)
    assert first == ["systemctl", "reload", "postgresql@15-main"]
    assert second == ["sudo", "-n", "-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl",
                      "promote", "-D", "/var/lib/postgresql/15/main", "-W", "-t", "60"]


def test_the_login_is_asked_once_and_root_switches_with_runuser() -> None:
    ssh, rec = host()
    rec_output = rec.run  # the recorder answers "<<b64:...>>"; make "id -un" answer root

    def run(argv: list[str], *, stdin: str | None = None, **kw: object) -> Completed:
        done = rec_output(argv, stdin=stdin, **kw)
        if remote(argv) == ["id", "-un"]:
            return Completed(done.argv, 0, "root\n", 0.01)
        return done

    ssh._local = type("R", (), {"run": staticmethod(run)})()
    ssh.run(["true"], user=POSTGRES)
    ssh.run(["true"], user=POSTGRES)
    commands_run = [remote(call[0]) for call in rec.calls]
    assert commands_run == [["id", "-un"], ["runuser", "-u", "postgres", "--", "true"],
                            ["runuser", "-u", "postgres", "--", "true"]]


def test_become_runs_the_userless_work_through_sudo() -> None:
    ssh, rec = host(login="admin", become="root")
    secret = "127.0.0.1:5432:*:replicator:s3cr3t"
    ssh.write_text(Path("/var/lib/postgresql/15/main.pgpass"), secret, owner=POSTGRES)
    ssh.run(["pg_ctlcluster", "15", "main", "reload"])
    ssh.run(["pg_basebackup", "-D", "."], user=POSTGRES, cwd=Path("/srv/pg data"))
    write, reload, clone = (remote(call[0]) for call in rec.calls)
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
    assert remote(rec.calls[0][0]) == ["systemctl", "reload", "postgresql@15-main"]


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


# -- the remote command's process group, and stopping it when interrupted ----------------------

class Loopback:
    """Runs what ssh would send to the remote shell with this machine's ``sh``, recording each
    command line. As under sshd, that shell leads a session (LocalHost makes one)."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: list[str], **kwargs: Any) -> Completed:
        self.calls.append(list(argv))
        return LocalHost().run(("sh", "-c", argv[-1]), **kwargs)


def loopback() -> tuple[SshHost, Loopback]:
    made = SshHost("db1.example", login="root")  # another user: runuser (we are root)
    loop = Loopback()
    made._local = loop  # type: ignore[assignment]
    return made, loop


def real_postgres() -> OsUser:
    try:
        return OsUser.lookup("postgres")
    except InvalidInput:
        pytest.skip("no postgres OS user here")


def test_the_group_goes_inside_the_user_switch_and_the_directory_change() -> None:
    """Run as another user, the group is that user's (who may signal it), made after ``cd``
    and ``env``; as the login user, the login shell prints its pid and execs the command."""
    ssh, rec = host(login="admin")
    ssh.run(["pg_basebackup", "-D", "."], user=POSTGRES, cwd=Path("/srv/pg data"),
            env={"PGAPPNAME": "x"})
    ssh.run(["true"], cwd=Path("/tmp/a b"))
    assert shlex.split(rec.calls[0][0][-1]) == [
        "sudo", "-n", "-u", "postgres", "--", "sh", "-c", 'cd "$1" && shift && exec "$@"', "sh",
        "/srv/pg data", "sh", "-c", GROUP, "sh", "env", "PGAPPNAME=x", "pg_basebackup", "-D",
        "."]
    assert rec.calls[1][0][-1] == (
        """cd '/tmp/a b' || exit; printf "<<pgstream-pgid:%s>>\\n" "$$"; exec true""")


def _ids_of_the_command(done: Completed) -> tuple[str, str, str]:
    """Its pid, and the process group and session (fields 5, 6 of /proc/PID/stat)."""
    pid, group, session = done.output.split()
    return pid, group, session


_IDS = ["sh", "-c", 'echo $$ $(cut -d " " -f 5,6 /proc/$$/stat)']


def test_as_the_login_user_the_command_is_the_login_shell_s_process() -> None:
    """sshd's session leader (here LocalHost's) execs the command: its group is its own."""
    ssh, _loop = loopback()
    lines: list[str] = []
    done = ssh.run(_IDS, on_output=lines.append)
    pid, group, session = _ids_of_the_command(done)
    assert pid == group == session
    assert "pgstream" not in done.output and lines == done.output.splitlines()


def test_as_another_user_the_command_gets_a_session_of_its_own() -> None:
    """``runuser`` starts ``sh`` as a child, no group leader: ``setsid`` makes the group, as
    that user; stdin, output and exit code are the command's."""
    ssh, loop = loopback()
    user = real_postgres()
    done = ssh.run([*_IDS[:2], _IDS[2] + '; read -r x; echo "$x"; id -un; exit 3'],
                   user=user, stdin="in put\n", check=False)
    assert done.returncode == 3
    ids, echoed, who = done.output.rsplit("\n", 3)[:3]
    pid, group, session = ids.split()
    assert pid == group == session
    assert (echoed, who) == ("in put", "postgres")
    assert "pgstream" not in done.output
    assert len(loop.calls) == 1


@pytest.mark.parametrize(("shape", "own_group"), [
    ("leader", True),  # sudo with use_pty made the group: exec'd in it
    ("child", True),  # runuser, sudo without a pty: setsid
    ("no-setsid", False),  # and no setsid there: as before
])
def test_the_group_script(shape: str, own_group: bool, tmp_path: Path) -> None:
    """``GROUP`` run by this machine's ``sh``: the command leads a group of its own and
    prints its id first; without setsid it just runs (no marker)."""
    env = None
    if shape == "no-setsid":
        bindir = tmp_path / "bin"
        bindir.mkdir()
        for tool in ("cat", "cut", "sh"):
            (bindir / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
        env = {"PATH": str(bindir)}
    script = ("sh", "-c", GROUP, "sh", *_IDS[:2], _IDS[2] + "; cat")
    if shape != "leader":  # a child of another shell (the "; exit" keeps it from exec'ing)
        script = ("sh", "-c", '"$@"; exit', "sh", *script)
    done = LocalHost().run(script, env=env, stdin="stdin\n")
    first, ids, rest = done.output.split("\n", 2)
    if not own_group:
        first, ids, rest = "", first, ids + "\n" + rest
    pid, group, session = ids.split()
    assert rest == "stdin\n"
    if own_group:
        assert first == f"<<pgstream-pgid:{pid}>>" and pid == group == session
    else:
        assert pid != group


def test_parsed_output_is_unchanged_by_the_marker(tmp_path: Path) -> None:
    ssh, loop = loopback()
    (tmp_path / "f").write_bytes(b"\x00binary\nlines\n")
    assert ssh.read_bytes(tmp_path / "f") == b"\x00binary\nlines\n"
    ssh.write_text(tmp_path / "g", "secret\n", mode=0o640)
    assert (tmp_path / "g").read_text() == "secret\n"
    assert ssh.resolve(tmp_path / "f") == tmp_path / "f"
    assert ssh.exists(tmp_path / "g") and not ssh.exists(tmp_path / "nothing")
    assert len(loop.calls) == 5  # one round trip a call, as before


def test_the_marker_is_taken_out_once_wherever_it_lands() -> None:
    """ssh merges stderr and stdout: the marker may land inside a line; a second marker (the
    command's own output) is kept."""
    assert without_marker("<<pgstream-pgid:42>>\nout\n") == "out\n"
    assert without_marker("warn<<pgstream-pgid:42>>\ning\n") == "warning\n"
    assert without_marker("<<pgstream-pgid:1>>\n<<pgstream-pgid:2>>\n") == (
        "<<pgstream-pgid:2>>\n")
    assert without_marker("no marker\n") == "no marker\n"
    seen: list[str] = []
    watch = GroupWatch(seen.append)
    for line in ("ssh: warning", "<<pgstream-pgid:4242>>", "x<<pgstream-pgid:7>>"):
        watch(line)
    assert watch.pgid == 4242 and seen == ["ssh: warning", "x<<pgstream-pgid:7>>"]
    partial = GroupWatch(None)
    partial("Warn<<pgstream-pgid:99>>")
    assert partial.pgid == 99


@pytest.mark.parametrize(("login", "target", "switch"), [
    ("admin", None, []),
    ("admin", "postgres", ["sudo", "-n", "-u", "postgres", "--"]),
    ("admin", "root", ["sudo", "-n", "-u", "root", "--"]),
    ("root", "postgres", []),  # root signals anyone's group
])
def test_the_stop_command_runs_as_the_group_s_user(login: str, target: str | None,
                                                   switch: list[str]) -> None:
    ssh, _rec = host(login=login)
    argv = ssh.stop_group_command(4242, target)
    assert argv[:3] == ["ssh", "-F", "/cfg"] and argv[-3:-1] == ["db1.example", "--"]
    assert shlex.split(argv[-1]) == [*switch, "sh", "-c", STOP_GROUP, "sh", "4242"]


@pytest.mark.parametrize("bad", [0, 1, -5, True])
def test_no_stop_command_for_what_is_no_process_group(bad: int) -> None:
    """``kill -- -1`` would signal every process the user may: refused."""
    ssh, _rec = host(login="admin")
    with pytest.raises(InvalidInput, match="not a process group"):
        ssh.stop_group_command(bad, None)
    with pytest.raises(InvalidInput, match="not a process group"):
        stop_group(bad)
    assert stop_group(4242) == ("sh", "-c", STOP_GROUP, "sh", "4242")


class Interrupted:
    """The local ssh client whose command prints the group marker, then fails as ``failure``
    says (an exception, or an exit code); the stop command answers ``stop_answer``."""

    def __init__(self, failure: BaseException | int | None,
                 stop_answer: Completed | BaseException | None = None) -> None:
        self.calls: list[list[str]] = []
        self.failure = failure
        self.stop_answer = stop_answer

    def run(self, argv: list[str], *, on_output: Any = None, **_: object) -> Completed:
        self.calls.append(list(argv))
        if shlex.quote(STOP_GROUP) in argv[-1]:
            if isinstance(self.stop_answer, BaseException):
                raise self.stop_answer
            return self.stop_answer or Completed(tuple(argv), 0, "", 0.01)
        if self.failure is not None and on_output is not None:
            on_output("<<pgstream-pgid:4242>>")
        if isinstance(self.failure, BaseException):
            raise self.failure
        code = self.failure if isinstance(self.failure, int) else 0
        return Completed(tuple(argv), code, "<<pgstream-pgid:4242>>\nout\n", 0.01)


def interrupted(failure: BaseException | int | None, **kwargs: Any) -> tuple[SshHost,
                                                                             Interrupted]:
    made = SshHost("db1.example", ssh_config=Path("/cfg"), login="admin", become="root")
    fake = Interrupted(failure, **kwargs)
    made._local = fake  # type: ignore[assignment]
    return made, fake


@pytest.mark.parametrize("failure", [
    CommandFailed("sleep on db1.example did not finish within 2 s and was stopped"),
    KeyboardInterrupt(), Terminated("SIGTERM"), RuntimeError("on_output failed")],
    ids=["timeout", "ctrl-c", "sigterm", "callback"])
def test_an_interrupted_command_s_group_is_stopped_then_the_error_goes_on(
        failure: BaseException) -> None:
    ssh, fake = interrupted(failure)
    with pytest.raises(type(failure)) as raised:
        ssh.run(["sleep", "300"], user=POSTGRES, timeout=2)
    if isinstance(failure, CommandFailed):
        assert str(raised.value).endswith("(on db1.example)")
    else:
        assert raised.value is failure
    assert len(fake.calls) == 2
    assert shlex.split(fake.calls[1][-1]) == ["sudo", "-n", "-u", "postgres", "--", "sh", "-c",
                                              STOP_GROUP, "sh", "4242"]


def test_the_ssh_client_killed_here_stops_the_group_there() -> None:
    """A plan's worker whose ssh client was killed (``stop_commands``): exit -9 here."""
    ssh, fake = interrupted(-9)
    with pytest.raises(CommandFailed, match="exit -9"):
        ssh.run(["pg_basebackup", "-D", "/x"], user=POSTGRES)
    assert len(fake.calls) == 2 and "4242" in fake.calls[1][-1]


def test_a_normal_command_costs_one_round_trip_and_loses_its_marker() -> None:
    ssh, fake = interrupted(None)
    assert ssh.run(["true"]).output == "out\n"
    assert ssh.run(["false"], check=False).output == "out\n"
    assert len(fake.calls) == 2


def test_no_marker_seen_no_stop() -> None:
    """Interrupted before the command there printed its group (ssh still connecting)."""
    ssh, fake = interrupted(KeyboardInterrupt())
    fake.run = lambda argv, **_: (_ for _ in ()).throw(KeyboardInterrupt())  # type: ignore
    with pytest.raises(KeyboardInterrupt):
        ssh.run(["sleep", "300"])
    assert fake.calls == []


@pytest.mark.parametrize("answer", [
    HostUnreachable("cannot reach db1.example over ssh"),
    Completed(("ssh",), 1, "sudo: a password is required\n", 0.01)])
def test_a_stop_that_fails_is_logged_and_the_original_error_goes_on(
        answer: Completed | BaseException, caplog: pytest.LogCaptureFixture) -> None:
    ssh, fake = interrupted(KeyboardInterrupt(), stop_answer=answer)
    caplog.set_level(logging.WARNING, logger="pgstream.hosts.ssh")
    with pytest.raises(KeyboardInterrupt):
        ssh.run(["sleep", "300"])
    assert len(fake.calls) == 2
    assert any("could not stop sleep on db1.example" in r.getMessage() for r in caplog.records)


def test_a_timed_out_command_is_stopped_by_the_real_scripts() -> None:
    """The wrapper and the stop script, run by this machine's ``sh``: the command, run as
    postgres through ``runuser``, is in a session of its own (``setsid``) that the local kill
    of the ssh client's process group misses; the stop script ends it."""
    ssh, loop = loopback()
    user = real_postgres()
    seconds = f"301.{os.getpid()}"
    started = time.monotonic()
    try:
        with pytest.raises(CommandFailed, match="did not finish within 1 s"):
            ssh.run(["sleep", seconds], user=user, timeout=1)
        assert time.monotonic() - started < 6
        assert len(loop.calls) == 2
        assert not _sleeping(seconds)
    finally:
        for pid in _sleeping(seconds):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _sleeping(seconds: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", f"^sleep {seconds}"], capture_output=True,
                           text=True, timeout=10, check=False)
    return [int(pid) for pid in found.stdout.split()]
