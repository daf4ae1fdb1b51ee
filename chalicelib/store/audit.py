"""The audit table: one record per management action, in the change's own transaction.

``write(change, entry)`` runs the change's writes and the record's Put as one
TransactWriteItems: both land or neither does, so no change goes unrecorded and a refused change
(its condition false) records nothing. Only the Chalice app writes here; the relay never does.

Layout (Query only, never a Scan)::

    table      bucket = "YYYY-MM" (UTC month)   at_id = "<epoch ms, 13 digits>#<8 hex>"
    index      audit_by_account: account_id  -> at_id   (sparse: accounts and their keys)
    index      audit_by_target:  "<type>#<id>" -> at_id

"Everything, newest first" walks the months backwards from the end of the range, one Query
each; a month rather than a day keeps that walk to at most 14 Queries over the 400-day
retention, and management actions are far too rare to make one month's partition hot. The
cursor is the last returned record's key, so a page ends exactly where the next one starts.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core import audit
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.records import Page
from chalicelib.core.settings import get_settings
from chalicelib.store.common import (
    cancelled_by_condition,
    decode_cursor,
    is_listing_position,
    take_page,
    transact,
    translated,
)
from chalicelib.store.models import AuditRecord

_AT_ID = re.compile(r"[0-9]{13}#[0-9a-f]{8}")


def _now_ms() -> int:
    return int(time.time() * 1000)


def new_item(entry: audit.AuditEntry) -> AuditRecord:
    """The record of ``entry``, stamped now; build it once per transaction (retries resend it)."""
    at_ms = _now_ms()
    retention = get_settings().audit_retention_days * 86_400
    return AuditRecord(
        audit.month_of(at_ms),
        f"{at_ms:013d}#{secrets.token_hex(4)}",
        actor=entry.actor.actor,
        action=entry.action,
        target_type=entry.target_type,
        target_id=entry.target_id,
        target=f"{entry.target_type}#{entry.target_id}",
        account_id=entry.account_id,
        changes=json.dumps(entry.changes, separators=(",", ":"), sort_keys=True),
        source_ip=entry.actor.source_ip,
        request_id=entry.actor.request_id,
        expire_at=datetime.fromtimestamp(at_ms // 1000 + retention, UTC),
    )


def put(transaction: TransactWrite, item: AuditRecord) -> None:
    transaction.save(item, condition=AuditRecord.at_id.does_not_exist())


def write(
    change: Callable[[TransactWrite], None],
    entry: audit.AuditEntry | None,
    refused: Exception | None = None,
) -> None:
    """The change's writes and ``entry``'s record in one transaction.

    A condition of the change that fails raises ``refused`` (and nothing is written); without
    ``refused`` it is a store failure like any other. ``entry=None`` is for callers that are not
    management actions (bootstrap, tests of the store alone).
    """
    items = [] if entry is None else [new_item(entry)]

    def build(transaction: TransactWrite) -> None:
        change(transaction)
        for item in items:
            put(transaction, item)

    with translated():
        try:
            transact(build)
        except TransactWriteError as exc:
            if refused is not None and cancelled_by_condition(exc):
                raise refused from exc
            raise


# Reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """What ``GET /audit`` may narrow to; times are epoch ms, ``[start_ms, end_ms)``."""

    start_ms: int
    end_ms: int
    account_id: str | None = None
    target_type: str | None = None
    target_id: str | None = None  # only with target_type
    action: str | None = None


def to_line(item: AuditRecord) -> audit.AuditLine:
    return audit.AuditLine(
        at_ms=int(item.at_id[:13]),
        actor=item.actor,
        action=item.action,
        target_type=item.target_type,
        target_id=item.target_id,
        account_id=item.account_id,
        changes=json.loads(item.changes or "{}"),
        source_ip=item.source_ip or "",
        request_id=item.request_id or "",
    )


def list_page(filters: Filters, limit: int, cursor: str | None) -> Page:
    """Records newest first: one target's, one account's, or everyone's month by month."""
    low, high = f"{filters.start_ms:013d}", f"{filters.end_ms - 1:013d}#~"
    range_key = AuditRecord.at_id.between(low, high)
    target = f"{filters.target_type}#{filters.target_id}" if filters.target_id else None
    index_key: dict[str, str] = {}
    if target:
        index_key = {"target": target}
    elif filters.account_id:
        index_key = {"account_id": filters.account_id}
    start = _start_key(cursor, index_key, low, high)
    condition = _filter(filters, by_target=target is not None)
    page_size = max(limit, 25)

    with translated():
        results: Iterator[AuditRecord]
        if target:
            results = AuditRecord.by_target.query(
                target,
                range_key,
                scan_index_forward=False,
                filter_condition=condition,
                last_evaluated_key=start,
                page_size=page_size,
            )
        elif filters.account_id:
            results = AuditRecord.by_account.query(
                filters.account_id,
                range_key,
                scan_index_forward=False,
                filter_condition=condition,
                last_evaluated_key=start,
                page_size=page_size,
            )
        else:
            results = _every_month(filters, range_key, condition, start, page_size)
        return take_page(results, limit, to_line, lambda item: _position(item, index_key))


def _every_month(
    filters: Filters, range_key: Any, condition: Any, start: dict[str, Any] | None, size: int
) -> Iterator[AuditRecord]:
    """The table's month partitions, newest first, from the cursor's month if there is one."""
    newest = int(start["at_id"]["S"][:13]) if start else filters.end_ms - 1
    for month in audit.months_back(newest, filters.start_ms):
        yield from AuditRecord.query(
            month,
            range_key,
            scan_index_forward=False,
            consistent_read=True,
            filter_condition=condition,
            last_evaluated_key=start if start and start["bucket"]["S"] == month else None,
            page_size=size,
        )


def _filter(filters: Filters, *, by_target: bool) -> Any:
    clauses = []
    if filters.action:
        clauses.append(AuditRecord.action == filters.action)
    if filters.target_type and not by_target:
        clauses.append(AuditRecord.target_type == filters.target_type)
    if filters.account_id and by_target:
        clauses.append(AuditRecord.account_id == filters.account_id)
    condition = None
    for clause in clauses:
        condition = clause if condition is None else condition & clause
    return condition


def _position(item: AuditRecord, index_key: dict[str, str]) -> dict[str, Any]:
    return {
        "bucket": {"S": item.bucket},
        "at_id": {"S": item.at_id},
        **{name: {"S": value} for name, value in index_key.items()},
    }


def _start_key(
    cursor: str | None, index_key: dict[str, str], low: str, high: str
) -> dict[str, Any] | None:
    """The cursor's key if it is one this very listing could have handed out; 400 otherwise.

    It must name this listing's account or target (another account's cursor is refused), be a
    record key of ours, and lie inside the range: DynamoDB itself refuses a start key outside
    the Query's conditions, which would be a 5xx rather than the caller's 400.
    """
    start = decode_cursor(cursor, expected=index_key)
    if start is None:
        return None
    invalid = InvalidRequest("cursor is not valid.", param="cursor")
    if not is_listing_position(start, strings=("bucket", "at_id", *index_key), numbers=()):
        raise invalid
    at_id, bucket = start["at_id"]["S"], start["bucket"]["S"]
    if not _AT_ID.fullmatch(at_id) or not low <= at_id <= high:
        raise invalid
    if bucket != audit.month_of(int(at_id[:13])):
        raise invalid
    return dict(start)
