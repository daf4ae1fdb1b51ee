"""Usage records: one item per relayed call, its log line, written once when the call's outcome
is decided (see the timeline in ``chalicelib/core/quota.py``).

The log queries read the ``usage_by_account`` index (a Query, never a Scan); TTL
(``expire_at``) ages records out. Raw items (``items.py``), as the relay writes and reads them
without PynamoDB; ``models.UsageRecord`` declares the table.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.records import Page
from chalicelib.store import items, tables
from chalicelib.store.common import (
    Refused,
    conditional,
    decode_cursor,
    get_item,
    is_listing_position,
    query,
    send,
    take_page,
    translated,
)

STATES = ("pending", "settled", "refunded", "rejected")


@dataclass(frozen=True)
class Usage:
    request_id: str
    account_id: str
    token_id: str
    token_name: str
    created_ms: int
    model: str
    state: str = "pending"
    status: str = "pending"
    channel: str = ""
    reserved_units: int = 0
    cost_units: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    stream: bool = False
    usage_estimated: bool = False
    detail: str | None = None
    # Prompt and answer, only when the operator enabled SLUICE_STORE_CONTENT (off by default).
    content: str | None = None
    # The channel group the call used: the key's, or the one an ``auto`` key's call picked.
    group: str = ""


def to_usage(raw: dict[str, Any]) -> Usage:
    """The record in an item (DynamoDB's JSON)."""
    item = items.plain(raw)
    return Usage(
        request_id=item["request_id"],
        account_id=item["account_id"],
        token_id=item["token_id"],
        token_name=item.get("token_name") or "",
        created_ms=int(item["created_ms"]),
        model=item.get("model") or "",
        state=item.get("state") or "pending",
        status=item.get("status") or "pending",
        channel=item.get("channel") or "",
        reserved_units=int(item.get("reserved_units") or 0),
        cost_units=int(item.get("cost_units") or 0),
        prompt_tokens=int(item.get("prompt_tokens") or 0),
        completion_tokens=int(item.get("completion_tokens") or 0),
        latency_ms=int(item.get("latency_ms") or 0),
        stream=bool(item.get("stream")),
        usage_estimated=bool(item.get("usage_estimated")),
        detail=item.get("detail"),
        group=item.get("group") or "",
    )


def put(usage: Usage, retention_days: int) -> bool:
    """Write a call's record, once: False if a record with its request id is already there.

    The record is written when the call's outcome is decided (settled, refunded, rejected), and
    by the sweeper for a call whose process died. Request ids are fresh UUIDs, so an existing
    record is this very write retried after its answer was lost, or the decision the sweeper
    must follow: it is never overwritten.
    """
    record = items.item(
        {
            "request_id": usage.request_id,
            "account_id": usage.account_id,
            "token_id": usage.token_id,
            "token_name": usage.token_name,
            "created_ms": usage.created_ms,
            "model": usage.model,
            "state": usage.state,
            "status": usage.status,
            "channel": usage.channel,
            "reserved_units": usage.reserved_units,
            "cost_units": usage.cost_units,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "latency_ms": usage.latency_ms,
            "stream": usage.stream,
            "usage_estimated": usage.usage_estimated,
            "detail": usage.detail,
            "content": usage.content,
            "group": usage.group or None,
            "expire_at": int(time.time()) + retention_days * 86400,
        }
    )
    request = {
        "TableName": tables.name(tables.USAGE),
        "Item": record,
        "ConditionExpression": "attribute_not_exists(request_id)",
    }
    with translated():
        written = conditional(lambda: send("PutItem", request))
    return not isinstance(written, Refused)


def get(request_id: str) -> Usage | None:
    with translated():
        found = get_item(tables.name(tables.USAGE), {"request_id": {"S": request_id}})
    return None if found is None else to_usage(found)


def list_for_account(
    account_id: str,
    limit: int,
    cursor: str | None,
    *,
    start_ms: int,
    end_ms: int,
    token_id: str | None = None,
    model: str | None = None,
    status: str | None = None,
) -> Page:
    """Newest first within [start_ms, end_ms), optionally for one key, model and/or status."""
    start_key = decode_cursor(cursor, expected={"account_id": account_id})
    if start_key is not None and not is_listing_position(
        start_key, strings=("request_id", "account_id"), numbers=("created_ms",)
    ):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    filters = {"token_id": token_id, "model": model, "status": status}
    chosen = {name: wanted for name, wanted in filters.items() if wanted}
    request = _by_account(account_id, start_ms, end_ms, page_size=max(limit, 25))
    request["ScanIndexForward"] = False
    request["ExpressionAttributeValues"].update(
        {f":{name}": {"S": wanted} for name, wanted in chosen.items()}
    )
    if chosen:
        # "#model", "#status": both are DynamoDB reserved words.
        request["FilterExpression"] = " AND ".join(f"#{name} = :{name}" for name in chosen)
        request["ExpressionAttributeNames"] = {f"#{name}": name for name in chosen}
    if start_key is not None:
        request["ExclusiveStartKey"] = start_key
    with translated():
        return take_page(query(request), limit, to_usage, _position)


def _position(raw: dict[str, Any]) -> dict[str, Any]:
    return {name: raw[name] for name in ("request_id", "account_id", "created_ms")}


def _by_account(account_id: str, start_ms: int, end_ms: int, page_size: int) -> dict[str, Any]:
    """The Query of the account's records created in [start_ms, end_ms), oldest first."""
    return {
        "TableName": tables.name(tables.USAGE),
        "IndexName": "usage_by_account",
        "KeyConditionExpression": "account_id = :account AND created_ms BETWEEN :start AND :end",
        "ExpressionAttributeValues": {
            ":account": {"S": account_id},
            ":start": {"N": str(start_ms)},
            ":end": {"N": str(end_ms - 1)},
        },
        "Limit": page_size,
    }


def iterate_for_account(account_id: str, start_ms: int, end_ms: int) -> Iterator[Usage]:
    """Every record of the account in the range (for aggregation); Query pages, no Scan."""
    with translated():
        for raw in query(_by_account(account_id, start_ms, end_ms, page_size=500)):
            yield to_usage(raw)
