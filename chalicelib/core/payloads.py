"""Checks on OpenAI request bodies, before any money moves (pure).

Only the fields the gateway relies on are checked (model, messages/input, stream, token limits);
everything else passes through to the provider untouched, as clients expect of a proxy. The
table below is the schema: field -> (accepted JSON types, required?). Kept free of pydantic so
the relay's cold start stays short.

``load_json`` holds the limits every body must meet whatever the edge (Chalice routes, the
management schemas, a future ASGI relay): it parses, and refuses as a 400 what would otherwise
fail later as a 5xx, namely nesting deeper than any real request (the parser and every later
``json.dumps`` recurse), lone surrogates (valid JSON escapes, but no UTF-8 encoder accepts them,
so the upstream body or the error message echoing them could not be sent) and non-finite
numbers (``NaN``, ``1e999``: Python's parser takes them, JSON has no way to send them on).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Literal

from chalicelib.core.errors import InvalidRequest, NotFound

# chat, embeddings, responses, completions and moderations are checked here; images, audio
# and video by ``core.media``.
Kind = Literal[
    "chat",
    "embeddings",
    "responses",
    "completions",
    "moderations",
    "images",
    "speech",
    "transcription",
    "video",
]

MAX_DEPTH = 64
# Above the largest output any provider documents (a few hundred thousand tokens); a value past
# it is a mistake, and past 38 digits DynamoDB could not even store the reservation it sizes.
MAX_OUTPUT_TOKENS = 1_000_000
MAX_MODEL_CHARS = 256
# Path ids (token, account, channel ids, model and group names) are at most 128 characters
# wherever they are created; DynamoDB refuses keys above 2,048 bytes with a 5xx-looking error.
MAX_ID_CHARS = 256

_INT = (int,)
FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
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
    "responses": {
        "model": ((str,), True),
        "input": ((str, list), False),
        "instructions": ((str,), False),
        "stream": ((bool,), False),
        "max_output_tokens": (_INT, False),
        "previous_response_id": ((str,), False),
        "conversation": ((str, dict), False),
        "store": ((bool,), False),
        "background": ((bool,), False),
        "tools": ((list,), False),
    },
    "completions": {
        "model": ((str,), True),
        "prompt": ((str, list), True),
        "stream": ((bool,), False),
        "stream_options": ((dict,), False),
        "max_tokens": (_INT, False),
        "n": (_INT, False),
        "best_of": (_INT, False),
        "suffix": ((str,), False),
    },
    "moderations": {
        # OpenAI defaults the model; the gateway needs it named to price the call.
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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(raw: bytes | str) -> Any:
    """The JSON value of ``raw``, or a 400 naming where it breaks the limits above."""
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _too_deep() from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("The request body is not valid JSON.") from exc
    check_json(value)
    return value


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"The request body is nested more than {MAX_DEPTH} levels deep.")


def is_text(value: str) -> bool:
    """True if ``value`` can be encoded as UTF-8 (it holds no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_json(value: Any) -> None:
    """Refuse nesting beyond ``MAX_DEPTH``, lone surrogates and non-finite numbers.

    Iterative, so a value nested deeper than the interpreter's recursion limit is refused too.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    # Children are pushed last-first, so the first offence in document order is the one named.
    while stack:
        item, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise _too_deep()
        if isinstance(item, str):
            if not is_text(item):
                raise _not_text(path)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidRequest(
                    f"{_where(path)} must be a finite number.", param=".".join(path) or None
                )
        elif isinstance(item, dict):
            for key in item:
                if not is_text(key):
                    raise _not_text(path)
            stack.extend((item[key], (*path, key)) for key in reversed(item))
        elif isinstance(item, list):
            stack.extend((item[i], (*path, str(i))) for i in range(len(item) - 1, -1, -1))


def _where(path: tuple[str, ...]) -> str:
    return f"'{'.'.join(path)}'" if path else "The request body"


def _not_text(path: tuple[str, ...]) -> InvalidRequest:
    # The offending text is not quoted: it could not be encoded into the answer.
    return InvalidRequest(
        f"{_where(path)} is not valid Unicode text (it holds a lone surrogate escape).",
        param=".".join(path) or None,
    )


_ID = re.compile(r"[^\x00-\x20\x7f-\x9f]+")


def check_id(value: str, param: str = "id", *, creates: bool = False) -> str:
    """A path id (token, account or channel id, model or group name) within the shared limits.

    An id outside them cannot name a stored item, so reading or changing it is the same 404 as
    any unknown id (param "id", as the stores say); naming a new item with it (``creates``, a
    PUT) is a 400 naming the path parameter.
    """
    if 0 < len(value) <= MAX_ID_CHARS and is_text(value) and _ID.fullmatch(value):
        return value
    if creates:
        raise InvalidRequest(
            f"'{param}' must be 1 to {MAX_ID_CHARS} printable characters.", param=param
        )
    raise NotFound("No item with this id.", param="id")


def parse(kind: Kind, raw: bytes) -> dict[str, Any]:
    payload = load_json(raw or b"")
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
    if len(payload["model"]) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"'model' must be at most {MAX_MODEL_CHARS} characters.", param="model"
        )
    _check_output_caps(kind, payload)
    if kind == "chat":
        _check_chat(payload)
    elif kind == "responses":
        _check_responses(payload)
    elif kind == "completions":
        _check_completions(payload)
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
    caps = [payload[name] for name in OUTPUT_CAP_FIELDS["chat"] if payload.get(name) is not None]
    if len(set(caps)) > 1:
        # Providers differ in which one they honour; the reservation must size the one they use.
        raise InvalidRequest(
            "Give max_tokens or max_completion_tokens, not both with different values.",
            param="max_tokens",
        )
    _check_one_choice(payload, "n")
    _check_stream_options(payload)


def _check_one_choice(payload: dict[str, Any], name: str) -> None:
    # Several choices multiply the output the reservation would have to hold.
    if payload.get(name) not in (None, 1):
        raise InvalidRequest(f"Only {name} = 1 is supported.", param=name)


def _check_stream_options(payload: dict[str, Any]) -> None:
    options = payload.get("stream_options")
    if options is not None and not payload.get("stream"):
        raise InvalidRequest(
            "stream_options is only allowed with stream: true.", param="stream_options"
        )


def _check_responses(payload: dict[str, Any]) -> None:
    if payload.get("input") is None and not (
        payload.get("previous_response_id") or payload.get("conversation") or payload.get("prompt")
    ):
        raise InvalidRequest("Missing required parameter: 'input'.", param="input")
    if payload.get("background"):
        # A background response is billed when it finishes, long after this call settled.
        raise InvalidRequest(
            "background responses are not supported by this gateway.", param="background"
        )
    if payload.get("previous_response_id") and payload.get("conversation"):
        raise InvalidRequest(
            "Give previous_response_id or conversation, not both.", param="conversation"
        )
    conversation = payload.get("conversation")
    if isinstance(conversation, dict) and not isinstance(conversation.get("id"), str):
        raise InvalidRequest("'conversation.id' must be a string.", param="conversation.id")


def _check_completions(payload: dict[str, Any]) -> None:
    prompt = payload["prompt"]
    if not prompt:
        raise InvalidRequest("'prompt' must not be empty.", param="prompt")
    _check_one_choice(payload, "n")
    _check_one_choice(payload, "best_of")
    _check_stream_options(payload)


def _check_output_caps(kind: Kind, payload: dict[str, Any]) -> None:
    for name in OUTPUT_CAP_FIELDS.get(kind, ()):
        value = payload.get(name)
        if value is not None and value < 1:
            raise InvalidRequest(f"'{name}' must be at least 1.", param=name)
        if value is not None and value > MAX_OUTPUT_TOKENS:
            raise InvalidRequest(f"'{name}' must be at most {MAX_OUTPUT_TOKENS}.", param=name)


# The output caps of each kind that produces output, the field written when the client gave
# none first; for chat ``parse`` lets a body give both only with the same value.
OUTPUT_CAP_FIELDS: dict[Kind, tuple[str, ...]] = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "responses": ("max_output_tokens",),
    "completions": ("max_tokens",),
}
# The output a call gets when it names no cap, where the API documents one (legacy completions
# default to 16 tokens); elsewhere the gateway's own default (``quota.DEFAULT_MAX_OUTPUT_TOKENS``).
DEFAULT_OUTPUT: dict[Kind, int] = {"completions": 16}
# The kinds that can answer ``stream: true``.
STREAMING_KINDS: tuple[Kind, ...] = ("chat", "responses", "completions")


def produces_output(kind: Kind) -> bool:
    return kind in OUTPUT_CAP_FIELDS


def is_stream(kind: Kind, payload: dict[str, Any]) -> bool:
    return kind in STREAMING_KINDS and payload.get("stream") is True


def requested_output(payload: dict[str, Any], kind: Kind = "chat") -> int | None:
    for name in OUTPUT_CAP_FIELDS.get(kind, ()):
        if payload.get(name) is not None:
            return int(payload[name])
    return None


def set_output_cap(payload: dict[str, Any], tokens: int, kind: Kind = "chat") -> None:
    """Send upstream exactly the cap that was reserved, in every cap field the client used.

    The field the client chose is kept (o-series models want ``max_completion_tokens``); with
    none, the kind's usual one (``max_tokens``, ``max_output_tokens``). No field can carry a
    larger cap than the reservation was sized for.
    """
    fields = OUTPUT_CAP_FIELDS.get(kind, ())
    given = [name for name in fields if payload.get(name) is not None]
    for name in given or [fields[-1]]:
        payload[name] = tokens


def client_wants_usage(payload: dict[str, Any]) -> bool:
    options = payload.get("stream_options") or {}
    return bool(options.get("include_usage"))
