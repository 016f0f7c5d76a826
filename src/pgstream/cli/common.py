"""What every verb shares: options, output (text or one JSON document), exit codes, error
codes, progress on a terminal, confirmation of destructive verbs, the topology file.

Exit codes: 0 ok; 1 problems found, or an operation refused (also: confirmation missing);
2 bad input (arguments, topology file, names); 3 a node or host unreachable; 4 a server not
in the state needed; 5 an operation failed; 130 interrupted. A JSON error is
``{"ok": false, "command": ..., "error": {"code", "category", "message", "exit_code"}}``;
``code`` is the error's class in snake_case (``switchover_refused``, ``node_unreachable``,
``topology_error``, ...), stable across releases.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pgstream.cluster import Cluster
    from pgstream.ops.plan import Plan, PlanReport, ProgressEvent

OK, PROBLEMS, BAD_INPUT, UNREACHABLE, SERVER_STATE, FAILED, INTERRUPTED = 0, 1, 2, 3, 4, 5, 130
CONFIG_ENV = "PGSTREAM_CONFIG"
DEFAULT_CONFIG = "pgstream.toml"


class CliError(Exception):
    """An error of the command line itself (usage, confirmation), with its code."""

    def __init__(self, message: str, *, code: str, exit_code: int) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


def common_options(*, config: bool = True) -> argparse.ArgumentParser:
    """The options every verb takes (a parent parser)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="print one JSON document")
    parent.add_argument("--dry-run", action="store_true",
                        help="print the plan (or what would be written) and change nothing")
    parent.add_argument("--yes", action="store_true",
                        help="confirm a destructive verb (required when not on a terminal)")
    parent.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    if config:
        parent.add_argument("-c", "--config", help=f"topology file (default: ${CONFIG_ENV}, "
                                                   f"else ./{DEFAULT_CONFIG})")
    return parent


def config_path(args: argparse.Namespace) -> Path:
    """``-c FILE``, else ``$PGSTREAM_CONFIG``, else ``./pgstream.toml``."""
    chosen = getattr(args, "config", None) or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    path = Path(chosen)
    if not path.is_file():
        raise CliError(f"no topology file {path}: run 'pgstream discover CONNINFO --write "
                       f"{DEFAULT_CONFIG}' first, or give -c FILE", code="no_topology",
                       exit_code=BAD_INPUT)
    return path


def load_cluster(args: argparse.Namespace, *, deep: bool = True) -> Cluster:
    """The cluster of the topology file, discovered now."""
    from pgstream.cluster import Cluster

    return Cluster.from_file(config_path(args), deep=deep)


def error_code(exc: BaseException) -> str:
    """``SwitchoverRefused`` -> ``switchover_refused``."""
    return getattr(exc, "code", None) or re.sub(r"(?<!^)(?=[A-Z])", "_",
                                                type(exc).__name__).lower()


def classify(exc: BaseException) -> tuple[str, int]:
    """The category and exit code of an error."""
    from pgstream.errors import (
        InvalidInput,
        OperationFailed,
        Refused,
        ServerStateError,
        Unreachable,
    )

    if isinstance(exc, CliError):
        return ("refused" if exc.exit_code == PROBLEMS else "invalid_input"), exc.exit_code
    for cls, category, code in ((InvalidInput, "invalid_input", BAD_INPUT),
                                (Refused, "refused", PROBLEMS),
                                (Unreachable, "unreachable", UNREACHABLE),
                                (ServerStateError, "server_state", SERVER_STATE),
                                (OperationFailed, "operation_failed", FAILED)):
        if isinstance(exc, cls):
            return category, code
    return "operation_failed", FAILED


def emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    """Print ``text``, or with ``--json`` the document (with ``ok`` and ``command``)."""
    if getattr(args, "json", False):
        print(json.dumps({"ok": document.pop("ok", True), "command": args.command, **document},
                         default=str, sort_keys=False), flush=True)
    elif text:
        print(text, flush=True)


