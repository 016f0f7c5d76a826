"""Shell scripts that do a step and watch it on the server's own host, in one command.

Over SSH every command is a round trip, so a stop that is then polled, a start whose pid file
and log are then read again and again, or files read one test and one read at a time, cost
one round trip each. Each function here returns the argv of one ``sh -c SCRIPT NAME ARGS...``
(pure: the same text runs and is printed by plans); the program it wraps (``pg_ctl stop``,
``pg_ctlcluster``, ``systemctl``) is the service's own argv, passed as arguments. File
contents travel on stdin, never in argv. Each prints a marker its ``*_outcome`` reads.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Literal

from pgstream.errors import InvalidInput

# -- stop and start in one command each, watched on the server's own host ----------------------
# A postmaster "alive": its /proc entry exists and is no zombie (readable by any user, unlike
# ``kill -0`` on another user's process).
_ALIVE = ('alive() { [ -e "/proc/$1" ] && ! grep -q "^[^)]*) [ZX]" "/proc/$1/stat" '
          '2>/dev/null; }; ')

# $1 data directory, $2 seconds to wait, then the stop command; stdin: the postmaster pid the
# caller proved serves the node (or an empty line). Prints one marker: none (no live
# postmaster), mismatch:PID (another live postmaster than the proven one: nothing run),
# gone:PID (stopped, the process proven gone), alive:PID (still there after the wait).
_STOP = (_ALIVE
         + 'd=$1; t=$2; shift 2; want=; read -r want; '
           'pid=$(head -n 1 "$d/postmaster.pid" 2>/dev/null); '
           'case $pid in ""|*[!0-9]*) pid= ;; *) alive "$pid" || pid= ;; esac; '
           'case $want in ""|*[!0-9]*) want= ;; esac; '
           'if [ -n "$want" ] && [ "$want" != "$pid" ] && alive "$want"; then '
           'echo "<<stop:mismatch:$pid>>"; exit 0; fi; '
           'if [ -z "$pid" ]; then echo "<<stop:none:>>"; exit 0; fi; '
           '"$@" || exit; end=$(($(date +%s) + t)); '
           'while alive "$pid"; do if [ "$(date +%s)" -gt "$end" ]; then '
           'echo "<<stop:alive:$pid>>"; exit 0; fi; sleep 0.01; done; '
           'echo "<<stop:gone:$pid>>"')

# $1 data directory, $2 server log ("" if none), $3 seconds to wait, then the start command.
# First waits (30 s at most) until a dead postmaster named by a leftover postmaster.pid is
# reaped; notes the log's size; starts; then watches postmaster.pid (a file naming the old pid
# is stale) and only what the log gained since. Prints one marker: ready:PID, died:PID (the new
# postmaster exited), fatal: (no pid file, a FATAL logged), timeout:, unreaped:PID.
_START = (_ALIVE
          + 'd=$1; log=$2; t=$3; shift 3; f=$d/postmaster.pid; '
            'old=$(head -n 1 "$f" 2>/dev/null); '
            'case $old in ""|*[!0-9]*) ;; *) if ! alive "$old"; then '
            'end=$(($(date +%s) + 30)); while [ -e "/proc/$old" ]; do '
            'if [ "$(date +%s)" -gt "$end" ]; then echo "<<start:unreaped:$old>>"; exit 0; fi; '
            'sleep 0.01; done; fi ;; esac; '
            'size=0; if [ -n "$log" ]; then size=$(stat -c %s -- "$log" 2>/dev/null) || size=0; '
            'fi; "$@" || exit; end=$(($(date +%s) + t)); '
            'while :; do pid=$(sed -n 1p "$f" 2>/dev/null); st=$(sed -n 8p "$f" 2>/dev/null); '
            'if [ "$pid" = "$old" ]; then pid=; st=; fi; '
            'case $st in ready*|standby*) echo "<<start:ready:$pid>>"; exit 0 ;; esac; '
            'case $pid in ""|*[!0-9]*) ;; *) if ! alive "$pid"; then '
            'echo "<<start:died:$pid>>"; exit 0; fi ;; esac; '
            'if [ -z "$pid" ] && [ -n "$log" ] && tail -c "+$((size + 1))" -- "$log" '
            '2>/dev/null | grep -q FATAL; then echo "<<start:fatal:>>"; exit 0; fi; '
            'if [ "$(date +%s)" -gt "$end" ]; then echo "<<start:timeout:>>"; exit 0; fi; '
            'sleep 0.01; done')


def _seconds(timeout: int) -> str:
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise InvalidInput(f"a wait needs a positive number of seconds, not {timeout!r}")
    return str(timeout)


def stop_watched(stop: tuple[str, ...], data_dir: Path, timeout: int) -> tuple[str, ...]:
    """One command that stops a server and proves its postmaster gone, on its own host: reads
    ``postmaster.pid``, refuses (runs nothing) when the pid the caller proved (on stdin) is
    another live postmaster, runs ``stop``, then waits up to ``timeout`` seconds until that
    postmaster process has exited. Its output ends with a marker :func:`watch_outcome` reads."""
    return ("sh", "-c", _STOP, "pgstream-stop", str(data_dir), _seconds(timeout), *stop)


def start_watched(start: tuple[str, ...], data_dir: Path, log_file: Path | None,
                  timeout: int) -> tuple[str, ...]:
    """One command that starts a server and waits, on its own host, until its
    ``postmaster.pid`` says it accepts connections (10+), or it died, or what it appended to
    ``log_file`` holds a FATAL, or ``timeout`` seconds passed. Its output ends with a marker
    :func:`watch_outcome` reads."""
    return ("sh", "-c", _START, "pgstream-start", str(data_dir),
            str(log_file) if log_file is not None else "", _seconds(timeout), *start)


_LIVE = (_ALIVE + 'pid=$(head -n 1 "$1/postmaster.pid" 2>/dev/null); '
         'case $pid in ""|*[!0-9]*) pid= ;; *) alive "$pid" || pid= ;; esac; '
         'echo "<<pid:live:$pid>>"')


def live_postmaster(data_dir: Path) -> tuple[str, ...]:
    """One command printing the pid in ``data_dir/postmaster.pid`` if that process is alive
    (no zombie), for :func:`watch_outcome` ``"pid"``."""
    return ("sh", "-c", _LIVE, "pgstream-pid", str(data_dir))


def watch_outcome(output: str, kind: Literal["stop", "start", "pid"]
                  ) -> tuple[str, int | None] | None:
    """The last marker of a :func:`stop_watched` / :func:`start_watched` /
    :func:`live_postmaster` run: its state and
    the postmaster pid it names (None when it names none); None without a marker."""
    head = f"<<{kind}:"
    start = output.rfind(head)
    end = output.find(">>", start + len(head))
    if start < 0 or end < 0:
        return None
    state, _, pid = output[start + len(head):end].partition(":")
    return state, int(pid) if pid.isdigit() else None


# -- several small files in one command (the configuration files of a data directory) ---------
# Each file named: "<<file:BASE64:file>>" or, when absent, "<<none:file>>", one a line.
_READ_FILES = ('for f in "$@"; do if [ -e "$f" ]; then printf "<<file:" && base64 -w0 -- "$f" '
               '&& printf ":file>>\\n"; else printf "<<none:file>>\\n"; fi; done')

# Triples PATH MODE OWNER ("" keeps the owner); stdin: one base64 line per file, in order
# (the contents, passwords included, never in argv). Each written atomically (temp + rename).
_WRITE_FILES = ('set -e; umask 077; tmp=; trap \'rm -f "$tmp"\' EXIT; while [ $# -ge 3 ]; do '
                'IFS= read -r b || [ -n "$b" ]; tmp=$(mktemp "$1.pgstream.XXXXXX"); '
                'printf %s "$b" | base64 -d > "$tmp"; chmod "$2" "$tmp"; '
                'if [ -n "$3" ]; then chown "$3" "$tmp"; fi; mv "$tmp" "$1"; tmp=; shift 3; done')


def read_files(paths: tuple[Path, ...]) -> tuple[str, ...]:
    """One command printing each of ``paths`` (base64, or "absent"), for
    :func:`read_files_outcome`."""
    if not paths:
        raise InvalidInput("read_files needs at least one path")
    return ("sh", "-c", _READ_FILES, "pgstream-read", *(str(p) for p in paths))


def read_files_outcome(output: str, count: int) -> list[bytes | None] | None:
    """The contents a :func:`read_files` run printed (None for an absent file), or None when
    the output does not hold exactly ``count`` of them."""
    found = re.findall(r"<<file:([A-Za-z0-9+/=]*):file>>|<<(none):file>>", output)
    if len(found) != count:
        return None
    return [None if absent else base64.b64decode(data) for data, absent in found]


def write_files(files: tuple[tuple[Path, int, str], ...]) -> tuple[str, ...]:
    """One command writing several files, each ``(path, mode, owner "UID:GID" or "")``,
    atomically one by one; their contents go on stdin (:func:`write_files_input`)."""
    if not files:
        raise InvalidInput("write_files needs at least one file")
    argv = ["sh", "-c", _WRITE_FILES, "pgstream-write"]
    for path, mode, owner in files:
        if owner and not all(c.isdigit() or c == ":" for c in owner):
            raise InvalidInput(f"invalid owner {owner!r}: UID:GID")
        argv += [str(path), f"{mode:o}", owner]
    return tuple(argv)


def write_files_input(contents: tuple[str, ...]) -> str:
    """The stdin of :func:`write_files`: each content as one base64 line."""
    return "".join(base64.b64encode(c.encode()).decode() + "\n" for c in contents)
