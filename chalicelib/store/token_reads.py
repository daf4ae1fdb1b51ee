"""A key's item as the relay reads it: by id, strongly consistent, as a ``TokenRecord``.

Raw items (``items.py``) over ``common.send``, without PynamoDB, which the relay never imports
(see ``tables.py``); ``tokens.py`` writes the items and reads them through here too, so a key
reads the same whichever side loads it.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.records import NEVER, TokenRecord
from chalicelib.store import items, tables
from chalicelib.store.common import get_item, translated

MAX_ID_BYTES = 1024


def record(raw: dict[str, Any]) -> TokenRecord:
    """The record in an item (DynamoDB's JSON, e.g. the ALL_OLD image of a failed condition)."""
    item = items.plain(raw)
    return TokenRecord(
        id=item["id"],
        account_id=item["account_id"],
        name=item["name"],
        key_hash=item["key_hash"],
        key_preview=item["key_preview"],
        # Absent attributes read as the model's defaults (PynamoDB applies them on load).
        status=items.or_default(item.get("status"), "enabled"),
        created_at=int(item["created_at"]),
        expires_at=int(item.get("expires_at") or NEVER),
        unlimited=bool(items.or_default(item.get("unlimited"), True)),
        quota_units=int(item.get("quota_units") or 0),
        used_units=int(item.get("used_units") or 0),
        reserved_units=int(item.get("reserved_units") or 0),
        remaining_units=int(item.get("remaining_units") or 0),
        total_used_units=int(item.get("total_used_units") or 0),
        reset_period=item.get("reset_period") or "never",
        next_reset_at=optional_int(item.get("next_reset_at")),
        last_reset_at=optional_int(item.get("last_reset_at")),
        group=item.get("group") or "default",
        models=tuple(item.get("models") or ()),
        allow_ips=tuple(item.get("allow_ips") or ()),
        last_used_at=optional_int(item.get("last_used_at")),
        revision=int(item.get("revision") or 0),
        **limits(item),
    )


def limits(item: dict[str, Any]) -> dict[str, Any]:
    """The limits of a plain key or account item, the calls in flight and the minute windows."""
    return {
        "rpm_limit": optional_int(item.get("rpm_limit")),
        "tpm_limit": optional_int(item.get("tpm_limit")),
        "max_concurrency": optional_int(item.get("max_concurrency")),
        "in_flight": len(item.get("pending") or {}),
        "requests_by_minute": windows(item.get("requests_by_minute")),
        "tokens_by_minute": windows(item.get("tokens_by_minute")),
    }


def optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def windows(value: dict[str, Any] | None) -> dict[int, int]:
    """A minute-window map as ``{minute: count}`` (keys that are not minutes are ignored)."""
    return {int(k): int(v) for k, v in (value or {}).items() if k.isdigit()}


def plausible_id(value: str) -> bool:
    """False for ids DynamoDB would refuse as keys (empty, or over its 2048-byte limit).

    Such an id comes from a URL, not from us; asking DynamoDB would end in a
    ValidationException, i.e. a 5xx for what is simply "not found".
    """
    return 0 < len(value.encode("utf-8")) <= MAX_ID_BYTES


def get(token_id: str) -> TokenRecord | None:
    if not plausible_id(token_id):
        return None
    with translated():
        found = get_item(tables.name(tables.TOKENS), {"id": {"S": token_id}})
    return None if found is None else record(found)
