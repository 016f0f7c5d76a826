"""Argv builders for PostgreSQL's programs: initdb, pg_ctl, pg_basebackup.

Pure: each returns a tuple of strings to run, never a shell string, and never a password
(pg_basebackup reads it from the file named by ``PGPASSFILE`` in its environment).
Option names follow the *client program's* version (``--wal-method`` from 10,
``--xlog-method`` before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from psycopg.conninfo import make_conninfo

from pgstream.errors import InvalidInput
from pgstream.facts import identifiers
from pgstream.facts.version import ServerVersion

PgCtlAction = Literal["start", "stop", "restart", "reload", "promote", "status"]
StopMode = Literal["smart", "fast", "immediate"]


def initdb(bindir: Path, data_dir: Path, *, superuser: str, auth_local: str = "trust",
           auth_host: str = "scram-sha-256", wal_segsize_mb: int | None = None,
           checksums: bool = False, version: ServerVersion | None = None) -> tuple[str, ...]:
    """initdb's argv. ``wal_segsize_mb`` needs initdb 11+ (pass ``version`` to check it)."""
    identifiers.role_name(superuser)
    no_sync = version.adapter.option("--no-sync", "initdb") if version else "--no-sync"
    if version is not None and auth_host == "scram-sha-256" and not version.adapter.supports(
            "scram"):
        auth_host = "md5"  # 9.6 has no SCRAM
    argv = [str(bindir / "initdb"), "-D", str(data_dir), "-U", superuser,
            "--auth-local", auth_local, "--auth-host", auth_host,
            "-E", "UTF8", "--locale", "C", no_sync]
    if wal_segsize_mb is not None:
        if version is None:
            raise InvalidInput("wal_segsize_mb needs the initdb's version (11 or newer)")
        argv.append(f"{version.adapter.option('--wal-segsize', 'initdb')}={wal_segsize_mb}")
    if checksums:
        argv.append("--data-checksums")
    return tuple(argv)


def pg_ctl(bindir: Path, action: PgCtlAction, data_dir: Path, *, log_file: Path | None = None,
           mode: StopMode | None = None, timeout: int = 60, wait: bool = True) -> tuple[str, ...]:
    """``pg_ctl ACTION -D DATADIR`` with the options that action takes (``-w``/``-W``, ``-m MODE``,
    ``-l LOG``, ``-t SECONDS``).
    """
    argv = [str(bindir / "pg_ctl"), action, "-D", str(data_dir)]
    if action in ("start", "restart") and log_file is not None:
        argv += ["-l", str(log_file)]
    if mode is not None and action in ("stop", "restart"):
        argv += ["-m", mode]
    if action not in ("reload", "status"):
        argv += ["-w" if wait else "-W", "-t", str(timeout)]
    return tuple(argv)


def pg_basebackup(bindir: Path, client: ServerVersion, data_dir: Path, *, host: str, port: int,
                  user: str, slot: str | None = None, progress: bool = True,
                  fast_checkpoint: bool = True, max_rate: str | None = None,
                  application_name: str | None = None, sync: bool = True) -> tuple[str, ...]:
    """The seed's step 7: clone the primary into ``data_dir`` through ``slot``, streaming WAL.

    ``sync=False`` (``--no-sync``) skips the final fsync: for throw-away sandboxes only.
    No ``-R``: pgstream writes the recovery configuration itself, for the standby server's
    version (a newer client's ``-R`` writes options an older server rejects).
    """
    identifiers.role_name(user)
    identifiers.port(port)
    adapter = client.adapter
    argv = [str(bindir / "pg_basebackup"), "-D", str(data_dir), "-h", host, "-p", str(port),
            "-U", user, f"{adapter.option('--wal-method')}=stream", "-w"]
    if application_name is not None:
        name = identifiers.node_name(application_name)
        argv += ["-d", make_conninfo("", application_name=f"{name}_basebackup")]
    if slot is not None:
        argv += ["-S", identifiers.slot_name(slot)]
    if fast_checkpoint:
        argv += ["-c", "fast"]
    if progress:
        argv.append("-P")
    if max_rate is not None:
        if not max_rate.rstrip("kKmM").isdigit():
            raise InvalidInput(f"invalid max_rate {max_rate!r}: e.g. '100M' or '32k'")
        argv += ["-r", max_rate]
    if not sync and adapter.has("option", "--no-sync"):
        argv.append(adapter.option("--no-sync"))
    if adapter.has("option", "--no-manifest"):
        argv.append("--no-manifest")
    return tuple(argv)


def postgres_version(bindir: Path, program: str = "postgres") -> tuple[str, ...]:
    """``postgres --version``."""
    return (str(bindir / program), "--version")


def pg_controldata(bindir: Path, data_dir: Path) -> tuple[str, ...]:
    """``pg_controldata DATADIR`` (a stopped or running server's ``pg_control``)."""
    return (str(bindir / "pg_controldata"), "-D", str(data_dir))


def pg_ctlcluster(major: str, cluster: str, action: PgCtlAction, *,
                  mode: StopMode | None = None, wait: bool = True) -> tuple[str, ...]:
    """Debian's ``pg_ctlcluster MAJOR NAME ACTION [-m MODE]`` (postgresql-common)."""
    _cluster_name(cluster)
    if not major.replace(".", "").isdigit():
        raise InvalidInput(f"invalid PostgreSQL major {major!r}")
    argv = ["pg_ctlcluster", major, cluster, action]
    if mode is not None and action in ("stop", "restart"):
        argv += ["-m", mode]
    if not wait and action not in ("reload", "status"):
        argv += ["--", "-W"]
    return tuple(argv)


def _cluster_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise InvalidInput(f"invalid Debian cluster name {name!r}")
    return name


def systemctl(action: str, unit: str) -> tuple[str, ...]:
    """``systemctl ACTION UNIT`` for start, stop, restart, reload, status."""
    if action not in ("start", "stop", "restart", "reload", "status"):
        raise InvalidInput(f"systemctl cannot {action!r} a PostgreSQL unit")
    if not unit or not all(c.isalnum() or c in "-_.@:" for c in unit):
        raise InvalidInput(f"invalid systemd unit name {unit!r}")
    return ("systemctl", action, unit)


def tail_bytes(path: Path, count: int) -> tuple[str, ...]:
    """``tail -c COUNT -- PATH``: the end of a (log) file, at most ``count`` bytes."""
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise InvalidInput(f"tail needs a positive byte count, not {count!r}")
    return ("tail", "-c", str(count), "--", str(path))
