"""Never two primaries, never a lost acknowledged commit: forced failover and switchover with
a wrong data directory, switchovers whose promotion outlives the timeout (a bad timeout, a
promotion really slowed down), a retried failover after a slow promotion, the target killed
mid-switchover, kill -9 of a synchronous primary, and where plans stream from after a
switchover.

"Writable" is asked of every server running in the test's directory, whatever the Cluster
object believes (helpers.writable: a CREATE TABLE that is rolled back).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from pgstream import (
    Cluster,
    LocalHost,
    PgCtlService,
    PgStreamError,
    PlanFailed,
    Primary,
    ProgressEvent,
    Standby,
    StepKind,
    SyncSpec,
)
from pgstream.workload import acked_writer

from .helpers import (
    kill_server,
    max_writable,
    startup_process,
    wait_until,
)

MakeCluster = Callable[..., Cluster]


def _pid(node: Primary | Standby) -> int:
    assert node.service is not None
    pid = node.service.pid()
    assert pid is not None, f"{node.name} is not running"
    return pid


def _dir(node: Primary | Standby) -> str:
    assert node.data_dir is not None
    return str(node.data_dir)


def _base(cluster: Cluster) -> Path:
    assert cluster.base_dir is not None
    return cluster.base_dir


def rewrap(cluster: Cluster, *, primary_dir: Path | None = None,
           conninfo: Callable[[Primary | Standby], str] | None = None,
           addresses: bool = True) -> Cluster:
    """The sandbox's servers as "existing servers" (``Cluster(primary, standbys, ...)``), as an
    operator would declare them: optionally with a wrong primary data directory, other
    conninfos, or no per-node addresses."""
    old = cluster.primary
    assert old.service is not None and old.data_dir is not None
    data_dir = primary_dir or old.data_dir
    host = LocalHost()
    service = PgCtlService(host, old.service.bindir, data_dir, old.service.user,
                           old.service.log_file, version=old.service.version)
    primary = Primary(old.name, conninfo(old) if conninfo else old.conninfo, host=host,
                      data_dir=data_dir, service=service, os_user=old.os_user)
    standbys = [Standby(s.name, conninfo(s) if conninfo else s.conninfo, host=host,
                        data_dir=s.data_dir, service=s.service, os_user=s.os_user)
                for s in cluster.standbys]
    passfile = _base(cluster) / "replication.pgpass"
    return Cluster(primary, standbys, auth=cluster.auth, primary_address=cluster.primary_address,
                   hba_addresses=cluster.hba_addresses, settings=cluster.settings,
                   passfiles={n.name: passfile for n in [primary, *standbys]},
                   node_settings=cluster.node_settings,
                   addresses=dict(cluster.addresses) if addresses else {})


def _one_letter_off(path: Path) -> Path:
    return path.with_name(path.name[:-1] + ("x" if not path.name.endswith("x") else "y"))


def test_forced_failover_with_a_wrong_data_dir_promotes_nothing(sandbox: MakeCluster) -> None:
    """Issue 8, split brain 1: the fence "stopped" a server that was not there; the standby
    was promoted beside the running primary."""
    cluster = sandbox(1)
    primary_dir = _dir(cluster.primary)
    declared = rewrap(cluster, primary_dir=_one_letter_off(Path(primary_dir)))
    error: PgStreamError | None = None
    try:
        declared.failover(force=True, timeout=20)
    except PgStreamError as exc:
        error = exc
    seen = max_writable(_base(cluster), 3)
    assert seen == [primary_dir], f"split brain, writable servers: {seen}"
    assert cluster.standbys[0].in_recovery, "the standby was promoted"
    assert error is not None, "failover(force=True) reported success"


def test_switchover_with_a_wrong_data_dir_stops_nothing(sandbox: MakeCluster) -> None:
    """Issue 8, split brain 1: the same typo made a switchover report "main stopped cleanly"
    while it kept running."""
    cluster = sandbox(1)
    primary_dir = _dir(cluster.primary)
    declared = rewrap(cluster, primary_dir=_one_letter_off(Path(primary_dir)))
    error: PgStreamError | None = None
    try:
        declared.switchover("standby1", timeout=20)
    except PgStreamError as exc:
        error = exc
    assert max_writable(_base(cluster), 3) == [primary_dir]
    assert cluster.standbys[0].in_recovery
    assert error is not None, "the switchover reported success"
    if isinstance(error, PlanFailed):
        claimed = [s.title for s in error.done  # type: ignore[attr-defined]
                   if getattr(s, "kind", None) is StepKind.STOP]
        assert not claimed, f"reported as done while the primary kept running: {claimed}"


@pytest.mark.parametrize("timeout", [-1, 0.002])
def test_switchover_timeout_too_short_never_two_primaries(sandbox: MakeCluster,
                                                          timeout: float) -> None:
    """Issue 8, split brain 2: refused up front (a timeout must be a positive number that
    promotion can meet), or at least never the old primary restarted beside the promoted
    standby."""
    cluster = sandbox(1)
    with contextlib.suppress(PgStreamError):
        cluster.switchover("standby1", timeout=timeout)
    seen = max_writable(_base(cluster), 5)
    assert len(seen) == 1, f"writable servers after switchover(timeout={timeout}): {seen}"


def test_switchover_promotion_slower_than_timeout(sandbox: MakeCluster) -> None:
    """Fault: the target's startup process is stopped (SIGSTOP) just as it is asked to
    promote, and resumed after the switchover gave up (timeout 2 s). The promotion then
    completes: the old primary must not be running as a primary beside it."""
    cluster = sandbox(1)
    target = cluster.standbys[0]
    frozen: list[int] = []

    def freeze(event: ProgressEvent) -> None:
        if event.event == "start" and event.step.kind is StepKind.PROMOTE and not frozen:
            startup = startup_process(_pid(target))
            assert startup is not None
            os.kill(startup.pid, signal.SIGSTOP)
            frozen.append(startup.pid)

    try:
        with pytest.raises(PgStreamError):
            cluster.switchover("standby1", timeout=2, progress=freeze)
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert frozen, "the promotion never started"
    seen = max_writable(_base(cluster), 8)
    assert len(seen) <= 1, f"two primaries after a slow promotion: {seen}"


def test_failover_retry_after_slow_promotion(sandbox: MakeCluster) -> None:
    """Fault: the primary is killed; standby1's promotion outlives the failover's timeout
    (its startup process stopped for it). A retried failover must not promote standby2 beside
    standby1: it carries on with standby1 and standby2 follows it."""
    cluster = sandbox(2)
    standby1, standby2 = cluster.standbys
    kill_server(_pid(cluster.primary))
    cluster.primary.close()
    assert cluster.primary.service is not None
    wait_until(lambda: not cluster.primary.service.running(),  # type: ignore[union-attr]
               timeout=10, what="the primary to die")
    startup = startup_process(_pid(standby1))
    assert startup is not None
    os.kill(startup.pid, signal.SIGSTOP)
    try:
        with pytest.raises(PgStreamError):
            cluster.failover("standby1", timeout=2)
    finally:
        os.kill(startup.pid, signal.SIGCONT)
    with contextlib.suppress(AssertionError, PgStreamError):
        wait_until(lambda: not standby1.in_recovery, timeout=15, what="standby1 to promote")
    problems = []
    try:
        cluster.failover(timeout=10)
    except PgStreamError as exc:
        problems.append(f"the retry failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    seen = max_writable(_base(cluster), 3)
    if seen != [_dir(standby1)]:
        problems.append(f"writable servers after the retry: {seen}")
    if cluster.primary.name != "standby1":
        problems.append(f"the cluster names {cluster.primary.name} as its primary")
    try:
        wait_until(lambda: standby1.streams_to("standby2"), timeout=10,
                   what="standby2 to stream from standby1")
    except (AssertionError, PgStreamError) as exc:
        problems.append(str(exc))
    assert not problems, "\n".join(problems)
    assert standby2.in_recovery


def test_switchover_target_killed_after_old_primary_stopped(sandbox: MakeCluster) -> None:
    """Fault: kill -9 of the target standby right after the old primary stopped cleanly.
    Nothing was promoted, so the rollback must bring the old primary back (the module says
    so); every acknowledged commit survives; once the standby is back, a retry succeeds."""
    cluster = sandbox(1)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    cluster.wait_for_catchup()
    target = cluster.standbys[0]
    primary_dir = _dir(cluster.primary)
    killed: list[int] = []

    def kill_target(event: ProgressEvent) -> None:
        if event.event == "done" and event.step.kind is StepKind.STOP and not killed:
            killed.append(_pid(target))
            kill_server(killed[0])

    with acked_writer(cluster.primary.conninfo) as acked:
        wait_until(lambda: len(acked) > 100, timeout=30, what="writes")
        with pytest.raises(PgStreamError):
            cluster.switchover("standby1", timeout=10, progress=kill_target)
    assert killed
    seen = max_writable(_base(cluster), 2)
    assert seen == [primary_dir], f"writable servers after the rollback: {seen}"
    assert target.service is not None
    target.close()
    target.service.start()
    wait_until(lambda: cluster.primary.streams_to("standby1"), timeout=30,
               what="standby1 to stream again")
    cluster.switchover("standby1", timeout=30)
    found = cluster.primary.query("SELECT count(*) FROM acked WHERE id = ANY(%s)", (acked,))
    assert found == [(len(acked),)], "an acknowledged commit was lost"


def test_sync_rep_kill_primary_loses_no_acknowledged_commit(sandbox: MakeCluster) -> None:
    """Fault: synchronous replication (FIRST 1 (standby1, standby2)), a writer committing, and
    kill -9 of the primary (postmaster and children at once) right after: the standby that
    failover promotes holds every commit the writer saw acknowledged."""
    cluster = sandbox(2)
    cluster.primary.execute("CREATE TABLE acked (id int PRIMARY KEY)")
    cluster.set_synchronous(SyncSpec.first(1, ["standby1", "standby2"]),
                            wait_for={"standby1": "sync", "standby2": "potential"}, timeout=30)
    old = cluster.primary
    with acked_writer(old.conninfo) as acked:
        wait_until(lambda: len(acked) > 300, timeout=30, what="synchronous commits")
        kill_server(_pid(old))
    old.close()
    assert old.service is not None
    wait_until(lambda: not old.service.running(),  # type: ignore[union-attr]
               timeout=10, what="the primary to die")
    cluster.failover(timeout=30)
    new = cluster.primary
    assert new.name in ("standby1", "standby2")
    rows = {r[0] for r in new.query("SELECT id FROM acked")}
    lost = sorted(set(acked) - rows)
    assert not lost, f"{len(lost)} acknowledged commits lost on {new.name}: {lost[:10]}"
    assert max_writable(_base(cluster), 1) == [_dir(new)]


def _tcp(port_of: dict[str, int]) -> Callable[[Primary | Standby], str]:
    def conninfo(node: Primary | Standby) -> str:
        return (f"host=127.0.0.1 port={port_of[node.name]} user=postgres password=faults "
                "dbname=postgres")
    return conninfo


def test_addresses_follow_nodes_after_switchover(sandbox: MakeCluster) -> None:
    """Issue 8: with primary_address given and no per-node addresses, after a switchover
    address_of(new primary) still named the old primary, so follow_plan and add_standby_plan
    streamed from it. Nodes reached over TCP, as on separate hosts."""
    cluster = sandbox(2)
    cluster.primary.execute("ALTER ROLE postgres PASSWORD 'faults'")
    cluster.wait_for_catchup()
    ports = {name: port for name, (_host, port) in cluster.addresses.items()}
    declared = rewrap(cluster, conninfo=_tcp(ports), addresses=False)
    declared.switchover("standby1", timeout=30)
    assert declared.primary.name == "standby1"
    problems = []
    where = declared.address_of(declared.primary)
    if where != ("127.0.0.1", ports["standby1"]):
        problems.append(f"address_of(standby1) = {where}; standby1 listens on "
                        f"{ports['standby1']}, the old primary on {ports['primary']}")
    text = str(declared.follow_plan("standby2", "standby1"))
    if f"port={ports['primary']}" in text or f"port={ports['standby1']}" not in text:
        problems.append("follow_plan('standby2', 'standby1') streams from port "
                        f"{ports['primary']} (the old primary):\n{text}")
    base = _base(cluster)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    old = cluster.standbys[0]
    assert old.service is not None
    service = PgCtlService(LocalHost(), old.service.bindir, base / "standby3", old.service.user,
                           base / "standby3.log", version=old.service.version)
    extra = Standby("standby3", f"host=127.0.0.1 port={port} user=postgres password=faults "
                    "dbname=postgres", data_dir=base / "standby3", service=service,
                    os_user=old.os_user)
    text = str(declared.add_standby_plan(extra))
    if f"-p {ports['primary']}" in text or f"-p {ports['standby1']}" not in text:
        problems.append(f"add_standby_plan clones from port {ports['primary']} (the old "
                        f"primary), not {ports['standby1']}:\n{text}")
    assert not problems, "\n".join(problems)
