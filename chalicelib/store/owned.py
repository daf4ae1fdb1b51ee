"""Who owns an object a provider keeps for later calls: object id -> account and channel.

A stored response (``resp_...``), a video job: the provider that made it is the only one that
knows it, and the account that made it is the only one that may see it. The relay remembers
both when the object is created and looks them up on every later call on its id::

    remember("response", "resp_123", account_id, channel_id, ttl_seconds)
    owner("response", "resp_123")  # -> Owner(account_id, channel_id, ...) or None

``tokens`` (optional) is what a later call on the object carries along without sending it: a
stored response's input and output tokens, which a follow-up with ``previous_response_id`` is
billed for as input. The relay adds it to the follow-up's input bound.

An unknown id and another account's id must look the same to a caller (404, nothing said about
whether the id exists): callers compare ``Owner.account_id`` with their own and answer 404 for
both. Records expire by DynamoDB TTL (``expire_at``); ``owner`` also ignores an expired record
TTL has not deleted yet, as TTL deletes within days, not at once.

Raw items in the usage table (``items.py``; ``models.OwnedRecord`` declares their shape), as
the relay reads and writes them without PynamoDB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from chalicelib.core.errors import InvalidRequest
from chalicelib.store import items, tables
from chalicelib.store.common import Refused, conditional, get_item, send, translated

# OpenAI keeps stored responses for 30 days.
RESPONSE_TTL_SECONDS = 30 * 24 * 3600
# OpenAI keeps conversations until they are deleted; a year from the last response in it (each
# one writes the record again) keeps the record from outliving any conversation still in use
# only by that much.
CONVERSATION_TTL_SECONDS = 365 * 24 * 3600
MAX_OBJECT_ID_CHARS = 256


@dataclass(frozen=True)
class Owner:
    account_id: str
    channel_id: str
    created_at: int
    tokens: int = 0


def _key(kind: str, object_id: str) -> str:
    if not kind or "#" in kind:
        raise ValueError(f"bad object kind {kind!r}")
    return f"{kind}#{object_id}"


def _read(kind: str, object_id: str) -> dict[str, Any] | None:
    with translated():
        found = get_item(tables.name(tables.USAGE), {"request_id": {"S": _key(kind, object_id)}})
    return None if found is None else items.plain(found)


def _put(record: dict[str, Any], **condition: Any) -> dict[str, Any]:
    return send("PutItem", {"TableName": tables.name(tables.USAGE), "Item": record, **condition})


def _usable(object_id: str) -> bool:
    return 0 < len(object_id) <= MAX_OBJECT_ID_CHARS and object_id.isprintable()


def remember(
    kind: str,
    object_id: str,
    account_id: str,
    channel_id: str,
    ttl: int,
    *,
    tokens: int = 0,
    now: int | None = None,
) -> None:
    """Record that ``account_id`` made ``object_id`` on ``channel_id``, for ``ttl`` seconds.

    A repeated write of the same owner is harmless (the same item again); an id a provider
    re-used for another account would be taken over by the newer call, which is the one the
    provider now answers for.
    """
    if not _usable(object_id):
        raise InvalidRequest("The provider answered with an unusable object id.")
    created = int(time.time()) if now is None else now
    record = items.item(
        {
            "request_id": _key(kind, object_id),
            "owner_account": account_id,
            "owner_channel": channel_id,
            "created_at": created,
            "tokens": tokens,
            "expire_at": created + ttl,
        }
    )
    with translated():
        _put(record)


def add_tokens(kind: str, object_id: str, tokens: int, *, attempts: int = 3) -> bool:
    """Add ``tokens`` to what a later call on ``object_id`` carries along (items added to a
    conversation); False if there is no record (or it kept changing under us).

    A read, then a put conditional on the count read: the relay's role may put and get items
    of this table, not update them. A put retried after a lost answer may add the tokens twice:
    the sum only sizes reservations, where too high is safe (never overspent).
    """
    if tokens <= 0 or not _usable(object_id):
        return False
    for _ in range(attempts):
        found = _read(kind, object_id)
        if found is None:
            return False
        before = int(found.get("tokens") or 0)
        record = items.item({**found, "tokens": before + tokens})
        condition = {
            "ConditionExpression": "tokens = :before",
            "ExpressionAttributeValues": {":before": {"N": str(before)}},
        }
        with translated():
            landed = conditional(partial(_put, record, **condition))
        if not isinstance(landed, Refused):
            return True
    return False


def owner(kind: str, object_id: str, *, now: int | None = None) -> Owner | None:
    """The owner of ``object_id``, or None if it is unknown, expired or not an id at all."""
    if not _usable(object_id):
        return None
    found = _read(kind, object_id)
    if found is None:
        return None
    current = int(time.time()) if now is None else now
    expire_at = found.get("expire_at")
    if expire_at is not None and int(expire_at) <= current:
        return None
    return Owner(
        found["owner_account"],
        found["owner_channel"],
        int(found["created_at"]),
        int(found.get("tokens") or 0),
    )


def owned_by(kind: str, object_id: str, account_id: str) -> Owner | None:
    """The owner if it is ``account_id``; None for an unknown id and for another account's."""
    found = owner(kind, object_id)
    return found if found is not None and found.account_id == account_id else None
