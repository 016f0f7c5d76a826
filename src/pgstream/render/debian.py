"""Debian's postgresql-common layout, as text: where a cluster's files are, and the rewriting
of a ``postgresql.conf`` that it wrote for another cluster of the same major.

A Debian cluster ``MAJOR/NAME`` keeps its configuration in ``/etc/postgresql/MAJOR/NAME``
(``postgresql.conf``, ``pg_hba.conf``, ``pg_ident.conf``, ``start.conf``, ``pg_ctl.conf``,
``environment``, ``conf.d/``), its data in ``/var/lib/postgresql/MAJOR/NAME`` and its log in
``/var/log/postgresql/postgresql-MAJOR-NAME.log``; ``pg_ctlcluster``, ``pg_lsclusters`` and
systemd's ``postgresql@MAJOR-NAME`` find it there. Pure: no file is read or written here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, cast

from pgstream.errors import InvalidInput

CONF_ROOT = Path("/etc/postgresql")
BIN_ROOT = Path("/usr/lib/postgresql")
COPIED_FILES = ("postgresql.conf", "start.conf", "pg_ctl.conf", "environment")
"""The files of a cluster's configuration directory that another cluster of the same major
can start from (``pg_hba.conf`` and ``pg_ident.conf`` are each node's own)."""

StartConf = Literal["auto", "manual", "disabled"]


def config_dir(major: str, cluster: str) -> Path:
    """``/etc/postgresql/MAJOR/NAME``."""
    return CONF_ROOT / major / cluster


def bindir(major: str) -> Path:
    """Where Debian's package of ``major`` puts its programs (``pg_ctlcluster`` runs only
    those): ``/usr/lib/postgresql/MAJOR/bin``."""
    return BIN_ROOT / major / "bin"


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def rewrite_conf(text: str, *, major: str, cluster: str, data_dir: Path, port: int) -> str:
    """``text`` (a ``postgresql.conf`` written by ``pg_createcluster`` for another cluster of
    ``major``) for the cluster ``major``/``cluster``: its ``data_directory``, ``hba_file``,
    ``ident_file``, ``external_pid_file``, ``cluster_name`` and ``port``; everything else kept."""
    if not cluster or not all(c.isalnum() or c in "-_." for c in cluster):
        raise InvalidInput(f"invalid Debian cluster name {cluster!r}")
    conf = config_dir(major, cluster)
    values = {
        "data_directory": _quoted(str(data_dir)),
        "hba_file": _quoted(str(conf / "pg_hba.conf")),
        "ident_file": _quoted(str(conf / "pg_ident.conf")),
        "external_pid_file": _quoted(f"/var/run/postgresql/{major}-{cluster}.pid"),
        "cluster_name": _quoted(f"{major}/{cluster}"),
        "port": str(int(port)),
    }
    seen: set[str] = set()
    lines = []
    for line in text.splitlines():
        found = re.match(r"^\s*([a-z_]+)\s*=?", line)
        name = found[1] if found else ""
        if name in values:
            comment = line[line.index("#"):] if "#" in line.split("=", 1)[-1] else ""
            lines.append(f"{name} = {values[name]}" + (f"\t\t\t{comment}" if comment else ""))
            seen.add(name)
        else:
            lines.append(line)
    lines += [f"{name} = {value}" for name, value in values.items() if name not in seen]
    return "\n".join(lines) + "\n"


def start_conf_value(text: str) -> StartConf:
    """The value of a ``start.conf`` (``auto``, ``manual`` or ``disabled``; comments
    skipped); ``auto`` where it holds none, as postgresql-common reads it."""
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip()
        if word in ("auto", "manual", "disabled"):
            return cast(StartConf, word)
        if word:
            raise InvalidInput(f"start.conf holds {word!r}, not auto, manual or disabled")
    return "auto"


def start_conf_text(value: StartConf) -> str:
    """A ``start.conf`` holding ``value``, with postgresql-common's explanation."""
    if value not in ("auto", "manual", "disabled"):
        raise InvalidInput(f"invalid start.conf value {value!r}")
    return ("# Automatic startup configuration\n"
            "#   auto: automatically start the cluster\n"
            "#   manual: manual startup with pg_ctlcluster/postgresql@.service only\n"
            "#   disabled: refuse to start cluster\n"
            "# (written by pgstream's major upgrade)\n"
            f"{value}\n")
