"""Reads for the ledger verifier: every account and key with its pending entries, and the usage
records' totals. Query and GetItem only (never a Scan); nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.ledger_rules import ItemKind, LedgerItem, PendingEntry
from chalicelib.core.records import Page
from chalicelib.store import accounts as account_store
from chalicelib.store.common import translated
from chalicelib.store.models import Account, Token, UsageRecord


def _pending(raw: Any) -> tuple[PendingEntry, ...]:
    """``pending`` as stored: request id -> [units, epoch seconds, ...]."""
    entries = raw.as_dict() if hasattr(raw, "as_dict") else dict(raw or {})
    return tuple(
        PendingEntry(rid, int(value[0]), int(value[1]), job=len(value) >= 5 and bool(value[4]))
        for rid, value in sorted(entries.items())
        if isinstance(value, list | tuple) and len(value) >= 2
    )


def _account_item(item: Account) -> LedgerItem:
    return LedgerItem(
        kind="account",
        id=item.id,
        account_id=item.id,
        unlimited=bool(item.unlimited),
        quota_units=int(item.quota_units or 0),
        used_units=int(item.used_units or 0),
        reserved_units=int(item.reserved_units or 0),
        remaining_units=int(item.remaining_units or 0),
        lifetime_used_units=int(item.used_units or 0),
        created_at=int(item.created_at),
        pending=_pending(item.pending),
    )


def _token_item(item: Token) -> LedgerItem:
    return LedgerItem(
        kind="token",
        id=item.id,
        account_id=item.account_id,
        unlimited=bool(item.unlimited),
        quota_units=int(item.quota_units or 0),
        used_units=int(item.used_units or 0),
        reserved_units=int(item.reserved_units or 0),
        remaining_units=int(item.remaining_units or 0),
        lifetime_used_units=int(item.total_used_units or 0),
        created_at=int(item.created_at),
        pending=_pending(item.pending),
    )


def accounts_page(limit: int, cursor: str | None) -> Page:
    """A page of accounts (``LedgerItem``s) through the accounts' listing index."""
    return account_store.list_page(limit, cursor, _account_item)


def tokens_of(account_id: str) -> Iterator[LedgerItem]:
    with translated():
        for item in Token.by_account.query(account_id, page_size=100):
            yield _token_item(item)


def reread(kind: ItemKind, item_id: str) -> LedgerItem | None:
    """The item as stored now (a strongly consistent GetItem), to confirm a drift before it is
    reported: the listing indexes are eventually consistent."""
    with translated():
        try:
            if kind == "account":
                return _account_item(Account.get(item_id, consistent_read=True))
            return _token_item(Token.get(item_id, consistent_read=True))
        except (Account.DoesNotExist, Token.DoesNotExist):
            return None


@dataclass(frozen=True)
class LoggedCosts:
    """What the usage records of one account say was charged, in total and per key."""

    total: int = 0
    by_token: dict[str, int] = field(default_factory=dict)


def logged_costs(account_id: str) -> LoggedCosts:
    by_token: dict[str, int] = defaultdict(int)
    with translated():
        for record in UsageRecord.by_account.query(account_id, page_size=500):
            by_token[record.token_id] += int(record.cost_units or 0)
    return LoggedCosts(sum(by_token.values()), dict(by_token))
