"""Hosts: where commands run and files live, as a given OS user.

``LocalHost`` is this machine. Commands are argv tuples (never shell strings); they can run as
another OS user (PostgreSQL refuses to run as root, so a root process runs servers as
``postgres``). Files are written atomically with a mode and an owner; anything holding a
secret is written 0600. :class:`~pgstream.hosts.ssh.SshHost` offers the same interface over ssh.

Each command runs in its own process group, and that group is what is waited for and killed:
the command ends when its main process exits (children it left holding the output, such as
``pg_basebackup``'s WAL streamer after its parent was killed, are killed with the group); on a
timeout, a failure to read its output, Ctrl-C or SIGTERM the whole group is killed before the
exception propagates.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import attrs

from pgstream.errors import CommandFailed, InvalidInput
from pgstream.facts import redact
from pgstream.hosts.process import (
    GroupPopen,
    OutputCallback,
    collect,
    kill,
    local_postmaster_proven,
    register,
    unregister,
)

_log = logging.getLogger(__name__)

# Variables that would silently redirect PostgreSQL's tools to another server or user.
_SCRUBBED_ENV = re.compile(r"^PG(?!STREAM_)[A-Z_]*$")


@attrs.frozen
class OsUser:
    """An operating-system account: who runs the server processes and owns their files."""

    name: str
    uid: int
    gid: int
    home: str = attrs.field(default="/", repr=False)

    @classmethod
    def lookup(cls, name: str) -> OsUser:
        """The account named ``name`` here (:class:`~pgstream.errors.InvalidInput` when none)."""
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise InvalidInput(f"no OS user named {name!r} on this machine") from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @classmethod
    def current(cls) -> OsUser:
        """The account this process runs as (its effective uid)."""
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @property
    def is_root(self) -> bool:
        """Is it root (uid 0)?"""
        return self.uid == 0


def server_user(run_as: str | None = None) -> OsUser:
    """The OS user for server processes: ``run_as``, else ourselves, else (as root) ``postgres``."""
    if run_as is not None:
        user = OsUser.lookup(run_as)
        if user.is_root:
            raise InvalidInput("PostgreSQL refuses to run as root: name another run_as user")
        return user
    me = OsUser.current()
    if not me.is_root:
        return me
    try:
        return OsUser.lookup("postgres")
    except InvalidInput:
        raise InvalidInput(
            "this process runs as root and PostgreSQL refuses to run as root, but there is no "
            "'postgres' OS user: pass run_as='<an unprivileged user>' (CLI: --run-as), or create "
            "one with 'useradd --system --home-dir /var/lib/postgresql postgres'"
        ) from None


@attrs.frozen
class Completed:
    """A command that ran: its ``argv``, exit code, output (stdout and stderr merged) and
    how many seconds it took.
    """
    argv: tuple[str, ...]
    returncode: int
    output: str
    seconds: float


class Host(Protocol):
    """Where commands run and files live: :class:`LocalHost` or :class:`~pgstream.SshHost`.

    Commands are argv (never shell strings); secrets travel on stdin or in files written with
    mode 0600, never in argv."""

    name: str

    def run(self, argv: Sequence[str], *, user: OsUser | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None, on_output: OutputCallback | None = None,
            check: bool = True, what: str | None = None,
            stdin: str | None = None) -> Completed:
        """Run ``argv`` (as ``user``) and wait at most ``timeout`` seconds; with ``check``, a
        non-zero exit raises :class:`~pgstream.errors.CommandFailed` with the output's tail.
        """
    def read_text(self, path: Path) -> str:
        """The file's content, as UTF-8."""
    def read_bytes(self, path: Path) -> bytes:
        """The file's content."""
    def write_text(self, path: Path, text: str, *, mode: int = 0o600,
                   owner: OsUser | None = None) -> None:
        """Replace the file atomically, with ``mode`` (and ``owner``, if given)."""
    def append_text(self, path: Path, text: str, *, owner: OsUser | None = None) -> None:
        """Append ``text`` on a line of its own, keeping the file's mode and owner."""
    def exists(self, path: Path) -> bool:
        """Does ``path`` exist?"""
    def is_dir(self, path: Path) -> bool:
        """Is ``path`` a directory?"""
    def make_dir(self, path: Path, *, mode: int = 0o700, owner: OsUser | None = None) -> None:
        """Create the directory ``path`` (its parent must exist, it must not)."""
    def list_dir(self, path: Path) -> list[str]:
        """The names in the directory ``path``, sorted."""
    def wipe_contents(self, path: Path) -> bool:
        """Remove everything inside ``path``, kept itself; False when it did not exist."""
    def remove_empty_dir(self, path: Path) -> None:
        """Remove the directory ``path``, which must be empty."""
    def executable(self, path: Path) -> bool:
        """Is ``path`` a file this host may execute?"""
    def process_alive(self, pid: int) -> bool:
        """Does ``pid`` run (a zombie does not)?"""
    def process_exists(self, pid: int) -> bool:
        """Is ``pid`` taken at all (zombies included)?"""
    def postmaster_proven(self, pid: int, data_dir: Path) -> bool:
        """Is ``pid`` alive and the postmaster of ``data_dir``?"""
    def lookup_user(self, name: str) -> OsUser:
        """The account named ``name`` there (:class:`~pgstream.errors.InvalidInput`)."""
    def home_dirs(self) -> set[Path]:
        """Every account's home directory there (none may be a data directory)."""
    def resolve(self, path: Path) -> Path:
        """``path`` with symbolic links resolved, as that host sees it."""


