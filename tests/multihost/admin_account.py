"""A throw-away OS account that logs in to the rig hosts, like a cloud image's ``admin`` or
``ubuntu``: not root, not the server's user, and (once allowed) with passwordless sudo.

The rig's hosts share this machine's accounts, so the account is made with ``useradd`` and a
rule in ``/etc/sudoers.d``; both are removed at exit, and a later run removes those a killed run
left behind (the account's name carries the process id that made it). Standard library only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .rig import pid_alive

PREFIX = "pgsadm"
SUDOERS = Path("/etc/sudoers.d")
INSTALL_HINT = "apt-get install sudo"
_NAME = re.compile(rf"{PREFIX}(\d+)")


def unavailable_reason() -> str | None:
    """Why no such account can be made here, or None."""
    if os.geteuid() != 0:
        return "making an OS account needs root"
    missing = [tool for tool in ("sudo", "visudo", "useradd", "userdel")
               if shutil.which(tool) is None]
    if missing or not SUDOERS.is_dir():
        return f"needs sudo and {SUDOERS} ({INSTALL_HINT}); missing: {', '.join(missing)}"
    return None


@dataclasses.dataclass
class AdminAccount:
    name: str

    @property
    def rule(self) -> Path:
        # sudo skips files in sudoers.d whose names hold a dot or end with "~".
        return SUDOERS / self.name

    def allow_sudo(self) -> None:
        """Passwordless sudo to any user, as cloud images give their admin account."""
        tmp = SUDOERS.parent / f".{self.name}.sudoers"
        tmp.write_text(f"{self.name} ALL=(ALL:ALL) NOPASSWD: ALL\n")
        try:
            tmp.chmod(0o440)
            _run(["visudo", "-c", "-q", "-f", str(tmp)])
            tmp.rename(self.rule)
        finally:
            tmp.unlink(missing_ok=True)

    def end_sessions(self, ssh_argv_for: Sequence[list[str]] = ()) -> None:
        """Close ssh control masters (``ssh_argv_for``: their ``-O exit`` commands), then end
        whatever the account still runs, so that ``userdel`` may remove it."""
        for argv in ssh_argv_for:
            subprocess.run(argv, capture_output=True, timeout=10, check=False)
        uid = pwd.getpwnam(self.name).pw_uid
        for _ in range(50):
            left = [pid for pid in _pids() if _uid_of(pid) == uid]
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)


@contextlib.contextmanager
def admin_account() -> Iterator[AdminAccount]:
    """Make the account (no sudo rule yet: see ``allow_sudo``); remove it and its rule at exit.
    The caller closes the account's ssh sessions first (``end_sessions``)."""
    _sweep()
    account = AdminAccount(f"{PREFIX}{os.getpid()}")
    _remove(account)  # a previous test of this very process that could not finish
    # Password "*": no password login, yet not "locked" ("!"), which sshd without PAM refuses.
    _run(["useradd", "--no-create-home", "--home-dir", "/", "--shell", "/bin/sh",
          "--password", "*", "--comment", "pgstream test admin", account.name])
    try:
        yield account
    finally:
        _remove(account)


def _remove(account: AdminAccount) -> None:
    account.rule.unlink(missing_ok=True)
    if subprocess.run(["id", "-u", account.name], capture_output=True,
                      check=False).returncode == 0:
        account.end_sessions()
        _run(["userdel", account.name])


def _sweep() -> None:
    """Remove accounts (and rules) of test runs that died without cleaning up."""
    for line in Path("/etc/passwd").read_text().splitlines():
        match = _NAME.fullmatch(line.split(":", 1)[0])
        if match is None or int(match[1]) == os.getpid() or pid_alive(int(match[1])):
            continue
        _remove(AdminAccount(match[0]))


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _uid_of(pid: int) -> int | None:
    """The real uid of a process (None once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    return None


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                           f"{(done.stderr or done.stdout).strip()}")
