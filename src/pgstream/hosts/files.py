"""Files of a data directory that pgstream edits in place, on the node's own host.

Over SSH, every command is a round trip: :func:`read_files` reads several files (present or
not) in one command, :func:`write_files` writes several in one (their contents on stdin,
never in argv); on other hosts they use the host's own file methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pgstream.errors import OperationFailed
from pgstream.hosts.host import Host, OsUser
from pgstream.hosts.ssh import SshHost
from pgstream.render import scripts
from pgstream.render.config import merge_settings


def read_files(host: Host, paths: Sequence[Path]) -> dict[Path, str | None]:
    """The content of each of ``paths`` (UTF-8), None for a file that does not exist."""
    paths = tuple(Path(p) for p in paths)
    if not isinstance(host, SshHost):
        return {p: host.read_text(p) if host.exists(p) else None for p in paths}
    done = host.run(scripts.read_files(paths), what=f"read {', '.join(map(str, paths))}",
                    timeout=60)
    found = scripts.read_files_outcome(done.output, len(paths))
    if found is None:
        raise OperationFailed(f"cannot read {', '.join(map(str, paths))} on {host.name}: "
                              "unexpected output")
    return {p: None if data is None else data.decode("utf-8") for p, data in
            zip(paths, found, strict=True)}


def write_files(host: Host, files: Mapping[Path, str], *, mode: int = 0o600,
                owner: OsUser | None = None) -> None:
    """Replace each file of ``files`` (path: text) atomically, with ``mode`` and ``owner``."""
    if not files:
        return
    if not isinstance(host, SshHost):
        for path, text in files.items():
            host.write_text(path, text, mode=mode, owner=owner)
        return
    chown = f"{owner.uid}:{owner.gid}" if owner is not None else ""
    paths = tuple(Path(p) for p in files)
    host.run(scripts.write_files(tuple((p, mode, chown) for p in paths)),
             stdin=scripts.write_files_input(tuple(files.values())),
             what=f"write {', '.join(map(str, paths))}", timeout=60)


def merge_auto_conf(host: Host, data_dir: Path, settings: Mapping[str, str | None],
                    owner: OsUser | None, *, also: Mapping[Path, str] | None = None) -> Path:
    """Merge ``settings`` into ``data_dir/postgresql.auto.conf`` (each named setting once,
    with its new value; ``None`` removes it; other lines kept) and write it back, mode 0600,
    owned by ``owner``; returns the file's path. The file ``ALTER SYSTEM`` writes, so a clone,
    a rewind or an upgrade that copied another server's can carry this node's own.
    ``also``: other files (path: text) written in the same command (``standby.signal``)."""
    auto = Path(data_dir) / "postgresql.auto.conf"
    existing = read_files(host, [auto])[auto] or ""
    write_files(host, {**(also or {}), auto: merge_settings(existing, settings)},
                owner=owner)
    return auto
