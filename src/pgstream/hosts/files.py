"""Files of a data directory that pgstream edits in place, on the node's own host."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pgstream.hosts.host import Host, OsUser
from pgstream.render.config import merge_settings


def merge_auto_conf(host: Host, data_dir: Path, settings: Mapping[str, str | None],
                    owner: OsUser | None) -> Path:
    """Merge ``settings`` into ``data_dir/postgresql.auto.conf`` (each named setting once,
    with its new value; ``None`` removes it; other lines kept) and write it back, mode 0600,
    owned by ``owner``; returns the file's path. The file ``ALTER SYSTEM`` writes, so a clone,
    a rewind or an upgrade that copied another server's can carry this node's own."""
    auto = Path(data_dir) / "postgresql.auto.conf"
    existing = host.read_text(auto) if host.exists(auto) else ""
    host.write_text(auto, merge_settings(existing, settings), mode=0o600, owner=owner)
    return auto
