"""Operator keys (``ops-``), one ``ConfigItem`` each: ``("opkey", <key id>)``.

They share the config table rather than needing one of their own: the kind is its own partition,
so listing them is one Query and the relay's per-kind reads of channels, prices and groups never
see them. Unlike the rest of that table nothing here is cached: every request reads its key's
item with a strongly consistent GetItem, so a disabled, re-scoped or deleted key is refused on
its very next call.

The item's body holds the key's SHA-256 hash, never the key; ``to_record`` is the only reader.
"""

from __future__ import annotations

from typing import Any

from pynamodb.transactions import TransactWrite

from chalicelib.core.audit import AuditEntry
from chalicelib.core.errors import Conflict, InvalidRequest, NotFound
from chalicelib.core.records import NEVER, OperatorKeyRecord, Page
from chalicelib.store import audit as audit_store
from chalicelib.store.common import (
    conditional,
    decode_cursor,
    is_listing_position,
    take_page,
    translated,
)
from chalicelib.store.models import ConfigItem
from chalicelib.store.tokens import plausible_id

OPKEY = "opkey"
# ``last_used_at`` is written at most once a minute per key: a busy scheduler costs one small
# write a minute, not one per call, and the listing is still right to the minute.
TOUCH_EVERY_SECONDS = 60


def _missing() -> NotFound:
    return NotFound("No operator key with this id.", param="id")


def to_record(item: ConfigItem) -> OperatorKeyRecord:
    body = item.body.as_dict()
    last_used = body.get("last_used_at")
    return OperatorKeyRecord(
        id=item.name,
        name=str(body["name"]),
        scopes=tuple(str(scope) for scope in body.get("scopes") or ()),
        key_hash=str(body["key_hash"]),
        key_preview=str(body.get("key_preview") or ""),
        status=str(body.get("status") or "enabled"),
        created_at=int(body.get("created_at") or 0),
        expires_at=int(body.get("expires_at") or NEVER),
        last_used_at=None if last_used is None else int(last_used),
        revision=int(body.get("revision") or 1),
    )


def create(record: OperatorKeyRecord, *, audit: AuditEntry | None = None) -> None:
    body: dict[str, Any] = {
        "name": record.name,
        "scopes": list(record.scopes),
        "key_hash": record.key_hash,
        "key_preview": record.key_preview,
        "status": record.status,
        "created_at": record.created_at,
        "expires_at": record.expires_at,
        "revision": record.revision,
    }
    item = ConfigItem(OPKEY, record.id, body=body, updated_at=record.created_at)

    def build(transaction: TransactWrite) -> None:
        transaction.save(item, condition=ConfigItem.name.does_not_exist())

    audit_store.write(build, audit, Conflict("An operator key id collided; retry."))


def get(key_id: str) -> OperatorKeyRecord | None:
    """The key's item as it is now (strongly consistent), or None."""
    if not plausible_id(key_id):
        return None
    with translated():
        try:
            return to_record(ConfigItem.get(OPKEY, key_id, consistent_read=True))
        except ConfigItem.DoesNotExist:
            return None


def require(key_id: str) -> OperatorKeyRecord:
    record = get(key_id)
    if record is None:
        raise _missing()
    return record


def list_page(limit: int, cursor: str | None) -> Page:
    """Operator keys in id order: one Query on the ``opkey`` partition, never a Scan."""
    start = decode_cursor(cursor, expected={"kind": OPKEY})
    if start is not None and not is_listing_position(start, strings=("kind", "name"), numbers=()):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    with translated():
        results = ConfigItem.query(
            OPKEY, consistent_read=True, last_evaluated_key=start, page_size=limit
        )
        return take_page(results, limit, to_record, _position)


def _position(item: ConfigItem) -> dict[str, Any]:
    return {"kind": {"S": OPKEY}, "name": {"S": item.name}}


def update(
    current: OperatorKeyRecord,
    now: int,
    *,
    name: str | None = None,
    scopes: tuple[str, ...] | None = None,
    status: str | None = None,
    audit: AuditEntry | None = None,
) -> OperatorKeyRecord:
    """Apply the changes over ``current``; 409 if the key was edited or deleted since it was read.

    The revision in the condition is what makes a check made on ``current`` (say, that the
    caller may manage a key with these scopes) still true when the write lands.
    """
    actions = [
        ConfigItem.body["revision"].set(current.revision + 1),
        ConfigItem.updated_at.set(now),
    ]
    if name is not None:
        actions.append(ConfigItem.body["name"].set(name))
    if scopes is not None:
        actions.append(ConfigItem.body["scopes"].set(list(scopes)))
    if status is not None:
        actions.append(ConfigItem.body["status"].set(status))
    conflict = Conflict("The operator key changed or was deleted while it was being edited; retry.")

    def build(transaction: TransactWrite) -> None:
        transaction.update(
            ConfigItem(OPKEY, current.id),
            actions=actions,
            condition=ConfigItem.name.exists() & (ConfigItem.body["revision"] == current.revision),
        )

    audit_store.write(build, audit, conflict)
    return require(current.id)


def touch(record: OperatorKeyRecord, now: int) -> None:
    """Record a use, unless one was recorded within the last minute.

    Conditional on the item existing, so a key deleted meanwhile is not brought back as a stub;
    a refused write changes nothing and is not an error.
    """
    if record.last_used_at is not None and now - record.last_used_at < TOUCH_EVERY_SECONDS:
        return
    item = ConfigItem(OPKEY, record.id)
    with translated():
        conditional(
            lambda: item.update(
                actions=[ConfigItem.body["last_used_at"].set(now)],
                condition=ConfigItem.name.exists(),
            )
        )


def delete(key_id: str, *, audit: AuditEntry | None = None) -> None:
    if not plausible_id(key_id):
        raise _missing()

    def build(transaction: TransactWrite) -> None:
        transaction.delete(ConfigItem(OPKEY, key_id), condition=ConfigItem.name.exists())

    audit_store.write(build, audit, _missing())
