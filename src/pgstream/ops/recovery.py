"""A standby's recovery configuration: where it streams from, through which slot.

Written when a standby is cloned, and rewritten when it follows another upstream: before 12
``recovery.conf`` is written whole; from 12 ``standby.signal`` plus the settings merged into
``postgresql.auto.conf`` (each setting once, so following again and again piles nothing up).
The password goes to a 0600 passfile (9.6's libpq has no ``passfile`` option: there it is the
server user's ``~/.pgpass``), never into the configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import attrs

from pgstream.facts.identifiers import MASK, Secret
from pgstream.facts.version import ServerVersion
from pgstream.hosts.files import merge_auto_conf, read_files, write_files
from pgstream.hosts.host import Host, OsUser
from pgstream.ops.plan import Report, Step, StepKind, StepResult
from pgstream.render.config import ConfigRenderer, passfile_line, render_settings


def merge_passfile(existing: str, line: str) -> str:
    """Replace the entry for the same host:port:db:user (first four fields), keep the rest."""
    key = line.rsplit(":", 1)[0]
    kept = [x for x in existing.splitlines() if x and not x.startswith(key + ":")]
    return "".join(f"{x}\n" for x in kept) + line


def passfile_for(version: ServerVersion, data_dir: Path, owner: OsUser | None,
                 chosen: Path | None = None) -> tuple[Path, bool]:
    """Where a standby's password goes, and whether ``primary_conninfo`` names that file."""
    if not version.adapter.has("conninfo", "passfile"):
        return Path((owner or OsUser.current()).home) / ".pgpass", False
    return chosen or data_dir.with_name(data_dir.name + ".pgpass"), True


def write_passfile(host: Host, path: Path, *, address: tuple[str, int], user: str,
                   password: Secret, owner: OsUser | None) -> bool:
    """Add (or replace) the entry for ``address``/``user``; True if the file changed."""
    line = passfile_line(address[0], address[1], user, password.reveal())
    existing = read_files(host, [path])[path] or ""
    merged = merge_passfile(existing, line)
    if merged == existing:
        return False
    write_files(host, {path: merged}, owner=owner)
    return True


def passfile_step(node_name: str, host: Host, path: Path, *, address: tuple[str, int],
                  user: str, password: Secret, owner: OsUser | None, title: str = "",
                  concurrent: bool = False) -> Step:
    """The step that writes (or keeps) the passfile entry a standby uses for ``address``;
    the plan shows the entry with the password masked."""
    def action(report: Report) -> StepResult:
        changed = write_passfile(host, path, address=address, user=user, password=password,
                                 owner=owner)
        return StepResult(changed, f"wrote {path} (mode 0600)" if changed
                          else f"{path} already holds the entry")

    return Step(node_name, StepKind.FILE, title or f"passfile {path} (mode 0600)",
                f"{path} (mode 0600): " + passfile_line(address[0], address[1], user, MASK),
                action=action, host=host.name, concurrent=concurrent)


@attrs.frozen
class RecoveryConfig:
    """What a standby of ``version`` needs to stream from ``upstream`` through ``slot``."""

    version: ServerVersion
    conninfo: str
    slot: str | None
    own_settings: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def build(cls, version: ServerVersion, *, upstream: tuple[str, int], user: str,
              application_name: str, slot: str | None, passfile: Path | None,
              own_settings: Mapping[str, str] | None = None) -> RecoveryConfig:
        """The recovery configuration of a standby of ``version``: files and settings, without
        writing anything.
        """
        conninfo = ConfigRenderer(version).primary_conninfo(
            host=upstream[0], port=upstream[1], user=user,
            passfile=str(passfile) if passfile is not None else None,
            application_name=application_name)
        return cls(version, conninfo, slot, dict(own_settings or {}))

    @property
    def files(self) -> dict[str, str]:
        """The files this configuration writes into the data directory (``standby.signal`` and
        ``postgresql.auto.conf``, or ``recovery.conf``).
        """
        return ConfigRenderer(self.version).standby_files(self.conninfo, self.slot)

    def describe(self) -> str:
        """The dry-run text: every file and setting written (the password never: it is in the
        passfile).
        """
        shown = "".join(
            f"{name}:\n" + ("".join(f"  {x}\n" for x in content.splitlines()) or "  (empty)\n")
            for name, content in self.files.items())
        if self.own_settings:
            shown += "postgresql.auto.conf (this node):\n" + "".join(
                f"  {x}\n" for x in render_settings(self.own_settings).splitlines())
        return shown

    def write(self, host: Host, data_dir: Path, owner: OsUser | None) -> list[str]:
        """Write the files into ``data_dir``; returns their names. Over SSH: one command
        reads ``postgresql.auto.conf``, one writes it with the other files."""
        renderer = ConfigRenderer(self.version)
        merged: dict[str, str | None] = dict(self.own_settings)
        files = self.files
        whole: dict[Path, str] = {}
        for name, content in files.items():
            if name == "postgresql.auto.conf":
                merged.update(renderer.standby_settings(self.conninfo, self.slot))
            else:
                whole[data_dir / name] = content
        if merged:
            merge_auto_conf(host, data_dir, merged, owner, also=whole)
        else:
            write_files(host, whole, owner=owner)
        return list(files)
