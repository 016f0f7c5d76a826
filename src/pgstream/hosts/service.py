"""Service control: start, stop, restart, reload and promote a server, on any host.

- ``PgCtlService``: ``pg_ctl`` for a data directory, run as the server's OS user.
- ``DebianClusterService``: a Debian/Ubuntu cluster (``pg_ctlcluster VERSION NAME``; config in
  ``/etc/postgresql/VERSION/NAME/``, data in ``/var/lib/postgresql/VERSION/NAME``).
- ``SystemdService``: a systemd unit (``systemctl start|stop|restart|reload UNIT``).

All share the same watching, done on the server's own host in one command each
(:mod:`pgstream.render.scripts`, so over SSH a stop or a start is one round trip, not one per
poll): where the server reports its state in ``postmaster.pid`` (10+), a start returns as
soon as the file says so; a server that dies while starting, or logs a FATAL (only what this
start appended to the log counts), fails at once, with the tail of its log. A stop returns
only once the postmaster process has exited, whichever command (``pg_ctl``,
``pg_ctlcluster``, ``systemctl``) asked it to; given the pid the live server was proven to
run as, a stop that would not reach that process (wrong data directory, unit or cluster)
refuses, with nothing run, instead of returning quietly.
"""

from __future__ import annotations

import contextlib
import shlex
import signal
from pathlib import Path

import attrs

