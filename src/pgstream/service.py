"""Service control: start, stop, restart, reload and promote a server.

``PgCtlService`` drives ``pg_ctl`` for a data directory on a host, as the server's OS user.
A failed start says why, with the tail of the server log. (Debian's ``pg_ctlcluster`` and
systemd units come with multi-host support.)
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

import attrs

from pgstream import commands
from pgstream.errors import CommandFailed
from pgstream.host import LocalHost, OsUser
from pgstream.version import ServerVersion
from pgstream.wait import wait_for


@attrs.define
class PgCtlService:
    """A server controlled with ``pg_ctl`` (the seed's ``systemctl restart postgresql``)."""

    host: LocalHost
    bindir: Path
    data_dir: Path
    user: OsUser | None = None
    log_file: Path | None = None
    timeout: int = 60
    version: ServerVersion | None = None
    _log_start: int = attrs.field(default=0, init=False, repr=False)
    _stale_pid: str = attrs.field(default="", init=False, repr=False)

    def _pg_ctl(self, action: commands.PgCtlAction, **kwargs: object) -> str:
        argv = commands.pg_ctl(self.bindir, action, self.data_dir, log_file=self.log_file,
                               timeout=self.timeout, **kwargs)  # type: ignore[arg-type]
        try:
            return self.host.run(argv, user=self.user, timeout=self.timeout + 10,
                                 what=f"pg_ctl {action} ({self.data_dir})").output
        except CommandFailed as exc:
            tail = self.log_tail()
            if tail:
                raise CommandFailed(f"{exc}\n--- server log ({self.log_file}) ---\n{tail}",
                                    argv=exc.argv, returncode=exc.returncode,
                                    output=exc.output) from None
            raise

    def start(self) -> None:
        """Start and wait until the server accepts connections.

        Where the server reports its state in ``postmaster.pid`` (10+), pgstream starts it
        with ``pg_ctl start -W`` and watches that file closely, instead of ``pg_ctl -w``'s
        fixed 100 ms polling; a server that dies while starting fails at once, with its log.
        """
        self.wait_gone()
        if self.version is None or not self.version.adapter.supports("pidfile_status"):
            self._pg_ctl("start")
            return
        self._log_start = self._log_size()
        self._stale_pid = self._pidfile_lines()[0] if self._pidfile_lines() else ""
        self._pg_ctl("start", wait=False)
        wait_for(self._started, timeout=self.timeout,
                 what=f"the server on {self.data_dir} to accept connections",
                 detail=lambda: "server log:\n" + self.log_tail(10))

    def _pidfile_lines(self) -> list[str]:
        try:
            return [x.strip() for x in
                    (self.data_dir / "postmaster.pid").read_text().split("\n")]
        except OSError:
            return []

    def _started(self) -> bool:
        lines = self._pidfile_lines()
        if lines and lines[0] == self._stale_pid:
            lines = []  # a killed server's file, until the new postmaster replaces it
        if len(lines) > 7 and lines[7] in ("ready", "standby"):
            return True
        if lines and lines[0].isdigit() and not _alive(int(lines[0])):
            raise CommandFailed(f"the server on {self.data_dir} stopped while starting:\n"
                                + self.log_tail())
        if not lines and "FATAL" in self._log_since_start():
            raise CommandFailed(f"the server on {self.data_dir} failed to start:\n"
                                + self.log_tail())
        return False

    def stop(self, mode: commands.StopMode = "fast") -> None:
        """Stop and wait until the postmaster is gone (watched closely where the version
        reports its state in postmaster.pid, instead of ``pg_ctl -w``'s 100 ms polling)."""
        if not self.running():
            return
        if self.version is None or not self.version.adapter.supports("pidfile_status"):
            self._pg_ctl("stop", mode=mode)
            return
        pid = self.pid()
        self._pg_ctl("stop", mode=mode, wait=False)
        wait_for(lambda: not (self.data_dir / "postmaster.pid").exists()
                 or (pid is not None and not _alive(pid)), timeout=self.timeout,
                 what=f"the server on {self.data_dir} to stop",
                 detail=lambda: "server log:\n" + self.log_tail(10))

    def restart(self, mode: commands.StopMode = "fast") -> None:
        if self.version is None or not self.version.adapter.supports("pidfile_status"):
            self._pg_ctl("restart", mode=mode)
            return
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        self._pg_ctl("reload")

    def promote(self, wait: bool = True) -> None:
        self._pg_ctl("promote", wait=wait)

    def pid(self) -> int | None:
        """The postmaster's pid if one is alive for this data directory (postmaster.pid)."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None

    def wait_gone(self, timeout: float = 30.0) -> None:
        """Wait until the pid in a leftover postmaster.pid no longer exists at all.

        A killed postmaster stays a zombie until its parent (often init) reaps it, and a new
        postmaster (or pg_rewind's single-user run) refuses to start while that pid exists.
        """
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return
        if _alive(pid):
            return  # a live server: the caller decides
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=timeout,
                 what=f"the dead postmaster {pid} of {self.data_dir} to be reaped")

    def kill(self) -> None:
        """Stop at once (SIGQUIT, immediate shutdown): for cleanup when all else failed."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGQUIT)

    def _log_size(self) -> int:
        try:
            return Path(self.log_file).stat().st_size if self.log_file is not None else 0
        except OSError:
            return 0

    def _log_since_start(self) -> str:
        """What the server logged since this start (a previous shutdown's FATAL lines, such
        as a walreceiver terminated, must not read as a failed start)."""
        if self.log_file is None:
            return ""
        try:
            with open(self.log_file, "rb") as handle:
                handle.seek(self._log_start)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        if self.log_file is None:
            return ""
        try:
            text = Path(self.log_file).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def _alive(pid: int) -> bool:
    """Is ``pid`` a running process (a zombie waiting to be reaped is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
