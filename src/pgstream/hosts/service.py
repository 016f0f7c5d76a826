"""Service control: start, stop, restart, reload and promote a server, on any host.

- ``PgCtlService``: ``pg_ctl`` for a data directory, run as the server's OS user.
- ``DebianClusterService``: a Debian/Ubuntu cluster (``pg_ctlcluster VERSION NAME``; config in
  ``/etc/postgresql/VERSION/NAME/``, data in ``/var/lib/postgresql/VERSION/NAME``).
- ``SystemdService``: a systemd unit (``systemctl start|stop|restart|reload UNIT``).

All share the same watching: where the server reports its state in ``postmaster.pid`` (10+),
a start returns as soon as the file says so, instead of fixed 100 ms polls; a server that dies
while starting fails at once, with the tail of its log. A stop returns only once the
postmaster process has exited, whichever command (``pg_ctl``, ``pg_ctlcluster``,
``systemctl``) asked it to; given the pid the live server was proven to run as, a stop that
would not reach that process (wrong data directory, unit or cluster) refuses instead of
returning quietly.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from pathlib import Path

import attrs

from pgstream.errors import CommandFailed, PgStreamError, ServerMismatch
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, OsUser
from pgstream.hosts.wait import wait_for
from pgstream.render import commands


@attrs.define
class PgCtlService:
    """A server controlled with ``pg_ctl`` (the seed's ``systemctl restart postgresql``)."""

    host: Host
    bindir: Path
    data_dir: Path
    user: OsUser | None = None
    log_file: Path | None = None
    timeout: int = 60
    version: ServerVersion | None = None
    _log_start: int = attrs.field(default=0, init=False, repr=False)
    _stale_pid: str = attrs.field(default="", init=False, repr=False)

    # -- the commands: one argv per action, run by the lifecycle methods and printed by plans
    def waits(self, action: commands.PgCtlAction) -> bool:
        """Does the program wait for ``action`` itself? Not for a promotion (pgstream
        watches ``pg_is_in_recovery()``), nor for a start or stop where pgstream watches
        the pid file and the postmaster (10+)."""
        if action == "promote":
            return False
        return not (self.watches and action in ("start", "stop"))

    def argv(self, action: commands.PgCtlAction,
             mode: commands.StopMode | None = None) -> tuple[str, ...]:
        """The exact command this service runs for ``action`` (subclasses change it)."""
        return commands.pg_ctl(self.bindir, action, self.data_dir, log_file=self.log_file,
                               timeout=self.timeout, wait=self.waits(action), mode=mode)

    def _control(self, action: commands.PgCtlAction,
                 mode: commands.StopMode | None = None) -> None:
        self._run(self.argv(action, mode), f"{Path(self.argv(action, mode)[0]).name} "
                  f"{action} ({self.data_dir})", self.run_as(action, mode))

    def run_as(self, action: commands.PgCtlAction,
               mode: commands.StopMode | None = None) -> OsUser | None:
        """The OS user :meth:`argv` runs as (pg_ctl as the server's owner)."""
        return self.user

    def _run(self, argv: tuple[str, ...], what: str, user: OsUser | None) -> None:
        try:
            self.host.run(argv, user=user, timeout=self.timeout + 10, what=what)
        except CommandFailed as exc:
            tail = self.log_tail()
            if tail:
                raise CommandFailed(f"{exc}\n--- server log ({self.log_file}) ---\n{tail}",
                                    argv=exc.argv, returncode=exc.returncode,
                                    output=exc.output) from None
            raise

    def describe(self, action: commands.PgCtlAction,
                 mode: commands.StopMode | None = None) -> str:
        """What a plan prints for ``action``: the command(s) the lifecycle method runs, from
        :meth:`argv` (a restart where pgstream watches the server is a stop, then a start)."""
        if action == "restart" and self.watches:
            return "\n".join((shlex.join(self.argv("stop", mode)), shlex.join(self.argv("start"))))
        return shlex.join(self.argv(action, mode))

    @property
    def watches(self) -> bool:
        """Does pgstream watch the pid file itself on this version (the version table's
        ``pidfile_status``), so that ``pg_ctl`` need not wait (``-W``)?"""
        return self.version is not None and self.version.adapter.supports("pidfile_status")

    # -- lifecycle
    def start(self) -> None:
        """Start and wait until the server accepts connections."""
        self.wait_gone()
        if not self.watches:
            self._control("start")
            return
        self._log_start = len(self._log_bytes())
        lines = self._pidfile_lines()
        self._stale_pid = lines[0] if lines else ""
        self._control("start")
        wait_for(self._started, timeout=self.timeout,
                 what=f"the server on {self.data_dir} ({self.host.name}) to accept connections",
                 detail=lambda: "server log:\n" + self.log_tail(10))

    def stop(self, mode: commands.StopMode = "fast", *, pid: int | None = None) -> None:
        """Stop and wait until the postmaster process is gone (not only its pid file).

        ``pid``: the postmaster the caller proved serves the node (the one in the
        ``postmaster.pid`` of the data directory the server reports, see
        :mod:`pgstream.nodes.identity`). Then a stop that would not reach it refuses with
        :class:`~pgstream.errors.ServerMismatch` before doing anything: this service's data
        directory has no live postmaster, or another one, so its stop command would stop
        another server or none while that one runs on. Without ``pid``, a data directory
        with no live postmaster counts as stopped.
        """
        mine = self.pid()
        if pid is not None and mine != pid and self.host.process_alive(pid):
            found = f"postmaster {mine}" if mine else "no live postmaster"
            raise ServerMismatch(
                f"the server to stop runs as postmaster {pid}, but {self.data_dir} on "
                f"{self.host.name} has {found}: this service does not control that server "
                "(wrong data_dir, unit or cluster?); nothing was stopped",
                field="postmaster pid", declared=mine, reported=pid)
        if mine is None:
            return
        self._control("stop", mode)
        wait_for(lambda: not self.host.process_alive(mine), timeout=self.timeout,
                 what=f"the postmaster {mine} of {self.data_dir} ({self.host.name}) to exit",
                 detail=lambda: "server log:\n" + self.log_tail(10))

    def restart(self, mode: commands.StopMode = "fast") -> None:
        """Restart with a ``mode`` stop: :meth:`stop` then :meth:`start` where the pid
        file is watched, else the service's own restart."""
        if not self.watches:
            self._control("restart", mode)
            return
        self.stop(mode)
        self.start()

    def reload(self) -> None:
        """Make the server re-read its configuration files (``pg_ctl reload``)."""
        self._control("reload")

    def promote(self) -> None:
        """Ask the server to leave recovery (the caller watches it, see :meth:`waits`)."""
        self._control("promote")

    # -- state
    def _pidfile_lines(self) -> list[str]:
        try:
            text = self.host.read_text(self.data_dir / "postmaster.pid")
        except (OSError, PgStreamError):
            return []
        return [x.strip() for x in text.split("\n")]

    def _started(self) -> bool:
        lines = self._pidfile_lines()
        if lines and lines[0] == self._stale_pid:
            lines = []  # a killed server's file, until the new postmaster replaces it
        if len(lines) > 7 and lines[7] in ("ready", "standby"):
            return True
        if lines and lines[0].isdigit() and not self.host.process_alive(int(lines[0])):
            raise CommandFailed(f"the server on {self.data_dir} stopped while starting:\n"
                                + self.log_tail())
        new_log = self._log_bytes()[self._log_start:].decode("utf-8", "replace")
        if not lines and "FATAL" in new_log:  # only what this start logged
            raise CommandFailed(f"the server on {self.data_dir} failed to start:\n"
                                + self.log_tail())
        return False

    def pid(self) -> int | None:
        """The postmaster's pid if one is alive for this data directory (postmaster.pid)."""
        lines = self._pidfile_lines()
        if not lines or not lines[0].isdigit():
            return None
        pid = int(lines[0])
        return pid if self.host.process_alive(pid) else None

    def running(self) -> bool:
        """Does the data directory's ``postmaster.pid`` name a live process?"""
        return self.pid() is not None

    def wait_gone(self, timeout: float = 30.0) -> None:
        """Wait until the pid in a leftover postmaster.pid no longer exists at all.

        A killed postmaster stays a zombie until its parent (often init) reaps it, and a new
        postmaster (or pg_rewind's single-user run) refuses to start while that pid exists.
        """
        lines = self._pidfile_lines()
        if not lines or not lines[0].isdigit():
            return
        pid = int(lines[0])
        if self.host.process_alive(pid):
            return  # a live server: the caller decides
        wait_for(lambda: not self.host.process_exists(pid), timeout=timeout,
                 what=f"the dead postmaster {pid} of {self.data_dir} to be reaped")

    def kill(self) -> None:
        """Stop at once (SIGQUIT, immediate shutdown): for cleanup when all else failed.

        Only a pid proven to be this data directory's postmaster is signalled (a stale
        ``postmaster.pid`` may name a recycled pid: another, unrelated process)."""
        pid = self.pid()
        if pid is not None and self.host.postmaster_proven(pid, self.data_dir):
            with contextlib.suppress(PgStreamError):
                self.host.run(("kill", f"-{int(signal.SIGQUIT)}", str(pid)), check=False)

    def _log_bytes(self) -> bytes:
        if self.log_file is None:
            return b""
        try:
            return self.host.read_bytes(self.log_file)
        except (OSError, PgStreamError):
            return b""

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server log (empty when it cannot be read)."""
        text = self._log_bytes().decode("utf-8", "replace")
        return "\n".join(text.strip().splitlines()[-lines:])


@attrs.define
class DebianClusterService(PgCtlService):
    """A Debian/Ubuntu cluster: ``pg_ctlcluster MAJOR NAME ACTION`` (postgresql-common).

    Build it with :meth:`for_cluster`, which fills in Debian's paths. Run as root,
    ``pg_ctlcluster`` switches to the cluster's owner itself.
    """

    major: str = ""
    cluster: str = ""

    @classmethod
    def for_cluster(cls, host: Host, major: str, cluster: str, *,
                    version: ServerVersion | None = None, timeout: int = 60,
                    user: OsUser | None = None) -> DebianClusterService:
        """The service of Debian's cluster ``major``/``cluster``, with Debian's paths
        (``/usr/lib/postgresql``, ``/var/lib/postgresql``, ``/var/log/postgresql``)."""
        return cls(host=host, bindir=Path(f"/usr/lib/postgresql/{major}/bin"),
                   data_dir=Path(f"/var/lib/postgresql/{major}/{cluster}"), user=user,
                   log_file=Path(f"/var/log/postgresql/postgresql-{major}-{cluster}.log"),
                   timeout=timeout, version=version, major=major, cluster=cluster)

    def argv(self, action: commands.PgCtlAction,
             mode: commands.StopMode | None = None) -> tuple[str, ...]:
        """``pg_ctlcluster MAJOR NAME ACTION`` (run as root, it switches to the owner)."""
        return commands.pg_ctlcluster(self.major, self.cluster, action, mode=mode,
                                      wait=self.waits(action))

    def run_as(self, action: commands.PgCtlAction,
               mode: commands.StopMode | None = None) -> OsUser | None:
        """None: the host's own user (``pg_ctlcluster`` switches users itself)."""
        return None

    @property
    def config_dir(self) -> Path:
        """Where Debian keeps the cluster's configuration (``/etc/postgresql``)."""
        return Path(f"/etc/postgresql/{self.major}/{self.cluster}")



@attrs.define
class SystemdService(PgCtlService):
    """A systemd unit (``postgresql@15-main`` on Debian). Promotion goes through ``pg_ctl``,
    as systemd has no verb for it."""

    unit: str = ""

    def argv(self, action: commands.PgCtlAction,
             mode: commands.StopMode | None = None) -> tuple[str, ...]:
        """``systemctl ACTION UNIT``; ``pg_ctl`` for a promotion or an immediate stop, which
        systemd has no verb for."""
        if action == "promote" or mode == "immediate":
            return super().argv(action, mode)
        return commands.systemctl(action, self.unit)

    def waits(self, action: commands.PgCtlAction) -> bool:
        """``systemctl`` waits for its unit's start and stop itself."""
        return True if action in ("start", "stop", "restart") else super().waits(action)

    def run_as(self, action: commands.PgCtlAction,
               mode: commands.StopMode | None = None) -> OsUser | None:
        """pg_ctl as the server's owner; ``systemctl`` as the host's own user."""
        return super().run_as(action, mode) if action == "promote" or mode == "immediate" \
            else None

