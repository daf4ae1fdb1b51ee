"""Translate an upstream server-sent-event stream for the client, event by event (pure).

``SseTranslator`` turns upstream lines into the events the client gets, as they come (the relay
streams them on at once); ``SseAssembler`` collects them into one complete ``text/event-stream``
body for callers that need the whole answer. Either way the client sees ``data: <chunk JSON>``
events, then ``data: [DONE]``, and on the way the translator

* takes the usage from the chunk that carries it (the relay always asks upstream for it);
* passes that usage chunk on only if the client asked for usage itself, and otherwise strips it,
  so the client sees exactly what it would have seen from the provider;
* when upstream sent no usage, estimates it (flagged) and, if the client asked, adds a usage chunk;
* renames the model back to the client's name when the channel maps it to another one;
* (the assembler) refuses to grow past what a buffered Lambda response can carry.

A stream that ends without ``[DONE]`` was cut: its content is incomplete, so the assembler
reports it as a failure rather than deliver it as if it were whole.
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


def usage_counts(usage: Any) -> tuple[int, int, int] | None:
    """(input, output, cached input) tokens of a ``usage`` object, in either naming: chat and
    completions' ``prompt_tokens`` / ``completion_tokens`` / ``prompt_tokens_details``, or the
    Responses API's ``input_tokens`` / ``output_tokens`` / ``input_tokens_details``."""
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage:
        names = ("input_tokens", "output_tokens", "input_tokens_details")
    else:
        names = ("prompt_tokens", "completion_tokens", "prompt_tokens_details")
    prompt, completion = usage.get(names[0]), usage.get(names[1], 0)
    if not (_is_count(prompt) and _is_count(completion)):
        return None
    details = usage.get(names[2])
    cached = details.get("cached_tokens", 0) if isinstance(details, dict) else 0
    return prompt, completion, min(cached, prompt) if _is_count(cached) else 0


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def generated_text(choices: Any, part: str) -> str:
    """All text a model produced in ``choices`` (``part`` is "delta" or "message")."""
    pieces: list[str] = []
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and isinstance(choice.get("text"), str):
            pieces.append(choice["text"])  # a legacy completion's choice
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


def response_text(output: Any) -> str:
    """All text a Responses ``output`` holds: message text, refusals, tool call arguments."""
    pieces: list[str] = []
    for item in output if isinstance(output, list) else ():
        if not isinstance(item, dict):
            continue
        for name in ("name", "arguments", "code", "input"):
            if isinstance(item.get(name), str):
                pieces.append(item[name])
        for part in item.get("content") or ():
            if isinstance(part, dict):
                pieces += [part[k] for k in ("text", "refusal") if isinstance(part.get(k), str)]
        for part in item.get("summary") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                pieces.append(part["text"])
    return "".join(pieces)


@dataclass(frozen=True)
class Translated:
    """What one upstream event gives: the event for the client (None: nothing to send), the
    text the model produced in it, and the usage it carried."""

    event: str | None
    text: str = ""
    usage: tuple[int, int] | None = None


class EventReader:
    """The SSE format ("field: value" lines, events separated by a blank line), read line by line.

    ``feed(line)`` collects an event's ``data``/``event`` fields and hands the finished event to
    ``_dispatch`` (each translator's own); ``done`` stops reading. Both translators share this.
    """

    def __init__(self) -> None:
        self.done = False
        self._text: list[str] = []
        self._data: list[str] = []
        self._event_type = ""

    @property
    def text(self) -> str:
        """All text the model produced so far."""
        return "".join(self._text)

    def feed(self, line: str) -> Translated | None:
        if self.done:
            return None
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment / keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event_type = value
        return None

    def flush(self) -> Translated | None:
        """The last event, if upstream ended it without its blank line."""
        return self._dispatch() if not self.done and self._data else None

    def _take_event(self) -> tuple[str, str]:
        """The collected event's data and name, leaving the reader ready for the next one."""
        data, event_type = "\n".join(self._data), self._event_type
        self._data, self._event_type = [], ""
        return data, event_type

    def _dispatch(self) -> Translated | None:
        raise NotImplementedError


