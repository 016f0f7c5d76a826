"""A workload for checking "no acknowledged commit lost": a writer thread that commits
numbered rows until its server goes away, and remembers which commits returned.

    with acked_writer(cluster.primary.conninfo) as acked:   # table acked (id int) must exist
        cluster.switchover("standby1")
    # every number in acked is in the new primary's acked table

Used by pgstream's own tests and benchmarks; handy for testing a deployment the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def acked_writer(conninfo: str) -> Iterator[list[int]]:
    """Commit ``INSERT INTO acked VALUES (n)`` for n = 1, 2, ... in autocommit, in a thread,
    until the connection fails or the block ends; yields the list of numbers whose commit
    returned (acknowledged), growing as it goes."""
    acked: list[int] = []
    stop = threading.Event()

    def run() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                number = 0
                while not stop.is_set():
                    number += 1
                    conn.execute("INSERT INTO acked VALUES (%s)", (number,))
                    acked.append(number)  # the commit returned: acknowledged
        except psycopg.Error:
            return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield acked
    finally:
        stop.set()
        thread.join(timeout=30)
