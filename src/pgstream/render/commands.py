"""Argv builders for PostgreSQL's programs: initdb, pg_ctl, pg_basebackup.

Pure: each returns a tuple of strings to run, never a shell string, and never a password
(pg_basebackup reads it from the file named by ``PGPASSFILE`` in its environment).
Option names follow the *client program's* version (``--wal-method`` from 10,
``--xlog-method`` before).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from psycopg.conninfo import make_conninfo

from pgstream.errors import InvalidInput
from pgstream.facts import compat, identifiers
from pgstream.facts.version import ServerVersion

PgCtlAction = Literal["start", "stop", "restart", "reload", "promote", "status"]
StopMode = Literal["smart", "fast", "immediate"]


def initdb(bindir: Path, data_dir: Path, *, superuser: str, auth_local: str = "trust",
           auth_host: str = "scram-sha-256", wal_segsize_mb: int | None = None,
           checksums: bool = False, version: ServerVersion | None = None) -> tuple[str, ...]:
    """initdb's argv. ``wal_segsize_mb`` needs initdb 11+ (pass ``version`` to check it)."""
    identifiers.role_name(superuser)
    no_sync = version.adapter.option("--no-sync", "initdb") if version else "--no-sync"
    if version is not None and not compat.auth_method_exists(auth_host, version):
        auth_host = compat.default_auth_method(version)  # 9.6 has no SCRAM
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


def pg_rewind(bindir: Path, data_dir: Path, source: str, *,
              config_file: Path | None = None) -> tuple[str, ...]:
    """``pg_rewind`` of ``data_dir`` to the server of conninfo ``source`` (which carries no
    password: that travels in a passfile), with progress.

    ``config_file``: the target's ``postgresql.conf`` when it is not in ``data_dir`` (Debian
    keeps it in ``/etc/postgresql``), passed as ``--config-file`` (pg_rewind 15+) for the
    single-user server pg_rewind runs to finish crash recovery. The caller checks the version.
    """
    argv = [str(bindir / "pg_rewind"), "--target-pgdata", str(data_dir),
            "--source-server", source, "--progress"]
    if config_file is not None:
        argv.append(f"--config-file={config_file}")
    return tuple(argv)


def postgres_single(bindir: Path, data_dir: Path, config_file: Path) -> tuple[str, ...]:
    """``postgres --single`` on ``data_dir`` with its ``config_file``, as pg_rewind runs it to
    finish a crash recovery (``-F``: no fsync; it stops at end of input)."""
    return (str(bindir / "postgres"), "--single", "-F", "-D", str(data_dir),
            "-c", f"config_file={config_file}", "template1")


def remove_file(path: Path) -> tuple[str, ...]:
    """``rm -f -- path``: a file pgstream wrote for one run (a temporary passfile)."""
    return ("rm", "-f", "--", str(path))


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
    _major(major)
    argv = ["pg_ctlcluster", major, cluster, action]
    if mode is not None and action in ("stop", "restart"):
        argv += ["-m", mode]
    if not wait and action not in ("reload", "status"):
        argv += ["--", "-W"]
    return tuple(argv)


def _major(major: str) -> str:
    if not major or not major.replace(".", "").isdigit():
        raise InvalidInput(f"invalid PostgreSQL major {major!r}")
    return major


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


TransferMode = Literal["link", "copy", "clone"]


def upgrade_initdb_options(*, version: ServerVersion, superuser: str, checksums: bool,
                           wal_segsize_mb: int = 16) -> tuple[str, ...]:
    """initdb's options that ``pg_upgrade`` needs to match the old cluster, other than the
    directory, encoding and locale: the superuser, WAL segment size and checksum setting
    (``--no-data-checksums`` where the new initdb enables checksums by default, 18+)."""
    identifiers.role_name(superuser)
    adapter = version.adapter
    argv = ["-U", superuser, adapter.option("--no-sync", "initdb")]
    if wal_segsize_mb != 16:
        argv.append(f"{adapter.option('--wal-segsize', 'initdb')}={int(wal_segsize_mb)}")
    if checksums:
        argv.append("--data-checksums")
    elif adapter.has("option", "--no-data-checksums", "initdb"):
        argv.append(adapter.option("--no-data-checksums", "initdb"))
    return tuple(argv)


def _locale_values(encoding: str, lc_collate: str, lc_ctype: str) -> None:
    for label, value in (("encoding", encoding), ("lc_collate", lc_collate),
                         ("lc_ctype", lc_ctype)):
        if not value or not all(c.isalnum() or c in "-_.@" for c in value):
            raise InvalidInput(f"invalid {label} {value!r}")


