"""Benchmark: a big clone (issue 13, item 5). ``add_standby`` of a primary of ``--size-mb``
(default 1024) against a raw ``pg_basebackup -X stream -c fast -R`` + ``pg_ctl start -w`` of
the same primary, the order alternated between rounds (goal <= 1.02).

Run with ``python bench/bench_clone.py [--rounds N] [--size-mb MB] [--json PATH]`` (``nox -s
bench`` runs it with ``--size-mb 256`` unless told otherwise). The sandbox is on disk (the
temporary directory, not /dev/shm): a clone of that size is disk work in a deployment too.
Each clone is stopped and removed (and its slot dropped) before the next.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import Figures, arguments
from psycopg.conninfo import make_conninfo

from pgstream import Cluster
from pgstream.hosts.host import LocalHost, server_user
from pgstream.ops.sandbox.servers import free_port
from pgstream.render import commands


def raw_clone(cluster: Cluster, parent: Path, index: int) -> float:
    """pg_basebackup -X stream -c fast -R, then pg_ctl start -w; seconds (stop not counted)."""
    host, user = LocalHost(), server_user()
    service = cluster.primary.service
    assert service is not None
    bindir = service.bindir
    base = Path(tempfile.mkdtemp(prefix=f"raw{index}-", dir=parent))
    if os.geteuid() == 0:
        os.chown(base, user.uid, user.gid)
    passfile = base / "pgpass"
    address = cluster.address_of(cluster.primary)
    password = cluster.auth.password.reveal() if cluster.auth.password is not None else ""
    host.write_text(passfile, f"{address[0]}:{address[1]}:*:{cluster.auth.user}:"
                    f"{password}\n", mode=0o600, owner=user)
    data = base / "data"
    port = free_port(set())
    try:
        started = time.perf_counter()
        # The passfile in the conninfo (pgstream's LocalHost drops PG* variables).
        conninfo = make_conninfo("", host=address[0], port=address[1], user=cluster.auth.user,
                                 passfile=str(passfile))
        host.run((str(bindir / "pg_basebackup"), "-D", str(data), "-d", conninfo,
                  "-X", "stream", "-c", "fast", "-R", "--no-sync", "-w"), user=user,
                 timeout=3600)
        host.run((str(bindir / "pg_ctl"), "start", "-w", "-D", str(data), "-l",
                  str(base / "log"), "-o", f"-p {port} -k {base} -c listen_addresses=''"),
                 user=user)
        elapsed = time.perf_counter() - started
        host.run(commands.pg_ctl(bindir, "stop", data, mode="immediate"), user=user)
        return elapsed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def pgstream_clone(cluster: Cluster, index: int) -> float:
    started = time.perf_counter()
    node = cluster.add_standby(f"big{index}")
    elapsed = time.perf_counter() - started
    assert node.service is not None and node.data_dir is not None
    node.close()
    node.service.stop("immediate")
    cluster.standbys.remove(node)
    cluster.primary.execute("SELECT pg_drop_replication_slot(%s)", (node.name,))
    shutil.rmtree(node.data_dir, ignore_errors=True)
    return elapsed


def main() -> int:
    parser = arguments(__doc__.split("\n", 1)[0], rounds=3)
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    parent = Path(tempfile.gettempdir())
    fig = Figures("clone", f"a big clone: add_standby of a {args.size_mb} MB primary "
                  f"(on disk, {parent}) against raw pg_basebackup + pg_ctl start")
    ours: list[float] = []
    raw: list[float] = []
    with Cluster.sandbox(standbys=0, bindir=args.bindir, base_dir=parent) as cluster:
        rows = args.size_mb * 1024 * 1024 // 1100  # ~1.1 kB a row on disk with its header
        cluster.primary.execute(
            "CREATE TABLE big AS SELECT g AS id, repeat('x', 1000) AS pad "
            "FROM generate_series(1, %s) g", (rows,))
        cluster.primary.execute("CHECKPOINT")
        size = cluster.primary.query("SELECT pg_database_size(current_database())")[0][0]
        fig.meta["primary_bytes"] = int(size)
        scratch = Path(tempfile.mkdtemp(prefix="pgstream-bench-clone-", dir=parent))
        scratch.chmod(0o755)  # crossed by the server's OS user; each clone's own dir is 0700
        try:
            for index in range(args.rounds):
                if index % 2 == 0:
                    raw.append(raw_clone(cluster, scratch, index))
                    ours.append(pgstream_clone(cluster, index))
                else:
                    ours.append(pgstream_clone(cluster, index))
                    raw.append(raw_clone(cluster, scratch, index))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    fig.add("raw pg_basebackup -X stream -c fast -R + pg_ctl start -w", raw)
    fig.add("add_standby (pgstream)", ours,
            baseline="raw pg_basebackup -X stream -c fast -R + pg_ctl start -w", goal=1.02)
    fig.note(f"primary database size {int(size) / 1e6:.0f} MB")
    fig.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
