"""The seed's flow across hosts: servers in network namespaces, each a host reached only over
SSH (pgstream's SshHost) and libpq on its own address. Layouts: pg_ctl, and Debian's
pg_createcluster / pg_ctlcluster (config in /etc/postgresql). A network cut shows in status.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from pgstream import (
    Cluster,
    PgStreamError,
    PlanFailed,
    Primary,
    ProgressEvent,
    ReplicationAuth,
    Standby,
    StepKind,
    UnsafeDataDirectory,
)
from pgstream.errors import CommandFailed, HostUnreachable
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, OsUser
from pgstream.hosts.service import DebianClusterService, PgCtlService
from pgstream.hosts.ssh import SshHost
from pgstream.hosts.wait import wait_for

from ..recording import Recorder, RecordingHost, apply_and_compare, record_through
from .admin_account import AdminAccount, admin_account
from .admin_account import unavailable_reason as admin_unavailable
from .rig import Rig, RigUnavailable, network_rig, unavailable_reason


def _debian_bindir() -> Path:
    """The newest Debian-packaged server (postgresql-common layout)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: ServerVersion.parse(p.parent.parent.name).num)
    return found[-1].parent if found else Path("/usr/lib/postgresql/none/bin")


DEBIAN = _debian_bindir()
MAJOR = DEBIAN.parent.name
pytestmark = pytest.mark.skipif(
    unavailable_reason() is not None or not (DEBIAN / "postgres").exists(),
    reason=f"multi-host rig: {unavailable_reason() or 'needs a Debian-packaged PostgreSQL'}")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    try:
        with network_rig(["alpha", "beta"]) as made:
            yield made
    except RigUnavailable as exc:  # pragma: no cover - the marker above catches it first
        pytest.skip(str(exc))


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="pgstream-mh-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def ssh_host(rig: Rig, name: str) -> SshHost:
    return SshHost(name, ssh_config=rig.ssh_config, login="root")


def postgres_user(host: Host) -> OsUser:
    return host.lookup_user("postgres")


def admin_conninfo(address: str, port: int) -> str:
    return make_conninfo("", host=address, port=port, user="postgres", dbname="postgres",
                         connect_timeout=5)


class PgCtlServers:
    """Servers made by hand on rig hosts with initdb + pg_ctl, stopped at the end."""

    def __init__(self, rig: Rig, workdir: Path) -> None:
        self.rig, self.workdir = rig, workdir
        self.services: list[PgCtlService] = []

    def service(self, name: str) -> PgCtlService:
        host = ssh_host(self.rig, name)
        user = postgres_user(host)
        base = self.workdir / name
        if not host.exists(base):
            host.make_dir(base, mode=0o700, owner=user)
        svc = PgCtlService(host, DEBIAN, base / "data", user, base / "server.log",
                           version=ServerVersion.parse(MAJOR))
        self.services.append(svc)
        return svc

    def primary(self, name: str) -> Primary:
        svc = self.service(name)
        host = svc.host
        address = self.rig.host(name).address
        host.run((str(DEBIAN / "initdb"), "-D", str(svc.data_dir), "-U", "postgres",
                  "--auth-local", "trust", "--auth-host", "scram-sha-256", "-N"),
                 user=svc.user, what="initdb")
        own = (f"port = 5432\nlisten_addresses = '{address}'\n"
               f"unix_socket_directories = '{svc.data_dir.parent}'\nfsync = off\n"
               "wal_sender_timeout = '2s'\nwal_receiver_status_interval = '1s'\n")
        host.append_text(svc.data_dir / "postgresql.auto.conf", own, owner=svc.user)
        # The test process (the rig's gateway) administers the servers over TCP, and so does
        # pg_rewind, run by a rejoin on the other host (pg_hba.conf goes with the clone).
        host.append_text(svc.data_dir / "pg_hba.conf",
                         f"host all postgres {self.rig.subnet} trust\n", owner=svc.user)
        svc.start()
        return Primary(name, admin_conninfo(address, 5432), host=host, data_dir=svc.data_dir,
                       service=svc, os_user=svc.user)

    def standby(self, name: str) -> tuple[Standby, dict[str, str]]:
        svc = self.service(name)
        address = self.rig.host(name).address
        node = Standby(name, admin_conninfo(address, 5432), host=svc.host,
                       data_dir=svc.data_dir, service=svc, os_user=svc.user)
        return node, {"listen_addresses": address,
                      "unix_socket_directories": str(svc.data_dir.parent)}

    def stop(self) -> None:
        for svc in self.services:
            try:
                if svc.running():
                    svc.stop("immediate")
            except Exception:  # noqa: BLE001 - cleanup goes on
                svc.kill()


