"""Every shell example (```sh and ```console blocks) in README.md and docs/ runs, against
real servers, and shown output keeps the shape of what the command prints now.

- A ```sh block runs as one bash script (``set -e``) in a temporary directory, with this
  environment's ``bin`` first on ``PATH`` (so ``pgstream`` is this checkout's). A block that
  runs ``tools/bootstrap.py`` runs instead in a fresh copy of the repository, with the
  system's ``python3``: the README's first command, as a new user would type it.
- A ```console block: each ``$ COMMAND`` line runs; the lines after it are its shown
  output. Its tables must have the same column headers as the real output (values differ
  from run to run), and its lines without a digit or a path must appear as they are.
- Commands that name the docs' example cluster run against a sandbox made for the block:
  ``host=/var/run/postgresql [port=5432] user=postgres`` and ``host=db1 user=postgres`` become
  the sandbox primary's conninfo, ``host=db2 user=postgres`` its standby's, the hand-built
  pair's standby ``walreceiver`` becomes ``standby1``, and ``PGSTREAM_REPLICATION_PASSWORD``
  holds the sandbox's replication password. A sandbox directory shown in an earlier output
  line (``/dev/shm/pgstream-XXXXXXXX``) becomes the one the real command printed.
- When a block's last command has ``--json``, its output must parse as JSON.
- ``<!-- example: not run, REASON -->`` on the line before a block skips it, with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from pgstream import Cluster
from tests.examples.shape import check_shape, skip_reason

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:^[ \t]*<!-- example: (?P<mark>[^>]*?) -->\n)?"
                    r"^(?P<indent>[ \t]*)```(?P<lang>sh|console)\n(?P<code>.*?)^(?P=indent)```",
                    re.S | re.M)
PASSWORD = "doc-example-pw"
PRIMARY_NAMES = ("host=/var/run/postgresql port=5432 user=postgres",
                 "host=/var/run/postgresql user=postgres", "host=db1 user=postgres")
STANDBY_NAMES = ("host=db2 user=postgres",)
_SANDBOX_DIR = re.compile(r"/[\w/.-]*/pgstream-[\w]{8}\b")


@attrs.frozen
class Block:
    page: str
    line: int
    lang: str
    code: str
    skip: str | None


def _blocks() -> list[Block]:
    found: list[Block] = []
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            name, line = str(page.relative_to(ROOT)), text[:match.start("code")].count("\n")
            mark = (match["mark"] or "").strip()
            skip = skip_reason(mark, f"{name}:{line}")
            indent = len(match["indent"])
            code = "".join(ln[indent:] for ln in match["code"].splitlines(keepends=True))
            found.append(Block(name, line, match["lang"], code, skip))
    return found


BLOCKS = _blocks()


def test_shape_check_catches_drift() -> None:
    real = "a  b  c\n-  -  -\n1  2  3\nstopped\n"
    check_shape("a  b  c\n----  ---  --\n9  9  9\n...\nstopped\n", real)
    with pytest.raises(AssertionError, match="table"):
        check_shape("a  b\n-  -\n", real)
    with pytest.raises(AssertionError, match="'removed'"):
        check_shape("removed\n", real)


def test_there_are_shell_examples() -> None:
    assert sum(b.skip is None for b in BLOCKS) >= 6


def _needs_sandbox(code: str) -> bool:
    return any(name in code for name in (*PRIMARY_NAMES, *STANDBY_NAMES, "walreceiver"))


def _substitute(code: str, cluster: Cluster | None, seen_dir: str | None) -> str:
    if cluster is not None:
        for name in PRIMARY_NAMES:
            code = code.replace(name, cluster.primary.conninfo)
        for name in STANDBY_NAMES:
            code = code.replace(name, cluster.standbys[0].conninfo)
        code = code.replace("walreceiver", "standby1")
    if seen_dir is not None:
        code = _SANDBOX_DIR.sub(seen_dir, code)
    return code


def _copy_of_the_repository(dest: Path) -> Path:
    """The files a clone has (no .venv, .git or caches), as a new user's checkout."""
    skip = shutil.ignore_patterns(".venv", ".git", ".nox", "__pycache__", "*.egg-info", "site",
                                  ".mypy_cache", ".ruff_cache", ".pytest_cache", "build")
    shutil.copytree(ROOT, dest, ignore=skip)
    return dest


def _run(script: str, cwd: Path, env: dict[str, str],
         timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _commands(block: Block) -> list[tuple[str, str]]:
    """(command, shown output) pairs: one per ``$`` line of a console block; the whole
    block, with no shown output, for a sh block."""
    if block.lang == "sh":
        return [(block.code, "")]
    pairs: list[tuple[str, str]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], ""))
        elif pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + line + "\n")
    return pairs


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}" for b in BLOCKS])
def test_shell_example_runs(block: Block,
                            pgstream_sandbox: Callable[..., Cluster]) -> None:
    if block.skip:
        pytest.skip(block.skip)
    cluster = pgstream_sandbox(standbys=1, password=PASSWORD) if _needs_sandbox(
        block.code) else None
    bootstrap = "tools/bootstrap.py" in block.code
    with tempfile.TemporaryDirectory(prefix="pgstream-example-") as work:
        os.chmod(work, 0o755)  # noqa: S103 - the server user (postgres) enters it
        cwd = _copy_of_the_repository(Path(work) / "pgstream") if bootstrap else Path(work)
        env = {**os.environ, "PGSTREAM_REPLICATION_PASSWORD": PASSWORD,
               "PYTHONUNBUFFERED": "1"}
        if not bootstrap:
            env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        else:
            env.pop("VIRTUAL_ENV", None)
            env["PATH"] = os.pathsep.join(
                p for p in env.get("PATH", "").split(os.pathsep)
                if Path(sys.executable).parent != Path(p))
        seen_dir: str | None = None
        for command, shown in _commands(block):
            script = _substitute(command, cluster, seen_dir)
            done = _run(script, cwd, env, timeout=900 if bootstrap else 300)
            real = done.stdout + done.stderr
            assert done.returncode == 0, (
                f"{block.page}:{block.line}: `{script.strip()}` failed (exit "
                f"{done.returncode}):\n{real[-4000:]}")
            if found := _SANDBOX_DIR.findall(real):
                seen_dir = found[-1]
            check_shape(_substitute(shown, None, seen_dir), real)
            last = [ln for ln in re.sub(r"\s#.*", "", script).splitlines() if ln.strip()][-1]
            if "--json" in last.split():  # the last command prints one JSON document
                json.loads(done.stdout.strip().splitlines()[-1])
