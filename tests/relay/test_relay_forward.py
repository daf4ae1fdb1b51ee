"""forward() against the demo upstream on 127.0.0.1: usage, mapping, failover, timeouts, SSE."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import openai
import pytest

from chalicelib import upstream as relay
from chalicelib.core.errors import ModelNotFound, UpstreamError, UpstreamTimeout
from devtools.mock_upstream import REPLY_PREFIX, MockUpstream, count_tokens, prompt_tokens

MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is the capital of France?"},
]
REPLY = REPLY_PREFIX + "What is the capital of France?"
UPSTREAM_KEY = "sk-upstream-" + "u" * 24


def chat(model: str = "gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **extra}


def forward(payload: dict[str, Any], **options: Any) -> relay.UpstreamReply:
    defaults: dict[str, Any] = {
        "group": "default",
        "stream": False,
        "client_wants_usage": False,
        "request_id": "req_test",
        "rng": random.Random(0),
    }
    kind = options.pop("kind", "chat")
    return relay.forward(kind, payload, **{**defaults, **options})


# Success -----------------------------------------------------------------------------------------
def test_chat_call_returns_upstreams_body_and_exact_usage(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a channel to an upstream that requires its provider key
    upstream = upstreams(api_key=UPSTREAM_KEY)
    add_channel("main", upstream.base_url, api_key=UPSTREAM_KEY, name="Main")
    # WHEN a chat call is forwarded with the gateway's output cap
    reply = forward(chat(max_tokens=50))
    # THEN the reply carries the upstream's exact usage and a body the SDK type accepts
    assert (reply.status, reply.content_type) == (200, "application/json")
    assert reply.prompt_tokens == prompt_tokens(MESSAGES)
    assert reply.completion_tokens == count_tokens(REPLY)
    assert (reply.usage_estimated, reply.channel, reply.model) == (False, "Main", "gpt-4o-mini")
    completion = openai.types.chat.ChatCompletion.model_validate_json(reply.body)
    assert completion.choices[0].message.content == REPLY
    # AND upstream got the cap, and no stream options on a non-streaming call
    assert upstream.last_body["max_tokens"] == 50
    assert "stream_options" not in upstream.last_body
    assert upstream.requests == 1


def test_model_map_sends_the_providers_name_and_answers_with_the_clients(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a channel that knows gpt-4o-mini as "demo-chat"
    upstream = upstreams()
    add_channel("main", upstream.base_url, model_map={"gpt-4o-mini": "demo-chat"})
    # WHEN gpt-4o-mini is called
    reply = forward(chat())
    # THEN upstream saw its own name and the client sees the name it asked for
    assert upstream.last_body["model"] == "demo-chat"
    assert json.loads(reply.body)["model"] == "gpt-4o-mini"


def test_embeddings_take_prompt_tokens_and_no_completion(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN an embeddings channel
    upstream = upstreams()
    add_channel("emb", upstream.base_url, models=("text-embedding-3-small",))
    # WHEN two inputs are embedded
    payload = {"model": "text-embedding-3-small", "input": ["hello world", "bonjour"]}
    reply = forward(payload, kind="embeddings")
    # THEN usage is the upstream's prompt tokens, completion 0, and the body is the embedding list
    assert (reply.prompt_tokens, reply.completion_tokens) == (3 + 2, 0)
    assert len(json.loads(reply.body)["data"]) == 2
    assert upstream.last_body["input"] == ["hello world", "bonjour"]


def test_missing_usage_is_estimated_high_and_flagged(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a channel whose upstream omits usage
    upstream = upstreams()
    add_channel("main", upstream.base_url, model_map={"gpt-4o-mini": "fail-nousage"})
    # WHEN a call is forwarded
    reply = forward(chat())
    # THEN usage is estimated, flagged, and not below what upstream would have reported
    assert reply.usage_estimated is True
    assert reply.prompt_tokens >= prompt_tokens(MESSAGES)
    assert reply.completion_tokens >= count_tokens(REPLY)
    assert reply.status == 200


# Failover -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["fail-500", "fail-429", "fail-reset", "fail-badjson"])
def test_failing_channel_hands_over_to_the_next_one(
    fault: str, upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a preferred channel that fails this way and a healthy fallback
    broken, healthy = upstreams(), upstreams()
    add_channel("broken", broken.base_url, priority=10, model_map={"gpt-4o-mini": fault})
    add_channel("healthy", healthy.base_url, priority=0)
    # WHEN a call is forwarded
    reply = forward(chat())
    # THEN the fallback answered after exactly one try at the broken channel
    assert (reply.status, reply.channel) == (200, "healthy")
    assert (broken.requests, healthy.requests) == (1, 1)
    assert json.loads(reply.body)["choices"][0]["message"]["content"] == REPLY


def test_timed_out_channel_hands_over_to_the_next_one(
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
    env: Callable[..., Any],
) -> None:
    # GIVEN a short read timeout, a hanging preferred channel and a healthy fallback
    env(SLUICE_UPSTREAM_READ_TIMEOUT="1.5")
    hanging, healthy = upstreams(hang_seconds=5), upstreams()
    add_channel("hanging", hanging.base_url, priority=10, model_map={"gpt-4o-mini": "fail-timeout"})
    add_channel("healthy", healthy.base_url)
    # WHEN a call is forwarded
    reply = forward(chat())
    # THEN the fallback answered
    assert (reply.status, reply.channel) == (200, "healthy")
    assert hanging.requests == 1


def test_only_timeouts_give_504_naming_neither_the_channel_nor_its_url(
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
    env: Callable[..., Any],
) -> None:
    # GIVEN one hanging channel and a short read timeout
    env(SLUICE_UPSTREAM_READ_TIMEOUT="1.5")
    hanging = upstreams(hang_seconds=5)
    add_channel("hanging", hanging.base_url, name="Slow", model_map={"gpt-4o-mini": "fail-timeout"})
    # WHEN a call is forwarded  THEN it is a 504 that names neither the channel nor its address
    with pytest.raises(UpstreamTimeout) as raised:
        forward(chat())
    assert raised.value.status == 504
    assert "Slow" not in raised.value.message and "hanging" not in raised.value.message
    assert "the upstream provider" in raised.value.message.lower()
    assert "127.0.0.1" not in raised.value.message


def test_when_every_channel_fails_the_error_is_502_without_secrets(
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN two channels with keys, both failing
    first, second = upstreams(), upstreams()
    add_channel("a", first.base_url, api_key=UPSTREAM_KEY, model_map={"gpt-4o-mini": "fail-500"})
    add_channel("b", second.base_url, api_key=UPSTREAM_KEY, model_map={"gpt-4o-mini": "fail-cut"})
    # WHEN a call is forwarded
    with pytest.raises(UpstreamError) as raised:
        forward(chat())
    logged = capsys.readouterr().out
    # THEN it is a 502 after one try each, and neither the message nor the log has a key or URL
    assert type(raised.value) is UpstreamError and raised.value.status == 502
    assert (first.requests, second.requests) == (1, 1)
    for text in (raised.value.message, logged):
        assert UPSTREAM_KEY not in text
        assert "127.0.0.1" not in text
    # AND the tenant's message names no channel; the server log does, for the operator
    assert "'a'" not in raised.value.message and "'b'" not in raised.value.message
    assert "attempt 1" in raised.value.message and "attempt 2" in raised.value.message
    assert '"channel":"a"' in logged and '"channel":"b"' in logged


def test_failover_stops_at_the_attempt_limit(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN four failing channels and the default limit of three attempts
    upstream = upstreams()
    for index in range(4):
        add_channel(
            f"c{index}", upstream.base_url, priority=index, model_map={"gpt-4o-mini": "fail-500"}
        )
    # WHEN a call is forwarded  THEN only three were tried
    with pytest.raises(UpstreamError):
        forward(chat())
    assert upstream.requests == 3


def test_client_errors_are_passed_through_without_retrying(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN two channels, the first of which will reject the body as invalid
    first, second = upstreams(), upstreams()
    add_channel("first", first.base_url, priority=10)
    add_channel("second", second.base_url)
    # WHEN a call with an empty message list is forwarded
    reply = forward({"model": "gpt-4o-mini", "messages": []})
    # THEN upstream's 400 reaches the client in the OpenAI shape, with no usage and no retry
    assert (reply.status, reply.prompt_tokens, reply.completion_tokens) == (400, 0, 0)
    error = json.loads(reply.body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "messages" in error["message"]
    assert (first.requests, second.requests) == (1, 0)


def test_a_rejected_provider_key_is_the_channels_failure_not_the_clients(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a channel with a wrong provider key (upstream answers 401) and a good fallback
    strict, healthy = upstreams(api_key=UPSTREAM_KEY), upstreams()
    add_channel("wrong-key", strict.base_url, priority=10, api_key="sk-wrong-" + "w" * 20)
    add_channel("healthy", healthy.base_url)
    # WHEN a call is forwarded  THEN the fallback answers (a client cannot fix our key)
    assert forward(chat()).channel == "healthy"
    assert strict.requests == 1


def test_no_enabled_channel_for_the_model_in_the_group_is_model_not_found(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a disabled channel for the model and an enabled one in another group
    upstream = upstreams()
    add_channel("off", upstream.base_url, enabled=False)
    add_channel("vip", upstream.base_url, group="vip")
    # WHEN the default group asks for it  THEN 404 model_not_found, nothing sent
    with pytest.raises(ModelNotFound) as raised:
        forward(chat())
    assert (raised.value.status, raised.value.param) == (404, "model")
    assert upstream.requests == 0
    # AND the vip group is served
    assert forward(chat(), group="vip").channel == "vip"


def test_list_models_reflects_enabled_channels_of_the_group(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN channels in two groups
    upstream = upstreams()
    add_channel("a", upstream.base_url, models=("gpt-4o", "gpt-4o-mini"))
    add_channel("b", upstream.base_url, models=("secret",), enabled=False)
    add_channel("c", upstream.base_url, models=("vip-only",), group="vip")
    # WHEN the default group's models are listed  THEN only its enabled channels' models
    assert relay.list_models("default") == ["gpt-4o", "gpt-4o-mini"]
    assert relay.list_models("vip") == ["vip-only"]


# Streaming ---------------------------------------------------------------------------------------
def test_stream_is_assembled_into_a_body_the_sdk_iterates(
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
    sdk_chunks: Callable[[bytes], list[Any]],
) -> None:
    # GIVEN a channel to the demo upstream
    upstream = upstreams()
    add_channel("main", upstream.base_url)
    # WHEN a streaming call without include_usage is forwarded
    reply = forward(chat(stream=True, max_tokens=100), stream=True)
    # THEN the SDK reads the whole reply from the body, which ends with [DONE]
    assert reply.content_type == "text/event-stream"
    chunks = sdk_chunks(reply.body)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert reply.body.endswith(b"data: [DONE]\n\n")
    # AND usage came from upstream (always asked for) but the usage chunk was stripped
    assert upstream.last_body["stream_options"] == {"include_usage": True}
    assert upstream.last_body["max_tokens"] == 100
    assert (reply.prompt_tokens, reply.completion_tokens) == (
        prompt_tokens(MESSAGES),
        count_tokens(REPLY),
    )
    assert reply.usage_estimated is False
    assert all(c.usage is None for c in chunks)


def test_stream_passes_the_usage_chunk_to_a_client_that_asked(
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
    sdk_chunks: Callable[[bytes], list[Any]],
) -> None:
    # GIVEN a channel to the demo upstream
    upstream = upstreams()
    add_channel("main", upstream.base_url)
    # WHEN the client asks for usage itself
    payload = chat(stream=True, stream_options={"include_usage": True})
    reply = forward(payload, stream=True, client_wants_usage=True)
    # THEN its last chunk is the usage, equal to what was billed
    last = sdk_chunks(reply.body)[-1]
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
        reply.prompt_tokens,
        reply.completion_tokens,
    )


def test_stream_without_usage_is_estimated(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN an upstream that never reports usage
    upstream = upstreams()
    add_channel("main", upstream.base_url, model_map={"gpt-4o-mini": "fail-nousage"})
    # WHEN a streaming call is forwarded
    reply = forward(chat(stream=True), stream=True)
    # THEN usage is estimated and flagged, never below the real count
    assert reply.usage_estimated is True
    assert reply.prompt_tokens >= prompt_tokens(MESSAGES)
    assert reply.completion_tokens >= count_tokens(REPLY)


def test_cut_stream_fails_over_and_is_an_error_when_nothing_is_left(
    upstreams: Callable[..., MockUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN a channel whose stream is cut mid-way
    upstream = upstreams()
    add_channel("cut", upstream.base_url, name="Cutter", model_map={"gpt-4o-mini": "fail-cut"})
    # WHEN a streaming call is forwarded
    with pytest.raises(UpstreamError) as raised:
        forward(chat(stream=True), stream=True)
    # THEN it is a 502 saying the stream was cut (the gateway refunds it)
    assert raised.value.status == 502
    assert "cut the stream" in raised.value.message
    # AND with a healthy channel behind it the client gets a whole answer instead
    healthy = upstreams()
    add_channel("healthy", healthy.base_url, priority=-1)
    reply = forward(chat(stream=True), stream=True)
    assert (reply.channel, reply.status) == ("healthy", 200)
