"""Faults during clones and around sandboxes, injected at the real point on real servers.

``pg_basebackup`` is killed (both processes, or only the parent) in the middle of a clone that
takes seconds (a primary with ~100 MB of data, the clone throttled with pg_basebackup's own
``--max-rate``), found through ``/proc`` by its parent and its ``-D``; the primary is stopped
mid-clone; ``cp`` is interrupted with Ctrl-C; processes holding sandboxes get SIGTERM; a
standby's directory is removed under it; ``sandbox-stop`` meets a recycled pid; clones need
more walsenders than ``max_wal_senders`` gives. Each test asserts the end state: nothing half
made, no slot left, no process left, and (where it applies) a retry that succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgstream import (
    Cluster,
    InvalidInput,
    PlanFailed,
    ProgressEvent,
    ReplicationAuth,
    StepKind,
)
from pgstream.cli import main as cli_main
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import LocalHost
from pgstream.hosts.wait import wait_for
from pgstream.render import commands
from pgstream.render.config import ConfigRenderer

from .conftest import Rig

pytestmark = pytest.mark.version_independent

ROOT = Path(__file__).resolve().parents[2]


# -- /proc helpers ---------------------------------------------------------------------------


def _procs() -> Iterator[tuple[int, int, list[str]]]:
    """(pid, ppid, argv) of every live process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if fields[0] in ("Z", "X"):
            continue
        yield int(entry.name), int(fields[1]), [a.decode(errors="replace") for a in argv if a]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _basebackups(data_dir: Path) -> dict[int, int]:
    """pid -> ppid of the pg_basebackup processes cloning into ``data_dir``."""
    return {pid: ppid for pid, ppid, argv in _procs()
            if argv and Path(argv[0]).name == "pg_basebackup" and str(data_dir) in argv}


def _servers_under(base: Path) -> list[int]:
    """Live postgres processes whose working directory lies in ``base`` (removed or not)."""
    found = []
    for pid, _ppid, argv in _procs():
        program = argv[0] if argv else ""
        if Path(program).name not in ("postgres", "postmaster") \
                and not program.startswith("postgres:"):
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd").removesuffix(" (deleted)")
        except OSError:
            continue
        if cwd == str(base) or cwd.startswith(str(base) + "/"):
            found.append(pid)
    return found


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


# -- a primary whose clone takes seconds -----------------------------------------------------


@pytest.fixture(scope="module")
def big(pgstream_server: Installation) -> Iterator[Cluster]:
    """A sandbox primary with ~100 MB of data and no standby (tests add them)."""
    with Cluster.sandbox(standbys=0, bindir=pgstream_server.bindir) as cluster:
        cluster.primary.execute(
            "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad "
            "FROM generate_series(1, 100000) g")
        yield cluster


@pytest.fixture
def throttled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clones built now run at 40 MB/s (pg_basebackup's own --max-rate): 2-3 s for ``big``."""
    real = commands.pg_basebackup

    def slow(*args: object, **kwargs: object) -> tuple[str, ...]:
        kwargs["max_rate"] = "40M"
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "pg_basebackup", slow)


def _killer(cluster: Cluster, name: str, which: str, killed: list[int]
            ) -> Callable[[ProgressEvent], None]:
    """A progress callback that kills ``which`` pg_basebackup process(es) ("both", "parent")
    of ``name``'s clone once it reports progress between 1 and 90 %."""
    assert cluster.base_dir is not None
    data_dir = cluster.base_dir / name

    def on_event(event: ProgressEvent) -> None:
        if killed or event.event != "percent" or event.step.kind is not StepKind.BASE_BACKUP:
            return
        if not (event.percent and 0 < event.percent < 90):
            return
        found = _basebackups(data_dir)
        parent = [pid for pid, ppid in found.items() if ppid == os.getpid()]
        child = [pid for pid, ppid in found.items() if ppid in parent]
        assert len(parent) == 1 and len(child) == 1, found  # -X stream: one WAL child
        chosen = parent + child if which == "both" else parent
        for pid in chosen:
            os.kill(pid, signal.SIGKILL)
        killed.extend(chosen)

    return on_event


def _assert_no_trace(cluster: Cluster, name: str) -> None:
    assert cluster.base_dir is not None
    data_dir = cluster.base_dir / name
    assert not data_dir.exists(), sorted(os.listdir(data_dir))[:10]
    assert _basebackups(data_dir) == {}
    assert cluster.primary.slot(name) is None
    assert name not in {s.name for s in cluster.standbys}


