"""What a host says of a running server: its postmaster, owner, programs, unit and log.

:func:`postmaster_facts` reads, for the data directory a server reports, the pid in its
``postmaster.pid``, that process's executable (``/proc/PID/exe``: the bin directory of the
programs that run it), where its stderr goes (``/proc/PID/fd/2``: the log ``pg_ctl -l``
named), its control group (a systemd unit, if one runs it) and the directory's owner. On this
machine it reads ``/proc`` directly; on an SSH host, one shell command does it all (through
``become`` when set). :func:`local_walreceivers` finds the standby servers running here.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
from pathlib import Path

import attrs

from pgstream.errors import PgStreamError
from pgstream.hosts.host import Host, LocalHost, OsUser

_SCRIPT = r"""d="$1"
pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null)
owner=$(stat -c %U -- "$d" 2>/dev/null)
echo "owner=$owner"
echo "passwd=$(getent passwd "$owner")"
echo "pid=$pid"
if [ -n "$pid" ] && [ -e "/proc/$pid" ]; then
  echo "exe=$(readlink "/proc/$pid/exe")"
  echo "stderr=$(readlink "/proc/$pid/fd/2")"
  echo "cgroup=$(tail -n 1 "/proc/$pid/cgroup")"
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then echo "pg_ctlcluster=yes"; fi
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  echo "systemd=yes"
fi
"""


@attrs.frozen
class PostmasterFacts:
    """What the host says of the server on one data directory (None: could not tell)."""

    pid: int | None
    owner: OsUser | None
    bindir: Path | None
    stderr: Path | None
    """Where the postmaster's stderr goes, when that is a file (``pg_ctl -l``'s log)."""
    unit: str | None
    """The systemd unit whose control group holds the postmaster, if any."""
    has_pg_ctlcluster: bool
    has_systemd: bool


def _unit_of(cgroup: str) -> str | None:
    # "0::/system.slice/system-postgresql.slice/postgresql@15-main.service"
    last = cgroup.strip().rsplit("/", 1)[-1]
    return last if last.endswith(".service") else None


def _file_target(link: str) -> Path | None:
    link = link.strip()
    if not link.startswith("/") or link.startswith(("/dev/", "/proc/")):
        return None  # a pipe, a socket, a terminal, /dev/null
    return Path(link.removesuffix(" (deleted)"))


def _bindir(exe: str) -> Path | None:
    exe = exe.strip().removesuffix(" (deleted)")
    return Path(exe).parent if exe.startswith("/") else None


def postmaster_facts(host: Host, data_dir: Path) -> PostmasterFacts:
    """The postmaster of ``data_dir`` as ``host`` sees it (see the module docstring)."""
    if isinstance(host, LocalHost):
        return _local(data_dir)
    done = host.run(("sh", "-c", _SCRIPT, "sh", str(data_dir)), check=False,
                    what=f"inspect the server on {data_dir}", timeout=30)
    values: dict[str, str] = {}
    for line in done.output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            values.setdefault(key, value)
    owner = None
    fields = values.get("passwd", "").split(":")
    if len(fields) >= 6 and fields[2].isdigit() and fields[3].isdigit():
        owner = OsUser(fields[0], int(fields[2]), int(fields[3]), fields[5])
    pid = values.get("pid", "")
    return PostmasterFacts(
        pid=int(pid) if pid.isdigit() else None, owner=owner,
        bindir=_bindir(values.get("exe", "")), stderr=_file_target(values.get("stderr", "")),
        unit=_unit_of(values.get("cgroup", "")),
        has_pg_ctlcluster=values.get("pg_ctlcluster") == "yes",
        has_systemd=values.get("systemd") == "yes")


def _read(path: str) -> str:
    with contextlib.suppress(OSError):
        return Path(path).read_text()
    return ""


def _link(path: str) -> str:
    with contextlib.suppress(OSError):
        return os.readlink(path)
    return ""


def _local(data_dir: Path) -> PostmasterFacts:
    owner = None
    with contextlib.suppress(OSError, KeyError):
        info = data_dir.stat()
        entry = pwd.getpwuid(info.st_uid)
        owner = OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
    first = _read(str(data_dir / "postmaster.pid")).split("\n", 1)[0].strip()
    pid = int(first) if first.isdigit() else None
    exe = stderr = cgroup = ""
    if pid is not None:
        exe, stderr = _link(f"/proc/{pid}/exe"), _link(f"/proc/{pid}/fd/2")
        cgroup = (_read(f"/proc/{pid}/cgroup").strip().splitlines() or [""])[-1]
    which = [Path(p) / "pg_ctlcluster" for p in os.environ.get("PATH", "").split(os.pathsep)]
    return PostmasterFacts(
        pid=pid, owner=owner, bindir=_bindir(exe), stderr=_file_target(stderr),
        unit=_unit_of(cgroup),
        has_pg_ctlcluster=any(p.is_file() and os.access(p, os.X_OK) for p in which),
        has_systemd=Path("/run/systemd/system").is_dir())


def unit_main_pid(host: Host, unit: str) -> int | None:
    """The main pid systemd records for ``unit`` (None: no such unit or no systemd)."""
    try:
        done = host.run(("systemctl", "show", "--property", "MainPID", "--value", unit),
                        check=False, what="systemctl show", timeout=30)
    except PgStreamError:
        return None
    text = done.output.strip().splitlines()[-1:] if done.returncode == 0 else []
    return int(text[0]) if text and text[0].isdigit() and text[0] != "0" else None


@attrs.frozen
class LocalServer:
    """A server running on this machine, from its ``postmaster.pid``."""

    pid: int
    data_dir: Path
    port: int
    socket_dir: str | None
    listen: str | None


_WALRECEIVER = re.compile(rb"^postgres: (?:[^:]*: )?wal ?receiver")


def _server_of(postmaster: int) -> LocalServer | None:
    data_dir = _link(f"/proc/{postmaster}/cwd")
    lines = _read(f"{data_dir}/postmaster.pid").split("\n") if data_dir else []
    if len(lines) < 4 or not lines[0].strip().isdigit() or int(lines[0]) != postmaster:
        return None
    if not lines[3].strip().isdigit():
        return None
    socket = lines[4].strip() if len(lines) > 4 and lines[4].strip() else None
    listen = lines[5].strip() if len(lines) > 5 and lines[5].strip() else None
    return LocalServer(postmaster, Path(data_dir), int(lines[3]), socket, listen)


def local_walreceivers() -> list[LocalServer]:
    """The servers on this machine that run a walreceiver (standbys), from ``/proc``: each
    walreceiver's parent is its postmaster, whose working directory is the data directory."""
    found: dict[int, LocalServer] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    title = handle.read(200)
            except OSError:
                continue
            if not _WALRECEIVER.match(title):
                continue
            stat = _read(f"/proc/{entry.name}/stat")
            fields = stat.rsplit(")", 1)[-1].split()
            if len(fields) < 2 or not fields[1].isdigit():
                continue
            parent = int(fields[1])
            if parent not in found and (server := _server_of(parent)) is not None:
                found[parent] = server
    return sorted(found.values(), key=lambda s: s.port)
