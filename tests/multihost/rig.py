"""A multi-host test rig on one machine: network namespaces on one bridge, one sshd per namespace.

Each "host" is a network namespace with its own IPv4 address on a private bridge in the root
namespace, running its own ``/usr/sbin/sshd``. Tests reach a host only over SSH (the system
``ssh`` client, through a generated ``ssh_config``) or over TCP to its address (libpq), exactly
as they would reach a remote machine. Everything is torn down when the context exits, also when
the body raises or is interrupted.

    with network_rig(["alpha", "beta"]) as rig:
        rig.run("alpha", ["hostname", "-I"]).stdout      # "192.0.2.11 \\n"
        rig.hosts["beta"].address                         # "192.0.2.12"
        rig.cut("beta"); ...; rig.restore("beta")         # partition / heal one host

Addresses: each rig takes a free /26 of the documentation ranges (RFC 5737), in this order:
192.0.2.0/26 (TEST-NET-1), 192.0.2.64/26, ..., 198.51.100.0/26 (TEST-NET-2), ...,
203.0.113.192/26 (TEST-NET-3): twelve rigs at once. The bridge gets the subnet's first address
(``rig.gateway``, 192.0.2.1 for the first) and host ``i`` the subnet's address 11 + i (192.0.2.11,
.12, ...). A subnet is free when no interface address or route of the root namespace overlaps
it, so rig traffic cannot leave the machine through a real interface; when only other rigs hold
the subnets, building waits for one. The namespaces have no default route: hosts reach only the
rig subnet.

Needs root, iproute2 and the openssh-server package (``/usr/sbin/sshd``); otherwise
``network_rig`` raises ``RigUnavailable``. Standard library only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import functools
import ipaddress
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

__all__ = [
    "INSTALL_HINT",
    "Rig",
    "RigError",
    "RigHost",
    "RigUnavailable",
    "network_rig",
    "pid_alive",
    "unavailable_reason",
]

log = logging.getLogger(__name__)

SSHD = Path("/usr/sbin/sshd")
INSTALL_HINT = "apt-get install openssh-server iproute2"
# /26 blocks of the documentation ranges (RFC 5737), in order of preference.
CANDIDATE_SUBNETS = tuple(str(block) for net in ("192.0.2.0/24", "198.51.100.0/24",
                                                 "203.0.113.0/24")
                          for block in ipaddress.IPv4Network(net).subnets(new_prefix=26))
FIRST_HOST_OFFSET = 11
MAX_HOSTS = 50
SSH_PORT = 22

_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,30}\Z")
_SAFE_PATH_RE = re.compile(r"[A-Za-z0-9/._+-]+\Z")
_BRIDGE_PREFIX = "pgsbr"  # + 6 hex = 11 characters (IFNAMSIZ - 1 = 15)
_VETH_PREFIX = "pgsv"  # + 6 hex + host index
_NETNS_PREFIX = "pgs"  # + 6 hex + "-" + host name
_ALIAS_TAG = "pgstream-rig"
_LOCK_FILE = "pgstream-netrig.lock"
# ssh binds the control socket as ControlPath + "." + 16 random characters before renaming
# it; with "cm-%C" (40 hex) that must fit in sun_path (108 bytes with the NUL).
_MAX_WORKDIR_LEN = 107 - len("/cm-") - 40 - 17
_RUN_NETNS = Path("/run/netns")
_SYS_NET = Path("/sys/class/net")


class RigUnavailable(Exception):
    """This machine cannot run the rig (not root, iproute2 or sshd missing, no free subnet)."""


class RigError(RuntimeError):
    """Building or driving the rig failed on a machine that should be able to run it."""


@dataclasses.dataclass(frozen=True)
class RigHost:
    """One host of the rig: a network namespace with one address, reachable over SSH."""

    name: str
    address: str
    netns: str
    veth_host_side: str
    """The root-namespace end of the host's veth pair, a port of the rig bridge."""


