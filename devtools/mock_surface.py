"""The demo upstream's Responses API, legacy completions and moderations (deterministic).

Kept apart from ``mock_upstream`` (which routes here) so each kind of endpoint stays readable.
Token counts follow the mock's one rule (one token per started four characters, see
``mock_upstream.count_tokens``), so tests can assert exact charges:

* a Response's ``input_tokens`` are its instructions' and input's tokens, plus 3 per input
  message, plus everything a ``previous_response_id`` carries along (that response's input and
  output tokens); what was carried along is reported as ``cached_tokens``, as a provider's prompt
  cache would serve it; a ``conversation``'s items are carried along the same way
  (``mock_conversations``), and the response's input and output are added to it.
  ``output_tokens`` are the reply's.
* a completion's ``prompt_tokens`` are its prompt's (each prompt's, for a list of them).
* moderations report no usage (OpenAI's do not); an input containing "flag-me" is flagged.

Responses are kept per server (``MockUpstream.responses``) and can be read, listed, cancelled
and deleted by id, so a follow-up that reaches another server fails as it would at a provider.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import TYPE_CHECKING, Any

from devtools.mock_upstream import (
    CHARS_PER_TOKEN,
    ECHO_CHARS,
    REPLY_PREFIX,
    TOKENS_PER_MESSAGE,
    WORDS_PER_CHUNK,
    count_tokens,
    openai_error,
    split_pieces,
)

if TYPE_CHECKING:
    from devtools.mock_upstream import _Handler

# The module imports mock_upstream's helpers; mock_upstream imports it where it routes, lazily.

SURFACE_PATHS = ("/v1/responses", "/v1/completions", "/v1/moderations")
RESPONSES_PREFIX = "/v1/responses/"
MODERATION_CATEGORIES = ("harassment", "hate", "self-harm", "sexual", "violence")


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        return ""
    content = item.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(item.get("output", "")) if item.get("type") == "function_call_output" else ""


def _input_items(raw: Any) -> list[dict[str, Any]]:
    """``input`` as the list of items OpenAI's input_items endpoint shows."""
    if isinstance(raw, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": raw}]}
        ]
    return [item for item in raw if isinstance(item, dict)] if isinstance(raw, list) else []


def _bad(handler: _Handler, message: str, param: str | None = None, status: int = 400) -> None:
    body = openai_error(message, "invalid_request_error")
    body["error"]["param"] = param
    handler._send_json(status, body)


