"""A dry run is the truth with Debian's ``pg_ctlcluster`` on this machine: three Debian 15
clusters made by postgresql-common (``pg_createcluster``), their hosts recording every effect
argv and psycopg every effect statement, replicated by pgstream's setup plan, then followed,
switched over, failed over and rejoined (``pg_rewind``); each plan applied with
:func:`tests.recording.apply_and_compare` (what each step ran is what ``print(plan)`` showed).

Needs root, postgresql-common and Debian's PostgreSQL 15 (``/usr/lib/postgresql/15``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from pgstream import Cluster, DebianClusterService, Primary, ReplicationAuth, Standby
from pgstream.hosts import binaries
from pgstream.hosts.host import LocalHost, OsUser
from pgstream.hosts.wait import wait_for
from pgstream.ops.sandbox.servers import free_port

from ..recording import Recorder, apply_and_compare, record_through

MAJOR = "15"
PREFIX = "pgdr"
pytestmark = pytest.mark.version_independent


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "Debian's pg_createcluster needs root"
    if not Path("/usr/bin/pg_createcluster").exists():
        return "postgresql-common is not installed (apt-get install postgresql)"
    if not Path(f"/usr/lib/postgresql/{MAJOR}/bin/pg_rewind").exists():
        return f"Debian's PostgreSQL {MAJOR} is not installed (apt-get install postgresql)"
    return None


def _drop(name: str) -> None:
    subprocess.run(("pg_dropcluster", "--stop", MAJOR, name), capture_output=True, check=False)
    for path in (f"/etc/postgresql/{MAJOR}/{name}", f"/var/lib/postgresql/{MAJOR}/{name}"):
        shutil.rmtree(path, ignore_errors=True)
    for path in (f"/var/lib/postgresql/{MAJOR}/{name}.pgpass",
                 f"/var/log/postgresql/postgresql-{MAJOR}-{name}.log"):
        Path(path).unlink(missing_ok=True)


def _sweep() -> None:
    """Clusters a killed earlier run left: their pid is in their name."""
    root = Path(f"/etc/postgresql/{MAJOR}")
    for conf in root.glob(f"{PREFIX}*") if root.is_dir() else []:
        pid = conf.name.removeprefix(PREFIX)[:-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _drop(conf.name)


def _conninfo(port: int) -> str:
    return make_conninfo("", host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         connect_timeout=5)


@pytest.fixture(scope="module")
def debian_nodes() -> Iterator[tuple[Primary, list[Standby], int]]:
    """Three Debian 15 clusters (a primary's, two future standbys'), running."""
    why = _why_not()
    if why:
        pytest.skip(why)
    _sweep()
    host = LocalHost()
    owner = OsUser.lookup("postgres")
    names = [f"{PREFIX}{os.getpid()}{x}" for x in "abc"]
    taken: set[int] = set()
    ports = [free_port(taken) for _ in names]
    try:
        for name, port in zip(names, ports, strict=True):
            host.run(("pg_createcluster", "--port", str(port), MAJOR, name, "--", "-N"),
                     what="pg_createcluster", timeout=120)
            conf = Path(f"/etc/postgresql/{MAJOR}/{name}")
            text = (conf / "pg_hba.conf").read_text()
            (conf / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 trust\n" + text)
            (conf / "conf.d" / "test.conf").write_text(
                "listen_addresses = '127.0.0.1'\nfsync = off\nshared_buffers = 16MB\n"
                "wal_log_hints = on\n")  # pg_rewind needs hints or checksums
            host.run(("pg_ctlcluster", MAJOR, name, "start"), what="start", timeout=60)
        version = binaries.probe(Path(f"/usr/lib/postgresql/{MAJOR}/bin")).version
        services = [DebianClusterService.for_cluster(host, MAJOR, n, version=version,
                                                     user=owner) for n in names]
        primary = Primary("alpha", _conninfo(ports[0]), host=host,
                          data_dir=services[0].data_dir, service=services[0], os_user=owner)
        standbys = [Standby(label, _conninfo(port), host=host, data_dir=svc.data_dir,
                            service=svc, os_user=owner)
                    for label, port, svc in zip(("beta", "gamma"), ports[1:], services[1:],
                                                strict=True)]
        yield primary, standbys, ports[0]
    finally:
        for name in names:
            _drop(name)


def _all_stream(cluster: Cluster) -> bool:
    status = cluster.status()
    return all(s.state == "streaming" and s.in_recovery for s in status.standbys)


@pytest.fixture(scope="module")
def debian_cluster(debian_nodes: tuple[Primary, list[Standby], int]) -> Iterator[Cluster]:
    """The three clusters as one pgstream cluster (not set up yet: the first test does)."""
    primary, standbys, port = debian_nodes
    cluster = Cluster(primary, standbys, auth=ReplicationAuth("repuser", "s3cret-pw"),
                      primary_address=("127.0.0.1", port), hba_addresses=["127.0.0.1"],
                      settings={"wal_level": "replica", "max_wal_senders": "10",
                                "hot_standby": "on"})
    try:
        yield cluster
    finally:
        cluster.close()


def test_pg_ctlcluster_plans_print_what_they_run(debian_cluster: Cluster,
                                                 recorder: Recorder) -> None:
    cluster = debian_cluster
    primary = cluster.primary
    record_through(cluster, recorder)
    apply_and_compare(cluster.setup_plan(replace=True), recorder)
    assert any("pg_ctlcluster" in e for done in recorder.effects.values() for e in done)
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the standbys streaming")
    apply_and_compare(cluster.follow_plan("gamma", "beta"), recorder)
    apply_and_compare(cluster.follow_plan("gamma", "alpha"), recorder)
    apply_and_compare(cluster.switchover_plan("beta"), recorder)
    assert cluster.primary.name == "beta"
    apply_and_compare(cluster.switchover_plan("alpha"), recorder)
    # The primary went down cleanly (a forced failover's immediate stop leaves it needing
    # crash recovery: see the test below).
    assert primary.service is not None
    primary.close()
    primary.service.stop("fast")
    apply_and_compare(cluster.failover_plan("beta"), recorder)
    assert cluster.primary.name == "beta" and cluster.failed[0].name == "alpha"
    record_through(cluster, recorder)
    apply_and_compare(cluster.rejoin_plan("alpha", rewind=True), recorder)
    wait_for(lambda: _all_stream(cluster), timeout=30, what="alpha rejoined, streaming")


def test_rejoin_after_an_immediate_stop(debian_cluster: Cluster, recorder: Recorder) -> None:
    """A forced failover stops the old primary at once: its pg_rewind must first finish crash
    recovery, in single-user mode, with the configuration Debian keeps in /etc/postgresql
    (``--config-file``, pg_rewind 15+), printed as run; then it streams."""
    cluster = debian_cluster
    if not _all_stream(cluster) or cluster.primary.name != "beta":
        pytest.fail("the test above did not leave beta primary with its standbys streaming")
    record_through(cluster, recorder)
    apply_and_compare(cluster.failover_plan("alpha", force=True), recorder)
    assert cluster.primary.name == "alpha" and cluster.failed[0].name == "beta"
    record_through(cluster, recorder)
    plan = cluster.rejoin_plan("beta", rewind=True)
    conf = f"--config-file=/etc/postgresql/{MAJOR}/"
    assert conf in str(plan)
    apply_and_compare(plan, recorder)
    assert any(conf in e for done in recorder.effects.values() for e in done)
    assert not cluster.failed and {s.name for s in cluster.standbys} == {"beta", "gamma"}
    wait_for(lambda: _all_stream(cluster), timeout=30, what="beta rejoined, streaming")