def unavailable_reason() -> str | None:
    """Why this machine cannot run the rig, or None if the prerequisites are there."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the multi-host rig needs root (network namespaces, a bridge, sshd)"
    missing = [tool for tool in ("ip", "ssh", "ssh-keygen") if shutil.which(tool) is None]
    if not SSHD.is_file():
        missing.append(str(SSHD))
    if missing:
        return f"the multi-host rig needs {', '.join(missing)}: {INSTALL_HINT}"
    return None


class Rig:
    """The hosts of a running rig and the means to drive them. Made by ``network_rig``."""

    def __init__(self, hosts: dict[str, RigHost], *, ssh_config: Path, workdir: Path,
                 control_dir: Path, bridge: str, subnet: ipaddress.IPv4Network,
                 gateway: str) -> None:
        self.hosts = hosts
        self.ssh_config = ssh_config
        self.workdir = workdir
        """The rig's private directory: keys, configurations, sshd logs (hosts/NAME/sshd.log)."""
        self.control_dir = control_dir
        """Where the ssh control sockets are: ``workdir`` unless its path is too long."""
        self.bridge = bridge
        self.subnet = subnet
        self.gateway = gateway
        """The bridge's address in the root namespace (where the test process runs)."""
        self.teardown_problems: list[str] = []
        """Filled when the rig is torn down: each step that failed (teardown never raises)."""

    def host(self, name: str) -> RigHost:
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"no host {name!r} in this rig (hosts: {', '.join(self.hosts)})"
                           ) from None

    def ssh_argv(self, name: str, *remote_argv: str) -> list[str]:
        """The ``ssh`` command line running ``remote_argv`` (quoted for the remote shell)."""
        self.host(name)
        if not remote_argv:
            raise ValueError("ssh_argv needs a remote command")
        return ["ssh", "-F", str(self.ssh_config), name, "--", shlex.join(remote_argv)]

    def run(self, name: str, argv: Sequence[str], input: str | None = None,
            timeout: float = 30, *, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` on host ``name`` over SSH; output captured as text."""
        return subprocess.run(self.ssh_argv(name, *argv), input=input, capture_output=True,
                              text=True, timeout=timeout, check=check,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def netns_exec_argv(self, name: str, argv: Sequence[str]) -> list[str]:
        """A command line running ``argv`` directly inside the host's namespace (as root,
        bypassing SSH): for rig plumbing, not for the code under test."""
        return ["ip", "netns", "exec", self.host(name).netns, *argv]

    def cut(self, name: str) -> None:
        """Unplug the host: its bridge port goes down. Nothing gets in or out any more; open
        TCP connections stall (no reset, they retransmit), new ones time out.

        The host's ssh control master stops taking new sessions (``ssh -O stop``): sessions
        already open stall with its connection (and resume on ``restore``), new ssh commands
        open a new connection, so they fail after ConnectTimeout (5 s) while the host is cut,
        and after ``restore`` do not wait for the old connection's retransmission backoff.
        """
        _ip("link", "set", self.host(name).veth_host_side, "down")
        subprocess.run(["ssh", "-F", str(self.ssh_config), "-O", "stop", name],
                       capture_output=True, timeout=10, check=False)

    def restore(self, name: str, *, timeout: float = 10) -> None:
        """Plug the host back in and wait until its bridge port forwards again."""
        veth = self.host(name).veth_host_side
        _ip("link", "set", veth, "up")
        deadline = time.monotonic() + timeout
        while not self._forwarding(veth):
            if time.monotonic() > deadline:
                raise RigError(f"{name}: bridge port {veth} not forwarding {timeout} s after "
                               f"restore")
            time.sleep(0.02)

    def is_cut(self, name: str) -> bool:
        return not self._forwarding(self.host(name).veth_host_side)

    @staticmethod
    def _forwarding(veth: str) -> bool:
        try:
            oper = (_SYS_NET / veth / "operstate").read_text().strip()
            state = (_SYS_NET / veth / "brport" / "state").read_text().strip()
        except OSError:
            return False
        return oper == "up" and state == "3"  # BR_STATE_FORWARDING

    def __repr__(self) -> str:
        hosts = ", ".join(f"{h.name}={h.address}" for h in self.hosts.values())
        return f"<Rig {self.bridge} {self.subnet}: {hosts}>"


@contextlib.contextmanager
def network_rig(names: Sequence[str], *, base_dir: Path | None = None,
                subnet: str | None = None, ready_timeout: float = 30,
                subnet_wait: float = 120) -> Iterator[Rig]:
    """Build a rig with one host per name, yield it, and tear everything down afterwards.

    ``base_dir``: where the rig's private directory is made (default: the temp directory).
    ``subnet`` forces a subnet (e.g. "10.99.0.0/24"; nothing on this machine may use it); by
    default the first free /26 of the documentation ranges is taken, waiting up to
    ``subnet_wait`` seconds while other rigs hold them all. ``ready_timeout`` bounds the wait
    for the sshds. Raises ``RigUnavailable`` if the machine cannot do it, ``RigError`` if
    building fails (after undoing what was built).
    """
    names = _check_names(names)
    reason = unavailable_reason()
    if reason is not None:
        raise RigUnavailable(reason)
    cleanup = _Cleanup()
    problems: list[str] = []
    try:
        rig = _build(names, base_dir, subnet, ready_timeout, subnet_wait, cleanup)
        rig.teardown_problems = problems
        yield rig
    except BaseException as exc:
        cleanup.run(problems)  # never raises: the original error is what the caller sees
        for problem in problems:
            exc.add_note(f"rig teardown: {problem}")
        raise
    else:
        interrupted = cleanup.run(problems)
        if interrupted is not None:
            raise interrupted


# --- building -------------------------------------------------------------------------------


def _check_names(names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("names must be a sequence of host names, not one string")
    result = list(names)
    if not 1 <= len(result) <= MAX_HOSTS:
        raise ValueError(f"a rig has 1 to {MAX_HOSTS} hosts, not {len(result)}")
    for name in result:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ValueError(f"bad host name {name!r}: lower-case letter, then up to 30 of "
                             f"a-z 0-9 _ -")
    if len(set(result)) != len(result):
        raise ValueError(f"duplicate host names in {result}")
    return result


def _build(names: list[str], base_dir: Path | None, subnet: str | None, ready_timeout: float,
           subnet_wait: float, cleanup: _Cleanup) -> Rig:
    token = secrets.token_hex(3)
    bridge = f"{_BRIDGE_PREFIX}{token}"

    parent = Path(base_dir) if base_dir is not None else Path(tempfile.gettempdir())
    workdir = Path(tempfile.mkdtemp(prefix="pgsrig-", dir=parent)).resolve()
    cleanup.add(f"remove {workdir}", lambda: shutil.rmtree(workdir, ignore_errors=False))
    # Last resort before the directory goes: any process still naming it (ssh masters, sshd).
    os.chmod(workdir, 0o700)
    if not _SAFE_PATH_RE.match(str(workdir)):
        raise RigError(f"rig directory {workdir}: only A-Z a-z 0-9 / . _ + - please (it is "
                       f"written unquoted into ssh and sshd configuration)")
    control_dir = _control_dir(workdir, cleanup)
    # Last resort before the directories go: processes still naming them (ssh clients and
    # masters, whose title is "ssh: <ControlPath> [mux]"; sshd listeners).
    cleanup.add("kill processes using the rig directories",
                lambda: _kill_using(workdir, control_dir))

    client_key = workdir / "id_ed25519"
    host_dirs = {name: workdir / "hosts" / name for name in names}
    for path in host_dirs.values():
        path.mkdir(parents=True, mode=0o700)
    _keygen([client_key, *(d / "ssh_host_ed25519_key" for d in host_dirs.values())])

    deadline = time.monotonic() + subnet_wait
    while True:
        with _global_lock():
            _sweep_stale()
            net = _pick_subnet(subnet, len(names))
            if net is not None:
                gateway = net[1]
                cleanup.add(f"delete bridge {bridge}", lambda: _delete_link(bridge))
                mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
                _ip("link", "add", "name", bridge, "address", mac, "type", "bridge",
                    "forward_delay", "0", "stp_state", "0")
                # Who owns it: a later rig removes it if this process dies without teardown.
                _ip("link", "set", bridge, "alias", f"{_ALIAS_TAG} pid={os.getpid()} "
                    f"pidns={_pidns()} dir={workdir} ctl={control_dir}")
                _ip("addr", "add", f"{gateway}/{net.prefixlen}", "dev", bridge)
                _ip("link", "set", bridge, "up")
                break
        if time.monotonic() > deadline:
            raise RigError(f"every rig subnet has been taken by other rigs for {subnet_wait} s"
                           f" (ip -br addr show | grep {_BRIDGE_PREFIX})")
        time.sleep(0.5)

    hosts: dict[str, RigHost] = {}
    for index, name in enumerate(names):
        host = RigHost(name=name, address=str(net[FIRST_HOST_OFFSET + index]),
                       netns=f"{_NETNS_PREFIX}{token}-{name}",
                       veth_host_side=f"{_VETH_PREFIX}{token}{index}")
        hosts[name] = host
        _add_host(host, net.prefixlen, bridge, cleanup)

    rig = Rig(hosts, ssh_config=workdir / "ssh_config", workdir=workdir,
              control_dir=control_dir, bridge=bridge, subnet=net, gateway=str(gateway))
    _write_ssh_files(rig, client_key, host_dirs)
    sshds = [_start_sshd(host, host_dirs[host.name], cleanup) for host in hosts.values()]
    # ssh control masters run in the root namespace; closed first, while their sshd is there.
    cleanup.add("close ssh control masters", lambda: _close_masters(rig))
    _wait_ready(rig, sshds, host_dirs, ready_timeout)
    return rig


def _control_dir(workdir: Path, cleanup: _Cleanup) -> Path:
    """Where ssh control sockets go: the rig directory unless its path is too long for one."""
    if len(str(workdir)) <= _MAX_WORKDIR_LEN:
        return workdir
    for parent in (tempfile.gettempdir(), "/tmp"):
        if len(parent) + len("/pgscm-12345678") <= _MAX_WORKDIR_LEN:
            path = Path(tempfile.mkdtemp(prefix="pgscm-", dir=parent))
            cleanup.add(f"remove {path}", functools.partial(shutil.rmtree, path))
            return path
    raise RigError(f"no directory short enough for ssh control sockets: {workdir}")


def _add_host(host: RigHost, prefixlen: int, bridge: str, cleanup: _Cleanup) -> None:
    netns, veth = host.netns, host.veth_host_side
    cleanup.add(f"delete namespace {netns}", lambda: _delete_netns(netns))
    _ip("netns", "add", netns)
    cleanup.add(f"delete veth {veth}", lambda: _delete_link(veth))
    _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    _ip("-n", netns, "link", "set", "lo", "up")
    _ip("-n", netns, "addr", "add", f"{host.address}/{prefixlen}", "dev", "eth0")
    _ip("-n", netns, "link", "set", "eth0", "up")
    _ip("link", "set", veth, "master", bridge, "up")


def _keygen(paths: Iterable[Path]) -> None:
    argvs = [["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
              f"pgstream-rig {path.parent.name}", "-f", str(path)] for path in paths]
    procs = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for argv in argvs]
    failures = []
    for argv, proc in zip(argvs, procs, strict=True):
        out, _ = proc.communicate(timeout=30)
        if proc.returncode != 0:
            failures.append(f"{shlex.join(argv)}: {out.strip()}")
    if failures:
        raise RigError("ssh-keygen failed: " + "; ".join(failures))


def _public_key(private: Path) -> str:
    keytype, blob, *_ = private.with_name(private.name + ".pub").read_text().split()
    return f"{keytype} {blob}"


def _write_ssh_files(rig: Rig, client_key: Path, host_dirs: dict[str, Path]) -> None:
    workdir = rig.workdir
    # sshd reads the keys file as the user logging in: readable by all (a public key) in a
    # directory others may cross but not list, so that accounts other than root log in too.
    _write_private(workdir / "authorized_keys", _public_key(client_key) + "\n")
    os.chmod(workdir / "authorized_keys", 0o644)
    os.chmod(workdir, 0o711)  # noqa: S103 - crossed, not listed; the key files stay 0600
    _write_private(workdir / "known_hosts", "".join(
        f"{host.address} {_public_key(host_dirs[host.name] / 'ssh_host_ed25519_key')}\n"
        for host in rig.hosts.values()))
    blocks = [f"# pgstream multi-host rig {rig.bridge} {rig.subnet}: ssh -F {rig.ssh_config}\n"]
    for host in rig.hosts.values():
        blocks.append(f"""
Host {host.name}
    HostName {host.address}
    Port {SSH_PORT}
    User root
    IdentityFile {client_key}
    IdentitiesOnly yes
    UserKnownHostsFile {workdir}/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    CheckHostIP no
    BatchMode yes
    ConnectTimeout 5
    ConnectionAttempts 1
    AddressFamily inet
    # The post-quantum default (sntrup761x25519) costs ~120 ms a new connection here.
    KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org
    ControlMaster auto
    ControlPath {rig.control_dir}/cm-%C
    ControlPersist 60
    LogLevel ERROR
""")
    _write_private(rig.ssh_config, "".join(blocks))
    for host in rig.hosts.values():
        hdir = host_dirs[host.name]
        _write_private(hdir / "sshd_config", f"""\
# sshd of rig host {host.name} ({host.address}) in network namespace {host.netns}
ListenAddress {host.address}:{SSH_PORT}
AddressFamily inet
HostKey {hdir}/ssh_host_ed25519_key
PidFile {hdir}/sshd.pid
AuthorizedKeysFile {workdir}/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The rig files live under /tmp (world-writable): sshd's path checks would refuse them.
# The rig directory is 0711 and root's, the files 0600 (authorized_keys 0644).
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxSessions 64
MaxStartups 64:30:128
LogLevel INFO
Subsystem sftp internal-sftp
# Debian's bash sources ~/.bashrc for every ssh command unless SHLVL shows it is nested. The
# hosts share this machine's /root, whose .bashrc is the developer's (pyenv init: +150 ms a
# command), not the simulated host's: skip it. Remote PATH is sshd's default.
SetEnv SHLVL=1
""")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _start_sshd(host: RigHost, hdir: Path, cleanup: _Cleanup) -> subprocess.Popen[bytes]:
    # sshd refuses to start without its privilege separation directory (normally made by the
    # package's init script). It is the same for every namespace (one mount namespace).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with open(hdir / "sshd.log", "ab") as logfile:
        proc = subprocess.Popen(["ip", "netns", "exec", host.netns, str(SSHD), "-D", "-e",
                                 "-f", str(hdir / "sshd_config")],
                                stdin=subprocess.DEVNULL, stdout=logfile, stderr=logfile,
                                start_new_session=True)
    cleanup.add(f"stop sshd of {host.name}", lambda: _stop(proc))
    return proc


def _wait_ready(rig: Rig, sshds: list[subprocess.Popen[bytes]], host_dirs: dict[str, Path],
                timeout: float) -> None:
    deadline = time.monotonic() + timeout

    def fail(name: str, what: str) -> RigError:
        logtext = _tail(host_dirs[name] / "sshd.log")
        return RigError(f"rig host {name} ({rig.hosts[name].address}): {what}"
                        + (f"\nsshd log:\n{logtext}" if logtext else ""))

    # 1. every sshd listens (TCP from the root namespace, through the bridge)
    for host, proc in zip(rig.hosts.values(), sshds, strict=True):
        while True:
            if proc.poll() is not None:
                raise fail(host.name, f"sshd exited with status {proc.returncode}")
            try:
                with socket.create_connection((host.address, SSH_PORT), timeout=1):
                    break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise fail(host.name, f"sshd not reachable on port {SSH_PORT}: {exc}"
                               ) from None
                time.sleep(0.02)
    # 2. ssh works (and starts the control masters), all hosts at once
    pending = list(rig.hosts)
    while pending:
        clients = {name: subprocess.Popen(rig.ssh_argv(name, "true"), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True)
                   for name in pending}
        errors = {}
        for name, client in clients.items():
            try:
                _, err = client.communicate(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _stop(client)
                err = "timed out"
            if client.returncode != 0:
                errors[name] = err.strip()
        pending = list(errors)
        if pending and time.monotonic() > deadline:
            name = pending[0]
            raise fail(name, f"`{shlex.join(rig.ssh_argv(name, 'true'))}` failed: "
                       f"{errors[name]}")
        if pending:
            time.sleep(0.2)
    # 3. hosts reach each other (bridged traffic is not filtered, e.g. by br_netfilter rules)
    if len(rig.hosts) > 1:
        first, *others = rig.hosts.values()
        script = "; ".join(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{h.address}/{SSH_PORT}' "
                           f"|| {{ echo {h.name}; exit 1; }}" for h in others)
        probe = subprocess.run(rig.netns_exec_argv(first.name, ["bash", "-c", script]),
                               capture_output=True, text=True, timeout=60, check=False)
        if probe.returncode != 0:
            raise RigError(
                f"rig host {first.name} cannot reach {probe.stdout.strip()} over the bridge "
                f"{rig.bridge}: {probe.stderr.strip()} (firewall on bridged traffic? see "
                f"sysctl net.bridge.bridge-nf-call-iptables and the FORWARD chain)")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --- addresses ------------------------------------------------------------------------------


def _networks_in_use() -> list[tuple[ipaddress.IPv4Network, str]]:
    """IPv4 networks of the root namespace's addresses and routes (all tables), with their
    interface ("" if none)."""
    used: list[tuple[ipaddress.IPv4Network, str]] = []
    for line in _ip("-4", "-o", "addr", "show").stdout.splitlines():
        fields = line.split()
        if "inet" in fields and len(fields) > 1:
            net = ipaddress.IPv4Interface(fields[fields.index("inet") + 1]).network
            used.append((net, fields[1].split("@")[0]))
    route_types = {"unicast", "local", "broadcast", "multicast", "throw", "unreachable",
                   "prohibit", "blackhole", "nat", "anycast"}
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        fields = line.split()
        if fields and fields[0] in route_types:
            fields = fields[1:]
        if not fields or fields[0] == "default":
            continue
        dev = fields[fields.index("dev") + 1] if "dev" in fields[:-1] else ""
        with contextlib.suppress(ValueError):
            used.append((ipaddress.IPv4Network(fields[0], strict=False), dev))
    return used


def _pick_subnet(wanted: str | None, count: int) -> ipaddress.IPv4Network | None:
    """The first free candidate subnet; None if only other rigs hold them (for now)."""
    candidates = [ipaddress.IPv4Network(wanted)] if wanted is not None else [
        ipaddress.IPv4Network(text) for text in CANDIDATE_SUBNETS]
    for net in candidates:
        if net.num_addresses < FIRST_HOST_OFFSET + count + 1:
            raise ValueError(f"subnet {net} is too small for {count} hosts")
    used = _networks_in_use()
    machine = [u for u, dev in used if not dev.startswith(_BRIDGE_PREFIX)]
    rigs = [u for u, dev in used if dev.startswith(_BRIDGE_PREFIX)]
    possible = [net for net in candidates if not any(u.overlaps(net) for u in machine)]
    if not possible:
        raise RigUnavailable(f"no subnet for the rig: this machine uses "
                             f"{', '.join(map(str, candidates))} (interfaces or routes)")
    for net in possible:
        if not any(u.overlaps(net) for u in rigs):
            return net
    return None


# --- plumbing -------------------------------------------------------------------------------


def _ip(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    argv = ["ip", *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RigError(f"`{shlex.join(argv)}` failed: {proc.stderr.strip()}")
    return proc


@contextlib.contextmanager
def _global_lock(timeout: float = 60) -> Iterator[None]:
    """Serialises subnet choice between rigs built at the same time (e.g. pytest-xdist)."""
    lock_dir = Path("/run/lock")
    path = (lock_dir if lock_dir.is_dir() else Path(tempfile.gettempdir())) / _LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RigError(f"rig lock {path} busy for {timeout} s") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _link_exists(name: str) -> bool:
    return (_SYS_NET / name).exists()


def _delete_link(name: str) -> None:
    if _link_exists(name):
        try:
            _ip("link", "del", name)
        except RigError:
            if _link_exists(name):  # else gone meanwhile: its peer's namespace went away
                raise


def _netns_pids(netns: str) -> list[int]:
    """Processes in the namespace (what `ip netns pids` prints), the calling one excepted."""
    try:
        ns = os.stat(_RUN_NETNS / netns)
    except FileNotFoundError:
        return []
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            st = os.stat(entry / "ns" / "net")
        except OSError:
            continue
        if (st.st_ino, st.st_dev) == (ns.st_ino, ns.st_dev):
            pids.append(int(entry.name))
    return pids


def _kill_all(find: Callable[[], list[int]], grace: float = 3) -> None:
    """SIGTERM what ``find`` returns, then SIGKILL what is left; bounded in time."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 3.0)):
        pids = find()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while find() and time.monotonic() < deadline:
            time.sleep(0.02)
    left = find()
    if left:
        raise RigError(f"processes survive SIGKILL: {left}")


def _delete_netns(netns: str) -> None:
    if not (_RUN_NETNS / netns).exists():
        return
    _kill_all(lambda: _netns_pids(netns))
    _ip("netns", "del", netns)


def _pids_using(*paths: Path) -> list[int]:
    """Processes whose command line mentions one of ``paths`` (directories)."""
    needles = {os.fsencode(str(path)) + b"/" for path in paths}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(int(entry.name))
    return found


def _kill_using(*paths: Path) -> None:
    _kill_all(lambda: _pids_using(*paths), grace=1)


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


def _close_masters(rig: Rig) -> None:
    control_dir = rig.control_dir
    if not any(control_dir.glob("cm-*")):
        return
    for name in rig.hosts:
        subprocess.run(["ssh", "-F", str(rig.ssh_config), "-O", "exit", name],
                       capture_output=True, timeout=5, check=False)
    deadline = time.monotonic() + 3
    while any(control_dir.glob("cm-*")) and time.monotonic() < deadline:
        time.sleep(0.02)


def _pidns() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "?"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale() -> None:
    """Remove rigs whose owning process died without tearing down (SIGKILL, CI timeout)."""
    try:
        devices = list(_SYS_NET.iterdir())
    except OSError:
        return
    for dev in devices:
        if not dev.name.startswith(_BRIDGE_PREFIX) or not (dev / "bridge").is_dir():
            continue
        try:
            alias = (dev / "ifalias").read_text().strip()
        except OSError:
            continue
        match = re.fullmatch(rf"{_ALIAS_TAG} pid=(\d+) pidns=(\S+) dir=(\S+) ctl=(\S+)", alias)
        # Only rigs of our own PID namespace: another container sharing this network namespace
        # has its own PIDs (and its own /run/netns).
        if match is None or match[2] != _pidns() or pid_alive(int(match[1])):
            continue
        token = dev.name[len(_BRIDGE_PREFIX):]
        log.warning("removing stale rig %s left by dead process %s", dev.name, match[1])
        try:
            workdir, control_dir = Path(match[3]), Path(match[4])
            if workdir.name.startswith("pgsrig-"):
                _kill_using(workdir, control_dir)
            for link in _SYS_NET.iterdir():
                if link.name.startswith(f"{_VETH_PREFIX}{token}"):
                    _delete_link(link.name)
            for netns in (_RUN_NETNS.iterdir() if _RUN_NETNS.is_dir() else []):
                if netns.name.startswith(f"{_NETNS_PREFIX}{token}-"):
                    _delete_netns(netns.name)
            _delete_link(dev.name)
            for path in (workdir, control_dir):
                if path.name.startswith(("pgsrig-", "pgscm-")) and path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
        except (OSError, RigError, subprocess.SubprocessError) as exc:
            log.warning("could not remove stale rig %s: %s", dev.name, exc)


class _Cleanup:
    """Undo steps, run last-in first-out; each step runs even if an earlier one failed."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], None]]] = []

    def add(self, what: str, step: Callable[[], None]) -> None:
        self._steps.append((what, step))

    def run(self, problems: list[str]) -> BaseException | None:
        """Run every step; record failures in ``problems``. Returns the first interrupt
        (KeyboardInterrupt, SystemExit...) caught meanwhile, for the caller to re-raise."""
        interrupted: BaseException | None = None
        while self._steps:
            what, step = self._steps.pop()
            try:
                step()
            except BaseException as exc:  # noqa: BLE001 - teardown goes on, whatever happens
                if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
                    continue  # already gone
                problems.append(f"{what}: {exc!r}")
                log.warning("rig teardown: %s failed: %r", what, exc)
                if not isinstance(exc, Exception) and interrupted is None:
                    interrupted = exc
        return interrupted
