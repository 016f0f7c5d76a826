"""pytest fixtures for code that needs a streaming cluster (installed as a pytest11 plugin).

Fixtures:
- ``pgstream_server``: the :class:`~pgstream.hosts.binaries.Installation` tests run against
  (``--pgstream-bindir``, ``$PGSTREAM_BINDIR`` or discovery); the report header names it and
  the ``pg_basebackup`` in use.
- ``pgstream_cluster``: a sandbox primary with one streaming standby, per test module.
- ``pgstream_sandbox``: a factory, ``pgstream_sandbox(standbys=3)``; every cluster it made is
  removed when the test ends, whatever happened.
- ``pgstream_db``: a fresh database for each test (like pytest-postgresql's ``postgresql``) on
  ``pgstream_shared_cluster``, one primary + standby for the whole session: created, on the
  standby before the test body runs, dropped after the test.
- ``pgstream_cache_dir``: where initdb templates are kept, between runs by default
  (``~/.cache/pgstream``, ``$PGSTREAM_CACHE_DIR``), so a one-test run does not pay initdb;
  ``--pgstream-fresh-cache`` keeps them for the session only.

Marker: ``@pytest.mark.pg(">= 13")`` skips a test on servers the spec does not match
(the ``pg`` marker of psycopg's own suite), instead of ``if`` branches inside tests.
"""

from __future__ import annotations

import itertools
import operator
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors

from pgstream.cluster import Cluster
from pgstream.errors import InvalidInput, QueryError
from pgstream.facts.lsn import Lsn
from pgstream.facts.version import major_num
from pgstream.hosts import binaries
from pgstream.hosts.binaries import Installation
from pgstream.nodes.node import Primary, Standby
from pgstream.ops.sandbox.template import cache_dir
from pgstream.render import catalog

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
        raise InvalidInput(f"bad pg marker spec {spec!r}: use e.g. '>= 13' or '< 12'")
    op = _OPS[match[1] or "=="]
    server_major = server_num // 100 * 100 if server_num < 100000 else server_num // 10000 * 10000
    return op(server_major, major_num(match[2]))


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--pgstream-bindir`` and ``--pgstream-fresh-cache`` to pytest's options."""
    parser.addoption("--pgstream-bindir", default=None,
                     help="PostgreSQL bin directory for pgstream's fixtures")
    parser.addoption("--pgstream-fresh-cache", action="store_true", default=False,
                     help="keep initdb templates for this session only (in a temporary "
                          "directory removed at its end), not in ~/.cache/pgstream")


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``pg(spec)`` marker; ``--pgstream-bindir`` sets
    ``$PGSTREAM_BINDIR`` for the whole session."""
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
    """The header line naming the PostgreSQL server and pg_basebackup the tests use."""
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
    """Skip a test whose ``pg(spec)`` markers the server's version does not match."""
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
def pgstream_cache_dir(request: pytest.FixtureRequest) -> Iterator[str]:
    """Where sandboxes keep their initdb templates: ``$PGSTREAM_CACHE_DIR`` if set, else
    ``~/.cache/pgstream`` (``$XDG_CACHE_HOME``), outside any repository and kept between runs
    (templates are keyed by binaries, version, user and initdb options; made under a lock).
    With ``--pgstream-fresh-cache``: a temporary directory, removed when the session ends."""
    if "PGSTREAM_CACHE_DIR" in os.environ or not request.config.getoption(
            "--pgstream-fresh-cache"):
        yield str(cache_dir())
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
    """The PostgreSQL installation the fixtures use (``--pgstream-bindir``,
    ``$PGSTREAM_BINDIR`` or discovery); raises :class:`~pgstream.errors.BinaryNotFound`."""
    return binaries.find_server()


@pytest.fixture
def pgstream_sandbox(pgstream_server: Installation) -> Iterator[Callable[..., Cluster]]:
    """A factory of sandbox clusters: ``pgstream_sandbox(standbys=1, **kwargs)`` takes
    :meth:`~pgstream.cluster.Cluster.sandbox`'s arguments; each cluster made is closed when
    the test ends."""
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
    """A sandbox of a primary and one standby, shared by the tests of one module."""
    with Cluster.sandbox(standbys=1, bindir=pgstream_server.bindir) as cluster:
        yield cluster



@pytest.fixture(scope="session")
def pgstream_shared_cluster(pgstream_server: Installation) -> Iterator[Cluster]:
    """One sandbox primary + streaming standby for the whole session, behind ``pgstream_db``.
    Tests must leave it as they found it (use ``pgstream_sandbox`` to break servers)."""
    with Cluster.sandbox(standbys=1, bindir=pgstream_server.bindir) as cluster:
        yield cluster


@attrs.frozen
class PgStreamDatabase:
    """A database of one test's own on the shared primary, replicated to its standby.

    ``primary`` and ``standby`` are nodes connected to this database (the standby's is
    read-only); ``conninfo`` / ``standby_conninfo`` are their connection strings.
    """

    name: str
    cluster: Cluster
    primary: Primary
    standby: Standby

    @property
    def conninfo(self) -> str:
        """Connection string of this database on the primary."""
        return self.primary.conninfo

    @property
    def standby_conninfo(self) -> str:
        """Connection string of this database on the standby (read-only)."""
        return self.standby.conninfo

    def wait_for_catchup(self, timeout: float = 30.0) -> Lsn:
        """Wait until the standby has replayed everything written so far."""
        return self.cluster.wait_for_catchup(timeout=timeout)


_numbers = itertools.count(1)


def _database_name(test_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")
    return f"t{next(_numbers)}_{slug}"[:63].rstrip("_")


def _drop_database(primary: Primary, name: str) -> None:
    for attempt in range(5):
        primary.query(*catalog.terminate_sessions(name))
        try:
            primary.execute(catalog.drop_database(name))
            return
        except QueryError as exc:  # a session connected again in between: end it, retry
            if exc.sqlstate != pg_errors.ObjectInUse.sqlstate or attempt == 4:
                raise


@pytest.fixture
def pgstream_db(pgstream_shared_cluster: Cluster,
                request: pytest.FixtureRequest) -> Iterator[PgStreamDatabase]:
    """A fresh database for this test on the session's primary + standby: created, replayed
    by the standby before the test body runs, dropped (its sessions ended) afterwards."""
    cluster = pgstream_shared_cluster
    name = _database_name(request.node.name)
    cluster.primary.execute(catalog.create_database(name))
    primary = Primary(cluster.primary.name,
                      pg_conninfo.make_conninfo(cluster.primary.conninfo, dbname=name))
    standby = cluster.standbys[0]
    replica = Standby(standby.name, pg_conninfo.make_conninfo(standby.conninfo, dbname=name),
                      upstream=standby.upstream)
    try:
        cluster.wait_for_catchup()
        yield PgStreamDatabase(name, cluster, primary, replica)
    finally:
        primary.close()
        replica.close()
        _drop_database(cluster.primary, name)
