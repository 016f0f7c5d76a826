"""``SshHost``: another machine, reached with the system's OpenSSH client.

Users' ssh configuration, agents and jump hosts just work, as pgstream runs ``ssh`` itself
(``BatchMode``: it never prompts). Commands travel as argv quoted with ``shlex`` for the
remote shell; file contents, passwords included, travel on stdin, never in argv. Commands run
as another OS user through ``sudo -n -u USER`` (``runuser`` when logged in as root; directly
when that user is the login). With ``become="root"``, the work that has no user of its own
(file reads and writes, checks, ``pg_ctlcluster``, ``systemctl``) goes through ``sudo`` too,
Ansible's *become*: for a login such as ``admin`` or ``ubuntu`` that has passwordless sudo.

A command runs there as the leader of a process group of its own, and first prints that
group's id on a marker line, which :meth:`SshHost.run` takes out of the output callers see. Run
as the login user, it is the process sshd started (the leader of a session of its own: the login
shell prints its pid and execs the command); run as another user, the group is made inside the
user switch, as that user (``sudo`` with ``use_pty`` makes one; otherwise ``setsid``). When the
command times out here, or the wait for it is interrupted (Ctrl-C, SIGTERM, a failing output
callback, the local ssh client killed), killing the local ssh client alone would leave it
running there: a second, short ssh command, as the same user, sends that group SIGTERM, then,
after at most 2 s, SIGKILL; then the original error goes on. A command interrupted before its
marker arrived, or run as another user on a host without ``setsid`` (util-linux), is not
stopped there (as before). Commands that finish cost one ssh command each, as before.
"""

from __future__ import annotations

import base64
import logging
import shlex
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from pgstream.errors import (
    CommandFailed,
    HostUnreachable,
    InvalidInput,
    OperationFailed,
)
from pgstream.facts import redact
from pgstream.facts.identifiers import os_user_name
from pgstream.hosts.host import Completed, LocalHost, OsUser
from pgstream.hosts.process import OutputCallback, postmaster_proven
from pgstream.render import commands, process_group

_log = logging.getLogger(__name__)

_WRITE = ('set -e; umask 077; tmp=$(mktemp "$1.pgstream.XXXXXX"); '
          'trap \'rm -f "$tmp"\' EXIT; cat > "$tmp"; chmod "$2" "$tmp"; '
          'if [ -n "$3" ]; then chown "$3" "$tmp"; fi; mv "$tmp" "$1"; trap - EXIT')


# Prints, between markers: "alive" (or "gone"), the exe and cwd links (empty if unreadable), the
# data directory resolved, then the arguments one a line.
_PROC_VIEW = ('p=/proc/$1; if kill -0 "$1" 2>/dev/null && ! grep -q "^[^)]*) [ZX]" $p/stat; '
              'then s=alive; else s=gone; fi; printf "<<proc:%s\\n%s\\n%s\\n%s\\n" "$s" '
              '"$(readlink $p/exe 2>/dev/null)" "$(readlink $p/cwd 2>/dev/null)" '
              '"$(realpath -m -- "$2")"; tr "\\000" "\\n" < $p/cmdline 2>/dev/null; '
              'printf ":proc>>"')


