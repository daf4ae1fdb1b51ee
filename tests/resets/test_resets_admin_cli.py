"""Running the resets by hand: ``POST /admin/resets/run`` and ``sluice resets run``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import time_machine
from click.testing import CliRunner
from reset_helpers import at, raw_item, seed_tokens, spend

from chalicelib.cli.resets import resets

TEN_MARCH = datetime(2027, 3, 10, 15, 0, tzinfo=UTC)
ELEVEN_MARCH = datetime(2027, 3, 11, 0, 5, tzinfo=UTC)


def spent_daily_keys(api: Any, count: int) -> tuple[str, list[str]]:
    """``count`` daily keys of a fresh account, 250 units spent on each."""
    account = api.new_account("acme")
    status, body = api.call(
        "POST",
        "/tokens",
        key=account["management_key"],
        body={"name": "daily", "quota_units": 1_000, "reset_period": "daily", "count": count},
    )
    assert status == 201, body
    ids = [token["id"] for token in body["data"]]
    for token_id in ids:
        assert spend(token_id, 250)
    return account["management_key"], ids


def used(token_id: str) -> int:
    item = raw_item(token_id)
    assert item is not None
    return int(item["used_units"])


def test_admin_run_resets_due_keys_and_a_second_run_resets_nothing(api: Any) -> None:
    with time_machine.travel(TEN_MARCH, tick=False) as clock:
        # GIVEN three daily keys with usage, and midnight has passed
        _, ids = spent_daily_keys(api, 3)
        clock.move_to(ELEVEN_MARCH)
        # WHEN the operator runs the resets twice
        first = api.admin("POST", "/admin/resets/run")
        second = api.admin("POST", "/admin/resets/run")
        # THEN the first run resets the three keys, the second finds nothing left to do
        assert first == (200, {"reset": 3, "skipped": 0, "pages": 1, "complete": True})
        assert second == (200, {"reset": 0, "skipped": 0, "pages": 1, "complete": True})
        for token_id in ids:
            item = raw_item(token_id)
            assert item is not None
            assert (item["used_units"], item["remaining_units"]) == (0, 1_000)
            assert item["next_reset_at"] == at(2027, 3, 12)
            assert item["last_reset_at"] == at(2027, 3, 11, 0, 5)


def test_admin_run_refuses_a_management_key_and_resets_nothing(api: Any) -> None:
    with time_machine.travel(TEN_MARCH, tick=False) as clock:
        # GIVEN a daily key with usage, past midnight
        management_key, ids = spent_daily_keys(api, 1)
        clock.move_to(ELEVEN_MARCH)
        # WHEN an account's management key asks for a run
        status, body = api.call("POST", "/admin/resets/run", key=management_key)
        # THEN it is forbidden in the OpenAI error shape, and the key keeps its usage
        assert status == 403
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert used(ids[0]) == 250


def test_admin_run_without_a_key_is_unauthenticated(api: Any) -> None:
    # GIVEN no Authorization header
    # WHEN the route is called
    status, body = api.call("POST", "/admin/resets/run")
    # THEN 401 with the OpenAI error shape
    assert status == 401
    assert body["error"]["code"] == "invalid_api_key"


def test_cli_run_prints_counts_as_json_and_is_safe_to_repeat(tables: Any) -> None:
    # GIVEN two daily keys due since midnight, with usage, and one key not due yet
    due_ids = seed_tokens(2, next_reset_at=at(2027, 3, 11))
    later_ids = seed_tokens(1, next_reset_at=at(2027, 3, 12))
    for token_id in due_ids + later_ids:
        assert spend(token_id, 40)
    runner = CliRunner()
    with time_machine.travel(ELEVEN_MARCH, tick=False):
        # WHEN the CLI runs twice
        first = runner.invoke(resets, ["run", "--json"])
        second = runner.invoke(resets, ["run", "--json"])
    # THEN the first resets the two due keys, the second nothing; the other key keeps its usage
    assert first.exit_code == 0, first.output
    assert json.loads(first.output) == {"reset": 2, "skipped": 0, "pages": 1, "complete": True}
    assert json.loads(second.output)["reset"] == 0
    assert [used(token_id) for token_id in due_ids] == [0, 0]
    assert used(later_ids[0]) == 40


def test_cli_run_says_how_many_keys_were_reset(tables: Any) -> None:
    # GIVEN one due key
    seed_tokens(1, next_reset_at=at(2027, 3, 11))
    # WHEN the CLI runs without --json
    with time_machine.travel(ELEVEN_MARCH, tick=False):
        result = CliRunner().invoke(resets, ["run", "--max-seconds", "60"])
    # THEN it prints a sentence with the count
    assert result.exit_code == 0, result.output
    assert result.output == "Reset 1 key (0 skipped, 1 page).\n"
