"""SIGINT (Ctrl-C) and SIGTERM (what CI runners, ``timeout`` and pytest-timeout send) at
several points of ``Cluster.sandbox()`` and of operations, sent to a child Python process
that holds the sandbox (tests/faults/child.py).

End state, every time: the child exits within 30 s, no process of its directory is left
(servers, cp, pg_basebackup), the directory is empty (the sandbox removed); for an
interrupted switchover, never two servers accepting writes at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers import Child, Timeout, owned_by, wait_until

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def _progress(kind: str, event: str = "start") -> Callable[[dict[str, Any]], bool]:
    return lambda line: line.get("ev") == "progress" and line.get("kind") == kind \
        and line.get("event") == event


def _process(base: Path, program: str, child: Child, timeout: float = 60) -> None:
    """Wait until a ``program`` process works for the child's sandbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.program == program for p in owned_by(base)):
            return
        if child.proc.poll() is not None:
            break
        time.sleep(0.002)
    raise Timeout(f"no {program} process for {base} within {timeout:g} s")


def _end_state(base: Path, child: Child, sig: str) -> list[str]:
    problems = []
    code = child.wait_exit(30)
    if code is None:
        problems.append(f"the child did not exit within 30 s of {sig} (killed)")
    try:
        wait_until(lambda: not owned_by(base), timeout=5, what="the sandbox's processes")
    except Timeout:
        left = owned_by(base)
        problems.append(f"{len(left)} processes left after {sig}: "
                        + "; ".join(str(p) for p in left[:5]))
    entries = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    if entries:
        problems.append(f"{base} not removed after {sig}: {entries[:5]} ({len(entries)} paths)")
    return problems


SANDBOX_POINTS = ["template_copy", "base_backup", "streaming_check", "holding"]


@pytest.mark.parametrize("point", SANDBOX_POINTS)
@pytest.mark.parametrize("sig", list(SIGNALS))
def test_signal_during_sandbox(box_dir: Path, sig: str, point: str) -> None:
    base = box_dir / "base"
    base.mkdir(mode=0o755)
    env = {}
    if point == "template_copy":
        cache = box_dir / "cache"
        cache.mkdir()
        env["PGSTREAM_CACHE_DIR"] = str(cache)
    child = Child("padded" if point == "template_copy" else "sandbox", str(base), env=env)
    try:
        if point == "template_copy":
            child.wait_for(lambda line: line.get("ev") == "padded", 60, "padding")
            _process(base, "cp", child)
        elif point == "base_backup":
            _process(base, "pg_basebackup", child)
        elif point == "streaming_check":
            child.wait_for(_progress("check"), 60, "the streaming check")
        else:
            child.wait_for(lambda line: line.get("ev") == "ready", 60, "the sandbox")
        child.signal(SIGNALS[sig])
        problems = _end_state(base, child, sig)
        assert not problems, "\n".join(problems)
    finally:
        child.close()


@pytest.mark.parametrize("sig", list(SIGNALS))
def test_signal_during_switchover_promotion(box_dir: Path, sig: str) -> None:
    base = box_dir / "base"
    base.mkdir(mode=0o755)
    child = Child("switchover", str(base))
    try:
        child.wait_for(_progress("promote"), 90, "the promotion")
        child.signal(SIGNALS[sig])
        problems = _end_state(base, child, sig)
        for line in child.drain():
            if line.get("ev") == "interrupted" and len(line["writable"]) > 1:
                problems.append(f"two primaries after {sig}: {line['writable']}")
        assert not problems, "\n".join(problems)
    finally:
        child.close()


@pytest.mark.parametrize("sig", list(SIGNALS))
def test_signal_during_add_standby_clone(box_dir: Path, sig: str) -> None:
    base = box_dir / "base"
    base.mkdir(mode=0o755)
    child = Child("add_standby", str(base))
    try:
        child.wait_for(lambda line: line.get("ev") == "ready", 90, "the sandbox")
        deadline = time.monotonic() + 60
        while not any(p.program == "pg_basebackup" and any("standby9" in a for a in p.argv)
                      for p in owned_by(base)):
            assert time.monotonic() < deadline, "the clone of standby9 never started"
            time.sleep(0.005)
        time.sleep(0.2)
        child.signal(SIGNALS[sig])
        problems = _end_state(base, child, sig)
        assert not problems, "\n".join(problems)
    finally:
        child.close()


