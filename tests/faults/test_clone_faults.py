"""Faults during a clone (``add_standby``) from a primary big enough that the clone takes
seconds: kill -9 of pg_basebackup (parent, WAL child, both) at several points, the primary
stopped or killed mid-clone, the disk filling up.

Each case proves the same end state: the call fails within the caller's timeout, no
pg_basebackup is left, no server runs on the half-made directory, nothing of the clone is left
in it, the slot the plan created is gone (or, when the primary was down, PlanFailed names the
undo that could not run), the cluster lists no new standby, and a retry with the same name
succeeds and streams every row.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgstream import (
    Cluster,
    LocalHost,
    PgCtlService,
    PgStreamError,
    ProgressEvent,
    Standby,
)

from ._internal import Installation, server_user
from .conftest import BIG_ROWS
from .helpers import (
    basebackups,
    dir_bytes,
    is_empty,
    kill_server,
    owned_by,
    postmasters,
    wait_until,
)

TIMEOUT = 10.0  # the caller's timeout for add_standby
GRACE = 5.0  # how much longer than that a failing call may take to return


def _size(cluster: Cluster) -> int:
    return int(cluster.primary.query("SELECT sum(pg_database_size(oid)) FROM pg_database")[0][0])


def _kill_basebackup(which: str) -> Callable[[Path], None]:
    def inject(data_dir: Path) -> None:
        parents, kids = basebackups(data_dir)
        chosen = {"parent": parents, "child": kids, "both": parents + kids}[which]
        assert chosen, f"no pg_basebackup {which} process cloning into {data_dir}"
        for item in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(item.pid, signal.SIGKILL)
    return inject


class Outcome:
    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.seconds = 0.0
        self.hung = False
        self.injected_at: int | None = None
        self.events: list[ProgressEvent] = []


def clone_with_fault(start: Callable[[Callable[[ProgressEvent], None]], object],
                     data_dir: Path, total: int, fraction: float,
                     inject: Callable[[Path], None]) -> Outcome:
    """Run ``start(progress)`` (a clone into ``data_dir``) in a thread; when ``fraction`` of
    ``total`` bytes are in ``data_dir``, ``inject`` the fault. Bounded: a call that does not
    return within TIMEOUT + GRACE is unblocked by killing its pg_basebackup processes."""
    out = Outcome()

    def run() -> None:
        began = time.monotonic()
        try:
            start(out.events.append)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            out.error = exc
        out.seconds = time.monotonic() - began

    worker = threading.Thread(target=run, daemon=True)
    began = time.monotonic()
    worker.start()
    while worker.is_alive() and time.monotonic() - began < 60:
        size = dir_bytes(data_dir) if data_dir.exists() else 0
        if size >= fraction * total:
            out.injected_at = size
            inject(data_dir)
            break
        time.sleep(0.01)
    worker.join(TIMEOUT + GRACE)
    if worker.is_alive():
        out.hung = True
        parents, kids = basebackups(data_dir)
        for item in parents + kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(item.pid, signal.SIGKILL)
        worker.join(30)
    return out


def scrub(cluster: Cluster, name: str, data_dir: Path) -> None:
    """Put the shared primary back as it was: no standby, slot, process or files of ``name``."""
    for standby in list(cluster.standbys):
        if standby.name == name:
            standby.close()
            cluster.standbys.remove(standby)
    for item in owned_by(data_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(item.pid, signal.SIGKILL)
    primary = cluster.primary
    with contextlib.suppress(PgStreamError, AssertionError):
        wait_until(lambda: not owned_by(data_dir), timeout=10, what="leftovers to die")
        if primary.service is not None and not primary.service.running():
            primary.close()
            primary.service.start()
        wait_until(lambda: (slot := primary.slot(name)) is None or not slot.active,
                   timeout=10, what=f"slot {name} to become inactive")
        if primary.slot(name) is not None:
            primary.drop_slot(name)
    shutil.rmtree(data_dir, ignore_errors=True)


def end_state(cluster: Cluster, name: str, data_dir: Path, out: Outcome,
              *, primary_was_down: bool = False) -> list[str]:
    """What is wrong after the fault (empty: the end state the issue asks for)."""
    problems = []
    if out.injected_at is None:
        problems.append("the clone finished before the fault could be injected")
    if out.hung:
        problems.append(f"add_standby(timeout={TIMEOUT:g}) did not return within "
                        f"{TIMEOUT + GRACE:g} s (unblocked by killing pg_basebackup)")
    elif out.seconds > TIMEOUT + GRACE:
        problems.append(f"add_standby took {out.seconds:.1f} s (timeout {TIMEOUT:g})")
    if out.error is None:
        problems.append("add_standby succeeded although its clone was broken")
    elif not isinstance(out.error, PgStreamError):
        problems.append(f"add_standby raised {out.error!r}, not a PgStreamError")
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not any(basebackups(data_dir)), timeout=5, what="pg_basebackup")
    parents, kids = basebackups(data_dir)
    if parents or kids:
        problems.append(f"pg_basebackup left running: {[str(p) for p in parents + kids]}")
    if postmasters(data_dir):
        problems.append(f"a server runs on the half-made {data_dir}")
    if not is_empty(data_dir):
        left = sorted(p.name for p in data_dir.iterdir())
        problems.append(f"half-made clone left in {data_dir}: {len(left)} entries "
                        f"({', '.join(left[:6])}...), {dir_bytes(data_dir)} bytes")
    if name in {s.name for s in cluster.standbys}:
        problems.append(f"{name} was recorded as a standby")
    if primary_was_down:
        text = str(out.error or "")
        named = any(("undo" in line.lower() or "roll" in line.lower()) and "not" in line.lower()
                    and name in line for line in text.splitlines())
        if not named:
            problems.append("PlanFailed does not name the undo that could not run (the slot "
                            f"{name} on the stopped primary): {text!r}")
    elif cluster.primary.slot(name) is not None:
        problems.append(f"orphan slot {name} left on the primary "
                        f"(active={cluster.primary.slot(name).active})")  # type: ignore[union-attr]
    return problems


def retry(cluster: Cluster, name: str) -> list[str]:
    try:
        standby = cluster.add_standby(name, timeout=60)
    except PgStreamError as exc:
        return [f"the retry add_standby({name!r}) failed: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}"]
    cluster.wait_for_catchup(timeout=60)
    rows = standby.query("SELECT count(*) FROM big")[0][0]
    problems = [] if rows == BIG_ROWS else [f"the retried clone has {rows} rows of {BIG_ROWS}"]
    slots = sorted(s.name for s in cluster.primary.slots())
    if slots != [name]:
        problems.append(f"slots after the retry: {slots} (wanted only {name})")
    return problems


@pytest.fixture(scope="module")
def total(big: Cluster) -> int:
    return _size(big)


KILLS = [("parent", 0.15), ("parent", 0.7), ("child", 0.3), ("child", 0.85),
         ("both", 0.1), ("both", 0.5), ("both", 0.95)]


@pytest.mark.parametrize(("which", "fraction"), KILLS,
                         ids=[f"{w}-{int(f * 100)}pct" for w, f in KILLS])
def test_kill_basebackup_mid_clone(big: Cluster, total: int, which: str,
                                   fraction: float) -> None:
    name = f"k_{which}_{int(fraction * 100)}"
    assert big.base_dir is not None
    data_dir = big.base_dir / name
    try:
        out = clone_with_fault(
            lambda progress: big.add_standby(name, timeout=TIMEOUT, progress=progress),
            data_dir, total, fraction, _kill_basebackup(which))
        problems = end_state(big, name, data_dir, out)
        problems += retry(big, name)
        assert not problems, "\n".join(problems)
    finally:
        scrub(big, name, data_dir)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_primary_down_mid_clone(big: Cluster, total: int, how: str) -> None:
    """The primary stopped (fast) or killed (-9) while a standby is being cloned from it: the
    slot cannot be dropped then, so PlanFailed must say so; once the primary is back, a
    retry succeeds and leaves exactly one slot."""
    name = f"primary_{how}"
    assert big.base_dir is not None and big.primary.service is not None
    service = big.primary.service
    data_dir = big.base_dir / name

    def down(_data_dir: Path) -> None:
        big.primary.close()
        if how == "stop":
            service.stop("fast")
        else:
            pid = service.pid()
            assert pid is not None
            kill_server(pid)
            wait_until(lambda: not service.running(), timeout=10, what="the primary to die")

    try:
        out = clone_with_fault(
            lambda progress: big.add_standby(name, timeout=TIMEOUT, progress=progress),
            data_dir, total, 0.4, down)
        service.start()
        big.primary.wait_ready(30)
        problems = end_state(big, name, data_dir, out, primary_was_down=True)
        problems += retry(big, name)
        assert not problems, "\n".join(problems)
    finally:
        scrub(big, name, data_dir)


@pytest.fixture
def small_tmpfs(box_dir: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("disk full: mounting a small tmpfs needs root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("disk full: needs mount and umount (util-linux)")
    path = box_dir / "small"
    path.mkdir(mode=0o755)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m,mode=0755", "tmpfs",
                           str(path)], capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"disk full: cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _umount(path)


def _umount(path: Path) -> None:
    for item in owned_by(path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(item.pid, signal.SIGKILL)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not owned_by(path), timeout=10, what="processes on the tmpfs")
    done = subprocess.run(["umount", str(path)], capture_output=True, timeout=30, check=False)
    if done.returncode != 0:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30,
                       check=False)


def test_disk_full_mid_clone(big: Cluster, total: int, small_tmpfs: Path,
                             pgstream_server: Installation) -> None:
    """The standby's file system (a 96 MB tmpfs) fills up during a ~520 MB clone: nothing of
    the clone may stay on it, no slot either; with room again (remount at 2 GB) the same
    standby is cloned."""
    name = "disk_full"
    data_dir = small_tmpfs / name
    user = server_user()
    host = LocalHost()
    assert big.base_dir is not None
    service = PgCtlService(host, pgstream_server.bindir, data_dir, user,
                           big.base_dir / f"{name}.log", version=pgstream_server.version)
    socket_dir = big.base_dir / "run"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    standby = Standby(name, f"host={socket_dir} port={port} user=postgres dbname=postgres",
                      host=host, data_dir=data_dir, service=service, os_user=user)
    big.node_settings[name] = {"port": str(port), "unix_socket_directories": str(socket_dir),
                               "cluster_name": name}
    try:
        out = Outcome()
        began = time.monotonic()
        try:
            big.add_standby_plan(standby, timeout=TIMEOUT).apply(out.events.append)
        except BaseException as exc:  # noqa: BLE001 - checked below
            out.error = exc
        out.seconds = time.monotonic() - began
        out.injected_at = 0
        problems = end_state(big, name, data_dir, out)
        if out.error is not None and "No space left" not in str(out.error):
            problems.append(f"the failure does not say the disk is full: {out.error}")
        subprocess.run(["mount", "-o", "remount,size=2g", str(small_tmpfs)], check=True,
                       capture_output=True, timeout=30)
        if not problems:
            try:
                big.add_standby_plan(standby, timeout=60).apply()
                big.wait_for_catchup(timeout=60)
                rows = standby.query("SELECT count(*) FROM big")[0][0]
                if rows != BIG_ROWS:
                    problems.append(f"the retried clone has {rows} rows")
            except PgStreamError as exc:
                problems.append(f"the retry failed: {str(exc).splitlines()[0]}")
        assert not problems, "\n".join(problems)
    finally:
        with contextlib.suppress(PgStreamError):
            if service.running():
                service.stop("immediate")
        scrub(big, name, data_dir)
