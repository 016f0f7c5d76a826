"""Every Python example in README.md and docs/ runs, against real servers.

Each ```python block runs in its own interpreter (an example may start sandboxes, send signals
or leave a process group); a block that defines pytest tests runs under pytest. Marks, on the
line before a block:

- ``<!-- example: not run, REASON -->``: the block needs what the test machine lacks (other
  hosts reached over SSH); the reason is required and shown as the skip reason.
- ``<!-- example: continues -->``: the block runs after the previous one of the page, in the
  same interpreter (a page that shows a session in parts).

A ```text block right after a block (or after a line ``Output:``) shows its output: what the
example prints must have that output's shape (its tables' column headers, its lines without
a digit or a path; see ``check_shape``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import attrs
import pytest

from tests.examples.shape import check_shape, skip_reason

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"(?:<!-- example: (?P<mark>[^>]*?) -->\n)?```python\n(?P<code>.*?)```\n"
                    r"(?:\n(?:Output:\n\n)?```text\n(?P<output>.*?)```)?", re.S)


@attrs.frozen
class Example:
    page: str
    line: int
    code: str
    skip: str | None
    output: str = ""


def _examples() -> list[Example]:
    found: list[Example] = []
    for page in PAGES:
        text = page.read_text()
        for match in _BLOCK.finditer(text):
            mark = (match["mark"] or "").strip()
            line = text[:match.start("code")].count("\n")
            name = str(page.relative_to(ROOT))
            if mark == "continues":
                assert found and found[-1].page == name, f"{name}:{line} continues nothing"
                last = found.pop()
                found.append(attrs.evolve(last, code=last.code + "\n" + match["code"],
                                          output=last.output + (match["output"] or "")))
                continue
            skip = skip_reason(mark, f"{name}:{line}")
            found.append(Example(name, line, match["code"], skip, match["output"] or ""))
    return found


EXAMPLES = _examples()


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 15
    assert sum(e.skip is None for e in EXAMPLES) >= 12


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.page}:{e.line}" for e in EXAMPLES])
def test_example_runs(example: Example, pgstream_server: object) -> None:
    if example.skip:
        pytest.skip(example.skip)
    with tempfile.TemporaryDirectory(prefix="pgstream-example-") as work:
        os.chmod(work, 0o755)  # noqa: S103 - the server user (postgres) enters it
        if re.search(r"^def test_", example.code, re.M):
            script = Path(work) / "test_example.py"
            script.write_text(example.code)
            argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    str(script)]
        else:
            argv = [sys.executable, "-c", example.code]
        done = subprocess.run(argv, cwd=work, capture_output=True, text=True, timeout=300,
                              check=False, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert done.returncode == 0, (
        f"{example.page}:{example.line} failed (exit {done.returncode}):\n"
        f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    check_shape(example.output, done.stdout)
