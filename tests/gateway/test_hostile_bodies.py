"""Hostile relay bodies: an OpenAI-shaped 4xx naming the param, nothing reserved, nothing logged.

Deep nesting, lone surrogates and integers no provider accepts used to reach the JSON parser's
recursion limit, the upstream body's UTF-8 encoder or DynamoDB's number type, i.e. a 5xx after a
reservation had been made (or no answer at all).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
USER = '[{"role":"user","content":"hi"}]'


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _account(relay_api: Any, **fields: Any) -> tuple[str, dict[str, Any]]:
    created = relay_api.new_account("acme", **(fields or {"quota_usd": "10"}))
    return created["account"]["id"], created["default_token"]


def _assert_refused(
    relay_api: Any, path: str, raw: bytes, param: str | None, **account: Any
) -> dict[str, Any]:
    # GIVEN an account and its key
    account_id, token = _account(relay_api, **account)
    # WHEN the hostile body is sent
    status, body = relay_api.call("POST", path, key=token["key"], raw=raw)
    # THEN a 400 in the OpenAI shape, naming the param
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param
    # AND nothing was reserved, charged or logged
    stored_token = token_store.get(token["id"])
    stored_account = account_store.get(account_id)
    assert stored_token is not None and stored_account is not None
    assert (stored_token.used_units, stored_token.reserved_units) == (0, 0)
    assert (stored_account.used_units, stored_account.reserved_units) == (0, 0)
    assert list(UsageRecord.scan()) == []
    return dict(body["error"])


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        (
            CHAT,
            '{"model":"gpt-4o-mini","messages":[{"role":"user","content":' + _deep(10_000) + "}]}",
        ),
        (CHAT, '{"model":"gpt-4o-mini","messages":' + USER + ',"metadata":' + _deep(10_000) + "}"),
        (EMBEDDINGS, '{"model":"text-embedding-3-small","input":' + _deep(10_000) + "}"),
        (EMBEDDINGS, "[" * 10_000),  # not even closed
    ],
)
def test_deeply_nested_body_is_400_and_reserves_nothing(
    relay_api: Any, path: str, raw: str
) -> None:
    _assert_refused(relay_api, path, raw.encode(), None)


def test_lone_surrogate_in_content_is_400_naming_the_field(relay_api: Any) -> None:
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"a\\ud800b"}]}'
    error = _assert_refused(relay_api, CHAT, raw, "messages.0.content")
    assert "\ud800" not in error["message"]


def test_lone_surrogate_in_an_object_key_is_400(relay_api: Any) -> None:
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x","\\udfff":1}]}'
    _assert_refused(relay_api, CHAT, raw, "messages.0")


def test_lone_surrogate_in_embeddings_input_is_400(relay_api: Any) -> None:
    raw = b'{"model":"text-embedding-3-small","input":["ok","\\udc00"]}'
    _assert_refused(relay_api, EMBEDDINGS, raw, "input.1")


def test_a_surrogate_pair_is_a_character_not_an_error(relay_api: Any) -> None:
    # GIVEN a valid escaped pair (an emoji), which is fine JSON and fine UTF-8
    _account_id, token = _account(relay_api)
    raw = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud83d\\ude00"}]}'
    # WHEN it is sent  THEN it is relayed
    status, body = relay_api.call("POST", CHAT, key=token["key"], raw=raw)
    assert status == 200, body


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_tokens", "1e45"),
        ("max_tokens", str(10**40)),
        ("max_completion_tokens", str(10**40)),
        ("max_tokens", "1000001"),
        ("max_tokens", "1.5"),
    ],
)
def test_output_limits_beyond_any_provider_are_400_on_an_unlimited_account(
    relay_api: Any, field: str, value: str
) -> None:
    raw = f'{{"model":"gpt-4o-mini","messages":{USER},"{field}":{value}}}'.encode()
    _assert_refused(relay_api, CHAT, raw, field, unlimited=True)


def test_n_as_a_huge_integer_is_400(relay_api: Any) -> None:
    raw = f'{{"model":"gpt-4o-mini","messages":{USER},"n":{10**40}}}'.encode()
    _assert_refused(relay_api, CHAT, raw, "n", unlimited=True)


@pytest.mark.ddb_local
def test_lone_surrogate_in_model_gets_an_answer_over_http(server: str) -> None:
    # GIVEN the app served over HTTP like `make run`, and a key
    with httpx.Client(base_url=server, trust_env=False, timeout=10) as http:
        created = http.post(
            "/admin/accounts",
            json={"name": "acme", "unlimited": True},
            headers={"Authorization": "Bearer " + _admin_key()},
        ).json()
        key = created["default_token"]["key"]
        # WHEN the model name is a lone surrogate (which the error message used to echo)
        response = http.post(
            CHAT,
            content=b'{"model":"gpt\\ud800","messages":[{"role":"user","content":"x"}]}',
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
    # THEN an answer arrives: a 400 naming the model, in the OpenAI shape
    assert response.status_code == 400, response.text
    assert json.loads(response.content)["error"]["param"] == "model"


def _admin_key() -> str:
    from support import ADMIN_KEY

    return ADMIN_KEY


def test_an_encoded_newline_in_a_relay_path_is_an_openai_shaped_404(relay_api: Any) -> None:
    # GIVEN a key  WHEN ids with an encoded newline are asked for (the framework's own routing
    # stopped at the newline and answered a plain-text 404 of its own)
    key = relay_api.new_account("nl", quota_usd="1")["default_token"]["key"]
    for path in ("/v1/responses/a%0Ab", "/v1/conversations/a%0Ab/items", "/v1/videos/a%0A"):
        status, body = relay_api.call("GET", path, key=key)

        # THEN each is our 404, in OpenAI's shape
        assert status == 404 and body["error"]["type"] == "invalid_request_error", (path, body)
