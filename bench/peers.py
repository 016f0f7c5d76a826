"""Peers for bench_peers.py: repmgr and Patroni (with etcd) building a primary + 2 standbys
on loopback from Debian's packages, timed the same way as pgstream.

Everything listens on 127.0.0.1 only (servers, etcd, Patroni's REST API, the private sshd
that repmgr's switchover needs to reach the old primary), lives in one temporary directory,
and is stopped in ``finally`` (``Peers.stop``: every process this module started, by pid).
Servers run as the OS user ``postgres``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

PG_BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


LOOPBACK = "127.0.0.1"


def dsn(port: int, user: str = "postgres", dbname: str = "postgres",
        host: str = LOOPBACK) -> str:
    return f"host={host} port={port} user={user} dbname={dbname} connect_timeout=2"


def in_recovery(port: int, host: str = LOOPBACK, conninfo: str | None = None) -> bool | None:
    try:
        with psycopg.connect(conninfo or dsn(port, host=host), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
            return bool(row[0]) if row else None
    except psycopg.Error:
        return None


def streaming_to(port: int, host: str = LOOPBACK, conninfo: str | None = None) -> int:
    """How many walsenders of the server on ``port`` (or ``conninfo``) are streaming."""
    try:
        with psycopg.connect(conninfo or dsn(port, host=host), autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_replication "
                               "WHERE state = 'streaming'").fetchone()
            return int(row[0]) if row else 0
    except psycopg.Error:
        return 0


def wait(predicate: Callable[[], bool], timeout: float, what: str,
         interval: float = 0.01) -> float:
    """Seconds until ``predicate()``; raises TimeoutError."""
    started = time.perf_counter()
    while not predicate():
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - started


class Watch:
    """Polls, from the moment it is made, until ``writable`` (the target leaves recovery) and
    ``streaming`` (the target streams to ``count`` standbys): seconds, in a thread."""

    def __init__(self, target_port: int, count: int, timeout: float = 120,
                 host: str = LOOPBACK, conninfo: str | None = None) -> None:
        self.host, self.conninfo = host, conninfo
        self.started = time.perf_counter()
        self.writable: float | None = None
        self.streaming: float | None = None
        self._thread = threading.Thread(target=self._run, args=(target_port, count, timeout),
                                        daemon=True)
        self._thread.start()

    def _run(self, port: int, count: int, timeout: float) -> None:
        while time.perf_counter() - self.started < timeout:
            if self.writable is None and in_recovery(port, self.host, self.conninfo) is False:
                self.writable = time.perf_counter() - self.started
            if self.writable is not None and streaming_to(port, self.host,
                                                          self.conninfo) >= count:
                self.streaming = time.perf_counter() - self.started
                return
            time.sleep(0.005)

    def join(self, timeout: float = 130) -> None:
        self._thread.join(timeout)


class Peers:
    """A scratch directory and the processes started in it."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pgstream-peers-", dir="/tmp"))
        self.user = pwd.getpwnam(USER)
        os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.datadirs: list[Path] = []

    def _ids(self, user: bool) -> dict[str, Any]:
        """Popen arguments that run the child as postgres (no runuser in between, so that
        stopping the child's session leaves no orphan behind)."""
        if not user or os.geteuid() != 0:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def run(self, argv: list[str], *, user: bool = True, timeout: float = 300,
            env: dict[str, str] | None = None) -> str:
        done = subprocess.run(argv, capture_output=True, **self._ids(user),
                              text=True, timeout=timeout, cwd=self.dir, check=False,
                              env={**os.environ, "HOME": str(self.dir), **(env or {})})
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                               f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
        return str(done.stdout)

    def spawn(self, argv: list[str], log: Path, *, user: bool = True) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, **self._ids(user),
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.dir, start_new_session=True,
                                    env={**os.environ, "HOME": str(self.dir)})
        self.procs.append(proc)
        return proc

    def mkdir(self, name: str) -> Path:
        path = self.dir / name
        path.mkdir(mode=0o700)
        os.chown(path, self.user.pw_uid, self.user.pw_gid)
        return path

    def stop(self) -> None:
        """Stop every process started here (their session), then any server left in it."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        _kill_naming(self.dir)
        for data in self.datadirs:
            if (data / "postmaster.pid").exists():
                subprocess.run([str(PG_BIN / "pg_ctl"), "stop", "-m", "immediate", "-D",
                                str(data)], capture_output=True, timeout=60, check=False,
                               **self._ids(True))
        shutil.rmtree(self.dir, ignore_errors=True)


def _kill_naming(directory: Path) -> None:
    """SIGTERM processes whose command line names ``directory`` (ssh control masters that
    repmgr's ssh left behind, detached from the sessions started here)."""
    needle = os.fsencode(f"{directory}/")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline and b"postgres" not in cmdline.split(b"\0")[0]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)


@contextlib.contextmanager
def peers() -> Iterator[Peers]:
    made = Peers()
    try:
        yield made
    finally:
        made.stop()


def initdb(p: Peers, name: str, port: int, extra: str = "") -> Path:
    data = p.mkdir(name)
    p.datadirs.append(data)
    p.run([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-N"])
    conf = (f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = "
            f"'{p.dir}'\nfsync = off\nwal_level = replica\nmax_wal_senders = 10\n"
            "max_replication_slots = 10\nhot_standby = on\nwal_log_hints = on\n"
            "wal_keep_size = 64\n" + extra)
    with open(data / "postgresql.conf", "a") as f:
        f.write(conf)
    with open(data / "pg_hba.conf", "a") as f:
        f.write("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
    return data


def writer(port: int, stop: threading.Event, acked: list[int], host: str = LOOPBACK) -> None:
    """Commit numbered rows to whichever server is on ``port`` until ``stop``."""
    number = 0
    while not stop.is_set():
        try:
            with psycopg.connect(dsn(port, host=host), autocommit=True) as conn:
                while not stop.is_set():
                    number += 1
                    conn.execute("INSERT INTO acked VALUES (%s)", (number,))
                    acked.append(number)
        except psycopg.Error:
            time.sleep(0.01)


def lost(port: int, acked: list[int], host: str = LOOPBACK) -> int:
    """How many of ``acked`` the server on ``port`` does not have."""
    with psycopg.connect(dsn(port, host=host), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM acked WHERE id = ANY(%s)",
                           (list(acked),)).fetchone()
    return len(acked) - int(row[0] if row else 0)


@contextlib.contextmanager
def writing(port: int, host: str = LOOPBACK) -> Iterator[list[int]]:
    """A writer thread committing to ``port`` (table acked, emptied first) while the block
    runs."""
    with psycopg.connect(dsn(port, host=host), autocommit=True) as conn:
        conn.execute("TRUNCATE acked")
    acked: list[int] = []
    stop = threading.Event()
    thread = threading.Thread(target=writer, args=(port, stop, acked, host), daemon=True)
    thread.start()
    try:
        wait(lambda: len(acked) > 20, 30, "writes")
        yield acked
    finally:
        stop.set()
        thread.join(10)


def http_json(url: str, body: dict[str, Any] | None = None, timeout: float = 30,
              method: str | None = None) -> Any:
    """A JSON request to a loopback HTTP API (GET, or POST with a body)."""
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"loopback only: {url}")
    request = urllib.request.Request(url, data=data,  # noqa: S310 - checked: loopback http
                                     method=method or ("POST" if body else "GET"),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        text = response.read().decode()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