@pytest.fixture
def servers(rig: Rig, workdir: Path) -> Iterator[PgCtlServers]:
    made = PgCtlServers(rig, workdir)
    try:
        yield made
    finally:
        made.stop()


def test_seed_flow_across_two_hosts_then_a_network_cut(rig: Rig, servers: PgCtlServers) -> None:
    primary = servers.primary("alpha")
    standby, own = servers.standby("beta")
    beta = rig.host("beta").address
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "s3cret 'pw'"),
                      primary_address=(rig.host("alpha").address, 5432), hba_addresses=[beta],
                      node_settings={"beta": own})
    plan = cluster.setup_plan()
    text = str(plan)
    assert f"host    replication    repuser    {beta}/32" in text  # B's real address
    assert "[alpha@alpha]" in text and "[beta@beta]" in text  # which host each step runs on
    assert "s3cret" not in text
    plan.apply()
    primary.execute("CREATE TABLE seed AS SELECT generate_series(1, 100) AS id")
    cluster.wait_for_catchup()
    assert standby.query("SELECT count(*) FROM seed") == [(100,)]
    assert standby.in_recovery
    # The passfile on beta is 0600 and holds the password; argv never did.
    passfile = Path(str(standby.data_dir) + ".pgpass")
    mode = standby.host.run(("stat", "-c", "%a", str(passfile))).output.strip()
    assert mode == "600"

    # Cut beta off: the primary loses its walsender, the slot holds WAL that keeps growing.
    rig.cut("beta")
    try:
        wait_for(lambda: cluster.status().standby("beta").state == "disconnected",
                 timeout=30, what="the primary to notice")
        first = cluster.status().standby("beta")
        # Unreachable: its lag is unknown; what its slot holds is shown apart, and grows.
        assert first.reachable is False and first.replay_lag_bytes is None
        assert first.slot_retained_bytes is not None
        primary.execute("INSERT INTO seed SELECT generate_series(101, 20000)")
        later = cluster.status().standby("beta")
        assert later.slot_retained_bytes is not None
        assert later.slot_retained_bytes > first.slot_retained_bytes
    finally:
        rig.restore("beta")
    wait_for(lambda: cluster.status().standby("beta").state == "streaming", timeout=60,
             what="beta to reconnect")
    cluster.wait_for_catchup(timeout=60)
    assert standby.query("SELECT count(*) FROM seed") == [(20000,)]


