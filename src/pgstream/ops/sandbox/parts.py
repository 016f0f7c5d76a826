"""The pieces of a sandbox cluster, before :meth:`pgstream.Cluster.sandbox` sets it up:
programs chosen, inputs checked, the primary initialised, the standbys' nodes named."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from pgstream.errors import BinaryNotFound, InvalidInput, NotAvailable
from pgstream.facts import compat
from pgstream.facts.identifiers import Secret
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import server_user
from pgstream.nodes.node import Primary, Standby
from pgstream.ops.assemble import conninfo_port
from pgstream.ops.plan import Plan
from pgstream.ops.sandbox.servers import Sandbox, replication_limits
from pgstream.ops.sandbox.settings import check_settings
from pgstream.ops.sandbox.setup import shared_backup_plan
from pgstream.ops.setup import ReplicationAuth
from pgstream.render.config import ConfigRenderer

MAX_SANDBOX_STANDBYS = 16


@attrs.frozen
class SandboxParts:
    """A sandbox's initialised primary, future standbys and what setting them up needs."""

    box: Sandbox
    primary: Primary
    standbys: tuple[Standby, ...]
    auth: ReplicationAuth
    settings: dict[str, str]
    node_settings: dict[str, dict[str, str]]
    addresses: dict[str, tuple[str, int]]
    server: Installation
    client: Installation

    def setup_plan(self, plan: Plan, timeout: float) -> Plan:
        """The cluster's setup ``plan`` with one base backup, copied for the other standbys
        (:func:`pgstream.ops.sandbox.setup.shared_backup_plan`)."""
        dirs = {s.name: Path(s.data_dir) for s in self.standbys if s.data_dir is not None}
        return shared_backup_plan(plan, primary=self.primary.name, data_dirs=dirs,
                                  host=self.box.host, user=self.box.user, timeout=timeout)

    @contextlib.contextmanager
    def removed_on_error(self) -> Iterator[None]:
        """Destroy the sandbox (every server stopped, its directory removed) when the
        ``with`` block raises, KeyboardInterrupt included; the error propagates."""
        try:
            yield
        except BaseException:
            self.box.destroy()
            raise


def check_standby_count(standbys: object) -> int:
    """``standbys`` as a sandbox takes it: an integer from 0 to :data:`MAX_SANDBOX_STANDBYS`
    (:class:`~pgstream.errors.InvalidInput` otherwise)."""
    if isinstance(standbys, bool) or not isinstance(standbys, int) or not (
            0 <= standbys <= MAX_SANDBOX_STANDBYS):
        raise InvalidInput(f"standbys must be an integer from 0 to {MAX_SANDBOX_STANDBYS}, "
                           f"not {standbys!r}")
    return standbys


def sandbox_parts(standbys: int, *, bindir: str | Path | None, base_dir: str | Path | None,
                  run_as: str | None, template: bool, password: str | Secret | None,
                  client_bindir: str | Path | None, settings: Mapping[str, str] | None,
                  wal_segsize_mb: int | None) -> SandboxParts:
    """Check the inputs, pick the programs, create the sandbox and its primary (removed
    again on failure), for :meth:`pgstream.Cluster.sandbox`.

    ``standbys``: how many (0 to :data:`MAX_SANDBOX_STANDBYS`). Server programs come from
    ``bindir``, ``$PGSTREAM_BINDIR`` or discovery (see :mod:`pgstream.hosts.binaries`);
    ``pg_basebackup`` from the same place or a newer one. As root, servers run as ``run_as``
    (default ``postgres``). ``template`` reuses a cached initdb result (see
    :mod:`pgstream.ops.sandbox.template`) to start faster. ``password`` is the replication
    role's (random by default); it reaches the standbys through a 0600 passfile only.
    ``client_bindir`` picks the ``pg_basebackup`` (it must be of the server's major or
    newer). ``settings`` are added to the primary's before its first start (standbys inherit
    them), each checked first (:mod:`pgstream.ops.sandbox.settings`); ``wal_segsize_mb`` is
    initdb's ``--wal-segsize`` (11+), e.g. 1 for slot-limit tests.
    Raises :class:`~pgstream.errors.InvalidInput`, :class:`~pgstream.errors.BinaryNotFound`
    or :class:`~pgstream.errors.NotAvailable` before anything is created.
    """
    check_standby_count(standbys)
    auth = ReplicationAuth(
        "replicator", secrets.token_urlsafe(24) if password is None else password)
    server = binaries.find_server(bindir)
    check_settings(server, settings or {})  # before anything is created
    asked = binaries.probe(client_bindir) if client_bindir is not None else server
    if client_bindir is not None and not (
            asked.has("pg_basebackup") and compat.client_fits(asked.version, server.version)):
        raise BinaryNotFound(
            f"pg_basebackup {asked.version.major} in {asked.bindir} cannot clone a "
            f"PostgreSQL {server.version.major} server: give client tools of "
            f"{server.version.major} or newer")
    client = binaries.find_client("pg_basebackup", server.version, prefer=asked)
    user = server_user(run_as)
    if wal_segsize_mb is not None and not server.version.adapter.has(
            "option", "--wal-segsize", "initdb"):
        raise NotAvailable(f"initdb --wal-segsize needs PostgreSQL 11 or newer, not "
                           f"{server.version.major}", name="--wal-segsize", since="11")
    box = Sandbox.create(server, user, base_dir, template=template,
                         wal_segsize_mb=wal_segsize_mb)
    try:
        renderer = ConfigRenderer(server.version)
        senders, slots = replication_limits(standbys)  # every clone at once
        wanted = renderer.primary_settings(
            listen_addresses="127.0.0.1", wal_keep_segments=4, max_wal_senders=senders,
            max_replication_slots=slots, wal_segment_size_mb=wal_segsize_mb or 16)
        wanted.update(settings or {})
        primary = box.init_primary("primary", wanted)
        nodes = [box.standby_node(f"standby{i}") for i in range(1, standbys + 1)]
        own = {node.name: own for node, own in nodes}
        own[primary.name] = box.node_settings(primary.name, conninfo_port(primary))
        addresses = {n.name: ("127.0.0.1", conninfo_port(n))
                     for n in [primary, *(node for node, _ in nodes)]}
        return SandboxParts(box, primary, tuple(node for node, _ in nodes), auth, wanted, own,
                            addresses, server, client)
    except BaseException:
        box.destroy()
        raise
