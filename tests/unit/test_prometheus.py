"""Prometheus exposition (parsed with prometheus_client's own parser) and the /metrics server."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pgstream.errors import InvalidAddress, InvalidInput, NodeUnreachable
from pgstream.ops import metrics
from pgstream.ops.status import ClusterStatus
from pgstream.render import prometheus

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """Family types and every sample, keyed by (name, sorted labels), via the real parser."""
    types, samples = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return types, samples


def test_status_metrics_parse_and_carry_the_values(sample_status: ClusterStatus,
                                                   sample_findings: list[Any]) -> None:
    types, got = parse(sample_status.to_prometheus(findings=sample_findings))
    assert set(types.values()) == {"gauge"}
    assert all(name.startswith("pgstream_") for name in types)
    s1 = (("node", "standby1"), ("upstream", "primary"))
    s2 = (("node", "standby2"), ("upstream", "standby1"))
    s3 = (("node", "standby3"), ("upstream", "primary"))
    assert got[("pgstream_standby_up", s1)] == 1 and got[("pgstream_standby_up", s3)] == 0
    assert got[("pgstream_standby_streaming", s1)] == 1
    assert got[("pgstream_standby_streaming", s3)] == 0
    assert got[("pgstream_standby_state", (*s3[:1], ("state", "disconnected"), s3[1]))] == 1
    assert got[("pgstream_standby_replay_lag_bytes", s2)] == 3 << 20
    assert got[("pgstream_standby_replay_lag_seconds", s2)] == 2.5
    assert got[("pgstream_standby_flush_lag_bytes", s1)] == 65536 - 0xF000
    assert ("pgstream_standby_replay_lag_seconds", s3) not in got  # unknown: absent, not 0
    slot3 = (("node", "standby3"), ("slot", "standby3"), ("upstream", "primary"))
    assert got[("pgstream_slot_active", slot3)] == 0
    assert got[("pgstream_slot_retained_bytes", slot3)] == 900 << 20
    states = {dict(labels)["wal_status"]: value for (name, labels), value in got.items()
              if name == "pgstream_slot_wal_status" and dict(labels)["node"] == "standby3"}
    assert states == {"reserved": 0, "extended": 0, "unreserved": 0, "lost": 1}
    assert got[("pgstream_timeline", (("node", "primary"),))] == 3
    assert got[("pgstream_primary_info", (("node", "primary"), ("version", "18.1")))] == 1
    assert got[("pgstream_node_failed", (("node", "oldprimary"),))] == 1
    assert got[("pgstream_standby_in_recovery", (("node", "standby4"),
                                                 ("upstream", "primary")))] == 0
    assert got[("pgstream_findings", (("severity", "error"),))] == 2
    assert got[("pgstream_finding", (("code", "lag_high"), ("node", "standby2"),
                                     ("severity", "warning")))] == 1


def test_findings_as_plain_triples_and_odd_label_values(sample_status: ClusterStatus) -> None:
    odd = 'a "quoted"\\ name\nnext'
    _, got = parse(prometheus.render(sample_status, [("hba_missing", "error", None),
                                                     (odd, "warning", "standby1")]))
    assert got[("pgstream_finding", (("code", "hba_missing"), ("node", ""),
                                     ("severity", "error")))] == 1
    assert got[("pgstream_finding", (("code", odd), ("node", "standby1"),
                                     ("severity", "warning")))] == 1
    assert got[("pgstream_findings", (("severity", "info"),))] == 0
    _, none = parse(sample_status.to_prometheus())
    assert not any(name.startswith("pgstream_finding") for name, _ in none)


def test_failure_exposition_parses() -> None:
    _, got = parse(prometheus.failure("timeout", 8.01))
    assert got[("pgstream_scrape_success", ())] == 0
    assert got[("pgstream_scrape_error", (("reason", "timeout"),))] == 1


def test_parse_listen() -> None:
    assert metrics.parse_listen("127.0.0.1:9187") == ("127.0.0.1", 9187)
    assert metrics.parse_listen("[::1]:9187") == ("::1", 9187)
    assert metrics.parse_listen("localhost:9187") == ("localhost", 9187)
    for bad in ("9187", ":9187", "127.0.0.1:", "127.0.0.1:http", "a b:1", "127.0.0.1:70000",
                "127.0.0.1:0"):
        with pytest.raises(InvalidInput, match=r"listen address|port"):
            metrics.parse_listen(bad)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def test_server_reads_afresh_per_scrape_and_bounds_its_time(
        sample_status: ClusterStatus) -> None:
    calls: list[float] = []
    slow = threading.Event()

    def read() -> str:
        calls.append(time.monotonic())
        if slow.is_set():
            time.sleep(3)
        if len(calls) == 4:
            raise NodeUnreachable("cannot connect to primary")
        return sample_status.to_prometheus()

    with metrics.MetricsServer(read, "127.0.0.1", 0, timeout=1.0) as server:
        url = f"http://127.0.0.1:{server.address[1]}"
        for n in (1, 2):
            code, kind, body = _get(url + "/metrics")
            assert code == 200 and kind == prometheus.CONTENT_TYPE
            _, got = parse(body)
            assert got[("pgstream_scrape_success", ())] == 1
            assert len(calls) == n  # each scrape read the cluster again
        slow.set()
        started = time.monotonic()
        _, _, body = _get(url + "/metrics")
        assert time.monotonic() - started < 2.5  # bounded: 1 s, not the read's 3 s
        _, got = parse(body)
        assert got[("pgstream_scrape_success", ())] == 0
        assert got[("pgstream_scrape_error", (("reason", "timeout"),))] == 1
        slow.clear()
        time.sleep(2.2)  # the slow read ends; the next scrape fails as unreachable
        _, got = parse(_get(url + "/metrics")[2])
        assert got[("pgstream_scrape_error", (("reason", "unreachable"),))] == 1
        assert _get(url + "/nothing")[0] == 404
    with pytest.raises(urllib.error.URLError, match="refused"):
        _get(url + "/metrics")  # closed


def test_server_refuses_a_taken_port() -> None:
    with metrics.MetricsServer(lambda: "", "127.0.0.1", 0) as server, \
            pytest.raises(InvalidAddress, match="cannot listen"):
        metrics.MetricsServer(lambda: "", "127.0.0.1", server.address[1])


def test_run_prints_one_scrape(sample_status: ClusterStatus) -> None:
    printed: list[str] = []
    assert metrics.run(sample_status.to_prometheus, out=printed.append) == 0
    assert "pgstream_scrape_success 1" in printed[0]

    def broken() -> str:
        raise NodeUnreachable("no")

    assert metrics.run(broken, out=printed.append) == 1
