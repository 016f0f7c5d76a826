"""A fake host for unit tests: :class:`FakeHost` implements :class:`pgstream.hosts.host.Host`
in memory (files, directories, processes, installations that answer ``--version``) and
records every argv run (``ran``) and every change (``changes``: a file written, a directory
made or wiped, a command that is not a read). Used by :mod:`tests.fakes`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from pgstream.errors import CommandFailed
from pgstream.hosts.host import Completed, OsUser
from pgstream.hosts.process import OutputCallback

POSTGRES = OsUser("postgres", 1001, 1001, "/var/lib/postgresql")
PROGRAMS = ("postgres", "pg_ctl", "initdb", "pg_basebackup", "pg_rewind", "pg_controldata")
READ_ONLY_COMMANDS = ("--version", "stat")
"""argv that only read (``postgres --version``, ``stat``): not counted as changes."""


@attrs.define(eq=False)
class FakeHost:
    """An in-memory :class:`~pgstream.hosts.host.Host` (see the module docstring)."""

    name: str = "fake"
    files: dict[Path, bytes] = attrs.field(factory=dict)
    modes: dict[Path, int] = attrs.field(factory=dict)
    dirs: set[Path] = attrs.field(factory=lambda: {Path("/")})
    alive: set[int] = attrs.field(factory=set)
    """Pids of running processes."""
    postmasters: dict[int, Path] = attrs.field(factory=dict)
    """Pid -> the data directory that postmaster serves (for ``postmaster_proven``)."""
    installations: dict[Path, str] = attrs.field(factory=dict)
    """bindir -> the version its programs report (``"16.4"``)."""
    results: dict[str, Completed | CommandFailed] = attrs.field(factory=dict)
    """Scripted outcomes by program name (the argv's first element's basename)."""
    ran: list[tuple[str, ...]] = attrs.field(factory=list)
    changes: list[str] = attrs.field(factory=list)

    # -- set-up helpers (not part of the protocol)
    def add_dir(self, path: Path | str) -> None:
        """Make ``path`` and its parents exist."""
        path = Path(path)
        self.dirs.update([path, *path.parents])

    def add_file(self, path: Path | str, content: str | bytes, mode: int = 0o600) -> None:
        """A file (its parents made), without recording a change."""
        path = Path(path)
        self.add_dir(path.parent)
        self.files[path] = content.encode() if isinstance(content, str) else content
        self.modes[path] = mode

    def install(self, bindir: Path | str, version: str) -> Path:
        """PostgreSQL programs of ``version`` in ``bindir``."""
        bindir = Path(bindir)
        self.add_dir(bindir)
        self.installations[bindir] = version
        return bindir

    # -- commands
    def run(self, argv: Sequence[str], *, user: OsUser | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None, on_output: OutputCallback | None = None,
            check: bool = True, what: str | None = None,
            stdin: str | None = None) -> Completed:
        """Record ``argv``; answer ``--version`` of an installation, else the scripted result
        for the program (default: success, no output)."""
        argv = tuple(str(a) for a in argv)
        self.ran.append(argv)
        program = Path(argv[0])
        if not any(a in READ_ONLY_COMMANDS for a in argv[:2]):
            self.changes.append("run " + " ".join(argv))
        if argv[1:] == ("--version",) and program.parent in self.installations:
            return Completed(argv, 0, f"{program.name} (PostgreSQL) "
                             f"{self.installations[program.parent]}\n", 0.01)
        outcome = self.results.get(program.name, Completed(argv, 0, "", 0.01))
        if isinstance(outcome, CommandFailed):
            if check:
                raise outcome
            return Completed(argv, outcome.returncode or 1, outcome.output or "", 0.01)
        return outcome

    # -- files
    def _file(self, path: Path) -> bytes:
        path = Path(os.path.normpath(path))
        if path not in self.files:
            raise FileNotFoundError(f"{self.name}: no file {path}")
        return self.files[path]

    def read_text(self, path: Path) -> str:
        return self._file(path).decode()

    def read_bytes(self, path: Path) -> bytes:
        return self._file(path)

    def write_text(self, path: Path, text: str, *, mode: int = 0o600,
                   owner: OsUser | None = None) -> None:
        self.changes.append(f"write {path} ({mode:o})")
        self.add_file(path, text, mode)

    def append_text(self, path: Path, text: str, *, owner: OsUser | None = None) -> None:
        self.changes.append(f"append {path}")
        current = self.files.get(Path(path), b"").decode()
        self.add_file(path, current + text, self.modes.get(Path(path), 0o600))

    def exists(self, path: Path) -> bool:
        path = Path(os.path.normpath(path))
        return path in self.files or path in self.dirs

    def is_dir(self, path: Path) -> bool:
        return Path(os.path.normpath(path)) in self.dirs

    def make_dir(self, path: Path, *, mode: int = 0o700, owner: OsUser | None = None) -> None:
        self.changes.append(f"mkdir {path}")
        self.dirs.add(Path(path))

    def list_dir(self, path: Path) -> list[str]:
        path = Path(os.path.normpath(path))
        return sorted({p.name for p in [*self.files, *self.dirs] if p.parent == path
                       and p != path})

    def wipe_contents(self, path: Path) -> bool:
        self.changes.append(f"wipe {path}")
        path = Path(path)
        inside = [p for p in self.files if p.is_relative_to(path)]
        for p in inside:
            del self.files[p]
        self.dirs -= {d for d in self.dirs if d != path and d.is_relative_to(path)}
        return bool(inside)

    def remove_empty_dir(self, path: Path) -> None:
        self.changes.append(f"rmdir {path}")
        self.dirs.discard(Path(path))

    def executable(self, path: Path) -> bool:
        path = Path(path)
        return path.parent in self.installations and path.name in PROGRAMS

    # -- processes and users
    def process_alive(self, pid: int) -> bool:
        return pid in self.alive

    def process_exists(self, pid: int) -> bool:
        return pid in self.alive

    def postmaster_proven(self, pid: int, data_dir: Path) -> bool:
        return pid in self.alive and self.postmasters.get(pid) == Path(data_dir)

    def lookup_user(self, name: str) -> OsUser:
        return OsUser(name, 1001, 1001, f"/home/{name}")

    def home_dirs(self) -> set[Path]:
        return {Path("/root"), Path(POSTGRES.home)}

    def resolve(self, path: Path) -> Path:
        return Path(os.path.normpath(path))
