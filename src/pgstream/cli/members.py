"""Verbs that change the members: ``add-standby``, ``remove-standby``. Both keep the
topology file in step (the node's table added, or removed) once the plan has succeeded."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from pgstream.cli.common import (
    BAD_INPUT,
    CliError,
    common_options,
    config_path,
    confirm,
    load_cluster,
    run_plan,
)


def _rewrite(path: Path, change: Any) -> None:
    from pgstream.ops.discover.from_file import read_topology
    from pgstream.render.topology import render_topology

    text = render_topology(change(read_topology(path)))
    tmp = path.with_name(f".{path.name}.pgstream-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def add_standby(args: argparse.Namespace) -> int:
    """Clone a new standby NAME into --data-dir, from the primary or --upstream."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from pgstream.hosts.service import PgCtlService
    from pgstream.nodes.node import Standby
    from pgstream.ops.discover.from_file import make_host
    from pgstream.ops.sandbox.servers import free_port
    from pgstream.render.topology import NodeEntry

    path = config_path(args)
    cluster = load_cluster(args)
    try:
        source = cluster.node(args.upstream) if args.upstream else cluster.primary
        facts = cluster.discovery.node(source.name) if cluster.discovery else None
        if facts is None or not facts.data_directory or not str(facts.config_file).startswith(
                facts.data_directory + "/"):
            raise CliError(f"{source.name} keeps its configuration outside its data directory "
                           "(Debian's layout): a clone would have none; create the cluster "
                           "with pg_createcluster, then run 'pgstream setup'",
                           code="unsupported_layout", exit_code=BAD_INPUT)
        host = make_host(args.host, become=args.become)
        if args.host not in (None, "local") and not args.conninfo:
            raise CliError("a standby on another host needs --conninfo (how to reach it)",
                           code="usage", exit_code=BAD_INPUT)
        assert source.service is not None
        ports = {int(str(n.port)) for n in cluster.discovery.nodes if n.port} \
            if cluster.discovery else set()
        port = args.port or free_port(ports)
        params = {k: v for k, v in conninfo_to_dict(source.conninfo).items()
                  if v is not None and k != "password"}
        conninfo = args.conninfo or make_conninfo("", **{**params, "port": str(port)})
        data_dir = Path(args.data_dir)
        service = PgCtlService(host, source.service.bindir, data_dir,
                               source.os_user if args.host in (None, "local")
                               else host.lookup_user("postgres"),
                               data_dir.with_name(data_dir.name + ".log"),
                               version=source.version)
        standby = Standby(args.name, conninfo, host=host, data_dir=data_dir, service=service,
                          os_user=service.user)
        cluster.node_settings[args.name] = {"port": str(port), "cluster_name": args.name}
        plan = cluster.add_standby_plan(standby, upstream=args.upstream,
                                        hba_address=args.hba_address, timeout=args.timeout)
        code = run_plan(args, plan, cluster)
        if not args.dry_run:
            _rewrite(path, lambda t: t.with_node(NodeEntry(
                args.name, make_conninfo("", **{k: v for k, v in conninfo_to_dict(
                    conninfo).items() if v is not None and k != "password"}),
                host=args.host or "local", become=args.become, data_dir=str(data_dir),
                service="pg_ctl")))
        return code
    finally:
        cluster.close()


def remove_standby(args: argparse.Namespace) -> int:
    """Take standby NAME out of the cluster (its data kept unless --wipe)."""
    path = config_path(args)
    cluster = load_cluster(args)
    try:
        plan = cluster.remove_standby_plan(args.name, wipe=args.wipe, timeout=args.timeout)
        confirm(args, f"remove standby {args.name}" + (" and wipe its data" if args.wipe
                                                        else ""))
        code = run_plan(args, plan, cluster)
        if not args.dry_run:
            _rewrite(path, lambda t: t.without(args.name))
        return code
    finally:
        cluster.close()


def register(sub: Any) -> None:
    """Add ``add-standby`` and ``remove-standby``."""
    a = sub.add_parser("add-standby", parents=[common_options()],
                       help="clone a new standby and add it to the topology file")
    a.add_argument("name")
    a.add_argument("--data-dir", required=True, help="its data directory (empty or missing)")
    a.add_argument("--upstream", help="stream from this node (default: the primary)")
    a.add_argument("--host", help="'local' (default) or an SSH destination")
    a.add_argument("--become", help="with an SSH host: the user to become, e.g. root")
    a.add_argument("--port", type=int, help="its port (default: a free one, local only)")
    a.add_argument("--conninfo", help="how to reach it (needed on another host)")
    a.add_argument("--hba-address", help="also allow replication from this address on the "
                                         "upstream (a pg_hba line marked for this standby)")
    a.set_defaults(func=add_standby)
    r = sub.add_parser("remove-standby", parents=[common_options()],
                       help="take a standby out (destructive): sync names, stop, slot, hba")
    r.add_argument("name")
    r.add_argument("--wipe", action="store_true", help="also wipe its data directory")
    r.set_defaults(func=remove_standby)
