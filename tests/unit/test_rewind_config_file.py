"""A rejoin's pg_rewind and the target's postgresql.conf: ``--config-file`` (pg_rewind 15+)
when the configuration lies outside the data directory (Debian's ``/etc/postgresql``), a clear
refusal when an older pg_rewind would need it for crash recovery, nothing for a data directory
that holds its own configuration. Pure: nothing is run."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstream.errors import RejoinRefused
from pgstream.facts.version import ServerVersion
from pgstream.hosts.host import LocalHost
from pgstream.hosts.service import DebianClusterService, PgCtlService
from pgstream.nodes.node import Node
from pgstream.ops.rejoin import config_file_outside, rewind_config_file
from pgstream.render import commands

CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
CONF = Path("/etc/postgresql/15/main/postgresql.conf")


def _debian(major: str = "15") -> Node:
    service = DebianClusterService.for_cluster(LocalHost(), major, "main")
    return Node("beta", CONNINFO, data_dir=service.data_dir, service=service)


def _plain() -> Node:
    data = Path("/srv/pg/data")
    return Node("beta", CONNINFO, data_dir=data,
                service=PgCtlService(LocalHost(), Path("/usr/lib/postgresql/15/bin"), data))


def test_the_argv_has_no_config_file_by_default() -> None:
    argv = commands.pg_rewind(Path("/bin"), Path("/data"), "host=a")
    assert not any(a.startswith("--config-file") for a in argv)


def test_the_argv_carries_the_config_file_given() -> None:
    argv = commands.pg_rewind(Path("/bin"), Path("/data"), "host=a", config_file=CONF)
    assert argv[-1] == f"--config-file={CONF}"
    assert argv[:2] == ("/bin/pg_rewind", "--target-pgdata")


def test_a_debian_cluster_keeps_its_configuration_outside() -> None:
    assert config_file_outside(_debian()) == CONF
    assert config_file_outside(_plain()) is None


@pytest.mark.parametrize("tool", ["15.4", "16.2", "18.1"])
@pytest.mark.parametrize("crash", [True, False])
def test_pg_rewind_15_and_later_get_the_config_file(tool: str, crash: bool) -> None:
    found = rewind_config_file(_debian(), ServerVersion.parse(tool), crash_recovery=crash)
    assert found == CONF


@pytest.mark.parametrize("tool", ["13.14", "14.11", "15.4", "18.1"])
def test_a_data_directory_with_its_own_configuration_needs_none(tool: str) -> None:
    assert rewind_config_file(_plain(), ServerVersion.parse(tool), crash_recovery=True) is None


@pytest.mark.parametrize("tool", ["13.14", "14.11"])
def test_an_older_pg_rewind_is_refused_when_it_must_run_crash_recovery(tool: str) -> None:
    node = _debian(tool.split(".")[0])
    with pytest.raises(RejoinRefused) as caught:
        rewind_config_file(node, ServerVersion.parse(tool), crash_recovery=True)
    text = str(caught.value)
    assert "--config-file" in text and "15+" in text and "nothing changed" in text
    assert f"/etc/postgresql/{tool.split('.')[0]}/main/postgresql.conf" in text
    assert "--single" in text  # what to do instead


@pytest.mark.parametrize("tool", ["13.14", "14.11"])
def test_an_older_pg_rewind_of_a_clean_target_needs_no_configuration(tool: str) -> None:
    node = _debian(tool.split(".")[0])
    assert rewind_config_file(node, ServerVersion.parse(tool), crash_recovery=False) is None
