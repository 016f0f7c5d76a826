"""Commands and their process groups; proving a pid is a postmaster; SIGTERM etiquette;
walsender budgets for clones. Over real short-lived processes and fakes, no server."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgstream import cli
from pgstream.errors import CommandFailed, InvalidInput, OperationFailed, Terminated
from pgstream.hosts import process, sigterm
from pgstream.hosts.host import LocalHost
from pgstream.ops.sandbox import servers as sandbox_ops
from pgstream.ops.sandbox.servers import Destroyed, replication_limits
from pgstream.ops.senders import SenderBudget, needed_senders


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


# -- commands end with their main process, and take their group with them


def test_a_child_holding_the_output_does_not_keep_the_command_running(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    started = time.monotonic()
    done = LocalHost().run(("sh", "-c", f'sleep 60 & echo $! > {marker}; echo main; exit 3'),
                           check=False, timeout=30)
    assert time.monotonic() - started < 5
    assert done.returncode == 3 and "main" in done.output
    child = int(marker.read_text())
    assert not _alive(child)  # killed with the group


def test_a_command_stopped_by_its_timeout_is_killed_with_its_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    with pytest.raises(CommandFailed, match=r"did not finish within 0\.5 s"):
        LocalHost().run(("sh", "-c", f"sleep 60 & echo $! > {marker}; wait"), timeout=0.5)
    assert not _alive(int(marker.read_text()))


def test_an_interrupted_command_is_killed_with_its_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"

    def on_output(line: str) -> None:
        raise KeyboardInterrupt  # as Ctrl-C would, while the command runs

    with pytest.raises(KeyboardInterrupt):
        LocalHost().run(("sh", "-c", f"sleep 60 & echo $! > {marker}; echo go; wait"),
                        on_output=on_output, timeout=30)
    assert not _alive(int(marker.read_text()))


def test_stop_commands_kills_what_another_thread_runs(tmp_path: Path) -> None:
    result: list[BaseException] = []
    idents: list[int] = []

    def run() -> None:
        idents.append(threading.get_ident())
        try:
            LocalHost().run(("sleep", "60"), timeout=60)
        except BaseException as exc:  # noqa: BLE001
            result.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not process.stop_commands(idents):
        time.sleep(0.01)
    worker.join(10)
    assert not worker.is_alive()
    assert isinstance(result[0], CommandFailed)


# -- a pid is signalled only when proven to be that data directory's postmaster


@pytest.mark.parametrize(("exe", "cwd", "cmdline", "proven"), [
    ("/usr/lib/postgresql/15/bin/postgres", "/data/pg", ["postgres", "-D", "/data/pg"], True),
    ("/usr/lib/postgresql/15/bin/postgres", "/data/pg (deleted)", [], True),
    ("/usr/lib/postgresql/15/bin/postgres", None, ["/x/postgres", "-D", "/data/pg/"], True),
    ("/usr/lib/postgresql/15/bin/postgres", None, ["/x/postgres", "-D/data/pg"], True),
    (None, None, ["/usr/lib/postgresql/9.6/bin/postmaster", "-D", "/data/pg"], True),
    ("/usr/lib/postgresql/15/bin/postgres", "/data/other", ["postgres", "-D", "/data/other"],
     False),
    ("/usr/bin/sleep", "/data/pg", ["sleep", "-D", "/data/pg"], False),
    ("/usr/sbin/sshd", "/", ["sshd: root"], False),
    (None, None, [], False),
])
def test_postmaster_proof(exe: str | None, cwd: str | None, cmdline: list[str],
                          proven: bool) -> None:
    assert process.postmaster_proven(Path("/data/pg"), exe=exe, cwd=cwd,
                                     cmdline=cmdline) is proven


def test_a_live_process_that_is_no_postmaster_is_not_proven(tmp_path: Path) -> None:
    assert not LocalHost().postmaster_proven(os.getpid(), tmp_path)
    assert not LocalHost().postmaster_proven(os.getpid(), Path.cwd())  # not postgres
    assert not LocalHost().postmaster_proven(2 ** 22 + 1, tmp_path)  # no such pid


def test_sandbox_stop_exits_non_zero_when_a_stop_failed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sandbox_ops, "destroy_kept", lambda path: Destroyed(
        problems=("primary: its postmaster (pid 7) did not stop, even after SIGKILL",),
        notes=("standby1: stale",)))
    assert cli.main(["sandbox-stop", "/nowhere"]) == 1
    err = capsys.readouterr().err
    assert "did not stop" in err and "stale" in err
    monkeypatch.setattr(sandbox_ops, "destroy_kept", lambda path: Destroyed(notes=("x: stale",)))
    assert cli.main(["sandbox-stop", "/nowhere"]) == 0


# -- SIGTERM while a sandbox lives


@pytest.fixture
def clean_sigterm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The module's state as if no sandbox lived (a session-wide sandbox of another test may
    hold SIGTERM meanwhile): restored afterwards, with the handler that was there."""
    before = signal.getsignal(signal.SIGTERM)
    for name, value in (("_holders", 0), ("_installed", False), ("_previous", None),
                        ("_terminating", False)):
        monkeypatch.setattr(sigterm, name, value)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def test_sigterm_raises_terminated_while_held_and_the_default_comes_back(
        clean_sigterm: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sigterm.hold()
    sigterm.hold()
    assert sigterm.installed()
    with pytest.raises(Terminated) as caught:
        signal.raise_signal(signal.SIGTERM)
    assert isinstance(caught.value, KeyboardInterrupt)
    signal.raise_signal(signal.SIGTERM)  # a second one, during the cleanup: ignored
    sigterm.release()
    assert sigterm.installed()  # one sandbox still lives
    sigterm.release()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_an_application_handler_is_chained_to_and_put_back(clean_sigterm: None) -> None:
    calls: list[int] = []

    def app(signum: int, frame: Any) -> None:
        calls.append(signum)

    signal.signal(signal.SIGTERM, app)
    sigterm.hold()
    signal.raise_signal(signal.SIGTERM)  # the application decides: no Terminated
    assert calls == [signal.SIGTERM]
    sigterm.release()
    assert signal.getsignal(signal.SIGTERM) is app


def test_an_ignored_sigterm_stays_ignored_and_a_replaced_handler_stays(
        clean_sigterm: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sigterm.hold()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    sigterm.release()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sigterm.hold()

    def later(signum: int, frame: Any) -> None:
        pass

    signal.signal(signal.SIGTERM, later)  # the application replaced ours meanwhile
    sigterm.release()
    assert signal.getsignal(signal.SIGTERM) is later


def test_no_handler_from_another_thread(clean_sigterm: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    worker = threading.Thread(target=sigterm.hold)
    worker.start()
    worker.join()
    assert not sigterm.installed()
    sigterm.release()


# -- walsenders for clones


class FakeSource:
    name = "main"

    def __init__(self, limit: int, in_use: int) -> None:
        self.limit, self.in_use = limit, in_use

    def query(self, *args: object) -> list[tuple[int, int]]:
        return [(self.limit, self.in_use)]


def test_needed_senders() -> None:
    assert needed_senders(0) == 0
    assert needed_senders(1) == 2
    assert needed_senders(2) == 3
    assert needed_senders(16, in_use=1) == 18
    assert replication_limits(16) == (36, 20)
    assert replication_limits(1) == (10, 10)


def test_budget_refuses_what_cannot_run_even_one_at_a_time() -> None:
    budget = SenderBudget(FakeSource(10, 1))  # type: ignore[arg-type]
    for _ in range(3):
        budget.plan_clone()
    budget.check()  # 1 + 3 + 1 = 5 <= 10
    with pytest.raises(InvalidInput, match=r"max_wal_senders = 4 .* needs at least 5"):
        budget.check("4")


def test_budget_bounds_how_many_clones_run_at_once() -> None:
    budget = SenderBudget(FakeSource(5, 0))  # type: ignore[arg-type]
    running: list[int] = []
    peak: list[int] = []
    lock = threading.Lock()

    def clone() -> None:
        with budget.clone(timeout=10):
            with lock:
                running.append(1)
                peak.append(len(running))
            time.sleep(0.05)
            with lock:
                running.pop()

    threads = [threading.Thread(target=clone) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # 5 senders: two clones at once (4), then the third once one finished (1 kept + 2).
    assert max(peak) == 2
    def fourth() -> None:
        with budget.clone(timeout=0.1):
            pass

    # 3 streaming, 2 free: one more clone holds them; then none for the next.
    with budget.clone(timeout=1), pytest.raises(OperationFailed, match="no free walsender"):
        fourth()


def test_an_interrupted_ssh_command_kills_the_local_ssh_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SshHost runs the system's ssh through LocalHost.run: Ctrl-C kills that client (and
    what it started) with its process group."""
    from pgstream.hosts.ssh import SshHost

    marker = tmp_path / "child.pid"
    fake = tmp_path / "ssh"
    fake.write_text(f"#!/bin/sh\nsleep 60 & echo $! > {marker}\necho connected\nwait\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")

    def on_output(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SshHost("db1").run(("pg_basebackup", "-D", "/x"), on_output=on_output, timeout=30)
    assert not _alive(int(marker.read_text()))
