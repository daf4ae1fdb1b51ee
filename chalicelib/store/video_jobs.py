"""Video jobs: who owns each (account, channel) and what settling it needs.

A job created through the gateway can only be reached again through the channel that created
it (the provider knows it under that channel's key), and only by the account that created it.
Unlike a stored response (``owned.py`` on the Responses side: account and channel only), a job
also carries its settle terms (request id, price, seconds, reservation) and must be listed per
account, so it has its own small table:

* ``video#<video id>``: read with a strongly consistent GetItem by every call on the id, and
  listed per account through the sparse ``video_jobs_by_account`` index (``listed_under`` =
  "<account>#video", ``created_ms``): ``GET /v1/videos`` is a Query, never a Scan; an index
  read, so a job created a moment ago may be missing from a listing, never from ``owner``;
* ``video-request#<request id>``: the same, keyed by the create's request id, for the sweeper
  (which only knows a ledger entry's request id); not listed.

TTL (``expire_at``) ages records out once the provider has forgotten the job too. Raw items
(``items.py``; ``models.VideoJobItem`` declares the table), as the relay uses them without
PynamoDB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.store import items, tables
from chalicelib.store.common import get_item, query, send, translated


@dataclass(frozen=True)
class Owned:
    kind: str
    object_id: str
    account_id: str
    channel_id: str
    created_ms: int
    attributes: dict[str, Any] = field(default_factory=dict)


def _key(kind: str, object_id: str) -> str:
    return f"{kind}#{object_id}"


def remember(
    kind: str,
    object_id: str,
    account_id: str,
    channel_id: str,
    ttl: int,
    *,
    attributes: dict[str, Any] | None = None,
    listed: bool = True,
    now: float | None = None,
) -> None:
    """Record the owner of ``object_id`` for ``ttl`` seconds (``listed``: in ``owned_by``)."""
    at = time.time() if now is None else now
    record = items.item(
        {
            "id": _key(kind, object_id),
            "kind": kind,
            "object_id": object_id,
            "account_id": account_id,
            "channel_id": channel_id,
            "created_ms": int(at * 1000),
            "listed_under": f"{account_id}#{kind}" if listed else None,
            "attributes": dict(attributes or {}),
            "expire_at": int(at) + ttl,
        }
    )
    with translated():
        send("PutItem", {"TableName": tables.name(tables.VIDEOS), "Item": record})


def _owned(raw: dict[str, Any]) -> Owned:
    item = items.plain(raw)
    return Owned(
        kind=item["kind"],
        object_id=item["object_id"],
        account_id=item["account_id"],
        channel_id=item["channel_id"],
        created_ms=int(item["created_ms"]),
        attributes=item.get("attributes") or {},
    )


def owner(kind: str, object_id: str) -> Owned | None:
    with translated():
        found = get_item(tables.name(tables.VIDEOS), {"id": {"S": _key(kind, object_id)}})
    return None if found is None else _owned(found)


def forget(kind: str, object_id: str) -> None:
    request = {"TableName": tables.name(tables.VIDEOS), "Key": {"id": {"S": _key(kind, object_id)}}}
    with translated():
        send("DeleteItem", request)


def owned_by(account_id: str, kind: str, limit: int, *, before: int | None = None) -> list[Owned]:
    """The account's newest ``limit`` objects of ``kind`` (created before ``before`` ms, if set)."""
    request: dict[str, Any] = {
        "TableName": tables.name(tables.VIDEOS),
        "IndexName": "video_jobs_by_account",
        "KeyConditionExpression": "listed_under = :listed",
        "ExpressionAttributeValues": {":listed": {"S": f"{account_id}#{kind}"}},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if before is not None:
        request["KeyConditionExpression"] += " AND created_ms < :before"
        request["ExpressionAttributeValues"][":before"] = {"N": str(before)}
    with translated():
        return [_owned(raw) for raw in query(request, limit=limit)]
