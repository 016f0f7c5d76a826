"""Logging, Prometheus metrics and the notebook view against real servers."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgstream.cli import main
from pgstream.cluster import Cluster
from pgstream.errors import PlanFailed
from pgstream.hosts.wait import wait_for
from pgstream.ops import metrics
from pgstream.ops.sandbox.servers import free_port

SECRET = "Obs3rv-s3cret'pw"


def test_log_of_a_failed_setup_steps_commands_sql_rollback_and_no_password(
        empty_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    from pgstream.render import commands

    real = commands.pg_basebackup

    def broken(*args: object, **kwargs: object) -> tuple[str, ...]:
        return (*real(*args, **kwargs), "--no-such-option")  # type: ignore[arg-type]

    monkeypatch.setattr(commands, "pg_basebackup", broken)
    caplog.set_level(logging.DEBUG, logger="pgstream")
    with pytest.raises(PlanFailed):
        Cluster.sandbox(standbys=1, base_dir=empty_dir, password=SECRET)
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    info = [m for n, lvl, m in records if lvl == logging.INFO and n == "pgstream.ops.plan"]
    assert any(m.endswith("started") and "[primary@localhost] role:" in m for m in info)
    assert any(re.match(r"step \d+/\d+ \[primary@localhost\] physical replication slot "
                        r"standby1: done: created slot standby1 \(", m) for m in info), info
    debug = [m for _, lvl, m in records if lvl == logging.DEBUG]
    assert any(m.startswith("run") and "pg_basebackup" in m and "PGPASSFILE=" in m
               for m in debug), debug
    assert any(m.startswith("sql on primary: CREATE ROLE") and "PASSWORD '********'" in m
               for m in debug), [m for m in debug if "ROLE" in m]
    assert any(m.startswith("sql on primary: SELECT * FROM") and "create_physical_replication"
               "_slot" in m for m in debug)
    warnings = [m for _, lvl, m in records if lvl == logging.WARNING]
    assert any(("failed" in m and "base backup" in m.lower()) or "clone" in m for m in warnings)
    assert any(m.startswith("rolling back [primary@localhost]") for m in warnings)
    for record in caplog.records:  # the password, its verifier, the passfile's line: nowhere
        text = record.getMessage() + (record.exc_text or "")
        assert SECRET not in text and "SCRAM-SHA-256$" not in text and \
            f"replicator:{SECRET}" not in text
    assert list(empty_dir.iterdir()) == []


def _reported(cluster: Cluster) -> None:
    """Wait until the primary knows the standby's replay position (its first status reply)."""
    cluster.wait_for_catchup()
    wait_for(lambda: cluster.status().standby("standby1").replay_lag_bytes is not None,
             timeout=30, what="the primary to see standby1's replay position")


def _families(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _check_streaming(text: str, cluster: Cluster) -> None:
    got = _families(text)
    where = (("node", "standby1"), ("upstream", "primary"))
    assert got[("pgstream_scrape_success", ())] == 1
    assert got[("pgstream_standby_up", where)] == 1
    assert got[("pgstream_standby_streaming", where)] == 1
    assert got[("pgstream_standby_replay_lag_bytes", where)] >= 0
    assert got[("pgstream_timeline", (("node", "primary"),))] >= 1
    slot = (("node", "standby1"), ("slot", "standby1"), ("upstream", "primary"))
    assert got[("pgstream_slot_active", slot)] == 1
    assert got[("pgstream_slot_retained_bytes", slot)] >= 0
    if cluster.primary.version.adapter.has("column", "wal_status", "pg_replication_slots"):
        assert got[("pgstream_slot_wal_status", (*slot[:2], ("upstream", "primary"),
                                                 ("wal_status", "reserved")))] == 1


def test_metrics_scraped_over_loopback_read_afresh(
        pgstream_shared_cluster: Cluster) -> None:
    cluster = pgstream_shared_cluster
    _reported(cluster)
    with metrics.MetricsServer(lambda: cluster.status().to_prometheus(), "127.0.0.1", 0) \
            as server:
        url = f"http://127.0.0.1:{server.address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=30) as answer:
            first = answer.read().decode()
        _check_streaming(first, cluster)
        before = _families(first)[("pgstream_wal_position_bytes", (("node", "primary"),))]
        cluster.primary.execute("CREATE TABLE IF NOT EXISTS obs_metrics AS SELECT 1 AS x")
        with urllib.request.urlopen(url, timeout=30) as answer:
            second = _families(answer.read().decode())
        assert second[("pgstream_wal_position_bytes", (("node", "primary"),))] > before
        cluster.primary.execute("DROP TABLE obs_metrics")
    html = cluster.status()._repr_html_()
    assert "<svg" in html and ">standby1</text>" in html and "Problems" not in html


def test_cli_metrics_prints_and_serves(pgstream_shared_cluster: Cluster,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cluster = pgstream_shared_cluster
    _reported(cluster)
    args = ["--primary", cluster.primary.conninfo, "--primary-name", "primary",
            "--standby", f"standby1={cluster.standbys[0].conninfo}"]
    assert main(["metrics", *args]) == 0
    printed = capsys.readouterr().out
    _check_streaming(printed, cluster)
    got = _families(printed)  # the check's findings, by severity and one series each
    assert got[("pgstream_findings", (("severity", "error"),))] == 0
    assert "# TYPE pgstream_finding gauge" in printed
    ghost = ["--standby", "ghost=host=/nonexistent port=1 user=postgres dbname=postgres"]
    assert main(["metrics", *args, *ghost]) == 0
    got = _families(capsys.readouterr().out)
    assert got[("pgstream_finding", (("code", "node_unreachable"), ("node", "ghost"),
                                     ("severity", "error")))] == 1
    assert got[("pgstream_findings", (("severity", "error"),))] >= 1
    assert got[("pgstream_standby_up", (("node", "ghost"), ("upstream", "primary")))] == 0
    port = free_port(set())
    server = subprocess.Popen([sys.executable, "-m", "pgstream", "-v", "metrics", *args,
                               "--listen", f"127.0.0.1:{port}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline, text = time.monotonic() + 30, ""
        while not text and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                    text = answer.read().decode()
            except OSError:
                time.sleep(0.1)
        _check_streaming(text, cluster)
    finally:
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"serving http://127.0.0.1:{port}/metrics" in out
    assert "INFO pgstream.ops.metrics: metrics: serving" in err  # -v: the log on stderr
    assert main(["metrics", "--primary", "host=/nonexistent port=1"]) == 1
    assert "pgstream_scrape_success 0" in capsys.readouterr().out
