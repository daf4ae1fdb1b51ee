"""Quota resets in DynamoDB: find the due keys, give each its period's quota back with one write.

The write, and why it is safe
-----------------------------
::

    UPDATE token
    SET  used_units = :zero,
         remaining_units = remaining_units + used_units,
         next_reset_at = :next, last_reset_at = :now
    IF   next_reset_at = :read AND reset_period = :period

Every money write keeps ``remaining_units == base - used_units - reserved_units`` (``base`` is the
quota, or 0 for unlimited keys). Adding back exactly what the period used therefore leaves
``remaining_units == base - reserved_units``: the whole quota minus what requests still hold in
flight. DynamoDB evaluates the right-hand side on the item as it is at the moment of the write,
so nothing is read first and neither ``quota_units`` nor ``unlimited`` needs pinning: a quota edit
``ADD``s its difference to ``remaining_units`` and commutes with this write. (DynamoDB Local also
accepts ``SET remaining_units = quota_units - reserved_units``, one operator between two
attributes, but that form must branch on ``unlimited`` and pin it in the condition; the form
above needs neither.)

The condition ``next_reset_at = :read`` is what makes a reset happen once per boundary. The first
write moves ``next_reset_at`` past ``now``; every other writer that read the old value -- a second
scheduled run, the lazy reset on the request path, botocore retrying a write whose response was
lost -- fails its condition and changes nothing. ``reset_period = :period`` closes the gap where a
PATCH changed the period but the new boundary happens to equal the old one (daily to weekly on a
Sunday): the next boundary would otherwise be computed for the wrong period. A deleted key fails
the condition too, so the update never re-creates it.

A charge racing the reset is counted exactly once, in whichever period it settles::

    settles before the reset                  settles after the reset
    reserve  remaining -= r, reserved += r    reserve  remaining -= r, reserved += r
    settle   used += c, remaining += r - c    RESET    remaining += used, used = 0
    RESET    remaining += used, used = 0      settle   used += c, remaining += r - c
    -> c belongs to the old period            -> c belongs to the new period

``total_used_units`` receives ``c`` once either way, and the invariant holds after every step.

History: one write per key
--------------------------
The item keeps ``last_reset_at``; the use case (``chalicelib.services.resets``) logs one JSON line
per reset with the usage it cleared, taken from this write's ``ALL_OLD`` image. An ``Event`` item
per reset would double the write cost of the hourly run (a transaction doubles it again), and the
schedule must stay at one write per key, plus one index page and one ``BatchGetItem`` per 100 keys.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.core import calendar as resets
from chalicelib.core.errors import ServiceUnavailable
from chalicelib.core.records import TokenRecord
from chalicelib.store import items, tables
from chalicelib.store.common import Refused, conditional, send, translated
from chalicelib.store.tables import RESET_BUCKET
from chalicelib.store.token_reads import optional_int
from chalicelib.store.token_reads import record as record_from_raw

MAX_PAGE_SIZE = 100  # BatchGetItem reads at most 100 keys per call
MAX_BATCH_ROUNDS = 8  # a BatchGetItem asked again for the keys DynamoDB left unprocessed


@dataclass(frozen=True)
class DueKey:
    """What the reset of one key needs, read from the table itself (the index is keys-only)."""

    id: str
    reset_period: str
    next_reset_at: int | None


@dataclass(frozen=True)
class ResetOutcome:
    """The result of one conditional reset write.

    ``reset`` is True when this call's write applied. ``before`` is the item the write found:
    on success its usage is what the reset cleared; on a failed condition it is the item as it
    stands now (DynamoDB returns it with the failure, no second read). ``after`` is the item
    after this call. Both are None when the key does not exist.
    """

    reset: bool
    before: TokenRecord | None = None
    after: TokenRecord | None = None


def due_token_ids(
    now: int, limit: int, start_key: dict[str, Any] | None = None
) -> tuple[list[str], dict[str, Any] | None]:
    """One page of ids whose ``next_reset_at <= now``, oldest boundary first (a Query, no Scan).

    The sparse index only holds keys with a reset period. It is eventually consistent, so a key
    reset a moment ago may still show up here: callers re-read it (``due_keys``) before writing,
    and the write's condition refuses it anyway. Returns the ids and the start key of the next
    page (None after the last page).
    """
    if not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be from 1 to {MAX_PAGE_SIZE}, got {limit}")
    request: dict[str, Any] = {
        "TableName": tables.name(tables.TOKENS),
        "IndexName": "tokens_due_for_reset",
        "KeyConditionExpression": "reset_bucket = :bucket AND next_reset_at <= :now",
        "ExpressionAttributeValues": {":bucket": {"S": RESET_BUCKET}, ":now": {"N": str(now)}},
        "Limit": limit,
    }
    if start_key is not None:
        request["ExclusiveStartKey"] = start_key
    with translated():
        page = send("Query", request)
    ids = [item["id"]["S"] for item in page.get("Items", [])]
    return ids, page.get("LastEvaluatedKey") or None


def due_keys(token_ids: list[str]) -> list[DueKey]:
    """Period and boundary of up to 100 keys, strongly consistent, in one ``BatchGetItem``.

    Deleted keys are simply absent from the result.
    """
    if len(token_ids) > MAX_PAGE_SIZE:
        raise ValueError(f"at most {MAX_PAGE_SIZE} ids per call, got {len(token_ids)}")
    if not token_ids:
        return []
    table = tables.name(tables.TOKENS)
    wanted: dict[str, Any] = {
        table: {
            "Keys": [{"id": {"S": token_id}} for token_id in token_ids],
            "ConsistentRead": True,
            "ProjectionExpression": "id, reset_period, next_reset_at",
        }
    }
    found: dict[str, DueKey] = {}
    with translated():
        for _ in range(MAX_BATCH_ROUNDS):
            answer = send("BatchGetItem", {"RequestItems": wanted})
            for raw in answer.get("Responses", {}).get(table, []):
                item = items.plain(raw)
                found[item["id"]] = DueKey(
                    id=item["id"],
                    reset_period=item.get("reset_period") or "never",
                    next_reset_at=optional_int(item.get("next_reset_at")),
                )
            wanted = answer.get("UnprocessedKeys") or {}
            if not wanted:
                break
            time.sleep(random.uniform(0, 0.05))
        else:
            raise ServiceUnavailable("DynamoDB kept some keys of a batch read unprocessed.")
    return [found[token_id] for token_id in token_ids if token_id in found]


def try_reset(token_id: str, expected_next_reset_at: int, period: str, now: int) -> ResetOutcome:
    """Reset one key if it is still due at ``expected_next_reset_at`` with ``period``.

    Writes nothing when that boundary has not been reached or the period is ``never``. Never
    raises because another writer got there first, the key changed or it was deleted: that is a
    ``reset=False`` outcome. Raises ``ValueError`` for an unknown period, and the store's
    ``GatewayError``s when DynamoDB itself fails (a retry later is always safe).
    """
    checked = resets.check_period(period)
    if checked == "never" or not resets.due(expected_next_reset_at, now):
        return ResetOutcome(reset=False)
    next_reset_at = resets.after_reset(checked, expected_next_reset_at, now)
    request = {
        "TableName": tables.name(tables.TOKENS),
        "Key": {"id": {"S": token_id}},
        "UpdateExpression": (
            "SET used_units = :zero, remaining_units = remaining_units + used_units,"
            " next_reset_at = :next, last_reset_at = :now"
        ),
        "ConditionExpression": "next_reset_at = :read AND reset_period = :period",
        "ExpressionAttributeValues": {
            ":zero": {"N": "0"},
            ":next": {"N": str(next_reset_at)},
            ":now": {"N": str(now)},
            ":read": {"N": str(expected_next_reset_at)},
            ":period": {"S": checked},
        },
        "ReturnValues": "ALL_OLD",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    with translated():
        response = conditional(lambda: send("UpdateItem", request))
    if isinstance(response, Refused):
        current = response.old_item
        record = None if current is None else record_from_raw(current)
        return ResetOutcome(reset=False, before=record, after=record)
    before = record_from_raw(response["Attributes"])
    # The write is atomic on exactly this image, so the new item follows from it exactly.
    after = replace(
        before,
        used_units=0,
        remaining_units=before.remaining_units + before.used_units,
        next_reset_at=next_reset_at,
        last_reset_at=now,
    )
    return ResetOutcome(reset=True, before=before, after=after)


def reset_token(token_id: str, expected_next_reset_at: int, period: str, now: int) -> bool:
    """True if this call reset the key; False if it was not due, already reset, changed or gone.

    A write retried by botocore after a lost response reports False although its first attempt
    applied: the reset still happened exactly once, only the credit for it is lost.
    """
    return try_reset(token_id, expected_next_reset_at, period, now).reset
