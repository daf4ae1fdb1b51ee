"""forward() against scripted upstream answers (httpx.MockTransport, no network at all)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from chalicelib import upstream as relay
from chalicelib.core.errors import ResponseTooLarge, UpstreamError, UpstreamTimeout
from chalicelib.upstream import client as relay_client
from chalicelib.upstream.rejections import sanitize

PROVIDER_KEY = "sk-provider-" + "k" * 30
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def scripted(add_channel: Callable[..., Any]) -> Iterator[Callable[..., list[httpx.Request]]]:
    """Channels whose upstream answers come from ``handlers``; returns the requests made."""
    seen: list[httpx.Request] = []

    def install(*handlers: Handler, **channel_fields: Any) -> list[httpx.Request]:
        by_host = {}
        for index, handler in enumerate(handlers):
            host = f"upstream{index}.test"
            by_host[host] = handler
            add_channel(
                f"ch{index}",
                f"http://{host}/v1",
                priority=-index,
                api_key=PROVIDER_KEY,
                **channel_fields,
            )

        def route(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return by_host[request.url.host](request)

        relay_client.set_http_client(httpx.Client(transport=httpx.MockTransport(route)))
        return seen

    yield install
    relay_client.reset_http_client()


def ok_json(request: httpx.Request) -> httpx.Response:
    body = {
        "id": "x",
        "object": "chat.completion",
        "model": json.loads(request.content)["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8},
    }
    return httpx.Response(200, json=body)


def sse(*events: str) -> httpx.Response:
    body = "".join(f"data: {event}\n\n" for event in events)
    return httpx.Response(200, content=body.encode(), headers={"content-type": "text/event-stream"})


def call(stream: bool = False, **options: Any) -> relay.UpstreamReply:
    payload = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return relay.forward(
        "chat",
        {**payload, **options.pop("extra", {})},
        group="default",
        stream=stream,
        client_wants_usage=False,
        request_id="req_edge",
        rng=random.Random(0),
        **options,
    )


def test_passed_through_client_error_never_shows_the_channels_key_or_address(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN an upstream whose 400 message quotes our provider key, URL and host
    def leaky(request: httpx.Request) -> httpx.Response:
        message = (
            f"Bad request to http://upstream0.test/v1 with key {PROVIDER_KEY} "
            f"(Authorization: {request.headers['authorization']}) on host upstream0.test"
        )
        error = {"message": message, "type": "invalid_request_error", "param": "messages"}
        return httpx.Response(400, json={"error": {**error, "code": "bad"}})

    scripted(leaky)
    # WHEN a call is forwarded
    reply = call()
    # THEN the client sees upstream's status, param and code, with every secret redacted
    error = json.loads(reply.body)["error"]
    assert reply.status == 400
    assert (error["param"], error["code"], error["type"]) == (
        "messages",
        "bad",
        "invalid_request_error",
    )
    assert PROVIDER_KEY not in error["message"]
    assert "upstream0.test" not in error["message"]
    assert "[redacted]" in error["message"]


def test_non_json_client_error_gets_a_generic_message(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN an upstream answering 404 with an HTML page
    scripted(lambda request: httpx.Response(404, text="<html>not here</html>"))
    # WHEN a call is forwarded  THEN the 404 comes with our own message
    reply = call()
    assert reply.status == 404
    assert json.loads(reply.body)["error"]["message"] == (
        "The upstream provider rejected the request (HTTP 404)."
    )


def test_provider_key_is_sent_as_bearer_and_the_payload_is_left_untouched(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN a healthy upstream and a payload with the gateway's cap
    seen = scripted(ok_json)
    payload = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 12,
    }
    before = json.dumps(payload)
    # WHEN it is forwarded
    relay.forward(
        "chat", payload, group="default", stream=False, client_wants_usage=False, request_id="r"
    )
    # THEN upstream got our key, the cap and the path; the caller's dict is unchanged
    sent = json.loads(seen[0].content)
    assert seen[0].headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert seen[0].url.path == "/v1/chat/completions"
    assert sent["max_completion_tokens"] == 12
    assert json.dumps(payload) == before


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(302, headers={"location": "http://elsewhere.test/"}),
        httpx.Response(200, json={"error": {"message": "overloaded"}}),
        httpx.Response(402, json={"error": {"message": "out of credit"}}),
        httpx.Response(503, text="busy"),
    ],
    ids=["redirect", "error-with-200", "payment-required", "unavailable"],
)
def test_channel_failures_fail_over_to_the_next_channel(
    answer: httpx.Response, scripted: Callable[..., list[httpx.Request]]
) -> None:
    # GIVEN a first channel answering this way and a healthy second one
    seen = scripted(lambda request: answer, ok_json)
    # WHEN a call is forwarded  THEN the second channel answers, after one try at each
    reply = call()
    assert (reply.status, reply.channel) == (200, "ch1")
    assert [r.url.host for r in seen] == ["upstream0.test", "upstream1.test"]


def test_oversize_json_answer_is_refused_without_failover(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN an upstream answering 6 MB of JSON, and a second channel
    huge = json.dumps({"choices": [], "padding": "x" * 6_000_000}).encode()
    seen = scripted(lambda request: httpx.Response(200, content=huge), ok_json)
    # WHEN a call is forwarded  THEN it is ResponseTooLarge (a 502), not retried elsewhere
    with pytest.raises(ResponseTooLarge):
        call()
    assert len(seen) == 1


def test_oversize_stream_is_refused(scripted: Callable[..., list[httpx.Request]]) -> None:
    # GIVEN an upstream streaming about 6 MB of content
    chunk = json.dumps({"choices": [{"index": 0, "delta": {"content": "x" * 10_000}}]})
    scripted(lambda request: sse(*[chunk] * 600, "[DONE]"))
    # WHEN a streaming call is forwarded  THEN it is refused as too large
    with pytest.raises(ResponseTooLarge):
        call(stream=True, extra={"stream": True})


def test_stream_answered_as_plain_json_is_a_channel_failure(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN an upstream that ignores stream: true
    scripted(ok_json)
    # WHEN a streaming call is forwarded  THEN it fails as a 502, not a broken stream
    with pytest.raises(UpstreamError) as raised:
        call(stream=True, extra={"stream": True})
    assert "did not answer with an event stream" in raised.value.message


def test_error_event_mid_stream_fails_over(scripted: Callable[..., list[httpx.Request]]) -> None:
    # GIVEN a first upstream that reports an error mid-stream, and a healthy streaming one
    good = json.dumps({"choices": [{"index": 0, "delta": {"content": "ok"}}]})
    usage = json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 1}})
    scripted(
        lambda request: sse(good, json.dumps({"error": {"message": "overloaded"}})),
        lambda request: sse(good, usage, "[DONE]"),
    )
    # WHEN a streaming call is forwarded  THEN the second channel's stream is returned
    reply = call(stream=True, extra={"stream": True})
    assert (reply.channel, reply.prompt_tokens, reply.completion_tokens) == ("ch1", 4, 1)


def test_spent_time_budget_sends_nothing_and_times_out(
    scripted: Callable[..., list[httpx.Request]],
) -> None:
    # GIVEN a healthy channel but no time left in the request's budget
    seen = scripted(ok_json)
    # WHEN a call is forwarded  THEN it is a 504 and no request went out
    with pytest.raises(UpstreamTimeout):
        call(budget_seconds=0)
    assert seen == []


def test_channel_without_a_key_sends_no_authorization(
    add_channel: Callable[..., Any],
) -> None:
    # GIVEN a keyless channel (a local model server)
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok_json(request)

    add_channel("local", "http://local.test/v1")
    relay_client.set_http_client(httpx.Client(transport=httpx.MockTransport(record)))
    # WHEN a call is forwarded  THEN no Authorization header is sent
    assert call().status == 200
    assert "authorization" not in seen[0].headers


def test_redaction_keeps_model_names_but_removes_key_shapes() -> None:
    # GIVEN a provider message naming a model, an sk- key, a Google key and a bearer credential
    message = (
        "Model text-embedding-3-small rejected sk-proj-abcdEFGH1234 "
        "and AIzaSyA1234567890abcdefghij and 'Bearer tok123'"
    )
    # WHEN it is sanitized
    clean = sanitize(message, ["ignored-secret"])
    # THEN the model name stays and every credential is gone
    assert (
        clean == "Model text-embedding-3-small rejected [redacted] and [redacted] and '[redacted]"
    )
