"""Data directories: proving one is safe to wipe before a standby is cloned into it.

A directory is wiped only when no server runs on it and it is either empty (or missing), or a
PostgreSQL data directory the caller explicitly agreed to replace (``replace=True``). Never
``/``, a home directory, a system directory, or anything that is, holds or lies inside a
protected path (the primary's own data directory).
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Iterable
from pathlib import Path

import attrs

from pgstream.errors import UnsafeDataDirectory

_SYSTEM_DIRS = ("/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib64", "/media",
                "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp",  # noqa: S108
                "/usr", "/usr/local", "/var", "/var/lib", "/var/lib/postgresql", "/var/tmp")  # noqa: S108


def _home_dirs() -> set[Path]:
    homes = {Path(os.path.expanduser("~")).resolve()}
    for entry in pwd.getpwall():
        if entry.pw_dir and entry.pw_dir not in ("/", "/nonexistent"):
            homes.add(Path(entry.pw_dir).resolve())
    return homes


@attrs.frozen
class DataDirState:
    path: Path
    exists: bool
    empty: bool
    is_data_dir: bool
    version: str | None
    running_pid: int | None


def inspect(path: Path) -> DataDirState:
    path = Path(path)
    exists = path.exists()
    empty = not exists or (path.is_dir() and not any(path.iterdir()))
    pg_version = path / "PG_VERSION"
    is_data_dir = exists and pg_version.is_file()
    version = pg_version.read_text().strip() if is_data_dir else None
    return DataDirState(path, exists, empty, is_data_dir, version, _running_pid(path))


def _running_pid(path: Path) -> int | None:
    try:
        pid = int((path / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def check_replaceable(path: Path, *, replace: bool, protected: Iterable[Path] = (),
                      allow_running: bool = False) -> DataDirState:
    """Raise :class:`UnsafeDataDirectory` unless ``path`` may be emptied for a new clone."""
    raw = Path(path)
    if not raw.is_absolute():
        raise UnsafeDataDirectory(f"data directory {raw} must be an absolute path")
    target = raw.resolve()
    if str(target) in _SYSTEM_DIRS or target.parent == target:
        raise UnsafeDataDirectory(f"refusing to use {target} as a data directory: it is a "
                                  "system directory")
    if target in _home_dirs():
        raise UnsafeDataDirectory(f"refusing to use {target} as a data directory: it is a "
                                  "home directory")
    for other in protected:
        other = Path(other).resolve()
        if target == other or other.is_relative_to(target) or target.is_relative_to(other):
            raise UnsafeDataDirectory(
                f"refusing to use {target}: it is, contains or lies inside {other}, the "
                "primary's data directory")
    if raw.exists() and not raw.is_dir():
        raise UnsafeDataDirectory(f"{target} exists and is not a directory")
    if not raw.exists() and not raw.parent.is_dir():
        raise UnsafeDataDirectory(f"the parent of {target} does not exist: create it first")
    state = inspect(raw)
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


def wipe_contents(path: Path) -> bool:
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