@attrs.define
class LocalHost:
    """This machine."""

    name: str = "localhost"

    def _switch_to(self, user: OsUser | None) -> OsUser | None:
        if user is None or user.uid == os.geteuid():
            return None
        if os.geteuid() != 0:
            raise InvalidInput(
                f"cannot run commands as {user.name!r}: this process is not root"
            )
        return user

    def environment(self, user: OsUser | None, extra: Mapping[str, str] | None) -> dict[str, str]:
        """The environment a command run as ``user`` gets: this process's, without the
        ``PG*`` variables that would redirect PostgreSQL's tools, ``LC_ALL=C.UTF-8`` by default,
        ``HOME``/``USER`` of ``user``, then ``extra``.
        """
        env = {k: v for k, v in os.environ.items() if not _SCRUBBED_ENV.match(k)}
        env.setdefault("LC_ALL", "C.UTF-8")
        if (target := self._switch_to(user)) is not None:
            env["HOME"] = target.home
            env["USER"] = env["LOGNAME"] = target.name
        if extra:
            env.update(extra)
        return env

    def run(self, argv: Sequence[str], *, user: OsUser | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None, on_output: OutputCallback | None = None,
            check: bool = True, what: str | None = None,
            stdin: str | None = None) -> Completed:
        """Run ``argv`` (as ``user``), output (stdout and stderr) captured and streamed by line.

        Lines end at ``\\n`` or ``\\r`` so progress meters reach ``on_output`` as they change.
        ``check``: a non-zero exit raises :class:`CommandFailed` with the output's tail.
        """
        argv = tuple(str(a) for a in argv)
        target = self._switch_to(user)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("run%s: %s%s", f" as {target.name}" if target else "",
                       redact.command(argv, env), f" (stdin: {len(stdin)} chars)" if stdin else "")
        started = time.monotonic()
        kwargs: dict[str, object] = {}
        if target is not None:
            kwargs.update(user=target.uid, group=target.gid, extra_groups=[])
        try:
            proc = GroupPopen(
                argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                env=self.environment(user, env),
                cwd=str(cwd) if cwd is not None else ("/" if target is not None else None),
                start_new_session=True, **kwargs,  # type: ignore[call-overload]
            )
        except OSError as exc:
            raise CommandFailed(f"{what or Path(argv[0]).name}: cannot run {argv[0]}: {exc}",
                                argv=argv) from None
        register(proc)
        try:
            if stdin is not None:
                assert proc.stdin is not None
                try:
                    proc.stdin.write(stdin.encode())
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            output = collect(proc, started + timeout, on_output)
        except BaseException:  # Ctrl-C, SIGTERM, a failing callback: the group goes too
            kill(proc)
            raise
        finally:
            unregister(proc)
        seconds = time.monotonic() - started
        if output is None:
            raise CommandFailed(
                f"{what or Path(argv[0]).name} did not finish within {timeout:g} s "
                f"and was stopped", argv=argv)
        done = Completed(argv, proc.returncode, output, seconds)
        _log.debug("exit %d after %.3f s: %s", proc.returncode, seconds, Path(argv[0]).name)
        if check and proc.returncode != 0:
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise CommandFailed(
                f"{what or Path(argv[0]).name} failed (exit {proc.returncode}):\n{tail}",
                argv=argv, returncode=proc.returncode, output=output,
            )
        return done

    # -- files
    def read_text(self, path: Path) -> str:
        """The file's content, as UTF-8."""
        return Path(path).read_text(encoding="utf-8")

    def read_bytes(self, path: Path) -> bytes:
        """The file's content."""
        return Path(path).read_bytes()

    def is_dir(self, path: Path) -> bool:
        """Is ``path`` a directory?"""
        return Path(path).is_dir()

    def executable(self, path: Path) -> bool:
        """Is ``path`` a file this process may execute?"""
        return Path(path).is_file() and os.access(path, os.X_OK)

    def wipe_contents(self, path: Path) -> bool:
        """Remove everything inside ``path`` (kept itself, with its owner and mode)."""
        path = Path(path)
        if not path.exists():
            return False
        removed = False
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            removed = True
        return removed

    def remove_empty_dir(self, path: Path) -> None:
        """Remove the directory ``path``, which must be empty."""
        os.rmdir(path)

    def process_alive(self, pid: int) -> bool:
        """A running process (a zombie waiting to be reaped is not)."""
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[-1].split()[0] != "Z"

    def process_exists(self, pid: int) -> bool:
        """The pid is taken at all (zombies included)."""
        return Path(f"/proc/{pid}").exists()

    def postmaster_proven(self, pid: int, data_dir: Path) -> bool:
        """Is ``pid`` alive and the postmaster of ``data_dir`` (its executable a PostgreSQL
        server, its working directory or ``-D`` that directory)? Only then may it be signalled:
        the pid in a stale ``postmaster.pid`` may have been given to any other process."""
        return local_postmaster_proven(pid, data_dir)

    def lookup_user(self, name: str) -> OsUser:
        """The account named ``name`` (:meth:`OsUser.lookup`)."""
        return OsUser.lookup(name)

    def resolve(self, path: Path) -> Path:
        """``path`` with symbolic links resolved."""
        return Path(path).resolve()

    def home_dirs(self) -> set[Path]:
        """Every account's home directory, and this process's."""
        homes = {Path(os.path.expanduser("~")).resolve()}
        for entry in pwd.getpwall():
            if entry.pw_dir and entry.pw_dir not in ("/", "/nonexistent"):
                homes.add(Path(entry.pw_dir).resolve())
        return homes

    def write_text(self, path: Path, text: str, *, mode: int = 0o600,
                   owner: OsUser | None = None) -> None:
        """Write atomically (temp file + rename) with ``mode``; chown to ``owner`` if given."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, mode)
            if owner is not None and os.geteuid() == 0:
                os.fchown(fd, owner.uid, owner.gid)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def append_text(self, path: Path, text: str, *, owner: OsUser | None = None) -> None:
        """Append (atomically, keeping the file's mode)."""
        path = Path(path)
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        if owner is None and path.exists():  # keep the file's owner (root must not take it)
            info = path.stat()
            owner = OsUser(str(info.st_uid), info.st_uid, info.st_gid)
        if current and not current.endswith("\n"):
            current += "\n"
        self.write_text(path, current + text, mode=mode, owner=owner)

    def exists(self, path: Path) -> bool:
        """Does ``path`` exist?"""
        return Path(path).exists()

    def make_dir(self, path: Path, *, mode: int = 0o700, owner: OsUser | None = None) -> None:
        """Create the directory ``path`` with ``mode`` (and ``owner``, as root)."""
        path = Path(path)
        path.mkdir(mode=mode, parents=False, exist_ok=False)
        os.chmod(path, mode)
        if owner is not None and os.geteuid() == 0:
            os.chown(path, owner.uid, owner.gid)

    def list_dir(self, path: Path) -> list[str]:
        """The names in the directory ``path``, sorted."""
        return sorted(os.listdir(path))

    def copy_tree(self, source: Path, target: Path) -> None:
        """Copy a directory, keeping owners and modes (``cp -a``)."""
        self.run(("cp", "-a", "--reflink=auto", str(source), str(target)), what="copy")