EXISTING_POINTS = {
    # after the old primary stopped: no primary until the rollback starts it again
    "existing_switchover": ("stop", "done", "primary"),
    # mid-clone: a half-made clone and its slot exist
    "existing_add_standby": ("base backup", "start", "standby9"),
}


@pytest.mark.parametrize("scenario", list(EXISTING_POINTS))
def test_sigterm_during_an_operation_on_existing_servers(box_dir: Path, scenario: str) -> None:
    """Issue 8: SIGTERM rolled back only while a sandbox lived; against declared servers the
    process died on the spot (no primary after the stop, a half-made clone and its slot)."""
    base = box_dir / "base"
    base.mkdir(mode=0o755)
    child = Child(scenario, str(base))
    try:
        kind, event, node = EXISTING_POINTS[scenario]
        child.wait_for(lambda item: item.get("ev") == "ready", 90, "the sandbox")
        child.wait_for(lambda item: _progress(kind, event)(item) and item["node"] == node, 90,
                       f"{kind} {event} of {node}")
        if kind == "base backup":
            _process(base, "pg_basebackup", child)
            time.sleep(0.2)
        child.signal(signal.SIGTERM)
        try:
            line = child.wait_for(lambda item: item.get("ev") == "interrupted", 30,
                                  "the rollback")
        except Timeout as exc:
            line = {}
            problems = [f"no rollback after SIGTERM: {exc}"]
        else:
            problems = []
        if line:
            if len(line["writable"]) != 1:
                problems.append(f"{len(line['writable'])} primaries: {line['writable']}")
            if "standby9" in line["slots"] or any("error" in s for s in line["slots"]):
                problems.append(f"slots after the rollback: {line['slots']}")
            if line["clone_files"]:
                problems.append("a half-made clone of standby9 left")
        problems += _end_state(base, child, "SIGTERM")
        assert not problems, "\n".join(problems)
    finally:
        child.close()


NESTED_PLAN_SCRIPT = """
import signal
from pgstream.errors import Terminated
from pgstream.hosts import sigterm
from pgstream.ops.plan import Plan, Step, StepKind

undone = []

def inner(report):
    assert sigterm.installed()
    signal.raise_signal(signal.SIGTERM)

nested = Plan("inner", [Step("b", StepKind.SQL, "kill", action=inner)])
outer = Plan("outer", [
    Step("a", StepKind.SQL, "made", action=lambda report: None,
         undo=lambda: undone.append("a")),
    Step("b", StepKind.SQL, "nested", action=lambda report: nested.apply())])
try:
    outer.apply()
except Terminated:
    pass
else:
    raise SystemExit("no Terminated")
assert undone == ["a"], undone
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
print("ok")
"""


