"""Scheduled work: giving keys their period's quota back on UTC boundaries.

Two paths reach the same conditional write (``chalicelib.store.resets.try_reset``):

* ``run_resets`` -- the hourly schedule (and ``POST /admin/resets/run``, and the CLI) pages
  through every due key of the sparse index and resets each one;
* ``reset_if_due`` -- the request path, when a reservation was refused because the key's boundary
  has passed and the schedule has not reached it yet.

Both are safe to run any number of times, concurrently with each other and with requests: the
write's condition lets exactly one of them reset a key per boundary, and a key due for several
missed periods is reset once, to the boundary after ``now``. A run killed at any line leaves every
key either reset or still due, so the next run (or the next request) finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from chalicelib.core import calendar as resets
from chalicelib.core import observe
from chalicelib.core.records import TokenRecord
from chalicelib.store import resets as reset_store

DEFAULT_PAGE_SIZE = 100
# Seconds left unused at the end of a time-limited run, so it returns its counts cleanly instead
# of being killed mid-page: this much, or a quarter of the budget for short budgets.
DEADLINE_RESERVE_SECONDS = 5.0
MAX_LAZY_ATTEMPTS = 3
# Concurrent writes for the schedule, the admin route and the CLI (see ``run_resets``).
SCHEDULE_WORKERS = 8

# The history of resets is the log: one ``quota_reset`` line per reset (see store/resets.py for
# why it is not an item).


@dataclass(frozen=True)
class ResetRun:
    """What one run did. ``skipped`` counts keys the index listed that needed nothing from this
    run: reset by someone else meanwhile, changed, deleted, or holding an unknown period."""

    reset: int = 0
    skipped: int = 0
    pages: int = 0
    stopped_early: bool = False

    @property
    def complete(self) -> bool:
        return not self.stopped_early

    def as_json(self) -> dict[str, Any]:
        return {
            "reset": self.reset,
            "skipped": self.skipped,
            "pages": self.pages,
            "complete": self.complete,
        }


def _reserve_for(budget: float) -> float:
    return min(DEADLINE_RESERVE_SECONDS, max(budget, 0.0) / 4)


def run_resets(
    now: int,
    deadline: Callable[[], float] | None = None,
    *,
    page_size: int = DEFAULT_PAGE_SIZE,
    workers: int = 1,
) -> ResetRun:
    """Reset every key whose boundary is at or before ``now``, page by page.

    ``deadline`` returns the seconds this invocation has left (in Lambda,
    ``context.get_remaining_time_in_millis() / 1000``). The run checks it before each page and
    each wave of writes, stops when no more than the reserve is left and reports
    ``stopped_early``; the keys it did not reach are still due, so the next run picks them up
    from the start of the index without a saved cursor (reset keys have left the
    ``next_reset_at <= now`` range).

    ``workers`` writes go out at once: each is a round trip of a few milliseconds, so a Lambda
    is bound by latency, not CPU. Keep 1 on moto, which is not thread-safe.
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    reserve = None if deadline is None else _reserve_for(deadline())

    def out_of_time() -> bool:
        return deadline is not None and reserve is not None and deadline() <= reserve

    reset = skipped = pages = 0
    start_key: dict[str, Any] | None = None
    with ThreadPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        apply_all = map if pool is None else pool.map
        while True:
            if out_of_time():
                return ResetRun(reset, skipped, pages, stopped_early=True)
            ids, start_key = reset_store.due_token_ids(now, page_size, start_key)
            pages += 1
            found = reset_store.due_keys(ids)
            skipped += len(ids) - len(found)  # deleted since the index listed them
            for wave_start in range(0, len(found), workers):
                if out_of_time():
                    return ResetRun(reset, skipped, pages, stopped_early=True)
                wave = found[wave_start : wave_start + workers]
                outcomes = list(apply_all(_reset_one, wave, [now] * len(wave)))
                reset += sum(outcomes)
                skipped += len(outcomes) - sum(outcomes)
            if start_key is None:
                return ResetRun(reset, skipped, pages)


def _reset_one(key: reset_store.DueKey, now: int) -> bool:
    if key.next_reset_at is None or not resets.due(key.next_reset_at, now):
        return False  # reset since the (eventually consistent) index was read
    outcome = _try_reset(key.id, key.next_reset_at, key.reset_period, now)
    if outcome.reset:
        _record(outcome, now, trigger="schedule")
    return outcome.reset


def reset_if_due(token: TokenRecord, now: int) -> TokenRecord | None:
    """Reset ``token`` if its boundary has passed; the key as it now stands, or None.

    Returns the fresh record when the key was reset, by this call or by another writer that got
    there first (whose result comes back with the failed condition, without another read).
    Returns None when there was nothing to reset (not due, no period) or the key is gone.
    """
    current = token
    for _ in range(MAX_LAZY_ATTEMPTS):
        if current.reset_period == "never" or not resets.due(current.next_reset_at, now):
            return None if current is token else current
        assert current.next_reset_at is not None
        outcome = _try_reset(current.id, current.next_reset_at, current.reset_period, now)
        if outcome.after is None:
            return None
        if outcome.reset:
            _record(outcome, now, trigger="request")
            return outcome.after
        current = outcome.after  # changed under us: decide again on what the item holds now
    return current


def _try_reset(
    token_id: str, next_reset_at: int, period: str, now: int
) -> reset_store.ResetOutcome:
    try:
        return reset_store.try_reset(token_id, next_reset_at, period, now)
    except ValueError:
        # A stored period this code does not know (only a hand-edited item can hold one): leave
        # the key alone rather than fail the run or the request.
        observe.log("quota_reset_skipped", level="WARNING", token_id=token_id, reason="period")
        return reset_store.ResetOutcome(reset=False)


def _record(outcome: reset_store.ResetOutcome, now: int, trigger: str) -> None:
    """One JSON line per reset: the key's history (ids and amounts only, never a secret)."""
    before, after = outcome.before, outcome.after
    assert before is not None and after is not None
    observe.log(
        "quota_reset",
        trigger=trigger,
        token_id=before.id,
        account_id=before.account_id,
        period=before.reset_period,
        boundary=before.next_reset_at,
        reset_at=now,
        next_reset_at=after.next_reset_at,
        used_units_before=before.used_units,
        reserved_units=before.reserved_units,
        remaining_units=after.remaining_units,
    )
