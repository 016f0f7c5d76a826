"""What a major upgrade works from: the facts found before anything changes, and the pieces of
work that the pre-check and the plan share (the new cluster's initdb, the settings carried
over, ``pg_upgrade``'s argv, ``pg_controldata``'s checkpoint).

Settings carried over: every setting a node took from its configuration files, with its
value as ``current_setting`` shows it, except file locations and the recovery settings that
pgstream writes itself for the new major. A setting the new installation does not know is
left out, and the plan says so; ``wal_keep_segments`` becomes ``wal_keep_size`` (13+).
``pg_hba.conf`` and ``pg_ident.conf`` are copied whole.

Debian's clusters (``pg_ctlcluster``) keep Debian's layout: the new cluster is made by
``pg_createcluster NEW NAME`` (configuration in ``/etc/postgresql/NEW/NAME``, data in
``/var/lib/postgresql/NEW/NAME``), ``pg_upgrade`` is given the configuration directories (as
``pg_upgradecluster`` does), and the new cluster takes the old one's ``start.conf`` once
upgraded while the old one is set to ``manual``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import attrs

from pgstream.errors import OperationFailed
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import ServerVersion
from pgstream.hosts.binaries import Installation
from pgstream.hosts.files import merge_auto_conf
from pgstream.hosts.host import Host, OsUser
from pgstream.ops.switchover import PreCheck
from pgstream.render import commands, debian
from pgstream.render.config import render_settings

UpgradeMethod = Literal["rsync", "reclone"]
METHODS = ("rsync", "reclone")
MODES = ("link", "copy", "clone")


@attrs.frozen
class DebianCluster:
    """A node that is one of Debian's clusters: its name, both majors, its port and owner,
    and its ``start.conf`` (which the new cluster takes over)."""

    name: str
    old_major: str
    new_major: str
    port: int
    owner: str
    start_conf: debian.StartConf = "auto"

    @property
    def old_config(self) -> Path:
        """``/etc/postgresql/OLD/NAME``."""
        return debian.config_dir(self.old_major, self.name)

    @property
    def new_config(self) -> Path:
        """``/etc/postgresql/NEW/NAME``."""
        return debian.config_dir(self.new_major, self.name)


@attrs.frozen
class NodeFacts:
    """One node: its old and new data directories, and what is carried into the new one."""

    name: str
    old_dir: Path
    new_dir: Path
    settings: Mapping[str, str]
    dropped: tuple[str, ...]
    hba: str
    ident: str
    debian: DebianCluster | None = None

    @property
    def old_config_dir(self) -> Path:
        """Where the old cluster's configuration is (Debian: ``/etc/postgresql``)."""
        return self.debian.old_config if self.debian else self.old_dir

    @property
    def new_config_dir(self) -> Path:
        """Where the new cluster's ``pg_hba.conf`` and ``pg_ident.conf`` go."""
        return self.debian.new_config if self.debian else self.new_dir

    def describe_carry(self) -> str:
        """The dry run's text for what is written into the new data directory."""
        lines = [f"{self.new_dir}/postgresql.auto.conf (settings carried over):"]
        lines += [f"  {line}" for line in render_settings(self.settings).splitlines()]
        lines += [f"  not carried: {why}" for why in self.dropped]
        lines.append(f"{self.new_config_dir}/pg_hba.conf: the old one "
                     f"({len(self.hba.splitlines())} lines)")
        lines.append(f"{self.new_config_dir}/pg_ident.conf: the old one "
                     f"({len(self.ident.splitlines())} lines)")
        return "\n".join(lines)


@attrs.frozen
class UpgradeFacts:
    """Everything the pre-checks found, from which the plan's steps are built."""

    old: Installation
    new: Installation
    mode: commands.TransferMode
    method: UpgradeMethod
    superuser: str
    encoding: str
    lc_collate: str
    lc_ctype: str
    checksums: bool
    wal_segsize_mb: int
    nodes: Mapping[str, NodeFacts]
    slots: tuple[str, ...]
    ports: tuple[int, int]
    """The ports pg_upgrade starts the old and the new server on (free ones, not the
    node's: no client gets in while it works)."""
    sync: bool = True
    checks: tuple[PreCheck, ...] = ()


def default_new_dir(old: Path, old_major: str, new_major: str) -> Path:
    """Where a node's new data directory goes: the old path with its major component
    replaced (``/var/lib/postgresql/15/main`` -> ``.../18/main``), else a sibling
    ``<name>_<major>``."""
    parts = list(old.parts)
    for index in range(len(parts) - 2, 0, -1):
        if parts[index] == old_major:
            parts[index] = new_major
            return Path(*parts)
    return old.with_name(f"{old.name}_{new_major.replace('.', '')}")


def carried_settings(found: Mapping[str, str], new_settings: set[str],
                     old: ServerVersion, new: ServerVersion,
                     wal_segsize_mb: int) -> tuple[dict[str, str], tuple[str, ...]]:
    """The settings to write into the new cluster, and the notes on those left out."""
    carried: dict[str, str] = {}
    dropped: list[str] = []
    for name, value in found.items():
        if name == "wal_keep_segments" and not new.adapter.has("setting", name):
            carried["wal_keep_size"] = f"{int(value) * wal_segsize_mb}MB"
            continue
        if name.lower() not in new_settings:
            dropped.append(f"{name} = {value!r} (PostgreSQL {new.major} has no such setting)")
            continue
        carried[name] = value
    return carried, tuple(dropped)


def parse_describe_config(output: str) -> set[str]:
    """Setting names from ``postgres --describe-config`` (tab-separated, name first)."""
    return {line.split("\t", 1)[0].strip().lower() for line in output.splitlines()
            if "\t" in line}


