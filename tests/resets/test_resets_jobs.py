"""``run_resets``: paging through every due key, and stopping cleanly before a deadline."""

from __future__ import annotations

from typing import Any

from reset_helpers import assert_invariant, at, raw_item, seed_tokens, spend

from chalicelib.services import resets as jobs
from chalicelib.store import tokens as token_store

MIDNIGHT = at(2027, 3, 11)
NOW = at(2027, 3, 11, 1, 0)
NEXT_MIDNIGHT = at(2027, 3, 12)


class Deadline:
    """A Lambda-like clock that has plenty of time for ``allowed`` checks, then none."""

    def __init__(self, allowed: int) -> None:
        self.allowed = allowed
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return 60.0 if self.calls <= self.allowed else 0.0


def reset_state(token_id: str) -> tuple[int, int, int | None]:
    item = raw_item(token_id)
    assert item is not None
    assert_invariant(item)
    return item["used_units"], item["next_reset_at"], item.get("last_reset_at")


def test_run_resets_every_due_key_across_several_pages(backend: Any) -> None:
    # GIVEN seven due keys with usage, more than three pages of two, and one key not due
    due = seed_tokens(7, next_reset_at=MIDNIGHT)
    [later] = seed_tokens(1, next_reset_at=NEXT_MIDNIGHT)
    for token_id in [*due, later]:
        assert spend(token_id, 25)
    # WHEN one run pages through them two at a time
    run = jobs.run_resets(NOW, page_size=2)
    # THEN all seven were reset once, over four pages, and the other key kept its usage
    assert (run.reset, run.skipped, run.pages, run.complete) == (7, 0, 4, True)
    assert {reset_state(token_id) for token_id in due} == {(0, NEXT_MIDNIGHT, NOW)}
    assert reset_state(later) == (25, NEXT_MIDNIGHT, None)


def test_run_stopped_by_the_deadline_leaves_the_rest_to_the_next_run(backend: Any) -> None:
    # GIVEN six due keys with usage, and a Lambda that runs out of time part-way
    due = seed_tokens(6, next_reset_at=MIDNIGHT)
    for token_id in due:
        assert spend(token_id, 25)
    deadline = Deadline(allowed=4)
    # WHEN a run stops early, and a second run follows with time to spare
    first = jobs.run_resets(NOW, deadline, page_size=2)
    second = jobs.run_resets(NOW + 3600, Deadline(allowed=1_000), page_size=2)
    # THEN the first reports it stopped after resetting some keys, the second did exactly the
    # rest, and every key was reset exactly once (by the run whose time it carries)
    assert first.stopped_early and not first.complete
    assert 0 < first.reset < 6
    assert second.complete
    assert first.reset + second.reset == 6
    resets_at = sorted(int(reset_state(token_id)[2] or 0) for token_id in due)
    assert resets_at == [NOW] * first.reset + [NOW + 3600] * second.reset
    assert {reset_state(token_id)[:2] for token_id in due} == {(0, NEXT_MIDNIGHT)}


def test_run_with_no_time_left_at_the_start_does_nothing(backend: Any) -> None:
    # GIVEN a due key, and an invocation already out of time
    [token_id] = seed_tokens(1, next_reset_at=MIDNIGHT)
    assert spend(token_id, 25)
    # WHEN a run starts
    run = jobs.run_resets(NOW, lambda: 0.0)
    # THEN it stops before its first page and the key is still due
    assert (run.reset, run.pages, run.stopped_early) == (0, 0, True)
    assert reset_state(token_id) == (25, MIDNIGHT, None)


def test_run_counts_keys_changed_since_the_index_listed_them_as_skipped(backend: Any) -> None:
    # GIVEN three due keys: one reset lazily by a request, one deleted, one untouched
    lazy, deleted, untouched = seed_tokens(3, next_reset_at=MIDNIGHT)
    token = token_store.get(lazy)
    assert token is not None
    assert jobs.reset_if_due(token, NOW - 60) is not None
    token_store.delete(deleted, "acct-test")
    # WHEN the schedule runs
    run = jobs.run_resets(NOW)
    # THEN it resets only the untouched one, and the lazily reset key keeps its reset time
    assert (run.reset, run.complete) == (1, True)
    assert reset_state(untouched)[2] == NOW
    assert reset_state(lazy)[2] == NOW - 60
    assert raw_item(deleted) is None


def test_run_skips_a_key_with_an_unknown_period_and_resets_the_others(backend: Any) -> None:
    # GIVEN a due key whose stored period this code does not know, and a normal due key
    [odd] = seed_tokens(1, period="fortnightly", next_reset_at=MIDNIGHT)
    [normal] = seed_tokens(1, next_reset_at=MIDNIGHT)
    # WHEN the schedule runs
    run = jobs.run_resets(NOW)
    # THEN the normal key is reset, the odd one counted as skipped and left as it was
    assert (run.reset, run.skipped, run.complete) == (1, 1, True)
    assert reset_state(normal)[2] == NOW
    assert reset_state(odd) == (0, MIDNIGHT, None)
