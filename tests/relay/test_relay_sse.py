"""SSE assembly: a complete body the OpenAI SDK iterates, with usage handled as promised."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.upstream.sse import SseAssembler, StreamCut, StreamFailed, StreamTooLarge


def chunk(content: str | None = None, *, usage: dict[str, int] | None = None, **extra: Any) -> str:
    choices = [] if content is None else [{"index": 0, "delta": {"content": content}}]
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": extra.pop("model", "upstream-model"),
        "choices": choices,
        **extra,
    }
    if usage is not None:
        body["usage"] = usage
    return "data: " + json.dumps(body)


USAGE = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}


def upstream_lines(*events: str, done: bool = True) -> list[str]:
    lines: list[str] = []
    for event in events:
        lines += [event, ""]
    if done:
        lines += ["data: [DONE]", ""]
    return lines


def assemble(lines: list[str], *, wants_usage: bool, client_model: str = "upstream-model") -> Any:
    assembler = SseAssembler(
        client_model=client_model, upstream_model="upstream-model", client_wants_usage=wants_usage
    )
    for line in lines:
        assembler.feed(line)
    return assembler.finish(prompt_tokens_bound=99)


def test_usage_chunk_is_stripped_when_the_client_did_not_ask(
    sdk_chunks: Callable[[bytes], list[Any]],
) -> None:
    # GIVEN an upstream stream with content and a final usage-only chunk
    lines = upstream_lines(chunk("Hel"), chunk("lo"), chunk(None, usage=USAGE))
    # WHEN assembled for a client that did not ask for usage
    result = assemble(lines, wants_usage=False)
    # THEN the usage is taken for billing but the client's SDK sees only content chunks
    assert (result.prompt_tokens, result.completion_tokens, result.usage_estimated) == (
        11,
        5,
        False,
    )
    parsed = sdk_chunks(result.body)
    assert "".join(c.choices[0].delta.content for c in parsed) == "Hello"
    assert all(c.usage is None for c in parsed)
    assert result.body.endswith(b"data: [DONE]\n\n")


def test_usage_chunk_is_passed_on_when_the_client_asked(
    sdk_chunks: Callable[[bytes], list[Any]],
) -> None:
    # GIVEN the same stream
    lines = upstream_lines(chunk("Hi"), chunk(None, usage=USAGE))
    # WHEN assembled for a client that asked for usage
    result = assemble(lines, wants_usage=True)
    # THEN the SDK's last chunk carries upstream's usage
    parsed = sdk_chunks(result.body)
    assert parsed[-1].usage is not None
    assert parsed[-1].usage.completion_tokens == 5
    assert parsed[-1].choices == []


def test_missing_usage_is_estimated_flagged_and_given_to_a_client_that_asked(
    sdk_chunks: Callable[[bytes], list[Any]],
) -> None:
    # GIVEN a stream without any usage (9 ASCII characters of content)
    lines = upstream_lines(chunk("abcd"), chunk("efghi"))
    # WHEN assembled for a client that asked for usage
    result = assemble(lines, wants_usage=True)
    # THEN usage is the prompt bound and ceil(9 / 4) completion tokens, flagged as estimated
    assert (result.prompt_tokens, result.completion_tokens, result.usage_estimated) == (99, 3, True)
    # AND the client gets a usage chunk with that estimate
    parsed = sdk_chunks(result.body)
    assert parsed[-1].usage is not None
    assert parsed[-1].usage.total_tokens == 102


def test_missing_usage_adds_no_chunk_for_a_client_that_did_not_ask() -> None:
    # GIVEN a stream without usage  WHEN assembled without include_usage
    result = assemble(upstream_lines(chunk("abcd")), wants_usage=False)
    # THEN the body is the content chunk and [DONE] only
    assert result.body.count(b"data: ") == 2
    assert result.usage_estimated is True


def test_mapped_model_name_is_renamed_back_to_the_clients_name() -> None:
    # GIVEN a stream from a channel that maps gpt-4o-mini to "upstream-model"
    lines = upstream_lines(chunk("x"), chunk(None, usage=USAGE))
    # WHEN assembled for a client that asked for gpt-4o-mini
    result = assemble(lines, wants_usage=True, client_model="gpt-4o-mini")
    # THEN no event names the upstream model
    assert b"upstream-model" not in result.body
    assert result.body.count(b'"model":"gpt-4o-mini"') == 2


def test_stream_without_done_is_reported_as_cut() -> None:
    # GIVEN a stream that stops after some content
    lines = upstream_lines(chunk("partial"), done=False)
    # WHEN finished  THEN it is a cut, not a short answer
    with pytest.raises(StreamCut):
        assemble(lines, wants_usage=False)


def test_error_event_mid_stream_fails_the_stream() -> None:
    # GIVEN an error object where a chunk should be
    lines = upstream_lines(chunk("a"), 'data: {"error": {"message": "overloaded"}}')
    # WHEN assembled  THEN it is a failure
    with pytest.raises(StreamFailed):
        assemble(lines, wants_usage=False)


def test_comments_and_multi_line_data_follow_the_sse_format() -> None:
    # GIVEN a keep-alive comment and a chunk whose JSON is split over two data lines
    event = json.loads(chunk("ok")[len("data: ") :])
    text = json.dumps(event, indent=1).split("\n", 1)
    lines = [": keep-alive", "", f"data: {text[0]}", f"data: {text[1]}", "", "data: [DONE]"]
    # WHEN assembled (the last event has no blank line after it)
    result = assemble(lines, wants_usage=False)
    # THEN the chunk is kept and the stream counts as complete
    assert b'"content": "ok"' in result.body
    assert result.completion_tokens == 1


def test_assembled_body_beyond_the_limit_is_refused() -> None:
    # GIVEN an assembler limited to 1 KB and a stream of 2 KB of content
    assembler = SseAssembler(
        client_model="m", upstream_model="m", client_wants_usage=False, max_bytes=1_024
    )
    # WHEN fed  THEN it refuses before the body outgrows the limit
    with pytest.raises(StreamTooLarge):
        for _ in range(20):
            assembler.feed(chunk("x" * 100))
            assembler.feed("")
