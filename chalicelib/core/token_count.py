"""Token counts the relay needs without a tokenizer (pure).

The prompt side is an *upper bound*, not an estimate, because it sizes a reservation that must
never be smaller than what upstream bills. The bound rests on one fact: byte-level BPE tokenizers
(tiktoken, and SentencePiece with byte fallback) never produce more tokens than the UTF-8 bytes
of the text, since every token covers at least one byte. So the bytes of every string the model
reads, plus an allowance per message for the chat template's role and separator tokens, bound the
real count. JSON the provider renders into the prompt (tools, response formats, tool calls) is
counted by the bytes of its compact JSON, which is longer than any rendering of it.

Images are the exception: their cost depends on pixels, not on the bytes of the URL, and counting
the bytes of a base64 data URL would reserve millions of tokens for one photo (the false-429 trap
of over-reservation). Each image part is counted as a fixed allowance above the largest image
cost the OpenAI price tables list per detail level.

The completion side is only ever an *estimate*, used when upstream reports no usage: about four
characters per token for ASCII, and a whole token for every other character, which is higher than
real tokenizers give for non-English text.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The chat template's tokens around each message (OpenAI documents 3, plus 1 for a name).
MESSAGE_OVERHEAD = 4
# The tokens that prime the assistant's reply, once per request.
REPLY_PRIMING = 3
# Per embedding input, for models that wrap each input in begin/end tokens.
INPUT_OVERHEAD = 2
# Fixed allowances per image part, above the largest per-image cost in OpenAI's price tables:
# a low-detail image is one base charge (2,833 tokens on gpt-4o-mini, the dearest), and a
# high-detail one at most eight 512-px tiles on top (about 48,200 tokens on gpt-4o-mini).
IMAGE_TOKENS_LOW_DETAIL = 3_000
IMAGE_TOKENS = 50_000
# Request fields the provider renders into the prompt besides the messages.
PROMPT_FIELDS = ("tools", "functions", "tool_choice", "function_call", "response_format")
ASCII_CHARS_PER_TOKEN = 4


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


def json_bytes(value: Any) -> int:
    """Bytes of the compact JSON of ``value``: longer than any rendering a provider makes of it."""
    return utf8_len(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))


def _part_bound(part: Any) -> int:
    """One element of a list ``content``: text by bytes, images by a fixed allowance."""
    if isinstance(part, str):
        return utf8_len(part)
    if not isinstance(part, dict):
        return json_bytes(part)
    if part.get("type") == "image_url":
        image = part.get("image_url")
        detail = image.get("detail") if isinstance(image, dict) else None
        return IMAGE_TOKENS_LOW_DETAIL if detail == "low" else IMAGE_TOKENS
    if part.get("type") == "text" and isinstance(part.get("text"), str):
        return utf8_len(part["text"])
    # Audio, files and anything newer: their bytes, which no tokenizer exceeds.
    return json_bytes(part)


def _content_bound(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return utf8_len(content)
    if isinstance(content, list):
        return sum(_part_bound(part) for part in content)
    return json_bytes(content)


def _message_bound(message: Any) -> int:
    if not isinstance(message, dict):
        return MESSAGE_OVERHEAD + json_bytes(message)
    rest = {key: value for key, value in message.items() if key != "content"}
    return MESSAGE_OVERHEAD + _content_bound(message.get("content")) + json_bytes(rest)


def _input_bound(item: Any) -> int:
    """One embedding input: a string by bytes, a list of token ids by its length."""
    if isinstance(item, str):
        return utf8_len(item) + INPUT_OVERHEAD
    if isinstance(item, list) and all(isinstance(i, int) for i in item):
        return len(item) + INPUT_OVERHEAD
    return json_bytes(item) + INPUT_OVERHEAD


def _response_part_bound(part: Any) -> int:
    """One part of a Responses message: text by bytes, images by the fixed allowance."""
    if isinstance(part, dict) and part.get("type") == "input_image":
        return IMAGE_TOKENS_LOW_DETAIL if part.get("detail") == "low" else IMAGE_TOKENS
    if isinstance(part, dict) and isinstance(part.get("text"), str):
        return utf8_len(part["text"])
    return _part_bound(part)


def _response_item_bound(item: Any) -> int:
    """One ``input`` item of the Responses API: a message (its content like chat's, parts by
    the Responses names), or anything else (tool calls and their outputs) by its JSON."""
    if not isinstance(item, dict) or "content" not in item:
        return MESSAGE_OVERHEAD + json_bytes(item)
    content = item.get("content")
    rest = {key: value for key, value in item.items() if key != "content"}
    if isinstance(content, list):
        inner = sum(_response_part_bound(part) for part in content)
    else:
        inner = _content_bound(content)
    return MESSAGE_OVERHEAD + inner + json_bytes(rest)


# Fields of a Responses request the provider renders into the prompt besides ``input``.
RESPONSE_PROMPT_FIELDS = ("tools", "tool_choice", "text", "prompt")


def _responses_bound(payload: dict[str, Any]) -> int:
    """``instructions`` and ``input`` as the model reads them; what a ``previous_response_id``
    carries along is not in the body (the gateway adds it from the stored response's usage)."""
    raw = payload.get("input")
    if isinstance(raw, str):
        body = MESSAGE_OVERHEAD + utf8_len(raw)
    elif isinstance(raw, list):
        body = sum(_response_item_bound(item) for item in raw)
    else:
        body = 0 if raw is None else json_bytes(raw)
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        body += MESSAGE_OVERHEAD + utf8_len(instructions)
    extra = sum(json_bytes(payload[name]) for name in RESPONSE_PROMPT_FIELDS if name in payload)
    return REPLY_PRIMING + extra + body


def _completions_bound(payload: dict[str, Any]) -> int:
    """A legacy ``prompt``: a string, strings, token ids or lists of token ids (each list one
    prompt), plus any ``suffix``. Several prompts are several completions, each billed."""
    raw = payload.get("prompt")
    suffix = payload.get("suffix")
    extra = utf8_len(suffix) if isinstance(suffix, str) else 0
    if isinstance(raw, str):
        return utf8_len(raw) + extra
    if isinstance(raw, list) and raw and all(isinstance(i, int) for i in raw):
        return len(raw) + extra
    if isinstance(raw, list):
        return sum(_input_bound(item) for item in raw) + extra
    return json_bytes(payload)


def _moderation_bound(payload: dict[str, Any]) -> int:
    raw = payload.get("input")
    if isinstance(raw, str):
        return _input_bound(raw)
    if isinstance(raw, list):
        return sum(
            _part_bound(item) + INPUT_OVERHEAD if isinstance(item, dict) else _input_bound(item)
            for item in raw
        )
    return json_bytes(payload)


def prompt_tokens_upper_bound(kind: str, payload: dict[str, Any]) -> int:
    """A number of prompt tokens upstream can never exceed for this request.

    Unknown shapes fall back to the bytes of the whole payload, which is still a safe bound.
    """
    if kind == "responses":
        return _responses_bound(payload)
    if kind == "completions":
        return _completions_bound(payload)
    if kind == "moderations":
        return _moderation_bound(payload)
    if kind == "embeddings":
        raw = payload.get("input")
        if isinstance(raw, str):
            return _input_bound(raw)
        if isinstance(raw, list) and raw and all(isinstance(i, int) for i in raw):
            return _input_bound(raw)  # one pre-tokenised input
        if isinstance(raw, list):
            return sum(_input_bound(item) for item in raw)
        return json_bytes(payload)
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return json_bytes(payload) + REPLY_PRIMING
    extra = sum(json_bytes(payload[name]) for name in PROMPT_FIELDS if name in payload)
    return REPLY_PRIMING + extra + sum(_message_bound(message) for message in messages)


def estimate_completion_tokens(text: str) -> int:
    """A high-side estimate of the tokens of generated ``text`` (upstream sent no usage)."""
    non_ascii = sum(1 for char in text if ord(char) > 127)
    ascii_chars = len(text) - non_ascii
    return math.ceil(ascii_chars / ASCII_CHARS_PER_TOKEN) + non_ascii
