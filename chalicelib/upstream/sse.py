"""Re-assemble an upstream server-sent-event stream into one complete body (pure).

Chalice cannot stream a response (aws/chalice#2078), so a ``stream: true`` call is read to its
end here and returned as one ``text/event-stream`` body that the OpenAI SDKs iterate as usual:
``data: <chunk JSON>`` events, then ``data: [DONE]``. On the way the assembler

* takes the usage from the chunk that carries it (the relay always asks upstream for it);
* passes that usage chunk on only if the client asked for usage itself, and otherwise strips it,
  so the client sees exactly what it would have seen from the provider;
* when upstream sent no usage, estimates it (flagged) and, if the client asked, adds a usage chunk;
* renames the model back to the client's name when the channel maps it to another one;
* refuses to grow past what a buffered Lambda response can carry.

A stream that ends without ``[DONE]`` was cut: its content is incomplete, so it is reported as a
failure rather than delivered as if it were whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeGuard

from chalicelib.core.token_count import estimate_completion_tokens

# Lambda caps a buffered response at 6 MB *after* the body is JSON-encoded into the proxy
# response, where quotes, newlines and non-ASCII characters grow. The limit is checked on that
# encoded size, with room left for headers.
MAX_RESPONSE_BYTES = 5_500_000
DONE = "[DONE]"


def encoded_size(text: str) -> int:
    """Bytes ``text`` takes inside the Lambda proxy response's JSON."""
    return len(json.dumps(text)) - 2


class StreamCut(Exception):
    """The stream ended before ``[DONE]``."""


class StreamFailed(Exception):
    """Upstream sent an error event or something that is not a chunk."""


class StreamTooLarge(Exception):
    """The assembled body would not fit in a buffered Lambda response."""


@dataclass(frozen=True)
class AssembledStream:
    body: bytes
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool


def usage_pair(usage: Any) -> tuple[int, int] | None:
    """(prompt, completion) tokens of an OpenAI ``usage`` object, or None if it is not one."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
    if _is_count(prompt) and _is_count(completion):
        return prompt, completion
    return None


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def generated_text(choices: Any, part: str) -> str:
    """All text a model produced in ``choices`` (``part`` is "delta" or "message")."""
    pieces: list[str] = []
    for choice in choices if isinstance(choices, list) else ():
        body = choice.get(part) if isinstance(choice, dict) else None
        if not isinstance(body, dict):
            continue
        for name in ("content", "reasoning_content", "refusal"):
            if isinstance(body.get(name), str):
                pieces.append(body[name])
        for call in body.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                pieces += [str(function.get("name") or ""), str(function.get("arguments") or "")]
    return "".join(pieces)


class SseAssembler:
    """Feed it the stream's lines one by one, then ``finish()``."""

    def __init__(
        self,
        *,
        client_model: str,
        upstream_model: str,
        client_wants_usage: bool,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.client_model = client_model
        self.upstream_model = upstream_model
        self.client_wants_usage = client_wants_usage
        self.max_bytes = max_bytes
        self.done = False
        self._events: list[str] = []
        self._size = 0
        self._data: list[str] = []
        self._event_type = ""
        self._text: list[str] = []
        self._usage: tuple[int, int] | None = None
        self._last_chunk: dict[str, Any] = {}

    # Parsing (the SSE format: "field: value" lines, events separated by a blank line) ----------
    def feed(self, line: str) -> None:
        if self.done:
            return
        if line == "":
            self._dispatch()
            return
        if line.startswith(":"):
            return  # a comment / keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value

    def _dispatch(self) -> None:
        data, event_type = "\n".join(self._data), self._event_type
        self._data, self._event_type = [], ""
        if not data:
            return
        if data.strip() == DONE:
            self.done = True
            return
        if event_type == "error":
            raise StreamFailed("upstream sent an error event")
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise StreamFailed("upstream sent an event that is not JSON") from exc
        if not isinstance(chunk, dict) or ("error" in chunk and "choices" not in chunk):
            raise StreamFailed("upstream sent an error or an unexpected event")
        self._take(chunk, data)

    # What each chunk contributes ----------------------------------------------------------------
    def _take(self, chunk: dict[str, Any], data: str) -> None:
        self._last_chunk = chunk
        self._text.append(generated_text(chunk.get("choices"), "delta"))
        usage = usage_pair(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        changed = False
        if "usage" in chunk and not self.client_wants_usage:
            if usage is not None and not chunk.get("choices"):
                return  # the usage-only chunk the client did not ask for
            del chunk["usage"]
            changed = True
        if self.client_model != self.upstream_model and chunk.get("model") == self.upstream_model:
            chunk["model"] = self.client_model
            changed = True
        self._emit(_compact(chunk) if changed else data)

    def _emit(self, data: str) -> None:
        event = f"data: {data}\n\n"
        self._size += encoded_size(event)
        if self._size > self.max_bytes:
            raise StreamTooLarge()
        self._events.append(event)

    def finish(self, prompt_tokens_bound: int) -> AssembledStream:
        """The complete body; raises ``StreamCut`` if ``[DONE]`` never came."""
        if not self.done and self._data:
            self._dispatch()  # a last event without its blank line
        if not self.done:
            raise StreamCut()
        estimated = self._usage is None
        if self._usage is not None:
            prompt, completion = self._usage
        else:
            prompt = prompt_tokens_bound
            completion = estimate_completion_tokens("".join(self._text))
            if self.client_wants_usage:
                self._emit(_compact(self._usage_chunk(prompt, completion)))
        self._emit(DONE)
        return AssembledStream(
            body="".join(self._events).encode("utf-8"),
            prompt_tokens=prompt,
            completion_tokens=completion,
            usage_estimated=estimated,
        )

    def _usage_chunk(self, prompt: int, completion: int) -> dict[str, Any]:
        """The chunk the client asked for with include_usage, built from our estimate."""
        last = self._last_chunk
        return {
            "id": last.get("id", ""),
            "object": "chat.completion.chunk",
            "created": last.get("created", 0),
            "model": self.client_model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
