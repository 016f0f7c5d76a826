"""Fixtures for tests against real servers: directories the server user owns, and servers
started by hand (the "existing servers" pgstream is pointed at), always stopped and removed."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from psycopg.conninfo import make_conninfo

from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import LocalHost, OsUser, server_user
from pgstream.hosts.service import PgCtlService
from pgstream.nodes.node import Primary, Standby
from pgstream.ops.sandbox.servers import free_port
from pgstream.render import commands
from pgstream.render.config import merge_settings


@attrs.define
class Rig:
    """Servers made by hand in one temporary directory, as a DBA would have them."""

    base: Path
    server: Installation
    user: OsUser
    host: LocalHost = attrs.field(factory=LocalHost)
    services: list[PgCtlService] = attrs.field(factory=list)
    ports: set[int] = attrs.field(factory=set)

    def socket_dir(self) -> Path:
        path = self.base / "run"
        if not path.exists():
            self.host.make_dir(path, owner=self.user)
        return path

    def service(self, name: str) -> PgCtlService:
        svc = PgCtlService(self.host, self.server.bindir, self.base / name, self.user,
                           self.base / f"{name}.log")
        self.services.append(svc)
        return svc

    def conninfo(self, port: int) -> str:
        return make_conninfo("", host=str(self.socket_dir()), port=port, user="postgres",
                             dbname="postgres")

    def own_settings(self, name: str, port: int) -> dict[str, str]:
        return {"port": str(port), "unix_socket_directories": str(self.socket_dir()),
                "listen_addresses": "127.0.0.1", "cluster_name": name, "fsync": "off"}

    def existing_primary(self, name: str = "main", **settings: str) -> Primary:
        """initdb + start a server with the given settings, not prepared for replication."""
        port = free_port(self.ports)
        svc = self.service(name)
        self.host.run(commands.initdb(self.server.bindir, svc.data_dir, superuser="postgres"),
                      user=self.user, what="initdb")
        auto = svc.data_dir / "postgresql.auto.conf"
        text = merge_settings(auto.read_text(), {**self.own_settings(name, port), **settings})
        self.host.write_text(auto, text, owner=self.user)
        svc.start()
        return Primary(name, self.conninfo(port), host=self.host, data_dir=svc.data_dir,
                       service=svc, os_user=self.user)

    def future_standby(self, name: str) -> tuple[Standby, dict[str, str]]:
        port = free_port(self.ports)
        svc = self.service(name)
        node = Standby(name, self.conninfo(port), host=self.host, data_dir=svc.data_dir,
                       service=svc, os_user=self.user)
        return node, self.own_settings(name, port)

    def cleanup(self) -> None:
        for svc in self.services:
            if svc.running():
                try:
                    svc.stop("immediate")
                except Exception:  # noqa: BLE001 - cleanup goes on whatever happens
                    svc.kill()
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(pgstream_cache_dir: str) -> str:
    """Every test here, with or without a cluster fixture, uses the session's template cache."""
    return pgstream_cache_dir


@pytest.fixture
def rig(pgstream_server: Installation) -> Iterator[Rig]:
    user = server_user()
    base = Path(tempfile.mkdtemp(prefix="pgstream-rig-"))
    if os.geteuid() == 0:
        os.chown(base, user.uid, user.gid)
    made = Rig(base, pgstream_server, user)
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def empty_dir() -> Iterator[Path]:
    """A temporary directory (for base_dir / bindir arguments), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="pgstream-t-"))
    path.chmod(0o755)  # the server user (postgres, when tests run as root) must enter it
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
