"""Local sandbox servers: temporary directories, free ports, initdb (or a cached template).

A sandbox lives in one directory it creates (``pgstream-XXXX`` in ``/dev/shm`` when that is
a memory file system with room, else in ``/tmp``; ``base_dir`` or ``$PGSTREAM_SANDBOX_DIR``
choose another place),
owned by the server's OS user: data directories, logs, the Unix socket directory and the
passfile. ``destroy()`` stops every server and removes that directory, and nothing else.
A ``sandbox.json`` marker lets ``pgstream sandbox-stop DIR`` clean up a kept sandbox later.

Every postmaster a sandbox starts is remembered by its pid, so that it is stopped even when
its ``postmaster.pid`` (or its whole data directory) is gone; and a pid, remembered or read
from a file, is signalled only once proven to be that directory's postmaster (a stale file
may name a recycled pid). While a sandbox lives, SIGTERM ends the process like Ctrl-C (see
:mod:`pgstream.hosts.sigterm`), so its servers are stopped.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path

import attrs
from psycopg import conninfo as pg_conninfo

from pgstream.errors import InvalidInput, OperationFailed
from pgstream.facts import identifiers
from pgstream.hosts import sigterm
from pgstream.hosts.binaries import Installation, probe
from pgstream.hosts.files import merge_auto_conf
from pgstream.hosts.host import LocalHost, OsUser
from pgstream.hosts.process import local_postmasters_of
from pgstream.hosts.service import PgCtlService
from pgstream.nodes.node import Primary, Standby
from pgstream.ops.sandbox import template as sandbox_template
from pgstream.ops.sandbox.settings import check_config_files
from pgstream.render import commands
from pgstream.render.config import ConfigRenderer

MARKER = "sandbox.json"
SUPERUSER = "postgres"


SHM = Path("/dev/shm")  # noqa: S108 - chosen for speed; each sandbox gets its own 0700 dir
SHM_MIN_FREE = 1 << 30


def default_parent() -> Path:
    """Where sandboxes go: ``$PGSTREAM_SANDBOX_DIR``, else ``/dev/shm`` when it is a writable
    memory file system with 1 GiB free, else the system's temporary directory.

    Memory is the default because creating files is what a sandbox mostly does (three copies
    of ~1000 files for a primary and two standbys), and on disk each costs far more.
    """
    if env := os.environ.get("PGSTREAM_SANDBOX_DIR"):
        return Path(env)
    try:
        info = os.statvfs(SHM)
        if os.access(SHM, os.W_OK | os.X_OK) and info.f_bavail * info.f_frsize >= SHM_MIN_FREE:
            return SHM
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def _first_blocked(path: Path, user: OsUser) -> Path | None:
    """The first directory on ``path`` that ``user`` may not traverse (None: all fine)."""
    groups = {user.gid, *(g.gr_gid for g in grp.getgrall() if user.name in g.gr_mem)}
    for part in [*reversed(path.resolve().parents), path.resolve()]:
        info = part.stat()
        if info.st_uid == user.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed and user.uid != 0:
            return part
    return None


SPARE_SENDERS = 4  # room for standbys added later (one clone at a time) and a user's backup


def replication_limits(standbys: int) -> tuple[int, int]:
    """``(max_wal_senders, max_replication_slots)`` for a sandbox of ``standbys``: every
    clone runs at once and takes two walsenders (``pg_basebackup -X stream``), with
    :data:`SPARE_SENDERS` to spare; never below PostgreSQL's default of 10."""
    return max(10, 2 * standbys + SPARE_SENDERS), max(10, standbys + SPARE_SENDERS)


def free_port(taken: set[int]) -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it), not already handed out here."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in taken:
            taken.add(port)
            return port
    raise OperationFailed("could not find a free TCP port on 127.0.0.1")


@attrs.define
class SandboxService(PgCtlService):
    """``pg_ctl`` for a sandbox server, remembering the pid of each postmaster it started."""

    started: list[int] = attrs.field(factory=list)

    def start(self) -> None:
        """Start (see :meth:`PgCtlService.start`) and remember the new postmaster's pid."""
        try:
            super().start()
        finally:
            self._remember()

    def restart(self, mode: commands.StopMode = "fast") -> None:
        """Restart and remember the new postmaster's pid."""
        try:
            super().restart(mode)
        finally:
            self._remember()

    def _remember(self) -> None:
        pid = self.pid()
        if pid is not None and pid not in self.started:
            self.started.append(pid)

    def postmasters(self) -> list[int]:
        """Live pids proven to be this data directory's postmaster: the one its
        ``postmaster.pid`` names, those this service started, and (the file may be gone, and
        another process may be asking) those ``/proc`` shows running this directory."""
        found = []
        for pid in [*self._pidfile_pids(), *self.started, *local_postmasters_of(self.data_dir)]:
            if pid not in found and self.host.postmaster_proven(pid, self.data_dir):
                found.append(pid)
        return found

    def _pidfile_pids(self) -> list[int]:
        lines = self._pidfile_lines()
        return [int(lines[0])] if lines and lines[0].isdigit() else []

    def stale_pid(self) -> int | None:
        """A live pid that ``postmaster.pid`` names but that is not this directory's server."""
        for pid in self._pidfile_pids():
            if self.host.process_alive(pid) and not self.host.postmaster_proven(
                    pid, self.data_dir):
                return pid
        return None


