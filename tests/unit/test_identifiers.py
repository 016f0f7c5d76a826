"""Validation of slot, role and node names, pg_hba addresses, ports and the Secret wrapper."""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable

import attrs
import pytest

from pgstream.errors import InvalidAddress, InvalidInput, InvalidName, PgStreamError
from pgstream.facts import identifiers
from pgstream.facts.identifiers import MASK, Secret, as_secret

INJECTIONS = [
    "x'); DROP TABLE t; --",
    "x; DROP TABLE t",
    'x" OR "1"="1',
    "x'--",
    "x\nhost all all 0.0.0.0/0 trust",
    "x\0",
    "x y",
    "x\ty",
    "x:y",
    "x$1",
    "x/*",
]

BAD_COMMON = ["", " ", "Standby1", "STANDBY", "my-slot", "my.slot", "my slot", "slot'", 'slot"',
              "é", "slot\u00e9", "\uff53\uff4c\uff4f\uff54", *INJECTIONS]
NOT_STRINGS: list[object] = [None, 1, 1.5, True, b"slot", ["slot"], object()]


def accepted(check: Callable[[object], object], values: Iterable[object],
             error: type[Exception] = InvalidName) -> list[object]:
    """The values ``check`` let through (it should have raised ``error`` for each)."""
    out = []
    for value in values:
        try:
            check(value)
        except error:
            continue
        out.append(value)
    return out


# ---------------------------------------------------------------------------------------------
# slot names


@pytest.mark.parametrize("name", ["a", "s", "standby1", "standby_1", "_", "1", "1standby",
                                  "_slot", "a" * 63, "0" * 63, "node_2_slot"])
def test_valid_slot_names(name: str) -> None:
    assert identifiers.slot_name(name) == name


def test_invalid_slot_names() -> None:
    assert accepted(identifiers.slot_name, [*BAD_COMMON, "a" * 64, "a" * 200]) == []
    with pytest.raises(InvalidName, match="slot name"):
        identifiers.slot_name("Bad")


def test_slot_name_must_be_a_string() -> None:
    assert accepted(identifiers.slot_name, NOT_STRINGS) == []


def test_slot_name_63_vs_64() -> None:
    assert identifiers.slot_name("s" * 63) == "s" * 63
    with pytest.raises(InvalidName, match="63"):
        identifiers.slot_name("s" * 64)


@pytest.mark.parametrize("check", [identifiers.slot_name, identifiers.role_name,
                                   identifiers.node_name])
@pytest.mark.parametrize("name", ["standby\n", "standby\r\n", "\nstandby"])
def test_line_breaks_are_not_accepted(check: Callable[[object], str], name: str) -> None:
    # re's ``$`` also matches just before a final newline: the validators must not be fooled
    with pytest.raises(InvalidName):
        check(name)


# ---------------------------------------------------------------------------------------------
# role names


@pytest.mark.parametrize("name", ["replicator", "repl_user", "_repl", "r", "r2d2", "a" * 63])
def test_valid_role_names(name: str) -> None:
    assert identifiers.role_name(name) == name


def test_invalid_role_names() -> None:
    bad = [*BAD_COMMON, "1repl", "9", "a" * 64, "Replicator"]
    assert accepted(identifiers.role_name, bad) == []
    with pytest.raises(InvalidName, match="role name"):
        identifiers.role_name("Bad")


def test_role_name_must_be_a_string() -> None:
    assert accepted(identifiers.role_name, NOT_STRINGS) == []


@pytest.mark.parametrize("name", ["pg_monitor", "pg_repl", "public", "none"])
def test_role_names_postgresql_reserves_are_refused(name: str) -> None:
    """CREATE ROLE refuses "public", "none" and names starting with "pg_" (reserved)."""
    with pytest.raises(InvalidName):
        identifiers.role_name(name)


