"""The ``pgstream`` command, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgstream.cli import main
from pgstream.hosts import binaries


def test_demo_prints_status_and_removes_everything(
        empty_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--standbys", "2", "--rows", "50", "--base-dir", str(empty_dir)]) == 0
    out = capsys.readouterr().out
    assert "standby1: 50 rows visible" in out and "standby2: 50 rows visible" in out
    assert re.search(r"standby2\s+primary\s+streaming", out)
    assert "base backup 100%" in out
    assert "removed the sandbox" in out
    assert list(empty_dir.iterdir()) == []


def test_demo_keep_then_sandbox_stop(empty_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--standbys", "1", "--rows", "5", "--keep", "--quiet",
                 "--base-dir", str(empty_dir)]) == 0
    out = capsys.readouterr().out
    match = re.search(r"pgstream sandbox-stop (\S+)", out)
    assert match is not None, out
    kept = Path(match[1])
    assert kept.is_dir() and "psql 'host=" in out
    assert main(["sandbox-stop", str(kept)]) == 0
    assert not kept.exists()
    assert main(["sandbox-stop", str(empty_dir)]) == 2  # not a sandbox: refused, untouched
    assert empty_dir.exists()


def test_demo_without_postgres_says_how_to_get_one(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("PGSTREAM_BINDIR", raising=False)
    monkeypatch.setattr(binaries, "discover", lambda: [])
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert "apt-get install postgresql" in err and "pgstream[server]" in err


def test_module_entry_point_and_binaries_listing() -> None:
    done = subprocess.run([sys.executable, "-m", "pgstream", "binaries"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "server+tools" in done.stdout
