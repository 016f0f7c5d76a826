"""Fixtures shared by every kind of test (unit, integration, multi-host)."""

from __future__ import annotations

import pytest

from .recording import Recorder, install_recorder


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Records the effects plans run (see :mod:`tests.recording`)."""
    return install_recorder(monkeypatch)