from pgstream.errors import CommandFailed, PgStreamError, ServerMismatch, WaitTimeout
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Completed, Host, OsUser
from pgstream.hosts.ssh import SshHost
from pgstream.hosts.wait import wait_for
from pgstream.render import commands, scripts


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

    def _run(self, argv: tuple[str, ...], what: str, user: OsUser | None, *,
             timeout: float | None = None, stdin: str | None = None) -> Completed:
        try:
            return self.host.run(argv, user=user, what=what, stdin=stdin,
                                 timeout=timeout if timeout is not None else self.timeout + 10)
        except CommandFailed as exc:
            tail = self.log_tail()
            if tail:
                raise CommandFailed(f"{exc}\n--- server log ({self.log_file}) ---\n{tail}",
                                    argv=exc.argv, returncode=exc.returncode,
                                    output=exc.output) from None
            raise

    def stop_argv(self, mode: commands.StopMode | None = None) -> tuple[str, ...]:
        """The one command :meth:`stop` runs: :meth:`argv` ``stop`` inside
        :func:`~pgstream.render.scripts.stop_watched` (the pid check before, the wait for the
        postmaster to exit after, both on the server's host)."""
        return scripts.stop_watched(self.argv("stop", mode), self.data_dir, self.timeout)

    def start_argv(self) -> tuple[str, ...]:
        """The one command :meth:`start` runs where pgstream watches the pid file (10+):
        :meth:`argv` ``start`` inside :func:`~pgstream.render.scripts.start_watched`;
        else :meth:`argv` ``start`` itself."""
        if not self.watches:
            return self.argv("start")
        return scripts.start_watched(self.argv("start"), self.data_dir, self.log_file,
                                      self.timeout)

    def describe(self, action: commands.PgCtlAction,
                 mode: commands.StopMode | None = None) -> str:
        """What a plan prints for ``action``: the command(s) the lifecycle method runs, from
        :meth:`argv` (a restart where pgstream watches the server is a stop, then a start)."""
        if action == "restart" and self.watches:
            return "\n".join((shlex.join(self.stop_argv(mode)), shlex.join(self.start_argv())))
        if action == "stop":
            return shlex.join(self.stop_argv(mode))
        if action == "start":
            return shlex.join(self.start_argv())
        return shlex.join(self.argv(action, mode))

    @property
    def watches(self) -> bool:
        """Does pgstream watch the pid file itself on this version (the version table's
        ``pidfile_status``), so that ``pg_ctl`` need not wait (``-W``)?"""
        return self.version is not None and self.version.adapter.supports("pidfile_status")

    # -- lifecycle
    def start(self) -> None:
        """Start and wait until the server accepts connections: where pgstream watches the
        pid file (10+), one command on the server's host (:meth:`start_argv`) that waits for
        a leftover dead postmaster to be reaped, starts, and watches ``postmaster.pid`` and
        what the log gained since."""
        if not self.watches:
            self.wait_gone()
            self._control("start")
            return
        what = f"the server on {self.data_dir} ({self.host.name}) to accept connections"
        done = self._run(self.start_argv(), f"{Path(self.argv('start')[0]).name} start "
                         f"({self.data_dir})", self.run_as("start"), timeout=self.timeout + 45)
        state, pid = scripts.watch_outcome(done.output, "start") or ("", None)
        if state == "ready":
            return
        if state == "died":
            raise CommandFailed(f"the server on {self.data_dir} stopped while starting:\n"
                                + self.log_tail())
        if state == "fatal":
            raise CommandFailed(f"the server on {self.data_dir} failed to start:\n"
                                + self.log_tail())
        if state == "timeout":
            raise WaitTimeout(f"timed out after {self.timeout:g} s waiting for {what}; "
                              "last seen: server log:\n" + self.log_tail(10))
        if state == "unreaped":
            raise WaitTimeout(f"timed out after 30 s waiting for the dead postmaster {pid} "
                              f"of {self.data_dir} to be reaped")
        raise CommandFailed(f"start of {self.data_dir} on {self.host.name}: unexpected "
                            f"output:\n{done.output[-2000:]}", argv=done.argv,
                            returncode=done.returncode, output=done.output)

    def stop(self, mode: commands.StopMode = "fast", *, pid: int | None = None) -> None:
        """Stop and wait until the postmaster process is gone (not only its pid file): one
        command on the server's host (:meth:`stop_argv`).

        ``pid``: the postmaster the caller proved serves the node (the one in the
        ``postmaster.pid`` of the data directory the server reports, see
        :mod:`pgstream.nodes.identity`). Then a stop that would not reach it refuses with
        :class:`~pgstream.errors.ServerMismatch` before doing anything: this service's data
        directory has no live postmaster, or another one, so its stop command would stop
        another server or none while that one runs on. Without ``pid``, a data directory
        with no live postmaster counts as stopped.
        """
        argv = self.stop_argv(mode)
        done = self._run(argv, f"{Path(self.argv('stop', mode)[0]).name} stop "
                         f"({self.data_dir})", self.run_as("stop", mode),
                         timeout=2 * self.timeout + 10,
                         stdin=f"{int(pid)}\n" if pid is not None else "\n")
        state, mine = scripts.watch_outcome(done.output, "stop") or ("", None)
        if state == "mismatch" and pid is not None:
            found = f"postmaster {mine}" if mine else "no live postmaster"
            raise ServerMismatch(
                f"the server to stop runs as postmaster {pid}, but {self.data_dir} on "
                f"{self.host.name} has {found}: this service does not control that server "
                "(wrong data_dir, unit or cluster?); nothing was stopped",
                field="postmaster pid", declared=mine, reported=pid)
        if state in ("none", "gone"):
            return
        if state == "alive":
            raise WaitTimeout(
                f"timed out after {self.timeout:g} s waiting for the postmaster {mine} of "
                f"{self.data_dir} ({self.host.name}) to exit; last seen: server log:\n"
                + self.log_tail(10))
        raise CommandFailed(f"stop of {self.data_dir} on {self.host.name}: unexpected "
                            f"output:\n{done.output[-2000:]}", argv=done.argv,
                            returncode=done.returncode, output=done.output)

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

    def pid(self) -> int | None:
        """The postmaster's pid if one is alive for this data directory (postmaster.pid);
        over SSH in one command (:func:`~pgstream.render.scripts.live_postmaster`)."""
        if isinstance(self.host, SshHost):  # as before: an unreadable pid file names none
            try:
                done = self.host.run(scripts.live_postmaster(self.data_dir), check=False,
                                     what=f"check the postmaster of {self.data_dir}",
                                     timeout=60)
            except (OSError, PgStreamError):
                return None
            found = scripts.watch_outcome(done.output, "pid")
            return found[1] if found is not None else None
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

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server log (empty when it cannot be read): only
        its last 64 KiB travel (``tail -c``)."""
        if self.log_file is None:
            return ""
        try:
            done = self.host.run(commands.tail_bytes(self.log_file, 65536), check=False,
                                 what=f"read {self.log_file}", timeout=60)
        except (OSError, PgStreamError):
            return ""
        if done.returncode != 0:
            return ""
        return "\n".join(done.output.strip().splitlines()[-lines:])


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

