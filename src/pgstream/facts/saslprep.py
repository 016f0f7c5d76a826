"""SASLprep (RFC 4013), the stringprep profile SCRAM applies to a password before hashing it.

:func:`saslprep` is the profile as RFC 4013 specifies it, for stored strings (unassigned code
points are prohibited): 1. map non-ASCII spaces (table C.1.2) to SPACE and the characters
"commonly mapped to nothing" (B.1, e.g. U+00AD SOFT HYPHEN) to nothing (U+200B ZERO WIDTH
SPACE is in both tables: PostgreSQL, whose result is the one that must match, makes it a
SPACE); 2. normalize with Unicode NFKC; 3. prohibit the characters of tables C.1.2, C.2.1,
C.2.2, C.3 to C.9 and the unassigned code points of A.1; 4. the bidirectional rule of RFC 3454
section 6. A string that fails raises :class:`~pgstream.errors.InvalidInput`.

:func:`scram_password` is what PostgreSQL hashes: :func:`pg_saslprep` (``src/common/saslprep.c``,
used alike by the server and libpq, which checks the rules before normalizing) or, when the
password is not a valid SASLprep string (an empty result, a prohibited character, a bidi
violation), the password unchanged. Pure ASCII passes unchanged, as there.
"""

from __future__ import annotations

import stringprep
import unicodedata

from pgstream.errors import InvalidInput


def _prohibited(char: str) -> bool:
    return (stringprep.in_table_c12(char) or stringprep.in_table_c21_c22(char)
            or stringprep.in_table_c3(char) or stringprep.in_table_c4(char)
            or stringprep.in_table_c5(char) or stringprep.in_table_c6(char)
            or stringprep.in_table_c7(char) or stringprep.in_table_c8(char)
            or stringprep.in_table_c9(char) or stringprep.in_table_a1(char))


def _checked(chars: str) -> None:
    """Steps 3 and 4 (prohibited and unassigned characters, the bidi rule) on ``chars``."""
    for position, char in enumerate(chars):
        if _prohibited(char):
            raise InvalidInput(f"SASLprep: prohibited or unassigned character U+{ord(char):04X} "
                               f"at position {position}")
    if any(stringprep.in_table_d1(c) for c in chars):
        if any(stringprep.in_table_d2(c) for c in chars):
            raise InvalidInput("SASLprep: right-to-left and left-to-right characters mixed")
        if not (stringprep.in_table_d1(chars[0]) and stringprep.in_table_d1(chars[-1])):
            raise InvalidInput("SASLprep: a right-to-left string must start and end with a "
                               "right-to-left character")


def _mapped(text: str) -> str:
    """Step 1. A character in both tables (U+200B ZERO WIDTH SPACE is in C.1.2 and B.1)
    becomes a SPACE, as PostgreSQL maps it (its space table first)."""
    if not isinstance(text, str):
        raise InvalidInput("SASLprep takes a string")
    mapped = "".join(" " if stringprep.in_table_c12(c) else c
                     for c in text if stringprep.in_table_c12(c) or not stringprep.in_table_b1(c))
    if not mapped:
        raise InvalidInput("SASLprep: the string is empty once mapped")
    return mapped


def saslprep(text: str) -> str:
    """``text`` prepared by SASLprep as RFC 4013 specifies it; raises ``InvalidInput`` if it
    is not valid.

    The error never quotes the text (it is usually a password): it names the rule broken and
    the position of the offending character.
    """
    prepared = unicodedata.normalize("NFKC", _mapped(text))  # 2. Normalize
    _checked(prepared)
    return prepared


def pg_saslprep(text: str) -> str:
    """``text`` as PostgreSQL's ``pg_saslprep`` prepares it; raises ``InvalidInput`` where
    that returns "prohibited".

    It differs from :func:`saslprep` in one point: PostgreSQL checks for prohibited and
    unassigned characters and the bidi rule on the mapped string, before normalizing it
    (``input_chars`` in ``src/common/saslprep.c``), so a prohibited character that NFKC
    replaces (U+0340 COMBINING GRAVE TONE MARK becomes U+0300) makes the string invalid there.
    Pure ASCII is returned as it is.
    """
    if isinstance(text, str) and text.isascii():
        return text
    mapped = _mapped(text)
    _checked(mapped)
    return unicodedata.normalize("NFKC", mapped)


def scram_password(password: str) -> str:
    """What SCRAM hashes for ``password``: :func:`pg_saslprep`'s result, else ``password``
    as it is (PostgreSQL's rule, in the server and in libpq, so that any password works)."""
    try:
        return pg_saslprep(password)
    except InvalidInput:
        return password
