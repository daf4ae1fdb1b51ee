"""A key's rate limits under real concurrency, over HTTP, on DynamoDB Local.

Each limit is a clause of the reservation's own conditional write, so the totals are exact.
Minute windows are fixed UTC minutes: the clock is moved to the start of a minute (and keeps
ticking), so no test can straddle a window boundary.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import pytest
import time_machine
from support import ADMIN_KEY

from chalicelib.store import tokens as token_store
from devtools.mock_upstream import MockUpstream

pytestmark = pytest.mark.ddb_local

MINUTE_START = datetime(2027, 3, 2, 12, 30, 1, tzinfo=UTC)
FLAT = {"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
HELLO_TOKENS = 19  # the demo upstream's prompt (5) + completion (14) tokens for HELLO


@pytest.fixture
def clock() -> Any:
    with time_machine.travel(MINUTE_START, tick=True) as traveller:
        yield traveller


def _post(base: str, path: str, key: str, body: Any) -> httpx.Response:
    return httpx.post(
        base + path, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60
    )


def _key(server: str, **limits: Any) -> dict[str, Any]:
    account = _post(server, "/admin/accounts", ADMIN_KEY, {"name": "acme", "unlimited": True})
    assert account.status_code == 201, account.text
    mk = account.json()["management_key"]
    made = _post(server, "/tokens", mk, {"name": "limited", **limits})
    assert made.status_code == 201, made.text
    return dict(made.json()["data"][0])


def _together(calls: int, one: Any) -> list[httpx.Response]:
    gate = threading.Event()

    def started(i: int) -> httpx.Response:
        gate.wait(timeout=30)
        return one(i)

    with ThreadPoolExecutor(max_workers=calls) as pool:
        futures = [pool.submit(started, i) for i in range(calls)]
        gate.set()
        return [f.result(timeout=120) for f in futures]


def test_20_simultaneous_calls_on_a_key_allowing_5_a_minute_give_exactly_5(
    server: str, clock: Any
) -> None:
    # GIVEN a key allowing 5 requests a minute, at the start of a minute
    token = _key(server, rpm_limit=5)

    # WHEN 20 calls race on it
    responses = _together(20, lambda _: _post(server, "/v1/chat/completions", token["key"], FLAT))

    # THEN exactly 5 are answered; 15 get the OpenAI rate-limit error with its headers
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 5 and statuses.count(429) == 15
    refused = [r for r in responses if r.status_code == 429]
    for response in refused:
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
        assert "5 requests per minute" in error["message"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert response.headers["x-ratelimit-limit-requests"] == "5"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    # AND each answered call saw a distinct remaining count: the counter is exact
    remaining = sorted(
        int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200
    )
    assert remaining == [0, 1, 2, 3, 4]
    # AND nothing is held; refused calls cost nothing; the minute's counter says 5
    stored = token_store.get(token["id"])
    assert stored is not None
    assert (stored.reserved_units, stored.in_flight) == (0, 0)
    assert list(stored.requests_by_minute.values()) == [5]


def test_the_next_minute_opens_a_new_window_and_drops_the_old_one(server: str, clock: Any) -> None:
    # GIVEN a key that used its 2 requests in this minute
    token = _key(server, rpm_limit=2)
    for _ in range(2):
        assert _post(server, "/v1/chat/completions", token["key"], FLAT).status_code == 200
    assert _post(server, "/v1/chat/completions", token["key"], FLAT).status_code == 429

    # WHEN the next minute starts
    clock.shift(60)
    response = _post(server, "/v1/chat/completions", token["key"], FLAT)

    # THEN the call passes, and the key's counters hold only the new minute
    assert response.status_code == 200, response.text
    assert response.headers["x-ratelimit-remaining-requests"] == "1"
    stored = token_store.get(token["id"])
    assert stored is not None
    assert list(stored.requests_by_minute.values()) == [1]


def test_only_3_of_10_slow_calls_reach_the_provider_with_max_concurrency_3(
    server: str, relay_local: MockUpstream
) -> None:
    # GIVEN a key allowing 3 calls in flight, and a provider that holds every call
    token = _key(server, max_concurrency=3)
    relay_local.reset()
    release = relay_local.hold_calls()

    # WHEN 10 calls start together
    with ThreadPoolExecutor(max_workers=10) as pool:
        futures = [
            pool.submit(_post, server, "/v1/chat/completions", token["key"], FLAT)
            for _ in range(10)
        ]
        # THEN 7 are refused while 3 are in flight, and exactly 3 reached the provider
        refused = []
        for future in as_completed(futures, timeout=60):
            refused.append(future.result())
            if len(refused) == 7:
                break
        assert relay_local.wait_for_requests(3, timeout=30)
        assert [r.status_code for r in refused] == [429] * 7
        for response in refused:
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
            assert "max_concurrency" in error["message"]
            assert response.headers["retry-after"] == "1"
        stored = token_store.get(token["id"])
        assert stored is not None and stored.in_flight == 3
        # AND once the provider answers, the 3 succeed and free their slots
        release.set()
        everything = [f.result(timeout=60) for f in futures]
    answered = [r for r in everything if all(r is not seen for seen in refused)]
    assert [r.status_code for r in answered] == [200] * 3
    assert relay_local.requests == 3
    stored = token_store.get(token["id"])
    assert stored is not None and (stored.in_flight, stored.reserved_units) == (0, 0)


def test_tokens_per_minute_refuse_once_the_minutes_total_is_reached(
    server: str, clock: Any
) -> None:
    # GIVEN a key allowing 30 tokens a minute (a HELLO call uses 19)
    token = _key(server, tpm_limit=30)

    # WHEN it calls three times in the same minute
    first = _post(server, "/v1/chat/completions", token["key"], HELLO)
    second = _post(server, "/v1/chat/completions", token["key"], HELLO)
    third = _post(server, "/v1/chat/completions", token["key"], HELLO)

    # THEN the first two pass (19 < 30 when the second starts), and the third is refused for
    # tokens: the minute's total, 38, is at the limit or above
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert first.headers["x-ratelimit-limit-tokens"] == "30"
    assert first.headers["x-ratelimit-remaining-tokens"] == str(30 - HELLO_TOKENS)
    assert second.headers["x-ratelimit-remaining-tokens"] == "0"
    assert "x-ratelimit-limit-requests" not in first.headers
    error = third.json()["error"]
    assert (error["type"], error["code"]) == ("tokens", "rate_limit_exceeded")
    assert "30 tokens per minute" in error["message"]
    assert third.headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    stored = token_store.get(token["id"])
    assert stored is not None
    assert list(stored.tokens_by_minute.values()) == [2 * HELLO_TOKENS]

    # AND the next minute lets it call again
    clock.shift(60)
    assert _post(server, "/v1/chat/completions", token["key"], HELLO).status_code == 200


def test_an_edited_limit_applies_to_the_very_next_call(server: str, clock: Any) -> None:
    # GIVEN a key without limits, used once (its copy is cached)
    account = _post(server, "/admin/accounts", ADMIN_KEY, {"name": "a", "unlimited": True}).json()
    mk, token = account["management_key"], account["default_token"]
    assert _post(server, "/v1/chat/completions", token["key"], FLAT).status_code == 200

    # WHEN its owner limits it to 1 request a minute
    edited = httpx.patch(
        f"{server}/tokens/{token['id']}",
        json={"rpm_limit": 1},
        headers={"Authorization": f"Bearer {mk}"},
    )
    assert edited.status_code == 200, edited.text

    # THEN the next call counts (the cached copy's revision is stale) and the one after is refused
    assert _post(server, "/v1/chat/completions", token["key"], FLAT).status_code == 200
    assert _post(server, "/v1/chat/completions", token["key"], FLAT).status_code == 429


def test_the_openai_sdk_raises_rate_limit_error_with_the_headers(server: str, clock: Any) -> None:
    # GIVEN a key allowing one request a minute, already used
    token = _key(server, rpm_limit=1, tpm_limit=10_000)
    sdk = openai.OpenAI(base_url=f"{server}/v1", api_key=token["key"], max_retries=0, timeout=30)
    sdk.chat.completions.create(**HELLO)

    # WHEN it calls again
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(**HELLO)

    # THEN the SDK's RateLimitError carries the code and the headers its retry honours
    assert limited.value.code == "rate_limit_exceeded"
    assert limited.value.type == "requests"
    headers = limited.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-limit-requests"] == "1"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-limit-tokens"] == "10000"
    assert headers["x-ratelimit-remaining-tokens"] == str(10_000 - HELLO_TOKENS)


def test_calls_the_account_refuses_are_taken_back_out_of_the_keys_minute(
    server: str, clock: Any
) -> None:
    # GIVEN a key allowing 2 requests a minute, on an account that pays for one flat call
    account = _post(server, "/admin/accounts", ADMIN_KEY, {"name": "a", "quota_units": 1000})
    mk = account.json()["management_key"]
    made = _post(server, "/tokens", mk, {"name": "k", "rpm_limit": 2})
    token = made.json()["data"][0]

    # WHEN 10 calls race: the account can pay for one, the key's minute allows two
    statuses = [
        r.status_code
        for r in _together(10, lambda _: _post(server, "/v1/chat/completions", token["key"], FLAT))
    ]

    # THEN at most one is answered (the two halves of a reservation run side by side, so a
    # refusal held for an instant on one item can turn away the call the other would take:
    # never more), and the key's minute counts exactly the answered calls
    answered = statuses.count(200)
    assert answered <= 1 and statuses.count(429) == 10 - answered
    stored = token_store.get(token["id"])
    assert stored is not None
    assert list(stored.requests_by_minute.values()) == [answered]
    assert (stored.reserved_units, stored.in_flight) == (0, 0)
