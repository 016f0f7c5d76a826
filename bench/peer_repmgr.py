"""repmgr 5 (Debian's postgresql-15-repmgr) building a primary + 2 standbys on loopback, and
its planned switchover (``repmgr standby switchover --siblings-follow``), which reaches the
old primary and the siblings over SSH.

"Hosts" on loopback: node i has its server on 127.0.0.i and its own sshd on 127.0.0.i
(private, started here, keys made here). All nodes share this machine's file system, so each
sshd runs a small ``ForceCommand`` wrapper that points the remote ``repmgr -f`` at its own
node's configuration file (repmgr sends the caller's path). No repmgrd (a switchover does not
need it). The ssh login is root (Debian's postgres account is locked, which sshd refuses
without PAM); the wrapper runs the command as postgres. ``reuse=True`` adds ssh connection
reuse (ControlMaster, ControlPersist) to ``ssh_options``: the tuned setting; without it,
repmgr's defaults.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from peers import PG_BIN, Peers, Watch, dsn, free_port, initdb, lost, streaming_to, wait, writing

SSHD = "/usr/sbin/sshd"


class Repmgr:
    """Three repmgr nodes; ``clone_times`` holds each standby clone's seconds."""

    def __init__(self, p: Peers) -> None:
        self.p = p
        self.ports = {i: free_port() for i in (1, 2, 3)}
        self.ssh_port = free_port()
        self.key = p.dir / "id_ed25519"
        self.clone_times: list[float] = []
        self.primary = 1
        self.reuse = False

    def address(self, i: int) -> str:
        return f"127.0.0.{i}"

    def conf(self, i: int) -> Path:
        return self.p.dir / f"node{i}.conf"

    def write_conf(self, i: int) -> None:
        data = self.p.dir / f"node{i}"
        # -l root: the postgres account is locked (no password), which sshd refuses without
        # PAM; the sshd's wrapper switches to postgres (runuser) for the command.
        ssh = (f"-l root -p {self.ssh_port} -i {self.key} -o UserKnownHostsFile=/dev/null "
               "-o StrictHostKeyChecking=no -o LogLevel=ERROR")
        if self.reuse:
            ssh += (f" -o ControlMaster=auto -o ControlPath={self.p.dir}/cm-%C "
                    "-o ControlPersist=60")
        pg_ctl = PG_BIN / "pg_ctl"
        text = f"""node_id={i}
node_name='node{i}'
conninfo='{dsn(self.ports[i], 'repmgr', 'repmgr', self.address(i))}'
data_directory='{data}'
pg_bindir='{PG_BIN}'
replication_user='repmgr'
use_replication_slots=yes
ssh_options='{ssh}'
service_start_command='{pg_ctl} -D {data} -l {data}.log -w start'
service_stop_command='{pg_ctl} -D {data} -m fast -w stop'
service_restart_command='{pg_ctl} -D {data} -l {data}.log -m fast -w restart'
service_reload_command='{pg_ctl} -D {data} reload'
"""
        self.conf(i).write_text(text)
        os.chown(self.conf(i), self.p.user.pw_uid, self.p.user.pw_gid)

    def _sshd(self) -> None:
        p = self.p
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.key)],
                       check=True, capture_output=True)
        os.chown(self.key, p.user.pw_uid, p.user.pw_gid)
        auth = p.dir / "authorized_keys"
        auth.write_text(Path(f"{self.key}.pub").read_text())
        auth.chmod(0o644)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for i in (1, 2, 3):
            hostkey = p.dir / f"ssh_host_{i}"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                           check=True, capture_output=True)
            wrapper = p.dir / f"wrap{i}.sh"
            wrapper.write_text(
                "#!/bin/bash\n# repmgr sends the caller's -f path: use this node's own file\n"
                f"cmd=$(printf '%s' \"$SSH_ORIGINAL_COMMAND\" | sed -E "
                f"'s#{p.dir}/node[123][.]conf#{p.dir}/node{i}.conf#g')\n"
                'exec runuser -u postgres -- bash -c "$cmd"\n')
            wrapper.chmod(0o755)
            config = p.dir / f"sshd{i}.conf"
            config.write_text(f"ListenAddress {self.address(i)}:{self.ssh_port}\n"
                              f"HostKey {hostkey}\nPidFile {p.dir}/sshd{i}.pid\n"
                              f"AuthorizedKeysFile {auth}\nPasswordAuthentication no\n"
                              "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                              "UseDNS no\nPrintMotd no\nMaxSessions 64\nSetEnv SHLVL=1\n"
                              f"ForceCommand {wrapper}\n")
            p.spawn([SSHD, "-D", "-e", "-f", str(config)], p.dir / f"sshd{i}.log", user=False)

    def build(self) -> None:
        p = self.p
        self._sshd()
        for i in (1, 2, 3):
            self.write_conf(i)
        data = initdb(p, "node1", self.ports[1], f"listen_addresses = '{self.address(1)}'\n")
        with open(data / "pg_hba.conf", "a") as f:
            f.write("host all all 127.0.0.0/8 trust\nhost replication all 127.0.0.0/8 trust\n")
        p.run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", f"{data}.log", "-w", "start"])
        psql = [str(PG_BIN / "psql"), dsn(self.ports[1], host=self.address(1)), "-qAtc"]
        p.run([*psql, "CREATE USER repmgr SUPERUSER REPLICATION"])
        p.run([*psql, "CREATE DATABASE repmgr OWNER repmgr"])
        p.run([*psql, "CREATE TABLE acked (id int PRIMARY KEY)"])
        p.run([str(PG_BIN / "repmgr"), "-f", str(self.conf(1)), "primary", "register"])
        for i in (2, 3):
            self.clone(i)

    def clone(self, i: int) -> None:
        """``repmgr standby clone`` + start + until streaming (timed), then register."""
        p = self.p
        data = p.dir / f"node{i}"
        p.datadirs.append(data)
        started = time.perf_counter()
        p.run([str(PG_BIN / "repmgr"), "-h", self.address(1), "-p", str(self.ports[1]),
               "-U", "repmgr", "-d", "repmgr", "-f", str(self.conf(i)), "standby", "clone",
               "--fast-checkpoint"], timeout=600)
        with open(data / "postgresql.auto.conf", "a") as f:
            f.write(f"port = {self.ports[i]}\nlisten_addresses = '{self.address(i)}'\n")
        p.run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", f"{data}.log", "-w", "start"])
        before = i - 1
        wait(lambda: self.streaming(1) >= before, 60, f"node{i} streaming")
        self.clone_times.append(time.perf_counter() - started)
        p.run([str(PG_BIN / "repmgr"), "-f", str(self.conf(i)), "standby", "register"])

    def streaming(self, i: int) -> int:
        return streaming_to(self.ports[i], self.address(i))

    def switchover(self) -> dict[str, float | None]:
        """Switch over to the next node; seconds to writable, all streaming, return."""
        target = self.primary % 3 + 1
        old = self.primary
        with writing(self.ports[old], self.address(old)) as acked:
            watch = Watch(self.ports[target], 2, host=self.address(target))
            started = time.perf_counter()
            self.p.run([str(PG_BIN / "repmgr"), "-f", str(self.conf(target)), "standby",
                        "switchover", "--siblings-follow"], timeout=300)
            returned = time.perf_counter() - started
            watch.join()
        self.primary = target
        missing = lost(self.ports[target], acked, self.address(target))
        return {"writable": watch.writable, "streaming": watch.streaming,
                "returns": returned, "lost": float(missing)}
