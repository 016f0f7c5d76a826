"""Major upgrade pre-checks, none of which changes anything.

Checked while the plan is built (and the standbys again when it starts): every node is run
by ``pg_ctl`` with a known data directory; the new installation, with ``pg_upgrade`` and the
client programs it runs, is on every node's host, and the old one has ``pg_controldata``;
every standby streams from the primary and is caught up; no slot would be lost (physical
slots are recreated; logical ones only survive ``pg_upgrade`` from 17 on); every extension
of every database and every ``shared_preload_libraries`` entry exists in the new
installation; no tablespace; the new data directories are free and their file systems have
room for the method; hard links are possible for ``--link``; and ``pg_upgrade --check``
passes, run against a throw-away new cluster in the new primary's data directory, removed
afterwards. Any failure raises :class:`~pgstream.errors.UpgradeRefused` listing them all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import attrs
from psycopg.conninfo import make_conninfo

from pgstream.errors import CommandFailed, InvalidInput, PgStreamError, UpgradeRefused
from pgstream.facts import compat
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import Host
from pgstream.hosts.service import DebianClusterService, PgCtlService, SystemdService
from pgstream.nodes.node import Node
from pgstream.ops.sandbox.servers import free_port
from pgstream.ops.switchover import PreCheck
from pgstream.ops.upgrade.facts import (
    METHODS,
    MODES,
    DebianCluster,
    NodeFacts,
    UpgradeFacts,
    UpgradeMethod,
    carried_settings,
    default_new_dir,
    make_new_cluster,
    parse_describe_config,
    pg_upgrade_argv,
    preload_libraries,
    remove_new_cluster,
    upgrade_output_files,
    write_carried,
)
from pgstream.ops.view import ClusterView
from pgstream.render import catalog, commands, debian

MAX_LAG_BYTES = 16 * 1024 * 1024
PRIMARY_PROGRAMS = ("postgres", "pg_ctl", "initdb", "pg_upgrade", "pg_controldata", "pg_dump",
                    "pg_dumpall", "pg_restore", "psql", "pg_resetwal", "vacuumdb", "pg_config")
MIB = 1024 * 1024


def _fail(checks: list[PreCheck]) -> UpgradeRefused:
    return UpgradeRefused("major upgrade refused, nothing changed:\n"
                          + "\n".join(str(c) for c in checks))


def _output(host: Host, argv: tuple[str, ...], what: str) -> str:
    return host.run(argv, timeout=60, what=what).output


def gather(cluster: ClusterView, to: str | Path | Installation, *, method: UpgradeMethod,
           mode: commands.TransferMode | None, data_dirs: Mapping[str, Path] | None,
           sync: bool) -> UpgradeFacts:
    """Check everything, change nothing; the facts the plan is built from."""
    if method not in METHODS:
        raise InvalidInput(f"unknown upgrade method {method!r}: use 'rsync' or 'reclone'")
    if mode is not None and mode not in MODES:
        raise InvalidInput(f"unknown pg_upgrade mode {mode!r}: use link, copy or clone")
    primary = cluster.primary
    bindir = to.bindir if isinstance(to, Installation) else Path(to)
    checks: list[PreCheck] = []

    def add(name: str, ok: bool, detail: str) -> bool:
        checks.append(PreCheck(name, ok, detail))
        return ok

    # -- who runs the servers
    unmanaged = [n.name for n in cluster.nodes
                 if n.data_dir is None or not isinstance(n.service, PgCtlService)
                 or isinstance(n.service, SystemdService)]
    if not add("every node run by pg_ctl or pg_ctlcluster with a known data directory",
               not unmanaged, "yes" if not unmanaged else f"not: {', '.join(unmanaged)} "
               "(systemd units: pgstream cannot create the new one; describe the node with "
               "DebianClusterService or PgCtlService)"):
        raise _fail(checks)
    layouts = {isinstance(n.service, DebianClusterService) for n in cluster.nodes}
    if not add("one layout for every node (all Debian clusters, or all pg_ctl)",
               len(layouts) == 1, "yes" if len(layouts) == 1 else
               "mixed: " + ", ".join(f"{n.name} "
                                     + ("Debian" if isinstance(n.service, DebianClusterService)
                                        else "pg_ctl") for n in cluster.nodes)):
        raise _fail(checks)
    cascading = [s.name for s in cluster.standbys if s.upstream not in (None, primary.name)]
    add("no cascading standby, no failed node", not cascading and not cluster.failed,
        "none" if not cascading and not cluster.failed else
        f"cascading: {', '.join(cascading) or '-'}; failed: "
        f"{', '.join(n.name for n in cluster.failed) or '-'}")
    if not add("primary reachable", primary.ping(), primary.name):
        raise _fail(checks)
    old_version = primary.version
    assert primary.service is not None and primary.data_dir is not None

    # -- installations on every host
    installs: dict[str, Installation] = {}
    olds: dict[str, Installation] = {}
    for node in cluster.nodes:
        assert node.service is not None
        try:
            new = binaries.probe(bindir, host=node.host)
            old = binaries.probe(node.service.bindir, host=node.host)
        except PgStreamError as exc:
            add(f"installations on {node.host.name}", False, str(exc))
            continue
        needed = PRIMARY_PROGRAMS if node is primary else ("postgres", "pg_ctl", "pg_basebackup")
        missing = [p for p in needed if not new.has(p)]
        missing_old = [p for p in ("pg_controldata",) if not old.has(p)]
        installs[node.name], olds[node.name] = new, old
        newer = compat.upgrade_fits(new.version, old_version)
        add(f"PostgreSQL {new.version.major} ({bindir}) on {node.name}'s host",
            not missing and newer,
            f"{new.version}" + (f"; lacks {', '.join(missing)}" if missing else "")
            + ("" if newer else
               f"; not newer than {old_version.major}"))
        add(f"old PostgreSQL {old.version.major} on {node.name}'s host has pg_controldata",
            not missing_old, str(old.bindir))
    if primary.name not in installs or not all(c.ok for c in checks):
        raise _fail(checks)
    new = installs[primary.name]
    majors = {i.version.major for i in installs.values()}
    add("one new major everywhere", len(majors) == 1, ", ".join(sorted(majors)))

    # -- standbys streaming and caught up
    current = primary.current_lsn()
    for standby in cluster.standbys:
        streams = standby.ping() and primary.streams_to(standby.name)
        replayed = standby.replay_lsn() if streams else None
        lag = current - replayed if replayed is not None else None
        add(f"{standby.name} streams and is caught up",
            bool(streams) and lag is not None and lag <= MAX_LAG_BYTES,
            "not streaming" if not streams else f"{lag} bytes behind")

    # -- slots
    slots = [s.name for s in primary.slots() if not s.temporary]
    wanted = list(dict.fromkeys([*slots, *(cluster.slot_for(s) for s in cluster.standbys)]))
    add("physical slots recreated on the new primary (pg_upgrade drops them)", True,
        ", ".join(wanted) or "none")
    other = primary.query(*catalog.non_physical_slots())
    keeps = old_version.adapter.supports("upgrade_keeps_logical_slots")
    add("no logical slot that pg_upgrade would drop", not other or keeps,
        "none" if not other else ", ".join(n for n, _t in other)
        + ("" if keeps else f" (pg_upgrade keeps logical slots only from a 17+ cluster; "
                            f"this one is {old_version.major}: drop them first)"))
    standby_slots = [f"{s.name}: {x.name}" for s in cluster.standbys if s.ping()
                     for x in s.slots()]
    add("no slots on standbys", not standby_slots, ", ".join(standby_slots) or "none")
    spaces = [name for (name,) in primary.query(*catalog.tablespaces())]
    add("no tablespaces (not handled)", not spaces, ", ".join(spaces) or "none")

    # -- extensions and libraries in the new installation
    host = primary.host
    sharedir = Path(_output(host, commands.pg_config(new.bindir, "--sharedir"),
                            "pg_config --sharedir").strip())
    libdir = Path(_output(host, commands.pg_config(new.bindir, "--pkglibdir"),
                          "pg_config --pkglibdir").strip())
    missing_ext = []
    for (database,) in primary.query(*catalog.connectable_databases()):
        probe = Node(primary.name, make_conninfo(primary.conninfo, dbname=database),
                     host=host)
        try:
            for (ext,) in probe.query(*catalog.extensions()):
                if not host.exists(sharedir / "extension" / f"{ext}.control"):
                    missing_ext.append(f"{ext} (database {database})")
        finally:
            probe.close()
    add(f"every extension exists in PostgreSQL {new.version.major}", not missing_ext,
        "missing: " + ", ".join(missing_ext) if missing_ext else "all found")
    preload = preload_libraries(primary.show("shared_preload_libraries"))
    absent = [lib for lib in preload if not host.exists(libdir / f"{lib}.so")]
    add(f"shared_preload_libraries exist in PostgreSQL {new.version.major}", not absent,
        ("missing: " + ", ".join(absent)) if absent else (", ".join(preload) or "none"))

    # -- the new data directories, their room, hard links
    encoding, collate, ctype = primary.query(*catalog.template_locale())[0]
    superuser = str(primary.value(catalog.bootstrap_superuser()))
    segsize = int(primary.show("wal_segment_size").removesuffix("MB"))
    checksums = primary.show("data_checksums") == "on"
    size = int(primary.value(catalog.total_database_size()) or 0)
    known = parse_describe_config(_output(host, commands.describe_config(new.bindir),
                                          "postgres --describe-config"))
    chosen = mode
    facts_nodes: dict[str, NodeFacts] = {}
    for node in cluster.nodes:
        assert node.data_dir is not None
        old_dir = Path(node.data_dir)
        new_dir = Path((data_dirs or {}).get(node.name) or default_new_dir(
            old_dir, old_version.major, new.version.major))
        # Debian's pg_createcluster makes /var/lib/postgresql/NEW itself.
        room = new_dir.parent
        if isinstance(node.service, DebianClusterService) and not node.host.is_dir(room):
            room = room.parent
        free = not node.host.exists(new_dir) and node.host.is_dir(room)
        add(f"{node.name}'s new data directory is free", free,
            f"{new_dir}" + ("" if free else " exists already, or its parent does not"))
        if not free:
            continue
        dev_old = _output(node.host, commands.device_of(old_dir), "stat").strip()
        dev_new = _output(node.host, commands.device_of(room), "stat").strip()
        if node is primary and chosen is None:
            chosen = "link" if dev_old == dev_new else "copy"
        if node is primary and chosen == "link":
            add("hard links possible (--link)", dev_old == dev_new,
                f"{old_dir} and {room} on one file system" if dev_old == dev_new
                else "different file systems: use mode='copy'")
        full = (node is primary and chosen == "copy") or (
            node is not primary and method == "reclone")
        need = (size * 11 // 10 if full else size // 20) + 64 * MIB
        avail_text = _output(node.host, commands.available_bytes(room), "df")
        avail = int(avail_text.split()[-1])
        add(f"room for {node.name}'s new data directory", avail >= need,
            f"{avail // MIB} MiB free, {need // MIB} MiB needed")
        found = dict(node.query(*catalog.carried_settings()))
        carried, dropped = carried_settings(found, known, old_version, new.version, segsize)
        paths = node.server_paths()
        ident = Path(node.show("ident_file"))
        layout = None
        if isinstance(node.service, DebianClusterService):
            layout = _debian_cluster(node, node.service, new, add)
            if layout is None:
                continue
            if carried.get("cluster_name") == f"{layout.old_major}/{layout.name}":
                carried["cluster_name"] = f"{layout.new_major}/{layout.name}"
        facts_nodes[node.name] = NodeFacts(
            node.name, old_dir, new_dir, carried, dropped,
            node.host.read_text(paths.hba_file), node.host.read_text(ident), layout)
    if method == "rsync":
        done = host.run(("rsync", "--version"), check=False, what="rsync --version",
                        timeout=30)
        add("rsync on the primary's host", done.returncode == 0,
            done.output.splitlines()[0] if done.returncode == 0 and done.output else
            "not found (Debian: apt-get install rsync)")
    if not all(c.ok for c in checks):
        raise _fail(checks)
    taken: set[int] = set()
    facts = UpgradeFacts(
        olds[primary.name], new, chosen or "link", method, superuser, str(encoding),
        str(collate), str(ctype), checksums, segsize, facts_nodes, tuple(wanted),
        (free_port(taken), free_port(taken)), sync)
    passed = pg_upgrade_check(cluster, facts)
    add("pg_upgrade --check", passed is None, passed or "passed")
    if passed is not None:
        raise _fail(checks)
    return attrs.evolve(facts, checks=tuple(checks))


def _debian_cluster(node: Node, service: DebianClusterService, new: Installation,
                    add: Callable[[str, bool, str], bool]) -> DebianCluster | None:
    """The Debian facts of ``node`` (None, with the failed checks added, where its host cannot
    make the new cluster the Debian way)."""
    host = node.host
    major, name = new.version.major, service.cluster
    wanted = debian.bindir(major)
    here = host.resolve(new.bindir) == host.resolve(wanted) and host.executable(wanted / "postgres")
    ok = add(f"PostgreSQL {major} where Debian's pg_ctlcluster runs it on {node.name}'s host",
             here, str(wanted) if here else
             f"{new.bindir} is not {wanted}: pg_ctlcluster {major} runs only {wanted} (Debian: "
             f"apt-get install postgresql-{major})")
    tools = host.executable(Path("/usr/bin/pg_createcluster"))
    root = tools and host.run(("id", "-u"), what="id -u", timeout=30).output.strip() == "0"
    ok = add(f"pg_createcluster on {node.name}'s host, run as root", bool(root),
             "yes" if root else ("postgresql-common is not installed" if not tools else
                                 "the host's user is not root")) and ok
    config = debian.config_dir(major, name)
    free = not host.exists(config)
    ok = add(f"{node.name}'s new Debian cluster {major}/{name} is free", free,
             str(config) + ("" if free else " exists already")) and ok
    if not ok:
        return None
    start = host.read_text(service.config_dir / "start.conf") \
        if host.exists(service.config_dir / "start.conf") else ""
    owner = node.os_user.name if node.os_user is not None else "postgres"
    return DebianCluster(name, service.major, major, int(node.show("port")), owner,
                         debian.start_conf_value(start))


def pg_upgrade_check(cluster: ClusterView, facts: UpgradeFacts) -> str | None:
    """``pg_upgrade --check`` against a throw-away new cluster (removed afterwards); None
    when it passes, else what it reported."""
    primary = cluster.primary
    node = facts.nodes[primary.name]
    host, user = primary.host, primary.os_user
    try:
        make_new_cluster(host, facts, node, user, "initdb (for --check)")
        write_carried(host, node, user)
        try:
            host.run(pg_upgrade_argv(facts, node, check=True), user=user, cwd=node.new_dir,
                     timeout=600, what="pg_upgrade --check")
        except CommandFailed as exc:
            found = []
            for path in upgrade_output_files(exc.output or ""):
                try:
                    found.append(f"{path.name}: {host.read_text(path).strip()}")
                except (OSError, PgStreamError):
                    continue
            tail = "\n".join((exc.output or "").strip().splitlines()[-12:])
            return "failed:\n" + tail + ("\n" + "\n".join(found) if found else "")
    finally:
        remove_new_cluster(host, node, user)
    return None
