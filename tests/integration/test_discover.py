"""Clusters that already exist: the seed's pair built by hand, discovered from one conninfo,
then operated (status, add a standby, switchover and back, remove it) with the names and slot
the hand-built pair uses (``walreceiver``, ``r1``); a cascade; bad input refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import make_conninfo

from pgstream import Cluster, ReplicationAuth, Standby
from pgstream.errors import NodeUnreachable, ServerMismatch, TopologyError
from pgstream.hosts.service import PgCtlService
from pgstream.hosts.wait import wait_for
from pgstream.ops.discover.probe import NodeSpec
from pgstream.ops.sandbox.servers import free_port
from pgstream.render.sync_spec import SyncSpec

from .conftest import Rig
from .seed_pair import PASSWORD, hba_text, seed_pair, standby_by_hand


def test_seed_pair_discovered_and_operated(rig: Rig) -> None:
    pair = seed_pair(rig)
    cluster = Cluster.discover(pair.conninfo(pair.primary_port),
                               auth=ReplicationAuth("repuser", PASSWORD))
    found = cluster.discovery
    assert found is not None
    head, seen = found.nodes
    # Everything learnt from the servers: paths, port, owner, programs, service, log.
    assert head.role == "primary" and head.named_by == "host and port"
    assert head.name == f"local_{pair.primary_port}" and head.port == pair.primary_port
    assert Path(str(head.data_directory)) == pair.primary.data_dir.resolve()
    assert head.config_file == f"{head.data_directory}/postgresql.conf"
    assert head.hba_file == f"{head.data_directory}/pg_hba.conf"
    assert head.os_user == rig.user.name
    assert Path(str(head.bindir)) == rig.server.bindir.resolve()
    assert head.service == "pg_ctl" and "proc" in head.bindir_how
    assert Path(str(head.log)) == pair.primary.log_file
    # The standby, as pg_basebackup -R left it: walreceiver, slot r1, password not kept.
    assert seen.name == "walreceiver" and seen.named_by == "application_name"
    assert (seen.slot_name, seen.application_name) == ("r1", "walreceiver")
    assert seen.upstream == head.name and seen.state == "streaming"
    assert seen.primary_conninfo_had_password
    assert PASSWORD not in str(found) and PASSWORD not in str(found.to_dict())
    assert "password" not in str(seen.primary_conninfo)
    assert found.unused_slots == () and found.problems == ()
    standby = cluster.standby("walreceiver")
    assert (standby.slot_name, standby.application_name) == ("r1", "walreceiver")
    assert cluster.slot_for(standby) == "r1"
    assert standby.service is not None and standby.data_dir == pair.standby.data_dir.resolve()

    # Status: streaming, with lag, through slot r1.
    # (Lag is known once the standby has sent its first reply: wait for it to catch up first,
    # as a standby just connected reports no write/flush/replay position yet.)
    cluster.primary.execute("CREATE TABLE seed AS SELECT generate_series(1, 1000) AS id")
    cluster.wait_for_catchup()
    status = cluster.status().standby("walreceiver")
    assert status.state == "streaming" and status.slot_name == "r1"
    assert status.replay_lag_bytes is not None and status.slot_active

    # Add a standby (a pgstream-marked pg_hba line for it), streaming from the primary.
    data = rig.base / "added"
    port = free_port(rig.ports)
    svc = PgCtlService(rig.host, rig.server.bindir, data, rig.user, rig.base / "added.log",
                       version=rig.server.version)
    rig.services.append(svc)
    added = Standby("added", pair.conninfo(port),
                    host=rig.host, data_dir=data, service=svc, os_user=rig.user)
    cluster.node_settings["added"] = {"port": str(port)}  # the rest comes with the clone
    before = hba_text(pair)
    cluster.add_standby_plan(added, hba_address="127.0.0.2").apply()
    assert "127.0.0.2/32" in hba_text(pair) and "# pgstream: standby added" in hba_text(pair)
    assert cluster.status().standby("added").state == "streaming"

    # Switchover to the hand-made standby and back; it keeps slot r1 and walreceiver.
    old = cluster.primary.name
    cluster.switchover("walreceiver")
    assert cluster.primary.name == "walreceiver" and not cluster.primary.in_recovery
    wait_for(lambda: cluster.status().all_streaming, timeout=60, what="all streaming")
    cluster.switchover(old)
    assert cluster.primary.name == old
    wait_for(lambda: cluster.status().all_streaming, timeout=60, what="all streaming")
    back = cluster.standby("walreceiver")
    assert (back.slot_name, back.application_name) == ("r1", "walreceiver")
    assert cluster.status().standby("walreceiver").slot_name == "r1"
    assert {s.name for s in cluster.primary.slots()} == {"r1", "added"}

    # Remove the added standby while synchronous_standby_names lists it: first not waited
    # for, stopped, its slot dropped, only its pg_hba line removed, its data kept.
    cluster.set_synchronous(SyncSpec.priority(["added", "walreceiver"]))
    plan = cluster.remove_standby_plan("added")
    text = str(plan)
    assert text.index("stop waiting for added") < text.index("stop added") \
        < text.index("drop slot added")
    plan.apply()
    assert [s.name for s in cluster.standbys] == ["walreceiver"]
    assert cluster.primary.show("synchronous_standby_names") == "walreceiver"
    assert cluster.primary.slot("added") is None and not svc.running()
    assert hba_text(pair) == before
    assert (data / "PG_VERSION").exists()
    cluster.primary.execute("INSERT INTO seed VALUES (0)")  # a commit does not block
    cluster.close()


def test_cascade_discovered_with_its_upstreams(rig: Rig) -> None:
    pair = seed_pair(rig)
    _psql_slot(rig, pair.standby_port, "r2")
    svc, port = standby_by_hand(rig, "cascaded", pair.standby_port, "r2")
    cluster = Cluster.discover(pair.conninfo(pair.primary_port))
    assert len(cluster.standbys) == 2
    by_slot = {s.slot_name: s for s in cluster.standbys}
    first, second = by_slot["r1"], by_slot["r2"]
    assert first.upstream is None and second.upstream == first.name
    # Both say walreceiver: not unique, so each is named from its host and port.
    assert first.name == f"local_{pair.standby_port}" and second.name == f"local_{port}"
    assert {n.named_by for n in cluster.discovery.nodes[1:]} == {"host and port"}  # type: ignore[union-attr]
    status = cluster.status()
    assert status.standby(second.name).upstream == first.name
    assert status.standby(second.name).state == "streaming"
    assert status.standby(first.name).state == "streaming"
    assert svc.running()
    cluster.close()


def test_bad_input_is_refused_and_changes_nothing(rig: Rig, empty_dir: Path) -> None:
    pair = seed_pair(rig)
    hba, slots = hba_text(pair), _slot_names(pair.conninfo(pair.primary_port))
    nowhere = make_conninfo("", host="127.0.0.1", port=free_port(rig.ports), user="postgres",
                            dbname="postgres", connect_timeout=3)
    with pytest.raises(NodeUnreachable, match="cannot discover"):
        Cluster.discover(nowhere)
    other = rig.existing_primary("other")  # a primary of another system
    with pytest.raises(ServerMismatch, match="not in recovery") as caught:
        Cluster.discover(pair.conninfo(pair.primary_port), standbys=[other.conninfo])
    assert caught.value.field == "role"
    with pytest.raises(ServerMismatch, match="is in recovery"):
        Cluster.discover(pair.conninfo(pair.standby_port))
    # Two conninfos reaching one server: one data directory, two nodes.
    again = pair.conninfo(pair.standby_port) + " application_name=again"
    with pytest.raises(TopologyError, match="same server"):
        Cluster.discover(pair.conninfo(pair.primary_port),
                         standbys=[pair.conninfo(pair.standby_port), again])
    # Topology files: unknown key, a password, two nodes on one data directory.
    good = (f'[nodes.a]\nconninfo = "{pair.conninfo(pair.primary_port)}"\n'
            f'[nodes.b]\nconninfo = "{pair.conninfo(pair.standby_port)}"\n')
    cases = {
        "unknown key nodes.a.colour": good.replace("[nodes.b]", 'colour = "red"\n[nodes.b]'),
        "conninfo holds a password": good.replace("user=postgres", "user=postgres password=x",
                                               1),
        "same data directory": good.replace("[nodes.b]", 'data_dir = "/srv/x"\n[nodes.b]')
        + 'data_dir = "/srv/x"\n',
    }
    for expected, text in cases.items():
        path = empty_dir / "pgstream.toml"
        path.write_text(text)
        with pytest.raises(TopologyError, match=expected):
            Cluster.from_file(path)
    path.write_text(good + 'password = "s3cr3t"\n')
    with pytest.raises(TopologyError, match="never holds a password") as err:
        Cluster.from_file(path)
    assert "s3cr3t" not in str(err.value)
    # Nothing changed on the servers.
    assert hba_text(pair) == hba and _slot_names(pair.conninfo(pair.primary_port)) == slots
    assert pair.standby.running() and pair.primary.running()


def test_spec_names_and_a_standby_down(rig: Rig) -> None:
    """Names given by the caller win; a given standby that is down is reported, not dropped;
    its slot is reported as used by it, not as unused."""
    pair = seed_pair(rig)
    pair.standby.stop()
    cluster = Cluster.discover(
        NodeSpec(pair.conninfo(pair.primary_port), name="main"),
        standbys=[NodeSpec(pair.conninfo(pair.standby_port), name="replica", slot="r1")])
    found = cluster.discovery
    assert found is not None
    assert [(n.name, n.role, n.named_by) for n in found.nodes] == [
        ("main", "primary", "given"), ("replica", "down", "given")]
    assert any("replica is down" in p for p in found.problems)
    assert cluster.standby("replica").slot_name == "r1"
    assert found.unused_slots == ()
    status = cluster.status().standby("replica")
    assert status.reachable is False and status.state == "disconnected"
    # Down: its lag is unknown; what its slot holds is kept apart (issue 8).
    assert status.slot_name == "r1" and status.replay_lag_bytes is None
    assert status.slot_retained_bytes is not None
    cluster.close()


def _psql_slot(rig: Rig, port: int, slot: str) -> None:
    from .seed_pair import _psql

    _psql(rig, port, f"SELECT pg_create_physical_replication_slot('{slot}', true)")


def _slot_names(conninfo: str) -> list[str]:
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT slot_name FROM pg_replication_slots "
                                           "ORDER BY 1").fetchall()]