def test_switchover_failover_and_rejoin_across_hosts(rig: Rig, servers: PgCtlServers) -> None:
    """The operations after setup, each node on its own host: a switchover to beta, a
    failover back to alpha after beta dies, and beta, diverged meanwhile, rewound with
    pg_rewind on its own host (over ssh) and rejoined."""
    alpha_addr, beta_addr = rig.host("alpha").address, rig.host("beta").address
    primary = servers.primary("alpha")
    standby, own = servers.standby("beta")
    # Either host may become the primary: both addresses may stream (pg_hba is cloned).
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "pw"),
                      primary_address=(alpha_addr, 5432), hba_addresses=[alpha_addr, beta_addr],
                      node_settings={"beta": own})
    cluster.setup_plan().apply()
    primary.execute("CREATE TABLE ops (id int)")
    cluster.wait_for_catchup()

    plan = cluster.switchover_plan("beta")
    assert "[alpha@alpha]" in str(plan) and "[beta@beta]" in str(plan)
    plan.apply()
    assert cluster.primary.name == "beta" and not cluster.primary.in_recovery
    wait_for(lambda: cluster.status().standby("alpha").state == "streaming", timeout=60,
             what="alpha to stream from beta")
    cluster.primary.execute("INSERT INTO ops VALUES (1)")
    cluster.wait_for_catchup()
    assert cluster.node("alpha").query("SELECT id FROM ops") == [(1,)]

    # beta dies; alpha takes over; beta comes back alone and takes a write: diverged.
    beta = cluster.primary
    assert beta.service is not None
    beta.close()
    beta.service.stop("immediate")
    cluster.failover("alpha")
    assert cluster.primary.name == "alpha" and [n.name for n in cluster.failed] == ["beta"]
    beta.service.start()
    beta.execute("INSERT INTO ops VALUES (42)")
    beta.close()
    beta.service.stop()
    plan = cluster.rejoin_plan("beta")
    assert "pg_rewind" in str(plan) and "[beta@beta]" in str(plan)
    plan.apply()
    cluster.primary.execute("INSERT INTO ops VALUES (2)")
    cluster.wait_for_catchup()
    assert cluster.standby("beta").query("SELECT id FROM ops ORDER BY id") == [(1,), (2,)]
    assert cluster.status().standby("beta").state == "streaming"
    # No temporary passfile is left beside beta's data directory.
    assert not [name for name in beta.host.list_dir(servers.workdir / "beta")
                if name.startswith(".pgstream-rewind-")]


def test_pg_ctl_over_ssh_prints_what_it_runs(rig: Rig, servers: PgCtlServers,
                                            recorder: Recorder) -> None:
    """A dry run is the truth for pg_ctl over SSH: every pg_ctl, pg_basebackup, pg_rewind
    and statement that the setup, a switchover and back, a failover and a rejoin with
    pg_rewind run on two hosts is what their plans printed."""
    alpha_addr, beta_addr = rig.host("alpha").address, rig.host("beta").address
    primary = servers.primary("alpha")
    standby, own = servers.standby("beta")
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "pw"),
                      primary_address=(alpha_addr, 5432), hba_addresses=[alpha_addr, beta_addr],
                      node_settings={"beta": own})
    record_through(cluster, recorder)
    apply_and_compare(cluster.setup_plan(), recorder)
    primary.execute("CREATE TABLE truth (id int)")
    cluster.wait_for_catchup()
    apply_and_compare(cluster.switchover_plan("beta"), recorder)
    apply_and_compare(cluster.switchover_plan("alpha"), recorder)
    assert cluster.primary.name == "alpha"
    dead = cluster.primary
    assert dead.service is not None
    dead.close()
    dead.service.stop("immediate")
    apply_and_compare(cluster.failover_plan("beta"), recorder)
    dead.service.start()
    dead.execute("INSERT INTO truth VALUES (42)")  # diverged: the rejoin rewinds it
    dead.close()
    dead.service.stop()
    plan = cluster.rejoin_plan("alpha")
    assert "pg_rewind" in str(plan)
    apply_and_compare(plan, recorder)
    cluster.primary.execute("INSERT INTO truth VALUES (1)")
    cluster.wait_for_catchup()
    assert cluster.standby("alpha").query("SELECT id FROM truth") == [(1,)]