def test_role_name_all_is_refused() -> None:
    """In pg_hba.conf's user field ``all`` is a keyword matching every role.

    ``host replication all ...`` would admit any role with REPLICATION: a name that needs
    quoting in pg_hba.conf is one role_name() promises to refuse.
    """
    with pytest.raises(InvalidName):
        identifiers.role_name("all")


# ---------------------------------------------------------------------------------------------
# node names


@pytest.mark.parametrize("name", ["primary", "standby1", "node_a", "n", "a" * 63])
def test_valid_node_names(name: str) -> None:
    assert identifiers.node_name(name) == name


def test_invalid_node_names() -> None:
    assert accepted(identifiers.node_name, [*BAD_COMMON, "_node", "1node", "a" * 64]) == []
    with pytest.raises(InvalidName, match="node name"):
        identifiers.node_name("Bad")


def test_node_name_must_be_a_string() -> None:
    assert accepted(identifiers.node_name, NOT_STRINGS) == []


def test_every_valid_node_name_is_a_valid_slot_name() -> None:
    for name in ("primary", "standby1", "node_a", "a" * 63):
        assert identifiers.slot_name(identifiers.node_name(name)) == name


def test_invalid_name_is_invalid_input_and_pgstream_error_and_value_error() -> None:
    with pytest.raises(InvalidInput):
        identifiers.slot_name("BAD")
    with pytest.raises(PgStreamError):
        identifiers.role_name("BAD")
    with pytest.raises(ValueError, match="node name"):
        identifiers.node_name("BAD")


# ---------------------------------------------------------------------------------------------
# pg_hba addresses


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.10", "192.0.2.10/32"),
        ("10.0.0.1", "10.0.0.1/32"),
        ("127.0.0.1", "127.0.0.1/32"),
        (" 192.0.2.10 ", "192.0.2.10/32"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("192.0.2.10/32", "192.0.2.10/32"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::1", "::1/128"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:DB8::1", "2001:db8::1/128"),
        ("::/0", "::/0"),
    ],
)
def test_hba_address(address: str, expected: str) -> None:
    assert identifiers.hba_address(address) == expected


def test_hba_address_rejects() -> None:
    bad = [
        "192.0.2.10/24",  # host bits set
        "10.0.0.1/8",
        "2001:db8::1/64",
        "192.0.2.0/33",
        "2001:db8::/129",
        "300.1.1.1",
        "192.0.2",
        "192.0.2.1.5",
        "host.example.com",
        "localhost",
        "samenet",
        "all",
        "",
        "   ",
        "192.0.2.10 trust",
        "192.0.2.0/24 trust",
        "192.0.2.10\nhost all all 0.0.0.0/0 trust",
        "x'); DROP TABLE t; --",
        "192.0.2.0/",
        "/24",
    ]
    assert accepted(identifiers.hba_address, bad, InvalidAddress) == []


def test_hba_address_must_be_a_string() -> None:
    bad: list[object] = [None, 3232235530, b"192.0.2.1", ["192.0.2.1"]]
    assert accepted(identifiers.hba_address, bad, InvalidAddress) == []


def test_hba_address_error_is_invalid_input_with_example() -> None:
    with pytest.raises(InvalidInput, match=r"192\.0\.2\.0/24"):
        identifiers.hba_address("192.0.2.10/24")


# ---------------------------------------------------------------------------------------------
# ports


@pytest.mark.parametrize("value", [1, 5432, 65535])
def test_valid_ports(value: int) -> None:
    assert identifiers.port(value) == value


def test_invalid_ports() -> None:
    bad: list[object] = [0, -1, 65536, 100000, True, False, "5432", 5432.0, None]
    assert accepted(identifiers.port, bad, InvalidInput) == []
    with pytest.raises(InvalidInput, match="port"):
        identifiers.port(0)


# ---------------------------------------------------------------------------------------------
# Secret

PASSWORD = "s3cr3t-P@ss'w\"ord\\x"


def test_secret_reveal() -> None:
    assert Secret(PASSWORD).reveal() == PASSWORD


