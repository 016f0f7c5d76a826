"""Make ``.venv`` beside this repository and install packages into it: the README's commands.

    python3 tools/bootstrap.py '.[server]'      # then .venv/bin/pgstream demo
    python3 tools/bootstrap.py nox              # then .venv/bin/nox

Debian and Ubuntu mark their own Python "externally managed" (PEP 668): ``pip install`` into
it is refused, so everything goes into a virtual environment. Their ``python3`` also comes
without ``ensurepip`` until ``python3-venv`` is installed: run as root, this script installs
that package with apt-get; run as another user, it says which command an administrator must
run. Standard library only; Python 3.11 or newer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"


def _has_ensurepip() -> bool:
    probe = subprocess.run([sys.executable, "-c", "import ensurepip"], capture_output=True,
                           check=False)
    return probe.returncode == 0


def _venv_package() -> str:
    return f"python3.{sys.version_info.minor}-venv"


def _install_venv_support() -> None:
    """ensurepip is missing (Debian/Ubuntu without python3-venv): apt-get it as root."""
    package = _venv_package()
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SystemExit(
            f"tools/bootstrap.py: this Python has no ensurepip, so it cannot make a virtual "
            f"environment. An administrator must run: apt-get install {package}")
    print(f"tools/bootstrap.py: installing {package} (ensurepip) with apt-get", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                   check=True, env=env)


def _python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv() -> Path:
    """``.venv`` with a working pip, made once; returns its python."""
    if _python().exists():
        check = subprocess.run([str(_python()), "-m", "pip", "--version"],
                               capture_output=True, check=False)
        if check.returncode == 0:
            return _python()
        shutil.rmtree(VENV)  # a half-made one (an earlier run without ensurepip)
    if sys.version_info < (3, 11):  # noqa: UP036 - says so on an older Python
        raise SystemExit(f"tools/bootstrap.py: pgstream needs Python 3.11 or newer, not "
                         f"{sys.version.split()[0]}")
    if not _has_ensurepip():
        _install_venv_support()
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    return _python()


def main(argv: list[str]) -> int:
    """Install ``argv`` (pip requirement specifiers) into ``.venv``, made if need be."""
    python = ensure_venv()
    if argv:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", *argv], check=True, cwd=ROOT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
