"""Issue 8's status and cleanup items: status() with unreachable standbys is bounded in
time, a disconnected standby's lag is its lag (not what its slot holds), close() stops a
server whose data directory was removed, and ``pgstream sandbox-stop`` signals only a data
directory's own postmaster and exits 0 only when everything is stopped and removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pgstream import Cluster, Standby

from ._internal import Installation, server_user
from .helpers import REPO, alive, blackhole, owned_by, postmasters, wait_until
from .test_split_brain import rewrap

MakeCluster = Callable[..., Cluster]


def test_status_with_unreachable_standbys_is_bounded(sandbox: MakeCluster) -> None:
    """Two standbys whose host takes the connection and never answers: status() must not
    cost libpq's full connect timeout (10 s) per standby, one after the other."""
    cluster = sandbox(0)
    declared = rewrap(cluster)
    with blackhole() as port:
        declared.standbys = [Standby(name, f"host=127.0.0.1 port={port} user=postgres "
                                     "dbname=postgres") for name in ("ghost1", "ghost2")]
        began = time.monotonic()
        status = declared.status()
        seconds = time.monotonic() - began
    assert [s.reachable for s in status.standbys] == [False, False]
    assert seconds < 10, f"status() took {seconds:.1f} s with two unreachable standbys"


def test_disconnected_standby_lag_is_not_its_slot_retention(sandbox: MakeCluster) -> None:
    """standby1 stays up but loses its upstream (primary_conninfo to a closed port); 8 MB are
    written; its slot is re-created (it now retains nearly nothing). Its lag is still at least
    those 8 MB (or unknown), never the slot's few bytes."""
    cluster = sandbox(1)
    primary, standby = cluster.primary, cluster.standbys[0]
    standby.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=1'")
    standby.execute("SELECT pg_reload_conf()")
    wait_until(lambda: cluster.status().standby("standby1").state == "disconnected",
               timeout=30, what="standby1 to disconnect")
    replayed = standby.replay_lsn()
    assert replayed is not None
    primary.execute("CREATE TABLE lagging AS SELECT repeat('x', 1000) AS pad "
                    "FROM generate_series(1, 8000)")
    wait_until(lambda: (s := primary.slot("standby1")) is not None and not s.active,
               timeout=10, what="the slot to be inactive")
    primary.execute("CHECKPOINT")  # a new slot reserves WAL from the last checkpoint on
    primary.drop_slot("standby1")
    primary.create_slot("standby1")
    truth = primary.current_lsn() - replayed
    item = cluster.status().standby("standby1")
    assert item.state == "disconnected" and item.reachable
    assert item.replay_lag_bytes is None or item.replay_lag_bytes >= truth - 65536, (
        f"lag bytes {item.replay_lag_bytes} for a standby {truth} bytes behind "
        f"(its slot retains {item.slot_retained_bytes})")


def test_close_after_standby_data_dir_removed_leaves_no_postmaster(
        sandbox: MakeCluster) -> None:
    cluster = sandbox(1)
    standby = cluster.standbys[0]
    assert standby.service is not None and standby.data_dir is not None
    pid = standby.service.pid()
    assert pid is not None
    shutil.rmtree(standby.data_dir)
    cluster.close()
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not alive(pid), timeout=5, what="the standby's postmaster")
    assert not alive(pid), f"standby1's postmaster {pid} still runs after close()"


def _sandbox_stop(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "pgstream", "sandbox-stop", str(path)],
                          capture_output=True, text=True, timeout=180, env=env, check=False)


def _kept(box_dir: Path, bindir: Path) -> tuple[Cluster, Path]:
    cluster = Cluster.sandbox(1, bindir=bindir, base_dir=box_dir)
    path = cluster.detach()
    assert path is not None
    return cluster, path


def test_sandbox_stop_never_signals_a_recycled_pid(box_dir: Path,
                                                   pgstream_server: Installation) -> None:
    """standby1 is stopped and its postmaster.pid then names an unrelated root process (a
    recycled pid): sandbox-stop must leave that process alone and still stop the primary."""
    cluster, path = _kept(box_dir, pgstream_server.bindir)
    standby = cluster.standbys[0]
    assert standby.service is not None and standby.data_dir is not None
    standby.close()
    standby.service.stop()
    bystander = subprocess.Popen(["sleep", "300"], cwd="/")  # not under the sandbox
    try:
        pidfile = standby.data_dir / "postmaster.pid"
        pidfile.write_text(f"{bystander.pid}\n{standby.data_dir}\n{int(time.time())}\n5432\n"
                           f"{path / 'run'}\n127.0.0.1\n0\nready\n")
        user = server_user()
        if os.geteuid() == 0:
            os.chown(pidfile, user.uid, user.gid)
        done = _sandbox_stop(path)
        time.sleep(0.2)
        assert bystander.poll() is None, (
            f"sandbox-stop signalled an unrelated process (exit {done.returncode}):\n"
            f"{done.stdout}{done.stderr}")
        assert not postmasters(path), "the primary of the kept sandbox still runs"
    finally:
        bystander.kill()
        bystander.wait(timeout=10)


def test_sandbox_stop_exits_zero_only_when_everything_stopped(
        box_dir: Path, pgstream_server: Installation) -> None:
    """standby1's postmaster.pid is removed while it runs: sandbox-stop must find and stop it
    anyway, or say it could not (exit non-zero); "stopped and removed" with a server still
    running is the defect."""
    cluster, path = _kept(box_dir, pgstream_server.bindir)
    standby = cluster.standbys[0]
    assert standby.data_dir is not None
    (standby.data_dir / "postmaster.pid").unlink()
    done = _sandbox_stop(path)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: not owned_by(path), timeout=5, what="the sandbox's processes")
    left = owned_by(path)
    if done.returncode == 0:
        assert not left, (f"sandbox-stop exited 0 ({done.stdout.strip()!r}) while "
                          f"{len(left)} processes still run: {left[0]}")
        assert not path.exists()
