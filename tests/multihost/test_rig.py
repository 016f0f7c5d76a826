"""The multi-host rig itself: each host is its own network namespace with its own address,
reached over SSH; hosts reach each other; a host can be cut off and restored; nothing is left
behind afterwards, also when the body raises or the owning process is killed."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pytest

from . import rig as rigmod
from .rig import Rig, RigError, RigUnavailable, network_rig, unavailable_reason

_UNAVAILABLE = unavailable_reason()
pytestmark = pytest.mark.skipif(_UNAVAILABLE is not None,
                                reason=f"multi-host rig unavailable: {_UNAVAILABLE}")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rig() -> Iterator[Rig]:
    try:
        with network_rig(["alpha", "beta"]) as built:
            yield built
    except RigUnavailable as exc:
        pytest.skip(f"multi-host rig unavailable: {exc}")
    assert built.teardown_problems == []


def _tcp_probe(rig: Rig, src: str, dst: str, seconds: int = 3) -> subprocess.CompletedProcess[str]:
    """From host ``src`` (over ssh), open a TCP connection to ``dst``'s sshd, read its banner."""
    script = f"exec 3<>/dev/tcp/{rig.hosts[dst].address}/22 && head -c 8 <&3"
    return rig.run(src, ["timeout", str(seconds), "bash", "-c", script], timeout=seconds + 20)


def _read_line(stream: IO[bytes], timeout: float) -> bytes:
    """What arrives on ``stream`` up to a newline, or before ``timeout`` seconds pass."""
    data = b""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                break
            chunk = os.read(stream.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data


def _pids_mentioning(text: str) -> list[int]:
    proc = subprocess.run(["pgrep", "-f", text], capture_output=True, text=True, timeout=10,
                          check=False)
    return [int(pid) for pid in proc.stdout.split()]


def _rig_resources(rig: Rig) -> dict[str, list[str]]:
    return {"netns": [h.netns for h in rig.hosts.values()],
            "links": [rig.bridge, *(h.veth_host_side for h in rig.hosts.values())],
            "dir": sorted({str(rig.workdir), str(rig.control_dir)})}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped


def _leftovers(resources: dict[str, list[str]], pids: Sequence[int] = ()) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10,
                           check=True).stdout.split()
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           timeout=10, check=True).stdout
    link_names = {line.split(":")[1].strip().split("@")[0] for line in links.splitlines()}
    left = [f"netns {n}" for n in resources["netns"] if n in netns]
    left += [f"link {n}" for n in resources["links"] if n in link_names]
    for workdir in resources["dir"]:
        if Path(workdir).exists():
            left.append(f"directory {workdir}")
        left += [f"process {pid} using {workdir}" for pid in _pids_mentioning(workdir + "/")]
    left += [f"process {pid}" for pid in pids if _alive(pid)]
    return left


# --- hosts ----------------------------------------------------------------------------------


def test_each_host_is_its_own_machine(rig: Rig) -> None:
    root_netns = os.readlink("/proc/self/ns/net")
    for host in rig.hosts.values():
        out = rig.run(host.name, ["sh", "-c", "hostname -I; echo --; ip -4 -o addr show; "
                                  "echo --; ip -4 route show; echo --; readlink /proc/self/ns/net"],
                      check=True).stdout
        hostname_i, addrs, routes, netns = out.split("--\n")
        assert hostname_i.split() == [host.address]
        assert f"inet {host.address}/{rig.subnet.prefixlen}" in addrs
        assert all(other.address not in addrs for other in rig.hosts.values() if other != host)
        assert "default" not in routes  # a host reaches the rig subnet and nothing else
        # the command really ran inside the host's namespace, not the root one
        ns_inode = os.stat(f"/run/netns/{host.netns}").st_ino
        assert netns.strip() == f"net:[{ns_inode}]" != root_netns


