"""Usage records: one item per relayed call, both its log line and its reservation's ledger entry.

A record is written ``pending`` in the same round trip as the reservation and carries the
sparse-index attributes ``sweep_bucket``/``sweep_at`` until it is settled or refunded; the
sweeper finds forgotten reservations through that index (a Query, never a Scan). The log
queries read the ``usage_by_account`` index; TTL (``expire_at``) ages records out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.records import Page
from chalicelib.store.common import (
    decode_cursor,
    error_code,
    is_listing_position,
    retrying,
    take_page,
    translated,
)
from chalicelib.store.models import SWEEP_BUCKET, UsageRecord

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
    )


def put(usage: Usage, retention_days: int, sweep_at: int | None) -> None:
    """Write a new record; ``sweep_at`` (pending reservations only) puts it in the sweep index."""
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
        expire_at=timedelta(days=retention_days),
    )
    if sweep_at is not None:
        item.sweep_bucket = SWEEP_BUCKET
        item.sweep_at = sweep_at
    with translated():
        try:
            retrying(lambda: item.save(condition=UsageRecord.request_id.does_not_exist()))
        except PutError as exc:
            # Request ids are fresh UUIDs: an existing record is this very write, retried by
            # botocore after its first answer was lost. Writing it again must change nothing.
            if error_code(exc) != "ConditionalCheckFailedException":
                raise


def finish(usage: Usage) -> bool:
    """Move a pending record to its final state; False if it was no longer pending."""
    item = UsageRecord(usage.request_id)
    actions: list[Action] = [
        UsageRecord.state.set(usage.state),
        UsageRecord.status.set(usage.status),
        UsageRecord.channel.set(usage.channel),
        UsageRecord.cost_units.set(usage.cost_units),
        UsageRecord.prompt_tokens.set(usage.prompt_tokens),
        UsageRecord.completion_tokens.set(usage.completion_tokens),
        UsageRecord.latency_ms.set(usage.latency_ms),
        UsageRecord.usage_estimated.set(usage.usage_estimated),
        UsageRecord.sweep_bucket.remove(),
        UsageRecord.sweep_at.remove(),
    ]
    if usage.detail is not None:
        actions.append(UsageRecord.detail.set(usage.detail))
    if usage.content is not None:
        actions.append(UsageRecord.content.set(usage.content))
    with translated():
        try:
            retrying(lambda: item.update(actions=actions, condition=UsageRecord.state == "pending"))
        except UpdateError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
    return True


def get(request_id: str) -> Usage | None:
    with translated():
        try:
            return to_usage(UsageRecord.get(request_id, consistent_read=True))
        except UsageRecord.DoesNotExist:
            return None


def stale_pending(before: int, limit: int) -> Iterator[str]:
    """Request ids of reservations still pending with ``sweep_at <= before``, oldest first.

    Lazy: pages are fetched as the caller iterates, so it can stop when its time runs out.
    """
    with translated():
        for item in UsageRecord.pending_index.query(
            SWEEP_BUCKET, UsageRecord.sweep_at <= before, limit=limit, page_size=100
        ):
            yield item.request_id


def list_for_account(
    account_id: str,
    limit: int,
    cursor: str | None,
    *,
    start_ms: int,
    end_ms: int,
    token_id: str | None = None,
    model: str | None = None,
) -> Page:
    """Newest first within [start_ms, end_ms), optionally for one key and/or one model."""
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
