"""What the console's Logs and Usage pages ask of /logs and /usage: the same filters on both (so
a chart agrees with the lines under it), a status filter, a request-id search, and the account
data its forms need (models per group, credits with their notes)."""

from __future__ import annotations

from typing import Any

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _account_with_calls(relay_api: Any) -> tuple[str, str, list[str]]:
    """An account whose default key made two good calls and one that failed upstream."""
    created = relay_api.new_account("reports", quota_usd="10")
    key = created["default_token"]["key"]
    ids = []
    for model in ("gpt-4o-mini", "gpt-4o-mini", "fail-500"):
        status, body = relay_api.call("POST", CHAT, key=key, body={**HELLO, "model": model})
        assert status in (200, 502), body
    _, logs = relay_api.call("GET", "/logs", key=created["management_key"])
    ids = [line["request_id"] for line in logs["data"]]
    return created["management_key"], created["default_token"]["id"], ids


def test_usage_follows_the_key_model_and_status_filters_of_the_logs(relay_api: Any) -> None:
    # GIVEN two good calls and one failed call of one key
    mk, token_id, _ = _account_with_calls(relay_api)

    # WHEN usage and logs are asked with the same filters
    def both(query: str) -> tuple[int, int]:
        _, usage = relay_api.call("GET", f"/usage?group_by=day&{query}", key=mk)
        _, logs = relay_api.call("GET", f"/logs?{query}", key=mk)
        return sum(row["requests"] for row in usage["data"]), len(logs["data"])

    # THEN both count the same calls, whatever the filter
    assert both("") == (3, 3)
    assert both("status=ok") == (2, 2)
    assert both("status=upstream_error&model=fail-500") == (1, 1)
    assert both("model=gpt-4o-mini&status=upstream_error") == (0, 0)
    assert both(f"token_id={token_id}") == (3, 3)
    assert both("token_id=AAAAAAAAAAAAAAAA") == (0, 0)


def test_an_unknown_status_is_a_400_naming_the_parameter(relay_api: Any) -> None:
    mk, _, _ = _account_with_calls(relay_api)
    for path in ("/logs?status=nope", "/usage?status=nope"):
        status, body = relay_api.call("GET", path, key=mk)
        assert status == 400 and body["error"]["param"] == "status", body


def test_request_id_search_finds_the_accounts_call_and_no_one_elses(relay_api: Any) -> None:
    # GIVEN an account's three calls, and another account
    mk, _, ids = _account_with_calls(relay_api)
    other = relay_api.new_account("other")

    # WHEN each searches for the first call's request id
    _, mine = relay_api.call("GET", f"/logs?request_id={ids[1]}", key=mk)
    _, theirs = relay_api.call("GET", f"/logs?request_id={ids[1]}", key=other["management_key"])
    _, filtered = relay_api.call("GET", f"/logs?request_id={ids[1]}&status=rejected", key=mk)

    # THEN only the owner finds it, and only while the other filters admit it
    assert [line["request_id"] for line in mine["data"]] == [ids[1]]
    assert mine["next_cursor"] is None
    assert theirs["data"] == [] and filtered["data"] == []


def test_account_lists_how_many_models_each_of_its_groups_serves(relay_api: Any) -> None:
    # GIVEN an account granted the default group (served by the demo channels) and an empty one
    created = relay_api.new_account("groups", groups=["default", "vip"])

    # WHEN its owner reads the account
    status, account = relay_api.call("GET", "/account", key=created["management_key"])

    # THEN each group says how many models it serves
    assert status == 200, account
    assert account["group_models"]["vip"] == 0
    assert account["group_models"]["default"] > 0
    assert set(account["group_models"]) == {"default", "vip"}

    # WHEN the operator orders the automatic group over one of its groups
    status, _ = relay_api.admin("PUT", "/admin/groups/auto", {"order": ["vip", "default"]})
    assert status == 200
    _, account = relay_api.call("GET", "/account", key=created["management_key"])
    # THEN `auto` is offered, serving what its ordered groups serve together
    assert account["group_models"]["auto"] == account["group_models"]["default"]
    # AND an account granted none of the ordered groups is not offered it
    other = relay_api.new_account("elsewhere", groups=["gold"])
    _, theirs = relay_api.call("GET", "/account", key=other["management_key"])
    assert set(theirs["group_models"]) == {"gold"}


def test_credits_are_listed_newest_first_with_their_notes(relay_api: Any) -> None:
    # GIVEN an account credited twice
    created = relay_api.new_account("credited", quota_usd="1")
    path = f"/admin/accounts/{created['account']['id']}"
    relay_api.admin("POST", f"{path}/credit", {"quota_usd": "2.50", "note": "invoice 17"})
    relay_api.admin("POST", f"{path}/credit", {"quota_units": 1, "note": ""})

    # WHEN the admin lists its credits
    status, credits = relay_api.admin("GET", f"{path}/credits")

    # THEN both appear, newest first, with amount and note
    assert status == 200, credits
    assert [(c["units"], c["note"]) for c in credits["data"]] == [
        (1, ""),
        (1_250_000, "invoice 17"),
    ]
    assert credits["data"][1]["usd"] == "2.500000"


def test_a_query_parameter_given_twice_is_refused(relay_api: Any) -> None:
    created = relay_api.new_account("twice")
    status, body = relay_api.call("GET", "/logs?model=a&model=b", key=created["management_key"])
    assert status == 400 and body["error"]["param"] == "model", body
