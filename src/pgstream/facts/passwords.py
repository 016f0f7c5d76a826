"""Password verifiers, computed and checked on the client so a password never reaches the
server in clear: does a stored ``SCRAM-SHA-256$...`` or ``md5...`` verifier match a password?"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import unicodedata

_B64 = r"[A-Za-z0-9+/=]+"
_SCRAM = re.compile(rf"^SCRAM-SHA-256\$(\d+):({_B64})\$({_B64}):({_B64})$")


def _saslprep(password: str) -> str:
    # PostgreSQL applies SASLprep (NFKC and friends) and falls back to the raw bytes when the
    # result is not valid; NFKC covers the common cases, ASCII passes through unchanged.
    return unicodedata.normalize("NFKC", password)


def verifier_matches(verifier: str | None, password: str, user: str) -> bool:
    """True when ``verifier`` (pg_authid.rolpassword) was made from ``password``.

    False for an unknown format or no verifier: the caller then sets the password anew.
    """
    if not verifier:
        return False
    if verifier.startswith("md5") and len(verifier) == 35:
        digest = hashlib.md5((password + user).encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(verifier, "md5" + digest)
    match = _SCRAM.match(verifier)
    if match is None:
        return False
    iterations, salt, stored_key = int(match[1]), base64.b64decode(match[2]), match[3]
    for candidate in dict.fromkeys((_saslprep(password), password)):
        salted = hashlib.pbkdf2_hmac("sha256", candidate.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        computed = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
        if hmac.compare_digest(computed, stored_key):
            return True
    return False
