"""A child process for the signal faults: ``python -m tests.faults.child SCENARIO BASE_DIR``.

It holds a sandbox in BASE_DIR and prints one JSON object per line: each plan progress event
(``{"ev": "progress", "kind": ..., "event": ..., "node": ...}``), ``{"ev": "ready"}`` when
its sandbox stands, and, when an operation is interrupted, ``{"ev": "interrupted",
"writable": [...]}`` (the servers that accepted writes at once, watched for 3 s) before the
interruption goes on and the sandbox is closed. Scenarios:

- ``sandbox``: Cluster.sandbox(standbys=1), then holds it (60 s at most).
- ``padded``: pads the initdb template (600 MB) first, so the template copy takes a while,
  then Cluster.sandbox(standbys=1) and holds it.
- ``switchover``: a sandbox of 1 standby, then switchover("standby1").
- ``add_standby``: a sandbox of 1 standby and 150 MB of rows, then add_standby("standby9").
- ``existing_switchover`` and ``existing_add_standby``: the same on the sandbox's servers
  declared as existing ones (``Cluster(primary, standbys)``), the sandbox's own SIGTERM hold
  dropped first (``keep``), so only the plan's hold turns SIGTERM into a rollback. Their
  ``interrupted`` line also gives the primary's slots and whether standby9's directory has
  files.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from pgstream import Cluster, ProgressEvent

from .helpers import max_writable


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def progress(event: ProgressEvent) -> None:
    emit(ev="progress", kind=event.step.kind.value, event=event.event, node=event.step.node,
         percent=event.percent)


def pad_templates(cache: Path) -> None:
    for template in (cache / "templates").iterdir():
        if (template / "PG_VERSION").is_file():
            with open(template / "pgstream_fault_pad", "wb") as handle:
                for _ in range(600):
                    handle.write(b"\0" * (1 << 20))


def hold(cluster: Cluster) -> None:
    emit(ev="ready", base=str(cluster.base_dir))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _slots(cluster: Cluster) -> list[str]:
    try:
        rows = cluster.primary.query("SELECT slot_name FROM pg_replication_slots ORDER BY 1")
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return [f"error: {exc}"]
    return [str(row[0]) for row in rows]


def operation(base: Path, cluster: Cluster, name: str) -> None:
    declared = None
    if name.startswith("existing_"):
        from .test_split_brain import rewrap
        from .test_validation import future_standby

        assert cluster._sandbox is not None
        cluster._sandbox.keep()  # no sandbox hold on SIGTERM: servers "not ours"
        standby = future_standby(cluster, "standby9")
        declared = rewrap(cluster)
    emit(ev="ready", base=str(cluster.base_dir))
    try:
        if name == "switchover":
            cluster.switchover("standby1", progress=progress, timeout=30)
        elif name == "add_standby":
            cluster.add_standby("standby9", progress=progress, timeout=30)
        elif name == "existing_switchover" and declared is not None:
            declared.switchover("standby1", progress=progress, timeout=30)
        elif declared is not None:
            declared.add_standby_plan(standby, timeout=30).apply(progress)
    except BaseException as exc:
        writable = max_writable(base, 3)
        extra: dict[str, object] = {}
        if declared is not None:
            clone = base / "standby9"
            extra = {"slots": _slots(declared), "clone_files": clone.is_dir() and any(
                clone.iterdir())}
        emit(ev="interrupted", error=repr(exc)[:300], writable=writable, **extra)
        raise
    emit(ev="finished")


def main(scenario: str, base_dir: str) -> int:
    base = Path(base_dir)
    if scenario == "padded":
        Cluster.sandbox(0, base_dir=base).close()
        pad_templates(Path(os.environ["PGSTREAM_CACHE_DIR"]))
        emit(ev="padded")
    standbys = 1
    with Cluster.sandbox(standbys, base_dir=base, progress=progress) as cluster:
        if scenario in ("sandbox", "padded"):
            hold(cluster)
        else:
            if scenario.endswith("add_standby"):
                cluster.primary.execute(
                    "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 30) AS pad "
                    "FROM generate_series(1, 150000) g")
            operation(base, cluster, scenario)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
