"""Usage logs and aggregates for an account: GET /logs and GET /usage.

Both read the ``usage_by_account`` index (Query, never Scan). ``/usage`` aggregates the records
of the requested range in memory; ranges are capped at 366 days.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.pricing import units_to_usd
from chalicelib.core.views import iso
from chalicelib.store import usage as usage_store
from chalicelib.store.usage import Usage

DAY = 86_400
DEFAULT_RANGE_DAYS = 30
MAX_RANGE_DAYS = 366
DEFAULT_RANGE_MS = DEFAULT_RANGE_DAYS * DAY * 1000
GROUP_BY = ("day", "token", "model")
# What a request id may look like (the relay's are req_ and 32 hex digits).
REQUEST_ID = re.compile(r"[A-Za-z0-9_\-]{1,128}")
# The outcomes a log line can show (chalicelib/services/gateway.py writes them).
STATUSES = ("ok", "upstream_error", "deadline_exceeded", "rejected")


def parse_time(raw: str | None, param: str) -> float | None:
    """An ISO-8601 instant (a plain date means 00:00 UTC) or epoch seconds, as epoch seconds.

    Fractions are kept: a console asking "until now" with milliseconds must see a call made
    earlier in the same second.
    """
    if raw is None or raw == "":
        return None
    if raw.isdigit():
        return float(raw)
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidRequest(
            f"{param} must be an ISO-8601 date or date-time (e.g. 2026-11-01T00:00:00Z).",
            param=param,
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def time_range(start: str | None, end: str | None, now: int) -> tuple[int, int]:
    """[start, end) in epoch milliseconds; default: the last 30 days up to now."""
    end_at = parse_time(end, "end")
    end_ms = math.ceil(end_at * 1000) if end_at is not None else (now + 1) * 1000
    start_at = parse_time(start, "start")
    start_ms = math.floor(start_at * 1000) if start_at is not None else end_ms - DEFAULT_RANGE_MS
    if start_ms >= end_ms:
        raise InvalidRequest("start must be before end.", param="start")
    if end_ms - start_ms > MAX_RANGE_DAYS * DAY * 1000:
        raise InvalidRequest(f"The range may span at most {MAX_RANGE_DAYS} days.", param="start")
    return start_ms, end_ms


UPSTREAM = "the upstream provider"


def _tenant_detail(detail: str | None, channel: str) -> str | None:
    """``detail`` without the channel's name: which channels exist is the operator's business."""
    if detail is None or not channel:
        return detail
    return re.sub(rf"(?<!\w){re.escape(channel)}(?!\w)", UPSTREAM, detail)


def log_json(record: Usage, *, show_channel: bool) -> dict[str, Any]:
    """One log line; ``show_channel`` (admin views only) names the channel that answered."""
    return {
        "request_id": record.request_id,
        "created_at": iso(record.created_ms // 1000),
        "account_id": record.account_id,
        "token_id": record.token_id,
        "token_name": record.token_name,
        "model": record.model,
        "group": record.group or None,
        "channel": record.channel if show_channel else None,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_units": record.cost_units,
        "cost_usd": units_to_usd(record.cost_units),
        "reserved_units": record.reserved_units,
        "status": record.status,
        "state": record.state,
        "latency_ms": record.latency_ms,
        "stream": record.stream,
        "usage_estimated": record.usage_estimated,
        "detail": record.detail if show_channel else _tenant_detail(record.detail, record.channel),
    }


def logs(
    account_id: str,
    limit: int,
    cursor: str | None,
    *,
    start: str | None,
    end: str | None,
    token_id: str | None,
    model: str | None,
    now: int,
    show_channel: bool = False,
    status: str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """A page of the account's log; channels are named only if ``show_channel`` (the admin).

    ``request_id`` finds one call by its id (a GetItem), still within the other filters; another
    account's call is reported exactly like a missing one: an empty page.
    """
    start_ms, end_ms = time_range(start, end, now)
    status = _checked_status(status)
    if request_id:
        if not REQUEST_ID.fullmatch(request_id):
            raise InvalidRequest("request_id is not a request id (req_...).", param="request_id")
        found = usage_store.get(request_id)
        wanted = found is not None and found.account_id == account_id
        if found is not None and wanted:
            wanted = start_ms <= found.created_ms < end_ms and _matches(
                found, token_id=token_id, model=model, status=status
            )
        items = [found] if found is not None and wanted else []
        return {
            "data": [log_json(r, show_channel=show_channel) for r in items],
            "next_cursor": None,
        }
    page = usage_store.list_for_account(
        account_id,
        limit,
        cursor,
        start_ms=start_ms,
        end_ms=end_ms,
        token_id=token_id or None,
        model=model or None,
        status=status,
    )
    return {
        "data": [log_json(r, show_channel=show_channel) for r in page.items],
        "next_cursor": page.next_cursor,
    }


def _checked_status(status: str | None) -> str | None:
    if not status:
        return None
    if status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}.", param="status")
    return status


def _matches(record: Usage, *, token_id: str | None, model: str | None, status: str | None) -> bool:
    return (
        (not token_id or record.token_id == token_id)
        and (not model or record.model == model)
        and (not status or record.status == status)
    )


def usage(
    account_id: str,
    *,
    start: str | None,
    end: str | None,
    group_by: str | None,
    now: int,
    token_id: str | None = None,
    model: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Totals per day, key or model; the filters are those of ``logs``, so a chart drawn from
    this always agrees with the log lines listed under it."""
    group_by = group_by or "day"
    if group_by not in GROUP_BY:
        raise InvalidRequest("group_by must be one of day, token, model.", param="group_by")
    start_ms, end_ms = time_range(start, end, now)
    status = _checked_status(status)
    buckets: dict[str, dict[str, int]] = defaultdict(
        lambda: {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_units": 0}
    )
    for record in usage_store.iterate_for_account(account_id, start_ms, end_ms):
        if record.state == "pending":
            continue
        if not _matches(record, token_id=token_id, model=model, status=status):
            continue
        if group_by == "day":
            key = datetime.fromtimestamp(record.created_ms // 1000, UTC).strftime("%Y-%m-%d")
        elif group_by == "token":
            key = record.token_id
        else:
            key = record.model
        bucket = buckets[key]
        bucket["requests"] += 1
        bucket["prompt_tokens"] += record.prompt_tokens
        bucket["completion_tokens"] += record.completion_tokens
        bucket["cost_units"] += record.cost_units
    return {
        "data": [
            {"key": key, **values, "cost_usd": units_to_usd(values["cost_units"])}
            for key, values in sorted(buckets.items())
        ],
        "group_by": group_by,
        "start": iso(start_ms // 1000),
        "end": iso(math.ceil(end_ms / 1000)),
    }
