"""Discovery's matching rules over plain data (issue 10), no server: where a standby streams
from (:func:`_sender`), which known node that is (:func:`_points_at`), which walsender row it
holds (:func:`_match`: one row, one standby), and what happens to a standby found only by the
address its upstream sees, on another machine (an :class:`UnknownHost`, never the upstream's;
left out of the topology file ``discover --write`` writes).

The functions are pure over :class:`Seen` values: each test builds them from a
:class:`Probe` (what a server would have said) and runs the rule; the last tests run the whole
of :func:`discover_cluster` (and the CLI) with the servers' answers faked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from psycopg import conninfo as pg_conninfo

from pgstream.cli import main
from pgstream.errors import Unreachable
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, LocalHost
from pgstream.hosts.ssh import SshHost
from pgstream.nodes.node import Node, Primary, Standby
from pgstream.ops.discover import cluster as discovery
from pgstream.ops.discover.build import Seen
from pgstream.ops.discover.cluster import (
    FOREIGN,
    _match,
    _points_at,
    _sender,
    _why_not,
    discover_cluster,
    is_remote_address,
)
from pgstream.ops.discover.elsewhere import UnknownHost
from pgstream.ops.discover.probe import NodeSpec, Probe
from pgstream.render.topology import parse_topology

SYSTEM = "7412345678901234567"
V18 = ServerVersion.parse("18.1")
SOCKETS = "/var/run/postgresql"
DATA = "/var/lib/postgresql/18/main"


def _row(app: str = "walreceiver", slot: str | None = "r1",
         addr: str | None = "127.0.0.1") -> dict[str, Any]:
    return {"application_name": app, "slot_name": slot, "client_addr": addr,
            "state": "streaming"}


def _probe(port: int, *, recovering: bool = False, rows: Sequence[dict[str, Any]] = (),
           sender: tuple[str, int] | None = None, slot: str | None = None,
           conninfo: dict[str, str] | None = None, data: str = DATA, listen: str = "*",
           sockets: str = SOCKETS, system: str = SYSTEM) -> Probe:
    receiver = None
    if sender is not None:
        receiver = {"status": "streaming", "sender_host": sender[0],
                    "sender_port": sender[1], "slot_name": slot}
    return Probe(True, "", V18, recovering, system,
                 {"port": str(port), "data_directory": data, "listen_addresses": listen,
                  "unix_socket_directories": sockets},
                 tuple(rows), (), receiver, conninfo or {}, False, slot)


def _seen(name: str, probe: Probe, *, host: Host | None = None, conn_host: str = SOCKETS,
          primary: bool = False) -> Seen:
    conninfo = pg_conninfo.make_conninfo("", host=conn_host, port=probe.port, user="postgres")
    cls: type[Node] = Primary if primary else Standby
    node = cls(name, conninfo, host=host or LocalHost())
    return Seen(node, NodeSpec(conninfo), probe, given=primary)


# -- where a standby streams from


def test_sender_is_the_walreceiver_then_primary_conninfo() -> None:
    both = _seen("s", _probe(5433, recovering=True, sender=("10.0.0.1", 5432),
                             conninfo={"host": "db9", "port": "6000"}))
    assert _sender(both) == ("10.0.0.1", 5432)
    down = _seen("s", _probe(5433, recovering=True,
                             conninfo={"host": "db1,db2", "port": "5434,5435"}))
    assert _sender(down) == ("db1", 5434)  # a multi-host conninfo: its first
    assert _sender(_seen("s", _probe(5433, recovering=True,
                                     conninfo={"host": "db1", "port": "x"}))) is None
    # No host in primary_conninfo: the default socket, port 5432.
    assert _sender(_seen("s", _probe(5433, recovering=True, conninfo={}))) == ("", 5432)


def test_points_at_a_local_node_by_port_else_foreign() -> None:
    head = _seen("main", _probe(5432, rows=[_row()]), primary=True)
    ours = _seen("s1", _probe(5433, recovering=True, sender=("127.0.0.1", 5432)))
    theirs = _seen("s2", _probe(5435, recovering=True, sender=("127.0.0.1", 5434)))
    assert _points_at(ours, [head, ours, theirs]) is head
    # Loopback at a port no known node has on that host: surely another cluster's.
    assert _points_at(theirs, [head, ours, theirs]) == FOREIGN
    # The same port on another host is not "here".
    far = _seen("far", _probe(5434), host=SshHost("db7"))
    assert _points_at(theirs, [head, far, theirs]) == FOREIGN


def test_points_at_a_socket_dir_among_nodes_of_one_port() -> None:
    a = _seen("a", _probe(5432, sockets="/run/a"), conn_host="/run/a", primary=True)
    b = _seen("b", _probe(5432, sockets="/run/b"), conn_host="/run/b")
    standby = _seen("s", _probe(5433, recovering=True, sender=("/run/b", 5432)))
    assert _points_at(standby, [a, b, standby]) is b


def test_points_at_another_machine_by_name_or_cannot_tell() -> None:
    head = _seen("main", _probe(5432, listen="10.0.0.1"), conn_host="db1", primary=True)
    by_name = _seen("s", _probe(5432, recovering=True, sender=("db1", 5432)))
    by_listen = _seen("s", _probe(5432, recovering=True, sender=("10.0.0.1", 5432)))
    elsewhere = _seen("s", _probe(5432, recovering=True, sender=("10.9.9.9", 5432)))
    assert _points_at(by_name, [head, by_name]) is head
    assert _points_at(by_listen, [head, by_listen]) is head
    assert _points_at(elsewhere, [head, elsewhere]) is None  # NAT, proxy: cannot tell


# -- which walsender row a standby holds


def test_match_by_slot_then_application_name() -> None:
    head = _seen("main", _probe(5432, rows=[_row("a", "r1"), _row("b", None)]), primary=True)
    by_slot = _seen("s1", _probe(5433, recovering=True, sender=("127.0.0.1", 5432),
                                 slot="r1", conninfo={"application_name": "zz"}))
    by_name = _seen("s2", _probe(5434, recovering=True, sender=("127.0.0.1", 5432),
                                 conninfo={"application_name": "b"}))
    _match(by_slot, [head, by_slot])
    _match(by_name, [head, by_name])
    assert by_slot.upstream is head and by_slot.row is head.probe.walsenders[0]
    assert by_name.upstream is head and by_name.row is head.probe.walsenders[1]


def test_one_walsender_row_one_standby() -> None:
    """Two standbys with the same slot and application_name: the second gets no row."""
    head = _seen("main", _probe(5432, rows=[_row()]), primary=True)
    first = _seen("s1", _probe(5433, recovering=True, sender=("127.0.0.1", 5432), slot="r1"))
    second = _seen("s2", _probe(5434, recovering=True, sender=("127.0.0.1", 5432), slot="r1"))
    _match(first, [head, first, second])
    _match(second, [head, first, second])
    assert first.row is head.probe.walsenders[0]
    # Its sender is the primary (so its upstream is), but the row is first's.
    assert second.upstream is head and second.row is None


def test_a_standby_of_another_cluster_is_not_matched_even_with_the_same_names() -> None:
    """Cluster B, a copy of A restored and promoted, at port 5434: its standby has A's slot
    and application_name, and A has a free row of those names. Its sender is no node of A."""
    head = _seen("main", _probe(5432, rows=[_row()]), primary=True)
    foreign = _seen("b1", _probe(5435, recovering=True, sender=("127.0.0.1", 5434),
                                 slot="r1"))
    _match(foreign, [head, foreign])
    assert foreign.upstream is None and foreign.row is None
    why = _why_not(foreign, [head, foreign])
    assert "127.0.0.1:5434" in why and "no node of this cluster" in why


def test_ambiguous_rows_match_nothing_unless_the_sender_says() -> None:
    rows = [_row("walreceiver", None), _row("walreceiver", None)]
    head = _seen("main", _probe(5432, rows=rows), primary=True)
    other = _seen("up2", _probe(5440, recovering=True, rows=[_row("walreceiver", None)]),
                  host=SshHost("db2"))
    standby = _seen("s", _probe(5433, recovering=True, sender=("10.5.5.5", 5432)))
    _match(standby, [head, other, standby])
    assert standby.upstream is None  # three rows named walreceiver, no slot, no sender
    assert "matches no walsender row" in _why_not(standby, [head, other, standby])


def test_which_addresses_are_another_machine() -> None:
    for local in ("127.0.0.1", "127.0.1.1", "::1", "localhost", "", "::ffff:127.0.0.1",
                  "/var/run/postgresql"):
        assert not is_remote_address(local), local
    for remote in ("10.0.0.5", "192.168.1.20", "fe80::1", "::ffff:10.0.0.5", "db2"):
        assert is_remote_address(remote), remote


# -- a standby found only by address, on another machine


def test_unknown_host_refuses_everything() -> None:
    host = UnknownHost("10.0.0.5")
    assert host.name == "10.0.0.5 (host not known)"
    with pytest.raises(Unreachable, match=r"found at 10\.0\.0\.5"):
        host.run(("pg_ctl", "stop"))
    with pytest.raises(Unreachable):
        host.read_text(Path("/etc/passwd"))
    with pytest.raises(Unreachable):
        host.exists(Path(DATA))


class _Servers:
    """The answers discovery gets: each conninfo's (host, port) to a Probe."""

    def __init__(self, probes: dict[tuple[str, int], Probe]) -> None:
        self.probes = probes
        self.hosts: dict[str, Host] = {}
        self.data = ""

    def probe_all(self, items: Sequence[Seen], deep: bool) -> None:
        for seen in items:
            params = pg_conninfo.conninfo_to_dict(seen.spec.conninfo)
            key = (str(params.get("host")), int(str(params.get("port") or 5432)))
            seen.probe = self.probes.get(key, Probe(False, f"no server at {key}"))
            self.hosts[str(params.get("host"))] = seen.node.host


