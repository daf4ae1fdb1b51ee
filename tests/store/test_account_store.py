"""The account store (chalicelib.store.accounts) on moto and on DynamoDB Local alike."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
import time_machine

from chalicelib.core import keys
from chalicelib.core.errors import Conflict, InvalidRequest, NotFound
from chalicelib.core.records import AccountRecord, TokenRecord
from chalicelib.store import accounts as store
from chalicelib.store import tokens as token_store

NOW = 1_800_000_000


def new_account(created_at: int = NOW, quota: int | None = 1_000, **fields: Any) -> AccountRecord:
    account_id = keys.new_id()
    record = AccountRecord(
        id=account_id,
        name="acme",
        status="enabled",
        unlimited=quota is None,
        quota_units=quota or 0,
        used_units=0,
        reserved_units=0,
        remaining_units=quota or 0,
        created_at=created_at,
        management_key_hash=keys.hash_key(keys.new_key(keys.MANAGEMENT_PREFIX, account_id)),
    )
    return replace(record, **fields)


def default_token(account: AccountRecord) -> TokenRecord:
    token_id = keys.new_id()
    key = keys.new_key(keys.TOKEN_PREFIX, token_id)
    return TokenRecord(
        id=token_id,
        account_id=account.id,
        name="default",
        key_hash=keys.hash_key(key),
        key_preview=keys.preview(key),
        created_at=account.created_at,
    )


def create(account: AccountRecord) -> TokenRecord:
    token = default_token(account)
    store.create(account, token)
    return token


def account_ids() -> set[str]:
    from chalicelib.store.models import Account

    return {item.id for item in Account.scan()}


def token_ids() -> set[str]:
    from chalicelib.store.models import Token

    return {item.id for item in Token.scan()}


def events() -> list[Any]:
    from chalicelib.store.models import Event

    return list(Event.scan())


def walk(limit: int) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = store.list_page(limit, cursor)
        assert len(page.items) <= limit
        seen += [record.id for record in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return seen
    raise AssertionError("pagination did not end")


# --- create -----------------------------------------------------------------------------------


def test_create_stores_the_account_and_its_default_token_together(backend: Any) -> None:
    account = new_account(quota=1_000)
    token = create(account)
    assert store.get(account.id) == account
    assert token_store.get(token.id) == token
    assert token_store.get_owned(token.id, account.id).name == "default"


def test_create_stores_an_unlimited_account(backend: Any) -> None:
    account = new_account(quota=None)
    create(account)
    stored = store.require(account.id)
    assert (stored.unlimited, stored.quota_units, stored.remaining_units) == (True, 0, 0)


def test_a_token_id_collision_creates_neither_the_account_nor_the_token(backend: Any) -> None:
    # GIVEN an existing account whose default token has id T
    first = new_account()
    taken = create(first)
    # WHEN a new account is created with a default token that reuses id T
    second = new_account()
    with pytest.raises(Conflict):
        store.create(second, replace(default_token(second), id=taken.id))
    # THEN the new account does not exist either, and T still belongs to the first account
    assert account_ids() == {first.id}
    assert token_ids() == {taken.id}
    assert token_store.get_owned(taken.id, first.id).key_hash == taken.key_hash


def test_an_account_id_collision_creates_nothing_and_keeps_the_old_account(backend: Any) -> None:
    first = new_account(name="first")
    token = create(first)
    impostor = replace(new_account(name="impostor"), id=first.id)
    with pytest.raises(Conflict):
        store.create(impostor, default_token(impostor))
    assert token_ids() == {token.id}
    assert store.require(first.id).name == "first"
    assert store.require(first.id).management_key_hash == first.management_key_hash


# --- get / require ----------------------------------------------------------------------------


def test_get_and_require_of_a_missing_account(backend: Any) -> None:
    assert store.get("Z" * 16) is None
    with pytest.raises(NotFound):
        store.require("Z" * 16)


@pytest.mark.parametrize("account_id", ["x" * 3000, ""])
def test_an_id_dynamodb_cannot_hold_is_simply_not_found(backend: Any, account_id: str) -> None:
    assert store.get(account_id) is None
    with pytest.raises(NotFound):
        store.update(account_id, name="x")
    with pytest.raises(NotFound):
        store.credit(account_id, 5, "", NOW)
    assert events() == []


# --- list_page --------------------------------------------------------------------------------


def test_pages_walk_every_account_once_newest_first(backend: Any) -> None:
    accounts = [new_account(created_at=NOW + i) for i in range(11)]
    for account in accounts:
        create(account)
    for limit in (1, 3, 11, 100):
        assert walk(limit) == [a.id for a in reversed(accounts)], limit


def test_pages_walk_accounts_created_in_the_same_second_exactly_once(backend: Any) -> None:
    accounts = [new_account(created_at=NOW) for _ in range(9)]
    for account in accounts:
        create(account)
    for limit in (2, 4, 9):
        seen = walk(limit)
        assert sorted(seen) == sorted(a.id for a in accounts), limit


def test_an_empty_store_lists_nothing(backend: Any) -> None:
    page = store.list_page(20, None)
    assert (page.items, page.next_cursor) == ([], None)


@pytest.mark.parametrize(
    "cursor",
    [
        "!!",
        "eyJpZCI6eyJTIjoiYSJ9fQ",  # {"id":{"S":"a"}}: not an account listing position
        "eyJraW5kIjp7IlMiOiJhY2NvdW50In19",  # {"kind":{"S":"account"}} alone
    ],
)
def test_a_cursor_not_made_by_this_listing_is_a_400(backend: Any, cursor: str) -> None:
    create(new_account())
    with pytest.raises(InvalidRequest) as caught:
        store.list_page(5, cursor)
    assert caught.value.param == "cursor"


# --- update -----------------------------------------------------------------------------------


def test_update_renames_and_disables(backend: Any) -> None:
    account = new_account()
    create(account)
    updated = store.update(account.id, name="renamed", status="disabled")
    assert (updated.name, updated.status) == ("renamed", "disabled")
    assert store.require(account.id) == updated
    assert updated.quota_units == account.quota_units


def test_update_with_nothing_to_change_returns_the_account(backend: Any) -> None:
    account = new_account()
    create(account)
    assert store.update(account.id) == account


def test_update_of_a_missing_account_creates_nothing(backend: Any) -> None:
    with pytest.raises(NotFound):
        store.update("Z" * 16, name="ghost")
    assert account_ids() == set()


# --- credit -----------------------------------------------------------------------------------


def test_credit_adds_to_quota_and_remaining_and_keeps_charges(backend: Any) -> None:
    from chalicelib.store.models import Account

    # GIVEN an account with 1000 granted, 300 used and 100 reserved
    account = new_account(quota=1_000)
    create(account)
    Account(account.id).update(
        actions=[
            Account.used_units.set(300),
            Account.reserved_units.set(100),
            Account.remaining_units.set(600),
        ]
    )
    # WHEN it is credited 500 units
    credited = store.credit(account.id, 500, "top-up", NOW)
    # THEN quota and remaining grew by 500; used and reserved are untouched
    assert (credited.quota_units, credited.remaining_units) == (1_500, 1_100)
    assert (credited.used_units, credited.reserved_units) == (300, 100)
    assert store.require(account.id) == credited
    # AND one credit event was written for the account
    [event] = events()
    assert event.subject == f"account#{account.id}"
    assert event.kind == "credit"
    assert event.body.as_dict() == {"units": 500, "note": "top-up"}
    assert int(event.at_id.split("#")[0]) // 1000 == NOW  # in NOW's second, ordered by ms


def test_credits_accumulate_and_each_leaves_an_event(backend: Any) -> None:
    account = new_account(quota=0)
    create(account)
    for i, units in enumerate((5, 7, 11)):
        store.credit(account.id, units, f"n{i}", NOW + i)
    assert store.require(account.id).remaining_units == 23
    history = store.events(account.id)
    assert [(e["units"], e["note"], e["at"]) for e in history] == [
        (11, "n2", NOW + 2),
        (7, "n1", NOW + 1),
        (5, "n0", NOW),
    ]


def test_a_credit_written_after_its_second_ended_is_still_listed_newest_first(
    backend: Any,
) -> None:
    # GIVEN an account credited at 0.956 s into second NOW
    account = new_account(quota=0)
    create(account)
    with time_machine.travel(NOW + 0.956, tick=False):
        store.credit(account.id, 5, "first", NOW)
    # WHEN a second credit, admitted in the same second, is written just after it ended
    with time_machine.travel(NOW + 1.002, tick=False):
        store.credit(account.id, 7, "second", NOW)
    # THEN the second is listed first
    assert [e["note"] for e in store.events(account.id)] == ["second", "first"]


def test_crediting_a_missing_account_writes_nothing(backend: Any) -> None:
    with pytest.raises(NotFound):
        store.credit("Z" * 16, 100, "", NOW)
    assert account_ids() == set()
    assert events() == []
