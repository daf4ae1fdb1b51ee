"""``GET /audit`` and ``sluice audit``: the audit trail, newest first, with its filters.

The records themselves are written by the use cases that change things, each in its change's
own transaction (``chalicelib.core.audit``); this module only reads them. A management key sees
its own account's records and nothing else: the route passes the caller's account, never one
from the query.
"""

from __future__ import annotations

from typing import Any

from chalicelib.core import audit
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.settings import get_settings
from chalicelib.services.reports import parse_time
from chalicelib.store import audit as audit_store

MAX_ID_BYTES = 1024
# Records are never stamped in the future; a little slack covers clocks a little apart.
CLOCK_SLACK_MS = 60_000


def _id(value: str | None, param: str) -> str | None:
    if value is None or value == "":
        return None
    if len(value.encode("utf-8")) > MAX_ID_BYTES:
        raise InvalidRequest(f"{param} is too long.", param=param)
    return value


def _range(start: str | None, end: str | None, now: int) -> tuple[int, int]:
    """``[start, end)`` in epoch ms, inside the retention (nothing older is kept)."""
    now_ms = now * 1000
    oldest = now_ms - get_settings().audit_retention_days * 86_400_000
    start_at, end_at = parse_time(start, "start"), parse_time(end, "end")
    end_ms = now_ms + CLOCK_SLACK_MS if end_at is None else int(end_at * 1000)
    start_ms = oldest if start_at is None else int(start_at * 1000)
    if start_ms >= end_ms:
        raise InvalidRequest("start must be before end.", param="start")
    return max(start_ms, oldest), max(min(end_ms, now_ms + CLOCK_SLACK_MS), oldest + 1)


def filters(
    *,
    account_id: str | None,
    target_type: str | None,
    target_id: str | None,
    action: str | None,
    start: str | None,
    end: str | None,
    now: int,
) -> audit_store.Filters:
    """The listing's filters, validated (400 naming the parameter)."""
    if action and action not in audit.ACTIONS:
        raise InvalidRequest(
            "action must be one of " + ", ".join(audit.ACTIONS) + ".", param="action"
        )
    if target_type and target_type not in audit.TARGET_TYPES:
        raise InvalidRequest(
            "target_type must be one of " + ", ".join(audit.TARGET_TYPES) + ".",
            param="target_type",
        )
    target_id = _id(target_id, "target_id")
    if target_id and not target_type:
        raise InvalidRequest("target_id needs target_type.", param="target_type")
    start_ms, end_ms = _range(start, end, now)
    return audit_store.Filters(
        start_ms=start_ms,
        end_ms=end_ms,
        account_id=_id(account_id, "account_id"),
        target_type=target_type or None,
        target_id=target_id,
        action=action or None,
    )


def list_records(selected: audit_store.Filters, limit: int, cursor: str | None) -> dict[str, Any]:
    page = audit_store.list_page(selected, limit, cursor)
    return {
        "data": [audit.line_json(line) for line in page.items],
        "next_cursor": page.next_cursor,
    }
