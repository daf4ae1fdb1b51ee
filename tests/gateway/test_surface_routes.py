"""The Responses API, legacy completions and moderations through the relay (moto, demo upstream).

Prices (devtools/demo_seed.py): gpt-4.1-mini US$0.40 / 0.10 cached / 1.60 per Mtok,
gpt-3.5-turbo-instruct US$1.50 / 2.00, omni-moderation-latest US$0.0002 a request. One unit is
US$0.000002, so a token at US$X per Mtok costs X / 2 units, summed, then rounded up once.
"""

from __future__ import annotations

import json
from typing import Any

from support import fresh_key, spent

from chalicelib.core.channels import Channel
from chalicelib.store import config as config_store
from chalicelib.store.models import UsageRecord
from devtools.mock_upstream import MockUpstream

RESPONSES = "/v1/responses"
COMPLETIONS = "/v1/completions"
MODERATIONS = "/v1/moderations"
ASK = {"model": "gpt-4.1-mini", "input": "Hello there!"}


def _records() -> list[UsageRecord]:
    # The usage table also holds owner records (store/owned.py): keep the calls only.
    return [r for r in UsageRecord.scan() if r.request_id.startswith("req_")]


def _units(input_tokens: int, cached: int, output: int, rates: tuple[int, int, int]) -> int:
    """ceil of the cost in units; ``rates`` are US$ per Mtok x 100 (input, cached, output)."""
    hundredths = (input_tokens - cached) * rates[0] + cached * rates[1] + output * rates[2]
    return -(-hundredths // 200)


MINI = (40, 10, 160)
INSTRUCT = (150, 150, 200)


def _events(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines and "event" in lines:
            events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_response_is_answered_and_charged_exactly(relay_api: Any, upstream: Any) -> None:
    # GIVEN a key with US$10
    key, token_id, account_id = fresh_key(relay_api)

    # WHEN it asks for a Response
    status, body = relay_api.call("POST", RESPONSES, key=key, body=ASK)

    # THEN it is OpenAI's Response object, with its usage
    assert status == 200, body
    assert body["object"] == "response" and body["status"] == "completed"
    assert body["output"][0]["content"][0]["text"].endswith("Hello there!")
    usage = body["usage"]
    # AND the key and account are charged exactly that, nothing stays reserved
    cost = _units(usage["input_tokens"], 0, usage["output_tokens"], MINI)
    assert spent(token_id, account_id) == (cost, 0, cost, 0)
    [record] = _records()
    assert (record.state, record.prompt_tokens, record.group) == (
        "settled",
        usage["input_tokens"],
        "default",
    )
    # AND the output cap reserved is the one sent: the gateway's default when none is given
    assert upstream.last_body["max_output_tokens"] == 4096
    status, capped = relay_api.call(
        "POST", RESPONSES, key=key, body={**ASK, "max_output_tokens": 3}
    )
    assert status == 200 and upstream.last_body["max_output_tokens"] == 3
    assert capped["status"] == "incomplete" and capped["usage"]["output_tokens"] == 3


def test_a_streamed_response_sends_typed_events_and_is_charged_from_response_completed(
    relay_api: Any,
) -> None:
    key, token_id, account_id = fresh_key(relay_api)

    status, text = relay_api.call("POST", RESPONSES, key=key, body={**ASK, "stream": True})

    assert status == 200
    events = _events(text)
    names = [name for name, _ in events]
    assert names[0] == "response.created" and names[-1] == "response.completed"
    assert "response.output_text.delta" in names and "data: [DONE]" not in text
    deltas = "".join(e["delta"] for name, e in events if name == "response.output_text.delta")
    assert deltas.endswith("Hello there!")
    usage = events[-1][1]["response"]["usage"]
    cost = _units(usage["input_tokens"], 0, usage["output_tokens"], MINI)
    assert spent(token_id, account_id) == (cost, 0, cost, 0)
    [record] = _records()
    assert record.stream is True and not record.usage_estimated


def test_a_follow_up_is_billed_its_cached_tokens_at_the_cached_price(relay_api: Any) -> None:
    # GIVEN a first response
    key, token_id, account_id = fresh_key(relay_api)
    _, first = relay_api.call("POST", RESPONSES, key=key, body=ASK)
    before = spent(token_id, account_id)[0]

    # WHEN a follow-up continues it (the demo provider reports the carried context as cached)
    follow = {**ASK, "input": "And again?", "previous_response_id": first["id"]}
    status, second = relay_api.call("POST", RESPONSES, key=key, body=follow)

    # THEN the cached tokens are charged at US$0.10, the rest at US$0.40 / 1.60
    assert status == 200, second
    usage = second["usage"]
    cached = usage["input_tokens_details"]["cached_tokens"]
    assert cached == first["usage"]["total_tokens"] > 0
    cost = _units(usage["input_tokens"], cached, usage["output_tokens"], MINI)
    assert spent(token_id, account_id)[0] - before == cost


def _add_channel(channel_id: str, base_url: str, models: tuple[str, ...], **fields: Any) -> None:
    config_store.put_channel(
        Channel(id=channel_id, name=channel_id, base_url=base_url, models=models, **fields),
        None,
        1_700_000_000,
    )


def test_a_follow_up_reaches_the_channel_holding_the_response(relay_api: Any) -> None:
    # GIVEN two channels serving the model, the second preferred after the first response
    key, _, _ = fresh_key(relay_api)
    _, first = relay_api.call("POST", RESPONSES, key=key, body=ASK)
    with MockUpstream().start() as other:
        _add_channel("preferred", other.base_url, ("gpt-4.1-mini",), priority=10)

        # WHEN a fresh call and a follow-up are sent
        relay_api.call("POST", RESPONSES, key=key, body=ASK)
        follow = {**ASK, "previous_response_id": first["id"]}
        status, second = relay_api.call("POST", RESPONSES, key=key, body=follow)
        streamed, text = relay_api.call("POST", RESPONSES, key=key, body={**follow, "stream": True})

    # THEN the fresh call went to the preferred channel, the follow-ups to the first one
    assert other.requests == 1
    assert status == 200, second
    assert second["previous_response_id"] == first["id"]
    assert streamed == 200 and _events(text)[-1][0] == "response.completed"


def test_stored_responses_are_read_listed_cancelled_and_deleted_by_their_owner_only(
    relay_api: Any,
) -> None:
    # GIVEN a response made by account A, and account B
    key_a, token_a, account_a = fresh_key(relay_api, "a")
    key_b, token_b, account_b = fresh_key(relay_api, "b")
    _, made = relay_api.call("POST", RESPONSES, key=key_a, body=ASK)
    path = f"{RESPONSES}/{made['id']}"
    spent_a = spent(token_a, account_a)

    # WHEN A reads, lists, cancels and deletes it
    assert relay_api.call("GET", path, key=key_a)[1]["id"] == made["id"]
    items = relay_api.call("GET", path + "/input_items", key=key_a)[1]
    assert items["object"] == "list" and items["data"][0]["role"] == "user"
    assert relay_api.call("POST", path + "/cancel", key=key_a)[0] == 200

    # THEN B gets 404 for every one of them, and for a follow-up, as for an unknown id
    calls = (("GET", ""), ("GET", "/input_items"), ("POST", "/cancel"), ("DELETE", ""))
    for method, suffix in calls:
        status, body = relay_api.call(method, path + suffix, key=key_b)
        assert status == 404 and body["error"]["param"] == "id", (method, suffix, body)
    follow = {**ASK, "previous_response_id": made["id"]}
    status, body = relay_api.call("POST", RESPONSES, key=key_b, body=follow)
    assert status == 404 and body["error"]["param"] == "previous_response_id"
    assert relay_api.call("GET", f"{RESPONSES}/resp_unknown", key=key_a)[0] == 404
    # AND reading is free, B was charged nothing
    assert spent(token_a, account_a) == spent_a
    assert spent(token_b, account_b) == (0, 0, 0, 0)
    # AND A's delete reaches the provider
    status, deleted = relay_api.call("DELETE", path, key=key_a)
    assert status == 200 and deleted["deleted"] is True
    assert relay_api.call("GET", path, key=key_a)[0] == 404


def test_legacy_completions_and_moderations_are_answered_and_charged(
    relay_api: Any, upstream: Any
) -> None:
    key, token_id, account_id = fresh_key(relay_api)
    ask = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say this is a test", "max_tokens": 50}

    status, body = relay_api.call("POST", COMPLETIONS, key=key, body=ask)
    assert status == 200, body
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].endswith("Say this is a test")
    usage = body["usage"]
    cost = _units(usage["prompt_tokens"], 0, usage["completion_tokens"], INSTRUCT)
    assert spent(token_id, account_id) == (cost, 0, cost, 0)

    streamed = {**ask, "stream": True, "stream_options": {"include_usage": True}}
    status, text = relay_api.call("POST", COMPLETIONS, key=key, body=streamed)
    assert status == 200 and text.rstrip().endswith("data: [DONE]")
    chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert (
        "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        == body["choices"][0]["text"]
    )
    assert chunks[-1]["usage"] == usage
    assert spent(token_id, account_id) == (2 * cost, 0, 2 * cost, 0)

    # A completion without max_tokens gets the API's default of 16, not the gateway's
    status, _ = relay_api.call(
        "POST", COMPLETIONS, key=key, body={"model": "gpt-3.5-turbo-instruct", "prompt": ["a", "b"]}
    )
    assert status == 200 and upstream.last_body["max_tokens"] == 16
    used = spent(token_id, account_id)[0]

    # A moderation costs its price per request (US$0.0002 = 100 units)
    body = {"model": "omni-moderation-latest", "input": ["fine", "flag-me"]}
    status, answer = relay_api.call("POST", MODERATIONS, key=key, body=body)
    assert status == 200, answer
    assert [r["flagged"] for r in answer["results"]] == [False, True]
    assert spent(token_id, account_id)[0] - used == 100


# One account for every case: each must leave it untouched (setups are what tests cost here).
BAD_INPUT = [
    (RESPONSES, {"input": "hi"}, "model"),
    (RESPONSES, {"model": 4, "input": "hi"}, "model"),
    (RESPONSES, {"model": "gpt-4.1-mini"}, "input"),
    (RESPONSES, {**ASK, "input": {"text": "hi"}}, "input"),
    (RESPONSES, {**ASK, "max_output_tokens": "9"}, "max_output_tokens"),
    (RESPONSES, {**ASK, "max_output_tokens": 0}, "max_output_tokens"),
    (RESPONSES, {**ASK, "stream": "yes"}, "stream"),
    (RESPONSES, {**ASK, "background": True}, "background"),
    (RESPONSES, {**ASK, "previous_response_id": "resp_nope"}, "previous_response_id"),
    (RESPONSES, {**ASK, "conversation": "conv_nope"}, "conversation"),
    (COMPLETIONS, {"prompt": "hi"}, "model"),
    (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct"}, "prompt"),
    (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": 7}, "prompt"),
    (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "n": 2}, "n"),
    (COMPLETIONS, {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "best_of": 3}, "best_of"),
    (MODERATIONS, {"input": "hi"}, "model"),
    (MODERATIONS, {"model": "omni-moderation-latest", "input": 3}, "input"),
    (MODERATIONS, {"model": "omni-moderation-latest", "input": ""}, "input"),
]


def test_bad_input_is_an_openai_shaped_4xx_naming_the_param_and_charges_nothing(
    relay_api: Any,
) -> None:
    key, token_id, account_id = fresh_key(relay_api)
    for path, body, param in BAD_INPUT:
        status, answer = relay_api.call("POST", path, key=key, body=body)
        assert 400 <= status < 500, (path, body, answer)
        assert answer["error"]["param"] == param and answer["error"]["message"], (body, answer)
    assert spent(token_id, account_id) == (0, 0, 0, 0)
    assert all(r.state == "rejected" for r in _records())


def test_models_lists_each_model_with_the_endpoints_it_serves(
    relay_api: Any, upstream: Any
) -> None:
    # GIVEN the demo channel, and one that lists its endpoints
    key, _, _ = fresh_key(relay_api)
    _add_channel("chat-only", upstream.base_url, ("chat-only-model",),
                 endpoints=("chat/completions",))  # fmt: skip

    # WHEN the key lists its models
    status, body = relay_api.call("GET", "/v1/models", key=key)

    # THEN chat models serve chat, responses and completions; others what their names say
    assert status == 200
    endpoints = {m["id"]: m["endpoints"] for m in body["data"]}
    assert endpoints["gpt-4.1-mini"] == ["chat/completions", "responses", "completions"]
    assert endpoints["text-embedding-3-small"] == ["embeddings"]
    assert endpoints["omni-moderation-latest"] == ["moderations"]
    assert endpoints["chat-only-model"] == ["chat/completions"]


# The auto group ------------------------------------------------------------------------------
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _auto_key(relay_api: Any, groups: list[str]) -> tuple[int, Any]:
    created = relay_api.new_account("auto", quota_usd="10", groups=groups)
    return relay_api.call(
        "POST",
        "/tokens",
        key=created["management_key"],
        body={"name": "auto", "group": "auto"},
    )


def test_an_auto_key_uses_the_first_ordered_group_with_a_channel_and_its_ratio(
    relay_api: Any, upstream: Any
) -> None:
    # GIVEN auto's order vip then default, vip at twice the price, an account granted both
    assert relay_api.admin("PUT", "/admin/groups/vip", {"ratio": "2"})[0] == 200
    status, order = relay_api.admin("PUT", "/admin/groups/auto", {"order": ["vip", "default"]})
    assert (status, order) == (200, {"group": "auto", "order": ["vip", "default"]})
    status, created = _auto_key(relay_api, ["default", "vip"])
    assert status == 201, created
    token = created["data"][0]
    assert token["group"] == "auto"

    # WHEN it calls while vip has no channel for the model, then once vip has one
    first = relay_api.call("POST", "/v1/chat/completions", key=token["key"], body=HELLO)[1]
    config_store.put_channel(
        Channel(id="vip", name="vip", base_url=upstream.base_url, models=("gpt-4o-mini",),
                group="vip"),
        upstream.api_key,
        1_700_000_000,
    )  # fmt: skip
    second = relay_api.call("POST", "/v1/chat/completions", key=token["key"], body=HELLO)[1]

    # THEN the first call used default (1x), the second vip (2x), and the log says which
    by_group = {r.group: r for r in _records()}
    usage = first["usage"]
    tokens = usage["prompt_tokens"] * 15 + usage["completion_tokens"] * 60
    assert by_group["default"].cost_units == -(-tokens // 200)
    assert second["usage"] == usage
    assert by_group["vip"].cost_units == -(-tokens * 2 // 200)
    # AND its models are those of the groups it can reach
    listed = relay_api.call("GET", "/v1/models", key=token["key"])[1]
    assert "gpt-4o-mini" in {m["id"] for m in listed["data"]}


def test_an_auto_key_never_reaches_a_group_its_account_is_not_granted(
    relay_api: Any, upstream: Any
) -> None:
    relay_api.admin("PUT", "/admin/groups/auto", {"order": ["vip", "default"]})
    config_store.put_channel(
        Channel(id="vip", name="vip", base_url=upstream.base_url, models=("gpt-4o-mini",),
                group="vip"),
        upstream.api_key,
        1_700_000_000,
    )  # fmt: skip
    # An account granted only default may have auto keys (default is in the order)...
    status, created = _auto_key(relay_api, ["default"])
    assert status == 201, created
    key = created["data"][0]["key"]
    assert relay_api.call("POST", "/v1/chat/completions", key=key, body=HELLO)[0] == 200
    [record] = _records()
    assert record.group == "default"
    # ...one granted no group of the order may not; 'auto' has no ratio of its own
    status, refused = _auto_key(relay_api, ["other"])
    assert status == 403 and refused["error"]["param"] == "group"
    status, refused = relay_api.admin("PUT", "/admin/groups/auto", {"ratio": "2"})
    assert status == 400
    status, refused = relay_api.admin("PUT", "/admin/groups/auto", {"order": ["auto"]})
    assert status == 400 and refused["error"]["param"] == "order"


def test_a_responses_stream_cut_midway_ends_with_an_error_event_charged_for_what_came(
    relay_api: Any,
) -> None:
    # GIVEN a key, and a provider that cuts the stream after its first events
    key, token_id, account_id = fresh_key(relay_api)

    # WHEN a response is streamed
    status, text = relay_api.call(
        "POST", RESPONSES, key=key, body={"model": "fail-cut", "input": "hi", "stream": True}
    )

    # THEN the client got the events, then OpenAI's typed error event (no chat [DONE])
    assert status == 200
    events = _events(text)
    assert events[0][0] == "response.created" and events[-1][0] == "error"
    assert events[-1][1]["message"] and "[DONE]" not in text
    # AND the call is settled, not left reserved, flagged as estimated
    [record] = _records()
    assert (record.status, record.usage_estimated) == ("upstream_error", True)
    assert spent(token_id, account_id)[1::2] == (0, 0)
