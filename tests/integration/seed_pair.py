"""The seed's pair, built by hand as its tutorial does (no pgstream in the making): initdb;
``postgresql.conf`` edits; a ``host replication`` line; ``CREATE USER repuser REPLICATION``
with a password; ``pg_create_physical_replication_slot('r1', true)``; ``pg_basebackup -R -S r1
-X stream``; start. ``application_name`` stays ``walreceiver``; the password given to
pg_basebackup ends up in the standby's ``primary_conninfo``, as ``-R`` writes it."""

from __future__ import annotations

from pathlib import Path

import attrs
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from pgstream.hosts.service import PgCtlService
from pgstream.hosts.wait import wait_for
from pgstream.ops.sandbox.servers import free_port
from pgstream.render import commands

from .conftest import Rig

PASSWORD = "seed pw'1"


@attrs.frozen
class SeedPair:
    primary: PgCtlService
    standby: PgCtlService
    primary_port: int
    standby_port: int
    socket_dir: Path

    def conninfo(self, port: int) -> str:
        """The administrator's connection: the Unix socket (local trust, as initdb left it)."""
        return make_conninfo("", host=str(self.socket_dir), port=port, user="postgres",
                             dbname="postgres")


def _conf(rig: Rig, svc: PgCtlService, lines: dict[str, str]) -> None:
    path = svc.data_dir / "postgresql.conf"
    text = "".join(f"{k} = '{v}'\n" for k, v in lines.items())
    rig.host.append_text(path, text, owner=rig.user)


def _own_tool(rig: Rig, name: str) -> Path:
    """The server's own client program, as a DBA following the seed has it. The matrix's
    servers of 10 to 17 come without client tools, and a newer ``pg_basebackup -R`` writes
    options an older standby's libpq refuses (docs/versions.md): the seed flow by hand needs
    the server's own major (15 and 18 here)."""
    tool = rig.server.bindir / name
    if not tool.exists():
        pytest.skip(f"the seed's flow by hand needs {name} of PostgreSQL "
                    f"{rig.server.version.major} itself, which {rig.server.bindir} lacks")
    return tool


def _psql(rig: Rig, port: int, statement: str) -> None:
    psql = _own_tool(rig, "psql")
    rig.host.run((str(psql), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", str(rig.socket_dir()),
                  "-p",
                  str(port), "-U", "postgres", "-d", "postgres", "-c", statement),
                 user=rig.user, what="psql")


def standby_by_hand(rig: Rig, name: str, source_port: int, slot: str) -> tuple[PgCtlService,
                                                                              int]:
    """``pg_basebackup -R -S slot -X stream`` from ``source_port``, its own port, started."""
    port = free_port(rig.ports)
    svc = rig.service(name)
    env = {"PGPASSWORD": PASSWORD}
    rig.host.run((str(_own_tool(rig, "pg_basebackup")), "-h", "127.0.0.1", "-p",
                  str(source_port), "-U", "repuser", "-D", str(svc.data_dir), "-R", "-S", slot,
                  "-X", "stream"), user=rig.user, env=env, what="pg_basebackup")
    _conf(rig, svc, {"port": str(port)})
    svc.start()
    wait_for(lambda: _streaming(rig, source_port, slot), timeout=60,
             what=f"{name} to stream through {slot}")
    return svc, port


def _streaming(rig: Rig, port: int, slot: str) -> bool:
    conninfo = make_conninfo("", host=str(rig.socket_dir()), port=port, user="postgres",
                             dbname="postgres")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                           (slot,)).fetchone()
    return bool(row and row[0])


def seed_pair(rig: Rig) -> SeedPair:
    version = rig.server.version
    port = free_port(rig.ports)
    svc = rig.service("seedprimary")
    rig.host.run(commands.initdb(rig.server.bindir, svc.data_dir, superuser="postgres"),
                 user=rig.user, what="initdb")
    keep = "wal_keep_size" if version.adapter.has("setting", "wal_keep_size") \
        else "wal_keep_segments"
    _conf(rig, svc, {"listen_addresses": "127.0.0.1", "port": str(port), "wal_level": "replica",
                     "max_wal_senders": "8", keep: "100" if keep == "wal_keep_segments"
                     else "1600MB", "max_replication_slots": "8", "hot_standby": "on",
                     "unix_socket_directories": str(rig.socket_dir()), "fsync": "off"})
    method = "scram-sha-256" if version.adapter.supports("scram") else "md5"
    rig.host.append_text(svc.data_dir / "pg_hba.conf",
                         f"host replication repuser 127.0.0.1/32 {method}\n", owner=rig.user)
    svc.start()
    quoted = PASSWORD.replace("'", "''")
    _psql(rig, port, f"CREATE USER repuser REPLICATION PASSWORD '{quoted}'")
    _psql(rig, port, "SELECT pg_create_physical_replication_slot('r1', true)")
    standby, standby_port = standby_by_hand(rig, "seedstandby", port, "r1")
    return SeedPair(svc, standby, port, standby_port, rig.socket_dir())


def hba_text(pair: SeedPair) -> str:
    return Path(pair.primary.data_dir / "pg_hba.conf").read_text()