def upgrade_initdb(bindir: Path, data_dir: Path, *, version: ServerVersion, superuser: str,
                   encoding: str, lc_collate: str, lc_ctype: str, checksums: bool,
                   wal_segsize_mb: int = 16) -> tuple[str, ...]:
    """initdb of the new cluster for ``pg_upgrade``: the old cluster's superuser, encoding,
    locale, WAL segment size and checksum setting (pg_upgrade refuses any difference)."""
    _locale_values(encoding, lc_collate, lc_ctype)
    options = upgrade_initdb_options(version=version, superuser=superuser,
                                     checksums=checksums, wal_segsize_mb=wal_segsize_mb)
    return (str(bindir / "initdb"), "-D", str(data_dir), "--auth-local", "trust",
            "--auth-host", compat.default_auth_method(version), "-E", encoding,
            "--lc-collate", lc_collate, "--lc-ctype", lc_ctype, *options)


def pg_createcluster(major: str, cluster: str, *, owner: str, data_dir: Path, port: int,
                     encoding: str, lc_collate: str, lc_ctype: str,
                     initdb_options: tuple[str, ...] = (),
                     start_conf: Literal["auto", "manual", "disabled"] = "manual"
                     ) -> tuple[str, ...]:
    """Debian's ``pg_createcluster`` (postgresql-common, run as root): the cluster
    ``major``/``cluster`` with its configuration in ``/etc/postgresql/MAJOR/CLUSTER``, its
    data in ``data_dir``, owned by ``owner``; ``initdb_options`` go to initdb after ``--``."""
    _cluster_name(cluster)
    _major(major)
    identifiers.role_name(owner)
    identifiers.port(port)
    _locale_values(encoding, lc_collate, lc_ctype)
    if start_conf not in ("auto", "manual", "disabled"):
        raise InvalidInput(f"invalid start.conf value {start_conf!r}")
    return ("pg_createcluster", "-u", owner, "--datadir", str(data_dir), "--port", str(port),
            "--start-conf", start_conf, "--encoding", encoding, "--lc-collate", lc_collate,
            "--lc-ctype", lc_ctype, "--no-status", major, cluster, "--", *initdb_options)


def pg_dropcluster(major: str, cluster: str, *, stop: bool = False) -> tuple[str, ...]:
    """Debian's ``pg_dropcluster [--stop] MAJOR CLUSTER``: its data and configuration gone."""
    _cluster_name(cluster)
    _major(major)
    return ("pg_dropcluster", *(("--stop",) if stop else ()), major, cluster)


def pg_upgrade(new_bindir: Path, new_version: ServerVersion, *, old_bindir: Path,
               old_data_dir: Path, new_data_dir: Path, old_port: int, new_port: int,
               superuser: str, socket_dir: Path, mode: TransferMode = "link",
               check: bool = False, sync: bool = True) -> tuple[str, ...]:
    """``pg_upgrade`` of the *new* installation; options by its version (``--clone`` 12+,
    an explicit ``--copy`` 16+, ``--no-sync`` 15+). ``check``: ``--check`` only (changes
    nothing; the old server may be running)."""
    identifiers.role_name(superuser)
    identifiers.port(old_port)
    identifiers.port(new_port)
    adapter = new_version.adapter
    argv = [str(new_bindir / "pg_upgrade"), "-b", str(old_bindir), "-B", str(new_bindir),
            "-d", str(old_data_dir), "-D", str(new_data_dir), "-p", str(old_port),
            "-P", str(new_port), "-U", superuser, "-s", str(socket_dir)]
    if mode == "link":
        argv.append(adapter.option("--link", "pg_upgrade"))
    elif mode == "clone":
        argv.append(adapter.option("--clone", "pg_upgrade"))
    elif mode == "copy":
        if adapter.has("option", "--copy", "pg_upgrade"):
            argv.append(adapter.option("--copy", "pg_upgrade"))
    else:
        raise InvalidInput(f"unknown pg_upgrade mode {mode!r}: use link, copy or clone")
    if check:
        argv.append("--check")
    if not sync and not check and adapter.has("option", "--no-sync", "pg_upgrade"):
        argv.append(adapter.option("--no-sync", "pg_upgrade"))
    return tuple(argv)


