"""The host of a standby discovery found only by address, on another machine.

A walsender row's ``client_addr`` says where a standby connects from, not how to reach its
machine: it may be a host pgstream has no SSH access to, or a router, proxy or tunnel end in
front of it. Such a standby gets an :class:`UnknownHost`, never its upstream's host (which
would let pgstream inspect, start or stop a server of the same path on the wrong machine):
its server is still asked over its conninfo, but every command or file on its host is refused
with a clear error, and the topology file does not record it with any host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

import attrs

from pgstream.errors import Unreachable
from pgstream.hosts.host import Completed, OsUser
from pgstream.hosts.process import OutputCallback


@attrs.define
class UnknownHost:
    """A machine pgstream knows only by the address ``address`` a standby connects from:
    every operation on it raises :class:`~pgstream.errors.Unreachable`, nothing is run."""

    address: str
    name: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.name:
            self.name = f"{self.address} (host not known)"

    def _refuse(self, what: str) -> NoReturn:
        raise Unreachable(
            f"cannot {what} on the host of the standby found at {self.address}: discovery "
            "found it only by the address its upstream sees, on another machine, and does not "
            "know how to reach that machine; name it with its host (an SSH destination) in "
            "the topology file, or pass its conninfo with --standby and --host")

    def run(self, argv: Sequence[str], *, user: OsUser | None = None,
            env: Mapping[str, str] | None = None, timeout: float = 120.0,
            cwd: Path | None = None, on_output: OutputCallback | None = None,
            check: bool = True, what: str | None = None,
            stdin: str | None = None) -> Completed:
        """Refused: nothing runs there."""
        self._refuse(f"run {what or (argv[0] if argv else 'a command')}")

    def read_text(self, path: Path) -> str:
        """Refused."""
        self._refuse(f"read {path}")

    def read_bytes(self, path: Path) -> bytes:
        """Refused."""
        self._refuse(f"read {path}")

    def write_text(self, path: Path, text: str, *, mode: int = 0o600,
                   owner: OsUser | None = None) -> None:
        """Refused."""
        self._refuse(f"write {path}")

    def append_text(self, path: Path, text: str, *, owner: OsUser | None = None) -> None:
        """Refused."""
        self._refuse(f"write {path}")

    def exists(self, path: Path) -> bool:
        """Refused."""
        self._refuse(f"look at {path}")

    def is_dir(self, path: Path) -> bool:
        """Refused."""
        self._refuse(f"look at {path}")

    def make_dir(self, path: Path, *, mode: int = 0o700, owner: OsUser | None = None) -> None:
        """Refused."""
        self._refuse(f"create {path}")

    def list_dir(self, path: Path) -> list[str]:
        """Refused."""
        self._refuse(f"list {path}")

    def wipe_contents(self, path: Path) -> bool:
        """Refused."""
        self._refuse(f"empty {path}")

    def remove_empty_dir(self, path: Path) -> None:
        """Refused."""
        self._refuse(f"remove {path}")

    def executable(self, path: Path) -> bool:
        """Refused."""
        self._refuse(f"look at {path}")

    def process_alive(self, pid: int) -> bool:
        """Refused."""
        self._refuse(f"look at process {pid}")

    def process_exists(self, pid: int) -> bool:
        """Refused."""
        self._refuse(f"look at process {pid}")

    def postmaster_proven(self, pid: int, data_dir: Path) -> bool:
        """Refused."""
        self._refuse(f"look at process {pid}")

    def lookup_user(self, name: str) -> OsUser:
        """Refused."""
        self._refuse(f"look up the account {name}")

    def home_dirs(self) -> set[Path]:
        """Refused."""
        self._refuse("list the home directories")

    def resolve(self, path: Path) -> Path:
        """Refused."""
        self._refuse(f"resolve {path}")
