"""A sandbox's setup plan: one ``pg_basebackup``, then a local copy of it for every other
standby, all of them started at once.

Every standby of a new sandbox is a fresh copy of the same just-initialised primary, on the
same machine, so cloning each with its own ``pg_basebackup`` (16 at once on 2 cores, each
ending with a WAL segment switch the others then stream) does the same work many times. The
plan of :meth:`pgstream.Cluster.setup_plan` is kept whole (the primary's steps create every
standby's slot first) and reordered: the first standby is cloned with ``pg_basebackup``
through its slot, alone; each other standby's directory is then a ``cp -a`` of that fresh,
not yet started backup (its ``backup_label`` included, so each starts backup recovery on its
own); then every standby gets its own recovery configuration (its slot, ``application_name``)
and settings (port, ``cluster_name``), starts and is checked to stream, all at once.

A slot created before the base backup began holds the WAL from before it, so every copy
finds what it needs on the primary. Each copy step keeps its clone's undo and cleanup (the
half-made directory is wiped), so a failure still leaves nothing behind.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import attrs

from pgstream.hosts.host import Host, OsUser
from pgstream.ops.plan import Plan, Report, Step, StepKind, StepResult


def copy_argv(source: Path, target: Path) -> tuple[str, ...]:
    """The command that copies the contents of the data directory ``source`` into the
    existing, empty directory ``target``, owners and modes kept (``cp -a SOURCE/. TARGET``)."""
    return ("cp", "-a", "--reflink=auto", f"{source}/.", str(target))


def shared_backup_plan(plan: Plan, *, primary: str, data_dirs: dict[str, Path],
                       host: Host, user: OsUser | None, timeout: float) -> Plan:
    """``plan`` (a sandbox's :func:`pgstream.ops.assemble.setup_plan`) with one base backup
    for all its standbys (named in ``data_dirs``, with their data directories): the first
    standby's ``pg_basebackup`` runs alone, every other standby's is replaced by a copy of it
    (run as ``user`` on ``host``, bounded by ``timeout``) before the first standby starts.

    The plan is returned unchanged when it has fewer than two standbys to clone, or when a
    standby's steps are not the whole clone (one that already streams has only its check).
    """
    names = list(data_dirs)
    lanes = {name: [s for s in plan.steps if s.node == name] for name in names}
    if len(names) < 2 or not all(_is_clone(steps) for steps in lanes.values()):
        return plan
    head = [s for s in plan.steps if s.node not in lanes]
    if any(s.node != primary for s in head) or plan.steps[:len(head)] != tuple(head):
        return plan  # not the shape this reorders: the primary's steps, then the clones
    seed, *others = names
    seed_steps = lanes[seed]
    cut = _backup_index(seed_steps)
    # Alone: the base backup, then (once every copy is made) the seed's recovery
    # configuration; both non-concurrent, so no copy reads a directory being written.
    steps = [*head, *seed_steps[:cut], attrs.evolve(seed_steps[cut], concurrent=False)]
    for name in others:
        own = lanes[name]
        at = _backup_index(own)
        steps += [*own[:at], _copy_step(own[at], seed, data_dirs[seed], data_dirs[name],
                                        host=host, user=user, timeout=timeout)]
    steps.append(attrs.evolve(seed_steps[cut + 1], concurrent=False))
    steps += seed_steps[cut + 2:]
    for name in others:
        steps += lanes[name][_backup_index(lanes[name]) + 1:]
    return Plan(plan.title + f" (one base backup, copied for {len(others)} standbys)", steps)


_CLONE_KINDS = (StepKind.BASE_BACKUP, StepKind.RECOVERY_CONFIG)


def _is_clone(steps: list[Step]) -> bool:
    kinds = [s.kind for s in steps]
    if kinds.count(StepKind.BASE_BACKUP) != 1:
        return False
    at = kinds.index(StepKind.BASE_BACKUP)
    return tuple(kinds[at:at + 2]) == _CLONE_KINDS and all(s.concurrent for s in steps)


def _backup_index(steps: list[Step]) -> int:
    return [s.kind for s in steps].index(StepKind.BASE_BACKUP)


def _copy_step(clone: Step, seed: str, source: Path, target: Path, *, host: Host,
               user: OsUser | None, timeout: float) -> Step:
    """The clone's base backup step, doing a copy of the seed's backup instead (its undo and
    cleanup kept: they remove what the copy wrote)."""
    argv = copy_argv(source, target)

    def copy(report: Report) -> StepResult:
        done = host.run(argv, user=user, timeout=timeout, what=f"copy for {clone.node}")
        return StepResult(True, f"copied {seed}'s base backup in {done.seconds:.2f} s")

    return attrs.evolve(
        clone, title=f"copy {seed}'s fresh base backup (not yet started) to {target}",
        detail=shlex.join(argv) + f"\n(its slot was created before {seed}'s base backup "
        "began, so it holds the WAL this copy needs)", action=copy)
