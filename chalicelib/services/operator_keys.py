"""Operator key use cases: create, list, read, edit, delete, and check a presented ``ops-`` key.

Shared by the admin routes and the CLI. Every function that changes a key takes ``held``, the
scopes of whoever is asking (all of them for the admin key and the CLI): a key may only be
given scopes its granter holds, and only a caller holding every scope of a key may edit or
delete it, so ``keys:admin`` never becomes a way up to more power. Everything is checked before
the one write, so a refused request writes nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chalicelib.core import audit, keys, observe, scopes, views
from chalicelib.core.errors import (
    InvalidRequest,
    KeyDisabled,
    KeyExpired,
    ServiceUnavailable,
    TooManyRequests,
    Unauthenticated,
)
from chalicelib.core.records import NEVER, OperatorKeyRecord
from chalicelib.store import operator_keys as key_store

if TYPE_CHECKING:  # the routes parse bodies; verify() runs on every operator call without it
    from chalicelib.services import schemas


def _expiry(body: schemas.CreateOperatorKey, now: int) -> int:
    if body.expires_in_days is not None:
        return now + body.expires_in_days * 86_400
    if body.expires_at is None:
        return NEVER
    from chalicelib.services import management  # creating a key only: not on verify()'s path

    return management.checked_expiry(body.expires_at, now)


def _may_manage(held: frozenset[str], record: OperatorKeyRecord) -> None:
    """Only a caller holding every scope of a key may change it (else 403 naming one)."""
    beyond = sorted(set(record.scopes) - held)
    if beyond:
        scopes.require(held, beyond[0], who="A key that manages this operator key")


def create_key(body: schemas.CreateOperatorKey, held: frozenset[str], now: int) -> dict[str, Any]:
    """A new key with its record; the key itself appears in this answer only."""
    scopes.require_grantable(held, body.scopes)
    expires_at = _expiry(body, now)
    key_id = keys.new_id()
    key = keys.new_key(keys.OPERATOR_PREFIX, key_id)
    record = OperatorKeyRecord(
        id=key_id,
        name=body.name,
        scopes=tuple(body.scopes),
        key_hash=keys.hash_key(key),
        key_preview=keys.preview(key),
        created_at=now,
        expires_at=expires_at,
    )
    entry = audit.entry("opkey.create", key_id, audit.created(audit.operator_key_fields(record)))
    key_store.create(record, audit=entry)
    return views.operator_key_json(record, now, key=key)


def list_keys(limit: int, cursor: str | None, now: int) -> dict[str, Any]:
    page = key_store.list_page(limit, cursor)
    return {
        "data": [views.operator_key_json(record, now) for record in page.items],
        "next_cursor": page.next_cursor,
    }


def get_key(key_id: str, now: int) -> dict[str, Any]:
    return views.operator_key_json(key_store.require(key_id), now)


def patch_key(
    key_id: str, body: schemas.PatchOperatorKey, held: frozenset[str], now: int
) -> dict[str, Any]:
    for name in ("name", "scopes", "status"):
        if name in body.model_fields_set and getattr(body, name) is None:
            raise InvalidRequest(f"{name} cannot be null.", param=name)
    current = key_store.require(key_id)
    _may_manage(held, current)
    if not body.model_fields_set:
        return views.operator_key_json(current, now)  # nothing to change, nothing written
    if body.scopes is not None:
        scopes.require_grantable(held, body.scopes)
    new_scopes = None if body.scopes is None else tuple(body.scopes)
    after = replace(
        current,
        name=current.name if body.name is None else body.name,
        scopes=current.scopes if new_scopes is None else new_scopes,
        status=current.status if body.status is None else body.status,
    )
    changes = audit.diff(audit.operator_key_fields(current), audit.operator_key_fields(after))
    updated = key_store.update(
        current,
        now,
        name=body.name,
        scopes=new_scopes,
        status=body.status,
        audit=audit.entry("opkey.update", key_id, changes),
    )
    return views.operator_key_json(updated, now)


def delete_key(key_id: str, held: frozenset[str]) -> None:
    current = key_store.require(key_id)
    _may_manage(held, current)
    changes = audit.removed(audit.operator_key_fields(current))
    key_store.delete(key_id, audit=audit.entry("opkey.delete", key_id, changes))


def verify(presented: str, key_id: str, now: int) -> OperatorKeyRecord:
    """The stored key behind a presented ``ops-`` key, read now; 401 unless it may be used.

    An unknown id and a wrong secret get the same 401. Only a caller who holds the right key
    learns that it is disabled or expired.
    """
    record = key_store.get(key_id)
    if record is None or not keys.hashes_match(presented, record.key_hash):
        raise Unauthenticated()
    if record.status != "enabled":
        raise KeyDisabled("This operator key is disabled.")
    if record.is_expired(now):
        raise KeyExpired("This operator key has expired.")
    try:
        key_store.touch(record, now)
    except (TooManyRequests, ServiceUnavailable) as exc:
        # Bookkeeping only: a busy table must not refuse a key that checked out.
        observe.log("operator_key_touch_failed", level="WARNING", key_id=record.id, error=exc)
    return record
