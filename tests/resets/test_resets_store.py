"""The conditional reset write and the due-key index, on moto and on DynamoDB Local."""

from __future__ import annotations

from typing import Any

import pytest
from reset_helpers import assert_invariant, at, raw_item, reserve, seed_tokens, settle, spend

from chalicelib.services import resets as jobs
from chalicelib.store import resets as reset_store
from chalicelib.store import tokens as token_store

MIDNIGHT = at(2027, 3, 11)
NOW = at(2027, 3, 11, 0, 10)
NEXT_MIDNIGHT = at(2027, 3, 12)


def stored(token_id: str) -> dict[str, Any]:
    item = raw_item(token_id)
    assert item is not None
    return item


def test_reset_gives_back_the_quota_minus_what_is_still_reserved(backend: Any) -> None:
    # GIVEN a due daily key: 300 spent, and a request holding 200 in flight
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=1_000)
    assert spend(token_id, 300)
    assert reserve(token_id, 200)
    # WHEN it is reset
    done = reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW)
    # THEN usage is cleared, the reservation still held, and the boundary moved to next midnight
    assert done is True
    item = stored(token_id)
    assert (item["used_units"], item["reserved_units"], item["remaining_units"]) == (0, 200, 800)
    assert (item["next_reset_at"], item["last_reset_at"]) == (NEXT_MIDNIGHT, NOW)
    assert item["reset_bucket"] == "due"
    assert_invariant(item)


def test_charge_reserved_before_the_reset_and_settled_after_counts_in_the_new_period(
    backend: Any,
) -> None:
    # GIVEN a due key with 300 spent and 200 reserved by a request still running
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=1_000)
    assert spend(token_id, 300)
    assert reserve(token_id, 200)
    # WHEN the key is reset, then the request settles a charge of 150
    assert reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW)
    settled = settle(token_id, reserved=200, charged=150)
    # THEN the 150 count once, in the new period, and the invariant holds exactly
    assert settled.next_reset_at_after == NEXT_MIDNIGHT
    item = stored(token_id)
    assert (item["used_units"], item["reserved_units"], item["remaining_units"]) == (150, 0, 850)
    assert item["total_used_units"] == 450
    assert_invariant(item)


def test_second_reset_for_the_same_boundary_changes_nothing(backend: Any) -> None:
    # GIVEN a key reset for this boundary, then 100 spent in the new period
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=1_000)
    assert spend(token_id, 300)
    assert reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW)
    assert spend(token_id, 100)
    # WHEN the same reset is tried again (a second run, a retry, the lazy path)
    again = reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW + 60)
    # THEN it reports False and the new period's usage survives
    assert again is False
    item = stored(token_id)
    assert (item["used_units"], item["remaining_units"], item["last_reset_at"]) == (100, 900, NOW)


def test_reset_of_a_deleted_key_is_false_and_does_not_recreate_it(backend: Any) -> None:
    # GIVEN a due key that was deleted after the index listed it
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT)
    token_store.delete(token_id, "acct-test")
    # WHEN its reset is attempted
    outcome = reset_store.try_reset(token_id, MIDNIGHT, "daily", NOW)
    # THEN nothing happened and no item appeared
    assert (outcome.reset, outcome.before, outcome.after) == (False, None, None)
    assert raw_item(token_id) is None


def test_reset_with_a_stale_period_is_refused(backend: Any) -> None:
    # GIVEN a weekly key due on a Monday midnight, a boundary a daily key could also have
    monday = at(2027, 3, 15)
    [token_id] = seed_tokens(1, period="weekly", next_reset_at=monday)
    assert spend(token_id, 300)
    # WHEN a reset computed from a stale read saying "daily" is attempted after the boundary
    outcome = reset_store.try_reset(token_id, monday, "daily", monday + 60)
    # THEN it is refused, and the failure returns the item as it stands
    assert outcome.reset is False
    assert outcome.after is not None and outcome.after.reset_period == "weekly"
    item = stored(token_id)
    assert (item["used_units"], item["next_reset_at"]) == (300, monday)


def test_reset_before_the_boundary_writes_nothing(backend: Any) -> None:
    # GIVEN a key whose boundary is tomorrow's midnight
    [token_id] = seed_tokens(1, next_reset_at=NEXT_MIDNIGHT)
    assert spend(token_id, 10)
    # WHEN a reset is asked for now
    done = reset_store.reset_token(token_id, NEXT_MIDNIGHT, "daily", NOW)
    # THEN it is refused and the key keeps its usage
    assert done is False
    assert stored(token_id)["used_units"] == 10