@attrs.define
class SshHost:
    """A machine reached by ``ssh destination``. ``name`` shows in plans and errors."""

    destination: str
    name: str = ""
    ssh_config: Path | None = None
    options: tuple[str, ...] = ()
    connect_timeout: int = 10
    login: str | None = None  # the remote login user, if known (sudo is skipped for it)
    become: str | None = None  # who does the work that names no user, e.g. "root" via sudo
    _local: LocalHost = attrs.field(factory=LocalHost, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.destination or self.destination.startswith("-") or any(
                c.isspace() for c in self.destination):
            raise InvalidInput(f"invalid ssh destination {self.destination!r}")
        if not self.name:
            self.name = self.destination
        if self.become is not None:
            os_user_name(self.become)

    def _ssh(self, remote: str) -> list[str]:
        argv = ["ssh"]
        if self.ssh_config is not None:
            argv += ["-F", str(self.ssh_config)]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}",
                 *self.options, self.destination, "--", remote]
        return argv

    def whoami(self) -> str:
        """The remote login user (asked once)."""
        if self.login is None:
            self.login = "?"  # while asking: no user switch for this very command
            try:
                self.login = self.run(("id", "-un"), what="id").output.strip().splitlines()[-1]
            except BaseException:
                self.login = None
                raise
        return self.login

    def _switch_to(self, user: OsUser | None) -> str | None:
        """Who the command must run as, if not the login user (asking who that is once)."""
        target = user.name if user is not None else self.become
        if target is not None and self.login is None:
            self.whoami()
        if target is None or self.login == "?" or target == self.login:
            return None  # "?": the login is being asked (``id -un`` itself)
        return target

    def _remote(self, argv: Sequence[str], target: str | None,
                env: Mapping[str, str] | None, cwd: Path | None, *,
                group: bool = True) -> str:
        """The command line for the remote (login) shell; with ``group``, the command leads
        a process group of its own and prints its id first (see
        :mod:`pgstream.render.process_group`)."""
        words = [str(a) for a in argv]
        if env:
            words = ["env", *(f"{k}={v}" for k, v in env.items()), *words]
        if target is not None:
            if group:  # inside the switch: the group is that user's, who may signal it
                words = process_group.in_group(words)
            if cwd is not None:  # change directory as that user, who may be the only one allowed
                words = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", str(cwd), *words]
                cwd = None
            switch = ["runuser", "-u"] if self.login == "root" else ["sudo", "-n", "-u"]
            words = [*switch, target, "--", *words]
        command = shlex.join(words)
        if group and target is None:  # the login shell, sshd's group leader, becomes it
            command = process_group.for_login_shell(command)
        if cwd is not None:
            command = f"cd {shlex.quote(str(cwd))} || exit; {command}"
        return command

    def stop_group_command(self, pgid: int, target: str | None) -> list[str]:
        """The ssh argv that stops process group ``pgid`` there (SIGTERM, at most 2 s, then
        SIGKILL), as ``target`` (the user the group's command ran as; None: the login)."""
        stop = process_group.stop_group(pgid)
        if target is not None and self.login == "root":
            target = None  # root signals anyone's group
        return self._ssh(self._remote(stop, target, None, None, group=False))

    def _stop_group(self, pgid: int, target: str | None, shown: str) -> None:
        """Stop the group an interrupted command left running there; never raises an
        ``Exception`` (the interruption is what the caller must see), only a new interrupt."""
        _log.info("stopping %s on %s (process group %d there)", shown, self.name, pgid)
        try:
            done = self._local.run(self.stop_group_command(pgid, target),
                                   timeout=self.connect_timeout + 10.0, check=False,
                                   what=f"stop {shown} on {self.name}")
        except Exception as exc:  # noqa: BLE001 - reported; the original error goes on
            _log.warning("could not stop %s on %s: %s", shown, self.name, exc)
            return
        if done.returncode != 0:
            _log.warning("could not stop %s on %s (exit %d): %s", shown, self.name,
                         done.returncode, (done.output.strip().splitlines() or [""])[-1])

    def run(self, argv: Sequence[str], *, user: OsUser | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None, on_output: OutputCallback | None = None,
            check: bool = True, what: str | None = None,
            stdin: str | None = None) -> Completed:
        """Run ``argv`` there. A failed user switch (no sudo, sudo wanting a password) raises
        even with ``check=False``: the command itself never ran, so its exit code means
        nothing (a ``test -e`` must not read as "absent"). Timed out or interrupted here, the
        command's process group there is stopped too before the error goes on (see the
        module's description)."""
        shown = what or Path(str(argv[0])).name
        target = self._switch_to(user)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("run on %s%s: %s%s", self.name, f" as {target}" if target else "",
                       redact.command(argv, env), f" (stdin: {len(stdin)} chars)" if stdin else "")
        local = self._ssh(self._remote(argv, target, env, cwd))
        watch = process_group.GroupWatch(on_output)
        try:
            done = self._local.run(local, timeout=timeout, on_output=watch, check=False,
                                   what=f"{shown} on {self.name}", stdin=stdin)
        except BaseException as exc:  # timed out, Ctrl-C, SIGTERM: the ssh client is killed
            if watch.pgid is not None:  # and what it started there is stopped too
                self._stop_group(watch.pgid, target, shown)
            if isinstance(exc, CommandFailed):
                raise CommandFailed(f"{exc} (on {self.name})",
                                    argv=tuple(map(str, argv))) from None
            raise
        if done.returncode < 0 and watch.pgid is not None:
            self._stop_group(watch.pgid, target, shown)  # the ssh client was killed here
        done = attrs.evolve(done, output=process_group.without_marker(done.output))
        if done.returncode == 255 and _ssh_failed(done.output):
            raise HostUnreachable(f"cannot reach {self.name} over ssh ({self.destination}): "
                                  + (done.output.strip().splitlines() or ["no output"])[-1])
        if done.returncode != 0 and target is not None:
            self._check_switch(done, shown, target, argv)
        if check and done.returncode != 0:
            tail = "\n".join(done.output.strip().splitlines()[-15:])
            raise CommandFailed(f"{shown} failed on {self.name} (exit {done.returncode}):\n"
                                f"{tail}", argv=tuple(map(str, argv)),
                                returncode=done.returncode, output=done.output)
        return Completed(tuple(map(str, argv)), done.returncode, done.output, done.seconds)

    def _check_switch(self, done: Completed, shown: str, target: str,
                      argv: Sequence[str]) -> None:
        """Raise if the switch to ``target`` failed (its one line comes before any output of
        the command's own; ssh warnings may come first)."""
        head = done.output.strip().splitlines()[:3]
        how = "runuser" if self.login == "root" else "sudo"
        if done.returncode == 127 and any(f"{how}: not found" in line
                                          or f"{how}: command not found" in line
                                          for line in head):
            raise CommandFailed(
                f"{shown} on {self.name}: {how} is not installed there; install it, or log "
                f"in as {target} or as root", argv=tuple(map(str, argv)))
        if any(line.startswith("sudo: ") and ("password is required" in line
                                              or "not allowed" in line) for line in head):
            raise CommandFailed(
                f"{shown} on {self.name}: sudo asks {self.login} for a password to run as "
                f"{target}; allow it without one (NOPASSWD) or log in as {target}",
                argv=tuple(map(str, argv)))
        if any(line.startswith(("sudo: unknown user", "runuser: user")) for line in head):
            raise CommandFailed(f"{shown} on {self.name}: no OS user {target} there",
                                argv=tuple(map(str, argv)))

    # -- files
    def read_bytes(self, path: Path) -> bytes:
        # Markers: ssh may print warnings on the same (merged) output.
        """The file's content, read through ``base64`` (raises
        :class:`~pgstream.errors.PgStreamError` on unexpected output).
        """
        done = self.run(("sh", "-c", 'printf "<<b64:" && base64 -w0 -- "$1" && printf ":b64>>"',
                         "sh", str(path)), what=f"read {path}", timeout=60)
        start, end = done.output.find("<<b64:"), done.output.rfind(":b64>>")
        if start < 0 or end < start:
            raise OperationFailed(f"cannot read {path} on {self.name}: unexpected output")
        return base64.b64decode(done.output[start + 6:end])

    def read_text(self, path: Path) -> str:
        """The file's content, as UTF-8."""
        return self.read_bytes(path).decode("utf-8")

    def write_text(self, path: Path, text: str, *, mode: int = 0o600,
                   owner: OsUser | None = None) -> None:
        """Atomically, content on stdin (never in argv), then chmod/chown, then rename."""
        chown = f"{owner.uid}:{owner.gid}" if owner is not None else ""
        self.run(("sh", "-c", _WRITE, "sh", str(path), f"{mode:o}", chown), stdin=text,
                 what=f"write {path}", timeout=60)

    def append_text(self, path: Path, text: str, *, owner: OsUser | None = None) -> None:
        """Append ``text`` on a line of its own, keeping the file's mode and owner."""
        current = self.read_text(path) if self.exists(path) else ""
        mode, uid, gid = 0o600, None, None
        if self.exists(path):
            out = self.run(("stat", "-c", "%a %u %g", str(path)), what="stat").output.split()
            mode, uid, gid = int(out[0], 8), int(out[1]), int(out[2])
        if owner is None and uid is not None and gid is not None:
            owner = OsUser(str(uid), uid, gid)
        if current and not current.endswith("\n"):
            current += "\n"
        self.write_text(path, current + text, mode=mode, owner=owner)

    def _test(self, flag: str, path: Path) -> bool:
        return self.run(("test", flag, str(path)), check=False, what="test").returncode == 0

    def exists(self, path: Path) -> bool:
        """Does ``path`` exist there (``test -e``)?"""
        return self._test("-e", path)

    def is_dir(self, path: Path) -> bool:
        """Is ``path`` a directory there (``test -d``)?"""
        return self._test("-d", path)

    def executable(self, path: Path) -> bool:
        """Is ``path`` an executable file there?"""
        return self._test("-x", path) and self._test("-f", path)

    def make_dir(self, path: Path, *, mode: int = 0o700, owner: OsUser | None = None) -> None:
        """Create the directory ``path`` with ``mode`` (``mkdir -m``), then chown it."""
        self.run(commands.make_dir(path, mode), what=f"mkdir {path}")
        if owner is not None:
            self.run(("chown", f"{owner.uid}:{owner.gid}", "--", str(path)), what="chown")

    def list_dir(self, path: Path) -> list[str]:
        """The names in the directory ``path``, sorted (``ls -A``)."""
        out = self.run(("ls", "-A", "--", str(path)), what=f"ls {path}").output
        return sorted(line for line in out.splitlines() if line)

    def wipe_contents(self, path: Path) -> bool:
        """Remove everything inside ``path`` (``find -delete``), kept itself; False when
        it did not exist.
        """
        if not self.exists(path):
            return False
        had = bool(self.list_dir(path))
        self.run(commands.wipe_contents(path), what=f"wipe {path}",
                 timeout=600)
        return had

    def remove_empty_dir(self, path: Path) -> None:
        """Remove the directory ``path``, which must be empty (``rmdir``)."""
        self.run(("rmdir", "--", str(path)), what=f"rmdir {path}")

    def process_alive(self, pid: int) -> bool:
        """Does ``pid`` run there (a zombie does not)?"""
        done = self.run(("sh", "-c", 'kill -0 "$1" 2>/dev/null && '
                         '! grep -q "^[^)]*) Z" "/proc/$1/stat" 2>/dev/null', "sh", str(pid)),
                        check=False, what="check process")
        return done.returncode == 0

    def process_exists(self, pid: int) -> bool:
        """Is ``pid`` taken there at all (``/proc/PID`` exists)?"""
        return self._test("-e", Path(f"/proc/{pid}"))

    def postmaster_proven(self, pid: int, data_dir: Path) -> bool:
        """Is ``pid`` alive there and the postmaster of ``data_dir`` (see
        :func:`pgstream.hosts.process.postmaster_proven`)? Read from its ``/proc``."""
        done = self.run(("sh", "-c", _PROC_VIEW, "sh", str(int(pid)), str(data_dir)),
                        check=False, what="check process")
        text = done.output
        start, end = text.find("<<proc:"), text.rfind(":proc>>")
        if done.returncode != 0 or start < 0 or end < start:
            return False
        fields = text[start + 7:end].split("\n")
        if len(fields) < 4 or fields[0] != "alive":
            return False
        exe, cwd, resolved = fields[1] or None, fields[2] or None, fields[3]
        cmdline = [a for a in fields[4:] if a]
        return any(postmaster_proven(Path(d), exe=exe, cwd=cwd, cmdline=cmdline)
                   for d in {str(data_dir), resolved or str(data_dir)})

    def lookup_user(self, name: str) -> OsUser:
        """The account named ``name`` there (``getent passwd``;
        :class:`~pgstream.errors.InvalidInput` when none).
        """
        done = self.run(("getent", "passwd", name), check=False, what="getent")
        fields = done.output.strip().split(":")
        if done.returncode != 0 or len(fields) < 6:
            raise InvalidInput(f"no OS user named {name!r} on {self.name}")
        return OsUser(fields[0], int(fields[2]), int(fields[3]), fields[5])

    def home_dirs(self) -> set[Path]:
        """Every account's home directory there (``getent passwd``)."""
        out = self.run(("getent", "passwd"), what="getent").output
        homes = set()
        for line in out.splitlines():
            fields = line.split(":")
            if len(fields) >= 6 and fields[5] not in ("", "/", "/nonexistent"):
                homes.add(Path(fields[5]))
        return homes

    def resolve(self, path: Path) -> Path:
        """The path with symlinks resolved on that host (``realpath -m``)."""
        return Path(self.run(("realpath", "-m", "--", str(path)), what="realpath")
                    .output.strip().splitlines()[-1])

    def ping(self, timeout: float = 10.0) -> float:
        """Seconds for one round trip (``true``); raises :class:`HostUnreachable`."""
        started = time.monotonic()
        self.run(("true",), timeout=timeout, what="ssh check")
        return time.monotonic() - started


_SSH_ERRORS = ("ssh:", "Permission denied (", "Host key verification failed",
               "Could not resolve hostname", "Connection closed by", "Connection timed out",
               "kex_exchange_identification", "No route to host")


def _ssh_failed(output: str) -> bool:
    """Exit 255 is ssh's own failure, unless the remote command itself exited 255."""
    return any(marker in output for marker in _SSH_ERRORS)
