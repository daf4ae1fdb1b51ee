"""Behaviour of API-key generation, parsing, hashing and comparison (chalicelib.core.keys, pure)."""

from __future__ import annotations

import hashlib
import hmac
import re
import string

import pytest

from chalicelib.api import auth
from chalicelib.core import keys

KEY_SHAPE = re.compile(r"^sk-[A-Za-z0-9]{48}$")
SAMPLE = 2_000


def a_token_key() -> str:
    return keys.new_key(keys.TOKEN_PREFIX, keys.new_id())


# --- generation -----------------------------------------------------------------------------


def test_new_token_key_is_sk_then_48_alphanumerics() -> None:
    # GIVEN a fresh token id
    token_id = keys.new_id()
    # WHEN a key is drawn for it
    key = keys.new_key(keys.TOKEN_PREFIX, token_id)
    # THEN it is "sk-" + 48 characters of [A-Za-z0-9], starting with the token id
    assert KEY_SHAPE.match(key)
    assert len(key) == 3 + 48
    assert key[3:19] == token_id


def test_management_key_has_the_same_shape_with_mk_prefix() -> None:
    account_id = keys.new_id()
    key = keys.new_key(keys.MANAGEMENT_PREFIX, account_id)
    assert re.fullmatch(r"mk-[A-Za-z0-9]{48}", key)
    assert key.startswith("mk-" + account_id)


def test_ids_are_16_characters_of_the_alphabet() -> None:
    ids = [keys.new_id() for _ in range(200)]
    assert all(len(i) == 16 and keys.is_alnum(i) for i in ids)


def test_alphabet_is_exactly_ascii_letters_and_digits() -> None:
    assert set(keys.ALPHABET) == set(string.ascii_letters + string.digits)
    assert len(keys.ALPHABET) == 62


def test_keys_draw_from_the_whole_alphabet_and_nothing_else() -> None:
    # GIVEN a bounded sample of keys
    bodies = "".join(a_token_key()[3:] for _ in range(SAMPLE))
    # THEN every character is alphanumeric, and every one of the 62 characters shows up
    # (48 x 2000 draws: missing one by chance has probability far below 1e-100)
    assert set(bodies) == set(keys.ALPHABET)


def test_keys_and_secrets_are_unique_over_a_bounded_sample() -> None:
    # GIVEN many keys for the same owner
    owner = keys.new_id()
    sample = [keys.new_key(keys.TOKEN_PREFIX, owner) for _ in range(SAMPLE)]
    # THEN no two are equal: the secret part alone differs every time
    assert len(set(sample)) == SAMPLE
    assert len({k[-32:] for k in sample}) == SAMPLE


def test_ids_are_unique_over_a_bounded_sample() -> None:
    assert len({keys.new_id() for _ in range(SAMPLE)}) == SAMPLE


@pytest.mark.parametrize("owner", ["", "short", "a" * 17, "abcdefghijklmno-", "ábcdefghijklmnop"])
def test_new_key_refuses_an_owner_id_that_is_not_16_alphanumerics(owner: str) -> None:
    with pytest.raises(ValueError, match="16 characters"):
        keys.new_key(keys.TOKEN_PREFIX, owner)


# --- parse_key ------------------------------------------------------------------------------


def test_parse_key_splits_a_token_key_into_kind_and_owner() -> None:
    token_id = keys.new_id()
    key = keys.new_key(keys.TOKEN_PREFIX, token_id)
    parsed = keys.parse_key(key)
    assert parsed == keys.ParsedKey(kind="token", owner_id=token_id, key=key)


def test_parse_key_recognises_a_management_key() -> None:
    account_id = keys.new_id()
    key = keys.new_key(keys.MANAGEMENT_PREFIX, account_id)
    parsed = keys.parse_key(key)
    assert parsed is not None
    assert (parsed.kind, parsed.owner_id) == ("management", account_id)


def test_parse_key_recognises_an_operator_key() -> None:
    key_id = keys.new_id()
    key = keys.new_key(keys.OPERATOR_PREFIX, key_id)
    parsed = keys.parse_key(key)
    assert parsed is not None
    assert (parsed.kind, parsed.owner_id) == ("operator", key_id)
    assert keys.parse_key(key[:-1]) is None
    assert keys.parse_key("ops" + key[4:]) is None


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sk-",
        "sk-" + "a" * 47,  # one short
        "sk-" + "a" * 49,  # one long
        "sk-" + "a" * 47 + "-",  # foreign character
        "sk-" + "a" * 47 + "é",
        "SK-" + "a" * 48,  # prefix is case-sensitive
        "pk-" + "a" * 48,
        "a" * 51,
        " sk-" + "a" * 48,
        "mk_" + "a" * 48,
    ],
)
def test_parse_key_refuses_anything_not_shaped_like_our_keys(presented: str) -> None:
    assert keys.parse_key(presented) is None


