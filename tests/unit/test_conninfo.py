"""Conninfo checks: hosts and ports validated when a node is built, and no error text, repr
or attrs.asdict ever carries a password."""

from __future__ import annotations

import attrs
import pytest

from pgstream.errors import InvalidAddress, InvalidInput
from pgstream.facts import identifiers
from pgstream.facts.identifiers import Secret
from pgstream.nodes.conninfo import check_conninfo, masked_conninfo, scrub_conninfo_error
from pgstream.nodes.node import Primary, Standby
from pgstream.ops.setup import ReplicationAuth

SECRET = "S3cr3t"


@pytest.mark.parametrize("conninfo", [
    f"postgresql://rep:{SECRET}%zz@127.0.0.1/postgres",      # libpq quotes the token
    f"postgresql://rep:{SECRET}@[::1/postgres",                # libpq quotes the whole URI
    f"host=x password={SECRET} more",                          # missing "=" after "more"
    f"host=x password='{SECRET}",                              # unterminated quote
    f"host=x password={SECRET} {SECRET}x=1",                   # an "option" from the password
    f"postgresql://rep:{SECRET}@h/db?{SECRET}=1",
])
def test_parse_errors_never_quote_the_password(conninfo: str) -> None:
    with pytest.raises(InvalidInput, match="invalid conninfo") as caught:
        Primary("p", conninfo)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None  # libpq's message is not chained either


def test_scrub_keeps_punctuation_and_the_kind_of_error() -> None:
    assert scrub_conninfo_error('missing "=" after "secret" in connection info string\n') \
        == 'missing "=" after "…" in connection info string'


@pytest.mark.parametrize(("conninfo", "error"), [
    ("host=127.0.0.1 port=99999", "invalid port"),
    ("host=127.0.0.1 port=0", "invalid port"),
    ("postgresql://u@127.0.0.1:99999/db", "invalid port"),
    ("host=a,b port=5432,70000", "invalid port"),
    ("port=abc", "invalid port"),
    ("host=bad!host", "invalid host"),
    ("host=-leading.example.com", "invalid host"),
    ("hostaddr=1.2.3.x", "invalid hostaddr"),
])
def test_ports_and_hosts_are_checked_when_a_node_is_built(conninfo: str, error: str) -> None:
    with pytest.raises(InvalidInput, match=error):
        Standby("s", conninfo)


@pytest.mark.parametrize("conninfo", [
    "host=127.0.0.1 port=5432", "host=/var/run/postgresql port=65535", "host=db_1.internal",
    "postgresql://u@[::1]:6543/db", "host=a,b port=5432,5433", "host=a,b port=5432",
    "hostaddr=192.0.2.1 host=db.example.com", "dbname=postgres", "host=@abstract",
])
def test_valid_conninfos(conninfo: str) -> None:
    check_conninfo(conninfo)
    Primary("p", conninfo)


def test_setting_a_bad_conninfo_later_is_refused_too() -> None:
    node = Primary("p", "host=127.0.0.1 port=5432")
    with pytest.raises(InvalidInput, match="invalid port"):
        node.conninfo = "host=127.0.0.1 port=99999"
    assert node.conninfo == "host=127.0.0.1 port=5432"


def test_repr_and_masked_conninfo_hide_the_password() -> None:
    node = Primary("p", f"postgresql://rep:{SECRET}@127.0.0.1:5433/postgres")
    assert SECRET not in repr(node)
    assert "********" in masked_conninfo(node.conninfo)
    assert masked_conninfo("postgresql://x:%zz@h/db") == "<unparsable conninfo>"


def test_asdict_of_the_auth_keeps_the_secret() -> None:
    auth = ReplicationAuth("replicator", SECRET)
    data = attrs.asdict(auth)
    assert isinstance(data["password"], Secret)
    assert SECRET not in repr(data) and SECRET not in str(data)
    assert data["password"].reveal() == SECRET
    assert attrs.evolve(auth, user="other").password == auth.password
    assert SECRET not in repr(auth)


@pytest.mark.parametrize("control", ["\n", "\r", "\t", "\x00", "\x7f", "\x85"])
def test_passwords_with_control_characters_are_refused(control: str) -> None:
    with pytest.raises(InvalidInput, match="control character") as caught:
        ReplicationAuth("replicator", f"{SECRET}{control}x")
    assert SECRET not in str(caught.value)


def test_address_helper() -> None:
    assert identifiers.address(("127.0.0.1", 5432)) == ("127.0.0.1", 5432)
    assert identifiers.address(["db.example.com", 1]) == ("db.example.com", 1)
    for bad in [("127.0.0.1", 99999), ("", 5432), ("a b", 5432), "127.0.0.1:5432",
                ("127.0.0.1",), ("127.0.0.1", "5432"), ("127.0.0.1", True)]:
        with pytest.raises(InvalidInput):
            identifiers.address(bad)
    with pytest.raises(InvalidAddress):
        identifiers.host(" spaced")
