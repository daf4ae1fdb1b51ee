"""Usage records: one item per relayed call, its log line, written once when the call's outcome
is decided (see the timeline in ``chalicelib/core/quota.py``).

The log queries read the ``usage_by_account`` index (a Query, never a Scan); TTL
(``expire_at``) ages records out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.records import Page
from chalicelib.store.common import (
    Refused,
    conditional,
    decode_cursor,
    is_listing_position,
    send,
    take_page,
    translated,
)
from chalicelib.store.models import UsageRecord

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


def to_usage(item: UsageRecord) -> Usage:
    return Usage(
        request_id=item.request_id,
        account_id=item.account_id,
        token_id=item.token_id,
        token_name=item.token_name or "",
        created_ms=int(item.created_ms),
        model=item.model or "",
        state=item.state,
        status=item.status,
        channel=item.channel or "",
        reserved_units=int(item.reserved_units or 0),
        cost_units=int(item.cost_units or 0),
        prompt_tokens=int(item.prompt_tokens or 0),
        completion_tokens=int(item.completion_tokens or 0),
        latency_ms=int(item.latency_ms or 0),
        stream=bool(item.stream),
        usage_estimated=bool(item.usage_estimated),
        detail=item.detail,
        group=item.group or "",
    )


def put(usage: Usage, retention_days: int) -> bool:
    """Write a call's record, once: False if a record with its request id is already there.

    The record is written when the call's outcome is decided (settled, refunded, rejected), and
    by the sweeper for a call whose process died. Request ids are fresh UUIDs, so an existing
    record is this very write retried after its answer was lost, or the decision the sweeper
    must follow: it is never overwritten.
    """
    item = UsageRecord(
        usage.request_id,
        account_id=usage.account_id,
        token_id=usage.token_id,
        token_name=usage.token_name,
        created_ms=usage.created_ms,
        model=usage.model,
        state=usage.state,
        status=usage.status,
        channel=usage.channel,
        reserved_units=usage.reserved_units,
        cost_units=usage.cost_units,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        latency_ms=usage.latency_ms,
        stream=usage.stream,
        usage_estimated=usage.usage_estimated,
        detail=usage.detail,
        content=usage.content,
        group=usage.group or None,
        expire_at=timedelta(days=retention_days),
    )
    # A plain PutItem (on the lean client, see store/wire.py): the model only serializes it.
    request = {
        "TableName": UsageRecord.Meta.table_name,
        "Item": item.serialize(),
        "ConditionExpression": "attribute_not_exists(#id)",
        "ExpressionAttributeNames": {"#id": UsageRecord.request_id.attr_name},
    }
    with translated():
        written = conditional(lambda: send("PutItem", request))
    return not isinstance(written, Refused)


def get(request_id: str) -> Usage | None:
    with translated():
        try:
            return to_usage(UsageRecord.get(request_id, consistent_read=True))
        except UsageRecord.DoesNotExist:
            return None


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
    condition = None
    if token_id:
        condition = UsageRecord.token_id == token_id
    if model:
        by_model = UsageRecord.model == model
        condition = by_model if condition is None else condition & by_model
    if status:
        by_status = UsageRecord.status == status
        condition = by_status if condition is None else condition & by_status
    with translated():
        results = UsageRecord.by_account.query(
            account_id,
            UsageRecord.created_ms.between(start_ms, end_ms - 1),
            filter_condition=condition,
            scan_index_forward=False,
            last_evaluated_key=start_key,
            page_size=max(limit, 25),
        )
        return take_page(results, limit, to_usage, _position)


def _position(item: UsageRecord) -> dict[str, Any]:
    return {
        "request_id": {"S": item.request_id},
        "account_id": {"S": item.account_id},
        "created_ms": {"N": str(int(item.created_ms))},
    }


def iterate_for_account(account_id: str, start_ms: int, end_ms: int) -> Iterator[Usage]:
    """Every record of the account in the range (for aggregation); Query pages, no Scan."""
    with translated():
        for item in UsageRecord.by_account.query(
            account_id, UsageRecord.created_ms.between(start_ms, end_ms - 1), page_size=500
        ):
            yield to_usage(item)