def emit_error(args: argparse.Namespace | None, exc: BaseException) -> int:
    """Print ``exc`` (on stderr, or with ``--json`` as an ``error`` document on stdout
    with its code, category and exit code); returns the exit code its category maps to."""
    category, code = classify(exc)
    message = str(exc)
    if args is not None and getattr(args, "json", False):
        print(json.dumps({"ok": False, "command": getattr(args, "command", None),
                          "error": {"code": error_code(exc), "category": category,
                                    "message": message, "exit_code": code}}), flush=True)
    else:
        print(f"pgstream: error: {message}", file=sys.stderr, flush=True)
    return code


def plan_document(plan: Plan) -> dict[str, Any]:
    """The ``--json`` form of a plan: its title and numbered steps, each with its detail."""
    return {"title": plan.title, "steps": [
        {"number": n, "node": s.node, "host": s.host, "kind": s.kind.value, "title": s.title,
         "detail": s.detail} for n, s in enumerate(plan.steps, 1)]}


def report_document(report: PlanReport) -> dict[str, Any]:
    """The ``--json`` form of an applied plan: what each step did and how long it took."""
    return {"title": report.plan_title, "changed": report.changed, "steps": [
        {"node": a.step.node, "title": a.step.title, "changed": a.result.changed,
         "message": a.result.message, "seconds": round(a.seconds, 3)} for a in report.applied]}


def confirm(args: argparse.Namespace, what: str) -> None:
    """A destructive verb goes on with ``--yes``, or after "y" on a terminal."""
    if args.yes or args.dry_run:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{what}: this changes or removes data; pass --yes to confirm "
                       "(stdin is not a terminal)", code="confirmation_required",
                       exit_code=PROBLEMS)
    answer = input(f"{what}. Go on? [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("not confirmed: nothing was changed", code="not_confirmed",
                       exit_code=PROBLEMS)


def run_plan(args: argparse.Namespace, plan: Plan, cluster: Cluster | None = None) -> int:
    """``--dry-run``: print the plan; else apply it with progress on a terminal."""
    if args.dry_run:
        emit(args, {"dry_run": True, "plan": plan_document(plan)}, str(plan))
        return OK
    report = plan.apply(Progress() if sys.stderr.isatty() else None)
    document: dict[str, Any] = {"report": report_document(report)}
    if cluster is not None:
        document["primary"] = cluster.primary.name
    emit(args, document, str(report))
    return OK


_KB = re.compile(r"(\d+)/(\d+) kB")


class Progress:
    """Steps as they run, on stderr; a bar with rate while pg_basebackup copies. Clones run
    at once (setup with several standbys): each step's rate is measured from its own first
    sample (``copies``, by step number)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.copies: dict[int, tuple[float, int]] = {}

    def __call__(self, event: ProgressEvent) -> None:
        clock = f"{time.monotonic() - self.started:6.1f}s"
        where = f"[{event.index:>2}/{event.total}] {event.step.node}"
        if event.event == "percent" and event.percent is not None:
            match = _KB.search(event.message)
            rate = ""
            if match:
                done = int(match[1])
                now = time.monotonic()
                first = self.copies.setdefault(event.index, (now, done))
                spent = now - first[0]
                if spent > 0:
                    rate = f" {(done - first[1]) / 1024 / spent:7.1f} MB/s"
            filled = int(event.percent / 5)
            sys.stderr.write(f"\r{clock} {where} [{'#' * filled}{'.' * (20 - filled)}] "
                             f"{event.percent:3.0f}%{rate}")
            sys.stderr.flush()
        elif event.event == "done":
            self.copies.pop(event.index, None)
            sys.stderr.write(f"\r\x1b[K{clock} {where} {event.step.title}: {event.message}\n")
        elif event.event == "failed":
            self.copies.pop(event.index, None)
            sys.stderr.write(f"\r\x1b[K{clock} {where} FAILED: {event.step.title}\n")
        elif event.event == "undone":
            sys.stderr.write(f"{clock} rolled back: [{event.step.node}] {event.step.title}\n")
