"""A dry run is the truth with a systemd service, for the plans that build a cluster: setup,
a standby added, a standby removed (wiped), a standby promoted alone.

systemd does not run here (no init system in the container): every node's service is a
:class:`~pgstream.SystemdService` whose ``systemctl`` is the stand-in of
:mod:`tests.integration.test_dry_run_truth` (first on ``PATH``; it drives the same real servers
with ``pg_ctl``). What is compared is the argv pgstream gives ``Host.run`` (``systemctl start
UNIT`` inside its watch script, ``pg_ctl promote``...) with what ``print(plan)`` showed; what a
real systemd would do with that argv is not tested here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from pgstream import Cluster, ReplicationAuth, SystemdService
from pgstream.nodes.node import Node

from ..recording import Recorder, apply_and_compare, record_through, recording
from .conftest import Rig
from .test_dry_run_truth import SYSTEMCTL


def _as_systemd(nodes: Iterable[Node], shim_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each node's server driven through ``systemctl`` (the stand-in), by a unit of its own."""
    script = shim_dir / "systemctl"
    script.write_text(SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    units: dict[str, str] = {}
    for node in nodes:
        svc = node.service
        assert svc is not None
        unit = f"pgstream-{node.name}.service"
        units[unit] = f"{svc.data_dir}:{svc.bindir}"
        node.service = SystemdService(svc.host, svc.bindir, svc.data_dir, svc.user,
                                      svc.log_file, svc.timeout, svc.version, unit=unit)
    monkeypatch.setenv("PATH", f"{shim_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PGSTREAM_UNITS", " ".join(f"{u}={d}" for u, d in units.items()))


def test_setup_add_remove_promote_with_systemd_units(rig: Rig, recorder: Recorder,
                                                     tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() != 0:
        pytest.skip("the systemctl stand-in switches to the postgres user: needs root")
    primary = rig.existing_primary("main")
    first, first_own = rig.future_standby("replica1")
    second, second_own = rig.future_standby("replica2")
    tmp_path.chmod(0o755)
    _as_systemd([primary, first, second], tmp_path, monkeypatch)
    port = int(str(conninfo_to_dict(primary.conninfo)["port"]))
    cluster = Cluster(primary, [first], auth=ReplicationAuth("repuser", "s3cret pw"),
                      primary_address=("127.0.0.1", port), hba_addresses=["127.0.0.1"],
                      node_settings={"replica1": first_own})
    record_through(cluster, recorder)
    apply_and_compare(cluster.setup_plan(), recorder)
    assert "systemctl start pgstream-replica1.service" in [
        e for done in recorder.effects.values() for e in done]
    second.host = recording(second.host, recorder)
    assert second.service is not None
    second.service.host = second.host
    apply_and_compare(cluster.add_standby_plan(second, node_settings=second_own), recorder)
    assert cluster.status().all_streaming
    apply_and_compare(cluster.remove_standby_plan("replica2", wipe=True), recorder)
    assert any(e.startswith("find ") for done in recorder.effects.values() for e in done)
    apply_and_compare(cluster.promote_plan("replica1"), recorder)
    assert recorder.effects, "the promotion recorded nothing"
    assert first.query("SELECT pg_is_in_recovery()") == [(False,)]
