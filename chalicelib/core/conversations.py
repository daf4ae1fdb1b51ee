"""Checks on OpenAI Conversations API requests, before anything reaches a provider (pure).

What the gateway relies on is checked here: the body is a JSON object, ``items`` is a list of
at most ``MAX_ITEMS`` objects, ``metadata`` is OpenAI's map of at most 16 short strings, and
the query names only the parameters each route documents, with a valid ``limit`` and
``order``. Everything else inside an item passes through to the provider untouched. An invalid
request is a 400 naming its parameter, and nothing is sent or written.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.payloads import load_json
from chalicelib.core.token_count import prompt_tokens_upper_bound

# OpenAI's limits: 20 items per create or add, 16 metadata pairs (keys up to 64 characters,
# values up to 512), 1 to 100 items per page.
MAX_ITEMS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_LIST_LIMIT = 100
ORDERS = ("asc", "desc")

# The query parameters each call passes on; ``include`` may repeat, and OpenAI's SDKs send it
# as ``include[]``.
LIST_QUERY = ("after", "limit", "order", "include")
INCLUDE_QUERY = ("include",)


def json_object(raw: bytes) -> dict[str, Any]:
    payload = load_json(raw or b"")
    if not isinstance(payload, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return payload


def check_items(payload: dict[str, Any], *, required: bool) -> list[Any]:
    """``items``: 1 to ``MAX_ITEMS`` objects (absent is allowed where not ``required``)."""
    items = payload.get("items")
    if items is None:
        if required:
            raise InvalidRequest("Missing required parameter: 'items'.", param="items")
        return []
    if not isinstance(items, list):
        raise InvalidRequest("'items' must be an array.", param="items")
    if required and not items:
        raise InvalidRequest("'items' must contain at least one item.", param="items")
    if len(items) > MAX_ITEMS:
        raise InvalidRequest(f"'items' must hold at most {MAX_ITEMS} items.", param="items")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"items[{index}] must be an object.", param=f"items.{index}")
    return items


def check_metadata(payload: dict[str, Any], *, required: bool) -> None:
    metadata = payload.get("metadata")
    if metadata is None:
        if required:
            raise InvalidRequest("Missing required parameter: 'metadata'.", param="metadata")
        return
    if not isinstance(metadata, dict):
        raise InvalidRequest("'metadata' must be an object.", param="metadata")
    if len(metadata) > MAX_METADATA_PAIRS:
        raise InvalidRequest(
            f"'metadata' must hold at most {MAX_METADATA_PAIRS} pairs.", param="metadata"
        )
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY_CHARS:
            raise InvalidRequest(
                f"Metadata keys must be at most {MAX_METADATA_KEY_CHARS} characters.",
                param="metadata",
            )
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidRequest(
                f"Metadata values must be strings of at most {MAX_METADATA_VALUE_CHARS} "
                "characters.",
                param=f"metadata.{key}",
            )


def items_token_bound(items: list[Any]) -> int:
    """Tokens the items can never exceed as input of a later response in the conversation."""
    return prompt_tokens_upper_bound("responses", {"input": items}) if items else 0


def query_string(pairs: list[tuple[str, str]], allowed: tuple[str, ...]) -> str:
    """The query to send on: only ``allowed`` names (``include[]`` counts as ``include``), an
    empty value read as absent, ``limit`` and ``order`` checked."""
    kept: list[tuple[str, str]] = []
    for raw_name, value in pairs:
        name = "include" if raw_name == "include[]" else raw_name
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise InvalidRequest(
                f"Unknown query parameter '{raw_name}'; known: {known}.", param=raw_name
            )
        if value == "":
            continue
        if name == "limit" and not (
            value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_LIST_LIMIT
        ):
            raise InvalidRequest(
                f"'limit' must be an integer from 1 to {MAX_LIST_LIMIT}.", param="limit"
            )
        if name == "order" and value not in ORDERS:
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order")
        kept.append((raw_name, value))
    return urlencode(kept)
