"""The hourly ``reset_quotas`` schedule, driven through the chalice test client with a fake clock.

Spending goes through the store-level helpers (same write shapes as the relay's ledger); the
schedule is invoked as the Lambda EventBridge calls; the result is read back through
``GET /tokens/{id}`` and from the stored item.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import time_machine
from reset_helpers import assert_invariant, at, raw_item, seed_tokens, spend

import app as app_module


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def new_key(api: Any, period: str, quota_units: int = 1_000) -> tuple[str, dict[str, Any]]:
    """A fresh account's management key and a new key with ``quota_units`` and ``period``."""
    account = api.new_account("acme")
    status, body = api.call(
        "POST",
        "/tokens",
        key=account["management_key"],
        body={"name": "periodic", "quota_units": quota_units, "reset_period": period},
    )
    assert status == 201, body
    return account["management_key"], body["data"][0]


def stored(token_id: str) -> dict[str, Any]:
    item = raw_item(token_id)
    assert item is not None
    return item


def shown(api: Any, management_key: str, token_id: str) -> dict[str, Any]:
    status, body = api.call("GET", f"/tokens/{token_id}", key=management_key)
    assert status == 200, body
    return body


def test_daily_key_gets_its_quota_back_at_midnight_utc_and_can_spend_it_again(
    api: Any, run_schedule: Any
) -> None:
    with time_machine.travel(utc(2027, 3, 10, 15, 0), tick=False) as clock:
        # GIVEN a daily key with 1,000 units, 600 of them spent on 10 March
        mk, token = new_key(api, "daily")
        assert spend(token["id"], 600)
        assert not spend(token["id"], 500)  # only 400 left today
        # WHEN the schedule runs at midnight UTC
        clock.move_to(utc(2027, 3, 11, 0, 0, 0))
        result = run_schedule()
        # THEN exactly this key was reset
        assert result == {"reset": 1, "skipped": 0, "pages": 1, "complete": True}
        body = shown(api, mk, token["id"])
        assert body["used_units"] == 0
        assert body["remaining_units"] == 1_000
        assert body["next_reset_at"] == "2027-03-12T00:00:00Z"
        assert body["total_used_units"] == 600
        item = stored(token["id"])
        assert item["last_reset_at"] == at(2027, 3, 11)
        assert_invariant(item)
        # AND the whole quota can be spent again, and no more
        assert spend(token["id"], 1_000)
        assert not spend(token["id"], 1)


def test_daily_key_is_not_reset_a_second_before_midnight(api: Any, run_schedule: Any) -> None:
    with time_machine.travel(utc(2027, 3, 10, 15, 0), tick=False) as clock:
        # GIVEN a daily key with 600 of 1,000 units spent
        mk, token = new_key(api, "daily")
        assert spend(token["id"], 600)
        # WHEN the schedule runs at 23:59:59 UTC
        clock.move_to(utc(2027, 3, 10, 23, 59, 59))
        result = run_schedule()
        # THEN nothing is reset: the usage and the boundary stay
        assert result == {"reset": 0, "skipped": 0, "pages": 1, "complete": True}
        body = shown(api, mk, token["id"])
        assert body["used_units"] == 600
        assert body["remaining_units"] == 400
        assert body["next_reset_at"] == "2027-03-11T00:00:00Z"
        assert "last_reset_at" not in raw_item(token["id"])


def test_weekly_key_resets_on_monday_midnight_utc_not_on_sunday(
    api: Any, run_schedule: Any
) -> None:
    with time_machine.travel(utc(2027, 3, 10, 9, 30), tick=False) as clock:  # a Wednesday
        # GIVEN a weekly key created on a Wednesday with 700 of 1,000 units spent
        mk, token = new_key(api, "weekly")
        assert token["next_reset_at"] == "2027-03-15T00:00:00Z"
        assert spend(token["id"], 700)
        # WHEN the schedule runs late on Sunday, then at 01:00 on Monday
        clock.move_to(utc(2027, 3, 14, 23, 0))
        sunday = run_schedule()
        clock.move_to(utc(2027, 3, 15, 1, 0))
        monday = run_schedule()
        # THEN only the Monday run resets it, and the next boundary is the following Monday
        assert sunday["reset"] == 0
        assert monday["reset"] == 1
        body = shown(api, mk, token["id"])
        assert (body["used_units"], body["remaining_units"]) == (0, 1_000)
        assert body["next_reset_at"] == "2027-03-22T00:00:00Z"
        assert stored(token["id"])["last_reset_at"] == at(2027, 3, 15, 1)


