"""The public JSON shapes of tokens and accounts (chalicelib.core.views, pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from support import ACCOUNT_FIELDS, TOKEN_FIELDS

from chalicelib.core import views
from chalicelib.core.records import NEVER, AccountRecord, TokenRecord

NOW = int(datetime(2027, 3, 10, 12, 0, tzinfo=UTC).timestamp())
HASH = "f" * 64


def token(**fields: object) -> TokenRecord:
    base = TokenRecord(
        id="T" * 16,
        account_id="A" * 16,
        name="ci",
        key_hash=HASH,
        key_preview="sk-TTTT…wxyz",
        status="enabled",
        created_at=NOW - 3600,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


def account(**fields: object) -> AccountRecord:
    base = AccountRecord(
        id="A" * 16,
        name="acme",
        status="enabled",
        unlimited=False,
        quota_units=1_000_000,
        used_units=200_000,
        reserved_units=50_000,
        remaining_units=750_000,
        created_at=NOW,
        management_key_hash=HASH,
    )
    return replace(base, **fields)  # type: ignore[arg-type]


# --- iso ------------------------------------------------------------------------------------


def test_iso_renders_utc_with_a_z_suffix_and_never_as_null() -> None:
    assert views.iso(NOW) == "2027-03-10T12:00:00Z"
    assert views.iso(0) == views.iso(NEVER) is None
    assert views.iso(None) is None
    assert views.iso(1) == "1970-01-01T00:00:01Z"


# --- token_json -----------------------------------------------------------------------------


def test_unlimited_token_shows_every_field_with_nulls_for_quota_and_remaining() -> None:
    # GIVEN an unlimited, never-expiring, never-resetting token
    body = views.token_json(token(), NOW)
    # THEN it carries exactly the contract's fields, and no key and no hash
    assert set(body) == TOKEN_FIELDS
    assert body == {
        "id": "T" * 16,
        "account_id": "A" * 16,
        "name": "ci",
        "key_preview": "sk-TTTT…wxyz",
        "status": "enabled",
        "created_at": "2027-03-10T11:00:00Z",
        "expires_at": None,
        "quota_units": None,
        "quota_usd": None,
        "used_units": 0,
        "used_usd": "0.000000",
        "reserved_units": 0,
        "remaining_units": None,
        "remaining_usd": None,
        "total_used_units": 0,
        "reset_period": "never",
        "next_reset_at": None,
        "group": "default",
        "models": [],
        "allow_ips": [],
        "last_used_at": None,
        "rpm_limit": None,
        "tpm_limit": None,
        "max_concurrency": None,
    }


def test_limited_token_shows_quota_used_and_remaining_in_units_and_usd() -> None:
    record = token(
        unlimited=False,
        quota_units=1_000_000,
        used_units=250_000,
        reserved_units=1,
        remaining_units=749_999,
        total_used_units=9_000_000,
        expires_at=NOW + 86_400,
        reset_period="daily",
        next_reset_at=NOW + 43_200,
        group="vip",
        models=("gpt-4o", "o3"),
        allow_ips=("10.0.0.0/8",),
        last_used_at=NOW - 5,
    )
    body = views.token_json(record, NOW)
    assert body["quota_units"] == 1_000_000
    assert body["quota_usd"] == "2.000000"
    assert body["used_units"] == 250_000
    assert body["used_usd"] == "0.500000"
    assert body["reserved_units"] == 1
    assert body["remaining_units"] == 749_999
    assert body["remaining_usd"] == "1.499998"
    assert body["total_used_units"] == 9_000_000
    assert body["expires_at"] == "2027-03-11T12:00:00Z"
    assert body["reset_period"] == "daily"
    assert body["next_reset_at"] == "2027-03-11T00:00:00Z"
    assert body["group"] == "vip"
    assert body["models"] == ["gpt-4o", "o3"]
    assert body["allow_ips"] == ["10.0.0.0/8"]
    assert body["last_used_at"] == "2027-03-10T11:59:55Z"
    assert body["status"] == "enabled"


def test_key_appears_only_when_passed_explicitly() -> None:
    key = "sk-" + "T" * 16 + "s" * 32
    assert "key" not in views.token_json(token(), NOW)
    assert views.token_json(token(), NOW, key=key)["key"] == key


def test_no_field_of_a_token_view_carries_the_hash() -> None:
    body = views.token_json(token(), NOW)
    assert HASH not in repr(body)
    assert "key_hash" not in body


def test_negative_remaining_is_shown_as_zero() -> None:
    # A settled charge may overshoot a key's remaining by a rounding unit; users never see < 0.
    body = views.token_json(token(unlimited=False, quota_units=10, remaining_units=-3), NOW)
    assert body["remaining_units"] == 0
    assert body["remaining_usd"] == "0.000000"
    assert body["status"] == "exhausted"


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "enabled"),
        ({"status": "disabled"}, "disabled"),
        ({"expires_at": NOW}, "expired"),
        ({"expires_at": NOW - 1}, "expired"),
        ({"expires_at": NOW + 1}, "enabled"),
        ({"unlimited": False, "quota_units": 5, "remaining_units": 0}, "exhausted"),
        ({"unlimited": False, "quota_units": 5, "remaining_units": 1}, "enabled"),
        ({"unlimited": True, "remaining_units": -100}, "enabled"),
        # precedence: disabled beats expired beats exhausted
        ({"status": "disabled", "expires_at": NOW - 1, "unlimited": False}, "disabled"),
        ({"expires_at": NOW - 1, "unlimited": False, "remaining_units": 0}, "expired"),
    ],
)
def test_status_is_the_effective_one(fields: dict[str, object], status: str) -> None:
    assert views.token_json(token(**fields), NOW)["status"] == status


# --- account_json ---------------------------------------------------------------------------


def test_limited_account_shows_every_field_in_units_and_usd() -> None:
    body = views.account_json(account())
    assert set(body) == ACCOUNT_FIELDS
    assert body == {
        "id": "A" * 16,
        "name": "acme",
        "status": "enabled",
        "quota_units": 1_000_000,
        "quota_usd": "2.000000",
        "used_units": 200_000,
        "used_usd": "0.400000",
        "reserved_units": 50_000,
        "remaining_units": 750_000,
        "remaining_usd": "1.500000",
        "created_at": "2027-03-10T12:00:00Z",
        "groups": ["default"],
        "rpm_limit": None,
        "tpm_limit": None,
        "max_concurrency": None,
    }


def test_unlimited_account_shows_null_quota_and_remaining() -> None:
    body = views.account_json(account(unlimited=True, quota_units=0, remaining_units=-200_000))
    assert body["quota_units"] is None
    assert body["quota_usd"] is None
    assert body["remaining_units"] is None
    assert body["remaining_usd"] is None
    assert body["used_units"] == 200_000


def test_account_view_never_carries_the_management_key_hash() -> None:
    body = views.account_json(account())
    assert HASH not in repr(body)
    assert "management_key_hash" not in body
