"""Two clusters of one system alive at once (issue 10): cluster A is the seed's pair (a
primary, one standby through slot ``r1``); cluster B's primary is a ``pg_basebackup`` copy of
A's primary, promoted, with its own standby made the same way (slot ``r1``, ``application_name``
``walreceiver``: the same names as A's). Every server runs on this machine, so discovery's scan
of the local walreceivers sees both standbys, with one system identifier. Discovering A keeps
only A's standby and reports B's as left out; discovering B keeps only B's.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

from pgstream import Cluster
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import server_user
from pgstream.hosts.service import PgCtlService
from pgstream.hosts.wait import wait_for
from pgstream.ops.sandbox.servers import free_port

from .conftest import Rig
from .seed_pair import PASSWORD, SeedPair, _conf, _own_tool, _psql, seed_pair, standby_by_hand


@attrs.frozen
class TwoClusters:
    rig: Rig
    a: SeedPair
    b_primary: PgCtlService
    b_primary_port: int
    b_standby: PgCtlService
    b_standby_port: int


def _system_identifier(rig: Rig, port: int) -> str:
    with psycopg.connect(rig.conninfo(port), autocommit=True) as conn:
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
    assert row is not None
    return str(row[0])


def _in_recovery(rig: Rig, port: int) -> bool:
    with psycopg.connect(rig.conninfo(port), autocommit=True) as conn:
        row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    return bool(row and row[0])


def _promoted_copy(rig: Rig, source_port: int) -> tuple[PgCtlService, int]:
    """B's primary: ``pg_basebackup -R`` of A's primary (no slot), started, promoted."""
    port = free_port(rig.ports)
    svc = rig.service("bprimary")
    rig.host.run((str(_own_tool(rig, "pg_basebackup")), "-h", "127.0.0.1", "-p",
                  str(source_port), "-U", "repuser", "-D", str(svc.data_dir), "-R",
                  "-X", "stream"), user=rig.user, env={"PGPASSWORD": PASSWORD},
                 what="pg_basebackup")
    _conf(rig, svc, {"port": str(port)})
    svc.start()
    svc.promote()
    wait_for(lambda: not _in_recovery(rig, port), timeout=60, what="B's primary promoted")
    return svc, port


@pytest.fixture(scope="module")
def two(pgstream_server: Installation) -> Iterator[TwoClusters]:
    """Both clusters, built once for this module; every server stopped and every directory
    removed afterwards, whatever happened (the rig's cleanup, also when building fails)."""
    user = server_user()
    base = Path(tempfile.mkdtemp(prefix="pgstream-rig-"))
    if os.geteuid() == 0:
        os.chown(base, user.uid, user.gid)
    rig = Rig(base, pgstream_server, user)
    try:
        a = seed_pair(rig)
        b_primary, b_port = _promoted_copy(rig, a.primary_port)
        _psql(rig, b_port, "SELECT pg_create_physical_replication_slot('r1', true)")
        b_standby, b_standby_port = standby_by_hand(rig, "bstandby", b_port, "r1")
        same = {_system_identifier(rig, p) for p in
                (a.primary_port, a.standby_port, b_port, b_standby_port)}
        assert len(same) == 1, "both clusters must share one system identifier"
        yield TwoClusters(rig, a, b_primary, b_port, b_standby, b_standby_port)
    finally:
        rig.cleanup()
    assert not base.exists()


def _data_dirs(cluster: Cluster) -> set[Path]:
    return {Path(str(s.data_dir)) for s in cluster.standbys}


def _left_out(problems: tuple[str, ...], data_dir: Path) -> list[str]:
    return [p for p in problems if p.startswith("left out the standby")
            and f"data directory {data_dir}" in p]


def test_discover_a_keeps_only_a_standby(two: TwoClusters) -> None:
    a_standby = two.a.standby.data_dir.resolve()
    b_standby = two.b_standby.data_dir.resolve()
    cluster = Cluster.discover(two.rig.conninfo(two.a.primary_port))
    try:
        found = cluster.discovery
        assert found is not None
        assert _data_dirs(cluster) == {a_standby}
        (standby,) = cluster.standbys
        assert (standby.slot_name, standby.application_name) == ("r1", "walreceiver")
        assert standby.upstream is None  # streams from the primary itself
        assert [n.role for n in found.nodes] == ["primary", "standby"]
        assert all(n.port != two.b_standby_port for n in found.nodes)
        # B's standby was seen (a walreceiver on this machine, of this system) and reported.
        (why,) = _left_out(found.problems, b_standby)
        assert f"streams from 127.0.0.1:{two.b_primary_port}" in why
        assert "no node of this cluster" in why
        assert not _left_out(found.problems, a_standby)
        # A's walsender row is A's standby's: nothing else reported.
        assert len(found.problems) == 1, found.problems
        assert cluster.status().standby(standby.name).state == "streaming"
    finally:
        cluster.close()


def test_discover_b_keeps_only_b_standby(two: TwoClusters) -> None:
    a_standby = two.a.standby.data_dir.resolve()
    b_standby = two.b_standby.data_dir.resolve()
    cluster = Cluster.discover(two.rig.conninfo(two.b_primary_port))
    try:
        found = cluster.discovery
        assert found is not None
        assert _data_dirs(cluster) == {b_standby}
        (standby,) = cluster.standbys
        assert (standby.slot_name, standby.application_name) == ("r1", "walreceiver")
        assert standby.upstream is None
        assert found.primary.port == two.b_primary_port
        assert all(n.port != two.a.standby_port for n in found.nodes)
        (why,) = _left_out(found.problems, a_standby)
        assert f"streams from 127.0.0.1:{two.a.primary_port}" in why
        assert not _left_out(found.problems, b_standby)
        assert len(found.problems) == 1, found.problems
        assert cluster.status().standby(standby.name).state == "streaming"
    finally:
        cluster.close()


def test_a_standby_given_of_the_other_cluster_is_not_adopted(two: TwoClusters) -> None:
    """B's standby passed explicitly to discover(A): kept as given (the caller said so), but
    never matched to A's walsender row (it streams from B's primary), and reported."""
    cluster = Cluster.discover(two.rig.conninfo(two.a.primary_port),
                               standbys=[two.rig.conninfo(two.b_standby_port)])
    try:
        found = cluster.discovery
        assert found is not None
        by_port = {n.port: n for n in found.nodes}
        given = by_port[two.b_standby_port]
        assert given.state == "disconnected" and given.upstream is None
        assert any("was given as a standby, but it streams from 127.0.0.1:"
                   f"{two.b_primary_port}" in p for p in found.problems), found.problems
        # A's own standby still holds A's one walsender row.
        assert by_port[two.a.standby_port].state == "streaming"
    finally:
        cluster.close()
