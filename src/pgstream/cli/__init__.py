"""The ``pgstream`` command. One module per group of verbs, each with ``register(subparsers)``:

- :mod:`pgstream.cli.sandbox`: ``demo``, ``sandbox-stop``, ``binaries``;
- :mod:`pgstream.cli.inspect`: ``discover``, ``status``, ``slots``;
- :mod:`pgstream.cli.operate`: ``setup``, ``switchover``, ``failover``, ``rejoin``, ``follow``;
- :mod:`pgstream.cli.members`: ``add-standby``, ``remove-standby``.

A new group is one more module in :data:`GROUPS`. Importing this package stays fast: verbs
import the library when they run. Exit codes and JSON errors: :mod:`pgstream.cli.common`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pgstream.cli import common, inspect, members, operate, sandbox
from pgstream.cli.common import BAD_INPUT, INTERRUPTED, CliError

GROUPS = (sandbox, inspect, operate, members)
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
    sub = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for group in GROUPS:
        group.register(sub)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one verb; returns its exit code (see :mod:`pgstream.cli.common`)."""
    args: argparse.Namespace | None = None
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(words)
        return int(args.func(args))
    except CliError as exc:
        if args is None and "--json" in words:
            args = argparse.Namespace(json=True, command=next(
                (w for w in words if not w.startswith("-")), None))
        return common.emit_error(args, exc)
    except KeyboardInterrupt:
        print("pgstream: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Exception as exc:
        from pgstream.errors import PgStreamError

        if not isinstance(exc, PgStreamError | OSError):
            raise
        return common.emit_error(args, exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
