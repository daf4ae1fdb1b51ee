"""Resets racing each other and live charges, on DynamoDB Local (moto is not thread-safe).

Two scheduled runs and a request-path reset go after the same due keys at once while requests
reserve and settle on those keys. Exact totals: each key is reset exactly once, and every charge
is counted exactly once, in the period it settled in.
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from reset_helpers import Settled, assert_invariant, at, raw_item, reserve, seed_tokens, settle

from chalicelib.services import resets as jobs
from chalicelib.store import resets as reset_store

pytestmark = pytest.mark.ddb_local

MIDNIGHT = at(2027, 3, 11)
NOW = at(2027, 3, 11, 0, 0, 30)
NEXT_MIDNIGHT = at(2027, 3, 12)
KEYS = 12
CHARGERS = 4
ROUNDS = 6
JOIN_SECONDS = 120.0


def run_together(actors: list[Callable[[], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Start every actor at the same instant; return their results and any exceptions."""
    barrier = threading.Barrier(len(actors))
    results: list[Any] = [None] * len(actors)
    failures: list[BaseException] = []

    def body(index: int, actor: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=JOIN_SECONDS)
            results[index] = actor()
        except BaseException as exc:
            failures.append(exc)

    threads = [
        threading.Thread(target=body, args=(i, actor), daemon=True)
        for i, actor in enumerate(actors)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "an actor did not finish in time"
    return results, failures


def test_concurrent_runs_and_charges_reset_each_key_once_and_lose_no_charge(
    ddb_local: Any,
) -> None:
    # GIVEN due daily keys, each with 500 spent in the period that just ended
    ids = seed_tokens(KEYS, next_reset_at=MIDNIGHT, quota_units=10_000_000)
    for token_id in ids:
        assert reserve(token_id, 500)
        settle(token_id, reserved=500, charged=500)

    def charger(seed: int) -> list[tuple[str, Settled]]:
        """Requests: reserve a worst case, settle a smaller real cost, over every key."""
        settled = []
        for round_ in range(ROUNDS):
            for token_id in ids:
                cost = 10 + seed * 7 + round_
                assert reserve(token_id, cost + 5)
                settled.append((token_id, settle(token_id, reserved=cost + 5, charged=cost)))
        return settled

    def lazy() -> int:
        """The request path, working from reads taken before the boundary was handled."""
        return sum(reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW) for token_id in ids)

    def job() -> jobs.ResetRun:
        return jobs.run_resets(NOW, page_size=5, workers=3)

    # WHEN two scheduled runs, a lazy resetter and the chargers all start at once
    actors: list[Callable[[], Any]] = [job, job, lazy]
    actors += [functools.partial(charger, seed) for seed in range(CHARGERS)]
    results, failures = run_together(actors)

    # THEN nothing failed, and the resets add up to exactly one per key
    assert failures == []
    first_run, second_run, lazy_resets = results[:3]
    assert first_run.reset + second_run.reset + lazy_resets == KEYS
    assert first_run.complete and second_run.complete
    # AND every charge is counted once, in the period it settled in, with the invariant exact
    after_reset: dict[str, int] = defaultdict(int)
    charged: dict[str, int] = defaultdict(int)
    for settled in results[3:]:
        for token_id, outcome in settled:
            charged[token_id] += outcome.charged
            if outcome.next_reset_at_after == NEXT_MIDNIGHT:
                after_reset[token_id] += outcome.charged
            else:
                assert outcome.next_reset_at_after == MIDNIGHT
    for token_id in ids:
        item = raw_item(token_id)
        assert item is not None
        assert (item["next_reset_at"], item["last_reset_at"]) == (NEXT_MIDNIGHT, NOW)
        assert item["used_units"] == after_reset[token_id]
        assert item["total_used_units"] == 500 + charged[token_id]
        assert item["reserved_units"] == 0
        assert_invariant(item)


def test_run_with_several_writers_resets_every_due_key_once_and_respects_the_deadline(
    ddb_local: Any,
) -> None:
    # GIVEN 30 due keys with usage
    ids = seed_tokens(30, next_reset_at=MIDNIGHT, quota_units=1_000)
    for token_id in ids:
        assert reserve(token_id, 100)
        settle(token_id, reserved=100, charged=100)
    checks = iter(range(1_000))
    # WHEN a run with four writers is cut short after a few waves, and a second one finishes
    first = jobs.run_resets(NOW, lambda: 60.0 if next(checks) < 4 else 0.0, page_size=10, workers=4)
    second = jobs.run_resets(NOW + 60, page_size=10, workers=4)
    # THEN the two runs together reset each key exactly once
    assert first.stopped_early and 0 < first.reset < 30
    assert second.complete and first.reset + second.reset == 30
    reset_at = []
    for token_id in ids:
        item = raw_item(token_id)
        assert item is not None
        assert (item["used_units"], item["remaining_units"]) == (0, 1_000)
        reset_at.append(item["last_reset_at"])
    assert sorted(reset_at) == [NOW] * first.reset + [NOW + 60] * second.reset
