"""One thread per task: asking several nodes or hosts at once, so that the slowest one (not
the sum) sets the time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_parallel(tasks: Iterable[tuple[str, Callable[[], T]]]) -> dict[str, T]:
    """Run one callable per key, each in its own thread; their results by key (the first
    error, if any, is raised once all are done)."""
    items = list(tasks)
    if len(items) <= 1:
        return {key: call() for key, call in items}
    with ThreadPoolExecutor(max_workers=min(16, len(items))) as pool:
        futures = {key: pool.submit(call) for key, call in items}
        return {key: future.result() for key, future in futures.items()}
