"""SASLprep (RFC 4013), the stringprep profile SCRAM applies to a password before hashing it.

:func:`saslprep` is the profile as RFC 4013 specifies it, for stored strings (unassigned code
points are prohibited): 1. map non-ASCII spaces (table C.1.2) to SPACE and the characters
"commonly mapped to nothing" (B.1, e.g. U+00AD SOFT HYPHEN, U+200B ZERO WIDTH SPACE) to
nothing; 2. normalize with Unicode NFKC; 3. prohibit the characters of tables C.1.2, C.2.1,
C.2.2, C.3 to C.9 and the unassigned code points of A.1; 4. the bidirectional rule of RFC 3454
section 6. A string that fails raises :class:`~pgstream.errors.InvalidInput`.

:func:`scram_password` is what PostgreSQL hashes (``pg_saslprep`` in ``src/common/saslprep.c``,
used alike by the server and libpq): the SASLprep result, or the password unchanged when it
is not a valid SASLprep string (an empty result, a prohibited character, a bidi violation).
Pure ASCII passes unchanged, as there.
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


def saslprep(text: str) -> str:
    """``text`` prepared by SASLprep (RFC 4013); raises ``InvalidInput`` if it is not valid.

    The error never quotes the text (it is usually a password): it names the rule broken and
    the position of the offending character.
    """
    if not isinstance(text, str):
        raise InvalidInput("SASLprep takes a string")
    # 1. Map.
    mapped = "".join(" " if stringprep.in_table_c12(c) else c
                     for c in text if not stringprep.in_table_b1(c))
    if not mapped:
        raise InvalidInput("SASLprep: the string is empty once mapped")
    # 2. Normalize.
    prepared = unicodedata.normalize("NFKC", mapped)
    # 3. Prohibit.
    for position, char in enumerate(prepared):
        if _prohibited(char):
            raise InvalidInput(f"SASLprep: prohibited or unassigned character U+{ord(char):04X} "
                               f"at position {position}")
    # 4. Bidirectional characters (RFC 3454 section 6).
    if any(stringprep.in_table_d1(c) for c in prepared):
        if any(stringprep.in_table_d2(c) for c in prepared):
            raise InvalidInput("SASLprep: right-to-left and left-to-right characters mixed")
        if not (stringprep.in_table_d1(prepared[0]) and stringprep.in_table_d1(prepared[-1])):
            raise InvalidInput("SASLprep: a right-to-left string must start and end with a "
                               "right-to-left character")
    return prepared


def scram_password(password: str) -> str:
    """What SCRAM hashes for ``password``: its SASLprep form, else ``password`` as it is
    (PostgreSQL's rule, so that any password can be used)."""
    if password.isascii():
        return password
    try:
        return saslprep(password)
    except InvalidInput:
        return password
