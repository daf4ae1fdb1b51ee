"""The ledger under real concurrency, on DynamoDB Local (moto is not thread-safe).

GIVEN a key or an account that can pay for exactly N calls, WHEN many threads reserve and settle
at once, THEN exactly N succeed, the counters add up to the unit, and nothing stays reserved.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.core import keys
from chalicelib.services import management, schemas
from chalicelib.store import accounts as account_store
from chalicelib.store import ledger
from chalicelib.store import tokens as token_store

pytestmark = pytest.mark.ddb_local

PRICE = 1_000  # units per flat-priced call


def _account(quota_units: int | None) -> dict[str, Any]:
    fields: dict[str, Any] = {"name": "acme"}
    if quota_units is None:
        fields["unlimited"] = True
    else:
        fields["quota_units"] = quota_units
    return management.create_account(schemas.CreateAccount.model_validate(fields), int(time.time()))


def _tokens(account_id: str, count: int, quota_units: int | None) -> list[dict[str, Any]]:
    fields: dict[str, Any] = {"name": "k", "count": count}
    if quota_units is not None:
        fields["quota_units"] = quota_units
    body = schemas.CreateTokens.model_validate(fields)
    return management.create_tokens(account_id, body, int(time.time()))["data"]


def _call(token: dict[str, Any], gate: threading.Event) -> bool:
    """Reserve one flat price and settle it in full, as a relayed call would."""
    reservation = ledger.Reservation(
        f"req_{uuid.uuid4().hex}", token["id"], token["account_id"], PRICE
    )
    gate.wait(timeout=30)
    refusal = ledger.reserve(
        reservation,
        ledger.KeyCheck(reservation.token_id, keys.hash_key(token["key"]), 0, "default"),
        int(time.time()),
    )
    if refusal is not None:
        return False
    ledger.release(reservation, PRICE)
    return True


def _run(tokens: list[dict[str, Any]], calls: int) -> list[bool]:
    gate = threading.Event()
    with ThreadPoolExecutor(max_workers=64) as pool:
        futures = [pool.submit(_call, tokens[i % len(tokens)], gate) for i in range(calls)]
        gate.set()  # release them together
        return [f.result(timeout=120) for f in futures]


def test_key_that_pays_for_50_calls_gets_exactly_50_of_200(ddb_local: Any) -> None:
    # GIVEN an unlimited account and a key whose quota pays for exactly 50 calls
    created = _account(None)
    token = _tokens(created["account"]["id"], 1, 50 * PRICE)[0]

    # WHEN 200 calls race on it
    results = _run([token], 200)

    # THEN exactly 50 succeed and the key is spent to the unit, with nothing left reserved
    assert results.count(True) == 50
    stored = token_store.get(token["id"])
    assert stored is not None
    assert stored.used_units == 50 * PRICE
    assert stored.total_used_units == 50 * PRICE
    assert stored.remaining_units == 0
    assert stored.reserved_units == 0


def test_account_balance_caps_many_keys_together(ddb_local: Any) -> None:
    # GIVEN an account whose balance pays for exactly 50 calls, and 8 unlimited keys
    created = _account(50 * PRICE)
    account_id = created["account"]["id"]
    tokens = _tokens(account_id, 8, None)

    # WHEN 200 calls race across the keys
    results = _run(tokens, 200)

    # THEN exactly 50 succeed in total and the account is spent to the unit
    assert results.count(True) == 50
    account = account_store.get(account_id)
    assert account is not None
    assert (account.used_units, account.remaining_units, account.reserved_units) == (
        50 * PRICE,
        0,
        0,
    )
    per_key = [token_store.get(t["id"]) for t in tokens]
    assert sum(t.used_units for t in per_key if t) == 50 * PRICE
    assert all(t is not None and t.reserved_units == 0 for t in per_key)


def test_64_clients_on_one_unlimited_key_all_succeed(ddb_local: Any) -> None:
    # GIVEN an unlimited account and an unlimited key
    created = _account(None)
    token = created["default_token"]

    # WHEN 64 clients call at once, twice each
    results = _run([token], 128)

    # THEN every call succeeds and every charge is counted exactly once
    assert all(results)
    stored = token_store.get(token["id"])
    assert stored is not None
    assert stored.used_units == 128 * PRICE
    assert stored.reserved_units == 0