# --- bearer_token ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer sk-abc", "sk-abc"),
        ("bearer sk-abc", "sk-abc"),
        ("BEARER sk-abc", "sk-abc"),
        ("  Bearer   sk-abc  ", "sk-abc"),
        (None, None),
        ("", None),
        ("   ", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("sk-abc", None),
        ("Bearer sk-abc extra", None),
        ("Token sk-abc", None),
    ],
)
def test_bearer_token_extracts_the_credential_or_none(
    header: str | None, expected: str | None
) -> None:
    assert keys.bearer_token(header) == expected


# --- preview --------------------------------------------------------------------------------


def test_preview_shows_prefix_first_four_and_last_four() -> None:
    key = "sk-Ab12" + "x" * 40 + "xY9z"
    assert keys.preview(key) == "sk-Ab12…xY9z"


def test_preview_keeps_the_whole_prefix_of_an_operator_key() -> None:
    key = "ops-Ab12" + "x" * 40 + "xY9z"
    assert keys.preview(key) == "ops-Ab12…xY9z"
    assert keys.preview("mk-Ab12" + "x" * 40 + "xY9z") == "mk-Ab12…xY9z"


def test_preview_of_a_real_key_cannot_be_used_as_the_key() -> None:
    key = a_token_key()
    shown = keys.preview(key)
    assert shown == f"sk-{key[3:7]}…{key[-4:]}"
    assert keys.parse_key(shown) is None
    # the secret part (last 32 characters) is not recoverable from the preview
    assert key[19:47] not in shown


# --- hashing and comparison -----------------------------------------------------------------


def test_hash_key_is_the_sha256_hex_digest() -> None:
    key = a_token_key()
    assert keys.hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key not in keys.hash_key(key)


def test_hashes_match_accepts_the_key_and_refuses_any_other() -> None:
    key = a_token_key()
    stored = keys.hash_key(key)
    other = keys.new_key(keys.TOKEN_PREFIX, key[3:19])  # same id, new secret
    assert keys.hashes_match(key, stored)
    assert not keys.hashes_match(other, stored)
    assert not keys.hashes_match(key, stored.upper())
    assert not keys.hashes_match(key, "")


def test_hashes_match_and_secrets_match_use_constant_time_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN hmac.compare_digest replaced by a recorder
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys.hmac, "compare_digest", recording)
    key = a_token_key()
    # WHEN both comparisons run
    assert keys.hashes_match(key, keys.hash_key(key))
    assert keys.secrets_match("admin-secret", "admin-secret")
    assert not keys.secrets_match("admin-secret", "admin-secreT")
    # THEN every one of them went through compare_digest
    assert len(calls) == 3


def test_secrets_match_compares_equal_length_digests_whatever_the_input_lengths() -> None:
    # Lengths of the plain secrets must not matter: both sides are hashed first.
    assert keys.secrets_match("a" * 100, "a" * 100)
    assert not keys.secrets_match("a", "a" * 100)
    assert not keys.secrets_match("", "x")
    assert keys.secrets_match("", "")


def test_admin_key_is_checked_through_secrets_match(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an admin key in the settings and secrets_match replaced by a recorder
    from chalicelib.core.settings import reset_settings

    monkeypatch.setenv("SLUICE_ADMIN_KEY", "the-admin-key-0123456789")
    reset_settings()
    seen: list[tuple[str, str]] = []

    def recording(presented: str, expected: str) -> bool:
        seen.append((presented, expected))
        return keys.hmac.compare_digest(presented.encode(), expected.encode())

    monkeypatch.setattr(auth.keys, "secrets_match", recording)
    try:
        # WHEN the admin key is presented
        caller = auth.authenticate("Bearer the-admin-key-0123456789")
    finally:
        reset_settings()
    # THEN it was compared with secrets_match (constant time), never with ==
    assert caller.is_admin
    assert seen == [("the-admin-key-0123456789", "the-admin-key-0123456789")]
