"""The fake OpenAI upstream: real SDK compatibility, deterministic usage, and each fault mode."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from devtools.mock_upstream import REPLY_PREFIX, MockUpstream

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream(hang_seconds=10) as mock:
        yield mock


@pytest.fixture
def sdk(upstream: MockUpstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=upstream.base_url, api_key="anything", max_retries=0)


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
        yield client


def chat_body(model: str = "demo-chat", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": USER_MSG, **extra}


def sse_payloads(lines: list[str]) -> list[str]:
    return [line[len("data: ") :] for line in lines if line.startswith("data: ")]


# --- plain completions -------------------------------------------------------------------


def test_plain_reply_parses_with_openai_sdk(sdk: openai.OpenAI) -> None:
    # GIVEN the official SDK pointed at the mock
    # WHEN a chat completion is requested
    reply = sdk.chat.completions.create(model="demo-chat", messages=USER_MSG)

    # THEN it parses into the SDK's types with the echoed model and an assistant message
    assert reply.object == "chat.completion"
    assert reply.id.startswith("chatcmpl-")
    assert reply.model == "demo-chat"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason == "stop"


def test_reply_echoes_start_of_last_user_message(sdk: openai.OpenAI) -> None:
    # GIVEN a conversation whose last user message is longer than the echo limit
    long_text = "x" * 100
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": long_text},
    ]

    # WHEN it is sent
    reply = sdk.chat.completions.create(model="m", messages=messages)

    # THEN the reply quotes the first 60 characters of the last user message
    assert reply.choices[0].message.content == REPLY_PREFIX + "x" * 60


def test_usage_is_computed_deterministically(sdk: openai.OpenAI) -> None:
    # GIVEN a system and a user message
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello there"},
    ]

    # WHEN a completion is requested
    reply = sdk.chat.completions.create(model="m", messages=messages)

    # THEN prompt tokens are 3 per message plus ceil(chars / 4), completion is ceil(len / 4)
    content = reply.choices[0].message.content or ""
    expected_prompt = (3 + math.ceil(9 / 4)) + (3 + math.ceil(11 / 4))
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == expected_prompt
    assert reply.usage.completion_tokens == math.ceil(len(content) / 4)
    assert reply.usage.total_tokens == expected_prompt + reply.usage.completion_tokens


def test_text_parts_count_towards_prompt_tokens(sdk: openai.OpenAI) -> None:
    # GIVEN a message whose content is a list of text parts
    messages = [{"role": "user", "content": [{"type": "text", "text": "abcdefgh"}]}]

    # WHEN it is sent
    reply = sdk.chat.completions.create(model="m", messages=messages)

    # THEN the parts' text is counted like plain content
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3 + 2


def test_max_tokens_truncates_reply_and_reports_length(sdk: openai.OpenAI) -> None:
    # GIVEN a limit smaller than the canned reply
    # WHEN a completion is requested with max_tokens=3
    reply = sdk.chat.completions.create(model="m", messages=USER_MSG, max_tokens=3)

    # THEN the reply is cut to 3 tokens (12 chars) and finish_reason says so
    assert reply.choices[0].message.content == REPLY_PREFIX[:12]
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


def test_max_completion_tokens_also_truncates(sdk: openai.OpenAI) -> None:
    # GIVEN the newer parameter name
    # WHEN a completion is requested with max_completion_tokens=2
    reply = sdk.chat.completions.create(
        model="m",
        messages=USER_MSG,
        max_completion_tokens=2,
    )

    # THEN it is honoured like max_tokens
    assert reply.choices[0].message.content == REPLY_PREFIX[:8]
    assert reply.choices[0].finish_reason == "length"


def test_generous_max_tokens_leaves_reply_whole(sdk: openai.OpenAI) -> None:
    # GIVEN a limit larger than the reply
    # WHEN a completion is requested
    reply = sdk.chat.completions.create(model="m", messages=USER_MSG, max_tokens=1000)

    # THEN nothing is cut
    assert reply.choices[0].finish_reason == "stop"
    assert (reply.choices[0].message.content or "").endswith("capital of France?")


def test_invalid_max_tokens_is_rejected_like_openai(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN a non-positive max_tokens
    # WHEN it is sent
    resp = http.post(f"{upstream.base_url}/chat/completions", json=chat_body(max_tokens=0))

    # THEN the mock answers 400 with an OpenAI-shaped error
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


# --- streaming ---------------------------------------------------------------------------


def test_streamed_reply_parses_with_sdk_and_matches_plain_reply(sdk: openai.OpenAI) -> None:
    # GIVEN the plain reply for a prompt
    plain = sdk.chat.completions.create(model="m", messages=USER_MSG)

    # WHEN the same prompt is streamed
    chunks = list(sdk.chat.completions.create(model="m", messages=USER_MSG, stream=True))

    # THEN the chunks parse, start with the assistant role, end with a finish reason,
    # and their content joins to the plain reply
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == plain.choices[0].message.content
    assert len(chunks) > 3


def test_stream_ends_with_usage_chunk_when_asked(sdk: openai.OpenAI) -> None:
    # GIVEN stream_options.include_usage
    # WHEN a completion is streamed
    chunks = list(
        sdk.chat.completions.create(
            model="m",
            messages=USER_MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # THEN the last chunk has no choices and carries the usage
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0


def test_stream_has_no_usage_unless_asked(sdk: openai.OpenAI) -> None:
    # GIVEN no stream_options
    # WHEN a completion is streamed
    chunks = list(sdk.chat.completions.create(model="m", messages=USER_MSG, stream=True))

    # THEN no chunk carries usage
    assert all(c.usage is None for c in chunks)


def test_stream_is_event_stream_terminated_by_done(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN a raw HTTP client
    # WHEN a completion is streamed
    with http.stream(
        "POST", f"{upstream.base_url}/chat/completions", json=chat_body(stream=True)
    ) as resp:
        content_type = resp.headers["content-type"]
        payloads = sse_payloads(list(resp.iter_lines()))

    # THEN it is server-sent events ending with [DONE]
    assert content_type.startswith("text/event-stream")
    assert payloads[-1] == "[DONE]"


def test_streamed_max_tokens_truncates_and_reports_length(sdk: openai.OpenAI) -> None:
    # GIVEN a small limit
    # WHEN a completion is streamed
    chunks = list(
        sdk.chat.completions.create(model="m", messages=USER_MSG, stream=True, max_tokens=2)
    )

    # THEN the streamed text is cut and the finish reason is "length"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY_PREFIX[:8]
    assert chunks[-1].choices[0].finish_reason == "length"


# --- other endpoints ---------------------------------------------------------------------


def test_embeddings_for_list_input_parse_with_sdk(sdk: openai.OpenAI) -> None:
    # GIVEN two inputs
    # WHEN embeddings are requested
    result = sdk.embeddings.create(model="demo-embedding", input=["abcd", "abcdefgh"])

    # THEN there is one 8-float vector per input, in order, and tokens add up
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 8 for d in result.data)
    assert result.usage.prompt_tokens == 1 + 2
    assert result.usage.total_tokens == 3


def test_embeddings_are_deterministic_for_string_input(sdk: openai.OpenAI) -> None:
    # GIVEN the same string twice
    # WHEN embeddings are requested twice
    first = sdk.embeddings.create(model="e", input="same text")
    second = sdk.embeddings.create(model="e", input="same text")

    # THEN the vectors are identical
    assert len(first.data) == 1
    assert first.data[0].embedding == second.data[0].embedding


def test_models_lists_demo_models(sdk: openai.OpenAI) -> None:
    # GIVEN the mock
    # WHEN models are listed
    ids = [m.id for m in sdk.models.list()]

    # THEN a few demo names come back
    assert "demo-chat" in ids
    assert len(ids) >= 2


# --- auth --------------------------------------------------------------------------------


def test_wrong_key_gets_openai_shaped_401() -> None:
    # GIVEN a mock that requires a key
    with MockUpstream(api_key="sk-right") as mock:
        client = openai.OpenAI(base_url=mock.base_url, api_key="sk-wrong", max_retries=0)

        # WHEN the wrong key is used
        with pytest.raises(openai.AuthenticationError) as info:
            client.chat.completions.create(model="m", messages=USER_MSG)

    # THEN the SDK sees a 401 with the OpenAI error code
    assert info.value.status_code == 401
    assert info.value.code == "invalid_api_key"


def test_right_key_is_accepted() -> None:
    # GIVEN a mock that requires a key
    with MockUpstream(api_key="sk-right") as mock:
        client = openai.OpenAI(base_url=mock.base_url, api_key="sk-right", max_retries=0)

        # WHEN the right key is used
        reply = client.chat.completions.create(model="m", messages=USER_MSG)

    # THEN the call succeeds
    assert reply.choices[0].message.content


# --- fault injection ---------------------------------------------------------------------


@pytest.mark.parametrize(("model", "status"), [("fail-500", 500), ("fail-429", 429)])
def test_error_models_answer_with_status_and_openai_error(
    http: httpx.Client, upstream: MockUpstream, model: str, status: int
) -> None:
    # GIVEN a fault model
    # WHEN it is requested
    resp = http.post(f"{upstream.base_url}/chat/completions", json=chat_body(model))

    # THEN the status and an OpenAI-shaped error body come back
    assert resp.status_code == status
    assert set(resp.json()["error"]) >= {"message", "type", "code"}


def test_fail_timeout_outlasts_client_read_timeout(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN a client with a short read timeout
    started = time.monotonic()

    # WHEN fail-timeout is requested
    with pytest.raises(httpx.ReadTimeout):
        http.post(
            f"{upstream.base_url}/chat/completions",
            json=chat_body("fail-timeout"),
            timeout=httpx.Timeout(5.0, read=0.3),
        )

    # THEN the client gave up on its own timeout, not on an early answer
    assert time.monotonic() - started >= 0.3


def test_fail_timeout_answers_after_hang_seconds(http: httpx.Client) -> None:
    # GIVEN a mock that hangs only briefly
    with MockUpstream(hang_seconds=0.2) as mock:
        # WHEN a patient client requests fail-timeout
        resp = http.post(f"{mock.base_url}/chat/completions", json=chat_body("fail-timeout"))

    # THEN it eventually gets a normal answer
    assert resp.status_code == 200


def test_fail_timeout_hang_ends_when_server_stops(http: httpx.Client) -> None:
    # GIVEN a request hanging on fail-timeout with a long hang
    mock = MockUpstream(hang_seconds=60).start()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            http.post(f"{mock.base_url}/chat/completions", json=chat_body("fail-timeout"))
        except httpx.HTTPError as exc:
            errors.append(exc)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    for _ in range(100):
        if mock.requests:
            break
        time.sleep(0.01)

    # WHEN the server stops
    started = time.monotonic()
    mock.stop()
    caller.join(timeout=5)

    # THEN the hanging request ends promptly with a transport error
    assert not caller.is_alive()
    assert time.monotonic() - started < 3
    assert errors


def test_fail_reset_drops_connection_without_answer(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN the reset fault
    # WHEN it is requested
    # THEN the client sees a transport error, not an HTTP response
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        http.post(f"{upstream.base_url}/chat/completions", json=chat_body("fail-reset"))


def test_fail_badjson_answers_200_with_unparseable_body(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN the bad-JSON fault
    # WHEN it is requested
    resp = http.post(f"{upstream.base_url}/chat/completions", json=chat_body("fail-badjson"))

    # THEN the status is 200 but the body is not JSON
    assert resp.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(resp.content)


def test_fail_nousage_omits_usage_from_plain_reply(sdk: openai.OpenAI) -> None:
    # GIVEN the no-usage fault
    # WHEN it is requested
    reply = sdk.chat.completions.create(model="fail-nousage", messages=USER_MSG)

    # THEN the reply is fine but has no usage
    assert reply.choices[0].message.content
    assert reply.usage is None


def test_fail_nousage_stream_has_no_usage_chunk_even_when_asked(sdk: openai.OpenAI) -> None:
    # GIVEN the no-usage fault and include_usage
    # WHEN it is streamed
    chunks = list(
        sdk.chat.completions.create(
            model="fail-nousage",
            messages=USER_MSG,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    # THEN the stream completes without any usage
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_fail_nousage_embeddings_omit_usage(http: httpx.Client, upstream: MockUpstream) -> None:
    # GIVEN the no-usage fault on embeddings
    # WHEN it is requested
    resp = http.post(
        f"{upstream.base_url}/embeddings", json={"model": "fail-nousage", "input": "x"}
    )

    # THEN vectors come back without usage
    assert resp.status_code == 200
    assert "usage" not in resp.json()


def test_fail_cut_stream_sends_two_content_chunks_then_hangs_up(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN the cut fault on a stream
    lines: list[str] = []

    # WHEN it is read line by line
    with (
        pytest.raises(httpx.RemoteProtocolError),
        http.stream(
            "POST",
            f"{upstream.base_url}/chat/completions",
            json=chat_body("fail-cut", stream=True, stream_options={"include_usage": True}),
        ) as resp,
    ):
        for line in resp.iter_lines():
            lines.append(line)

    # THEN exactly two content chunks arrived (after the role chunk) and no [DONE]
    payloads = sse_payloads(lines)
    assert "[DONE]" not in payloads
    chunks = [json.loads(p) for p in payloads]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert contents[0] == ""
    assert len(contents) == 3
    assert all(contents[1:])


def test_fail_cut_plain_sends_half_a_body(http: httpx.Client, upstream: MockUpstream) -> None:
    # GIVEN the cut fault without streaming
    # WHEN it is requested
    # THEN the client sees the body end early
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(f"{upstream.base_url}/chat/completions", json=chat_body("fail-cut"))


# --- bookkeeping and latency -------------------------------------------------------------


def test_requests_are_counted_and_last_body_kept(
    http: httpx.Client, upstream: MockUpstream
) -> None:
    # GIVEN a fresh mock
    # WHEN two requests are made
    http.get(f"{upstream.base_url}/models")
    http.post(f"{upstream.base_url}/chat/completions", json=chat_body("counted"))

    # THEN both are counted and the last JSON body is remembered
    assert upstream.requests == 2
    assert upstream.last_body["model"] == "counted"


def test_delay_ms_adds_fixed_latency(http: httpx.Client) -> None:
    # GIVEN a mock with 200 ms latency
    with MockUpstream(delay_ms=200) as mock:
        started = time.monotonic()

        # WHEN a completion is requested
        resp = http.post(f"{mock.base_url}/chat/completions", json=chat_body())

    # THEN it took at least that long
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stopped_mock_refuses_connections(http: httpx.Client) -> None:
    # GIVEN a mock that answered once over a kept-alive connection
    mock = MockUpstream().start()
    http.get(f"{mock.base_url}/models")

    # WHEN it is stopped
    mock.stop()

    # THEN neither new nor pooled connections get an answer
    with pytest.raises(httpx.TransportError):
        http.get(f"{mock.base_url}/models")


def test_cli_prints_base_url_and_exits_on_sigterm() -> None:
    # GIVEN the CLI started on a free port
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.mock_upstream", "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()

        # WHEN it is queried and then sent SIGTERM
        resp = httpx.get(f"{base_url}/models", timeout=5)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    # THEN it served on 127.0.0.1 and exited cleanly
    assert base_url.startswith("http://127.0.0.1:")
    assert resp.status_code == 200
    assert code == 0


def test_demo_slow_streams_its_answer_one_word_per_chunk(
    monkeypatch: pytest.MonkeyPatch, sdk: openai.OpenAI
) -> None:
    # GIVEN the slow demo model, without its pause between words (so the test does not wait)
    import devtools.mock_upstream as mock_upstream

    monkeypatch.setattr(mock_upstream, "SLOW_WORD_SECONDS", 0.0)
    # WHEN it streams
    stream = sdk.chat.completions.create(model="demo-slow", messages=USER_MSG, stream=True)
    pieces = [chunk.choices[0].delta.content for chunk in stream if chunk.choices]
    # THEN each content chunk carries one word, and together they are the usual reply
    words = [piece for piece in pieces if piece]
    assert len(words) > 3 and all(len(word.split()) == 1 for word in words)
    assert (
        "".join(words)
        == sdk.chat.completions.create(model="demo-slow", messages=USER_MSG)
        .choices[0]
        .message.content
    )


def test_demo_slow_takes_the_duration_a_request_asks_for_streamed_or_whole(
    upstream: MockUpstream, sdk: openai.OpenAI
) -> None:
    # GIVEN the mock's pauses recorded instead of slept (so the test does not wait)
    from devtools.mock_upstream import SLOW_DURATION_METADATA, SLOW_WORD_SECONDS

    pauses: list[float] = []
    upstream._pause = lambda seconds: pauses.append(seconds) or True  # type: ignore[method-assign]
    asked = {"metadata": {SLOW_DURATION_METADATA: "12"}}

    # WHEN demo-slow is asked for 12 s, streamed and then whole, and once with a bad duration
    stream = sdk.chat.completions.create(
        model="demo-slow", messages=USER_MSG, stream=True, extra_body=asked
    )
    words = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    streamed_pauses = [p for p in pauses if p > 0]
    pauses.clear()
    whole = sdk.chat.completions.create(model="demo-slow", messages=USER_MSG, extra_body=asked)
    whole_pauses = [p for p in pauses if p > 0]
    pauses.clear()
    bad = {"metadata": {SLOW_DURATION_METADATA: "soon"}}
    list(
        sdk.chat.completions.create(
            model="demo-slow", messages=USER_MSG, stream=True, extra_body=bad
        )
    )

    # THEN the stream's words are spread evenly over the 12 s, the whole answer waits them
    # once, and a duration that is not a number leaves the usual pace
    assert len(streamed_pauses) == len(words) - 1
    assert math.isclose(sum(streamed_pauses), 12.0)
    assert whole_pauses == [12.0] and whole.choices[0].message.content == "".join(words)
    assert {p for p in pauses if p > 0} == {SLOW_WORD_SECONDS}