@attrs.frozen
class Destroyed:
    """What :meth:`Sandbox.destroy` did: ``problems`` are servers it could not stop (the
    ``sandbox-stop`` command fails then), ``notes`` what it left alone and why."""

    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


STOP_WAIT = 10.0  # seconds for an immediate shutdown before SIGKILL


@attrs.define
class Sandbox:
    """The local directory, ports and processes of a sandbox cluster."""

    base_dir: Path
    server: Installation
    user: OsUser
    host: LocalHost = attrs.field(factory=LocalHost)
    template: bool = True
    wal_segsize_mb: int | None = None
    ports: set[int] = attrs.field(factory=set)
    services: dict[str, SandboxService] = attrs.field(factory=dict)
    holds_sigterm: bool = False

    @classmethod
    def create(cls, server: Installation, user: OsUser, base_dir: str | Path | None = None,
               template: bool = True, wal_segsize_mb: int | None = None) -> Sandbox:
        """A new, empty sandbox directory under ``base_dir`` (default
        :func:`default_parent`), owned by ``user``, with its socket directory and marker. Raises
        :class:`~pgstream.errors.InvalidInput` before creating anything when ``base_dir`` is no
        directory or ``user`` could not reach it or the server programs."""
        parent = Path(base_dir) if base_dir is not None else default_parent()
        if not parent.is_dir():
            raise InvalidInput(f"base_dir {parent} is not an existing directory")
        for place, why in ((server.bindir, f"run the PostgreSQL programs in {server.bindir}"),
                           (parent, f"reach a sandbox in {parent}")):
            blocked = _first_blocked(place, user)
            if blocked is not None:  # checked before anything is created
                raise InvalidInput(
                    f"the server user {user.name!r} cannot enter {blocked}, so it could not "
                    f"{why}: choose another place, or allow it (chmod o+x {blocked})")
        sigterm.hold()  # before anything exists: a SIGTERM from now on cleans up
        try:
            path = Path(tempfile.mkdtemp(prefix="pgstream-", dir=parent))
        except BaseException:
            sigterm.release()
            raise
        box = cls(path, server, user, template=template, wal_segsize_mb=wal_segsize_mb,
                  holds_sigterm=True)
        try:
            if os.geteuid() == 0 and user.uid != 0:
                os.chown(path, user.uid, user.gid)
            box.save_marker()
            (box.socket_dir).mkdir(mode=0o700)
            if os.geteuid() == 0 and user.uid != 0:
                os.chown(box.socket_dir, user.uid, user.gid)
        except BaseException:
            box.destroy()
            raise
        return box

    @property
    def socket_dir(self) -> Path:
        """The Unix socket directory every server of the sandbox listens in (0700)."""
        return self.base_dir / "run"

    @property
    def passfile(self) -> Path:
        """The passfile (0600) every standby of the sandbox reads its password from."""
        return self.base_dir / "replication.pgpass"

    def data_dir(self, name: str) -> Path:
        """Where the node ``name`` keeps its data (the name is validated)."""
        return self.base_dir / identifiers.node_name(name)

    def log_file(self, name: str) -> Path:
        """The server log of the node ``name``."""
        return self.base_dir / f"{name}.log"

    def conninfo(self, port: int) -> str:
        """The superuser conninfo of the sandbox server on ``port`` (over its socket)."""
        return pg_conninfo.make_conninfo("", host=str(self.socket_dir), port=port,
                                         user=SUPERUSER, dbname="postgres")

    def service(self, name: str) -> SandboxService:
        """A ``pg_ctl`` service for the node ``name``, remembered (so that :meth:`destroy`
        stops it) and written to the marker."""
        svc = SandboxService(self.host, self.server.bindir, self.data_dir(name), self.user,
                             self.log_file(name), version=self.server.version)
        self.services[name] = svc
        self.save_marker()
        return svc

    def adopt(self, key: str, service: PgCtlService) -> None:
        """Stop and remove ``service``'s server with the sandbox too (a node's new data
        directory after a major upgrade; ``key`` is that directory's name)."""
        if not isinstance(service, SandboxService):
            service = SandboxService(service.host, service.bindir, service.data_dir,
                                     service.user, service.log_file, version=service.version)
        self.services[identifiers.node_name(key)] = service
        self.save_marker()

    def node_settings(self, name: str, port: int) -> dict[str, str]:
        """The node's own settings: ``port``, socket directory, ``cluster_name``."""
        return ConfigRenderer(self.server.version).node_settings(
            port=port, socket_dir=str(self.socket_dir), cluster_name=name)

    # -- primary
    def init_primary(self, name: str, settings: dict[str, str]) -> Primary:
        """initdb (or copy the cached template), write settings, check them (``postgres -C``:
        :class:`~pgstream.errors.InvalidInput`), start. Returns the node."""
        port = free_port(self.ports)
        data = self.data_dir(name)
        argv = commands.initdb(self.server.bindir, data, superuser=SUPERUSER,
                               wal_segsize_mb=self.wal_segsize_mb, version=self.server.version)
        sandbox_template.initdb(self.host, self.server, self.user, argv, data,
                                template=self.template)
        # Throw-away servers: no fsync; standbys report their position every second (not 10)
        # so the primary's pg_stat_replication catches up quickly in status().
        # Dynamic shared memory as files in the data directory (not /dev/shm segments): a
        # server killed with -9 in a test leaves nothing behind once the sandbox is removed.
        own = {**settings, **self.node_settings(name, port), "fsync": "off",
               "wal_receiver_status_interval": "1", "dynamic_shared_memory_type": "mmap"}
        merge_auto_conf(self.host, data, own, self.user)
        check_config_files(self.host, self.server, self.user, data)  # before the first start
        service = self.service(name)
        primary = Primary(name, self.conninfo(port), host=self.host, data_dir=data,
                          service=service, os_user=self.user)
        service.start()
        return primary

    def standby_node(self, name: str) -> tuple[Standby, dict[str, str]]:
        """A standby-to-be: its node (not yet created) and its own settings."""
        port = free_port(self.ports)
        service = self.service(name)
        node = Standby(name, self.conninfo(port), host=self.host, data_dir=self.data_dir(name),
                       service=service, os_user=self.user)
        return node, self.node_settings(name, port)

    # -- lifetime
    def save_marker(self) -> None:
        """Write ``sandbox.json`` (0600): the programs, the user and each node's data
        directory, for ``pgstream sandbox-stop`` (:func:`destroy_kept`)."""
        state = {"pgstream_sandbox": 1, "bindir": str(self.server.bindir),
                 "user": self.user.name,
                 "nodes": {name: str(svc.data_dir) for name, svc in self.services.items()}}
        self.host.write_text(self.base_dir / MARKER, json.dumps(state, indent=1), mode=0o600)

    def keep(self) -> None:
        """The sandbox is to outlive this process (``detach``): SIGTERM no longer stops it."""
        if self.holds_sigterm:
            self.holds_sigterm = False
            sigterm.release()

    def destroy(self) -> Destroyed:
        """Stop every server (immediate shutdown: SIGQUIT, then SIGKILL after
        :data:`STOP_WAIT` s) and remove the sandbox directory.

        Only pids proven to be a sandbox data directory's postmaster are signalled: those the
        ``postmaster.pid`` files name and those this sandbox started (whose directory may be
        gone). A file naming another process is left alone (a note, not a problem)."""
        notes: list[str] = []
        targets: dict[int, tuple[str, Path]] = {}
        for name, svc in self.services.items():
            if (stale := svc.stale_pid()) is not None:
                notes.append(f"{name}: {svc.data_dir}/postmaster.pid names pid {stale}, which "
                             "is not that directory's server (a recycled pid): not signalled")
            for pid in svc.postmasters():
                targets[pid] = (name, svc.data_dir)
        problems = _stop_all(targets, self.host)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self.holds_sigterm:
            self.holds_sigterm = False
            sigterm.release()
        return Destroyed(tuple(problems), tuple(notes))