def test_sigterm_inside_a_plan_rolls_back_and_the_default_comes_back() -> None:
    """Plan.apply holds SIGTERM itself (no sandbox): the step's SIGTERM rolls back the done
    steps, nested plans included, and the default action is back afterwards. In a fresh
    interpreter, so that no sandbox of another test holds SIGTERM meanwhile."""
    done = subprocess.run([sys.executable, "-c", NESTED_PLAN_SCRIPT], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


RETRY_POINTS = {
    # the old primary stopped, the target not yet promoted: rollback starts the old one again
    "switchover": "stop:done:primary",
    # the new primary promoted, the roles not yet recorded, standby2 not yet re-pointed
    "failover": "promote:done:standby1",
    # standby2's slot made on its new upstream, its recovery configuration not yet written
    "follow": "slot:done:standby2",
    # the rewound old primary's slot made on the new primary, not yet configured to use it
    "rejoin": "slot:done:primary",
    # standby2 stopped, its slot and pg_hba.conf line not yet removed
    "remove_standby": "stop:done:standby2",
}
# After the retry: who is primary, which standbys the cluster has, what runs.
RETRIED = {
    "switchover": ("standby1", ["primary", "standby2"], ["primary", "standby1", "standby2"]),
    "failover": ("standby1", ["standby2"], ["standby1", "standby2"]),
    "follow": ("primary", ["standby1", "standby2"], ["primary", "standby1", "standby2"]),
    "rejoin": ("standby1", ["primary", "standby2"], ["primary", "standby1", "standby2"]),
    "remove_standby": ("primary", ["standby1"], ["primary", "standby1"]),
}


def _orphans(slots: dict[str, list[list[Any]]]) -> list[str]:
    """Slots no walsender uses (each standby streams through its own, so a slot left
    inactive once everything streams is one nobody will use)."""
    return [f"{name} on {server}" for server, rows in slots.items() for name, active in rows
            if not active]


@pytest.mark.parametrize("sig", list(SIGNALS))
@pytest.mark.parametrize("op", list(RETRY_POINTS))
def test_signal_mid_operation_then_retry(box_dir: Path, op: str, sig: str) -> None:
    """Issue 8: SIGINT or SIGTERM at a named step of an operation on a sandbox (the child
    pauses there until the signal lands): the plan rolls back to one writable primary (none
    for a failover stopped before its promotion), no half-made data directory; the same call
    made again succeeds, and then exactly one primary is writable, every standby streams, no
    slot is left that nobody uses, and the sandbox leaves nothing behind."""
    base = box_dir / "base"
    base.mkdir(mode=0o755)
    point = RETRY_POINTS[op]
    kind, event, node = point.split(":")
    child = Child(f"retry_{op}", str(base), point)
    try:
        child.wait_for(lambda line: line.get("ev") == "ready", 60, "the sandbox")
        child.wait_for(lambda line: _progress(kind, event)(line) and line["node"] == node, 60,
                       f"{kind} {event} of {node}")
        child.signal(SIGNALS[sig])
        problems: list[str] = []
        cut = child.wait_for(lambda line: line.get("ev") in ("interrupted", "finished"), 60,
                             "the interruption")
        if cut["ev"] != "interrupted":
            problems.append(f"{op} finished although interrupted by {sig}")
        else:
            if len(cut["writable"]) != 1 and (op != "failover" or cut["writable"]):
                problems.append(f"after {sig}: {len(cut['writable'])} writable: "
                                f"{cut['writable']}")
            if cut["half_made"]:
                problems.append(f"after {sig}: half-made data directories {cut['half_made']}")
            if op != "failover":
                back = child.wait_for(lambda line: line.get("ev") == "restored", 30,
                                      "the state after the rollback")
                if back["error"] is not None:
                    problems.append(f"after {sig} and the rollback: {back['error']}")
                if orphans := _orphans(back["slots"]):
                    problems.append(f"after {sig} and the rollback, slots nobody uses: "
                                    f"{orphans}")
            done = child.wait_for(lambda line: line.get("ev") == "retried", 90, "the retry")
            primary, standbys, running = RETRIED[op]
            if done["error"] is not None:
                problems.append(f"the retry of {op} failed: {done['error']}")
            if (done["primary"], done["standbys"]) != (primary, standbys):
                problems.append(f"after the retry: primary {done['primary']}, standbys "
                                f"{done['standbys']}; expected {primary}, {standbys}")
            if [Path(p).name for p in done["writable"]] != [primary]:
                problems.append(f"after the retry, writable: {done['writable']}")
            if done["running"] != running:
                problems.append(f"after the retry, running: {done['running']}")
            if orphans := _orphans(done["slots"]):
                problems.append(f"after the retry, slots nobody uses: {orphans}")
            if done["half_made"]:
                problems.append(f"after the retry: half-made {done['half_made']}")
        problems += _end_state(base, child, sig)
        assert not problems, "\n".join(problems) + f"\ninterrupted: {cut}"
    finally:
        child.close()
