"""What the benchmarks share: options, figures with ratios to a same-run baseline, JSON
results, and counting from outside what pgstream sends (SQL statements, connections, SSH
commands) by wrapping psycopg's cursor and connect and ``SshHost.run``.

Every script takes ``--rounds N`` and ``--json PATH``, and writes
``bench/results/<name>.json`` as well. A figure is a list of samples (seconds, or a count)
whose median is reported; a ratio is the figure's median over its baseline's median, both
measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tests.multihost.* (the rig and the delay line)
    sys.path.insert(0, str(ROOT))


def arguments(description: str, *, rounds: int) -> argparse.ArgumentParser:
    """The options every benchmark takes (``--rounds``, ``--json``, ``--bindir``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--json", type=Path, default=None,
                        help="also write the results there (bench/results/NAME.json always)")
    parser.add_argument("--bindir", default=None, help="PostgreSQL bin directory")
    return parser


def load() -> tuple[float, float, float]:
    """The machine's load averages (1, 5, 15 minutes)."""
    return os.getloadavg()


class Figures:
    """The figures of one benchmark run: printed as a table, written as JSON."""

    def __init__(self, name: str, title: str) -> None:
        self.name, self.title = name, title
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.meta: dict[str, Any] = {
            "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "load_at_start": load()}

    def add(self, label: str, samples: list[float], *, baseline: str | None = None,
            unit: str = "s", goal: float | None = None, goal_of: str = "ratio",
            **extra: Any) -> dict[str, Any]:
        """One figure; ``baseline`` names an earlier figure of this run (ratio = median over
        its median); ``goal``: the bound the ratio (``goal_of="ratio"``) or the median
        (``"value"``) must not exceed."""
        row: dict[str, Any] = {"label": label, "unit": unit, "samples": samples,
                               "median": statistics.median(samples) if samples else None,
                               "min": min(samples) if samples else None,
                               "max": max(samples) if samples else None, **extra}
        if baseline is not None and any(r["label"] == baseline for r in self.rows):
            base = self.get(baseline)["median"]
            row["baseline"] = baseline
            row["ratio"] = (row["median"] / base if base and row["median"] is not None
                            else None)
        if goal is not None:
            measured = row.get("ratio") if goal_of == "ratio" else row["median"]
            row["goal"] = {"of": goal_of, "max": goal,
                           "met": measured is not None and measured <= goal}
        self.rows.append(row)
        return row

    def get(self, label: str) -> dict[str, Any]:
        for row in self.rows:
            if row["label"] == label:
                return row
        raise KeyError(label)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def table(self) -> str:
        width = max([len(r["label"]) for r in self.rows] + [20])
        out = [self.title, f"  load average at start {self.meta['load_at_start'][0]:.1f}, "
               f"at end {load()[0]:.1f}; {os.cpu_count()} CPUs; medians"]
        for row in self.rows:
            median = row["median"]
            if median is None:
                value = "-"
            elif row["unit"] == "s":
                value = f"{median:9.4f} s"
            else:
                value = f"{median:9.1f} {row['unit']}"
            ratio = f"{row['ratio']:7.2f}x" if row.get("ratio") is not None else " " * 8
            goal = ""
            if "goal" in row:
                goal = (f"  goal <= {row['goal']['max']:g}"
                        f"{'x' if row['goal']['of'] == 'ratio' else ''}: "
                        f"{'met' if row['goal']['met'] else 'MISSED'}")
            extra = f"  [{row['rtt']}]" if "rtt" in row else ""
            out.append(f"  {row['label']:<{width}} {value} {ratio}{goal}{extra}")
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def write(self, extra_path: Path | None = None, *, quiet: bool = False) -> Path:
        """Print the table (not when ``quiet``); write the JSON to bench/results/NAME.json
        (and ``extra_path``)."""
        if not quiet:
            print(self.table(), flush=True)
        self.meta["load_at_end"] = load()
        data = {"name": self.name, "title": self.title, "meta": self.meta,
                "figures": self.rows, "notes": self.notes}
        RESULTS.mkdir(exist_ok=True)
        path = RESULTS / f"{self.name}.json"
        text = json.dumps(data, indent=1, default=str) + "\n"
        path.write_text(text)
        if extra_path is not None:
            extra_path.parent.mkdir(parents=True, exist_ok=True)
            extra_path.write_text(text)
        return path


def _words(statement: object, conn: object) -> str:
    """The statement's text, shortened, for counting by kind."""
    try:
        text = statement if isinstance(statement, str) else statement.as_string(conn)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - a label only
        text = repr(statement)
    return " ".join(str(text).split())[:90]


class Counts:
    """SQL statements, new connections and SSH commands, counted from outside pgstream
    (psycopg's ``Cursor.execute`` and ``Connection.connect``, ``SshHost.run``), while
    ``recording()`` is active, by node address (or host) and by kind.

    Every thread counts (plans run steps in parallel); ``skip`` statements (the benchmark's
    own writer's ``INSERT INTO acked``) do not."""

    def __init__(self, skip: tuple[str, ...] = ("INSERT INTO acked",)) -> None:
        self.skip = skip
        self.sql: collections.Counter[tuple[str, str]] = collections.Counter()
        self.connects: collections.Counter[str] = collections.Counter()
        self.ssh: collections.Counter[tuple[str, str]] = collections.Counter()
        self.order: list[tuple[str, str, str]] = []
        self._on = False
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []

    def install(self) -> None:
        """Wrap psycopg and SshHost (once; ``uninstall`` undoes it)."""
        import psycopg

        from pgstream.hosts.ssh import SshHost

        counts = self
        execute = psycopg.Cursor.execute
        connect = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]
        run = SshHost.run

        def counted_execute(cur: Any, query: Any, params: Any = None, **kw: Any) -> Any:
            if counts._mine():
                text = _words(query, cur.connection)
                if not text.startswith(counts.skip):
                    where = f"{cur.connection.info.host}:{cur.connection.info.port}"
                    with counts._lock:
                        counts.sql[(where, text)] += 1
                        counts.order.append(("sql", where, text))
            return execute(cur, query, params, **kw)

        def counted_connect(cls: Any, /, conninfo: str = "", **kw: Any) -> Any:
            conn = connect(cls, conninfo, **kw)
            if counts._mine():
                where = f"{conn.info.host}:{conn.info.port}"
                with counts._lock:
                    counts.connects[where] += 1
                    counts.order.append(("connect", where, ""))
            return conn

        def counted_run(host: Any, argv: Any, **kw: Any) -> Any:
            if counts._mine():
                what = kw.get("what") or Path(str(argv[0])).name
                with counts._lock:
                    counts.ssh[(host.name, str(what))] += 1
                    counts.order.append(("ssh", host.name, str(what)))
            return run(host, argv, **kw)

        module_connect = psycopg.connect
        setattr(psycopg.Cursor, "execute", counted_execute)  # noqa: B010 - patched
        setattr(psycopg.Connection, "connect", classmethod(counted_connect))  # noqa: B010
        setattr(psycopg, "connect", psycopg.Connection.connect)  # noqa: B010
        setattr(SshHost, "run", counted_run)  # noqa: B010

        def undo() -> None:
            setattr(psycopg.Cursor, "execute", execute)  # noqa: B010
            setattr(psycopg.Connection, "connect", classmethod(connect))  # noqa: B010
            setattr(psycopg, "connect", module_connect)  # noqa: B010
            setattr(SshHost, "run", run)  # noqa: B010

        self._undo.append(undo)

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _mine(self) -> bool:
        return self._on

    def clear(self) -> None:
        self.sql.clear()
        self.connects.clear()
        self.ssh.clear()
        self.order.clear()

    @contextlib.contextmanager
    def recording(self) -> Iterator[Counts]:
        """Count what happens in the block (from zero)."""
        self.clear()
        self._on = True
        try:
            yield self
        finally:
            self._on = False

    def summary(self) -> dict[str, Any]:
        """Totals and the breakdown by (where, kind), most frequent first."""
        return {"sql": sum(self.sql.values()), "connects": sum(self.connects.values()),
                "ssh": sum(self.ssh.values()),
                "sql_by_kind": [[w, t, n] for (w, t), n in self.sql.most_common()],
                "ssh_by_kind": [[h, t, n] for (h, t), n in self.ssh.most_common()],
                "connects_by_node": dict(self.connects),
                "sequence": [list(item) for item in self.order]}


def median(values: list[float]) -> float:
    return statistics.median(values)