def test_clone_killed_mid_way_cleans_up_after_itself_and_a_retry_succeeds(
        big: Cluster, throttled: None, monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[int] = []
    with pytest.raises(PlanFailed) as caught:
        big.add_standby("s1", progress=_killer(big, "s1", "both", killed))
    assert len(killed) == 2
    message = str(caught.value)
    assert "[s1] clone primary with pg_basebackup" in message.split("rolled back:")[1]
    assert "[primary] physical replication slot s1" in message.split("rolled back:")[1]
    assert caught.value.undo_failed == ()
    assert caught.value.cause is caught.value.__cause__
    _assert_no_trace(big, "s1")
    monkeypatch.undo()  # the retry at full speed
    standby = big.add_standby("s1")
    assert standby.in_recovery
    assert big.status().standby("s1").state == "streaming"


def test_clone_whose_parent_is_killed_fails_at_once_and_leaves_nothing(
        big: Cluster, throttled: None) -> None:
    """The WAL child keeps the output pipe open: before, add_standby(timeout=20) hung."""
    assert big.base_dir is not None
    target = big.base_dir / "s2"
    killed: list[int] = []
    stuck = threading.Timer(25, lambda: _kill_all(list(_basebackups(target))))
    stuck.start()  # without the fix: end the hang so that the test fails instead
    started = time.monotonic()
    try:
        with pytest.raises(PlanFailed, match="pg_basebackup"):
            big.add_standby("s2", timeout=20, progress=_killer(big, "s2", "parent", killed))
    finally:
        stuck.cancel()
    assert len(killed) == 1
    assert time.monotonic() - started < 10
    _assert_no_trace(big, "s2")  # the orphaned WAL child was killed with the group


def test_clone_longer_than_the_timeout_fails_and_rolls_back(
        big: Cluster, throttled: None) -> None:
    started = time.monotonic()
    with pytest.raises(PlanFailed, match=r"did not finish within 1 s") as caught:
        big.add_standby("s3", timeout=1.0)
    assert time.monotonic() - started < 6
    assert "rolled back" in str(caught.value)
    _assert_no_trace(big, "s3")


def test_ctrl_c_while_copying_kills_the_copy(tmp_path: Path) -> None:
    """What sandbox_template.initdb does with a cached template: LocalHost.copy_tree (cp -a)."""
    source = tmp_path / "template"
    source.mkdir()
    (source / "data").write_bytes(os.urandom(1 << 20) * 128)
    seen: list[int] = []

    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")  # the main thread's

    def interrupt_when_copying() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen:
            for pid in map(int, children.read_text().split()):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"cp\0-a\0"):
                        os.kill(pid, signal.SIGSTOP)  # mid-copy for as long as the test needs
                        seen.append(pid)
                        os.kill(os.getpid(), signal.SIGINT)
                        return
            time.sleep(0.0002)

    def copy() -> None:
        LocalHost().copy_tree(source, tmp_path / "copy")
        time.sleep(5)  # the copy was too fast for the watcher: fail below

    watcher = threading.Thread(target=interrupt_when_copying)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            copy()
    finally:
        watcher.join()
        survivors = [pid for pid in seen if _alive(pid)]
        _kill_all(survivors)
    assert seen, "cp was not seen running"
    assert survivors == [], "cp kept running after Ctrl-C"


# -- SIGTERM to a process holding a sandbox ---------------------------------------------------

