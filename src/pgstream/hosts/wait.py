"""Waiting with a deadline: poll a condition quickly at first, then less often."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pgstream.errors import WaitTimeout

T = TypeVar("T")

DEFAULT_TIMEOUT = 60.0


def wait_for(condition: Callable[[], T | None], *, timeout: float, what: str,
             detail: Callable[[], str] | None = None) -> T:
    """Call ``condition`` until it returns something truthy; return that.

    Starts at 2 ms between tries and doubles up to 100 ms, so fast events are seen fast
    without busy-looping. On timeout raises :class:`WaitTimeout` saying what was awaited and,
    if ``detail`` is given, the state seen last.
    """
    deadline = time.monotonic() + timeout
    pause = 0.002
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            extra = ""
            if detail is not None:
                try:
                    extra = f"; last seen: {detail()}"
                except Exception as exc:  # noqa: BLE001 - the detail is best effort
                    extra = f"; (could not read state: {exc})"
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.1)
