"""Rate-limit answers and headers through chalice's test client on moto (one call at a time;
the exact totals under concurrency are in test_rate_limits.py, on DynamoDB Local)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import time_machine

from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
HELLO_TOKENS = 19
AT = datetime(2027, 3, 2, 12, 30, 15, tzinfo=UTC)  # 45 s before the next minute


def _key(relay_api: Any, **limits: Any) -> dict[str, Any]:
    created = relay_api.new_account("acme", quota_usd="10")
    status, body = relay_api.call(
        "POST", "/tokens", key=created["management_key"], body={"name": "k", **limits}
    )
    assert status == 201, body
    return dict(body["data"][0])


def _chat(relay_api: Any, key: str) -> Any:
    return relay_api.client.http.post(
        CHAT,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        body=json.dumps(HELLO),
    )


def test_a_call_within_its_limits_carries_the_rate_limit_headers(relay_api: Any) -> None:
    with time_machine.travel(AT, tick=False):
        token = _key(relay_api, rpm_limit=3, tpm_limit=1000, max_concurrency=2)
        response = _chat(relay_api, token["key"])

    assert response.status_code == 200
    assert {name: response.headers[name] for name in response.headers if "ratelimit" in name} == {
        "x-ratelimit-limit-requests": "3",
        "x-ratelimit-remaining-requests": "2",
        "x-ratelimit-reset-requests": "45s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": str(1000 - HELLO_TOKENS),
        "x-ratelimit-reset-tokens": "45s",
    }
    stored = token_store.get(token["id"])
    assert stored is not None
    minute = int(AT.timestamp()) // 60
    assert stored.requests_by_minute == {minute: 1}
    assert stored.tokens_by_minute == {minute: HELLO_TOKENS}


def test_a_key_without_limits_sends_no_rate_limit_headers(relay_api: Any) -> None:
    token = _key(relay_api)
    response = _chat(relay_api, token["key"])
    assert response.status_code == 200
    assert not [name for name in response.headers if "ratelimit" in name.lower()]


def test_a_refused_call_is_a_retryable_429_distinct_from_exhausted_quota(relay_api: Any) -> None:
    # GIVEN a key allowing one request a minute, used
    with time_machine.travel(AT, tick=False):
        token = _key(relay_api, rpm_limit=1)
        assert _chat(relay_api, token["key"]).status_code == 200

        # WHEN it calls again in the same minute
        response = _chat(relay_api, token["key"])

    # THEN 429 rate_limit_exceeded (not insufficient_quota) with Retry-After to the next minute
    assert response.status_code == 429
    error = json.loads(response.body)["error"]
    assert error == {
        "message": "Rate limit reached for requests: this key allows 1 requests per minute "
        "(rpm_limit, fixed UTC minutes).",
        "type": "requests",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert response.headers["Retry-After"] == "45"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"] == "45s"
    # AND the refused call held nothing and is logged as rejected for its reason
    stored = token_store.get(token["id"])
    assert stored is not None and (stored.reserved_units, stored.in_flight) == (0, 0)
    details = sorted(str(r.detail) for r in UsageRecord.scan() if r.state == "rejected")
    assert details == ["rate_limit_exceeded"]


def test_a_call_the_account_refuses_does_not_count_in_the_keys_minute(relay_api: Any) -> None:
    # GIVEN a key allowing 1 request a minute, on an account too poor for one flat call
    flat = {"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}
    with time_machine.travel(AT, tick=False):
        created = relay_api.new_account("poor", quota_units=500)
        status, body = relay_api.call(
            "POST", "/tokens", key=created["management_key"], body={"name": "k", "rpm_limit": 1}
        )
        assert status == 201, body
        token = body["data"][0]

        # WHEN the account refuses a call (after the key's half of the reservation landed)
        refused = relay_api.call("POST", CHAT, key=token["key"], body=flat)

        # THEN the key's minute does not count it: once credited, the next call passes
        assert refused[0] == 429 and refused[1]["error"]["code"] == "account_quota_exhausted"
        stored = token_store.get(token["id"])
        assert stored is not None and stored.requests_by_minute == {int(AT.timestamp()) // 60: 0}
        credit = f"/admin/accounts/{created['account']['id']}/credit"
        assert relay_api.admin("POST", credit, {"quota_units": 1000})[0] == 200
        assert relay_api.call("POST", CHAT, key=token["key"], body=flat)[0] == 200
