"""The ledger verifier: reads every account and key and checks the ledger's invariants.

It never writes: drift found is reported (with ids and amounts), logged and counted in the
``LedgerDrift`` metric, which has an alarm in the stack; fixing is a person's decision. The
invariants are in ``core.ledger_rules``. A drift seen through the (eventually consistent) listing
indexes is confirmed on the item itself before it is reported, and a key or account with calls
in flight is not compared with the usage records (a call's record and its charge are separate
writes, so they can differ for the few milliseconds a settle takes).

A run pages through the accounts newest first and stops when its time runs out, returning a
cursor to continue from (the scheduled run goes to the end; the admin route answers within API
Gateway's limit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core import observe
from chalicelib.core.ledger_rules import (
    Drift,
    LedgerItem,
    item_drift,
    logged_drift,
    within_retention,
)
from chalicelib.core.settings import get_settings
from chalicelib.store import verify as verify_store

PAGE_SIZE = 25
# Seconds kept in hand at the end of a time-limited run to answer cleanly.
RESERVE_SECONDS = 2.0


@dataclass
class VerifyRun:
    accounts: int = 0
    tokens: int = 0
    drift: list[Drift] = field(default_factory=list)
    next_cursor: str | None = None

    @property
    def ok(self) -> bool:
        return not self.drift

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "drift": [d.to_json() for d in self.drift],
            "accounts": self.accounts,
            "tokens": self.tokens,
            "complete": self.next_cursor is None,
            "next_cursor": self.next_cursor,
        }


def verify(
    now: int, deadline: Callable[[], float] | None = None, cursor: str | None = None
) -> VerifyRun:
    """Check every account (from ``cursor``) and its keys until done or out of time."""
    run = VerifyRun()
    while True:
        page = verify_store.accounts_page(PAGE_SIZE, cursor)
        for account in page.items:
            _check_account(run, account, now)
        cursor = page.next_cursor
        if cursor is None or (deadline is not None and deadline() <= RESERVE_SECONDS):
            run.next_cursor = cursor
            break
    for drift in run.drift:
        observe.log("ledger_drift", level="ERROR", **drift.to_json())
    observe.metric("LedgerDrift", len(run.drift))
    return run


def _check_account(run: VerifyRun, account: LedgerItem, now: int) -> None:
    settings = get_settings()
    run.accounts += 1
    tokens = list(verify_store.tokens_of(account.id))
    run.tokens += len(tokens)
    for item in (account, *tokens):
        run.drift += _confirmed(item_drift(item, now, *_max_ages()), now)
    if not within_retention(account, now, settings.log_retention_days):
        return
    logged = verify_store.logged_costs(account.id)
    candidates = [(account, logged.total)] + [
        (token, logged.by_token.get(token.id, 0))
        for token in tokens
        if within_retention(token, now, settings.log_retention_days)
    ]
    for item, units in candidates:
        if item.pending:
            continue  # a call in flight: its record and its charge may not both be written yet
        drift = logged_drift(item, units)
        if drift is not None:
            again = verify_store.reread(item.kind, item.id)
            if again is not None and not again.pending and logged_drift(again, units):
                run.drift.append(drift)


def _confirmed(found: list[Drift], now: int) -> list[Drift]:
    """The drifts that the item, read again strongly consistently, still shows."""
    if not found:
        return []
    item = verify_store.reread(found[0].item, found[0].id)
    if item is None:
        return []  # deleted since the index listed it
    return item_drift(item, now, *_max_ages())


def _max_ages() -> tuple[int, int]:
    """How old a call's entry, and a video job's, may be: the job's deadline plus the sweeper's
    margin (it refunds a job past its deadline on its next runs)."""
    settings = get_settings()
    max_age = settings.reservation_max_age_seconds
    return max_age, settings.video_job_max_seconds + max_age
