"""Fencing proofs, cross-checks, argument checks and node addresses, over fakes (the same
behaviour on real servers is in tests/integration/test_fencing.py)."""

from __future__ import annotations

import os
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any

import attrs
import pytest

from pgstream import Cluster, InvalidInput, Primary, Standby
from pgstream.errors import (
    HostUnreachable,
    NodeUnreachable,
    PrimaryStillAlive,
    ServerMismatch,
    UnsafeDataDirectory,
    WaitTimeout,
)
from pgstream.facts import arguments
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import LocalHost
from pgstream.hosts.service import PgCtlService
from pgstream.nodes import fence, identity
from pgstream.nodes.identity import ServerReport
from pgstream.ops.view import RoleChange
from pgstream.render import commands


@attrs.define
class FakeHost(LocalHost):
    """This machine's file semantics, with a process table of our own."""

    alive: set[int] = attrs.field(factory=set)
    broken: bool = False
    ran: list[tuple[str, ...]] = attrs.field(factory=list)

    def process_alive(self, pid: int) -> bool:
        if self.broken:
            raise HostUnreachable("ssh: connect to host db-a: Connection timed out")
        return pid in self.alive

    def run(self, argv: Any, **kwargs: Any) -> Any:
        self.ran.append(tuple(argv))
        raise AssertionError(f"no command may run here: {argv}")


class FakeServer(Primary):
    """A node whose server answers ``pg_is_in_recovery()`` as told (None: unreachable)."""

    answer: bool | None = None

    def query(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
        if self.answer is None:
            raise NodeUnreachable("cannot connect")
        return [(self.answer,)]


@attrs.define
class FakeService(PgCtlService):
    """A service whose stop does what the test says."""

    on_stop: Any = None

    def pid(self) -> int | None:
        return 42 if 42 in self.host.alive else None  # type: ignore[attr-defined]

    def stop(self, mode: commands.StopMode = "fast", *, pid: int | None = None) -> None:
        if self.on_stop is not None:
            self.on_stop()


def _node(host: FakeHost, answer: bool | None, on_stop: Any = None) -> FakeServer:
    node = FakeServer("main", "host=/tmp port=5432", host=host, data_dir=Path("/srv/main"))
    node.service = FakeService(host=host, bindir=Path("/bin"), data_dir=Path("/srv/main"),
                               on_stop=on_stop)
    node.answer = answer
    return node


def _report(pid: int | None = 42) -> ServerReport:
    return ServerReport(node="main", data_directory=Path("/srv/main"),
                        resolved=Path("/srv/main"), port=5432, in_recovery=False,
                        system_identifier="7", backend_pid=99, postmaster_pid=pid)


def test_a_stop_that_stops_nothing_is_not_a_fence() -> None:
    host = FakeHost(alive={42})
    node = _node(host, answer=False)  # the stop "succeeds"; the server still runs
    with pytest.raises(PrimaryStillAlive, match="its postmaster 42 still runs"):
        fence.stop_proven(node, "immediate", report=_report())


def test_a_stopped_postmaster_with_a_writable_server_behind_the_conninfo() -> None:
    host = FakeHost(alive={42})
    node = _node(host, answer=False, on_stop=lambda: host.alive.discard(42))
    with pytest.raises(PrimaryStillAlive, match="still reaches a server that accepts writes"):
        fence.stop_proven(node, "fast", report=_report())


def test_proofs_of_a_fence() -> None:
    host = FakeHost(alive={42})
    node = _node(host, answer=None, on_stop=lambda: host.alive.discard(42))
    assert fence.stop_proven(node, "fast", report=_report()) == \
        "postmaster 42 gone, no connection accepted"
    node.answer = True  # the conninfo now reaches a standby: read-only is proven enough
    assert "read-only" in fence.prove_down(node, 42)
    host.broken = True
    with pytest.raises(PrimaryStillAlive, match="cannot tell whether its postmaster 42"):
        fence.prove_down(node, 42)


@attrs.define
class RunLog(LocalHost):
    """This machine, recording each command run."""

    ran: list[tuple[str, ...]] = attrs.field(factory=list)

    def run(self, argv: Any, **kwargs: Any) -> Any:
        self.ran.append(tuple(str(a) for a in argv))
        return super().run(argv, **kwargs)


def _sentinel_bindir(tmp_path: Path) -> tuple[Path, Path]:
    """A bindir whose ``pg_ctl`` only leaves a mark that it ran."""
    bindir, mark = tmp_path / "bin", tmp_path / "pg_ctl-ran"
    bindir.mkdir()
    (bindir / "pg_ctl").write_text(f"#!/bin/sh\ntouch {mark}\n")
    (bindir / "pg_ctl").chmod(0o755)
    return bindir, mark


def test_a_service_of_another_server_refuses_to_stop_it(tmp_path: Path) -> None:
    # The check runs inside the one stop command, on the server's host: a live proven
    # postmaster (this test's own process) that the data directory does not name refuses
    # before the stop program runs.
    bindir, mark = _sentinel_bindir(tmp_path)
    live = os.getpid()
    service = PgCtlService(host=LocalHost(), bindir=bindir, data_dir=tmp_path / "x")
    with pytest.raises(ServerMismatch, match=f"postmaster {live}, but .*x on") as caught:
        service.stop("immediate", pid=live)  # x has no postmaster.pid at all
    assert caught.value.reported == live and caught.value.declared is None
    assert not mark.exists()  # nothing was run
    service.stop("fast")  # without a proven pid: nothing there, nothing to stop
    assert not mark.exists()
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "postmaster.pid").write_text(f"{live}\n{tmp_path / 'x'}\n")
    service.timeout = 1  # the "postmaster" (this process) never exits: the wait times out
    with pytest.raises(WaitTimeout, match=f"postmaster {live} of .* to exit"):
        service.stop("fast", pid=live)
    assert mark.exists()  # the stop ran, and was not taken for proof


