"""The plugin's shareable fixtures, run as a user's suite would run them (pytester)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


pytestmark = pytest.mark.version_independent

SUITE = '''
import os
from pathlib import Path


def _check_alone(db):
    names = [n for (n,) in db.cluster.primary.query(
        "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres'")]
    assert names == [db.name], names  # the other test's database is gone


def test_first(pgstream_db):
    db = pgstream_db
    _check_alone(db)
    marker = os.environ.get("EXPECT_TEMPLATE_MARKER")
    if marker:  # the primary's data directory is a copy of the kept template: no initdb
        assert (Path(db.cluster.primary.data_dir) / marker).exists()
    db.primary.execute("CREATE TABLE t (id int PRIMARY KEY)")
    db.primary.execute("INSERT INTO t VALUES (1)")
    db.wait_for_catchup()
    assert db.standby.query("SELECT count(*) FROM t") == [(1,)]


def test_second_creates_the_same_table(pgstream_db):
    db = pgstream_db
    _check_alone(db)
    # on the standby before the body runs: connect there at once
    assert db.standby.query("SELECT current_database()") == [(db.name,)]
    db.primary.execute("CREATE TABLE t (id int PRIMARY KEY)")
    db.primary.execute("INSERT INTO t VALUES (2), (3)")
    db.wait_for_catchup()
    assert db.standby.query("SELECT count(*) FROM t") == [(2,)]
'''


def test_pgstream_db_gives_each_test_its_own_database_and_keeps_the_template(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = Path(pytester.path) / "cache"
    monkeypatch.setenv("PGSTREAM_CACHE_DIR", str(cache))
    pytester.makepyfile(test_suite=SUITE)
    try:
        first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
        first.assert_outcomes(passed=2)
        templates = [p for p in (cache / "templates").iterdir() if p.is_dir()]
        assert len(templates) == 1 and (templates[0] / "PG_VERSION").is_file()
        (templates[0] / "pgstream-test-marker").write_text("from the template\n")
        monkeypatch.setenv("EXPECT_TEMPLATE_MARKER", "pgstream-test-marker")
        second = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
        second.assert_outcomes(passed=2)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