def test_monthly_key_resets_on_the_first_of_each_month_utc(api: Any, run_schedule: Any) -> None:
    with time_machine.travel(utc(2027, 1, 31, 12, 0), tick=False) as clock:
        # GIVEN a monthly key created on 31 January, 300 units spent
        mk, token = new_key(api, "monthly")
        assert spend(token["id"], 300)
        # WHEN the schedule runs on 1 February, then 250 more are spent in February
        clock.move_to(utc(2027, 2, 1, 0, 0))
        february = run_schedule()
        assert spend(token["id"], 250)
        clock.move_to(utc(2027, 2, 28, 23, 0))
        end_of_february = run_schedule()
        clock.move_to(utc(2027, 3, 1, 0, 0))
        march = run_schedule()
        # THEN it is reset on 1 February and on 1 March, not in between
        assert (february["reset"], end_of_february["reset"], march["reset"]) == (1, 0, 1)
        body = shown(api, mk, token["id"])
        assert (body["used_units"], body["remaining_units"]) == (0, 1_000)
        assert body["total_used_units"] == 550
        assert body["next_reset_at"] == "2027-04-01T00:00:00Z"


def test_key_due_for_several_missed_periods_is_reset_once_to_the_next_boundary(
    api: Any, run_schedule: Any
) -> None:
    with time_machine.travel(utc(2027, 3, 10, 15, 0), tick=False) as clock:
        # GIVEN a daily key that spent 900 units, then five midnights passed without a run
        mk, token = new_key(api, "daily")
        assert spend(token["id"], 900)
        clock.move_to(utc(2027, 3, 15, 13, 0))
        # WHEN the schedule runs, and runs again in the same hour
        first = run_schedule()
        assert spend(token["id"], 100)
        second = run_schedule()
        # THEN it was reset once, straight to the midnight after now: the 100 spent after the
        # reset were not wiped by a replay of the missed periods
        assert (first["reset"], second["reset"]) == (1, 0)
        body = shown(api, mk, token["id"])
        assert body["next_reset_at"] == "2027-03-16T00:00:00Z"
        assert (body["used_units"], body["remaining_units"]) == (100, 900)
        assert stored(token["id"])["last_reset_at"] == at(2027, 3, 15, 13)


def test_schedule_leaves_keys_without_a_period_alone(api: Any, run_schedule: Any) -> None:
    with time_machine.travel(utc(2027, 3, 10, 15, 0), tick=False) as clock:
        # GIVEN a key with reset period "never" and 600 units spent
        mk, token = new_key(api, "never")
        assert spend(token["id"], 600)
        # WHEN the schedule runs a month later
        clock.move_to(utc(2027, 4, 10, 0, 0))
        result = run_schedule()
        # THEN nothing is listed or reset
        assert result == {"reset": 0, "skipped": 0, "pages": 1, "complete": True}
        body = shown(api, mk, token["id"])
        assert (body["used_units"], body["next_reset_at"]) == (600, None)


class LambdaContext:
    """The part of Lambda's context the schedule reads: the time this invocation has left."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_schedule_handler_stops_when_lambda_is_out_of_time_and_the_next_run_finishes(
    tables: Any,
) -> None:
    # GIVEN a due key with usage
    [token_id] = seed_tokens(1, next_reset_at=at(2027, 3, 11))
    assert spend(token_id, 80)
    event = {"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events"}
    event |= {"account": "1", "time": "2027-03-11T01:00:00Z", "region": "us-east-1"}
    event |= {"resources": [], "detail": {}}
    with time_machine.travel(utc(2027, 3, 11, 1, 0), tick=False):
        # WHEN the handler (as Lambda imports it) runs with no time left, then with a minute
        starved = app_module.reset_quotas(event, LambdaContext(0))
        assert stored(token_id)["used_units"] == 80
        relaxed = app_module.reset_quotas(event, LambdaContext(60_000))
    # THEN the first stops before its first page, the second resets the key
    assert starved == {"reset": 0, "skipped": 0, "pages": 0, "complete": False}
    assert relaxed == {"reset": 1, "skipped": 0, "pages": 1, "complete": True}
    assert stored(token_id)["used_units"] == 0
