"""The relay over HTTP under real concurrency, on DynamoDB Local.

The app is served in-process by chalice's own local server (threaded, one request per thread,
``current_request`` thread-local), so the whole path runs: HTTP, key, reservation, upstream,
settle, log.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store

pytestmark = pytest.mark.ddb_local

FLAT = {"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}
FLAT_UNITS = 1000  # US$0.002


def _post(base: str, path: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _account(base: str, **fields: Any) -> dict[str, Any]:
    response = _post(base, "/admin/accounts", ADMIN_KEY, {"name": "acme", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _hammer(base: str, keys: list[str], calls: int, workers: int) -> list[int]:
    gate = threading.Event()

    def one(i: int) -> int:
        gate.wait(timeout=30)
        return _post(base, "/v1/chat/completions", keys[i % len(keys)], FLAT).status_code

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(one, i) for i in range(calls)]
        gate.set()
        return [f.result(timeout=300) for f in futures]


# Through the relay over HTTP, 32 at a time; the store's own races (tests/accounting) run 200
# calls on a key worth 50, so these stay small: they cost make test's time on every run.
def test_80_calls_on_a_key_worth_20_give_exactly_20_answers(server: str) -> None:
    # GIVEN a key whose quota pays for exactly 20 flat-priced calls
    created = _account(server, unlimited=True)
    mk = created["management_key"]
    made = _post(server, "/tokens", mk, {"name": "k", "quota_units": 20 * FLAT_UNITS})
    token = made.json()["data"][0]

    # WHEN 80 calls race on it, 32 at a time
    statuses = _hammer(server, [token["key"]], 80, workers=32)

    # THEN exactly 20 are answered, the rest get 429, and used == quota exactly
    assert statuses.count(200) == 20
    assert statuses.count(429) == 60
    stored = token_store.get(token["id"])
    assert stored is not None
    assert (stored.used_units, stored.remaining_units, stored.reserved_units) == (
        20 * FLAT_UNITS,
        0,
        0,
    )


def test_account_balance_holds_across_many_keys(server: str) -> None:
    created = _account(server, quota_units=20 * FLAT_UNITS)
    mk = created["management_key"]
    made = _post(server, "/tokens", mk, {"name": "k", "count": 10}).json()["data"]

    statuses = _hammer(server, [t["key"] for t in made], 80, workers=32)

    assert statuses.count(200) == 20 and statuses.count(429) == 60
    account = account_store.get(created["account"]["id"])
    assert account is not None
    assert (account.used_units, account.remaining_units, account.reserved_units) == (
        20 * FLAT_UNITS,
        0,
        0,
    )


def test_64_concurrent_clients_on_one_unlimited_key_all_succeed(server: str) -> None:
    created = _account(server, unlimited=True)
    key = created["default_token"]["key"]

    statuses = _hammer(server, [key], 64, workers=64)

    assert statuses == [200] * 64
    stored = token_store.get(created["default_token"]["id"])
    assert stored is not None
    assert stored.used_units == 64 * FLAT_UNITS and stored.reserved_units == 0