class SseTranslator(EventReader):
    """Upstream SSE lines in, client events out, one event at a time.

    ``feed(line)`` returns a ``Translated`` when the line completes an event, else None; once
    ``done`` (upstream sent ``[DONE]``), ``closing_events`` gives what the client still needs.
    Raises ``StreamFailed`` for an error event or anything that is not a chunk.
    """

    def __init__(self, *, client_model: str, upstream_model: str, client_wants_usage: bool) -> None:
        super().__init__()
        self.client_model = client_model
        self.upstream_model = upstream_model
        self.client_wants_usage = client_wants_usage
        self.usage: tuple[int, int] | None = None
        self.cached_tokens = 0
        self._last_chunk: dict[str, Any] = {}

    def _dispatch(self) -> Translated | None:
        data, event_type = self._take_event()
        if not data:
            return None
        if data.strip() == DONE:
            self.done = True
            return None
        if event_type == "error":
            raise StreamFailed("upstream sent an error event")
        try:
            chunk = json.loads(data)
        except ValueError as exc:
            raise StreamFailed("upstream sent an event that is not JSON") from exc
        if not isinstance(chunk, dict) or ("error" in chunk and "choices" not in chunk):
            raise StreamFailed("upstream sent an error or an unexpected event")
        return self._take(chunk, data)

    # What each chunk contributes ----------------------------------------------------------------
    def _take(self, chunk: dict[str, Any], data: str) -> Translated:
        self._last_chunk = chunk
        text = generated_text(chunk.get("choices"), "delta")
        self._text.append(text)
        counted = usage_counts(chunk.get("usage"))
        usage = counted[:2] if counted is not None else None
        if counted is not None:
            self.usage, self.cached_tokens = counted[:2], counted[2]
        changed = False
        if "usage" in chunk and not self.client_wants_usage:
            if usage is not None and not chunk.get("choices"):
                return Translated(None, text, usage)  # the usage-only chunk nobody asked for
            del chunk["usage"]
            changed = True
        if self.client_model != self.upstream_model and chunk.get("model") == self.upstream_model:
            chunk["model"] = self.client_model
            changed = True
        return Translated(event(_compact(chunk) if changed else data), text, usage)

    def final_usage(self, prompt_tokens_bound: int) -> tuple[int, int, bool]:
        """(prompt, completion, estimated): upstream's usage, else an estimate from the text."""
        if self.usage is not None:
            return (*self.usage, False)
        return prompt_tokens_bound, estimate_completion_tokens(self.text), True

    def closing_events(self, prompt_tokens_bound: int) -> list[str]:
        """After ``[DONE]``: our usage chunk if the client asked and upstream sent none, then
        ``[DONE]``."""
        closing: list[str] = []
        if self.usage is None and self.client_wants_usage:
            prompt, completion, _ = self.final_usage(prompt_tokens_bound)
            closing.append(event(_compact(self._usage_chunk(prompt, completion))))
        return [*closing, event(DONE)]

    def _usage_chunk(self, prompt: int, completion: int) -> dict[str, Any]:
        """The chunk the client asked for with include_usage, built from our estimate."""
        last = self._last_chunk
        return {
            "id": last.get("id", ""),
            "object": last.get("object", "chat.completion.chunk"),
            "created": last.get("created", 0),
            "model": self.client_model,
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def event(data: str) -> str:
    """One server-sent event carrying ``data``, OpenAI's framing."""
    return f"data: {data}\n\n"


class SseAssembler:
    """The whole stream as one body: feed it the lines one by one, then ``finish()``."""

    def __init__(
        self,
        *,
        client_model: str,
        upstream_model: str,
        client_wants_usage: bool,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.translator = SseTranslator(
            client_model=client_model,
            upstream_model=upstream_model,
            client_wants_usage=client_wants_usage,
        )
        self.max_bytes = max_bytes
        self._events: list[str] = []
        self._size = 0

    @property
    def done(self) -> bool:
        return self.translator.done

    def feed(self, line: str) -> None:
        self._keep(self.translator.feed(line))

    def _keep(self, translated: Translated | None) -> None:
        if translated is not None and translated.event is not None:
            self._emit(translated.event)

    def _emit(self, text: str) -> None:
        self._size += encoded_size(text)
        if self._size > self.max_bytes:
            raise StreamTooLarge()
        self._events.append(text)

    def finish(self, prompt_tokens_bound: int) -> AssembledStream:
        """The complete body; raises ``StreamCut`` if ``[DONE]`` never came."""
        self._keep(self.translator.flush())
        if not self.translator.done:
            raise StreamCut()
        for closing in self.translator.closing_events(prompt_tokens_bound):
            self._emit(closing)
        prompt, completion, estimated = self.translator.final_usage(prompt_tokens_bound)
        return AssembledStream(
            body="".join(self._events).encode("utf-8"),
            prompt_tokens=prompt,
            completion_tokens=completion,
            usage_estimated=estimated,
        )


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