def test_one_command_stops_and_proves_the_postmaster_gone(tmp_path: Path) -> None:
    bindir, mark = _sentinel_bindir(tmp_path)
    data_dir = tmp_path / "d"
    data_dir.mkdir()
    child = subprocess.Popen(["sleep", "30"])
    try:
        (data_dir / "postmaster.pid").write_text(f"{child.pid}\n{data_dir}\n")
        (bindir / "pg_ctl").write_text(f"#!/bin/sh\ntouch {mark}\nkill {child.pid}\n")
        host = RunLog()
        ran = host.ran
        service = PgCtlService(host=host, bindir=bindir, data_dir=data_dir)
        reaper = threading.Thread(target=child.wait)
        reaper.start()  # the zombie reaped, as init would
        service.stop("fast", pid=child.pid)
        reaper.join()
        assert mark.exists() and child.poll() is not None
        assert len(ran) == 1 and ran[0] == service.stop_argv("fast")
        assert shlex.join(ran[0]) == service.describe("stop", "fast")  # the dry run's text
    finally:
        child.kill()
        child.wait()


def test_cross_check_names_both_values(tmp_path: Path) -> None:
    (tmp_path / "main").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "main")
    node = Primary("main", "host=/tmp port=5432", data_dir=tmp_path / "link")
    report = attrs.evolve(_report(), data_directory=tmp_path / "main",
                          resolved=tmp_path / "main")
    identity.check(node, report, role="primary", port=5432, system_identifier="7")  # symlink
    cases: list[tuple[dict[str, Any], str, object, object]] = [
        ({"role": "standby"}, "role", "standby", "primary (not in recovery)"),
        ({"port": 5433}, "port", 5433, 5432),
        ({"system_identifier": "8"}, "system_identifier", "8", "7"),
    ]
    for kwargs, field, declared, reported in cases:
        with pytest.raises(ServerMismatch) as caught:
            identity.check(node, report, **kwargs)
        assert (caught.value.field, caught.value.declared, caught.value.reported) == (
            field, declared, reported)
        assert str(declared) in str(caught.value) and str(reported) in str(caught.value)
    node.data_dir = tmp_path / "mian"
    with pytest.raises(ServerMismatch, match=r"declared data_dir .*mian but the server reports"):
        identity.check(node, report)


def test_declared_port() -> None:
    local = Primary("a", "host=/run/pg port=5433", data_dir=Path("/d"))
    assert identity.declared_port(local) == 5433
    assert identity.declared_port(local, {"port": "6000"}) == 6000
    assert identity.declared_port(Primary("a", "host=127.0.0.1 port=5", data_dir=Path("/d"))) == 5
    # Remote TCP or no data directory: a port mapping may stand between; nothing to compare.
    assert identity.declared_port(Primary("a", "host=db-a port=5", data_dir=Path("/d"))) is None
    assert identity.declared_port(Primary("a", "host=/run/pg port=5")) is None


