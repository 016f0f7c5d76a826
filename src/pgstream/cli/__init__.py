"""The ``pgstream`` command. One module per group of verbs, each with ``register(subparsers)``:

- :mod:`pgstream.cli.sandbox`: ``demo``, ``sandbox-stop``, ``binaries``;
- :mod:`pgstream.cli.inspect`: ``discover``, ``status``, ``slots``;
- :mod:`pgstream.cli.operate`: ``setup``, ``switchover``, ``failover``, ``rejoin``, ``follow``;
- :mod:`pgstream.cli.members`: ``add-standby``, ``remove-standby``;
- :mod:`pgstream.cli.observe`: ``check``, ``metrics``.

SIGTERM (``timeout``, a CI runner, systemd) ends a verb like Ctrl-C for the whole run
(:mod:`pgstream.hosts.sigterm`): a plan rolls back, a sandbox is stopped, exit code 130.

``-v`` logs each plan step on stderr, ``-vv`` also every command and statement (secrets
masked), ``-q`` errors only: for that run only.

A new group is one more module in :data:`GROUPS`. Importing this package stays fast: verbs
import the library when they run. Exit codes and JSON errors: :mod:`pgstream.cli.common`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pgstream.cli import common, inspect, members, observe, operate, sandbox
from pgstream.cli.common import BAD_INPUT, INTERRUPTED, CliError

GROUPS = (sandbox, inspect, operate, members, observe)
VERSION = "0.1.0"


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors come back as a :class:`CliError` (JSON with --json)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CliError(f"{self.prog}: {message}", code="usage", exit_code=BAD_INPUT)


def parser() -> argparse.ArgumentParser:
    """The whole command line (every group registered)."""
    top = _Parser(prog="pgstream", description="Set up, check and operate PostgreSQL "
                  "streaming replication: of a local sandbox, or of an existing cluster "
                  "described by its topology file (pgstream discover).")
    top.add_argument("--version", action="version", version=f"pgstream {VERSION}")
    top.add_argument("-v", "--verbose", action="count", default=0,
                     help="log to stderr: -v each plan step, -vv also commands and SQL")
    top.add_argument("-q", "--quiet-log", dest="log_quiet", action="store_true",
                     help="log errors only")
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in GROUPS:
        group.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; returns its exit code (see :mod:`pgstream.cli.common`)."""
    args: argparse.Namespace | None = None
    words = list(sys.argv[1:] if argv is None else argv)
    log = logging.getLogger("pgstream")  # -v/-vv/-q: pgstream's log on stderr, this run only
    handler, level = logging.StreamHandler(), log.level
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    from pgstream.hosts import sigterm

    sigterm.hold()  # SIGTERM from now on: the cleanup of Ctrl-C, not death on the spot
    try:
        args = parser().parse_args(words)
        log.addHandler(handler)
        log.setLevel(logging.ERROR if args.log_quiet else
                     {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
        return int(args.func(args))
    except CliError as exc:
        if args is None and "--json" in words:
            args = argparse.Namespace(json=True, command=next(
                (w for w in words if not w.startswith("-")), None))
        return common.emit_error(args, exc)
    except KeyboardInterrupt as exc:
        from pgstream.errors import Terminated

        word = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"pgstream: {word}", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        from pgstream.errors import PgStreamError

        if not isinstance(exc, PgStreamError | OSError):
            raise
        return common.emit_error(args, exc)
    finally:
        sigterm.release()
        log.removeHandler(handler)
        log.setLevel(level)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