_HOLDER = textwrap.dedent("""
    import json, sys, time
    from pgstream import Cluster
    def progress(event):
        print(json.dumps({"event": event.event, "kind": event.step.kind.value}), flush=True)
    cluster = Cluster.sandbox(standbys=int(sys.argv[2]), base_dir=sys.argv[1], progress=progress)
    print(json.dumps({"ready": str(cluster.base_dir)}), flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("when", ["holding", "cloning"])
def test_sigterm_stops_every_server_like_ctrl_c(empty_dir: Path, when: str) -> None:
    standbys = "0" if when == "holding" else "1"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(empty_dir), standbys], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        for line in proc.stdout:
            item = json.loads(line)
            if when == "holding" and "ready" in item:
                break
            if when == "cloning" and item.get("kind") == "base backup" \
                    and item.get("event") in ("percent", "output"):
                break
        else:
            pytest.fail(f"the sandbox process ended early: {proc.stderr.read()[-2000:]}")
        assert _servers_under(empty_dir)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert wait_for(lambda: not _servers_under(empty_dir), timeout=5,
                        what="no server left") is True
        assert list(empty_dir.iterdir()) == []
    finally:
        proc.kill()
        proc.wait()
        _kill_all(_servers_under(empty_dir))  # tests leave nothing, even when they fail


# -- a data directory removed under a running standby ----------------------------------------


def test_closing_stops_a_standby_whose_data_directory_was_removed(
        pgstream_server: Installation) -> None:
    """Closing stops a standby whose data directory was removed (its postmaster.pid with
    it). (16 standbys at once: tests/integration/test_sandbox.py.)"""
    cluster = Cluster.sandbox(standbys=2, bindir=pgstream_server.bindir)
    try:
        assert cluster.status().all_streaming
        base = cluster.base_dir
        assert base is not None
        pids = [n.service.pid() for n in cluster.nodes if n.service is not None]
        assert all(pid is not None for pid in pids)
        shutil.rmtree(base / "standby2")  # its postmaster.pid goes with it
    finally:
        cluster.close()
        left = [pid for pid in pids if pid is not None and _alive(pid)]
        _kill_all(left)  # tests leave nothing, even when they fail
    assert not base.exists()
    assert left == []


# -- sandbox-stop and a recycled pid ---------------------------------------------------------


def test_sandbox_stop_never_signals_a_recycled_pid(
        pgstream_server: Installation, empty_dir: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    cluster = Cluster.sandbox(standbys=0, bindir=pgstream_server.bindir, base_dir=empty_dir)
    base = cluster.detach()
    assert base is not None
    service = cluster.primary.service
    assert service is not None
    pidfile = service.data_dir / "postmaster.pid"
    stranger = subprocess.Popen(["sleep", "60"])  # root's, like the unrelated process
    try:
        lines = pidfile.read_text().split("\n")
        service.stop("immediate")
        pidfile.write_text("\n".join([str(stranger.pid), *lines[1:]]))
        assert cli_main(["sandbox-stop", str(base)]) == 0
        assert stranger.poll() is None, "sandbox-stop signalled an unrelated process"
        assert f"pid {stranger.pid}" in capsys.readouterr().err
        assert not base.exists()
    finally:
        stranger.kill()
        stranger.wait()
        _kill_all(_servers_under(empty_dir))


# -- walsenders on existing servers -----------------------------------------------------------


def test_clones_are_bounded_by_the_primarys_free_walsenders(rig: Rig) -> None:
    """Two clones at once need 4 walsenders; with 3 they run one after the other, with 2
    setup is refused (naming the number needed) before anything changes."""
    primary = rig.existing_primary("main", max_wal_senders="3")
    nodes = [rig.future_standby(f"r{i}") for i in (1, 2)]
    port = int(primary.show("port"))
    renderer = ConfigRenderer(primary.version)

    def cluster(senders: int) -> Cluster:
        return Cluster(primary, [n for n, _ in nodes], auth=ReplicationAuth("rep", "pw"),
                       primary_address=("127.0.0.1", port),
                       hba_addresses=["127.0.0.1"], node_settings={n.name: o for n, o in nodes},
                       settings=renderer.primary_settings(listen_addresses="127.0.0.1",
                                                          max_wal_senders=senders))

    with pytest.raises(InvalidInput, match=r"max_wal_senders = 2 .* needs at least 3"):
        cluster(2).setup_plan()
    assert primary.slots() == []  # nothing changed
    both = cluster(3)
    both.setup_plan(sync=False).apply()
    assert both.status().all_streaming


def test_primary_stopped_mid_clone_names_the_undo_that_failed(
        big: Cluster, throttled: None) -> None:
    """Last in this module: it stops (then restarts) the shared primary."""
    service = big.primary.service
    assert service is not None
    stopped: list[bool] = []

    def stop_primary(event: ProgressEvent) -> None:
        if not stopped and event.event == "percent" and event.percent and event.percent > 0:
            stopped.append(True)
            service.stop("immediate")

    with pytest.raises(PlanFailed) as caught:
        big.add_standby("s4", progress=stop_primary)
    assert stopped
    failed = caught.value.undo_failed
    assert [step.kind for step, _error in failed] == [StepKind.SLOT]  # type: ignore[attr-defined]
    assert "could not undo [primary] physical replication slot s4 (left behind" \
        in str(caught.value)
    service.start()
    big.primary.close()
    slot = big.primary.slot("s4")
    assert slot is not None and not slot.active  # what the message warned about
    big.primary.drop_slot("s4")
    assert big.base_dir is not None
    assert not (big.base_dir / "s4").exists()
