"""A command run over SSH that times out here, or whose wait is interrupted (Ctrl-C, SIGTERM
during a plan, its worker thread's commands stopped), is stopped there too: killing the local
ssh client alone would leave it running on the remote host.

The rig's hosts are network namespaces of this machine, so what runs "there" is seen here with
``pgrep -f``. Each command is a ``sleep`` with an argument no other process has."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from pgstream.errors import CommandFailed, Terminated
from pgstream.hosts import sigterm
from pgstream.hosts.host import OsUser
from pgstream.hosts.process import stop_commands
from pgstream.hosts.ssh import SshHost

from .admin_account import AdminAccount, admin_account
from .admin_account import unavailable_reason as admin_unavailable
from .rig import Rig, RigUnavailable, network_rig, unavailable_reason

pytestmark = pytest.mark.skipif(unavailable_reason() is not None,
                                reason=f"multi-host rig unavailable: {unavailable_reason()}")

_counter = iter(range(1, 1000))


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    try:
        with network_rig(["alpha"]) as made:
            yield made
    except RigUnavailable as exc:  # pragma: no cover - the marker above catches it first
        pytest.skip(str(exc))
    assert made.teardown_problems == []


@pytest.fixture
def admin(rig: Rig) -> Iterator[AdminAccount]:
    reason = admin_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with admin_account() as account:
        account.allow_sudo()
        try:
            yield account
        finally:
            account.end_sessions([["ssh", "-F", str(rig.ssh_config), "-O", "exit",
                                   f"{account.name}@alpha"]])


def _seconds() -> str:
    """A ``sleep`` argument (about 300 s) that no other process on this machine has."""
    return f"30{next(_counter)}.{os.getpid()}"


def _running(seconds: str) -> list[int]:
    """The processes whose command line names ``sleep SECONDS`` (the sleep, and while they
    last the shells that started it)."""
    found = subprocess.run(["pgrep", "-f", f"sleep {seconds}"], capture_output=True,
                           text=True, timeout=10, check=False)
    return [int(pid) for pid in found.stdout.split()]


def _gone(seconds: str, within: float = 5.0) -> bool:
    """Has every process naming ``sleep SECONDS`` ended (waiting ``within`` s at most, for
    the shell that started it to see it end)?"""
    deadline = time.monotonic() + within
    while _running(seconds):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _cleanup(seconds: str) -> None:
    """Whatever the test left (it failed): killed, so that nothing outlives it."""
    for pid in _running(seconds):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _signal_once_started(seconds: str, signum: int) -> threading.Thread:
    """A thread that waits until ``sleep SECONDS`` runs, then sends ``signum`` to the main
    thread (as Ctrl-C or a process manager's SIGTERM would)."""
    main = threading.main_thread().ident
    assert main is not None

    def send() -> None:
        deadline = time.monotonic() + 20
        while not _running(seconds) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # the marker (the process group's id) has reached us by now
        signal.pthread_kill(main, signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _root(rig: Rig) -> SshHost:
    return SshHost("alpha", ssh_config=rig.ssh_config, login="root")


def test_a_timed_out_command_is_stopped_on_the_remote_host(rig: Rig) -> None:
    host, seconds = _root(rig), _seconds()
    started = time.monotonic()
    try:
        with pytest.raises(CommandFailed, match="did not finish within 2 s"):
            host.run(("sleep", seconds), timeout=2)
        assert time.monotonic() - started < 10
        assert _gone(seconds), f"sleep {seconds} still runs on alpha: {_running(seconds)}"
    finally:
        _cleanup(seconds)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_command_is_stopped_on_the_remote_host(rig: Rig, signum: int) -> None:
    """Ctrl-C raises KeyboardInterrupt; SIGTERM while a plan runs raises Terminated (one)."""
    host, seconds = _root(rig), _seconds()
    host.ping()  # the ssh connection is up: the interruption comes while the command runs
    expected = KeyboardInterrupt if signum == signal.SIGINT else Terminated
    if signum == signal.SIGTERM:
        sigterm.hold()  # as a plan does
    try:
        assert signum == signal.SIGINT or sigterm.installed()
        thread = _signal_once_started(seconds, signum)
        started = time.monotonic()
        with pytest.raises(expected):
            host.run(("sleep", seconds), timeout=120)
        thread.join(5)
        assert time.monotonic() - started < 15
        assert _gone(seconds), f"sleep {seconds} still runs on alpha: {_running(seconds)}"
    finally:
        if signum == signal.SIGTERM:
            sigterm.release()
        _cleanup(seconds)


def test_a_worker_thread_s_stopped_command_is_stopped_on_the_remote_host(rig: Rig) -> None:
    """A plan interrupted in its main thread kills its workers' ssh clients
    (``stop_commands``): what they ran there goes too."""
    host, seconds = _root(rig), _seconds()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            host.run(("sleep", seconds), timeout=120)
        except BaseException as exc:  # noqa: BLE001 - looked at below
            failure.append(exc)

    try:
        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        while not _running(seconds) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert worker.ident is not None and stop_commands([worker.ident]) == 1
        worker.join(15)
        assert not worker.is_alive()
        assert len(failure) == 1 and isinstance(failure[0], CommandFailed)
        assert _gone(seconds), f"sleep {seconds} still runs on alpha: {_running(seconds)}"
    finally:
        _cleanup(seconds)


@pytest.mark.parametrize("as_postgres", [False, True], ids=["become-root", "user-postgres"])
def test_a_command_run_through_sudo_is_stopped_as_its_user(rig: Rig, admin: AdminAccount,
                                                           as_postgres: bool) -> None:
    """Logged in as an admin that becomes root (or runs the command as postgres) with sudo:
    the group belongs to that user, and is stopped through sudo as that user."""
    host = SshHost(f"{admin.name}@alpha", name="alpha", ssh_config=rig.ssh_config,
                   become="root")
    user = OsUser.lookup("postgres") if as_postgres else None
    seconds = _seconds()
    try:
        with pytest.raises(CommandFailed, match="did not finish within 2 s"):
            host.run(("sleep", seconds), user=user, timeout=2)
        assert _gone(seconds), f"sleep {seconds} still runs on alpha: {_running(seconds)}"
        # A normal command through the same switch: its output carries no marker.
        assert host.run(("id", "-un"), user=user).output == (
            "postgres\n" if as_postgres else "root\n")
    finally:
        _cleanup(seconds)
