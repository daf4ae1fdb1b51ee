"""API keys: generation, hashing, preview and constant-time checks (pure).

A key is ``sk-`` followed by 48 characters from [A-Za-z0-9], drawn with ``secrets``. Its first 16
characters are the token's id and the last 32 (about 190 bits) are the secret. Embedding the id
lets the gateway fetch the token's own item with a strongly consistent GetItem by id, and then
compare the SHA-256 of the whole key with the stored hash in constant time. Looking keys up by hash
through a GSI would be eventually consistent: a fresh key could be refused and a regenerated key's
old hash could linger. Regenerating keeps the id and draws a new secret, so the old key fails the
hash comparison at once.

Management keys have the same shape with ``mk-`` and the account's id, and operator keys with
``ops-`` and the operator key's own id.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass

ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 16
SECRET_LENGTH = 32
BODY_LENGTH = ID_LENGTH + SECRET_LENGTH  # 48
TOKEN_PREFIX = "sk-"  # noqa: S105 - a prefix, not a secret
MANAGEMENT_PREFIX = "mk-"
OPERATOR_PREFIX = "ops-"
PREFIXES = (
    (TOKEN_PREFIX, "token"),
    (MANAGEMENT_PREFIX, "management"),
    (OPERATOR_PREFIX, "operator"),
)


def random_string(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_id() -> str:
    return random_string(ID_LENGTH)


def new_key(prefix: str, owner_id: str) -> str:
    """A fresh key for ``owner_id`` (a token id for ``sk-``, an account id for ``mk-``, an
    operator key id for ``ops-``)."""
    if len(owner_id) != ID_LENGTH or not is_alnum(owner_id):
        raise ValueError("owner id must be 16 characters from [A-Za-z0-9]")
    return prefix + owner_id + random_string(SECRET_LENGTH)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def hashes_match(key: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored SHA-256 hex digest."""
    return hmac.compare_digest(hash_key(key).encode(), stored_hash.encode())


def secrets_match(presented: str, expected: str) -> bool:
    """Constant-time comparison of two plain secrets (the admin key)."""
    return hmac.compare_digest(
        hashlib.sha256(presented.encode("utf-8")).digest(),
        hashlib.sha256(expected.encode("utf-8")).digest(),
    )


def preview(key: str) -> str:
    """``sk-Ab12…xY9z``: enough to recognise a key, far too little to use it."""
    prefix, dash, body = key.partition("-")
    return f"{prefix}{dash}{body[:4]}…{body[-4:]}"


def is_alnum(text: str) -> bool:
    return all(ch in ALPHABET for ch in text)


@dataclass(frozen=True)
class ParsedKey:
    kind: str  # "token" | "management" | "operator"
    owner_id: str
    key: str


def parse_key(key: str) -> ParsedKey | None:
    """Split a presented key into its kind and owner id, or None if it cannot be one of ours."""
    for prefix, kind in PREFIXES:
        if key.startswith(prefix):
            body = key[len(prefix) :]
            if len(body) == BODY_LENGTH and is_alnum(body):
                return ParsedKey(kind=kind, owner_id=body[:ID_LENGTH], key=key)
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <key>`` header, or None if absent/malformed."""
    if not authorization:
        return None
    scheme, _, credential = authorization.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential or " " in credential:
        return None
    return credential
