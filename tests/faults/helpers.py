"""Tools of the fault suite that need no pytest: processes seen through /proc, proof that a
process belongs to a test directory, probes of the servers really running there, bounded
waits, and a child Python process to signal.

Ownership: a process belongs to a test directory ``root`` when its working directory lies
under ``root`` (every PostgreSQL server process and every ``pg_basebackup`` pgstream starts
works in the data directory) or one of its arguments names a path under ``root`` (``cp`` of a
template, ``pg_ctl``). Only such processes are ever signalled by the suite's cleanup.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parents[2]


class Timeout(AssertionError):
    """A bounded wait of the suite ran out (a test failure, never a hang)."""


def wait_until(condition: Callable[[], object], *, timeout: float, what: str,
               pause: float = 0.02) -> None:
    """Poll ``condition`` until it is truthy; :class:`Timeout` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise Timeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(pause)


# -- processes ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    state: str
    exe: str
    cwd: str
    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        return os.path.basename(self.exe or (self.argv[0] if self.argv else ""))

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.program}, cwd {self.cwd}): {' '.join(self.argv)[:160]}"


def _link(path: str) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        return ""
    return target.removesuffix(" (deleted)")


def proc(pid: int) -> Proc | None:
    """The process ``pid`` as /proc shows it now, or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    argv = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
    return Proc(pid, int(fields[1]), fields[0], _link(f"/proc/{pid}/exe"),
                _link(f"/proc/{pid}/cwd"), argv)


def processes() -> list[Proc]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (item := proc(int(entry))) is not None:
            found.append(item)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie is not)."""
    item = proc(pid)
    return item is not None and item.state != "Z"


def _under(path: str, root: Path) -> bool:
    text = str(root)
    return path == text or path.startswith(text.rstrip("/") + "/")


def owned_by(root: Path) -> list[Proc]:
    """Live processes proven to belong to ``root`` (see the module docstring)."""
    me = os.getpid()
    return [p for p in processes() if p.pid != me and p.state != "Z" and (
        _under(p.cwd, root) or any(str(root) in arg for arg in p.argv))]


def postmasters(root: Path) -> list[Proc]:
    """PostgreSQL postmasters working in a directory under ``root`` (a postmaster's parent is
    not a postgres process of the same directory; its children's is)."""
    servers = [p for p in owned_by(root) if p.program == "postgres" and _under(p.cwd, root)]
    pids = {p.pid for p in servers}
    return [p for p in servers if p.ppid not in pids]


def children(pid: int) -> list[Proc]:
    return [p for p in processes() if p.ppid == pid and p.state != "Z"]


def kill_server(pid: int) -> None:
    """kill -9 of a server: its postmaster and every child at once (nothing may go on)."""
    for item in [*children(pid), proc(pid)]:
        if item is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(item.pid, signal.SIGKILL)


def sweep(root: Path, grace: float = 5.0) -> list[str]:
    """Kill every process proven to belong to ``root``; returns what was found running."""
    found = owned_by(root)
    for item in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(item.pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while any(alive(p.pid) for p in found) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [str(p) for p in found]


def basebackups(data_dir: Path) -> tuple[list[Proc], list[Proc]]:
    """The ``pg_basebackup`` processes cloning into ``data_dir``: (parents, WAL children).
    With ``-X stream`` the parent forks a child that streams WAL beside the copy."""
    found = [p for p in processes() if p.state != "Z" and p.program == "pg_basebackup"
             and str(data_dir) in p.argv]
    pids = {p.pid for p in found}
    return [p for p in found if p.ppid not in pids], [p for p in found if p.ppid in pids]


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` now (files vanishing meanwhile are skipped)."""
    total = 0
    for top, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(top, name)).st_size
    return total


def is_empty(path: Path) -> bool:
    """Missing, or an empty directory."""
    return not path.exists() or (path.is_dir() and not any(path.iterdir()))


# -- servers ------------------------------------------------------------------------------

def endpoint(data_dir: Path) -> tuple[str, int] | None:
    """(socket directory, port) from a running server's postmaster.pid."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        return lines[4].strip(), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None


def accepts_writes(data_dir: Path, timeout: int = 3) -> bool:
    """Does the server running on ``data_dir`` accept a write (CREATE TABLE, rolled back)?"""
    where = endpoint(data_dir)
    if where is None:
        return False
    try:
        with psycopg.connect(host=where[0], port=where[1], user="postgres", dbname="postgres",
                             connect_timeout=timeout) as conn:
            conn.execute("SET statement_timeout = '3s'")
            conn.execute("CREATE TABLE pgstream_fault_probe ()")
            conn.rollback()
            return True
    except psycopg.Error:
        return False


def writable(root: Path) -> list[str]:
    """Data directories (under ``root``) of running servers that accept writes: more than one
    is split brain, whatever any Cluster object believes."""
    return sorted(p.cwd for p in postmasters(root) if accepts_writes(Path(p.cwd)))


def max_writable(root: Path, seconds: float) -> list[str]:
    """The most writable servers seen at once while watching ``root`` for ``seconds`` (a
    promotion requested before an error may complete after it)."""
    worst: list[str] = []
    deadline = time.monotonic() + seconds
    while True:
        now = writable(root)
        if len(now) > len(worst):
            worst = now
        if len(worst) > 1 or time.monotonic() >= deadline:
            return worst
        time.sleep(0.1)


def startup_process(postmaster_pid: int) -> Proc | None:
    """A standby's startup (recovery) process: the one that replays WAL and promotes."""
    for item in children(postmaster_pid):
        if any("startup" in arg for arg in item.argv):
            return item
    return None


@contextlib.contextmanager
def blackhole() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that completes connections and never answers (a host whose
    server hangs): libpq waits there until its connect timeout."""
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


# -- a child Python process, to signal ----------------------------------------------------

class Child:
    """``python -m tests.faults.child SCENARIO ARGS...`` with this worktree's code; its JSON
    lines are read by a thread. Always ``close()`` it (kills it if still running)."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        paths = [str(REPO / "src"), str(REPO)]
        merged = {**os.environ, **(env or {})}
        merged["PYTHONPATH"] = os.pathsep.join(paths)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.child", *args], cwd=REPO, env=merged,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout: float,
                 what: str) -> dict[str, Any]:
        """The first line (from now on, or already seen) that ``match`` accepts."""
        for line in self.seen:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (self.proc.poll() is not None and self.lines.empty()):
                raise Timeout(f"child: no {what} within {timeout:g} s (exit "
                              f"{self.proc.poll()}); stderr tail:\n"
                              + "".join(self.stderr[-15:]))
            try:
                line = self.lines.get(timeout=min(remaining, 0.05))
            except queue.Empty:
                continue
            self.seen.append(line)
            if match(line):
                return line

    def drain(self) -> list[dict[str, Any]]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return self.seen

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None when it still ran after ``timeout`` (then it is killed)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
