"""The initdb template cache: a sandbox's data directory copied from a cached initdb result.

initdb takes about a second; copying its result takes a fraction of that. The cache lives in
:func:`cache_dir` (``templates/KEY``), one template per server installation, OS user and
initdb options; parallel runs make each template once (a ``flock`` beside it) and a template
appears whole or not at all (copied to a staging directory, then renamed). Without a
writable cache, every sandbox runs initdb itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pgstream.errors import PgStreamError
from pgstream.hosts.binaries import Installation
from pgstream.hosts.host import LocalHost, OsUser


def cache_dir() -> Path:
    """``$PGSTREAM_CACHE_DIR``, else ``$XDG_CACHE_HOME/pgstream``, else ``~/.cache/pgstream``."""
    if env := os.environ.get("PGSTREAM_CACHE_DIR"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pgstream"


def initdb(host: LocalHost, server: Installation, user: OsUser, argv: tuple[str, ...],
           data: Path, *, template: bool = True) -> None:
    """Make the data directory ``data`` as the initdb ``argv`` would, run as ``user``: a copy
    of the cached template for the same installation, user and options when ``template``
    (made and kept by the first run that needs it), else initdb itself. Raises what
    :meth:`~pgstream.hosts.host.LocalHost.run` raises when initdb fails."""
    if not template:
        host.run(argv, user=user, what="initdb")
        return
    key = hashlib.sha256(json.dumps(
        [str(server.bindir), server.version.num, user.uid, argv[3:]]
    ).encode()).hexdigest()[:16]
    cached = cache_dir() / "templates" / key
    if (cached / "PG_VERSION").is_file():
        host.copy_tree(cached, data)
        return
    with _template_lock(cached):  # another run making the same template: wait for it
        if (cached / "PG_VERSION").is_file():
            host.copy_tree(cached, data)
            return
        host.run(argv, user=user, what="initdb")
        _keep(host, data, cached, key)


def _keep(host: LocalHost, data: Path, cached: Path, key: str) -> None:
    """Copy ``data`` to the cache as ``cached``, whole or not at all; never fails."""
    with contextlib.suppress(OSError, PgStreamError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cached.parent))
        try:
            host.copy_tree(data, staging / "data")
            os.replace(staging / "data", cached)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@contextlib.contextmanager
def _template_lock(cached: Path) -> Iterator[None]:
    """An exclusive lock (``flock``) on ``.KEY.lock`` beside the template, so parallel runs
    make each template once; without a writable cache, no lock (and no template kept)."""
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        handle = open(cached.parent / f".{cached.name}.lock", "a")  # noqa: SIM115
    except OSError:
        yield
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
