"""The Responses API's typed event stream, event by event, for the client (pure).

OpenAI streams a Response as named events::

    event: response.created            data: {"type": "response.created", "response": {...}}
    event: response.output_text.delta  data: {"type": "response.output_text.delta", "delta": "Hi"}
    ...
    event: response.completed          data: {"type": "response.completed", "response": {...,
                                              "usage": {"input_tokens": ..., "output_tokens": ...,
                                                        "input_tokens_details": {...}}}}

There is no ``data: [DONE]``: the stream is whole once a terminal event (``response.completed``,
``response.incomplete`` or ``response.failed``) came, and cut otherwise. ``ResponsesTranslator``
has ``SseTranslator``'s interface (``feed``, ``flush``, ``done``, ``final_usage``,
``closing_events``), so the stream reader takes either. Events are passed on as they are, but for
the model name, put back to the client's when the channel maps it to another one. The usage, the
response's id and its conversation come from the terminal event (the id already from
``response.created``).
"""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core.token_count import estimate_completion_tokens
from chalicelib.upstream.sse import EventReader, StreamFailed, Translated, usage_counts

TERMINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
# Events whose ``delta`` is text the model produced (the estimate when no usage came).
TEXT_DELTAS = (
    "response.output_text.delta",
    "response.refusal.delta",
    "response.function_call_arguments.delta",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.custom_tool_call_input.delta",
)


def typed_event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"


class ResponsesTranslator(EventReader):
    """Upstream lines in, typed events out; see the module docstring."""

    def __init__(self, *, client_model: str, upstream_model: str, client_wants_usage: bool) -> None:
        super().__init__()
        self.client_model = client_model
        self.upstream_model = upstream_model
        self.usage: tuple[int, int] | None = None
        self.cached_tokens = 0
        self.response_id = ""
        self.stored = True
        self.conversation_id = ""

    def _dispatch(self) -> Translated | None:
        data, named = self._take_event()
        if not data:
            return None
        try:
            payload = json.loads(data)
        except ValueError as exc:
            raise StreamFailed("upstream sent an event that is not JSON") from exc
        if not isinstance(payload, dict):
            raise StreamFailed("upstream sent an unexpected event")
        kind = payload.get("type") if isinstance(payload.get("type"), str) else named
        if kind == "error" or named == "error":
            raise StreamFailed("upstream sent an error event")
        text = (
            payload["delta"]
            if kind in TEXT_DELTAS and isinstance(payload.get("delta"), str)
            else ""
        )
        self._text.append(text)
        usage: tuple[int, int] | None = None
        response = payload.get("response")
        changed = False
        if isinstance(response, dict):
            self._note(response)
            counted = usage_counts(response.get("usage"))
            if counted is not None:
                usage = counted[:2]
                self.usage, self.cached_tokens = usage, counted[2]
            if (
                self.client_model != self.upstream_model
                and response.get("model") == self.upstream_model
            ):
                response["model"] = self.client_model
                changed = True
        if kind in TERMINAL_EVENTS:
            self.done = True
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")) if changed else data
        return Translated(typed_event(kind or "message", body), text, usage)

    def _note(self, response: dict[str, Any]) -> None:
        if isinstance(response.get("id"), str):
            self.response_id = response["id"]
        if response.get("store") is False:
            self.stored = False
        conversation = response.get("conversation")
        if isinstance(conversation, dict) and isinstance(conversation.get("id"), str):
            self.conversation_id = conversation["id"]

    def final_usage(self, prompt_tokens_bound: int) -> tuple[int, int, bool]:
        if self.usage is not None:
            return (*self.usage, False)
        return prompt_tokens_bound, estimate_completion_tokens(self.text), True

    def closing_events(self, prompt_tokens_bound: int) -> list[str]:
        """Nothing: the terminal event closes a Responses stream."""
        return []
