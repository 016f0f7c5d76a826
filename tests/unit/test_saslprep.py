"""SASLprep: RFC 4013's examples, PostgreSQL's variant of it, and libpq as the oracle: a SCRAM
verifier libpq computes must match the password on the client, whatever its characters."""

from __future__ import annotations

import pytest
from psycopg import pq

from pgstream.errors import InvalidInput
from pgstream.facts.passwords import verifier_matches
from pgstream.facts.saslprep import pg_saslprep, saslprep, scram_password


# RFC 4013, section 3 (Examples).
@pytest.mark.parametrize(("given", "expected"), [
    ("I\u00adX", "IX"),          # 1: SOFT HYPHEN mapped to nothing
    ("user", "user"),            # 2: no transformation
    ("USER", "USER"),            # 3: case preserved
    ("\u00aa", "a"),             # 4: output is NFKC, input in ISO 8859-1
    ("\u2168", "IX"),            # 5: output is NFKC, will match #1
])
def test_rfc4013_examples(given: str, expected: str) -> None:
    assert saslprep(given) == expected
    assert pg_saslprep(given) == expected
    assert scram_password(given) == expected


@pytest.mark.parametrize(("given", "rule"), [
    ("\u0007", "prohibited"),            # 6: prohibited character
    ("\u0627\u0031", "right-to-left"),   # 7: bidirectional check
])
def test_rfc4013_errors(given: str, rule: str) -> None:
    with pytest.raises(InvalidInput, match=rule):
        saslprep(given)
    assert scram_password(given) == given  # PostgreSQL then uses the password as it is


def test_more_mappings_and_rules() -> None:
    assert saslprep("a\u00a0b") == "a b"            # non-ASCII space -> SPACE
    assert saslprep("a\u200bb") == "a b"            # in C.1.2 and B.1: PostgreSQL's SPACE
    assert saslprep("a\ufeffb\u034f") == "ab"       # mapped to nothing
    assert saslprep("\u0627\u0628") == "\u0627\u0628"  # all right-to-left: fine
    with pytest.raises(InvalidInput, match="empty"):
        saslprep("\u00ad\u200d")
    with pytest.raises(InvalidInput, match="U\\+E000"):
        saslprep("a\ue000")                          # private use
    with pytest.raises(InvalidInput, match="U\\+0221"):
        saslprep("a\u0221")                          # unassigned in Unicode 3.2
    with pytest.raises(InvalidInput, match="mixed"):
        saslprep("\u0627a\u0627")


def test_error_never_quotes_the_text() -> None:
    with pytest.raises(InvalidInput) as caught:
        saslprep("hunter2\ue000")
    assert "hunter2" not in str(caught.value)


def test_postgresql_checks_before_normalizing() -> None:
    # U+0340 is prohibited (C.8) but NFKC makes it U+0300: RFC 4013 accepts the result,
    # PostgreSQL's pg_saslprep refuses the input, and then hashes the password as it is.
    assert saslprep("f\u0340") == "f\u0300"
    with pytest.raises(InvalidInput, match="U\\+0340"):
        pg_saslprep("f\u0340")
    assert scram_password("f\u0340") == "f\u0340"
    assert scram_password("pure ascii \t") == "pure ascii \t"


# Characters from every table SASLprep uses, and some NFKC changes.
TRICKY = ["\u00ad", "\u200b", "\u00aa", "\u2168", "\u00a0", "\u3000", "\u0340", "\u0341",
          "\u200e", "\u202a", "\ufeff", "\ufe00", "\u0627", "\u05d0", "\u0661", "\ue000",
          "\U000e0001", "\u0221", "\ufb01", "\uff21", "\u212b", "\u2126", "\u1e9b", "\u0301",
          "\u1100", "\U0001d400", "\u00e9", "e\u0301", "\u2028", "\ufffc", "\u2ff0"]


@pytest.fixture(scope="module")
def libpq() -> pq.abc.PGconn:
    # PQencryptPasswordConn with an explicit algorithm needs no server: a failed connection
    # object is enough.
    return pq.PGconn.connect(b"host=/nonexistent-pgstream-dir port=1 connect_timeout=1")


@pytest.mark.parametrize("char", TRICKY)
def test_verifiers_libpq_computes_match(libpq: pq.abc.PGconn, char: str) -> None:
    for password in (char, f"pa{char}ss", f"{char}x{char}", f"\u0627{char}\u0627"):
        verifier = libpq.encrypt_password(password.encode(), b"replicator",
                                          b"scram-sha-256").decode()
        assert verifier_matches(verifier, password, "replicator"), [hex(ord(c)) for c in password]
        assert not verifier_matches(verifier, password + "x", "replicator")
