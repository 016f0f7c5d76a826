"""Data directories: proving one is safe to wipe before a standby is cloned into it.

A directory is wiped only when no server runs on it and it is either empty (or missing), or a
PostgreSQL data directory the caller explicitly agreed to replace (``replace=True``). Never
``/``, a home directory, a system directory, or anything that is, holds or lies inside a
protected path (the primary's own data directory).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from pgstream.errors import PgStreamError, UnsafeDataDirectory
from pgstream.hosts.host import Host, LocalHost
from pgstream.render import commands

_SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media",
                "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",  # noqa: S108
                "/usr", "/usr/local", "/var", "/var/lib", "/var/lib/postgresql", "/var/tmp")  # noqa: S108


@attrs.frozen
class DataDirState:
    """What a directory is, for the wipe and clone checks: missing, empty, a data directory
    (running or not), or something else.
    """
    path: Path
    exists: bool
    empty: bool
    is_data_dir: bool
    version: str | None
    running_pid: int | None


def inspect(path: Path, host: Host | None = None) -> DataDirState:
    """What ``path`` on ``host`` is (see :class:`DataDirState`); reads, changes nothing."""
    host = host or LocalHost()
    path = Path(path)
    exists = host.exists(path)
    empty = not exists or (host.is_dir(path) and not host.list_dir(path))
    pg_version = path / "PG_VERSION"
    is_data_dir = exists and host.exists(pg_version)
    version = host.read_text(pg_version).strip() if is_data_dir else None
    return DataDirState(path, exists, empty, is_data_dir, version, _running_pid(host, path))


def _running_pid(host: Host, path: Path) -> int | None:
    try:
        pid = int(host.read_text(path / "postmaster.pid").split("\n", 1)[0])
    except (OSError, ValueError, PgStreamError):
        return None
    return pid if host.process_alive(pid) else None


def check_replaceable(path: Path, *, replace: bool, protected: Iterable[Path] = (),
                      allow_running: bool = False, host: Host | None = None,
                      parent_made: bool = False) -> DataDirState:
    """Raise :class:`UnsafeDataDirectory` unless ``path`` may be emptied for a new clone.
    ``parent_made``: an earlier step of the same plan makes its parent directory."""
    host = host or LocalHost()
    raw = Path(path)
    if not raw.is_absolute() or ".." in raw.parts:
        raise UnsafeDataDirectory(f"data directory {raw} must be an absolute path without '..'")
    target = host.resolve(Path(os.path.normpath(raw)))
    if str(target) in _SYSTEM_DIRS or target.parent == target:
        raise UnsafeDataDirectory(f"refusing to use {target} as a data directory: it is a "
                                  "system directory")
    if target in host.home_dirs():
        raise UnsafeDataDirectory(f"refusing to use {target} as a data directory: it is a "
                                  "home directory")
    for other in protected:
        other = host.resolve(Path(other))
        if target == other or other.is_relative_to(target) or target.is_relative_to(other):
            raise UnsafeDataDirectory(
                f"refusing to use {target}: it is, contains or lies inside {other}, the "
                "primary's data directory")
    if host.exists(raw) and not host.is_dir(raw):
        raise UnsafeDataDirectory(f"{target} exists and is not a directory")
    if not host.exists(raw) and not parent_made and not host.is_dir(raw.parent):
        raise UnsafeDataDirectory(f"the parent of {target} does not exist on {host.name}: "
                                  "create it first")
    state = inspect(raw, host)
    if state.running_pid is not None and not allow_running:
        raise UnsafeDataDirectory(
            f"a server (pid {state.running_pid}) is running on {target}: stop it first, or "
            "pass replace=True to have the plan stop it and replace the directory")
    if state.empty:
        return state
    if not state.is_data_dir:
        raise UnsafeDataDirectory(
            f"{target} is not empty and is not a PostgreSQL data directory (no PG_VERSION): "
            "refusing to wipe it; give an empty or new directory")
    if not replace:
        raise UnsafeDataDirectory(
            f"{target} is a PostgreSQL {state.version} data directory: pass replace=True to "
            "wipe it and clone the standby into it (its data will be lost)")
    return state


WIPE_TIMEOUT = 3600.0
"""Seconds a wipe of a data directory may take (a large one holds many files)."""


def wipe_contents(path: Path, host: Host | None = None) -> bool:
    """Remove everything inside ``path`` (kept itself, with its owner and mode): run on
    ``host`` the argv :func:`pgstream.render.commands.wipe_contents` renders, the very one plans
    print. False when ``path`` did not exist or was empty (nothing was run)."""
    host = host or LocalHost()
    path = Path(path)
    argv = commands.wipe_contents(path)
    if not host.exists(path) or not host.list_dir(path):
        return False
    host.run(argv, what=f"wipe {path}", timeout=WIPE_TIMEOUT)
    return True


def remove_empty(path: Path, host: Host | None = None) -> None:
    """Remove the (emptied) directory ``path`` itself, if it is still there."""
    host = host or LocalHost()
    if host.is_dir(Path(path)):
        host.remove_empty_dir(Path(path))
