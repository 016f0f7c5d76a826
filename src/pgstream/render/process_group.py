"""A command run over SSH leads a process group of its own, whose id it prints first; when the
wait for it is interrupted here, one more short command stops that group there.

Killing the local ``ssh`` client alone leaves the remote command running (sshd closes its pipes,
nothing signals it). So the command leads a group of its own and first prints that group's id
on a marker line (on stdout: before anything the command prints there), which :class:`GroupWatch`
and :func:`without_marker` take out of the output callers see; :func:`stop_group` is the argv
that stops the group (SIGTERM, at most 2 s, then SIGKILL).

- Run as the login user, the command is the process sshd started, which sshd made the leader
  of a session (so of a group) of its own: the login shell prints its pid and execs the
  command (:func:`for_login_shell`), at no cost.
- Run as another user, :func:`in_group` wraps it inside the user switch, as that user: exec'd
  in the group it leads when ``sudo`` (``use_pty``) made one for it; otherwise (``runuser``,
  ``sudo`` without a pty) in a new session, ``setsid`` (a child of that ``sh`` is no group
  leader, so ``setsid`` forks no more); without ``setsid`` as before, in no group of its own
  (no marker: it is not stopped there).

Pure: text in, text out; POSIX sh on the remote side.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence

from pgstream.errors import InvalidInput

MARK = "<<pgstream-pgid:"
"""How the marker line starts: ``<<pgstream-pgid:PGID>>``."""
PRINT_GROUP = f'printf "{MARK}%s>>\\n" "$$"'
"""Shell code printing the marker line of the shell's own pid."""
_IN_GROUP = f'{PRINT_GROUP}; exec "$@"'
# "$@" in the group: its own when this sh leads one (field 5 of /proc/$$/stat, after the name
# in parentheses, which may hold spaces, is the group's id), else a new session, else as before.
GROUP = ('g=; if read -r s < "/proc/$$/stat"; then s=${s##*") "}; s=${s#* }; s=${s#* }; '
         'g=${s%% *}; fi 2>/dev/null; '
         f'if [ "$g" = "$$" ]; then {_IN_GROUP}; fi; '
         "if command -v setsid >/dev/null 2>&1; then setsid sh -c "
         f'{shlex.quote(_IN_GROUP)} sh "$@"; exit; fi; exec "$@"')
"""The ``sh -c`` script that runs ``"$@"`` leading a process group of its own (see above)."""
# $1 a process group: SIGTERM, at most 2 s (20 x 0.1 s) for it to go, then SIGKILL and at most
# 1 s more (so that nothing of it still writes when this returns). Exits 0: a group already
# gone is no failure.
STOP_GROUP = ('g=$1; wait_gone() { n=0; while [ "$n" -lt "$1" ] && kill -s 0 -- "-$g" '
              '2>/dev/null; do sleep 0.1; n=$((n + 1)); done; }; '
              'kill -s TERM -- "-$g" 2>/dev/null || exit 0; wait_gone 20; '
              'kill -s KILL -- "-$g" 2>/dev/null || exit 0; wait_gone 10; exit 0')
"""The ``sh -c`` script of :func:`stop_group`."""

_MARK_LINE = re.compile(re.escape(MARK) + r"(\d+)>>")
_MARK_OUTPUT = re.compile(re.escape(MARK) + r"\d+>>\n")


def for_login_shell(command: str) -> str:
    """The login shell's command line: print its pid (sshd made it a group leader), then
    ``exec`` ``command`` (a command line, quoted already) in its place."""
    return f"{PRINT_GROUP}; exec {command}"


def in_group(words: Sequence[str]) -> list[str]:
    """``words`` run by :data:`GROUP` (inside a user switch: the group is that user's)."""
    return ["sh", "-c", GROUP, "sh", *words]


def stop_group(pgid: int) -> tuple[str, ...]:
    """The argv stopping process group ``pgid``: SIGTERM, at most 2 s, then SIGKILL. Raises
    :class:`~pgstream.errors.InvalidInput` for what is no process group of a command (0 is the
    caller's own group, 1 init's, ``kill -- -1`` every process the user may signal)."""
    if isinstance(pgid, bool) or not isinstance(pgid, int) or pgid <= 1:
        raise InvalidInput(f"not a process group to stop: {pgid!r}")
    return ("sh", "-c", STOP_GROUP, "sh", str(pgid))


class GroupWatch:
    """An output callback (one line at a time) that takes the first marker out, keeping the
    group's id in :attr:`pgid`, and passes the other lines on to ``on_output``."""

    def __init__(self, on_output: Callable[[str], None] | None) -> None:
        self.pgid: int | None = None
        self._on_output = on_output

    def __call__(self, line: str) -> None:
        if self.pgid is None and (found := _MARK_LINE.search(line)) is not None:
            self.pgid = int(found[1])
            line = line[:found.start()] + line[found.end():]
            if not line.strip():
                return
        if self._on_output is not None:
            self._on_output(line)


def without_marker(output: str) -> str:
    """``output`` without its first marker line (ssh merges stderr into it, so the marker may
    sit inside a line of stderr; a marker the command itself printed later is kept)."""
    return _MARK_OUTPUT.sub("", output, count=1)