def test_unlimited_key_is_reset_to_minus_what_it_holds_in_flight(backend: Any) -> None:
    # GIVEN a due unlimited key (quota counted as 0): 70 spent, 30 reserved
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=None)
    assert spend(token_id, 70)
    assert reserve(token_id, 30)
    # WHEN it is reset
    assert reset_store.reset_token(token_id, MIDNIGHT, "daily", NOW)
    # THEN remaining is 0 - 0 - 30
    item = stored(token_id)
    assert (item["used_units"], item["reserved_units"], item["remaining_units"]) == (0, 30, -30)
    assert_invariant(item)


def test_due_index_pages_through_only_keys_whose_boundary_has_passed(backend: Any) -> None:
    # GIVEN five due keys, two due tomorrow and two without a period
    due = set(seed_tokens(5, next_reset_at=MIDNIGHT))
    seed_tokens(2, next_reset_at=NEXT_MIDNIGHT)
    seed_tokens(2, period="never", next_reset_at=None)
    # WHEN the index is read two ids at a time
    pages, start = [], None
    for _ in range(10):
        ids, start = reset_store.due_token_ids(NOW, 2, start)
        pages.append(ids)
        if start is None:
            break
    # THEN the pages hold exactly the five due keys, each once
    listed = [token_id for page in pages for token_id in page]
    assert sorted(listed) == sorted(due)
    assert [len(page) for page in pages[:3]] == [2, 2, 1]
    assert start is None


def test_due_index_page_size_is_bounded(backend: Any) -> None:
    # GIVEN / WHEN a page larger than one BatchGetItem is asked for / THEN it is refused
    with pytest.raises(ValueError, match="limit"):
        reset_store.due_token_ids(NOW, 101)


def test_lazy_reset_returns_the_fresh_record(backend: Any) -> None:
    # GIVEN a due key with 400 spent, as the request path read it
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=1_000)
    assert spend(token_id, 400)
    token = token_store.get(token_id)
    assert token is not None
    # WHEN the request path resets it lazily
    fresh = jobs.reset_if_due(token, NOW)
    # THEN it gets the record after the reset, identical to what is stored
    assert fresh is not None
    assert (fresh.used_units, fresh.remaining_units, fresh.next_reset_at) == (
        0,
        1_000,
        NEXT_MIDNIGHT,
    )
    assert fresh == token_store.get(token_id)


def test_lazy_reset_after_another_reset_returns_the_current_record_without_resetting(
    backend: Any,
) -> None:
    # GIVEN a stale read of a due key, which the schedule then reset; 50 spent since
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT, quota_units=1_000)
    assert spend(token_id, 400)
    stale = token_store.get(token_id)
    assert stale is not None
    assert jobs.run_resets(NOW).reset == 1
    assert spend(token_id, 50)
    # WHEN the request path tries the lazy reset with its stale record
    current = jobs.reset_if_due(stale, NOW + 5)
    # THEN the 50 survive, and it gets the key as it now stands
    assert current is not None
    assert (current.used_units, current.next_reset_at) == (50, NEXT_MIDNIGHT)
    assert stored(token_id)["used_units"] == 50


def test_lazy_reset_of_a_key_not_due_is_none_and_writes_nothing(backend: Any) -> None:
    # GIVEN a key due tomorrow, with usage
    [token_id] = seed_tokens(1, next_reset_at=NEXT_MIDNIGHT)
    assert spend(token_id, 10)
    token = token_store.get(token_id)
    assert token is not None
    # WHEN the lazy reset is asked for now
    result = jobs.reset_if_due(token, NOW)
    # THEN nothing to do
    assert result is None
    assert stored(token_id)["used_units"] == 10


def test_lazy_reset_of_a_key_with_an_unknown_period_is_none_and_writes_nothing(
    backend: Any,
) -> None:
    # GIVEN a due key whose stored period this code does not know
    [token_id] = seed_tokens(1, period="fortnightly", next_reset_at=MIDNIGHT)
    assert spend(token_id, 10)
    token = token_store.get(token_id)
    assert token is not None
    # WHEN the request path tries the lazy reset
    result = jobs.reset_if_due(token, NOW)
    # THEN it gives up quietly (no error reaches the client) and the key is untouched
    assert result is None
    assert (stored(token_id)["used_units"], stored(token_id)["next_reset_at"]) == (10, MIDNIGHT)
