"""Make ``.venv`` beside this repository and install packages into it: the README's commands.

    python3 tools/bootstrap.py '.[server]'      # then .venv/bin/pgstream demo
    python3 tools/bootstrap.py nox              # then .venv/bin/nox

Debian and Ubuntu mark their own Python "externally managed" (PEP 668): ``pip install`` into
it is refused, so everything goes into a virtual environment. Their ``python3`` also comes
without ``ensurepip`` until ``python3-venv`` is installed; the ``venv`` module itself is in
the standard library. Without ensurepip, this script makes the environment without pip
(``python3 -m venv --without-pip``), downloads pip's wheel from the package index that pip
is configured to use (``PIP_INDEX_URL``, ``index-url`` in pip.conf, else PyPI), checks its
sha256 and installs pip from that wheel: no administrator, no system package. Standard
library only; Python 3.11 or newer.
"""

from __future__ import annotations

import configparser
import hashlib
import html.parser
import os
import re
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
PYPI = "https://pypi.org/simple"
TIMEOUT = 60
_WHEEL = re.compile(r"pip-(\d+(?:\.\d+)*)-py3-none-any\.whl")


def _say(message: str) -> None:
    print(f"tools/bootstrap.py: {message}", file=sys.stderr, flush=True)


def _has_ensurepip(python: str = sys.executable) -> bool:
    probe = subprocess.run([python, "-c", "import ensurepip"], capture_output=True,
                           check=False)
    return probe.returncode == 0


def pip_config_files(env: dict[str, str], home: Path) -> list[Path]:
    """pip's configuration files, lowest priority first (as pip reads them)."""
    explicit = env.get("PIP_CONFIG_FILE")
    if explicit == os.devnull:
        return []  # pip's documented way to load no configuration file at all
    dirs = (env.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":")
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(dirs) if d]
    files.append(Path("/etc/pip.conf"))
    xdg_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files += [home / ".pip" / "pip.conf", xdg_home / "pip" / "pip.conf"]
    if explicit:
        files.append(Path(explicit))
    return files


def pip_settings(env: dict[str, str], files: list[Path]) -> dict[str, str]:
    """``index-url``, ``extra-index-url`` and ``cert`` as ``pip install`` would see them:
    ``[global]`` then ``[install]`` of each file in order, then ``PIP_*`` variables."""
    found: dict[str, str] = {}
    for path in files:
        parser = configparser.RawConfigParser()
        try:
            parser.read(path)
        except (OSError, configparser.Error) as exc:
            _say(f"note: ignoring unreadable {path}: {exc}")
            continue
        for section in ("global", "install"):
            if parser.has_section(section):
                for key in ("index-url", "extra-index-url", "cert"):
                    if parser.has_option(section, key):
                        found[key] = parser.get(section, key)
    for key in ("index-url", "extra-index-url", "cert"):
        if value := env.get("PIP_" + key.upper().replace("-", "_")):
            found[key] = value
    return found


def index_urls(settings: dict[str, str]) -> list[str]:
    """The simple indexes to look for pip in: the index, then the extra indexes."""
    urls = [settings.get("index-url") or PYPI]
    urls += settings.get("extra-index-url", "").split()
    return [u.rstrip("/") for u in urls if u]


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


def _python_ok(requires: str | None, running: tuple[int, int]) -> bool:
    """False only for a ``>=X.Y`` (or ``>X.Y``) floor above ``running``; else True."""
    for clause in (requires or "").split(","):
        m = re.fullmatch(r"\s*(>=?)\s*(\d+)\.(\d+)\S*\s*", clause)
        if m:
            floor = (int(m.group(2)), int(m.group(3)))
            if running < floor or (m.group(1) == ">" and running == floor):
                return False
    return True


def newest_pip_wheel(page: str, base: str,
                     running: tuple[int, int] = sys.version_info[:2]) -> tuple[str, str] | None:
    """(URL, sha256 or "") of the newest final, not yanked pip wheel on a simple-index page
    that supports the ``running`` Python, or None."""
    parser = _Links()
    parser.feed(page)
    best: tuple[tuple[int, ...], str, str] | None = None
    for link in parser.links:
        href = link.get("href") or ""
        url, _, fragment = urllib.parse.urljoin(base + "/", href).partition("#")
        m = _WHEEL.fullmatch(urllib.parse.unquote(url.rsplit("/", 1)[-1]))
        if not m or "data-yanked" in link:
            continue
        if not _python_ok(link.get("data-requires-python"), running):
            continue
        version = tuple(int(p) for p in m.group(1).split("."))
        digest = fragment.removeprefix("sha256=") if fragment.startswith("sha256=") else ""
        if best is None or version > best[0]:
            best = (version, url, digest)
    return (best[1], best[2]) if best else None


