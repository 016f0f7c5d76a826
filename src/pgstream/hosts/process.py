"""Processes: the commands pgstream runs here, and the servers it may signal.

A command runs in its own process group (``start_new_session``), and that group is what is
waited for and killed. :func:`collect` reads a command's output until it ends *and* stops
waiting once the main process has exited: a child it left holding the output (``pg_basebackup``'s
WAL streamer after its parent was killed) is killed with the group after :data:`EXIT_GRACE`.
:func:`stop_commands` kills what given threads are running now (a plan interrupted in its main
thread uses it for its worker threads).

A pid read from a ``postmaster.pid`` may name a process that has nothing to do with the server
any more (pids are recycled). :func:`postmaster_proven` says whether a process is that data
directory's postmaster: its executable is a PostgreSQL server binary and its working directory
(or its ``-D`` argument) is that data directory. Only a proven pid is ever signalled.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

OutputCallback = Callable[[str], None]
SERVER_PROGRAMS = ("postgres", "postmaster")


class GroupPopen(subprocess.Popen[bytes]):
    """``Popen`` that kills the child (and its process group) if starting it is interrupted
    (Ctrl-C or SIGTERM right after the fork, before ``Popen`` returns and anyone could)."""

    def _execute_child(self, *args: Any, **kwargs: Any) -> None:
        before = _my_children()
        try:
            super()._execute_child(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            # The signal may land before the pid is even stored: this thread's new child.
            pid = getattr(self, "pid", None)
            started = (_my_children() - before) | ({pid} if isinstance(pid, int) else set())
            for child in started:
                with contextlib.suppress(OSError):
                    os.kill(child, 9)  # perhaps not yet the leader of its own group
                with contextlib.suppress(OSError):
                    os.killpg(child, 9)
                with contextlib.suppress(OSError):
                    os.waitpid(child, 0)
            raise


def _my_children() -> set[int]:
    """The live children this thread started (``/proc/PID/task/TID/children``)."""
    path = f"/proc/{os.getpid()}/task/{threading.get_native_id()}/children"
    try:
        with open(path, encoding="ascii") as f:
            return {int(p) for p in f.read().split()}
    except (OSError, ValueError):
        return set()


# Commands running now, per thread: a plan interrupted in its main thread kills those of its
# worker threads (stop_commands) instead of waiting for them to finish.
_RUNNING: dict[int, set[subprocess.Popen[bytes]]] = {}
_RUNNING_LOCK = threading.Lock()
# After the main process exits, how long output still held open by what it left behind is read.
EXIT_GRACE = 1.0


def register(proc: subprocess.Popen[bytes]) -> None:
    """Note that this thread runs ``proc`` (for :func:`stop_commands`)."""
    with _RUNNING_LOCK:
        _RUNNING.setdefault(threading.get_ident(), set()).add(proc)


def unregister(proc: subprocess.Popen[bytes]) -> None:
    """``proc`` is done (see :func:`register`)."""
    with _RUNNING_LOCK:
        mine = _RUNNING.get(threading.get_ident(), set())
        mine.discard(proc)
        if not mine:
            _RUNNING.pop(threading.get_ident(), None)


def stop_commands(threads: Iterable[int]) -> int:
    """Kill (with their process groups) the commands that ``threads`` are running now; the
    ``run`` waiting in each thread then returns or fails at once. Returns how many."""
    with _RUNNING_LOCK:
        procs = [p for t in threads for p in _RUNNING.get(t, ())]
    for proc in procs:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, 9)
    return len(procs)


def collect(proc: subprocess.Popen[bytes], deadline: float,
            on_output: OutputCallback | None) -> str | None:
    """Read the output until it ends and the main process has exited; None on timeout.

    The main process exiting ends the wait: output still held open by processes it left (in
    its group) is read for at most :data:`EXIT_GRACE` seconds, then the group is killed.
    """
    assert proc.stdout is not None
    chunks: list[bytes] = []
    pending = b""
    exited_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                kill(proc)
                return None
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= EXIT_GRACE:
                _kill_group(proc)  # what it left behind holds the output: it goes too
                break
            if not selector.select(timeout=min(remaining, 0.1)):
                continue
            data = os.read(proc.stdout.fileno(), 65536)
            if not data:
                break
            chunks.append(data)
            if on_output is not None:
                pending += data
                *lines, pending = re.split(rb"[\r\n]", pending)
                for line in lines:
                    if line.strip():
                        on_output(line.decode("utf-8", "replace"))
    if on_output is not None and pending.strip():
        on_output(pending.decode("utf-8", "replace"))
    proc.stdout.close()
    try:
        proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill(proc)
        return None
    return b"".join(chunks).decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen[bytes], wait: float = 5.0) -> None:
    """SIGKILL the group and wait (up to ``wait`` s) until none of it runs any more, so that
    nothing of it writes after this returns (a clone's directory is wiped next)."""
    try:
        os.killpg(proc.pid, 9)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + wait
    while _group_runs(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _group_runs(pgid: int) -> bool:
    """Does a live (not zombie) process of process group ``pgid`` remain?"""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc``'s whole process group (SIGKILL) and reap it."""
    _kill_group(proc)
    proc.wait()
    if proc.stdout is not None:
        with contextlib.suppress(OSError):
            proc.stdout.close()


def postmaster_proven(data_dir: Path, *, exe: str | None, cwd: str | None,
                      cmdline: Sequence[str]) -> bool:
    """Is a process with this ``/proc`` view the postmaster of ``data_dir``?

    ``exe`` and ``cwd`` are the targets of ``/proc/PID/exe`` and ``/proc/PID/cwd`` (None when
    unreadable; the kernel adds `` (deleted)`` once they are removed), ``cmdline`` its
    arguments. The program must be ``postgres`` (``postmaster`` on old releases), by its
    executable or, when that cannot be read, its first argument; and its working directory
    (a postmaster changes into its data directory) or its ``-D`` argument must be ``data_dir``.
    """
    wanted = os.path.normpath(str(data_dir))
    program = exe.removesuffix(" (deleted)") if exe else (cmdline[0] if cmdline else "")
    if Path(program).name not in SERVER_PROGRAMS:
        return False
    if cwd is not None and os.path.normpath(cwd.removesuffix(" (deleted)")) == wanted:
        return True
    args = list(cmdline[1:])
    for number, arg in enumerate(args):
        value = args[number + 1] if arg == "-D" and number + 1 < len(args) else (
            arg[2:] if arg.startswith("-D") and len(arg) > 2 else None)
        if value is not None and os.path.normpath(value) == wanted:
            return True
    return False


def local_postmaster_proven(pid: int, data_dir: Path) -> bool:
    """:func:`postmaster_proven` for a process of this machine, read from ``/proc``."""
    base = Path(f"/proc/{int(pid)}")
    try:
        stat = (base / "stat").read_text()
        raw = (base / "cmdline").read_bytes()
    except OSError:
        return False
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    links: list[str | None] = []
    for name in ("exe", "cwd"):
        try:
            links.append(os.readlink(base / name))
        except OSError:
            links.append(None)
    resolved = Path(data_dir)
    with contextlib.suppress(OSError):
        resolved = resolved.resolve()
    cmdline = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    return any(postmaster_proven(d, exe=links[0], cwd=links[1], cmdline=cmdline)
               for d in {Path(data_dir), resolved})


def local_postmasters_of(data_dir: Path) -> list[int]:
    """Postmasters of this machine that run ``data_dir`` (found through ``/proc``, for when its
    ``postmaster.pid`` is gone): proven processes whose parent is not one (their children
    share the executable and the working directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not local_postmaster_proven(int(entry.name), data_dir):
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if not local_postmaster_proven(ppid, data_dir):
            found.append(int(entry.name))
    return found
