"""PATCHing ``reset_period`` moves a key into and out of the sparse reset index.

The index is ``tokens_due_for_reset`` (hash ``reset_bucket``, range ``next_reset_at``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import time_machine
from reset_helpers import at, raw_item

from chalicelib.store import resets as reset_store

CREATED = datetime(2027, 3, 10, 15, 0, tzinfo=UTC)
FAR_FUTURE = at(2030, 1, 1)


def indexed(token_id: str) -> bool:
    """Whether the key is listed by the due index for an instant after every boundary."""
    listed: list[str] = []
    start = None
    for _ in range(20):
        ids, start = reset_store.due_token_ids(FAR_FUTURE, 100, start)
        listed += ids
        if start is None:
            break
    return token_id in listed


def new_key(api: Any, period: str) -> tuple[str, str]:
    account = api.new_account("acme")
    status, body = api.call(
        "POST",
        "/tokens",
        key=account["management_key"],
        body={"name": "k", "quota_units": 1_000, "reset_period": period},
    )
    assert status == 201, body
    return account["management_key"], body["data"][0]["id"]


def patch_period(api: Any, management_key: str, token_id: str, period: str) -> dict[str, Any]:
    status, body = api.call(
        "PATCH", f"/tokens/{token_id}", key=management_key, body={"reset_period": period}
    )
    assert status == 200, body
    return body


def test_key_created_without_a_period_is_not_in_the_reset_index(api: Any) -> None:
    with time_machine.travel(CREATED, tick=False):
        # GIVEN / WHEN a key is created with reset period "never"
        _, token_id = new_key(api, "never")
        # THEN it carries neither index attribute and is never listed as due
        item = raw_item(token_id)
        assert item is not None
        assert "reset_bucket" not in item and "next_reset_at" not in item
        assert not indexed(token_id)


def test_patching_a_period_in_puts_the_key_in_the_reset_index(api: Any) -> None:
    with time_machine.travel(CREATED, tick=False):
        # GIVEN a key without a period
        management_key, token_id = new_key(api, "never")
        # WHEN its period is set to weekly
        body = patch_period(api, management_key, token_id, "weekly")
        # THEN it is due next Monday, and the index lists it
        assert body["next_reset_at"] == "2027-03-15T00:00:00Z"
        item = raw_item(token_id)
        assert item is not None
        assert (item["reset_bucket"], item["next_reset_at"]) == ("due", at(2027, 3, 15))
        assert indexed(token_id)


def test_patching_the_period_to_never_takes_the_key_out_of_the_reset_index(api: Any) -> None:
    with time_machine.travel(CREATED, tick=False):
        # GIVEN a daily key, listed by the index
        management_key, token_id = new_key(api, "daily")
        assert indexed(token_id)
        # WHEN its period is set to never
        body = patch_period(api, management_key, token_id, "never")
        # THEN it has no boundary and the index no longer lists it
        assert body["next_reset_at"] is None
        item = raw_item(token_id)
        assert item is not None
        assert "reset_bucket" not in item and "next_reset_at" not in item
        assert not indexed(token_id)


def test_patching_daily_to_monthly_moves_the_keys_boundary_in_the_index(api: Any) -> None:
    with time_machine.travel(CREATED, tick=False):
        # GIVEN a daily key due at the next midnight
        management_key, token_id = new_key(api, "daily")
        # WHEN its period becomes monthly
        patch_period(api, management_key, token_id, "monthly")
        # THEN the index no longer lists it as due tomorrow, only from 1 April
        ids_tomorrow, _ = reset_store.due_token_ids(at(2027, 3, 11, 0, 30), 100)
        ids_april, _ = reset_store.due_token_ids(at(2027, 4, 1), 100)
        assert token_id not in ids_tomorrow
        assert token_id in ids_april