def test_network_cut_mid_switchover_leaves_one_primary(rig: Rig, servers: PgCtlServers) -> None:
    """Fault (issue 8): the target's link is cut right after the old primary stopped, before
    any promotion was asked. Nothing can be promoted, so the old primary must come back as
    the only primary; once the link is back, the standby streams again and a switchover
    succeeds. No acknowledged commit is lost."""
    alpha_addr, beta_addr = rig.host("alpha").address, rig.host("beta").address
    primary = servers.primary("alpha")
    standby, own = servers.standby("beta")
    cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "pw"),
                      primary_address=(alpha_addr, 5432), hba_addresses=[alpha_addr, beta_addr],
                      node_settings={"beta": own})
    cluster.setup_plan().apply()
    primary.execute("CREATE TABLE cut (id int)")
    primary.execute("INSERT INTO cut SELECT generate_series(1, 100)")
    cluster.wait_for_catchup()

    def cut_after_the_stop(event: ProgressEvent) -> None:
        if event.event == "done" and event.step.kind is StepKind.STOP:
            rig.cut("beta")

    try:
        with pytest.raises(PgStreamError):
            cluster.switchover("beta", progress=cut_after_the_stop, timeout=10)
    finally:
        rig.restore("beta")
    # One primary: alpha, back and writable; beta never promoted.
    assert cluster.primary.name == "alpha"
    primary.close()
    assert not primary.in_recovery
    primary.execute("INSERT INTO cut VALUES (101)")
    wait_for(lambda: standby.ping() and standby.in_recovery, timeout=60,
             what="beta to answer again, in recovery")
    wait_for(lambda: cluster.status().standby("beta").state == "streaming", timeout=60,
             what="beta to stream again")
    cluster.wait_for_catchup(timeout=60)
    assert standby.query("SELECT count(*) FROM cut") == [(101,)]
    cluster.switchover("beta")
    assert cluster.primary.name == "beta" and not standby.in_recovery


def test_debian_layout_clusters(rig: Rig) -> None:
    """pg_createcluster on each host (the seed's Ubuntu layout: config in /etc/postgresql),
    the primary's settings by ALTER SYSTEM (its postgresql.conf untouched), the standby's
    cluster replaced by a clone, everything through pg_ctlcluster."""
    _debian_layout(rig, ssh_host(rig, "alpha"), ssh_host(rig, "beta"))


@pytest.fixture
def admin(rig: Rig) -> Iterator[AdminAccount]:
    reason = admin_unavailable()
    if reason is not None:
        pytest.skip(reason)
    with admin_account() as account:
        try:
            yield account
        finally:
            account.end_sessions([["ssh", "-F", str(rig.ssh_config), "-O", "exit",
                                   f"{account.name}@{name}"] for name in rig.hosts])


def test_debian_layout_through_sudo(rig: Rig, admin: AdminAccount) -> None:
    """The cloud-image way: log in as an admin account that is neither root nor postgres and
    become root with sudo (``become="root"``); server commands go through ``sudo -u postgres``."""
    alpha, beta = (SshHost(f"{admin.name}@{name}", name=name, ssh_config=rig.ssh_config,
                           become="root") for name in ("alpha", "beta"))
    assert alpha.whoami() == admin.name
    # No sudo rule yet: a clear error, even for a mere check, and nothing done.
    with pytest.raises(CommandFailed, match=f"sudo asks {admin.name} for a password"):
        alpha.exists(Path("/etc/postgresql"))
    admin.allow_sudo()
    assert alpha.run(("id", "-un")).output.strip() == "root"
    assert alpha.run(("id", "-un"), user=postgres_user(alpha)).output.strip() == "postgres"
    _debian_layout(rig, alpha, beta)


def test_debian_layout_over_ssh_prints_what_it_runs(rig: Rig, recorder: Recorder) -> None:
    """A dry run is the truth for the Debian layout over SSH too: every pg_ctlcluster,
    pg_basebackup and statement that the setup and two switchovers run is what their plans
    printed (tests/integration/test_dry_run_truth.py does the same for pg_ctl and systemd)."""
    _debian_layout(rig, ssh_host(rig, "alpha"), ssh_host(rig, "beta"), recorder)


