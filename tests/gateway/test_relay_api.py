"""The relay through chalice's test client on moto: answers, charges, refunds, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import time_machine

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store import usage as usage_store
from chalicelib.store.models import Token, UsageRecord

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _setup(relay_api: Any, **token_fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    created = relay_api.new_account("acme", quota_usd="10")
    if not token_fields:
        return created, created["default_token"]
    status, body = relay_api.call(
        "POST", "/tokens", key=created["management_key"], body={"name": "k", **token_fields}
    )
    assert status == 201, body
    return created, body["data"][0]


def _spent(token_id: str, account_id: str) -> tuple[int, int, int, int]:
    token = token_store.get(token_id)
    account = account_store.get(account_id)
    assert token is not None and account is not None
    return token.used_units, token.reserved_units, account.used_units, account.reserved_units


def _records() -> list[Any]:
    return list(UsageRecord.scan())


def test_chat_completion_is_answered_and_charged_exactly(relay_api: Any) -> None:
    # GIVEN an account with US$10 and its default key
    created, token = _setup(relay_api)

    # WHEN the classic 'Hello!' chat body is sent with the key
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)

    # THEN the answer is an OpenAI chat completion with usage
    assert status == 200, body
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    usage = body["usage"]
    # AND the key and the account are charged the real cost, nothing stays reserved
    cost = -(-(usage["prompt_tokens"] * 15 + usage["completion_tokens"] * 60) // 200)
    # 0.15 / 0.60 USD per Mtok -> units = tokens * USD/Mtok * 0.5, rounded up
    assert _spent(token["id"], created["account"]["id"]) == (cost, 0, cost, 0)
    # AND one settled log record says what happened
    [record] = _records()
    assert (record.state, record.status, record.cost_units) == ("settled", "ok", cost)
    assert (record.prompt_tokens, record.completion_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )


def test_response_headers_carry_request_id_and_cost(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    response = relay_api.client.http.post(
        CHAT,
        headers={"Authorization": f"Bearer {token['key']}", "Content-Type": "application/json"},
        body=json.dumps(HELLO),
    )
    assert response.status_code == 200
    [record] = _records()
    assert response.headers["X-Request-Id"] == record.request_id
    assert int(response.headers["X-Sluice-Cost-Units"]) == record.cost_units


def test_stream_returns_a_complete_event_stream_and_charges_final_usage(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    response = relay_api.client.http.post(
        CHAT,
        headers={"Authorization": f"Bearer {token['key']}", "Content-Type": "application/json"},
        body=json.dumps({**HELLO, "stream": True}),
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    text = response.body.decode()
    assert text.rstrip().endswith("data: [DONE]")
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    # The client did not ask for usage: the usage-only chunk Sluice asked for is stripped.
    assert all(chunk.get("choices") for chunk in chunks)
    [record] = _records()
    assert record.stream is True and record.state == "settled" and record.cost_units > 0
    assert not record.usage_estimated


def test_stream_passes_usage_chunk_when_client_asked(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    body = {**HELLO, "stream": True, "stream_options": {"include_usage": True}}
    status, text = relay_api.call("POST", CHAT, key=token["key"], body=body)
    assert status == 200
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_embeddings_are_charged_for_input_only(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    status, body = relay_api.call(
        "POST",
        "/v1/embeddings",
        key=token["key"],
        body={"model": "text-embedding-3-small", "input": "hello world"},
    )
    assert status == 200, body
    assert body["data"][0]["object"] == "embedding"
    [record] = _records()
    assert record.completion_tokens == 0 and record.state == "settled"


def test_flat_priced_model_charges_its_price(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    status, _ = relay_api.call("POST", CHAT, key=token["key"], body={**HELLO, "model": "demo-flat"})
    assert status == 200
    assert _spent(token["id"], created["account"]["id"]) == (1000, 0, 1000, 0)


def test_models_lists_only_what_the_key_may_use(relay_api: Any) -> None:
    _created, token = _setup(relay_api, models=["gpt-4o-mini", "not-served"])
    status, body = relay_api.call("GET", "/v1/models", key=token["key"])
    assert status == 200
    assert [m["id"] for m in body["data"]] == ["gpt-4o-mini"]


def test_key_endpoint_shows_the_spend(relay_api: Any) -> None:
    _created, token = _setup(relay_api, quota_usd="1")
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    status, body = relay_api.call("GET", "/v1/key", key=token["key"])
    assert status == 200
    assert body["used_units"] > 0
    assert body["remaining_units"] == 500_000 - body["used_units"]
    assert "key" not in body


def test_billing_routes_report_quota_and_usage_like_one_api(relay_api: Any) -> None:
    _created, token = _setup(relay_api, quota_usd="2")
    relay_api.call("POST", CHAT, key=token["key"], body={**HELLO, "model": "demo-flat"})
    status, sub = relay_api.call("GET", "/v1/dashboard/billing/subscription", key=token["key"])
    assert status == 200 and sub["hard_limit_usd"] == 2.0
    status, use = relay_api.call("GET", "/v1/dashboard/billing/usage", key=token["key"])
    assert status == 200 and use["total_usage"] == pytest.approx(0.2)  # US$0.002 in cents


# Errors: the right status and code, and nothing charged ----------------------------------------
def _assert_nothing_charged(token: dict[str, Any], account_id: str) -> None:
    assert _spent(token["id"], account_id) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "invalid_api_key"),
        ({"Authorization": "sk-nobearer"}, "invalid_api_key"),
        ({"Authorization": "Bearer "}, "invalid_api_key"),
        ({"Authorization": "Bearer sk-" + "A" * 48}, "invalid_api_key"),
        ({"Authorization": "Bearer not-a-key"}, "invalid_api_key"),
    ],
)
def test_bad_credentials_are_401(relay_api: Any, headers: dict[str, str], code: str) -> None:
    created, token = _setup(relay_api)
    response = relay_api.client.http.post(
        CHAT, headers={"Content-Type": "application/json", **headers}, body=json.dumps(HELLO)
    )
    assert response.status_code == 401
    assert json.loads(response.body)["error"]["code"] == code
    _assert_nothing_charged(token, created["account"]["id"])


@pytest.mark.parametrize(
    ("raw", "param"),
    [
        (b"{bad json", None),
        (b"[]", None),
        (b'{"model": "gpt-4o-mini"}', "messages"),
        (b'{"model": "gpt-4o-mini", "messages": []}', "messages"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "gpt-4o-mini", "messages": "hi"}', "messages"),
        (
            b'{"model": "gpt-4o-mini", "messages": [{"role":"user"}], "max_tokens": "9"}',
            "max_tokens",
        ),
        (b'{"model": "gpt-4o-mini", "messages": [{"role":"user"}], "max_tokens": 0}', "max_tokens"),
        (b'{"model": "gpt-4o-mini", "messages": [{"role":"user"}], "stream": "yes"}', "stream"),
        (b'{"model": "gpt-4o-mini", "messages": [1]}', "messages.0"),
    ],
)
def test_bad_requests_are_400_and_charge_nothing(
    relay_api: Any, raw: bytes, param: str | None
) -> None:
    created, token = _setup(relay_api)
    status, body = relay_api.call("POST", CHAT, key=token["key"], raw=raw)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    _assert_nothing_charged(token, created["account"]["id"])
    assert _records() == []


def test_huge_body_is_413_and_charges_nothing(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    big = {**HELLO, "messages": [{"role": "user", "content": "x" * (5 * 1024 * 1024)}]}
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=big)
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"
    _assert_nothing_charged(token, created["account"]["id"])


def test_unknown_model_is_404_model_not_found(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    status, body = relay_api.call("POST", CHAT, key=token["key"], body={**HELLO, "model": "nope"})
    assert status == 404 and body["error"]["code"] == "model_not_found"
    _assert_nothing_charged(token, created["account"]["id"])


def test_model_outside_the_keys_list_is_403(relay_api: Any) -> None:
    created, token = _setup(relay_api, models=["gpt-4o"])
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 403 and body["error"]["code"] == "model_not_allowed"
    _assert_nothing_charged(token, created["account"]["id"])


def test_ip_outside_the_allow_list_is_403(relay_api: Any) -> None:
    created, token = _setup(relay_api, allow_ips=["10.0.0.0/8"])
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 403 and body["error"]["code"] == "ip_not_allowed"
    _assert_nothing_charged(token, created["account"]["id"])


def test_disabled_key_is_rejected_even_when_cached(relay_api: Any) -> None:
    # GIVEN a key that has just been used (its metadata is cached in the container)
    created, token = _setup(relay_api, quota_usd="1")
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    used_before = _spent(token["id"], created["account"]["id"])
    # WHEN it is disabled and used again at once
    mk = created["management_key"]
    assert (
        relay_api.call("PATCH", f"/tokens/{token['id']}", key=mk, body={"status": "disabled"})[0]
        == 200
    )
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    # THEN the very next request is refused and nothing more is charged
    assert status == 401 and body["error"]["code"] == "key_disabled"
    assert _spent(token["id"], created["account"]["id"]) == used_before


def test_regenerated_key_stops_the_old_one_at_once(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    mk = created["management_key"]
    status, new = relay_api.call("POST", f"/tokens/{token['id']}/regenerate", key=mk)
    assert status == 200
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 401
    assert relay_api.call("POST", CHAT, key=new["key"], body=HELLO)[0] == 200


def test_deleted_key_is_rejected_at_once(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    mk = created["management_key"]
    assert relay_api.call("DELETE", f"/tokens/{token['id']}", key=mk)[0] == 204
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 401 and body["error"]["code"] == "invalid_api_key"


def test_expired_key_is_401_key_expired(relay_api: Any) -> None:
    _created, token = _setup(relay_api, expires_in_days=1)
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    with time_machine.travel(token_store.get(token["id"]).expires_at + 1):  # type: ignore[union-attr]
        status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 401 and body["error"]["code"] == "key_expired"


def test_disabled_account_is_401_account_disabled(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    account_id = created["account"]["id"]
    assert (
        relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "disabled"})[0] == 200
    )
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 401 and body["error"]["code"] == "account_disabled"
    _assert_nothing_charged(token, account_id)


def test_exhausted_key_is_429_insufficient_quota_naming_the_key(relay_api: Any) -> None:
    created, token = _setup(relay_api, quota_units=1500)  # one flat call of 1000 fits
    flat = {**HELLO, "model": "demo-flat"}
    assert relay_api.call("POST", CHAT, key=token["key"], body=flat)[0] == 200
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=flat)
    assert status == 429
    assert body["error"]["type"] == "insufficient_quota"
    assert body["error"]["code"] == "key_quota_exhausted"
    assert _spent(token["id"], created["account"]["id"]) == (1000, 0, 1000, 0)
    statuses = sorted(r.status for r in _records())
    assert statuses == ["ok", "rejected"]


def test_exhausted_account_is_429_naming_the_account(relay_api: Any) -> None:
    created = relay_api.new_account("poor", quota_units=1500)
    token = created["default_token"]
    flat = {**HELLO, "model": "demo-flat"}
    assert relay_api.call("POST", CHAT, key=token["key"], body=flat)[0] == 200
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=flat)
    assert status == 429 and body["error"]["code"] == "account_quota_exhausted"


def test_output_is_capped_to_what_the_key_can_pay(relay_api: Any, upstream: Any) -> None:
    # GIVEN a key with 100 units left (enough for ~300 output tokens of gpt-4o-mini)
    _created, token = _setup(relay_api, quota_units=100)
    # WHEN the client sets no max_tokens
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    # THEN the upstream was asked for no more output than the key can pay for
    assert status == 200, body
    sent = upstream.last_body
    assert 0 < sent["max_tokens"] < 400
    stored = token_store.get(token["id"])
    assert stored is not None and 0 < stored.used_units <= 100


# Upstream failures: exact refunds ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "status", "stream"),
    [
        ("fail-500", 502, False),
        ("fail-timeout", 504, False),
        ("fail-reset", 502, False),
        ("fail-badjson", 502, False),
        ("fail-cut", 502, False),
    ],
)
def test_upstream_failure_refunds_everything(
    relay_api: Any, model: str, status: int, stream: bool
) -> None:
    created, token = _setup(relay_api, quota_usd="1")
    got, body = relay_api.call(
        "POST", CHAT, key=token["key"], body={**HELLO, "model": model, "stream": stream}
    )
    assert got == status, body
    assert body["error"]["type"] == "upstream_error"
    _assert_nothing_charged(token, created["account"]["id"])
    [record] = _records()
    assert (record.state, record.status, record.cost_units) == ("refunded", "upstream_error", 0)
    assert record.detail


def test_a_stream_cut_midway_ends_with_an_error_event_and_charges_what_was_delivered(
    relay_api: Any,
) -> None:
    # GIVEN a key, and an upstream that cuts its stream after the first events
    created, token = _setup(relay_api, quota_usd="1")
    # WHEN the client streams
    status, text = relay_api.call(
        "POST", CHAT, key=token["key"], body={**HELLO, "model": "fail-cut", "stream": True}
    )
    # THEN the stream had started (200) and ends with an OpenAI-shaped error event, then [DONE]
    assert status == 200
    data = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert json.loads(data[-2])["error"]["type"] == "upstream_error"
    # AND what was delivered is charged, estimated and flagged; nothing stays reserved
    [record] = _records()
    assert (record.state, record.status) == ("settled", "upstream_error")
    assert record.cost_units > 0 and record.usage_estimated
    used, reserved, account_used, account_reserved = _spent(token["id"], created["account"]["id"])
    assert (used, reserved, account_used, account_reserved) == (
        record.cost_units,
        0,
        record.cost_units,
        0,
    )


def test_missing_usage_is_estimated_and_flagged(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    status, _ = relay_api.call(
        "POST", CHAT, key=token["key"], body={**HELLO, "model": "fail-nousage"}
    )
    assert status == 200
    [record] = _records()
    assert record.usage_estimated is True and record.cost_units > 0


def test_logs_show_the_call_with_its_cost(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    status, body = relay_api.call("GET", "/logs", key=created["management_key"])
    assert status == 200
    [line] = body["data"]
    assert line["token_id"] == token["id"] and line["status"] == "ok" and line["cost_units"] > 0
    assert line["model"] == "gpt-4o-mini"
    status, usage = relay_api.call("GET", "/usage?group_by=model", key=created["management_key"])
    assert status == 200
    assert usage["data"][0]["key"] == "gpt-4o-mini" and usage["data"][0]["requests"] == 1


def test_logs_name_the_channel_only_to_the_admin(relay_api: Any) -> None:
    # GIVEN one relayed call, served by the channel named "demo"
    created, token = _setup(relay_api)
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    # WHEN the account reads its logs, and the admin reads the same account's logs
    _, tenant = relay_api.call("GET", "/logs", key=created["management_key"])
    _, admin = relay_api.admin("GET", f"/logs?account_id={created['account']['id']}")
    # THEN only the admin sees which channel answered
    [tenant_line], [admin_line] = tenant["data"], admin["data"]
    assert tenant_line["channel"] is None
    assert "demo" not in json.dumps(tenant_line)
    assert admin_line["channel"] == "demo"
    assert tenant_line["request_id"] == admin_line["request_id"]


def test_a_log_detail_naming_the_channel_is_hidden_from_the_tenant() -> None:
    # GIVEN a record whose detail names its channel (as an older release wrote them)
    from chalicelib.services import reports

    record = usage_store.Usage(
        request_id="req_1",
        account_id="a",
        token_id="t",
        token_name="k",
        created_ms=0,
        model="m",
        channel="partner",
        detail="channel 'partner' answered HTTP 401",
    )
    # WHEN it is shown to the tenant and to the admin
    tenant = reports.log_json(record, show_channel=False)
    admin = reports.log_json(record, show_channel=True)
    # THEN the tenant's copy names no channel, the admin's is untouched
    assert tenant["channel"] is None and "partner" not in json.dumps(tenant)
    assert tenant["detail"] == "channel 'the upstream provider' answered HTTP 401"
    assert admin["channel"] == "partner" and admin["detail"] == record.detail


def test_a_502_message_names_no_channel(relay_api: Any) -> None:
    # GIVEN a key  WHEN its call fails upstream on every channel
    created, token = _setup(relay_api)
    status, body = relay_api.call(
        "POST", CHAT, key=token["key"], body={**HELLO, "model": "fail-500"}
    )
    # THEN the tenant reads about "the upstream provider", never a channel's name
    assert status == 502, body
    assert "the upstream provider" in body["error"]["message"].lower()
    assert "faults" not in body["error"]["message"] and "demo" not in body["error"]["message"]
    # AND its logs do not name the channel either
    _, logs = relay_api.call("GET", "/logs", key=created["management_key"])
    assert "faults" not in json.dumps(logs)


def test_another_accounts_logs_are_not_visible(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    other = relay_api.new_account("other")
    status, body = relay_api.call("GET", "/logs", key=other["management_key"])
    assert status == 200 and body["data"] == []
    status, _ = relay_api.call(
        "GET", f"/logs?account_id={created['account']['id']}", key=other["management_key"]
    )
    assert status == 200  # the parameter is ignored for a management key: still its own logs


def test_sweeper_refunds_a_reservation_left_by_a_crash_once(relay_api: Any) -> None:
    # GIVEN a reservation whose process died before settling (simulated at the store level)
    import time

    from chalicelib.core import keys
    from chalicelib.services import sweeper
    from chalicelib.store import ledger

    created, token = _setup(relay_api, quota_units=10_000)
    now = int(time.time())
    reservation = ledger.Reservation(
        "req_crashed", token["id"], created["account"]["id"], 4000, "gpt-4o-mini"
    )
    assert (
        ledger.reserve(
            reservation,
            ledger.KeyCheck(reservation.token_id, keys.hash_key(token["key"]), 0, "default"),
            now,
        )
        is None
    )
    assert token_store.get(token["id"]).remaining_units == 6000  # type: ignore[union-attr]

    # WHEN the sweeper runs before the reservation is stale, then after, then again
    early = sweeper.sweep(now + 10)
    late = sweeper.sweep(now + 961)
    again = sweeper.sweep(now + 2000)

    # THEN it is refunded exactly once, on the key and on the account
    assert (early.refunded, late.refunded, again.refunded) == (0, 2, 0)
    stored = token_store.get(token["id"])
    assert stored is not None
    assert (stored.remaining_units, stored.reserved_units, stored.used_units) == (10_000, 0, 0)
    record = usage_store.get("req_crashed")
    assert record is not None
    assert (record.state, record.token_name, record.model, record.reserved_units) == (
        "refunded",
        "k",
        "gpt-4o-mini",
        4000,
    )


def test_exhausted_daily_key_works_again_after_midnight_before_the_job_runs(
    relay_api: Any,
) -> None:
    # GIVEN a daily key worth one flat call, spent at 10:00 UTC
    flat = {**HELLO, "model": "demo-flat"}
    with time_machine.travel("2027-03-01T10:00:00Z", tick=True):
        _created, token = _setup(relay_api, quota_units=1000, reset_period="daily")
        assert relay_api.call("POST", CHAT, key=token["key"], body=flat)[0] == 200
        assert relay_api.call("POST", CHAT, key=token["key"], body=flat)[0] == 429

    # WHEN it is used again after midnight UTC, before any scheduled reset ran
    with time_machine.travel("2027-03-02T00:05:00Z", tick=True):
        status, body = relay_api.call("POST", CHAT, key=token["key"], body=flat)
        _, shown = relay_api.call("GET", "/v1/key", key=token["key"])

    # THEN the request resets the key itself and is served; the new period holds this call only
    assert status == 200, body
    assert shown["used_units"] == 1000 and shown["total_used_units"] == 2000
    assert shown["next_reset_at"] == "2027-03-03T00:00:00Z"


@pytest.mark.parametrize("path", ["/nope", "/v1/nope/deeper", "/v1/chat/completions/extra"])
def test_unknown_paths_are_404_and_never_quote_the_key(relay_api: Any, path: str) -> None:
    _created, token = _setup(relay_api)
    for method in ("GET", "POST"):
        status, body = relay_api.call(method, path, key=token["key"], body={})
        assert status == 404, body
        assert body["error"]["code"] == "not_found"
        assert token["key"] not in json.dumps(body)


def test_no_prompt_or_answer_is_stored_by_default(relay_api: Any) -> None:
    _created, token = _setup(relay_api)
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    [record] = _records()
    assert record.content is None


def test_operator_can_enable_storing_prompt_and_answer(
    relay_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core.settings import reset_settings

    monkeypatch.setenv("SLUICE_STORE_CONTENT", "1")
    reset_settings()
    _created, token = _setup(relay_api)
    relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    [record] = _records()
    stored = json.loads(record.content)
    assert stored["request"] == HELLO["messages"]
    assert "Hello from the Sluice demo upstream" in stored["response"]


def test_usage_until_now_with_milliseconds_includes_a_call_made_this_second(
    relay_api: Any,
) -> None:
    # GIVEN a call made at 12:00:00.200
    with time_machine.travel("2027-04-01T12:00:00.200Z", tick=False):
        created, token = _setup(relay_api)
        assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    mk = created["management_key"]
    # WHEN the console asks for usage and logs up to 12:00:00.900 (its "now")
    with time_machine.travel("2027-04-01T12:00:00.900Z", tick=False):
        query = "start=2027-04-01T00:00:00.000Z&end=2027-04-01T12:00:00.900Z"
        _, usage = relay_api.call("GET", f"/usage?group_by=day&{query}", key=mk)
        _, logs = relay_api.call("GET", f"/logs?{query}", key=mk)
    # THEN the call is counted, though the range ends within the same second
    assert usage["data"][0]["requests"] == 1
    assert len(logs["data"]) == 1


def _disable(relay_api: Any, created: dict[str, Any], token: dict[str, Any]) -> None:
    mk = created["management_key"]
    path = f"/tokens/{token['id']}"
    assert relay_api.call("PATCH", path, key=mk, body={"status": "disabled"})[0] == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CHAT, {"model": "gpt-4o-mini"}),  # no messages: a 400 for a usable key
        (CHAT, {**HELLO, "model": "no-such-model"}),  # a 404 for a usable key
        (CHAT, "{not json"),  # a 400 for a usable key
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "hi"}),  # not allowed
    ],
)
def test_a_disabled_key_is_told_it_is_disabled_whatever_else_is_wrong(
    relay_api: Any, path: str, body: Any
) -> None:
    # GIVEN a key limited to one model, then disabled
    created, token = _setup(relay_api, models=["gpt-4o-mini"])
    _disable(relay_api, created, token)
    # WHEN it sends a request that is also wrong in another way
    status, answer = relay_api.call("POST", path, key=token["key"], body=body)
    # THEN the answer is the key's own state (an SDK raises AuthenticationError), nothing charged
    assert status == 401 and answer["error"]["code"] == "key_disabled", answer
    _assert_nothing_charged(token, created["account"]["id"])
    # AND the owner sees the refused call in the key's log, with why
    [refused] = [r for r in _records() if r.token_id == token["id"]]
    assert (refused.state, refused.detail) == ("rejected", "key_disabled")


def test_a_disabled_key_from_a_refused_ip_learns_only_that_its_ip_is_refused(
    relay_api: Any,
) -> None:
    created, token = _setup(relay_api, allow_ips=["10.0.0.0/8"])
    _disable(relay_api, created, token)
    for method, path, body in (("POST", CHAT, HELLO), ("GET", "/v1/models", None)):
        status, answer = relay_api.call(method, path, key=token["key"], body=body)
        assert status == 403 and answer["error"]["code"] == "ip_not_allowed", (path, answer)


def test_the_model_list_refuses_a_disabled_key(relay_api: Any) -> None:
    created, token = _setup(relay_api)
    assert relay_api.call("GET", "/v1/models", key=token["key"])[0] == 200
    _disable(relay_api, created, token)
    status, body = relay_api.call("GET", "/v1/models", key=token["key"])
    assert status == 401 and body["error"]["code"] == "key_disabled"


def test_the_model_list_refuses_an_expired_key_and_a_disabled_account(relay_api: Any) -> None:
    created, token = _setup(relay_api, expires_in_days=1)
    with time_machine.travel(token_store.get(token["id"]).expires_at + 1):  # type: ignore[union-attr]
        status, body = relay_api.call("GET", "/v1/models", key=token["key"])
    assert status == 401 and body["error"]["code"] == "key_expired"
    account_id = created["account"]["id"]
    assert (
        relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "disabled"})[0] == 200
    )
    status, body = relay_api.call("GET", "/v1/models", key=created["default_token"]["key"])
    assert status == 401 and body["error"]["code"] == "account_disabled"


def test_a_disabled_key_still_reads_its_own_state(relay_api: Any) -> None:
    # /v1/key and the billing routes answer for a disabled key: they are how its owner sees why
    created, token = _setup(relay_api)
    _disable(relay_api, created, token)
    status, body = relay_api.call("GET", "/v1/key", key=token["key"])
    assert status == 200 and body["status"] == "disabled", body


def test_one_model_is_retrieved_by_its_id(relay_api: Any) -> None:
    _created, token = _setup(relay_api, models=["gpt-4o-mini"])
    status, body = relay_api.call("GET", "/v1/models/gpt-4o-mini", key=token["key"])
    assert status == 200, body
    assert (body["id"], body["object"]) == ("gpt-4o-mini", "model")
    [listed] = relay_api.call("GET", "/v1/models", key=token["key"])[1]["data"]
    assert body == listed
    # a model the key may not use, or nobody serves, is a 404 like OpenAI's
    for other in ("gpt-4o", "no-such-model"):
        status, body = relay_api.call("GET", f"/v1/models/{other}", key=token["key"])
        assert status == 404 and body["error"]["code"] == "model_not_found", body
        assert body["error"]["param"] == "model"
    assert relay_api.call("GET", "/v1/models/gpt-4o-mini", key="sk-nope")[0] == 401


def test_billing_usage_is_the_exact_decimal_in_cents(relay_api: Any) -> None:
    # 19 units are US$0.000038, 0.0038 cents: computed in floats, 0.0038000000000000004
    _created, token = _setup(relay_api, quota_usd="2")
    Token(token["id"]).update(actions=[Token.used_units.set(19)])
    status, use = relay_api.call("GET", "/v1/dashboard/billing/usage", key=token["key"])
    assert status == 200 and use["total_usage"] == 0.0038, use
