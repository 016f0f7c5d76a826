"""Password verifiers, computed and checked on the client so a password never reaches the
server in clear: does a stored ``SCRAM-SHA-256$...`` or ``md5...`` verifier match a password?"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from pgstream.facts.saslprep import scram_password

_B64 = r"[A-Za-z0-9+/=]+"
_SCRAM = re.compile(rf"^SCRAM-SHA-256\$(\d+):({_B64})\$({_B64}):({_B64})$")


def verifier_matches(verifier: str | None, password: str, user: str) -> bool:
    """True when ``verifier`` (pg_authid.rolpassword) was made from ``password``.

    False for an unknown format or no verifier: the caller then sets the password anew.
    A SCRAM verifier is checked against the password as libpq and the server hash it: its
    SASLprep form (:func:`~pgstream.facts.saslprep.scram_password`).
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
    salted = hashlib.pbkdf2_hmac("sha256", scram_password(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    computed = base64.b64encode(hashlib.sha256(client_key).digest()).decode()
    return hmac.compare_digest(computed, stored_key)
