"""Fixtures shared by every kind of test (unit, integration, multi-host)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pgstream.hosts.host import LocalHost

from .recording import Recorder, install_recorder

_BASETEMP = pytest.StashKey[Path]()
_PREFIX = "pgstream-pytest-"


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    """Put every ``tmp_path`` of this run in one directory that is removed when the run ends.

    pytest's default keeps the last three runs in ``$TMPDIR/pytest-of-USER``; this suite leaves
    nothing behind. A run killed with SIGKILL cannot clean up: its directory carries its pid
    and the next run removes it once that process is gone. ``--basetemp`` still wins.
    """
    if config.option.basetemp is not None:
        return
    top, host = Path(tempfile.gettempdir()), LocalHost()
    for stale in top.glob(f"{_PREFIX}*-*"):
        pid = stale.name[len(_PREFIX):].split("-", 1)[0]
        mine = stale.stat().st_uid == os.getuid()
        if mine and pid.isdigit() and not host.process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    base = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
    config.stash[_BASETEMP] = base
    config.option.basetemp = str(base)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's ``tmp_path`` directory (see :func:`pytest_configure`)."""
    base = config.stash.get(_BASETEMP, None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Records the effects plans run (see :mod:`tests.recording`)."""
    return install_recorder(monkeypatch)
