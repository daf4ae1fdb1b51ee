"""Checks on OpenAI request bodies, before any money moves (pure).

Only the fields the gateway relies on are checked (model, messages/input, stream, token limits);
everything else passes through to the provider untouched, as clients expect of a proxy. The
table below is the schema: field -> (accepted JSON types, required?). Kept free of pydantic so
the relay's cold start stays short.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from chalicelib.core.errors import InvalidRequest

Kind = Literal["chat", "embeddings"]

_INT = (int,)
FIELDS: dict[Kind, dict[str, tuple[tuple[type, ...], bool]]] = {
    "chat": {
        "model": ((str,), True),
        "messages": ((list,), True),
        "stream": ((bool,), False),
        "stream_options": ((dict,), False),
        "max_tokens": (_INT, False),
        "max_completion_tokens": (_INT, False),
        "n": (_INT, False),
    },
    "embeddings": {
        "model": ((str,), True),
        "input": ((str, list), True),
    },
}
TYPE_NAMES = {
    str: "a string",
    list: "an array",
    bool: "a boolean",
    int: "an integer",
    dict: "an object",
}


def parse(kind: Kind, raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    for name, (types, required) in FIELDS[kind].items():
        value = payload.get(name)
        if value is None:
            if required:
                raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
            continue
        # bool is an int in Python; JSON true is not a valid max_tokens.
        if not isinstance(value, types) or (types == _INT and isinstance(value, bool)):
            wanted = " or ".join(TYPE_NAMES[t] for t in types)
            raise InvalidRequest(f"'{name}' must be {wanted}.", param=name)
    if not payload["model"].strip():
        raise InvalidRequest("'model' must not be empty.", param="model")
    if kind == "chat":
        _check_chat(payload)
    elif not payload["input"]:
        raise InvalidRequest("'input' must not be empty.", param="input")
    return payload


def _check_chat(payload: dict[str, Any]) -> None:
    messages = payload["messages"]
    if not messages:
        raise InvalidRequest("'messages' must contain at least one message.", param="messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidRequest(
                f"messages[{index}] must be an object with a 'role'.", param=f"messages.{index}"
            )
    for name in ("max_tokens", "max_completion_tokens"):
        if name in payload and payload[name] is not None and payload[name] < 1:
            raise InvalidRequest(f"'{name}' must be at least 1.", param=name)
    caps = [payload[name] for name in OUTPUT_CAP_FIELDS if payload.get(name) is not None]
    if len(set(caps)) > 1:
        # Providers differ in which one they honour; the reservation must size the one they use.
        raise InvalidRequest(
            "Give max_tokens or max_completion_tokens, not both with different values.",
            param="max_tokens",
        )
    if payload.get("n") not in (None, 1):
        raise InvalidRequest("Only n = 1 is supported.", param="n")
    options = payload.get("stream_options")
    if options is not None and not payload.get("stream"):
        raise InvalidRequest(
            "stream_options is only allowed with stream: true.", param="stream_options"
        )


# The output caps of chat; ``parse`` lets a body give both only with the same value.
OUTPUT_CAP_FIELDS = ("max_completion_tokens", "max_tokens")


def requested_output(payload: dict[str, Any]) -> int | None:
    for name in OUTPUT_CAP_FIELDS:
        if payload.get(name) is not None:
            return int(payload[name])
    return None


def set_output_cap(payload: dict[str, Any], tokens: int) -> None:
    """Send upstream exactly the cap that was reserved, in every cap field the client used.

    The field the client chose is kept (o-series models want ``max_completion_tokens``); with
    none, ``max_tokens``. No field can carry a larger cap than the reservation was sized for.
    """
    given = [name for name in OUTPUT_CAP_FIELDS if payload.get(name) is not None]
    for name in given or ["max_tokens"]:
        payload[name] = tokens


def client_wants_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options") or {}
    return bool(options.get("include_usage"))
