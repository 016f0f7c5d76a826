"""testgres: a primary + 2 streaming replicas caught up, on disk; prints seconds as JSON.

Run by bench_peers.py as the OS user ``postgres`` (testgres runs initdb as the calling user)
with ``PG_BIN`` set and testgres importable (the bench_peers nox session's venv on
``PYTHONPATH``). Uses testgres's defaults (its cached initdb included); removes what it made.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time

import testgres  # type: ignore[import-not-found, unused-ignore]


def once(parent: str) -> float:
    base = tempfile.mkdtemp(prefix="testgres-", dir=parent)
    try:
        started = time.perf_counter()
        with testgres.get_new_node(base_dir=f"{base}/primary") as primary:
            primary.init(allow_streaming=True).start()
            replicas = []
            for name in ("r1", "r2"):
                with primary.backup() as backup:
                    replicas.append(backup.spawn_replica(name)
                                    .start())
            for replica in replicas:
                replica.catchup()
            elapsed = time.perf_counter() - started
            for replica in replicas:
                replica.cleanup()
        return elapsed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    parent = sys.argv[2] if len(sys.argv) > 2 else tempfile.gettempdir()
    once(parent)  # fills testgres's initdb cache, as pgstream's template is filled
    print(json.dumps({"version": getattr(testgres, "__version__", "?"),
                      "seconds": [once(parent) for _ in range(rounds)]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
