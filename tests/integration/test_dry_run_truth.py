"""A dry run is the truth: every command and statement a plan's step runs is what
``print(plan)`` showed for that step.

Each operation is applied to real servers through a recording host (every argv a step runs,
as given to ``Host.run``) and with psycopg's cursor recording every statement. Effects (the
programs and statements that change something) recorded while step N ran must appear, as
they ran, in step N's printed detail. Service kinds: pg_ctl, and systemd through a stand-in
``systemctl`` that drives the same servers with pg_ctl (systemd cannot run here); the Debian
``pg_ctlcluster`` layout and SSH hosts run the same check on the multi-host rig
(tests/multihost/test_deployment.py).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgstream import Cluster, Plan, ReplicationAuth, SyncSpec

from ..recording import Recorder, apply_and_compare, record_through, recording
from .conftest import Rig

MakeCluster = Callable[..., Cluster]

SYSTEMCTL = """#!/bin/sh
# A stand-in for systemctl: units name data directories in $PGSTREAM_UNITS (unit=dir:bindir).
verb="$1"; unit="$2"
line=$(printf '%s\\n' "$PGSTREAM_UNITS" | tr ' ' '\\n' | grep "^$unit=")
dir=${line#*=}; dir=${dir%%:*}; bindir=${line#*:}
case "$verb" in
  start) exec runuser -u postgres -- "$bindir/pg_ctl" start -w -D "$dir" -l "$dir.log" ;;
  stop) exec runuser -u postgres -- "$bindir/pg_ctl" stop -w -D "$dir" -m fast ;;
  restart) exec runuser -u postgres -- "$bindir/pg_ctl" restart -w -D "$dir" -m fast \\
             -l "$dir.log" ;;
  reload) exec runuser -u postgres -- "$bindir/pg_ctl" reload -D "$dir" ;;
esac
exit 2
"""


def as_systemd(cluster: Cluster, shim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Drive every node's server through systemctl (a stand-in that runs pg_ctl)."""
    from pgstream.hosts.service import SystemdService

    script = shim_dir / "systemctl"
    script.write_text(SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    units: dict[str, str] = {}
    for node in [*cluster.nodes, *cluster.failed]:
        svc = node.service
        assert svc is not None
        unit = f"pgstream-{node.name}.service"
        units[unit] = f"{svc.data_dir}:{svc.bindir}"
        node.service = SystemdService(svc.host, svc.bindir, svc.data_dir, svc.user,
                                      svc.log_file, svc.timeout, svc.version, unit=unit)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PGSTREAM_UNITS", " ".join(f"{u}={d}" for u, d in units.items()))


OPERATIONS: Mapping[str, Callable[[Cluster], Plan]] = {
    "follow": lambda c: c.follow_plan("standby2", "standby1"),
    "follow back": lambda c: c.follow_plan("standby2", c.primary.name),
    "switchover": lambda c: c.switchover_plan("standby1"),
    "switchover back": lambda c: c.switchover_plan("primary"),
    "failover": lambda c: c.failover_plan(force=True),
}


@pytest.mark.parametrize("service", ["pg_ctl", "systemd"])
def test_what_runs_is_what_the_plan_printed(service: str, pgstream_sandbox: MakeCluster,
                                            recorder: Recorder, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    if service == "systemd" and os.geteuid() != 0:
        pytest.skip("the systemctl stand-in switches to the postgres user: needs root")
    cluster = pgstream_sandbox(standbys=2)
    if service == "systemd":
        tmp_path.chmod(0o755)
        as_systemd(cluster, tmp_path, monkeypatch)
    record_through(cluster, recorder)
    for name, build in OPERATIONS.items():
        plan = build(cluster)
        apply_and_compare(plan, recorder)
        assert recorder.effects, f"{name}: nothing recorded"
    # The forced failover stopped the old primary at once: it rejoins with pg_rewind, which
    # must be of its own major (not every major of the matrix has one).
    if _has_rewind(cluster):
        apply_and_compare(cluster.rejoin_plan(cluster.failed[0].name), recorder)
        assert cluster.status().all_streaming


def _has_rewind(cluster: Cluster) -> bool:
    from pgstream.hosts import binaries

    major = cluster.primary.version.major
    return any(i.has("pg_rewind") and i.version.major == major for i in binaries.discover())


def test_a_standby_added_and_promoted_alone(pgstream_sandbox: MakeCluster,
                                            recorder: Recorder) -> None:
    cluster = pgstream_sandbox(standbys=1)
    record_through(cluster, recorder)
    apply_and_compare(cluster.promote_plan("standby1"), recorder)


def test_setup_clone_sync_and_removal_print_what_they_run(rig: Rig, recorder: Recorder) -> None:
    """Existing servers: the runbook (settings, role, hba, slots, clones), a standby added,
    synchronous replication set, and a standby removed."""
    primary = rig.existing_primary("main")
    first, first_own = rig.future_standby("replica1")
    second, second_own = rig.future_standby("replica2")
    port = int(str(conninfo_to_dict(primary.conninfo)["port"]))
    cluster = Cluster(primary, [first], auth=ReplicationAuth("repuser", "s3cret pw"),
                      primary_address=("127.0.0.1", port), hba_addresses=["127.0.0.1"],
                      node_settings={"replica1": first_own})
    record_through(cluster, recorder)
    apply_and_compare(cluster.setup_plan(), recorder)
    second.host = recording(second.host, recorder)
    assert second.service is not None
    second.service.host = second.host
    apply_and_compare(cluster.add_standby_plan(second, node_settings=second_own), recorder)
    apply_and_compare(cluster.synchronous_plan(SyncSpec.first(1, ["replica1"])), recorder)
    apply_and_compare(cluster.synchronous_plan(SyncSpec.off()), recorder)
    apply_and_compare(cluster.remove_standby_plan("replica2", wipe=True), recorder)
    assert cluster.status().all_streaming
