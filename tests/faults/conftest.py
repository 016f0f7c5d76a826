"""Fixtures of the fault suite: every server it starts lives under one directory of its own
(``/dev/shm/pgstream-faults-*``), so whatever a fault leaves behind, the cleanup can prove
which processes are the suite's and kill them, then remove the directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pgstream import Cluster

from ._internal import Installation
from .helpers import sweep

MakeCluster = Callable[..., Cluster]
BIG_ROWS = 500_000  # ~ 520 MB: a clone takes a few seconds here (about 2.5 s on /dev/shm)


def _parent() -> Path:
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _make_dir(parent: Path, prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)  # the server user must enter it
    return path


def _remove(path: Path) -> None:
    left = sweep(path)
    if left:
        warnings.warn(f"fault suite: killed {len(left)} leftover processes of {path}, "
                      f"e.g. {left[0][:200]}", stacklevel=1)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _session_cache(pgstream_cache_dir: str) -> str:
    return pgstream_cache_dir


@pytest.fixture(scope="session")
def fault_root() -> Iterator[Path]:
    root = _make_dir(_parent(), "pgstream-faults-")
    try:
        yield root
    finally:
        _remove(root)


@pytest.fixture
def box_dir(fault_root: Path) -> Iterator[Path]:
    """A directory for one test's sandboxes; afterwards every process proven to be in it is
    killed and it is removed, whatever the test did."""
    path = _make_dir(fault_root, "t-")
    try:
        yield path
    finally:
        _remove(path)


@pytest.fixture
def sandbox(pgstream_server: Installation, box_dir: Path) -> Iterator[MakeCluster]:
    """``sandbox(2, ...)``: Cluster.sandbox in this test's directory, closed afterwards."""
    made: list[Cluster] = []

    def make(standbys: int = 1, **kwargs: Any) -> Cluster:
        kwargs.setdefault("bindir", pgstream_server.bindir)
        kwargs.setdefault("base_dir", box_dir)
        cluster = Cluster.sandbox(standbys=standbys, **kwargs)
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.close()


@pytest.fixture(scope="module")
def big(pgstream_server: Installation, fault_root: Path) -> Iterator[Cluster]:
    """A sandbox primary (no standby) holding ~520 MB, so that a clone takes seconds; shared
    by a module's clone faults, each of which leaves it as it found it."""
    path = _make_dir(fault_root, "big-")
    cluster = None
    try:
        cluster = Cluster.sandbox(standbys=0, bindir=pgstream_server.bindir, base_dir=path)
        cluster.primary.execute(
            "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad "
            "FROM generate_series(1, %s) g", (BIG_ROWS,))
        cluster.primary.execute("CHECKPOINT")
        yield cluster
    finally:
        if cluster is not None:
            cluster.close()
        _remove(path)