def _open(url: str, cert: str | None) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":  # a local index: a directory's page is its index.html
        path = Path(urllib.request.url2pathname(parts.path))
        return (path / "index.html" if path.is_dir() else path).read_bytes()
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported index URL scheme {parts.scheme!r}")
    context = ssl.create_default_context(cafile=cert) if cert else None
    request = urllib.request.Request(url, headers={"Accept": "text/html"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=TIMEOUT,  # noqa: S310 - http(s) only
                                context=context) as response:
        data: bytes = response.read()
        return data


def download_pip(dest: Path, env: dict[str, str] | None = None) -> Path:
    """Download pip's newest wheel from pip's configured indexes into ``dest``, sha256
    checked when the index gives one; returns its path. Raises SystemExit, naming the
    indexes tried, if none has one."""
    env = dict(os.environ) if env is None else env
    settings = pip_settings(env, pip_config_files(env, Path.home()))
    cert = settings.get("cert")
    tried: list[str] = []
    candidates: list[tuple[tuple[int, ...], str, str]] = []
    for index in index_urls(settings):
        page_url = f"{index}/pip/"
        try:
            page = _open(page_url, cert).decode("utf-8", "replace")
        except (OSError, urllib.error.URLError, ValueError) as exc:
            tried.append(f"{page_url} ({exc})")
            continue
        if found := newest_pip_wheel(page, page_url.rstrip("/")):
            m = _WHEEL.search(found[0])
            assert m is not None
            candidates.append((tuple(int(p) for p in m.group(1).split(".")), *found))
        else:
            tried.append(f"{page_url} (no pip wheel for this Python)")
    for _, url, digest in sorted(candidates, reverse=True):
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        try:
            data = _open(url, cert)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            tried.append(f"{url} ({exc})")
            continue
        if digest and hashlib.sha256(data).hexdigest() != digest.lower():
            tried.append(f"{url} (sha256 does not match the index's)")
            continue
        path = dest / name
        path.write_bytes(data)
        return path
    raise SystemExit(
        "tools/bootstrap.py: this Python has no ensurepip and pip could not be downloaded: "
        + "; ".join(tried) + ". Set PIP_INDEX_URL to a reachable index, or have an "
        f"administrator run: apt-get install python3.{sys.version_info.minor}-venv")


def _python(venv_dir: Path) -> Path:
    return venv_dir / "bin" / "python"


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0
    except OSError:
        return False


def install_pip(python: Path) -> None:
    """Install pip into the environment of ``python`` from a freshly downloaded wheel."""
    with tempfile.TemporaryDirectory(prefix="pgstream-bootstrap-") as tmp:
        wheel = download_pip(Path(tmp))
        _say(f"installing {wheel.name} into {python.parent.parent}")
        # A wheel is a zip that Python can run: pip installs itself from it.
        subprocess.run([str(python), str(wheel / "pip"), "install", "--quiet", "--no-index",
                        "--no-deps", "--disable-pip-version-check", str(wheel)], check=True)


def ensure_venv(venv_dir: Path = VENV) -> Path:
    """``venv_dir`` with a working pip, made once; returns its python."""
    python = _python(venv_dir)
    if _runs([str(python), "-c", "pass"]):
        if not _runs([str(python), "-m", "pip", "--version"]):
            install_pip(python)  # made by an earlier run that stopped before pip
        return python
    if venv_dir.exists() or venv_dir.is_symlink():
        shutil.rmtree(venv_dir)  # a broken one (its base Python gone)
    if sys.version_info < (3, 11):  # noqa: UP036 - says so on an older Python
        raise SystemExit(f"tools/bootstrap.py: pgstream needs Python 3.11 or newer, not "
                         f"{sys.version.split()[0]}")
    if _has_ensurepip():
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    else:
        _say("this Python has no ensurepip (Debian/Ubuntu without python3-venv): making "
             f"{venv_dir} without pip, then installing pip from the package index")
        venv.EnvBuilder(with_pip=False, clear=True).create(venv_dir)
        install_pip(python)
    return python


def main(argv: list[str]) -> int:
    """Install ``argv`` (pip requirement specifiers) into ``.venv``, made if need be."""
    python = ensure_venv()
    if argv:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *argv], check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
