"""The one-command scripts of render/scripts (stop, start, several files), run on this
machine's shell: what they print, and what they refuse."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pgstream.errors import InvalidInput
from pgstream.hosts.host import LocalHost
from pgstream.render import scripts


def test_read_files_reads_present_and_absent_files_in_one_command(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"one\ntwo: \xc3\xa9\n")
    (tmp_path / "empty").write_text("")
    paths = (tmp_path / "a", tmp_path / "missing", tmp_path / "empty")
    done = LocalHost().run(scripts.read_files(paths))
    assert scripts.read_files_outcome(done.output, 3) == ["one\ntwo: é\n".encode(), None, b""]
    assert scripts.read_files_outcome("ssh: warning\n" + done.output, 3) is not None
    assert scripts.read_files_outcome(done.output, 2) is None  # a file's answer missing
    with pytest.raises(InvalidInput):
        scripts.read_files(())


def test_write_files_writes_each_atomically_with_its_mode(tmp_path: Path) -> None:
    (tmp_path / "b").write_text("old")
    files = ((tmp_path / "a", 0o600, ""), (tmp_path / "b", 0o640, ""))
    argv = scripts.write_files(files)
    secret = "host:5432:*:u:pa ss'\"word\n"
    assert not any("pa ss" in a for a in argv)  # the contents travel on stdin only
    LocalHost().run(argv, stdin=scripts.write_files_input((secret, "")))
    assert (tmp_path / "a").read_text() == secret and (tmp_path / "b").read_text() == ""
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temp file left
    with pytest.raises(InvalidInput, match="owner"):
        scripts.write_files(((tmp_path / "a", 0o600, "root; rm -rf /"),))


def test_watch_outcome_reads_the_last_marker() -> None:
    assert scripts.watch_outcome("waiting\n<<stop:gone:123>>\n", "stop") == ("gone", 123)
    assert scripts.watch_outcome("<<stop:none:>>", "stop") == ("none", None)
    assert scripts.watch_outcome("<<start:ready:9>>", "stop") is None
    assert scripts.watch_outcome("pg_ctl: could not start server", "start") is None
    with pytest.raises(InvalidInput):
        scripts.stop_watched(("pg_ctl", "stop"), Path("/d"), 0)


def _pidfile(data_dir: Path, pid: int, status: str) -> None:
    (data_dir / "postmaster.pid").write_text(
        f"{pid}\n{data_dir}\n1700000000\n5432\n/tmp\n*\n  1  2\n{status:<8}\n")


def test_start_watched_waits_for_ready_and_reads_only_the_new_log(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "d", tmp_path / "log"
    data_dir.mkdir()
    log.write_text("FATAL: an old failure, logged before this start\n")
    start = tmp_path / "start"
    # A "pg_ctl start" that writes a pid file naming a live process (this test), ready.
    start.write_text(f"#!/bin/sh\nprintf '%s\\n' '{os.getpid()}' '{data_dir}' 1 2 3 4 5 "
                     f"'ready   ' > '{data_dir}/postmaster.pid'\necho started >> '{log}'\n")
    start.chmod(0o755)
    argv = scripts.start_watched((str(start),), data_dir, log, 5)
    done = LocalHost().run(argv)
    assert scripts.watch_outcome(done.output, "start") == ("ready", os.getpid())
    # A FATAL logged before the start is not this start's: no pid file yet is not a failure.
    (data_dir / "postmaster.pid").unlink()
    done = LocalHost().run(scripts.start_watched(("true",), data_dir, log, 1))
    assert scripts.watch_outcome(done.output, "start") == ("timeout", None)


def test_start_watched_fails_on_a_new_fatal_and_on_a_dead_postmaster(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "d", tmp_path / "log"
    data_dir.mkdir()
    log.write_text("an old line\n")
    fails = tmp_path / "fails"
    fails.write_text(f"#!/bin/sh\necho 'FATAL:  could not bind' >> '{log}'\n")
    fails.chmod(0o755)
    done = LocalHost().run(scripts.start_watched((str(fails),), data_dir, log, 5))
    assert scripts.watch_outcome(done.output, "start") == ("fatal", None)
    # A pid file that names a process that is gone: it died while starting.
    dies = tmp_path / "dies"
    dies.write_text(f"#!/bin/sh\nprintf '%s\\n' 999999999 '{data_dir}' > "
                    f"'{data_dir}/postmaster.pid'\n")
    dies.chmod(0o755)
    done = LocalHost().run(scripts.start_watched((str(dies),), data_dir, None, 5))
    assert scripts.watch_outcome(done.output, "start") == ("died", 999999999)
    # That file, left over, is stale for the next start: its dead pid is not taken for it.
    _pidfile(data_dir, 999999999, "ready")
    done = LocalHost().run(scripts.start_watched(("true",), data_dir, None, 1))
    assert scripts.watch_outcome(done.output, "start") == ("timeout", None)
