"""Major upgrade of Debian's clusters (``pg_createcluster``, ``pg_ctlcluster``): three Debian
15 clusters made by postgresql-common, replicated by pgstream, upgraded to 18 in Debian's
layout (configuration in ``/etc/postgresql/18/NAME``, data in ``/var/lib/postgresql/18/NAME``).

Debian 12 packages PostgreSQL 15 only and apt.postgresql.org is not reachable here, so the
18 of the ``[server]`` extra stands where Debian's ``postgresql-18`` package would put it
(``/usr/lib/postgresql/18``, a symbolic link made for this test and removed after it, unless
such an installation is there already); everything else is Debian's own postgresql-common.
Needs root. Runs once: in the session whose server is that 18 (``nox -s tests``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from pgstream import (
    Cluster,
    DebianClusterService,
    Primary,
    ReplicationAuth,
    Standby,
    UpgradeRefused,
)
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import LocalHost, OsUser
from pgstream.hosts.wait import wait_for
from pgstream.ops.sandbox.servers import free_port
from pgstream.ops.upgrade.facts import UpgradeMethod

OLD = "15"
PREFIX = "pgsu"
ROWS = 50_000
CHECKSUM = "SELECT count(*), md5(string_agg(v, ',' ORDER BY id)) FROM t"
pytestmark = pytest.mark.version_independent


def _why_not(new: Installation) -> str | None:
    if os.geteuid() != 0:
        return "Debian's pg_createcluster needs root"
    if not Path("/usr/bin/pg_createcluster").exists():
        return "postgresql-common is not installed (apt-get install postgresql)"
    if not Path(f"/usr/lib/postgresql/{OLD}/bin/pg_controldata").exists():
        return f"Debian's PostgreSQL {OLD} is not installed (apt-get install postgresql)"
    if new.version.major_num <= int(OLD) or not new.has("pg_upgrade"):
        return f"the session's server ({new.version}) has no pg_upgrade newer than {OLD}"
    return None


def _drop(name: str) -> None:
    for major in (OLD, "18"):
        subprocess.run(("pg_dropcluster", "--stop", major, name), capture_output=True,
                       check=False)
        for path in (f"/etc/postgresql/{major}/{name}", f"/var/lib/postgresql/{major}/{name}",
                     f"/var/lib/postgresql/{major}/{name}.pgpass",
                     f"/var/lib/postgresql/{major}/.pgstream_upgrade_{name}"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else \
                Path(path).unlink(missing_ok=True)
        Path(f"/var/log/postgresql/postgresql-{major}-{name}.log").unlink(missing_ok=True)


def _sweep() -> None:
    """Clusters an earlier run of this test left (killed before its cleanup): their pid is
    in their name."""
    for major in (OLD, "18"):
        root = Path(f"/etc/postgresql/{major}")
        for conf in root.glob(f"{PREFIX}*") if root.is_dir() else []:
            pid = conf.name.removeprefix(PREFIX)[:-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _drop(conf.name)


@pytest.fixture
def debian18(pgstream_server: Installation) -> Iterator[Path]:
    """Debian's path of the 18 installation (``/usr/lib/postgresql/18/bin``)."""
    why = _why_not(pgstream_server)
    if why:
        pytest.skip(why)
    major = pgstream_server.version.major
    place = Path(f"/usr/lib/postgresql/{major}")
    made = False
    if place.is_symlink() and not place.exists():
        place.unlink()  # left by a run of this test that was killed, its target gone
    if not place.exists():
        place.symlink_to(pgstream_server.bindir.resolve().parent)
        made = True
    elif (place / "bin").resolve() != pgstream_server.bindir.resolve():
        found = binaries.probe(place / "bin")
        if found.version.major != major or not found.has("pg_upgrade"):
            pytest.skip(f"{place} holds another installation")
    _sweep()
    try:
        yield place / "bin"
    finally:
        if made:
            place.unlink()
        for empty in (Path(f"/etc/postgresql/{major}"), Path(f"/var/lib/postgresql/{major}")):
            if empty.is_dir() and not any(empty.iterdir()):
                empty.rmdir()


def _conninfo(port: int) -> str:
    return make_conninfo("", host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                         connect_timeout=5)


