"""Discovery over SSH: a Debian ``pg_createcluster`` pair on two rig hosts, reached as an
admin login that becomes root with sudo (``become="root"``). Discovery must tell, through
those hosts, Debian's paths (config and hba in /etc/postgresql, data in /var/lib/postgresql),
the ``pg_ctlcluster`` service, the owner, the programs and the log; and the pair it finds
must work (status streaming, a switchover and back through ``pg_ctlcluster``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgstream import Cluster, Primary, ReplicationAuth, Standby
from pgstream.hosts.service import DebianClusterService
from pgstream.hosts.ssh import SshHost
from pgstream.hosts.wait import wait_for
from pgstream.ops.discover.probe import NodeSpec

from .admin_account import AdminAccount, admin_account
from .admin_account import unavailable_reason as admin_unavailable
from .rig import Rig, RigUnavailable, network_rig, unavailable_reason
from .test_deployment import DEBIAN, MAJOR, admin_conninfo, postgres_user

pytestmark = pytest.mark.skipif(
    unavailable_reason() is not None or not (DEBIAN / "postgres").exists()
    or admin_unavailable() is not None,
    reason=f"multi-host rig: {unavailable_reason() or admin_unavailable() or 'no Debian PG'}")


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    try:
        with network_rig(["alpha", "beta"]) as made:
            yield made
    except RigUnavailable as exc:  # pragma: no cover - the marker above catches it first
        pytest.skip(str(exc))


@pytest.fixture
def admin(rig: Rig) -> Iterator[AdminAccount]:
    with admin_account() as account:
        account.allow_sudo()
        try:
            yield account
        finally:
            account.end_sessions([["ssh", "-F", str(rig.ssh_config), "-O", "exit",
                                   f"{account.name}@{name}"] for name in rig.hosts])


def test_debian_pair_discovered_over_ssh_with_become(rig: Rig, admin: AdminAccount) -> None:
    alpha, beta = (SshHost(f"{admin.name}@{name}", name=name, ssh_config=rig.ssh_config,
                           become="root") for name in ("alpha", "beta"))
    name_a, name_b = f"dsa{os.getpid()}", f"dsb{os.getpid()}"
    made: list[tuple[SshHost, str]] = []
    try:
        for host, cluster_name, port in ((alpha, name_a, 5450), (beta, name_b, 5451)):
            host.run(("pg_createcluster", MAJOR, cluster_name, "--port", str(port), "--",
                      "-N"), what="pg_createcluster", timeout=120)
            made.append((host, cluster_name))
            conf = Path(f"/etc/postgresql/{MAJOR}/{cluster_name}")
            host.append_text(conf / "pg_hba.conf",
                             f"host all postgres {rig.gateway}/32 trust\n")
            host.write_text(conf / "conf.d" / "rig.conf",
                            f"listen_addresses = '{rig.host(host.name).address}'\n"
                            "fsync = off\nwal_sender_timeout = '2s'\n", mode=0o644)
            host.run(("pg_ctlcluster", MAJOR, cluster_name, "start"), what="start")
        # The pair made with pgstream's plan (as in test_deployment), then forgotten.
        svc_a = DebianClusterService.for_cluster(alpha, MAJOR, name_a, user=postgres_user(alpha))
        svc_b = DebianClusterService.for_cluster(beta, MAJOR, name_b, user=postgres_user(beta))
        conn_a = admin_conninfo(rig.host("alpha").address, 5450)
        conn_b = admin_conninfo(rig.host("beta").address, 5451)

        built = Cluster(Primary("alpha", conn_a, host=alpha, data_dir=svc_a.data_dir,
                                service=svc_a, os_user=svc_a.user),
                        [Standby("beta", conn_b, host=beta, data_dir=svc_b.data_dir,
                                 service=svc_b, os_user=svc_b.user)],
                        auth=ReplicationAuth("repuser", "pw"),
                        primary_address=(rig.host("alpha").address, 5450),
                        hba_addresses=[rig.host("alpha").address, rig.host("beta").address],
                        settings={"wal_level": "replica", "max_wal_senders": "5",
                                  "hot_standby": "on"})
        built.setup_plan(replace=True).apply()
        built.close()
        # Debian keeps pg_hba.conf outside the data directory: the clone has its own, which a
        # DBA opens to the other host by hand so that either may stream from the other.
        beta.append_text(Path(f"/etc/postgresql/{MAJOR}/{name_b}/pg_hba.conf"),
                         f"host replication repuser {rig.host('alpha').address}/32 "
                         "scram-sha-256\n")
        beta.run(("pg_ctlcluster", MAJOR, name_b, "reload"), what="reload")

        cluster = Cluster.discover(NodeSpec(conn_a, host=alpha),
                                   standbys=[NodeSpec(conn_b, host=beta)],
                                   auth=ReplicationAuth("repuser", "pw"))
        found = cluster.discovery
        assert found is not None, "discovery recorded"
        assert found.problems == (), found.problems
        for facts, cluster_name, where in ((found.nodes[0], name_a, "alpha"),
                                           (found.nodes[1], name_b, "beta")):
            etc = f"/etc/postgresql/{MAJOR}/{cluster_name}"
            assert facts.host == f"{admin.name}@{where}" and facts.become == "root"
            assert facts.service == "pg_ctlcluster", facts
            assert facts.config_file == f"{etc}/postgresql.conf"
            assert facts.hba_file == f"{etc}/pg_hba.conf"
            assert facts.data_directory == f"/var/lib/postgresql/{MAJOR}/{cluster_name}"
            assert facts.os_user == "postgres"
            assert facts.bindir == f"/usr/lib/postgresql/{MAJOR}/bin"
            assert facts.log == f"/var/log/postgresql/postgresql-{MAJOR}-{cluster_name}.log"
        assert found.nodes[1].upstream == found.nodes[0].name
        assert found.nodes[1].slot_name == "beta" and found.nodes[1].state == "streaming"
        service = cluster.primary.service
        assert isinstance(service, DebianClusterService)
        assert (service.major, service.cluster) == (MAJOR, name_a)
        assert cluster.status().all_streaming
        # It works: a switchover through pg_ctlcluster on each host, and back.
        first, second = cluster.primary.name, cluster.standbys[0].name
        cluster.switchover(second)
        wait_for(lambda: cluster.status().all_streaming, timeout=60, what="streaming")
        cluster.switchover(first)
        wait_for(lambda: cluster.status().all_streaming, timeout=60, what="streaming")
        assert cluster.primary.name == first
        cluster.close()
    finally:
        for host, cluster_name in made:
            host.run(("pg_dropcluster", "--stop", MAJOR, cluster_name), check=False,
                     what="pg_dropcluster", timeout=120)
            host.run(("rm", "-rf", "--", f"/etc/postgresql/{MAJOR}/{cluster_name}",
                      f"/var/lib/postgresql/{MAJOR}/{cluster_name}.pgpass"), check=False)
