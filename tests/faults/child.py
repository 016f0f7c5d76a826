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

from .helpers import endpoint, max_writable, postmasters, wait_until, writable


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


def slots_of(base: Path) -> dict[str, list[list[object]]]:
    """Per running server's data directory (its name under ``base``): its slots as
    ``[name, active]``, or ``[["error: ...", False]]``."""
    import psycopg

    found: dict[str, list[list[object]]] = {}
    for item in postmasters(base):
        where = endpoint(Path(item.cwd))
        if where is None:
            continue
        try:
            with psycopg.connect(host=where[0], port=where[1], user="postgres",
                                 dbname="postgres", connect_timeout=3) as conn:
                rows = conn.execute("SELECT slot_name::text, active FROM pg_replication_slots "
                                    "ORDER BY 1").fetchall()
        except psycopg.Error as exc:
            rows = [(f"error: {exc}"[:200], False)]
        found[Path(item.cwd).name] = [[str(n), bool(a)] for n, a in rows]
    return found


def state(base: Path, watch: float = 0.0) -> dict[str, object]:
    """What runs in ``base`` now: the servers accepting writes (the most seen at once while
    watching ``watch`` s), the running servers, their slots, and the data directories that
    hold files but no ``PG_VERSION`` (half-made)."""
    box = next(base.glob("pgstream-*"), base)
    return {"writable": max_writable(base, watch) if watch else writable(base),
            "running": sorted(Path(p.cwd).name for p in postmasters(base)),
            "slots": slots_of(base),
            "half_made": sorted(d.name for d in box.iterdir() if d.is_dir()
                                and any(d.iterdir()) and not (d / "PG_VERSION").exists()
                                and d.name != "run")}


class Pause:
    """A progress callback that prints every event and waits at the named one."""

    def __init__(self, point: str) -> None:
        self.kind, self.event, self.node = point.split(":")
        self.armed = True

    def __call__(self, event: ProgressEvent) -> None:
        progress(event)
        if self.armed and (event.step.kind.value, event.event, event.step.node) == (
                self.kind, self.event, self.node):
            self.armed = False
            time.sleep(10)  # the signal lands here


def _retry_op(cluster: Cluster, op: str, progress_cb: object) -> None:
    callback = progress_cb if callable(progress_cb) else None
    if op == "switchover":
        cluster.switchover("standby1", progress=callback, timeout=30)
    elif op == "failover":
        cluster.failover("standby1", progress=callback, timeout=30)
    elif op == "follow":
        cluster.follow("standby2", "standby1", progress=callback, timeout=30)
    elif op == "rejoin":
        cluster.rejoin("primary", progress=callback, timeout=30)
    elif op == "remove_standby":
        cluster.remove_standby("standby2", progress=callback, timeout=30)
    else:
        raise SystemExit(f"unknown operation {op}")


def retry(base: Path, op: str, point: str) -> int:
    fast = {"wal_retrieve_retry_interval": "200ms"}  # standbys reconnect at once
    with Cluster.sandbox(2, base_dir=base, settings=fast) as cluster:
        if op in ("failover", "rejoin"):
            assert cluster.primary.service is not None
            cluster.primary.close()
            cluster.primary.service.stop("immediate")
        if op == "rejoin":
            cluster.failover("standby1", timeout=30)
        emit(ev="ready", base=str(cluster.base_dir))
        try:
            _retry_op(cluster, op, Pause(point))
        except BaseException as exc:  # noqa: BLE001 - the interruption under test
            emit(ev="interrupted", error=repr(exc)[:300], **state(base, watch=1.0))
        else:
            emit(ev="finished")
            return 0
        if op != "failover":  # rolled back: streaming again as before (failover: no primary)
            try:
                wait_until(lambda: cluster.status().all_streaming, timeout=15,
                           what="every standby to stream again")
                restored = None
            except Exception as exc:  # noqa: BLE001 - reported to the test
                restored = repr(exc)[:300]
            emit(ev="restored", error=restored, **state(base))
        error = None
        try:
            _retry_op(cluster, op, None)
            wait_until(lambda: cluster.status().all_streaming, timeout=30,
                       what="every standby to stream")
        except Exception as exc:  # noqa: BLE001 - reported to the test
            error = repr(exc)[:600]
        emit(ev="retried", error=error, primary=cluster.primary.name,
             standbys=sorted(s.name for s in cluster.standbys), **state(base))
    return 0


def main(scenario: str, base_dir: str, *rest: str) -> int:
    base = Path(base_dir)
    if scenario.startswith("retry_"):
        return retry(base, scenario.removeprefix("retry_"), rest[0])
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
    sys.exit(main(sys.argv[1], sys.argv[2], *sys.argv[3:]))
