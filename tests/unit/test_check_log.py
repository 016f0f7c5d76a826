"""Where ``check()`` finds a standby's server log (:func:`locate_log`) and that it asks for
the settings it needs to (:func:`pgstream.render.probes.check_settings`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import attrs
import pytest

from pgstream.facts.version import ServerVersion
from pgstream.nodes.node import Node
from pgstream.ops.check.probe import locate_log
from pgstream.render import probes
from tests.fake_host import FakeHost

V96, V18 = ServerVersion.parse("9.6.24"), ServerVersion.parse("18.1")


@attrs.define
class _Service:
    log_file: Path | None


@attrs.define
class _Node:
    """Just what :func:`locate_log` uses of a node."""

    host: FakeHost
    data_dir: Path | None = None
    service: _Service | None = None
    current: str | None = None
    asked: list[str] = attrs.field(factory=list)

    def value(self, statement: Any, params: Any = None) -> str | None:
        self.asked.append(str(statement))
        return self.current


def _locate(node: _Node, settings: dict[str, str],
            version: ServerVersion | None = V18) -> tuple[Path | None, str]:
    return locate_log(cast(Node, node), settings, version)


@pytest.mark.parametrize("version", [V96, V18], ids=["9.6", "18"])
def test_check_settings_asks_for_what_locates_the_log(version: ServerVersion) -> None:
    _, params = probes.check_settings(version)
    assert isinstance(params, tuple) and isinstance(params[0], list)
    names = {str(n) for n in params[0]}
    assert {"logging_collector", "log_directory", "data_directory"} <= names
    assert set(probes.CHECK_SETTINGS) - names <= {
        "max_slot_wal_keep_size", "primary_conninfo", "primary_slot_name"}


def test_collector_on_reads_pg_current_logfile_relative_to_the_data_directory() -> None:
    node = _Node(FakeHost(), Path("/ignored"), _Service(Path("/srv/pg.log")),
                 current="log/postgresql-2026-12-02_180000.log")
    path, how = _locate(node, {"logging_collector": "on", "log_directory": "log",
                               "data_directory": "/srv/data"})
    assert path == Path("/srv/data/log/postgresql-2026-12-02_180000.log")
    assert how == "pg_current_logfile()" and node.asked


def test_collector_on_with_an_absolute_current_logfile() -> None:
    node = _Node(FakeHost(), current="/var/log/pg/postgresql.log")
    path, _ = _locate(node, {"logging_collector": "on", "log_directory": "/var/log/pg",
                             "data_directory": "/srv/data"})
    assert path == Path("/var/log/pg/postgresql.log")


@pytest.mark.parametrize(("directory", "where"), [
    ("pg_log", "/srv/data/pg_log"), ("/var/log/pg", "/var/log/pg")], ids=["relative", "absolute"])
def test_collector_on_96_takes_the_newest_file_of_log_directory(directory: str,
                                                                where: str) -> None:
    host = FakeHost()
    for name in ("postgresql-2026-12-01_000000.log", "postgresql-2026-12-02_000000.log",
                 ".hidden"):
        host.add_file(Path(where) / name, "")
    node = _Node(host, service=_Service(Path("/srv/pg.log")))
    path, how = _locate(node, {"logging_collector": "on", "log_directory": directory,
                               "data_directory": "/srv/data"}, V96)
    assert path == Path(where) / "postgresql-2026-12-02_000000.log"
    assert how == "log_directory (newest file)" and not node.asked


def test_collector_on_but_no_file_yet_falls_back_to_the_service_log() -> None:
    node = _Node(FakeHost(), service=_Service(Path("/srv/pg.log")), current=None)
    path, how = _locate(node, {"logging_collector": "on", "log_directory": "log",
                               "data_directory": "/srv/data"})
    assert path == Path("/srv/pg.log") and how == "its service's log file"


def test_collector_off_reads_the_service_log() -> None:
    node = _Node(FakeHost(), service=_Service(Path("/srv/pg.log")), current="log/x.log")
    path, how = _locate(node, {"logging_collector": "off", "data_directory": "/srv/data"})
    assert path == Path("/srv/pg.log") and how == "its service's log file" and not node.asked


def test_debian_path_from_the_reported_data_directory_of_a_conninfo_only_node() -> None:
    node = _Node(FakeHost())
    path, how = _locate(node, {"logging_collector": "off",
                               "data_directory": "/var/lib/postgresql/16/main"})
    assert path == Path("/var/log/postgresql/postgresql-16-main.log")
    assert how == "Debian's /var/log/postgresql"


def test_nothing_known_gives_no_log() -> None:
    assert _locate(_Node(FakeHost()), {}, None) == (None, "")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 0, -1, True, "5"])
def test_check_timeout_must_be_finite_and_positive(bad: object) -> None:
    from pgstream.errors import InvalidInput
    from tests.fakes import fake_cluster

    rig = fake_cluster(("s1",))
    with pytest.raises(InvalidInput, match="timeout"):
        rig.cluster.check(timeout=bad)  # type: ignore[arg-type]
    assert rig.changes() == {}