def test_secret_is_masked_everywhere() -> None:
    secret = Secret(PASSWORD)
    renderings = [
        repr(secret),
        str(secret),
        f"{secret}",
        f"{secret!r}",
        f"{secret!s}",
        "%s" % (secret,),  # noqa: UP031
        "%r" % (secret,),  # noqa: UP031
        "{}".format(secret),  # noqa: UP032
        format(secret),
        repr([secret]),
        repr({"password": secret}),
        str((secret,)),
    ]
    for text in renderings:
        assert PASSWORD not in text
        assert "s3cr3t" not in text
        assert MASK in text
    assert str(secret) == MASK
    assert repr(secret) == "Secret('********')"


def test_secret_not_revealed_in_exception_messages() -> None:
    secret = Secret(PASSWORD)
    error = RuntimeError(f"login failed with {secret}")
    assert PASSWORD not in str(error)
    assert PASSWORD not in repr(error)


@pytest.mark.parametrize("value", ["", None, 123, b"bytes", "with\0nul"])
def test_secret_rejects(value: object) -> None:
    with pytest.raises(InvalidInput):
        Secret(value)  # type: ignore[arg-type]


def test_secret_rejection_does_not_echo_the_value() -> None:
    with pytest.raises(InvalidInput) as info:
        Secret("hunter2\0")
    assert "hunter2" not in str(info.value)


def test_secret_equality_and_hash() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert hash(Secret("a")) == hash(Secret("a"))


def test_secret_is_frozen() -> None:
    secret = Secret("a")
    with pytest.raises(AttributeError):
        secret._value = "b"


def test_secret_pickles() -> None:
    secret = Secret(PASSWORD)
    assert pickle.loads(pickle.dumps(secret)).reveal() == PASSWORD  # noqa: S301


def test_as_secret() -> None:
    assert as_secret(None) is None
    secret = Secret("x")
    assert as_secret(secret) is secret
    made = as_secret("y")
    assert isinstance(made, Secret)
    assert made.reveal() == "y"
    with pytest.raises(InvalidInput):
        as_secret("")


# ---------------------------------------------------------------------------------------------
# hosts, port text, and Secret's refusals and attrs behaviour


@pytest.mark.parametrize("value", ["127.0.0.1", "::1", "fe80::1%eth0", "db1.example.com",
                                   "db1.example.com.", "localhost", "db_1", "/run/pg",
                                   "@abstract"])
def test_valid_hosts(value: str) -> None:
    assert identifiers.host(value)


@pytest.mark.parametrize("value", ["", " db", "db ", "a b", "bad!host", "-lead.example.com",
                                   "x" * 64 + ".example.com", "a..b", None, 5432])
def test_invalid_hosts(value: object) -> None:
    with pytest.raises(InvalidAddress):
        identifiers.host(value)


def test_port_text() -> None:
    assert identifiers.port_text("5432") == 5432
    assert identifiers.port_text(" 1 ") == 1
    for bad in ("0", "65536", "99999", "-1", "5432x", "", "٥٤٣٢", 1.5):
        with pytest.raises(InvalidInput, match="port"):
            identifiers.port_text(bad)


@pytest.mark.parametrize("control", ["\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9f"])
def test_secret_refuses_control_characters(control: str) -> None:
    with pytest.raises(InvalidInput, match="control character") as caught:
        Secret(f"hunter2{control}x")
    assert "hunter2" not in str(caught.value)


def test_secret_refuses_lone_surrogates() -> None:
    with pytest.raises(InvalidInput, match="surrogate"):
        Secret("hunter2\ud800")


def test_secret_is_not_an_attrs_class() -> None:
    assert not attrs.has(Secret)
    holder = attrs.make_class("Holder", {"password": attrs.field()})(Secret(PASSWORD))
    assert attrs.asdict(holder) == {"password": Secret(PASSWORD)}
    assert PASSWORD not in repr(attrs.asdict(holder))
