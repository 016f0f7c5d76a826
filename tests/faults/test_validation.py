"""Issue 8's "clear error before anything changes" items, each against real servers: what a
caller declares is refused while the plan is built, or rolled back in full, and secrets never
show.
"""

from __future__ import annotations

import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import psycopg
import pytest

from pgstream import (
    Cluster,
    InvalidInput,
    LocalHost,
    PgCtlService,
    PgStreamError,
    Primary,
    ReplicationAuth,
    Standby,
    SyncSpec,
)

from ._internal import Installation
from .helpers import is_empty, owned_by, wait_until
from .test_split_brain import rewrap

MakeCluster = Callable[..., Cluster]


@pytest.fixture(scope="module")
def shared(pgstream_server: Installation, fault_root: Path) -> Iterator[Cluster]:
    """One primary and one standby for the checks that only build plans."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="shared-", dir=fault_root))
    path.chmod(0o755)
    try:
        with Cluster.sandbox(1, bindir=pgstream_server.bindir, base_dir=path) as cluster:
            yield cluster
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def future_standby(cluster: Cluster, name: str, data_dir: Path | None = None) -> Standby:
    """A standby-to-be declared by hand beside the sandbox (its directory does not exist)."""
    base = cluster.base_dir
    assert base is not None
    model = cluster.primary
    assert model.service is not None
    data_dir = data_dir or base / name
    service = PgCtlService(LocalHost(), model.service.bindir, data_dir, model.service.user,
                           base / f"{name}.log", version=model.service.version)
    port = _free_port()
    cluster.node_settings[name] = {"port": str(port), "cluster_name": name,
                                   "unix_socket_directories": str(base / "run")}
    return Standby(name, f"host={base / 'run'} port={port} user=postgres dbname=postgres",
                   data_dir=data_dir, service=service, os_user=model.os_user)


def test_two_standbys_sharing_one_data_dir_refused_at_build(shared: Cluster) -> None:
    base = shared.base_dir
    assert base is not None
    same = base / "shared_dir"
    one, two = future_standby(shared, "twin_a", same), future_standby(shared, "twin_b", same)
    declared = rewrap(shared)
    declared.standbys = [one, two]
    with pytest.raises(InvalidInput):
        declared.setup_plan()
    assert not same.exists()
    assert shared.primary.slot("twin_a") is None and shared.primary.slot("twin_b") is None


def test_add_standby_with_an_existing_name_changes_nothing(sandbox: MakeCluster) -> None:
    cluster = sandbox(1)
    addresses, settings = dict(cluster.addresses), {k: dict(v) for k, v in
                                                    cluster.node_settings.items()}
    conninfo = cluster.standbys[0].conninfo
    with pytest.raises(InvalidInput, match="exists"):
        cluster.add_standby("standby1")
    assert cluster.addresses == addresses
    assert cluster.node_settings == settings
    assert cluster.standbys[0].conninfo == conninfo
    cluster.switchover("standby1", timeout=30)  # failed and left no standby before the fix
    assert cluster.primary.name == "standby1"
    wait_until(lambda: cluster.primary.streams_to("primary"), timeout=30,
               what="the old primary to stream from standby1")


def test_synchronous_plan_refuses_an_unknown_name(shared: Cluster) -> None:
    before = shared.primary.show("synchronous_standby_names")
    with pytest.raises(InvalidInput, match="ghost"):
        shared.synchronous_plan(SyncSpec.first(1, ["ghost"]))
    assert shared.primary.show("synchronous_standby_names") == before


def _commit_returns(conninfo: str, seconds: float) -> bool:
    done: list[bool] = []

    def commit() -> None:
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                conn.execute("CREATE TABLE IF NOT EXISTS sync_probe (id int)")
                conn.execute("INSERT INTO sync_probe VALUES (1)")
            done.append(True)
        except psycopg.Error:
            done.append(False)

    worker = threading.Thread(target=commit, daemon=True)
    worker.start()
    worker.join(seconds)
    return done == [True]


def test_failed_sync_wait_restores_the_old_value(sandbox: MakeCluster) -> None:
    cluster = sandbox(1)
    primary, standby = cluster.primary, cluster.standbys[0]
    before = primary.show("synchronous_standby_names")
    assert standby.service is not None
    standby.close()
    standby.service.stop()
    with pytest.raises(PgStreamError):
        cluster.set_synchronous(SyncSpec.first(1, ["standby1"]), wait_for={"standby1": "sync"},
                                timeout=2)
    assert primary.show("synchronous_standby_names") == before
    assert _commit_returns(primary.conninfo, 5), "commits on the primary block"


def test_invalid_setting_values_refused_before_any_alter_system(sandbox: MakeCluster) -> None:
    cluster = sandbox(0)
    assert cluster.primary.data_dir is not None
    auto = cluster.primary.data_dir / "postgresql.auto.conf"
    before = auto.read_bytes()
    declared = rewrap(cluster)
    declared.settings = {"work_mem": "5000", "max_wal_senders": "lots"}
    with pytest.raises(PgStreamError) as caught:
        declared.setup_plan().apply()
    assert "max_wal_senders" in str(caught.value)
    assert auto.read_bytes() == before, "ALTER SYSTEM ran although the plan failed"


def test_password_with_a_line_break_refused_before_anything(sandbox: MakeCluster) -> None:
    cluster = sandbox(0)
    primary = cluster.primary
    hba = Path(primary.show("hba_file"))
    before = hba.read_bytes()
    standby = future_standby(cluster, "nl_standby")

    def attempt() -> None:
        declared = rewrap(cluster)
        declared.auth = ReplicationAuth("rep_nl", "line\nbreak")
        declared.hba_addresses = ["127.0.0.2"]
        declared.standbys = [standby]
        declared.setup_plan().apply()

    with pytest.raises(PgStreamError):
        attempt()
    assert primary.query("SELECT count(*) FROM pg_roles WHERE rolname = 'rep_nl'") == [(0,)]
    assert hba.read_bytes() == before
    assert standby.data_dir is not None and is_empty(standby.data_dir)


def test_empty_password_refused(box_dir: Path, pgstream_server: Installation) -> None:
    made: Cluster | None = None
    try:
        with pytest.raises(PgStreamError):
            made = Cluster.sandbox(0, bindir=pgstream_server.bindir, base_dir=box_dir,
                                   password="")
    finally:
        if made is not None:
            made.close()
    assert list(box_dir.iterdir()) == []


@pytest.mark.parametrize("password", ["soft\u00adhyphen", "zero\u200bwidth"],
                         ids=["U+00AD", "U+200B"])
def test_saslprep_mapped_password_reapply_changes_nothing(sandbox: MakeCluster,
                                                          password: str) -> None:
    cluster = sandbox(1, password=password)
    assert cluster.status().standby("standby1").state == "streaming"
    report = cluster.setup_plan().apply()
    changed = [f"{a.step.title}: {a.result.message}" for a in report.applied if a.result.changed]
    assert not changed, f"applying the setup again changed: {changed}"


SECRET = "S3cr3tPw"


@pytest.mark.parametrize("conninfo", [
    f"postgresql://rep:{SECRET}%zz@127.0.0.1/postgres",
    f"postgresql://rep:{SECRET}@127.0.0.1/postgres?sslmode=%zz",
    f"host=127.0.0.1 password={SECRET} user='unterminated",
], ids=["uri-bad-percent", "uri-bad-query", "keywords-unterminated"])
@pytest.mark.parametrize("kind", [Primary, Standby], ids=["primary", "standby"])
def test_invalid_conninfo_error_never_carries_the_password(kind: type[Primary],
                                                           conninfo: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        kind("node", conninfo)
    shown = "".join(traceback.format_exception(caught.value))
    assert SECRET not in shown, shown


def test_asdict_of_auth_hides_the_password(shared: Cluster) -> None:
    assert shared.auth.password is not None
    secret = shared.auth.password.reveal()
    for shown in (attrs.asdict(shared.auth), attrs.asdict(shared.auth, recurse=False),
                  attrs.astuple(shared.auth)):
        assert secret not in repr(shown) and secret not in str(shown), shown


@pytest.mark.parametrize("where", ["primary_address", "addresses"])
def test_port_out_of_range_refused_at_build(shared: Cluster, where: str) -> None:
    model = rewrap(shared)
    standby = future_standby(shared, "port_standby")
    bad = ("127.0.0.1", 99999)

    def build() -> None:
        declared = Cluster(model.primary, [standby], auth=model.auth,
                           primary_address=bad if where == "primary_address"
                           else model.primary_address,
                           addresses={"port_standby": bad} if where == "addresses" else {},
                           hba_addresses=["127.0.0.1"], node_settings=shared.node_settings)
        declared.setup_plan()

    with pytest.raises(InvalidInput, match="99999"):
        build()
    assert shared.primary.slot("port_standby") is None


def test_max_lag_bytes_not_a_number_is_invalid_input(shared: Cluster) -> None:
    with pytest.raises(InvalidInput):
        shared.switchover_plan("standby1", max_lag_bytes="x")  # type: ignore[arg-type]
    assert shared.primary.ping() and not shared.primary.in_recovery


@pytest.mark.parametrize("count", [6, 16])
def test_sandbox_with_many_standbys(box_dir: Path, pgstream_server: Installation,
                                    count: int) -> None:
    try:
        with Cluster.sandbox(count, bindir=pgstream_server.bindir, base_dir=box_dir,
                             timeout=120) as cluster:
            assert len(cluster.standbys) == count
            wait_until(lambda: cluster.status().all_streaming, timeout=60, what="streaming")
    finally:
        wait_until(lambda: not owned_by(box_dir), timeout=10, what="servers to stop")


@pytest.mark.parametrize(("name", "value"), [
    ("wal_level", "bogus"), ("max_wal_senders", "lots"), ("no_such_setting", "1"),
    ("max_wal_senders", "999999"), ("work_mem", "64XB"), ("wal_log_hints", "maybe"),
    ("max_connections", "10MB"),
], ids=["enum", "integer", "unknown", "range", "unit", "bool", "unit-on-unitless"])
def test_sandbox_settings_refused_before_the_first_start(
        box_dir: Path, pgstream_server: Installation, name: str, value: str) -> None:
    """Issue 8: a bad sandbox setting failed at the server's start (pg_ctl's error and the
    log's tail); now an InvalidInput naming the setting and the value, before the first
    start, and nothing left (no directory, no process)."""
    made: Cluster | None = None
    try:
        with pytest.raises(InvalidInput) as refused:
            made = Cluster.sandbox(1, bindir=pgstream_server.bindir, base_dir=box_dir,
                                   settings={name: value}, timeout=30)
    finally:
        if made is not None:
            made.close()
    text = str(refused.value)
    assert name in text and value in text, text
    assert not owned_by(box_dir), owned_by(box_dir)
    assert list(box_dir.iterdir()) == []