def rsync_layout(old_primary_dir: Path, new_primary_dir: Path) -> tuple[Path, Path, Path]:
    """The directory that holds both of the primary's data directories, and each one's path
    below it (``/var/lib/postgresql``, ``15/main``, ``18/main``): what the rsync transfers, as
    paths relative to a standby's staging directory."""
    old, new = Path(str(old_primary_dir).rstrip("/")), Path(str(new_primary_dir).rstrip("/"))
    if not old.is_absolute() or not new.is_absolute() or old == new:
        raise InvalidInput(f"the old and new data directories must be two absolute paths: "
                           f"{old_primary_dir}, {new_primary_dir}")
    base = Path(os.path.commonpath([old, new]))
    if base in (old, new):
        raise InvalidInput(f"{old} and {new}: one lies inside the other")
    return base, old.relative_to(base), new.relative_to(base)


def rsync_upgrade(old_primary_dir: Path, new_primary_dir: Path, target: str, *,
                  skip_old_wal: bool = True) -> tuple[str, ...]:
    """PostgreSQL's documented rsync of an upgraded primary to a standby: both directories
    into ``target`` (a directory, or ``host:directory``), under their paths relative to the
    directory that holds both (``--relative``: ``/var/lib/postgresql/15/main`` and ``.../18/main``
    arrive as ``15/main`` and ``18/main``, not both as ``main``); ``--hard-links`` turns the
    new directory's links into links to the standby's own old files.
    ``skip_old_wal``: leave out the old cluster's ``pg_wal`` contents, which no new server
    reads (pg_upgrade links no WAL) and whose segment names differ between primary and
    standby, so that they would travel whole."""
    if not target or target.startswith("-") or any(c.isspace() for c in target):
        raise InvalidInput(f"invalid rsync target {target!r}")
    base, old, new = rsync_layout(old_primary_dir, new_primary_dir)
    skip = [f"--exclude=/{old}/pg_wal/*"] if skip_old_wal else []
    return ("rsync", "--archive", "--delete", "--hard-links", "--size-only",
            "--no-inc-recursive", "--relative", *skip, f"{base}/./{old}", f"{base}/./{new}",
            target)


def vacuumdb_analyze(bindir: Path, *, host: str, port: int, user: str) -> tuple[str, ...]:
    """``vacuumdb --all --analyze-in-stages`` (optimizer statistics after pg_upgrade)."""
    identifiers.role_name(user)
    identifiers.port(port)
    return (str(bindir / "vacuumdb"), "--all", "--analyze-in-stages", "-h", host,
            "-p", str(port), "-U", user)


def pg_config(bindir: Path, item: Literal["--pkglibdir", "--sharedir"]) -> tuple[str, ...]:
    """``pg_config --pkglibdir`` / ``--sharedir`` of an installation."""
    return (str(bindir / "pg_config"), item)


def describe_config(bindir: Path) -> tuple[str, ...]:
    """``postgres --describe-config``: every setting the installation knows, one a line."""
    return (str(bindir / "postgres"), "--describe-config")


def available_bytes(path: Path) -> tuple[str, ...]:
    """``df``: the bytes available on the file system holding ``path``."""
    return ("df", "--output=avail", "-B1", str(path))


def device_of(path: Path) -> tuple[str, ...]:
    """``stat``: the device number of ``path`` (same device: hard links possible)."""
    return ("stat", "--format=%d", str(path))


def rename(source: Path, target: Path) -> tuple[str, ...]:
    """``mv -T SOURCE TARGET``: a rename (hard links and owners kept on one file system)."""
    return ("mv", "--no-target-directory", str(source), str(target))


def make_dir(path: Path, mode: int = 0o700) -> tuple[str, ...]:
    """``mkdir -m MODE -- PATH``: one directory (its parent must exist, it must not)."""
    return ("mkdir", "-m", f"{mode:o}", "--", str(path))


def wipe_contents(path: Path) -> tuple[str, ...]:
    """``find PATH -mindepth 1 -delete``: everything inside the directory ``path`` removed,
    the directory itself kept (its owner and mode); symbolic links inside are removed, never
    followed. Callers prove the path safe first (:func:`pgstream.hosts.datadir.check_replaceable`).
    """
    path = Path(path)
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
        raise InvalidInput(f"refusing to wipe {path}: not an absolute path below /")
    return ("find", str(path), "-mindepth", "1", "-delete")


def remove_tree(path: Path) -> tuple[str, ...]:
    """``rm -rf --one-file-system PATH`` (callers prove the path safe first)."""
    if not path.is_absolute() or ".." in path.parts or len(path.parts) < 3:
        raise InvalidInput(f"refusing to remove {path}: not a deep absolute path")
    return ("rm", "-rf", "--one-file-system", "--", str(path))