def preload_libraries(value: str) -> list[str]:
    """The entries of ``shared_preload_libraries`` (``$libdir/`` and quotes removed)."""
    names = []
    for item in value.split(","):
        name = item.strip().strip('"').strip()
        if name:
            names.append(name.removeprefix("$libdir/"))
    return names


_CHECKPOINT = re.compile(r"^Latest checkpoint location:\s*([0-9A-Fa-f]+/[0-9A-Fa-f]+)\s*$",
                         re.MULTILINE)
_STATE = re.compile(r"^Database cluster state:\s*(.+?)\s*$", re.MULTILINE)


def controldata_checkpoint(output: str) -> tuple[Lsn, str]:
    """``pg_controldata``'s "Latest checkpoint location" and "Database cluster state"."""
    checkpoint, state = _CHECKPOINT.search(output), _STATE.search(output)
    if checkpoint is None or state is None:
        raise OperationFailed("pg_controldata printed no 'Latest checkpoint location' or "
                            "'Database cluster state' (its output is not one pgstream knows)")
    return Lsn.parse(checkpoint[1]), state[1]


def initdb_argv(facts: UpgradeFacts, node: NodeFacts) -> tuple[str, ...]:
    """The new major's cluster for ``node``, matching the old one (superuser, encoding,
    locale, checksums and WAL segment size): ``initdb`` of its new data directory, or for a
    Debian cluster ``pg_createcluster`` (run as root), not started at boot until upgraded."""
    if node.debian is None:
        return commands.upgrade_initdb(
            facts.new.bindir, node.new_dir, version=facts.new.version,
            superuser=facts.superuser, encoding=facts.encoding, lc_collate=facts.lc_collate,
            lc_ctype=facts.lc_ctype, checksums=facts.checksums,
            wal_segsize_mb=facts.wal_segsize_mb)
    options = commands.upgrade_initdb_options(
        version=facts.new.version, superuser=facts.superuser, checksums=facts.checksums,
        wal_segsize_mb=facts.wal_segsize_mb)
    return commands.pg_createcluster(
        node.debian.new_major, node.debian.name, owner=node.debian.owner, data_dir=node.new_dir,
        port=node.debian.port, encoding=facts.encoding, lc_collate=facts.lc_collate,
        lc_ctype=facts.lc_ctype, initdb_options=options, start_conf="manual")


def make_new_cluster(host: Host, facts: UpgradeFacts, node: NodeFacts, owner: OsUser | None,
                     what: str) -> None:
    """Run :func:`initdb_argv` for ``node`` (pg_createcluster as the host's own user,
    root; initdb as the server's owner)."""
    host.run(initdb_argv(facts, node), user=None if node.debian else owner, timeout=300,
             what=what)


def remove_new_cluster(host: Host, node: NodeFacts, owner: OsUser | None) -> None:
    """Remove the new cluster this upgrade made for ``node`` (Debian: ``pg_dropcluster``,
    its configuration too); never an old data directory."""
    if node.debian is not None:
        if host.exists(node.debian.new_config):
            host.run(commands.pg_dropcluster(node.debian.new_major, node.debian.name,
                                             stop=True), what="pg_dropcluster (new major)",
                     timeout=120)
        if host.exists(node.debian.new_config):
            host.run(commands.remove_tree(node.debian.new_config), what="remove the config")
    remove_dir(host, node.new_dir, owner)


def pg_upgrade_argv(facts: UpgradeFacts, primary: NodeFacts, *,
                    check: bool = False) -> tuple[str, ...]:
    """The ``pg_upgrade`` of ``primary`` from its old data directory to its new one
    (``check``: only ``--check``), with the plan's transfer mode and ports."""
    return commands.pg_upgrade(
        facts.new.bindir, facts.new.version, old_bindir=facts.old.bindir,
        old_data_dir=primary.old_config_dir, new_data_dir=primary.new_config_dir,
        old_port=facts.ports[0],
        new_port=facts.ports[1], superuser=facts.superuser, socket_dir=primary.new_dir,
        mode=facts.mode, check=check, sync=facts.sync)


def write_carried(host: Host, node: NodeFacts, owner: OsUser | None,
                  extra: Mapping[str, str] | None = None) -> None:
    """Write the carried settings (and ``extra``), pg_hba.conf and pg_ident.conf into the
    node's new data directory."""
    merged: dict[str, str | None] = {**node.settings, **(extra or {})}
    merge_auto_conf(host, node.new_dir, merged, owner)
    write_access_files(host, node, owner)


def write_access_files(host: Host, node: NodeFacts, owner: OsUser | None) -> None:
    """The node's old ``pg_hba.conf`` and ``pg_ident.conf``, into its new configuration
    directory (Debian: ``/etc/postgresql/NEW/NAME``)."""
    host.write_text(node.new_config_dir / "pg_hba.conf", node.hba, mode=0o600, owner=owner)
    host.write_text(node.new_config_dir / "pg_ident.conf", node.ident, mode=0o600,
                    owner=owner)


def remove_dir(host: Host, path: Path, user: OsUser | None) -> None:
    """Remove a directory this upgrade made (its callers never pass an old data directory)."""
    if host.exists(path):
        host.run(commands.remove_tree(path), user=user, what=f"remove {path}")


def upgrade_output_files(output: str) -> list[Path]:
    """The report files pg_upgrade names in its output (what it found, one per check)."""
    return [Path(m) for m in re.findall(r"^\s+(/\S+\.txt)\s*$", output, re.MULTILINE)]
