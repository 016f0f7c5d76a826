"""hosts/files over SSH: several files read in one command, written in one, contents on
stdin. The "remote" shell is this machine's (the command ssh would send runs under sh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pgstream.errors import OperationFailed
from pgstream.facts.identifiers import Secret
from pgstream.facts.version import ServerVersion
from pgstream.hosts import files
from pgstream.hosts.host import Completed, LocalHost
from pgstream.hosts.ssh import SshHost
from pgstream.ops.recovery import RecoveryConfig, write_passfile


class Loopback:
    """Runs what ssh would send to the remote shell here, recording each command."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], str | None]] = []

    def run(self, argv: list[str], *, stdin: str | None = None, **kwargs: Any) -> Completed:
        self.calls.append((list(argv), stdin))
        return LocalHost().run(("sh", "-c", argv[-1]), stdin=stdin, check=False)


def _host() -> tuple[SshHost, Loopback]:
    host = SshHost("db1.example", login="root")
    loop = Loopback()
    host._local = loop  # type: ignore[assignment]
    return host, loop


def test_read_and_write_files_one_command_each(tmp_path: Path) -> None:
    host, loop = _host()
    (tmp_path / "a").write_text("x = 1\n")
    found = files.read_files(host, [tmp_path / "a", tmp_path / "b"])
    assert found == {tmp_path / "a": "x = 1\n", tmp_path / "b": None}
    assert len(loop.calls) == 1
    secret = "h:5432:*:u:s3cr3t'\"pw\n"
    files.write_files(host, {tmp_path / "a": "", tmp_path / "b": secret})
    assert len(loop.calls) == 2
    argv, stdin = loop.calls[1]
    assert stdin is not None and all("s3cr3t" not in word for word in argv)
    assert (tmp_path / "a").read_text() == "" and (tmp_path / "b").read_text() == secret
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o600
    loop.run = lambda argv, **kw: Completed(tuple(argv), 0, "garbage", 0.0)  # type: ignore
    with pytest.raises(OperationFailed, match="unexpected output"):
        files.read_files(host, [tmp_path / "a"])


def test_a_follower_s_files_in_four_commands(tmp_path: Path) -> None:
    host, loop = _host()
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "postgresql.auto.conf").write_text("work_mem = '8MB'\n")
    passfile = tmp_path / "data.pgpass"
    assert write_passfile(host, passfile, address=("10.0.0.2", 5432), user="replicator",
                          password=Secret("pw"), owner=None)
    assert not write_passfile(host, passfile, address=("10.0.0.2", 5432), user="replicator",
                              password=Secret("pw"), owner=None)  # read only: unchanged
    assert len(loop.calls) == 3
    config = RecoveryConfig.build(ServerVersion.parse("16.2"), upstream=("10.0.0.2", 5432),
                                  user="replicator", application_name="s1", slot="s1",
                                  passfile=passfile)
    written = config.write(host, data_dir, None)
    assert len(loop.calls) == 5  # auto.conf read; standby.signal + auto.conf written
    assert set(written) == {"standby.signal", "postgresql.auto.conf"}
    auto = (data_dir / "postgresql.auto.conf").read_text()
    assert "work_mem = '8MB'" in auto and "primary_slot_name = 's1'" in auto
    assert (data_dir / "standby.signal").exists()