def _debian_layout(rig: Rig, alpha_host: SshHost, beta_host: SshHost,
                   recorder: Recorder | None = None) -> None:
    alpha: Host = alpha_host if recorder is None else RecordingHost(alpha_host, recorder)
    beta: Host = beta_host if recorder is None else RecordingHost(beta_host, recorder)
    name_a, name_b = f"pga{os.getpid()}", f"pgb{os.getpid()}"
    made: list[tuple[Host, str]] = []
    try:
        for host, cluster_name, port in ((alpha, name_a, 5440), (beta, name_b, 5441)):
            host.run(("pg_createcluster", MAJOR, cluster_name, "--port", str(port), "--",
                      "-N"), what="pg_createcluster", timeout=120)
            made.append((host, cluster_name))
            conf = Path(f"/etc/postgresql/{MAJOR}/{cluster_name}")
            host.append_text(conf / "pg_hba.conf",
                             f"host all postgres {rig.gateway}/32 trust\n")
            host.write_text(conf / "conf.d" / "rig.conf",
                            f"listen_addresses = '{rig.host(host.name).address}'\n"
                            "fsync = off\n", mode=0o644)
            host.run(("pg_ctlcluster", MAJOR, cluster_name, "start"), what="start")
        version = ServerVersion.parse(MAJOR)
        svc_a = DebianClusterService.for_cluster(alpha, MAJOR, name_a, version=version,
                                                 user=postgres_user(alpha))
        svc_b = DebianClusterService.for_cluster(beta, MAJOR, name_b, version=version,
                                                 user=postgres_user(beta))
        primary = Primary("alpha", admin_conninfo(rig.host("alpha").address, 5440),
                          host=alpha, data_dir=svc_a.data_dir, service=svc_a,
                          os_user=svc_a.user)
        standby = Standby("beta", admin_conninfo(rig.host("beta").address, 5441), host=beta,
                          data_dir=svc_b.data_dir, service=svc_b, os_user=svc_b.user)
        conf_before = alpha.read_text(Path(f"/etc/postgresql/{MAJOR}/{name_a}/postgresql.conf"))
        paths = primary.server_paths()
        assert paths.hba_file == Path(f"/etc/postgresql/{MAJOR}/{name_a}/pg_hba.conf")
        assert paths.config_file == Path(f"/etc/postgresql/{MAJOR}/{name_a}/postgresql.conf")
        assert paths.data_directory == svc_a.data_dir
        cluster = Cluster(primary, [standby], auth=ReplicationAuth("repuser", "pw"),
                          primary_address=(rig.host("alpha").address, 5440),
                          hba_addresses=[rig.host("beta").address],
                          settings={"wal_level": "replica", "max_wal_senders": "5",
                                    "hot_standby": "on"})
        with pytest.raises(UnsafeDataDirectory, match="replace=True"):
            cluster.setup_plan()  # beta's cluster holds a data directory: never wiped unasked
        plan = cluster.setup_plan(replace=True)
        assert "[beta@beta] wipe" in str(plan)
        if recorder is None:
            plan.apply()
        else:
            apply_and_compare(plan, recorder)
        assert alpha.read_text(Path(f"/etc/postgresql/{MAJOR}/{name_a}/postgresql.conf")) \
            == conf_before
        primary.execute("CREATE TABLE deb AS SELECT 1 AS x")
        cluster.wait_for_catchup()
        assert standby.query("SELECT x FROM deb") == [(1,)]
        assert standby.show("data_directory") == f"/var/lib/postgresql/{MAJOR}/{name_b}"
        assert beta.run(("pg_ctlcluster", MAJOR, name_b, "status"),
                        check=False).returncode == 0
        if recorder is not None:
            # Debian keeps pg_hba.conf outside the data directory, so the clone did not copy
            # alpha's line: let alpha stream from beta once beta is the primary.
            beta.append_text(Path(f"/etc/postgresql/{MAJOR}/{name_b}/pg_hba.conf"),
                             f"host replication repuser {rig.host('alpha').address}/32 "
                             "scram-sha-256\n")
            standby.execute("SELECT pg_reload_conf()")
            cluster.addresses["beta"] = (rig.host("beta").address, 5441)
            apply_and_compare(cluster.switchover_plan("beta"), recorder)
            apply_and_compare(cluster.switchover_plan("alpha"), recorder)
            assert cluster.primary.name == "alpha"
    finally:
        for host, cluster_name in made:
            host.run(("pg_dropcluster", "--stop", MAJOR, cluster_name), check=False,
                     what="pg_dropcluster", timeout=120)
            # pg_dropcluster leaves files it did not create: the test's and the passfile.
            host.run(("rm", "-rf", "--", f"/etc/postgresql/{MAJOR}/{cluster_name}",
                      f"/var/lib/postgresql/{MAJOR}/{cluster_name}.pgpass"), check=False)


