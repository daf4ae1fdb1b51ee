"""Admin account routes and GET /account, end to end through chalice's test client on moto."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from support import ACCOUNT_FIELDS

from chalicelib.core import keys
from chalicelib.store import accounts as account_store

T0 = datetime(2027, 5, 4, 9, 30, tzinfo=UTC)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored(model: Any) -> list[dict[str, Any]]:
    """Every item of a table, serialized (tests may Scan; the app may not)."""
    return [item.serialize() for item in model.scan()]


def snapshot() -> dict[str, list[str]]:
    from chalicelib.store.models import TABLES

    return {
        name: sorted(json.dumps(item, sort_keys=True) for item in stored(model))
        for name, model in TABLES.items()
    }


# --- create -----------------------------------------------------------------------------------


def test_admin_creates_a_limited_account_with_a_management_key_and_a_default_token(
    api: Any,
) -> None:
    from chalicelib.store.models import Account, Token

    # GIVEN the admin key and a clock at T0
    with time_machine.travel(T0, tick=False):
        # WHEN an account is created with a quota in units
        status, body = api.admin("POST", "/admin/accounts", {"name": "acme", "quota_units": 1000})
    # THEN 201 with the account, a management key and a default token carrying its key
    assert status == 201
    assert set(body) == {"account", "management_key", "default_token"}
    account = body["account"]
    assert set(account) == ACCOUNT_FIELDS
    assert account["name"] == "acme"
    assert account["status"] == "enabled"
    assert account["quota_units"] == 1000
    assert account["quota_usd"] == "0.002000"
    assert account["used_units"] == 0
    assert account["used_usd"] == "0.000000"
    assert account["remaining_units"] == 1000
    assert account["remaining_usd"] == "0.002000"
    assert account["created_at"] == "2027-05-04T09:30:00Z"
    assert re.fullmatch(r"[A-Za-z0-9]{16}", account["id"])
    management_key = body["management_key"]
    assert re.fullmatch(r"mk-[A-Za-z0-9]{48}", management_key)
    assert management_key[3:19] == account["id"]
    token = body["default_token"]
    assert token["name"] == "default"
    assert token["account_id"] == account["id"]
    assert token["status"] == "enabled"
    assert token["quota_units"] is None  # unlimited within the account's balance
    assert token["remaining_units"] is None
    assert token["expires_at"] is None  # never expires
    assert token["reset_period"] == "never"
    assert token["group"] == "default"
    assert re.fullmatch(r"sk-[A-Za-z0-9]{48}", token["key"])
    # AND the store holds the account and its default token, with hashes only
    [account_item] = stored(Account)
    assert account_item["id"] == {"S": account["id"]}
    assert account_item["management_key_hash"] == {"S": sha256(management_key)}
    assert account_item["quota_units"] == {"N": "1000"}
    assert account_item["remaining_units"] == {"N": "1000"}
    [token_item] = stored(Token)
    assert token_item["id"] == {"S": token["id"]}
    assert token_item["account_id"] == {"S": account["id"]}
    assert token_item["key_hash"] == {"S": sha256(token["key"])}
    assert token_item["unlimited"] == {"BOOL": True}
    everything = json.dumps(snapshot())
    assert management_key not in everything
    assert token["key"] not in everything


def test_quota_can_be_given_in_usd_and_both_forms_are_shown(api: Any) -> None:
    from chalicelib.store.models import Account

    body = api.new_account("acme", quota_usd="12.5")
    assert body["account"]["quota_units"] == 6_250_000
    assert body["account"]["quota_usd"] == "12.500000"
    assert body["account"]["remaining_usd"] == "12.500000"
    [item] = stored(Account)
    assert item["quota_units"] == {"N": "6250000"}


def test_unlimited_account_shows_null_quota(api: Any) -> None:
    from chalicelib.store.models import Account

    body = api.new_account("big", unlimited=True)
    assert body["account"]["quota_units"] is None
    assert body["account"]["quota_usd"] is None
    assert body["account"]["remaining_units"] is None
    [item] = stored(Account)
    assert item["unlimited"] == {"BOOL": True}


def test_account_without_quota_starts_with_zero_balance(api: Any) -> None:
    body = api.new_account("empty")
    assert body["account"]["quota_units"] == 0
    assert body["account"]["remaining_units"] == 0


def test_a_rejected_account_creation_writes_nothing(api: Any) -> None:
    before = snapshot()
    status, body = api.admin("POST", "/admin/accounts", {"name": "x", "quota_units": -1})
    assert status == 400
    assert body["error"]["param"] == "quota_units"
    assert snapshot() == before


# --- read and list ----------------------------------------------------------------------------


def test_admin_reads_one_account_by_id(api: Any) -> None:
    created = api.new_account("acme", quota_units=77)
    status, body = api.admin("GET", f"/admin/accounts/{created['account']['id']}")
    assert status == 200
    assert body == {**created["account"], "group_models": {"default": 0}}


def test_unknown_account_id_is_404(api: Any) -> None:
    status, body = api.admin("GET", "/admin/accounts/AAAAAAAAAAAAAAAA")
    assert status == 404
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "not_found"


def test_account_lists_newest_first_and_pages_walk_every_account_exactly_once(api: Any) -> None:
    # GIVEN 7 accounts created one minute apart
    ids = []
    for i in range(7):
        with time_machine.travel(T0.timestamp() + 60 * i, tick=False):
            ids.append(api.new_account(f"a{i}")["account"]["id"])
    # WHEN the admin walks the list 3 at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while pages < 10:
        path = "/admin/accounts?limit=3" + (f"&cursor={cursor}" if cursor else "")
        status, body = api.admin("GET", path)
        assert status == 200
        assert set(body) == {"data", "next_cursor"}
        assert len(body["data"]) <= 3
        seen += [account["id"] for account in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    # THEN every account appears exactly once, newest first
    assert seen == list(reversed(ids))
    assert pages == 3


def test_accounts_created_in_the_same_second_are_each_listed_once(api: Any) -> None:
    with time_machine.travel(T0, tick=False):
        ids = {api.new_account(f"a{i}")["account"]["id"] for i in range(9)}
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        status, body = api.admin(
            "GET", "/admin/accounts?limit=2" + (f"&cursor={cursor}" if cursor else "")
        )
        assert status == 200
        seen += [account["id"] for account in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)


def test_account_list_defaults_to_20_per_page(api: Any) -> None:
    for i in range(21):
        api.new_account(f"a{i}")
    status, body = api.admin("GET", "/admin/accounts")
    assert status == 200
    assert len(body["data"]) == 20
    assert body["next_cursor"] is not None
    status, rest = api.admin("GET", f"/admin/accounts?cursor={body['next_cursor']}")
    assert status == 200
    assert len(rest["data"]) == 1
    assert rest["next_cursor"] is None


def test_account_list_never_shows_keys_or_hashes(api: Any) -> None:
    created = api.new_account("acme")
    status, body = api.admin("GET", "/admin/accounts?limit=100")
    assert status == 200
    text = json.dumps(body)
    assert created["management_key"] not in text
    assert sha256(created["management_key"]) not in text
    assert created["default_token"]["key"] not in text


# --- patch ------------------------------------------------------------------------------------


def test_admin_renames_an_account(api: Any) -> None:
    from chalicelib.store.models import Account

    account_id = api.new_account("old")["account"]["id"]
    status, body = api.admin("PATCH", f"/admin/accounts/{account_id}", {"name": "new"})
    assert status == 200
    assert body["name"] == "new"
    assert Account.get(account_id).name == "new"


def test_disabling_an_account_locks_out_its_management_key_until_enabled(api: Any) -> None:
    from chalicelib.store.models import Account

    created = api.new_account("acme")
    account_id, mk = created["account"]["id"], created["management_key"]
    # WHEN the admin disables the account
    status, body = api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "disabled"})
    # THEN it shows disabled, is stored disabled, and its management key gets 401
    assert status == 200
    assert body["status"] == "disabled"
    assert Account.get(account_id).status == "disabled"
    status, body = api.call("GET", "/account", key=mk)
    assert status == 401
    assert body["error"]["code"] == "account_disabled"
    # AND enabling it again restores access
    api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "enabled"})
    assert api.call("GET", "/account", key=mk)[0] == 200


@pytest.mark.parametrize("field", ["name", "status"])
def test_patching_an_account_field_to_null_is_refused(api: Any, field: str) -> None:
    account_id = api.new_account("acme")["account"]["id"]
    before = snapshot()
    status, body = api.admin("PATCH", f"/admin/accounts/{account_id}", {field: None})
    assert status == 400
    assert body["error"]["param"] == field
    assert snapshot() == before


def test_patching_an_unknown_account_is_404_and_creates_nothing(api: Any) -> None:
    before = snapshot()
    status, _ = api.admin("PATCH", "/admin/accounts/AAAAAAAAAAAAAAAA", {"name": "x"})
    assert status == 404
    assert snapshot() == before


# --- credit -----------------------------------------------------------------------------------


def test_credit_adds_to_quota_and_remaining_and_records_an_event(api: Any) -> None:
    from chalicelib.store.models import Account, Event

    account_id = api.new_account("acme", quota_units=1000)["account"]["id"]
    # WHEN the admin credits US$1 with a note
    with time_machine.travel(T0, tick=False):
        status, body = api.admin(
            "POST",
            f"/admin/accounts/{account_id}/credit",
            {"quota_usd": "1", "note": "invoice 42"},
        )
    # THEN quota and remaining grew by 500,000 units
    assert status == 200
    assert body["quota_units"] == 501_000
    assert body["remaining_units"] == 501_000
    assert body["remaining_usd"] == "1.002000"
    item = Account.get(account_id)
    assert (item.quota_units, item.remaining_units) == (501_000, 501_000)
    # AND one credit event remembers the amount, the note and the time
    [event] = list(Event.scan())
    assert event.subject == f"account#{account_id}"
    assert event.kind == "credit"
    assert event.body.as_dict() == {"units": 500_000, "note": "invoice 42"}
    assert event.at_id.startswith(f"{int(T0.timestamp() * 1000):013d}#")


def test_credits_accumulate(api: Any) -> None:
    from chalicelib.store.models import Account, Event

    account_id = api.new_account("acme")["account"]["id"]
    for units in (10, 20, 30):
        status, _ = api.admin(
            "POST", f"/admin/accounts/{account_id}/credit", {"quota_units": units}
        )
        assert status == 200
    assert Account.get(account_id).remaining_units == 60
    assert len(list(Event.scan())) == 3


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"quota_units": 0}, "quota_units"),
        ({"quota_usd": "0"}, "quota_usd"),
        ({"quota_usd": "0.000001"}, "quota_usd"),
        ({}, "quota_units"),
        ({"quota_units": 1, "quota_usd": "1"}, "quota_usd"),
    ],
)
def test_a_bad_credit_is_refused_and_writes_nothing(
    api: Any, body: dict[str, Any], param: str
) -> None:
    account_id = api.new_account("acme")["account"]["id"]
    before = snapshot()
    status, error = api.admin("POST", f"/admin/accounts/{account_id}/credit", body)
    assert status == 400
    assert error["error"]["param"] == param
    assert snapshot() == before


def test_crediting_an_unknown_account_is_404_and_writes_nothing(api: Any) -> None:
    before = snapshot()
    status, _ = api.admin("POST", "/admin/accounts/AAAAAAAAAAAAAAAA/credit", {"quota_units": 5})
    assert status == 404
    assert snapshot() == before


# --- the account's own view -------------------------------------------------------------------


def test_management_key_reads_its_own_account(api: Any) -> None:
    created = api.new_account("acme", quota_units=5)
    status, body = api.call("GET", "/account", key=created["management_key"])
    assert status == 200
    assert body == {**created["account"], "group_models": {"default": 0}}


def test_admin_reads_any_account_through_account_id(api: Any) -> None:
    created = api.new_account("acme")
    status, body = api.admin("GET", f"/account?account_id={created['account']['id']}")
    assert status == 200
    assert body["id"] == created["account"]["id"]


def test_health_needs_no_key(api: Any) -> None:
    assert api.call("GET", "/health") == (200, {"status": "ok"})


def test_admin_issues_a_new_management_key_and_the_old_one_stops(api: Any) -> None:
    # GIVEN an account and its management key
    created = api.new_account("rotate")
    old_key = created["management_key"]
    account_id = created["account"]["id"]

    # WHEN the operator issues a new one
    status, body = api.admin("POST", f"/admin/accounts/{account_id}/management-key")

    # THEN it is shown once, works, and the old key is refused at once
    assert status == 200, body
    new_key = body["management_key"]
    assert new_key.startswith("mk-") and new_key != old_key
    assert api.call("GET", "/account", key=new_key)[0] == 200
    assert api.call("GET", "/account", key=old_key)[0] == 401
    stored = account_store.get(account_id)
    assert stored is not None and stored.management_key_hash == keys.hash_key(new_key)
    assert api.admin("POST", "/admin/accounts/nope/management-key")[0] == 404
    assert api.call("POST", f"/admin/accounts/{account_id}/management-key", key=new_key)[0] == 403