def test_addresses_follow_the_plan(rig: Rig) -> None:
    assert [h.address for h in rig.hosts.values()] == [str(rig.subnet[11]), str(rig.subnet[12])]
    assert rig.gateway == str(rig.subnet[1])
    assert str(rig.subnet) in rigmod.CANDIDATE_SUBNETS
    # reachable from the test process (root namespace) over the bridge, as libpq would
    for host in rig.hosts.values():
        with socket.create_connection((host.address, 22), timeout=5) as conn:
            assert conn.recv(8) == b"SSH-2.0-"


def test_remote_argv_is_quoted(rig: Rig) -> None:
    out = rig.run("alpha", ["printf", "%s|", "a b", "$HOME", "it's", "-x"], check=True).stdout
    assert out == "a b|$HOME|it's|-x|"
    assert rig.run("beta", ["cat"], input="via stdin\n", check=True).stdout == "via stdin\n"
    assert rig.run("beta", ["sh", "-c", "exit 3"]).returncode == 3
    with pytest.raises(KeyError, match="no host 'gamma'"):
        rig.ssh_argv("gamma", "true")
    argv = rig.netns_exec_argv("beta", ["cat", "/proc/self/net/dev"])
    assert "eth0" in subprocess.run(argv, capture_output=True, text=True, timeout=10,
                                    check=True).stdout