@pytest.fixture
def debian_cluster(debian18: Path) -> Iterator[Cluster]:
    """A Debian 15 primary and two standbys (pg_createcluster), replicated by pgstream."""
    host = LocalHost()
    owner = OsUser.lookup("postgres")
    names = [f"{PREFIX}{os.getpid()}{x}" for x in "abc"]
    taken: set[int] = set()
    ports = [free_port(taken) for _ in names]
    try:
        for name, port in zip(names, ports, strict=True):
            host.run(("pg_createcluster", "--port", str(port), OLD, name, "--", "-N"),
                     what="pg_createcluster", timeout=120)
            conf = Path(f"/etc/postgresql/{OLD}/{name}")
            text = (conf / "pg_hba.conf").read_text()
            (conf / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 trust\n" + text)
            (conf / "conf.d" / "test.conf").write_text(
                "listen_addresses = '127.0.0.1'\nfsync = off\nshared_buffers = 16MB\n")
            host.run(("pg_ctlcluster", OLD, name, "start"), what="start", timeout=60)
        version = binaries.probe(Path(f"/usr/lib/postgresql/{OLD}/bin")).version
        services = [DebianClusterService.for_cluster(host, OLD, n, version=version, user=owner)
                    for n in names]
        primary = Primary("alpha", _conninfo(ports[0]), host=host, data_dir=services[0].data_dir,
                          service=services[0], os_user=owner)
        standbys = [Standby(label, _conninfo(port), host=host, data_dir=svc.data_dir,
                            service=svc, os_user=owner)
                    for label, port, svc in zip(("beta", "gamma"), ports[1:], services[1:],
                                                strict=True)]
        cluster = Cluster(primary, standbys, auth=ReplicationAuth("repuser", "s3cret-pw"),
                          primary_address=("127.0.0.1", ports[0]), hba_addresses=["127.0.0.1"],
                          settings={"wal_level": "replica", "max_wal_senders": "10",
                                    "hot_standby": "on"})
        cluster.setup_plan(replace=True).apply()
        yield cluster
        cluster.close()
    finally:
        for name in names:
            _drop(name)


def _all_stream(cluster: Cluster) -> bool:
    status = cluster.status()
    return all(s.state == "streaming" and s.in_recovery and s.slot_active
               for s in status.standbys)


@pytest.mark.parametrize("method", ["rsync", "reclone"])
def test_debian_clusters_upgraded_in_debians_layout(debian_cluster: Cluster, debian18: Path,
                                                    method: UpgradeMethod) -> None:
    cluster = debian_cluster
    names = {n.name: n.service.cluster for n in cluster.nodes
             if isinstance(n.service, DebianClusterService)}
    cluster.primary.execute(
        "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, %s) g",
        (ROWS,))
    cluster.wait_for_catchup()
    expected = cluster.primary.query(CHECKSUM)[0]
    new_major = debian18.parent.name

    # A Debian cluster 18/NAME already there: refused, nothing changed (it stays as it was).
    taken = Path(f"/etc/postgresql/{new_major}/{names['gamma']}")
    taken.mkdir(parents=True)
    try:
        with pytest.raises(UpgradeRefused, match=rf"FAILED\] gamma's new Debian cluster "
                                                 rf"{new_major}/{names['gamma']} is free"):
            cluster.upgrade_plan(debian18, method=method)
        assert list(taken.iterdir()) == []
        assert not Path(f"/etc/postgresql/{new_major}/{names['alpha']}").exists()
    finally:
        taken.rmdir()
    assert _all_stream(cluster) and cluster.primary.version.major == OLD

    plan = cluster.upgrade_plan(debian18, method=method)
    shown = str(plan)
    primary_name = names["alpha"]
    assert f"pg_createcluster -u postgres --datadir /var/lib/postgresql/{new_major}/" \
           f"{primary_name}" in shown
    assert f"-d /etc/postgresql/{OLD}/{primary_name} -D /etc/postgresql/{new_major}/" \
           f"{primary_name}" in shown
    assert ("--relative" in shown) == (method == "rsync") and "s3cret-pw" not in shown
    assert f"beta's Debian configuration /etc/postgresql/{new_major}/{names['beta']}" in shown
    assert f"pg_ctlcluster {new_major} {primary_name} start" in shown
    assert not Path(f"/etc/postgresql/{new_major}/{primary_name}").exists()  # --check's gone
    plan.apply()

    for node in cluster.nodes:
        name = names[node.name]
        assert node.version.major == new_major
        assert node.show("data_directory") == f"/var/lib/postgresql/{new_major}/{name}"
        assert node.show("config_file") == f"/etc/postgresql/{new_major}/{name}/postgresql.conf"
        assert node.show("hba_file") == f"/etc/postgresql/{new_major}/{name}/pg_hba.conf"
        assert node.show("cluster_name") == f"{new_major}/{name}"
        assert node.query(CHECKSUM)[0] == expected
        conf = Path(f"/etc/postgresql/{new_major}/{name}")
        assert (conf / "start.conf").read_text().strip().endswith("auto")
        assert Path(f"/etc/postgresql/{OLD}/{name}/start.conf").read_text().strip() \
            .endswith("manual")
        assert isinstance(node.service, DebianClusterService)
        assert node.service.major == new_major
    wait_for(lambda: _all_stream(cluster), timeout=30, what="the 18 standbys streaming")
    listed = LocalHost().run(("pg_lsclusters", "--no-header")).output
    for name in names.values():
        assert any(line.split()[:4] == [new_major, name, line.split()[2], "online"] or
                   (line.split()[0] == new_major and line.split()[1] == name and
                    "online" in line) for line in listed.splitlines()), listed
    report = cluster.check()
    assert report.ok and not report.warnings, report
    cluster.primary.execute("INSERT INTO t VALUES (0, 'after')")
    cluster.wait_for_catchup()
    assert cluster.nodes[-1].query("SELECT v FROM t WHERE id = 0") == [("after",)]
    cluster.primary.execute("DELETE FROM t WHERE id = 0")
    # Restart through pg_ctlcluster: the new cluster is Debian's own.
    beta = cluster.standby("beta")
    assert beta.service is not None
    beta.service.restart()
    wait_for(lambda: _all_stream(cluster), timeout=30, what="beta streaming after a restart")

    # The old clusters: removed the Debian way (configuration too).
    removal = cluster.remove_old_cluster_plan()
    assert f"pg_dropcluster {OLD} {primary_name}" in str(removal)
    removal.apply()
    for name in names.values():  # (pg_dropcluster leaves the test's own conf.d/test.conf)
        assert not Path(f"/etc/postgresql/{OLD}/{name}/postgresql.conf").exists()
        assert not Path(f"/var/lib/postgresql/{OLD}/{name}").exists()
    assert cluster.primary.query(CHECKSUM)[0] == expected