@pytest.fixture(params=[DATA, "/srv/pg/standby"], ids=["same-path", "other-path"])
def remote_pair(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> _Servers:
    """A primary on this machine, at the Unix socket; one standby at 10.0.0.5, seen only
    in the primary's walsender row, on another machine: with the very same data directory
    path (Debian's default on both), or another."""
    servers = _Servers({
        (SOCKETS, 5432): _probe(5432, rows=[_row(addr="10.0.0.5")]),
        ("10.0.0.5", 5432): _probe(5432, recovering=True, sender=("10.0.0.1", 5432),
                                   slot="r1", conninfo={"host": "10.0.0.1", "user": "rep"},
                                   data=request.param),
    })
    servers.data = request.param
    monkeypatch.setattr(discovery, "_probe_all", servers.probe_all)
    monkeypatch.setattr(discovery, "local_walreceivers", list)
    return servers


PRIMARY = pg_conninfo.make_conninfo("", host=SOCKETS, port=5432, user="postgres")


def test_remote_standby_gets_no_host_of_the_primary(remote_pair: _Servers) -> None:
    primary_host = LocalHost()
    found = discover_cluster(NodeSpec(PRIMARY, host=primary_host))
    (standby,) = found.standbys
    # Kept: its same data directory path is on another machine, not the primary's.
    assert standby.slot_name == "r1" and standby.upstream is None
    assert standby.host is not primary_host
    assert isinstance(standby.host, UnknownHost) and standby.host.address == "10.0.0.5"
    assert standby.service is None and standby.data_dir is None and standby.os_user is None
    facts = found.discovery.node(standby.name)
    assert (facts.host, facts.host_known, facts.service) == ("unknown", False, "unknown")
    assert facts.data_directory == remote_pair.data  # what the server said, as a fact
    assert found.discovery.primary.host == "local" and found.discovery.primary.host_known
    assert found.discovery.problems == ()
    # Probed with that host from the start: probe() asks no host it cannot reach, and
    # never read the primary machine's /proc for a server of the same path.
    assert isinstance(remote_pair.hosts["10.0.0.5"], UnknownHost)
    # The topology leaves it out; the notes say why and what to add.
    topology = found.discovery.topology()
    assert [n.name for n in topology.nodes] == [found.primary.name]
    assert found.discovery.hosts_unknown == (facts,)
    notes = found.discovery.topology_notes()
    assert f"Not written: {standby.name}" in notes and "10.0.0.5" in notes
    assert f"[nodes.{standby.name}]" in notes


def test_remote_standby_of_an_ssh_primary_is_not_recorded_on_its_host(
        remote_pair: _Servers) -> None:
    found = discover_cluster(NodeSpec(PRIMARY, host=SshHost("admin@db1", become="root")))
    (standby,) = found.standbys
    assert not isinstance(standby.host, SshHost)
    facts = found.discovery.node(standby.name)
    assert facts.host == "unknown" and facts.become is None
    assert all(n.host == "admin@db1" for n in found.discovery.topology().nodes)
    assert found.discovery.primary.host == "admin@db1"


def test_loopback_standby_keeps_its_upstreams_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found at a loopback address: it runs on its upstream's machine, whose host it gets
    (here an SSH host, so no local scan)."""
    servers = _Servers({
        (SOCKETS, 5432): _probe(5432, rows=[_row(addr="127.0.0.1")]),
        ("127.0.0.1", 5432): _probe(5432, recovering=True, sender=("127.0.0.1", 5432),
                                    slot="r1", data="/srv/standby"),
    })
    monkeypatch.setattr(discovery, "_probe_all", servers.probe_all)
    ssh = SshHost("admin@db1")
    found = discover_cluster(NodeSpec(PRIMARY, host=ssh))
    (standby,) = found.standbys
    assert standby.host is ssh
    facts = found.discovery.node(standby.name)
    assert (facts.host, facts.host_known) == ("admin@db1", True)
    assert found.discovery.hosts_unknown == () and found.discovery.topology_notes() == ""


def test_discover_write_records_no_host_for_a_remote_standby(
        remote_pair: _Servers, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "pgstream.toml"
    code = main(["discover", PRIMARY, "--write", str(target), "--json"])
    document = json.loads(capsys.readouterr().out)
    assert code == 0, document
    text = target.read_text()
    topology = parse_topology(text)
    (primary,) = topology.nodes
    assert primary.host == "local" and primary.data_dir == DATA
    standby = next(n for n in document["nodes"] if n["role"] == "standby")
    assert standby["host"] == "unknown" and standby["host_known"] is False
    assert document["not_written"] == [standby["name"]]
    # Only as a comment: what to add once its host is known.
    assert f"# [nodes.{standby['name']}]" in text
    assert f"\n[nodes.{standby['name']}]" not in text
    assert text.count(f'data_dir = "{remote_pair.data}"') == (remote_pair.data == DATA)