# Responses ---------------------------------------------------------------------------------
def responses_post(handler: _Handler, body: dict[str, Any], model: str) -> None:
    raw_input = body.get("input")
    if raw_input is None or not isinstance(raw_input, (str, list)):
        _bad(handler, "'input' must be a string or an array.", "input")
        return
    owner = handler.owner
    previous_id = body.get("previous_response_id")
    carried = 0
    if previous_id is not None:
        previous = owner.responses.get(str(previous_id))
        if previous is None:
            _bad(
                handler,
                f"Previous response with id '{previous_id}' not found.",
                "previous_response_id",
            )
            return
        usage = previous[0]["usage"]
        carried = usage["input_tokens"] + usage["output_tokens"]
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    history: list[dict[str, Any]] | None = None
    if isinstance(conversation, str):
        from devtools import mock_conversations

        history = mock_conversations.continued(handler, conversation)
        if history is None:
            return
        carried = mock_conversations.conversation_tokens(history)
    items = _input_items(raw_input)
    texts = [_item_text(item) for item in items]
    instructions = body.get("instructions") if isinstance(body.get("instructions"), str) else None
    input_tokens = (
        carried
        + sum(TOKENS_PER_MESSAGE + count_tokens(text) for text in texts)
        + (count_tokens(instructions) if instructions else 0)
    )
    limit = body.get("max_output_tokens")
    reply = REPLY_PREFIX + (texts[-1] if texts else "")[:ECHO_CHARS]
    status, incomplete = "completed", None
    if isinstance(limit, int) and count_tokens(reply) > limit:
        reply = reply[: limit * CHARS_PER_TOKEN]
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    response_id = f"resp_{uuid.uuid4().hex}"
    message = {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}],
    }
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": instructions,
        "max_output_tokens": limit,
        "model": model,
        "output": [message],
        "parallel_tool_calls": True,
        "previous_response_id": previous_id,
        "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True) is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": carried},
            "output_tokens": count_tokens(reply),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": input_tokens + count_tokens(reply),
        },
        "user": None,
        "metadata": {},
    }
    if history is not None:
        response["conversation"] = {"id": conversation}
        history.extend(
            {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", **item} for item in items
        )
        history.append(message)
    if model == "fail-nousage":
        response["usage"] = None
    if response["store"]:
        owner.responses[response_id] = (response, items)
    if body.get("stream") is True:
        _stream_response(handler, response, message, reply, cut=model == "fail-cut")
        return
    handler._send_json(200, response)


def _stream_response(
    handler: _Handler, response: dict[str, Any], message: dict[str, Any], reply: str, cut: bool
) -> None:
    """OpenAI's typed events, from ``response.created`` to ``response.completed``."""
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    item_id = message["id"]
    empty_item = {**message, "status": "in_progress", "content": []}
    empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    finished = "incomplete" if response["status"] == "incomplete" else "completed"
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
        {"type": "response.output_item.added", "output_index": 0, "item": empty_item},
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": empty_part,
        },
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in split_pieces(reply, WORDS_PER_CHUNK)
    ]
    events += [
        {
            "type": "response.output_text.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "text": reply,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": message["content"][0],
        },
        {"type": "response.output_item.done", "output_index": 0, "item": message},
        {"type": f"response.{finished}", "response": response},
    ]
    _start_events(handler)
    for number, event in enumerate(events[:4] if cut else events):
        event = {**event, "sequence_number": number}
        data = json.dumps(event).encode("utf-8")
        handler._write_chunk(b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n")
    if cut:
        handler.close_connection = True
        return
    handler._write_chunk(b"")


def _start_events(handler: _Handler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream; charset=utf-8")
    handler.send_header("Cache-Control", "no-cache")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def stored_response(handler: _Handler, method: str, path: str) -> None:
    """GET / DELETE /v1/responses/{id}, POST .../cancel, GET .../input_items."""
    rest = path[len(RESPONSES_PREFIX) :]
    response_id, _, action = rest.partition("/")
    kept = handler.owner.responses.get(response_id)
    if kept is None or action not in ("", "cancel", "input_items"):
        _bad(handler, f"Response with id '{response_id}' not found.", None, 404)
        return
    response, items = kept
    if method == "DELETE" and not action:
        del handler.owner.responses[response_id]
        handler._send_json(200, {"id": response_id, "object": "response", "deleted": True})
    elif method == "GET" and not action:
        handler._send_json(200, response)
    elif method == "POST" and action == "cancel":
        handler._send_json(200, {**response, "status": "cancelled"})
    elif method == "GET" and action == "input_items":
        data = [{"id": f"msg_in_{i}", **item} for i, item in enumerate(items)]
        handler._send_json(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            },
        )
    else:
        _bad(handler, f"Use another method on {path}.", None, 405)


# Legacy completions --------------------------------------------------------------------------
def completions_post(handler: _Handler, body: dict[str, Any], model: str) -> None:
    raw = body.get("prompt")
    prompts = [raw] if isinstance(raw, str) else raw
    if not isinstance(prompts, list) or not prompts:
        _bad(handler, "'prompt' must be a string or an array.", "prompt")
        return
    texts = [p if isinstance(p, str) else json.dumps(p) for p in prompts]
    limit = body.get("max_tokens", 16)
    if not isinstance(limit, int) or limit < 1:
        _bad(handler, "max_tokens must be a positive integer.", "max_tokens")
        return
    choices: list[dict[str, Any]] = []
    replies: list[str] = []
    for index, text in enumerate(texts):
        reply, finish = REPLY_PREFIX + text[:ECHO_CHARS], "stop"
        if count_tokens(reply) > limit:
            reply, finish = reply[: limit * CHARS_PER_TOKEN], "length"
        replies.append(reply)
        choices.append({"text": reply, "index": index, "logprobs": None, "finish_reason": finish})
    prompt_tokens = sum(len(p) if isinstance(p, list) else count_tokens(str(p)) for p in prompts)
    completion_tokens = sum(count_tokens(reply) for reply in replies)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    head = {
        "id": f"cmpl-{uuid.uuid4().hex[:24]}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
    }
    with_usage = model != "fail-nousage"
    if body.get("stream") is not True:
        handler._send_json(
            200, {**head, "choices": choices, **({"usage": usage} if with_usage else {})}
        )
        return
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    _start_events(handler)
    for choice, reply in zip(choices, replies, strict=True):
        for piece in split_pieces(reply, WORDS_PER_CHUNK):
            part = {**choice, "text": piece, "finish_reason": None}
            handler._write_event({**head, "choices": [part]})
        handler._write_event({**head, "choices": [{**choice, "text": ""}]})
    if include_usage and with_usage:
        handler._write_event({**head, "choices": [], "usage": usage})
    handler._write_chunk(b"data: [DONE]\n\n")
    handler._write_chunk(b"")


# Moderations ---------------------------------------------------------------------------------
def moderations_post(handler: _Handler, body: dict[str, Any], model: str) -> None:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs:
        _bad(handler, "'input' must be a string or an array.", "input")
        return
    results = []
    for item in inputs:
        flagged = "flag-me" in (item if isinstance(item, str) else json.dumps(item))
        results.append(
            {
                "flagged": flagged,
                "categories": {
                    name: flagged and name == "violence" for name in MODERATION_CATEGORIES
                },
                "category_scores": {
                    name: 0.9 if flagged and name == "violence" else 0.001
                    for name in MODERATION_CATEGORIES
                },
            }
        )
    handler._send_json(
        200, {"id": f"modr-{uuid.uuid4().hex[:24]}", "model": model, "results": results}
    )


def handles(path: str) -> bool:
    return path in SURFACE_PATHS or path.startswith(RESPONSES_PREFIX)


def post(handler: _Handler, path: str, body: dict[str, Any], model: str) -> None:
    """Route one POST of this module's paths (after the generic faults were applied)."""
    if path == "/v1/responses":
        responses_post(handler, body, model)
    elif path == "/v1/completions":
        completions_post(handler, body, model)
    elif path == "/v1/moderations":
        moderations_post(handler, body, model)
    else:
        stored_response(handler, "POST", path)
