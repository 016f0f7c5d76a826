"""tools/bootstrap.py: a Python without ensurepip (Debian without python3-venv) still gets a
``.venv`` with pip, from the index pip is configured to use."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "tools" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bootstrap = _load()


def _local_pip_wheel() -> Path | None:
    """A pip wheel already on this machine (Python's own ensurepip, or Debian's copy)."""
    places = [Path(sysconfig.get_paths()["stdlib"]) / "ensurepip" / "_bundled",
              Path("/usr/share/python-wheels")]
    found = sorted(w for p in places for w in p.glob("pip-*-py3-none-any.whl"))
    return found[-1] if found else None


def test_pip_config_files_in_pip_order(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_DIRS": "/a:/b", "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
           "PIP_CONFIG_FILE": str(tmp_path / "mine.conf")}
    assert bootstrap.pip_config_files(env, tmp_path) == [
        Path("/b/pip/pip.conf"), Path("/a/pip/pip.conf"), Path("/etc/pip.conf"),
        tmp_path / ".pip" / "pip.conf", tmp_path / "cfg" / "pip" / "pip.conf",
        tmp_path / "mine.conf"]
    assert bootstrap.pip_config_files({"PIP_CONFIG_FILE": os.devnull}, tmp_path) == []


def test_pip_settings_later_files_install_section_and_env_win(tmp_path: Path) -> None:
    first, second = tmp_path / "a.conf", tmp_path / "b.conf"
    first.write_text("[global]\nindex-url = https://first/simple\ncert = /ca.pem\n")
    second.write_text("[global]\nindex-url = https://second/simple\n"
                      "[install]\nextra-index-url = file:///x/simple\n  file:///y/simple\n")
    settings = bootstrap.pip_settings({}, [first, second, tmp_path / "missing.conf"])
    assert settings == {"index-url": "https://second/simple", "cert": "/ca.pem",
                        "extra-index-url": "file:///x/simple\nfile:///y/simple"}
    assert bootstrap.index_urls(settings) == [
        "https://second/simple", "file:///x/simple", "file:///y/simple"]
    env = {"PIP_INDEX_URL": "https://env/simple/"}
    assert bootstrap.index_urls(bootstrap.pip_settings(env, [first])) == ["https://env/simple"]
    assert bootstrap.index_urls({}) == ["https://pypi.org/simple"]


def test_newest_usable_pip_wheel_is_chosen() -> None:
    page = """<html><body>
    <a href="../../files/pip-9.0.1-py2.py3-none-any.whl">old</a>
    <a href="../../files/pip-24.0-py3-none-any.whl#sha256=aa">pip-24.0</a>
    <a href="../../files/pip-24.1b1-py3-none-any.whl#sha256=bb">beta</a>
    <a href="../../files/pip-25.0-py3-none-any.whl" data-yanked="">yanked</a>
    <a href="../../files/pip-30.0-py3-none-any.whl" data-requires-python="&gt;=3.14">new</a>
    <a href="../../files/pip-24.0.tar.gz">sdist</a>
    </body></html>"""
    assert bootstrap.newest_pip_wheel(page, "https://idx/simple/pip", (3, 11)) == (
        "https://idx/files/pip-24.0-py3-none-any.whl", "aa")
    assert bootstrap.newest_pip_wheel(page, "https://idx/simple/pip", (3, 14))[0].endswith(
        "pip-30.0-py3-none-any.whl")
    assert bootstrap.newest_pip_wheel("<html></html>", "https://idx/simple/pip") is None


def _index(tmp_path: Path, wheel: Path, digest: str) -> Path:
    """A simple index on disk (file://) that holds ``wheel``, as pip's local indexes do."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / wheel.name).write_bytes(wheel.read_bytes())
    page = tmp_path / "simple" / "pip"
    page.mkdir(parents=True)
    (page / "index.html").write_text(
        f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a>\n')
    return tmp_path / "simple"


def _run_without_ensurepip(tmp_path: Path, index: Path) -> subprocess.CompletedProcess[str]:
    """Run bootstrap's venv step under the base Python with ``ensurepip`` hidden, as on
    Debian without python3-venv (the module is not there at all)."""
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "ensurepip.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'ensurepip'\", name='ensurepip')\n")
    env = {**os.environ, "PYTHONPATH": str(shadow), "PIP_CONFIG_FILE": os.devnull,
           "PIP_INDEX_URL": index.as_uri(), "PIP_FIND_LINKS": "", "PIP_EXTRA_INDEX_URL": ""}
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import bootstrap; "
            "from pathlib import Path; print(bootstrap.ensure_venv(Path(sys.argv[2])))")
    python = getattr(sys, "_base_executable", sys.executable)
    return subprocess.run([python, "-c", code, str(ROOT / "tools"), str(tmp_path / "venv")],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


def test_venv_without_ensurepip_gets_pip_from_the_configured_index(tmp_path: Path) -> None:
    wheel = _local_pip_wheel()
    if wheel is None:
        pytest.skip("no pip wheel on this machine to serve from a local index")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    done = _run_without_ensurepip(tmp_path, _index(tmp_path, wheel, digest))
    assert done.returncode == 0, done.stderr
    assert "no ensurepip" in done.stderr and f"installing {wheel.name}" in done.stderr
    python = tmp_path / "venv" / "bin" / "python"
    assert done.stdout.strip() == str(python)
    version = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True,
                             text=True, check=True)
    assert wheel.name.split("-")[1] in version.stdout


def test_a_wheel_whose_hash_differs_is_refused(tmp_path: Path) -> None:
    wheel = _local_pip_wheel()
    if wheel is None:
        pytest.skip("no pip wheel on this machine to serve from a local index")
    done = _run_without_ensurepip(tmp_path, _index(tmp_path, wheel, "0" * 64))
    assert done.returncode != 0
    assert "sha256 does not match" in done.stderr and "PIP_INDEX_URL" in done.stderr
    assert not list((tmp_path / "venv").glob("lib/python3*/site-packages/pip"))
