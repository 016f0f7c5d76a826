"""Patroni 3 with a one-member etcd 3.4 (Debian's patroni, etcd-server) building a primary + 2
replicas on loopback, and its planned switchover (REST ``POST /switchover``).

etcd, the three Patroni daemons (REST APIs) and the servers listen on 127.0.0.1 only; all
run from the scratch directory and are stopped with it. ``loop_wait`` is Patroni's default
(10 s) or, tuned, 1 s (set through ``PATCH /config`` on the running cluster).
"""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

from peers import PG_BIN, Peers, Watch, free_port, http_json, lost, streaming_to, wait, writing


class Patroni:
    """etcd and three Patroni members p1..p3; ``clone_times``: seconds from a replica's
    Patroni start until the primary streams to it (Patroni's own base backup)."""

    def __init__(self, p: Peers) -> None:
        self.p = p
        self.client, self.peer = free_port(), free_port()
        self.ports = {i: free_port() for i in (1, 2, 3)}
        self.rest = {i: free_port() for i in (1, 2, 3)}
        self.clone_times: list[float] = []
        self.primary = 1

    def _config(self, i: int) -> Path:
        data = self.p.dir / f"p{i}"
        config = {
            "scope": "bench", "name": f"p{i}",
            "restapi": {"listen": f"127.0.0.1:{self.rest[i]}",
                        "connect_address": f"127.0.0.1:{self.rest[i]}"},
            "etcd3": {"hosts": f"127.0.0.1:{self.client}"},
            "bootstrap": {
                "dcs": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                        "maximum_lag_on_failover": 1048576,
                        "postgresql": {"use_pg_rewind": True, "use_slots": True,
                                       "parameters": {"wal_level": "replica",
                                                      "hot_standby": "on",
                                                      "max_wal_senders": 10,
                                                      "max_replication_slots": 10,
                                                      "wal_log_hints": "on",
                                                      "wal_keep_size": 64}}},
                "initdb": ["no-sync", {"auth": "trust"}],
                "pg_hba": ["host replication all 127.0.0.1/32 trust",
                           "host all all 127.0.0.1/32 trust"]},
            "postgresql": {
                "listen": f"127.0.0.1:{self.ports[i]}",
                "connect_address": f"127.0.0.1:{self.ports[i]}",
                "data_dir": str(data), "bin_dir": str(PG_BIN),
                "pgpass": str(self.p.dir / f"pgpass{i}"),
                "authentication": {"replication": {"username": "replicator",
                                                   "password": "rep"},
                                   "superuser": {"username": "postgres", "password": "pw"}},
                "parameters": {"unix_socket_directories": str(self.p.dir), "fsync": "off"}},
            "tags": {},
        }
        path = self.p.dir / f"patroni{i}.yml"
        path.write_text(json.dumps(config, indent=1))  # JSON is YAML
        return path

    def build(self) -> None:
        p = self.p
        etcd_dir = p.mkdir("etcd")
        p.spawn(["etcd", "--name", "e1", "--data-dir", str(etcd_dir),
                 "--listen-client-urls", f"http://127.0.0.1:{self.client}",
                 "--advertise-client-urls", f"http://127.0.0.1:{self.client}",
                 "--listen-peer-urls", f"http://127.0.0.1:{self.peer}",
                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peer}",
                 "--initial-cluster", f"e1=http://127.0.0.1:{self.peer}",
                 "--listen-metrics-urls", "", "--log-level", "warn"],
                p.dir / "etcd.log")
        wait(lambda: _get(f"http://127.0.0.1:{self.client}/health") is not None, 60, "etcd",
             interval=0.1)
        for i in (1, 2, 3):
            p.datadirs.append(p.dir / f"p{i}")
            started = time.perf_counter()
            p.spawn(["patroni", str(self._config(i))], p.dir / f"patroni{i}.log")
            if i == 1:
                wait(lambda: _role(self.rest[1]) in ("master", "primary"), 120,
                     "p1 to lead", interval=0.05)
                p.run([str(PG_BIN / "psql"), f"host=127.0.0.1 port={self.ports[1]} "
                       "user=postgres dbname=postgres", "-qAtc",
                       "CREATE TABLE acked (id int PRIMARY KEY)"])
            else:
                wait(functools.partial(_streams_to, self.ports[1], i - 1), 180,
                     f"p{i} streaming", interval=0.02)
                self.clone_times.append(time.perf_counter() - started)

    def set_loop_wait(self, seconds: int) -> None:
        http_json(f"http://127.0.0.1:{self.rest[self.primary]}/config",
                  {"loop_wait": seconds}, method="PATCH")
        wait(lambda: _get(f"http://127.0.0.1:{self.rest[self.primary]}/config",
                          key="loop_wait") == seconds, 30, "loop_wait", interval=0.1)
        time.sleep(12)  # the members pick it up at their next loop (at most the old wait)

    def switchover(self) -> dict[str, float | None]:
        old, target = self.primary, self.primary % 3 + 1
        wait(lambda: all(streaming_to(self.ports[old]) >= 2 for _ in (0,)), 120,
             "all streaming before the switchover")
        with writing(self.ports[old]) as acked:
            watch = Watch(self.ports[target], 2)
            started = time.perf_counter()
            http_json(f"http://127.0.0.1:{self.rest[old]}/switchover",
                      {"leader": f"p{old}", "candidate": f"p{target}"}, timeout=120)
            returned = time.perf_counter() - started
            watch.join()
        self.primary = target
        return {"writable": watch.writable, "streaming": watch.streaming,
                "returns": returned, "lost": float(lost(self.ports[target], acked))}


def _streams_to(port: int, count: int) -> bool:
    return streaming_to(port) >= count


def _get(url: str, key: str | None = None) -> object:
    try:
        data = http_json(url, timeout=2)
    except OSError:
        return None
    if key is not None:
        return data.get(key) if isinstance(data, dict) else None
    return data


def _role(rest_port: int) -> object:
    return _get(f"http://127.0.0.1:{rest_port}/patroni", key="role")
