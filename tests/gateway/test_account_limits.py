"""Limits on an account, capping all its keys together, under real concurrency (DynamoDB Local).

They are clauses of the account reservation's own conditional write, compared with the limits
the account item stores, so the totals are exact across keys and containers.
"""

from __future__ import annotations

from typing import Any

import pytest
from support import ADMIN_KEY
from test_rate_limits import FLAT, _post, _together, clock  # noqa: F401 - clock is a fixture

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store

pytestmark = pytest.mark.ddb_local


def test_20_calls_over_two_keys_of_an_account_allowing_5_a_minute_give_exactly_5(
    server: str,
    clock: Any,  # noqa: F811
) -> None:
    # GIVEN an account allowing 5 requests a minute, and two keys of it without limits
    account = _post(
        server, "/admin/accounts", ADMIN_KEY, {"name": "acme", "unlimited": True, "rpm_limit": 5}
    )
    assert account.status_code == 201, account.text
    assert account.json()["account"]["rpm_limit"] == 5
    mk, account_id = account.json()["management_key"], account.json()["account"]["id"]
    made = _post(server, "/tokens", mk, {"name": "k", "count": 2})
    keys = [t["key"] for t in made.json()["data"]]

    # WHEN 20 calls race, alternating between the keys
    responses = _together(20, lambda i: _post(server, "/v1/chat/completions", keys[i % 2], FLAT))

    # THEN exactly 5 are answered; the others get the rate-limit error naming the account
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 5 and statuses.count(429) == 15
    for response in (r for r in responses if r.status_code == 429):
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert "this account allows 5 requests per minute" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
    # AND nothing is held anywhere, and the account's minute says 5
    stored = account_store.get(account_id)
    assert stored is not None
    assert (stored.reserved_units, stored.in_flight) == (0, 0)
    assert list(stored.requests_by_minute.values()) == [5]
    for token in made.json()["data"]:
        held = token_store.get(token["id"])
        assert held is not None and held.reserved_units == 0


def _money_writes(account_id: str, token: dict[str, Any], capped: Any) -> Any:
    """One call's reservation against ``capped`` (the account's limit clauses)."""
    import secrets
    import time

    from chalicelib.core import keys
    from chalicelib.store import ledger

    r = ledger.Reservation(
        "req_" + secrets.token_hex(6), token["id"], account_id, 10, account_meters_tokens=True
    )
    check = ledger.KeyCheck(token["id"], keys.hash_key(token["key"]), 0, "default")
    return r, ledger.reserve(r, check, int(time.time()), capped)


def test_account_concurrency_and_tokens_per_minute_are_compared_with_the_stored_limits(
    ddb_local: Any,
    clock: Any,  # noqa: F811
) -> None:
    # GIVEN an account allowing 2 calls in flight and 100 tokens a minute, over two keys
    import time

    from chalicelib.core import limits, quota
    from chalicelib.services import management, schemas
    from chalicelib.store import ledger

    now = int(time.time())
    created = management.create_account(
        schemas.CreateAccount(name="acme", unlimited=True, max_concurrency=2, tpm_limit=100), now
    )
    account_id = created["account"]["id"]
    extra = management.create_tokens(account_id, schemas.CreateTokens(name="k"), now)
    tokens = [created["default_token"], extra["data"][0]]
    capped = ledger.AccountLimits(max_concurrency=2, tpm_limit=100)

    # WHEN three calls are held at once over the two keys
    held = [_money_writes(account_id, tokens[i % 2], capped) for i in range(3)]

    # THEN the third is refused by the account's concurrency limit, as a 429
    assert [refusal is None for _, refusal in held] == [True, True, False]
    refusal = held[2][1]
    assert refusal is not None and refusal.account_refused and not refusal.token_refused
    error = quota.account_refusal(refusal.account, "default", 10, now)
    assert error.status == 429 and "this account allows 2 calls in flight" in error.message

    # WHEN the two held calls settle with 60 tokens each, and one more call comes
    for reservation, _ in held[:2]:
        ledger.release(reservation, 10, tokens=60, now=now)
    _, after = _money_writes(account_id, tokens[0], capped)

    # THEN the account's minute holds 120 tokens, and the next call waits for the next minute
    stored = account_store.get(account_id)
    assert stored is not None and stored.tokens_by_minute == {limits.minute(now): 120}
    assert after is not None and after.account_refused
    assert quota.account_refusal(after.account, "default", 10, now).status == 429
