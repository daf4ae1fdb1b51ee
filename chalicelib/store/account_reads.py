"""An account's item as the relay reads it: by id, strongly consistent, as an ``AccountRecord``.

Raw items without PynamoDB, like ``token_reads.py``; ``accounts.py`` reads through here too.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core.records import DEFAULT_GROUP, AccountRecord
from chalicelib.store import items, tables
from chalicelib.store.common import get_item, translated
from chalicelib.store.token_reads import limits, plausible_id


def record(raw: dict[str, Any]) -> AccountRecord:
    """The record in an item (DynamoDB's JSON)."""
    item = items.plain(raw)
    groups = item.get("groups")
    return AccountRecord(
        id=item["id"],
        name=item["name"],
        status=items.or_default(item.get("status"), "enabled"),
        unlimited=bool(item.get("unlimited")),
        quota_units=int(item.get("quota_units") or 0),
        used_units=int(item.get("used_units") or 0),
        reserved_units=int(item.get("reserved_units") or 0),
        remaining_units=int(item.get("remaining_units") or 0),
        created_at=int(item["created_at"]),
        management_key_hash=item["management_key_hash"],
        # Absent on items older than the attribute, which then hold only "default".
        groups=tuple(groups) if groups is not None else (DEFAULT_GROUP,),
        revision=int(item.get("revision") or 0),
        **limits(item),
    )


def get(account_id: str) -> AccountRecord | None:
    if not plausible_id(account_id):
        return None
    with translated():
        found = get_item(tables.name(tables.ACCOUNTS), {"id": {"S": account_id}})
    return None if found is None else record(found)