def _stop_all(targets: dict[int, tuple[str, Path]], host: LocalHost) -> list[str]:
    """SIGQUIT each proven postmaster, wait, SIGKILL those still there (proven again: a pid
    that ended may be recycled); name the survivors."""
    for sig, wait in ((signal.SIGQUIT, STOP_WAIT), (signal.SIGKILL, 5.0)):
        for pid, (_name, data_dir) in targets.items():
            if host.postmaster_proven(pid, data_dir):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while targets and time.monotonic() < deadline:
            targets = {p: t for p, t in targets.items() if host.postmaster_proven(p, t[1])}
            if targets:
                time.sleep(0.01)
        if not targets:
            return []
    return [f"{name}: its postmaster (pid {pid}) did not stop, even after SIGKILL"
            for pid, (name, _dir) in targets.items()]


def destroy_kept(path: str | Path) -> Destroyed:
    """Stop and remove a sandbox left running with ``--keep`` (``pgstream sandbox-stop``)."""
    base = Path(path)
    marker = base / MARKER
    try:
        state = json.loads(marker.read_text())
    except (OSError, ValueError):
        raise InvalidInput(f"{base} is not a pgstream sandbox (no readable {MARKER})") from None
    if state.get("pgstream_sandbox") != 1:
        raise InvalidInput(f"{base} is not a pgstream sandbox")
    server = probe(state["bindir"])
    box = Sandbox(base, server, OsUser.lookup(state["user"]))
    for name in state.get("nodes", {}):
        box.service(name)
    return box.destroy()
