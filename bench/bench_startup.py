"""Benchmark: start-up costs (issue 13, items 3 and 4), each against a same-run baseline.

Run with ``nox -s bench`` or ``python bench/bench_startup.py [--rounds N] [--json PATH]``.

- ``import pgstream`` in a fresh interpreter, minus ``python -c pass`` (goal <= 100 ms).
- a whole process asking a local primary + 2 standbys for its status as JSON: the
  ``pgstream status --json -c FILE`` command (its topology file written once, untimed, by
  ``pgstream discover --write``) when this tree has one, and a ``python -c`` process doing
  only the library's part (build the nodes, ``Cluster.status()``, print ``to_dict()`` as
  JSON); each against ``psql -c 'select 1'`` to the same primary (goal <= 3x).
- ``Cluster.sandbox(standbys=16)`` cold (no template) against ``standbys=2`` cold, in the
  sandbox's default place (goal <= 3x on 2 cores); a failure is reported with its message.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import Figures, arguments

STATUS_SCRIPT = """
import json, sys
from pgstream import Cluster, Primary, Standby
spec = json.loads(sys.argv[1])
primary = Primary("primary", spec["primary"])
standbys = [Standby(name, conninfo) for name, conninfo in spec["standbys"].items()]
print(json.dumps(Cluster(primary, standbys).status().to_dict()))
"""


def run(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def has_status_command() -> bool:
    """Does this tree's ``pgstream status`` read a topology file (``-c``) and print JSON?"""
    done = subprocess.run([sys.executable, "-m", "pgstream", "status", "--help"],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0 and "--json" in done.stdout and "--config" in done.stdout


def write_topology(primary: str, standbys: list[str], path: Path) -> None:
    """The topology file of the running sandbox, by ``pgstream discover --write``."""
    argv = [sys.executable, "-m", "pgstream", "discover", primary]
    for conninfo in standbys:
        argv += ["--standby", conninfo]
    subprocess.run([*argv, "--write", str(path)], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    args = arguments(__doc__.split("\n", 1)[0], rounds=7).parse_args()
    from pgstream import Cluster, InvalidInput, PgStreamError

    fig = Figures("startup", "start-up: import, a whole status process, sandbox scale")
    bare = [run([sys.executable, "-c", "pass"]) for _ in range(args.rounds)]
    full = [run([sys.executable, "-c", "import pgstream"]) for _ in range(args.rounds)]
    fig.add("python -c pass", bare)
    fig.add("import pgstream (minus python -c pass)",
            [f - statistics_median(bare) for f in full], goal=0.100, goal_of="value")
    cache = tempfile.mkdtemp(prefix="pgstream-bench-cache-")
    try:
        with Cluster.sandbox(standbys=2, bindir=args.bindir) as cluster:
            primary = cluster.primary.conninfo
            spec = json.dumps({"primary": primary,
                               "standbys": {s.name: s.conninfo for s in cluster.standbys}})
            psql = shutil.which("psql", path=str(cluster.primary.service.bindir)
                                if cluster.primary.service else None) or "psql"
            library_argv = [sys.executable, "-c", STATUS_SCRIPT, spec]
            cli_argv: list[str] | None = None
            if has_status_command():
                topology = Path(cache) / "pgstream.toml"
                write_topology(primary, [s.conninfo for s in cluster.standbys], topology)
                cli_argv = [sys.executable, "-m", "pgstream", "status", "--json",
                            "-c", str(topology)]
            else:
                fig.note("no `pgstream status --json -c FILE` in this tree: only the "
                         "python -c process (nodes, Cluster.status(), JSON) is timed")
            psql_times, library_times, cli_times = [], [], []
            for _ in range(args.rounds):
                psql_times.append(run([psql, primary, "-Atqc", "select 1"]))
                library_times.append(run(library_argv))
                if cli_argv is not None:
                    cli_times.append(run(cli_argv))
        fig.add("psql -c 'select 1' (whole process)", psql_times)
        if cli_times:
            fig.add("pgstream status --json -c FILE, 1+2 (whole process)", cli_times,
                    baseline="psql -c 'select 1' (whole process)", goal=3.0)
        fig.add("python -c Cluster.status() as JSON, 1+2 (whole process)", library_times,
                baseline="psql -c 'select 1' (whole process)", goal=3.0)
        # Sandbox scale, cold (no template), interleaved.
        two: list[float] = []
        sixteen: list[float] = []
        failure = None
        for _ in range(max(1, args.rounds // 2)):
            started = time.perf_counter()
            with Cluster.sandbox(standbys=2, bindir=args.bindir, template=False):
                two.append(time.perf_counter() - started)
            started = time.perf_counter()
            try:
                with Cluster.sandbox(standbys=16, bindir=args.bindir, template=False):
                    sixteen.append(time.perf_counter() - started)
            except (PgStreamError, InvalidInput) as exc:
                text = " ".join(str(exc).split("already done:")[0].split())
                failure = f"{type(exc).__name__}: {text[:120]} ... {text[-300:]}"
                break
        fig.add("Cluster.sandbox(standbys=2) cold", two)
        if sixteen:
            fig.add("Cluster.sandbox(standbys=16) cold", sixteen,
                    baseline="Cluster.sandbox(standbys=2) cold", goal=3.0)
        else:
            fig.add("Cluster.sandbox(standbys=16) cold", [], failed=failure)
            fig.note(f"Cluster.sandbox(standbys=16) failed: {failure}")
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    fig.write(args.json)
    return 0


def statistics_median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
