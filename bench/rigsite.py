"""A delayed multi-host site for the benchmarks: the rig's hosts (network namespaces with sshd,
tests/multihost/rig.py) with a delay line in front of each host's sshd and PostgreSQL port,
and PostgreSQL servers on them.

Inside each host's namespace a ``DelayProcess`` listens on the host's own address, port
``SSH_PORT`` (to its sshd on 22) and ``PG_PORT`` (to its server on 5432). Everything pgstream
does goes through those ports: its ssh commands (a separate ssh_config whose ``Port`` is the
delayed one), its SQL (node conninfos), and the servers' replication connections (the
cluster's ``addresses``). With every link at X: this machine to a host is X, host to host 2X.
A cut (``rig.cut``) unplugs the host's veth: the delayed ports go silent with it.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from psycopg.conninfo import make_conninfo

from pgstream import Cluster, Primary, ReplicationAuth, Standby
from pgstream.facts.version import ServerVersion
from pgstream.hosts.service import PgCtlService
from pgstream.hosts.ssh import SshHost
from pgstream.render.config import ConfigRenderer
from tests.multihost.delay import DelayProcess, Route, measure_rtt
from tests.multihost.rig import Rig, network_rig

SSH_PORT = 1022
PG_PORT = 15432
LIFETIME = 3 * 3600.0


def debian_bindir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: ServerVersion.parse(p.parent.parent.name).num)
    if not found:
        raise SystemExit("needs a Debian-packaged PostgreSQL (/usr/lib/postgresql/*/bin)")
    return found[-1].parent


class Site:
    """The rig, its delay lines, a delayed ssh_config, and the servers made on it."""

    def __init__(self, rig: Rig, workdir: Path) -> None:
        self.rig, self.workdir = rig, workdir
        self.bindir = debian_bindir()
        self.version = ServerVersion.parse(self.bindir.parent.name)
        self.lines: dict[str, DelayProcess] = {}
        self.services: list[PgCtlService] = []
        self.ssh_config = rig.workdir / "ssh_config_delayed"
        self.rtt = 0.0

    # -- delay
    def start_lines(self) -> None:
        links = {h.address: 0.0 for h in self.rig.hosts.values()}
        for name, host in self.rig.hosts.items():
            routes = [Route(f"{name}:ssh", (host.address, SSH_PORT), (host.address, 22)),
                      Route(f"{name}:pg", (host.address, PG_PORT), (host.address, 5432))]
            self.lines[name] = DelayProcess(routes, links=links, lifetime=LIFETIME,
                                            prefix=self.rig.netns_exec_argv(name, [])).start()
        text = self.rig.ssh_config.read_text()
        for host in self.rig.hosts.values():
            text = text.replace(f"    HostName {host.address}\n    Port 22\n",
                                f"    HostName {host.address}\n    Port {SSH_PORT}\n"
                                f"    HostKeyAlias {host.address}\n")
        text = re.sub(r"ControlPath (\S+)/cm-%C", r"ControlPath \1/dl-%C", text)
        self.ssh_config.write_text(text)
        self.ssh_config.chmod(0o600)

    def set_rtt(self, seconds: float) -> None:
        """Every link at a round trip of ``seconds``."""
        for line in self.lines.values():
            line.set_all(seconds)
        self.rtt = seconds

    def measure(self, name: str, source: str | None = None) -> dict[str, float]:
        """Measured round trip to ``name``'s delayed PostgreSQL port, from this machine or
        from host ``source`` (run in its namespace): connect and ping, in seconds."""
        address = self.rig.host(name).address
        if source is None:
            connect, trip = measure_rtt((address, PG_PORT))
        else:
            out = subprocess.run(self.rig.netns_exec_argv(source, [
                shutil.which("python3") or "python3",
                str(Path(__file__).resolve().parents[1] / "tests/multihost/delay.py"),
                "--measure", address, str(PG_PORT)]), capture_output=True, text=True,
                check=True, timeout=60)
            connect, trip = json.loads(out.stdout)
        return {"connect": connect, "ping": trip}

    # -- servers
    def host(self, name: str) -> SshHost:
        return SshHost(name, ssh_config=self.ssh_config, login="root")

    def conninfo(self, name: str) -> str:
        return make_conninfo("", host=self.rig.host(name).address, port=PG_PORT,
                             user="postgres", dbname="postgres", connect_timeout=5)

    def _service(self, name: str) -> PgCtlService:
        host = self.host(name)
        user = host.lookup_user("postgres")
        base = self.workdir / name
        if not host.exists(base):
            host.make_dir(base, mode=0o700, owner=user)
        svc = PgCtlService(host, self.bindir, base / "data", user, base / "server.log",
                           version=self.version)
        self.services.append(svc)
        return svc

    def cluster(self, names: list[str], settings: str = "") -> Cluster:
        """A primary on ``names[0]`` and a standby on each other host, set up by pgstream
        through the delayed ports (at the current delay)."""
        first = names[0]
        svc = self._service(first)
        host, address = svc.host, self.rig.host(first).address
        host.run((str(self.bindir / "initdb"), "-D", str(svc.data_dir), "-U", "postgres",
                  "--auth-local", "trust", "--auth-host", "scram-sha-256", "-N"),
                 user=svc.user, what="initdb")
        own = (f"port = 5432\nlisten_addresses = '{address}'\n"
               f"unix_socket_directories = '{svc.data_dir.parent}'\nfsync = off\n"
               "max_wal_senders = 30\nmax_replication_slots = 30\n"
               "wal_receiver_status_interval = '1s'\n" + settings)
        host.append_text(svc.data_dir / "postgresql.auto.conf", own, owner=svc.user)
        host.append_text(svc.data_dir / "pg_hba.conf",
                         f"host all postgres {self.rig.subnet} trust\n", owner=svc.user)
        svc.start()
        primary = Primary(first, self.conninfo(first), host=host, data_dir=svc.data_dir,
                          service=svc, os_user=svc.user)
        standbys, node_settings = [], {}
        for name in names[1:]:
            s = self._service(name)
            standbys.append(Standby(name, self.conninfo(name), host=s.host,
                                    data_dir=s.data_dir, service=s, os_user=s.user))
            node_settings[name] = {"listen_addresses": self.rig.host(name).address,
                                   "unix_socket_directories": str(s.data_dir.parent)}
        node_settings[first] = {"listen_addresses": address,
                                "unix_socket_directories": str(svc.data_dir.parent)}
        addresses = {n: (self.rig.host(n).address, PG_PORT) for n in names}
        # pgstream's defaults (max_wal_senders 10) cannot clone 8 standbys at once (two
        # walsenders each with -X stream): more, as a deployment of that size would set.
        wanted = ConfigRenderer(self.version).primary_settings(
            listen_addresses=address, max_wal_senders=30, max_replication_slots=30)
        cluster = Cluster(primary, standbys, auth=ReplicationAuth("repuser", "bench pw"),
                          settings=wanted,
                          primary_address=addresses[first],
                          # Through the delay line, a server sees connections come from its
                          # own address (the line's side of the host).
                          hba_addresses=[self.rig.host(n).address for n in names],
                          node_settings=node_settings, addresses=addresses)
        cluster.setup_plan().apply()
        return cluster

    def stop(self) -> None:
        for svc in self.services:
            try:
                if svc.running():
                    svc.stop("immediate")
            except Exception:  # noqa: BLE001 - cleanup goes on
                with contextlib.suppress(Exception):
                    svc.kill()
        for name in self.rig.hosts:
            subprocess.run(["ssh", "-F", str(self.ssh_config), "-O", "exit", name],
                           capture_output=True, timeout=10, check=False)
        for line in self.lines.values():
            line.stop()


@contextlib.contextmanager
def site(names: list[str]) -> Iterator[Site]:
    """A rig with these hosts, its delay lines started (at 0), torn down at the end."""
    workdir = Path(tempfile.mkdtemp(prefix="pgstream-bench-mh-"))
    workdir.chmod(0o755)
    try:
        with network_rig(names) as rig:
            made = Site(rig, workdir)
            try:
                made.start_lines()
                yield made
            finally:
                made.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