def test_arguments() -> None:
    assert arguments.timeout(2) == 2.0 and arguments.timeout(0.002) == 0.002
    for bad in (0, -1, float("nan"), float("inf"), "1", True, None):
        with pytest.raises(InvalidInput, match="timeout must be a positive"):
            arguments.timeout(bad)
    assert arguments.byte_count(0, "max_lag_bytes") == 0
    for bad_bytes in (-1, 1.5, "x", False):
        with pytest.raises(InvalidInput, match="max_lag_bytes"):
            arguments.byte_count(bad_bytes, "max_lag_bytes")
    with pytest.raises(InvalidInput, match="force must be True or False"):
        arguments.flag("no", "force")


def _nodes() -> tuple[Primary, Standby, Standby]:
    return (Primary("alpha", "host=/run/a port=1", data_dir=Path("/d/alpha")),
            Standby("beta", "host=10.0.0.2 port=5432", data_dir=Path("/d/beta")),
            Standby("gamma", "host=10.0.0.3 port=5432", data_dir=Path("/d/gamma")))


def test_the_primary_address_stays_with_its_node() -> None:
    alpha, beta, gamma = _nodes()
    given = {"gamma": ("10.9.9.3", 5432)}
    cluster = Cluster(alpha, [beta, gamma], primary_address=("10.0.0.1", 5432),
                      addresses=given)
    assert given == {"gamma": ("10.9.9.3", 5432)}  # the caller's dict is not changed
    cluster.apply(RoleChange("switchover", new_primary="beta", rejoined=("alpha",)))
    assert cluster.primary.name == "beta"
    assert cluster.address_of(cluster.primary) == ("10.0.0.2", 5432)  # its own conninfo
    assert cluster.address_of(cluster.node("alpha")) == ("10.0.0.1", 5432)
    assert cluster.address_of(cluster.node("gamma")) == ("10.9.9.3", 5432)


def test_nodes_cannot_share_a_data_directory_or_an_address() -> None:
    alpha, beta, gamma = _nodes()
    gamma.data_dir = Path("/d/beta/")  # the same directory, written differently
    with pytest.raises(UnsafeDataDirectory, match="beta and gamma are both declared with the"):
        Cluster(alpha, [beta, gamma])
    gamma.data_dir = Path("/d/gamma")
    with pytest.raises(InvalidInput, match=r"gamma and alpha are both declared at 10\.0\.0\.1:"):
        Cluster(alpha, [beta, gamma], primary_address=("10.0.0.1", 5432),
                addresses={"gamma": ("10.0.0.1", 5432)})
    Cluster(alpha, [beta, gamma], primary_address=("10.0.0.1", 5432))  # all distinct


@attrs.define
class CountingHost(LocalHost):
    resolved: list[Path] = attrs.field(factory=list)

    def resolve(self, path: Path) -> Path:
        self.resolved.append(Path(path))
        return Path(path)

    def exists(self, path: Path) -> bool:
        return path.name in ("postmaster.pid", "stat")

    def read_text(self, path: Path) -> str:
        if path.name == "postmaster.pid":
            return "4000\n/srv/main\n"
        return "101 (postgres) S 4000 1 1"  # /proc/PID/stat: the backend, child of 4000


class Answering(Primary):
    """A node whose server reports itself as /srv/main, port 5432, primary, system 7."""

    def query(self, statement: Any, params: Any = None) -> list[tuple[Any, ...]]:
        return [("/srv/main", 5432, False, "7", 101, "0/3000000", None, None, True)]

    @property
    def version(self) -> ServerVersion:
        return ServerVersion.parse(180000)


def test_a_re_check_costs_one_query_and_no_path_resolution() -> None:
    host = CountingHost()
    node = Answering("main", "host=/tmp port=5432", host=host, data_dir=Path("/srv/main"))
    first = identity.verify(node, role="primary")
    assert first.postmaster_pid == 4000 and first.streams_to
    assert host.resolved == [Path("/srv/main"), Path("/srv/main")]  # reported, declared
    again = identity.verify(node, role="primary", known=first)
    assert again.postmaster_pid == 4000
    assert len(host.resolved) == 2  # nothing resolved again
    node.data_dir = Path("/srv/mian")  # a changed declaration is resolved (and refused)
    with pytest.raises(ServerMismatch, match="mian"):
        identity.verify(node, role="primary", known=first)