def test_ssh_files_are_private_and_host_keys_checked(rig: Rig) -> None:
    assert rig.workdir.stat().st_mode & 0o777 == 0o711  # crossed by sshd as other users
    assert (rig.workdir / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (rig.workdir / "authorized_keys").stat().st_mode & 0o777 == 0o644
    config = rig.ssh_config.read_text()
    for host in rig.hosts.values():
        assert f"Host {host.name}\n    HostName {host.address}\n" in config
    known = (rig.workdir / "known_hosts").read_text().splitlines()
    assert [line.split()[0] for line in known] == [h.address for h in rig.hosts.values()]
    # without the rig's known_hosts (and no master to reuse) ssh refuses the host
    argv = rig.ssh_argv("alpha", "true")
    argv[1:1] = ["-o", "UserKnownHostsFile=/dev/null", "-o", "ControlPath=none"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 255
    assert "Host key verification failed" in proc.stderr


# --- network --------------------------------------------------------------------------------


def test_hosts_reach_each_other_and_cut_restore(rig: Rig) -> None:
    assert _tcp_probe(rig, "alpha", "beta").stdout == "SSH-2.0-"
    assert _tcp_probe(rig, "beta", "alpha").stdout == "SSH-2.0-"
    rig.cut("beta")
    try:
        assert rig.is_cut("beta")
        started = time.monotonic()
        probe = _tcp_probe(rig, "alpha", "beta", seconds=3)
        assert probe.returncode != 0 and probe.stdout == ""
        assert time.monotonic() - started < 15
        with pytest.raises(OSError):  # noqa: PT011 - timeout or "no route to host"
            socket.create_connection((rig.hosts["beta"].address, 22), timeout=2).close()
        assert rig.run("alpha", ["true"], timeout=10).returncode == 0  # the others are fine
    finally:
        rig.restore("beta")
    assert not rig.is_cut("beta")
    deadline = time.monotonic() + 15
    while (probe := _tcp_probe(rig, "alpha", "beta")).returncode != 0:
        assert time.monotonic() < deadline, probe
        time.sleep(0.2)
    assert probe.stdout == "SSH-2.0-"
    assert rig.run("beta", ["true"], timeout=30).returncode == 0


def test_cut_stalls_an_established_connection(rig: Rig) -> None:
    proc = subprocess.Popen(rig.ssh_argv("beta", "cat"), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"one\n")
        assert _read_line(proc.stdout, 10) == b"one\n"
        rig.cut("beta")
        try:
            proc.stdin.write(b"two\n")
            # meanwhile a new ssh command fails (ConnectTimeout), it does not hang
            started = time.monotonic()
            assert rig.run("beta", ["true"], timeout=30).returncode == 255
            assert time.monotonic() - started < 15
            assert _read_line(proc.stdout, 0.5) == b""  # no packet got through, no reset
            assert proc.poll() is None
        finally:
            rig.restore("beta")
        # TCP retransmits: the connection survives the cut and the line arrives
        assert _read_line(proc.stdout, 30) == b"two\n"
        started = time.monotonic()
        assert rig.run("beta", ["true"], timeout=30).returncode == 0
        assert time.monotonic() - started < 5
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# --- teardown -------------------------------------------------------------------------------


def test_teardown_leaves_nothing(tmp_path: Path) -> None:
    # a base_dir too long for ssh control sockets: they go to a directory of their own
    base = tmp_path / ("long-" * 10)
    base.mkdir()
    with network_rig(["one", "two", "three"], base_dir=base) as rig:
        assert rig.workdir.parent == base and rig.control_dir.parent != base
        resources = _rig_resources(rig)
        # a daemon left running on a host, and an ssh session still open when the body ends
        daemon = int(rig.run("one", ["sh", "-c", "nohup sleep 600 >/dev/null 2>&1 & echo $!"],
                             check=True).stdout)
        session = subprocess.Popen(rig.ssh_argv("two", "sleep", "600"),
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        sshds = _pids_mentioning(str(rig.workdir) + "/hosts/")
        masters = _pids_mentioning(str(rig.control_dir) + "/cm-")
        assert len(sshds) == 3 and len(masters) == 3
        pids = [daemon, session.pid, *sshds, *masters]
        assert _leftovers(resources, pids) != []
    assert session.wait(timeout=10) is not None
    assert rig.teardown_problems == []
    assert _leftovers(resources, pids) == []
    assert list(base.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_teardown_when_the_body_raises(error: type[BaseException]) -> None:
    built: list[Rig] = []

    def body() -> None:
        with network_rig(["x", "y"]) as rig:
            built.append(rig)
            assert rig.run("x", ["true"]).returncode == 0
            raise error("boom")

    with pytest.raises(error, match="boom"):
        body()
    assert built[0].teardown_problems == []
    assert _leftovers(_rig_resources(built[0])) == []


def test_failed_build_is_undone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Setup failing half-way (sshds started) undoes what it did; a long base_dir is fine."""
    built: list[Rig] = []

    def fail(rig: Rig, *args: object) -> None:
        built.append(rig)
        raise RigError("injected failure")

    monkeypatch.setattr(rigmod, "_wait_ready", fail)
    base = tmp_path / ("long-" * 10)
    base.mkdir()
    control_dirs = set(Path("/tmp").glob("pgscm-*"))
    with pytest.raises(RigError, match="injected failure"), network_rig(["p", "q"], base_dir=base):
        pytest.fail("not reached")
    assert list(base.iterdir()) == []
    assert set(Path("/tmp").glob("pgscm-*")) == control_dirs
    assert _leftovers(_rig_resources(built[0])) == []


def test_rig_of_a_killed_process_is_swept(tmp_path: Path) -> None:
    """A process killed without teardown (SIGKILL, CI timeout) leaves a rig behind; the next
    rig removes it."""
    code = ("import sys, time\n"
            "from tests.multihost.rig import network_rig\n"
            "with network_rig(['orphan']) as rig:\n"
            "    print(rig.bridge, rig.hosts['orphan'].netns, rig.hosts['orphan'].veth_host_side,"
            " rig.workdir, flush=True)\n"
            "    time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        bridge, netns, veth, workdir = proc.stdout.readline().split()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    resources = {"netns": [netns], "links": [bridge, veth], "dir": [workdir]}
    assert len(_leftovers(resources)) >= 4  # netns, bridge, veth, directory, its sshd
    with network_rig(["sweeper"]):
        pass
    assert _leftovers(resources) == []


def test_bad_names_are_refused() -> None:
    for names in ([], ["Alpha"], ["a b"], ["a", "a"], ["-a"], ["x" * 40]):
        with pytest.raises(ValueError), network_rig(names):  # noqa: PT011
            pass
    with pytest.raises(TypeError), network_rig("alpha"):
        pass
