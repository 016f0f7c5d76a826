"""pytest fixtures for code that needs a streaming cluster (installed as a pytest11 plugin).

Fixtures:
- ``pgstream_server``: the :class:`~pgstream.hosts.binaries.Installation` tests run against
  (``--pgstream-bindir``, ``$PGSTREAM_BINDIR`` or discovery); the report header names it and
  the ``pg_basebackup`` in use.
- ``pgstream_cluster``: a sandbox primary with one streaming standby, per test module.
- ``pgstream_sandbox``: a factory, ``pgstream_sandbox(standbys=3)``; every cluster it made is
  removed when the test ends, whatever happened.

Marker: ``@pytest.mark.pg(">= 13")`` skips a test on servers the spec does not match
(the ``pg`` marker of psycopg's own suite), instead of ``if`` branches inside tests.
"""

from __future__ import annotations

import operator
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pgstream.cluster import Cluster
from pgstream.facts.version import major_num
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation

_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt,
    "==": operator.eq, "!=": operator.ne,
}
_SPEC = re.compile(r"^\s*(>=|<=|>|<|==|!=)?\s*(\d+(?:\.\d+)?)\s*$")


def version_matches(spec: str, server_num: int) -> bool:
    """``version_matches(">= 13", 150004)``: does a server version satisfy a marker spec?

    Compares majors: ``>= 13`` holds for any 13.x; ``== 9.6`` for any 9.6.x.
    """
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"bad pg marker spec {spec!r}: use e.g. '>= 13' or '< 12'")
    op = _OPS[match[1] or "=="]
    server_major = server_num // 100 * 100 if server_num < 100000 else server_num // 10000 * 10000
    return op(server_major, major_num(match[2]))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--pgstream-bindir", default=None,
                     help="PostgreSQL bin directory for pgstream's fixtures")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pg(spec): needs a server version matching spec, "
                                       "e.g. pg('>= 13')")
    if config.getoption("--pgstream-bindir"):
        os.environ["PGSTREAM_BINDIR"] = str(config.getoption("--pgstream-bindir"))


def _server() -> Installation | None:
    try:
        return binaries.find_server()
    except Exception:  # noqa: BLE001 - reported in the header, raised by the fixture
        return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    server = _server()
    if server is None:
        return ["pgstream: no PostgreSQL server found"]
    try:
        client = binaries.find_client("pg_basebackup", server.version, prefer=server)
        tools = f"pg_basebackup {client.version} ({client.bindir})"
    except Exception as exc:  # noqa: BLE001
        tools = f"no usable pg_basebackup: {exc}"
    return [f"pgstream: server PostgreSQL {server.version} ({server.bindir}); client {tools}"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    specs = [m.args[0] for m in item.iter_markers("pg")]
    if not specs:
        return
    server = _server()
    if server is None:
        return
    for spec in specs:
        if not version_matches(spec, server.version.num):
            pytest.skip(f"needs PostgreSQL {spec}; server is {server.version.major}")


@pytest.fixture(scope="session")
def pgstream_cache_dir() -> Iterator[str]:
    """initdb templates kept for this test session only (``$PGSTREAM_CACHE_DIR``), removed at
    its end, so tests leave nothing behind; an existing ``$PGSTREAM_CACHE_DIR`` is used as is."""
    if "PGSTREAM_CACHE_DIR" in os.environ:
        yield os.environ["PGSTREAM_CACHE_DIR"]
        return
    cache = tempfile.mkdtemp(prefix="pgstream-test-cache-")
    os.environ["PGSTREAM_CACHE_DIR"] = cache
    try:
        yield cache
    finally:
        os.environ.pop("PGSTREAM_CACHE_DIR", None)
        shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def pgstream_server(pgstream_cache_dir: str) -> Installation:
    return binaries.find_server()


@pytest.fixture
def pgstream_sandbox(pgstream_server: Installation) -> Iterator[Callable[..., Cluster]]:
    made: list[Cluster] = []

    def make(standbys: int = 1, **kwargs: Any) -> Cluster:
        kwargs.setdefault("bindir", pgstream_server.bindir)
        cluster = Cluster.sandbox(standbys=standbys, **kwargs)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()


@pytest.fixture(scope="module")
def pgstream_cluster(pgstream_server: Installation) -> Iterator[Cluster]:
    with Cluster.sandbox(standbys=1, bindir=pgstream_server.bindir) as cluster:
        yield cluster