def test_bad_hosts_and_paths(rig: Rig, servers: PgCtlServers, tmp_path: Path) -> None:
    nowhere = SshHost("192.0.2.250", connect_timeout=2, options=(
        "-o", f"UserKnownHostsFile={tmp_path / 'kh'}", "-o", "StrictHostKeyChecking=no"))
    with pytest.raises(HostUnreachable, match="cannot reach"):
        nowhere.run(("true",))
    wrong_key = SshHost(rig.host("alpha").address, options=(
        "-o", f"IdentityFile={tmp_path / 'nokey'}", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={tmp_path / 'kh'}", "-o", "StrictHostKeyChecking=no"),
        connect_timeout=3)
    with pytest.raises(HostUnreachable):
        wrong_key.run(("true",))
    # Logged in as a user other than root, switching users takes sudo, missing on the hosts.
    no_sudo = SshHost("alpha", ssh_config=rig.ssh_config, login="postgres")
    if shutil.which("sudo") is None:
        with pytest.raises(CommandFailed, match="sudo is not installed"):
            no_sudo.run(("true",), user=OsUser("nobody", 65534, 65534))
    assert SshHost("alpha", ssh_config=rig.ssh_config).whoami() == "root"
    primary = servers.primary("alpha")
    standby, own = servers.standby("beta")
    standby.data_dir = Path("/etc")
    cluster = Cluster(primary, [standby], primary_address=(rig.host("alpha").address, 5432),
                      hba_addresses=[rig.host("beta").address], node_settings={"beta": own})
    with pytest.raises(UnsafeDataDirectory, match="system directory"):
        cluster.setup_plan(replace=True)
    # A remote directory that holds something else than a data directory: never wiped.
    other = servers.workdir / "beta" / "notpg"
    standby.host.make_dir(other, mode=0o755)
    standby.host.write_text(other / "keep.txt", "precious", mode=0o644)
    standby.data_dir = other
    with pytest.raises(UnsafeDataDirectory, match="not a PostgreSQL data directory"):
        cluster.setup_plan(replace=True)
    assert standby.host.read_text(other / "keep.txt") == "precious"
    # A pg_hba.conf that cannot be written (immutable, even for root): the plan stops at
    # that step and names it and the host.
    hba = Path(primary.show("hba_file"))
    primary.host.run(("chattr", "+i", str(hba)))
    try:
        standby.data_dir = Path(str(servers.workdir / "beta" / "data"))
        with pytest.raises(PlanFailed, match=r"\[alpha\] allow replication connections "
                                             r"\(pg_hba\.conf\)\): .* failed on alpha") as caught:
            cluster.setup_plan().apply()
        assert "already done: [alpha] replication settings" in str(caught.value)
    finally:
        primary.host.run(("chattr", "-i", str(hba)), check=False)
