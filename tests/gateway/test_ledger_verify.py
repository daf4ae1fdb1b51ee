"""The ledger verifier: finds each kind of drift with its ids and amounts, and never writes."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.core import keys
from chalicelib.services import ledger_verify
from chalicelib.store import ledger
from chalicelib.store.models import Account, Token, UsageRecord

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _account_with_calls(relay_api: Any, calls: int = 2) -> dict[str, Any]:
    created = relay_api.new_account("acme", quota_usd="10")
    for _ in range(calls):
        status, body = relay_api.call("POST", CHAT, key=created["default_token"]["key"], body=HELLO)
        assert status == 200, body
    return created


def _snapshot() -> list[Any]:
    return [
        sorted(json.dumps(item.serialize(), sort_keys=True, default=str) for item in model.scan())
        for model in (Account, Token, UsageRecord)
    ]


def _verify(relay_api: Any) -> dict[str, Any]:
    status, report = relay_api.admin("POST", "/admin/ledger/verify")
    assert status == 200, report
    return report


def test_a_ledger_after_real_calls_has_no_drift(relay_api: Any) -> None:
    # GIVEN two accounts whose keys made calls
    _account_with_calls(relay_api)
    _account_with_calls(relay_api, calls=1)
    # WHEN the operator runs the verifier
    report = _verify(relay_api)
    # THEN it checked both accounts and their keys and found nothing
    assert report == {
        "ok": True,
        "drift": [],
        "accounts": 2,
        "tokens": 2,
        "complete": True,
        "next_cursor": None,
    }


def test_counters_that_do_not_add_up_are_reported_with_ids_and_amounts(relay_api: Any) -> None:
    # GIVEN a key whose remaining counter lost 7 units to a bad write
    created = _account_with_calls(relay_api)
    token_id = created["default_token"]["id"]
    Token(token_id).update(actions=[Token.remaining_units.add(-7)])
    before = Token.get(token_id)
    expected = 0 - int(before.used_units) - int(before.reserved_units)
    # WHEN the verifier runs
    report = _verify(relay_api)
    # THEN exactly that drift is reported
    assert report["ok"] is False
    assert report["drift"] == [
        {
            "kind": "counters",
            "item": "token",
            "id": token_id,
            "expected": expected,
            "found": expected - 7,
        }
    ]


def test_reserved_units_without_pending_entries_and_unlogged_use_are_drift(
    relay_api: Any,
) -> None:
    # GIVEN an account that holds 5 reserved units no call owns, and 9 used units no record shows
    created = _account_with_calls(relay_api, calls=1)
    account_id = created["account"]["id"]
    used = int(Account.get(account_id).used_units)
    Account(account_id).update(
        actions=[
            Account.reserved_units.add(5),
            Account.remaining_units.add(-5),
        ]
    )
    report = _verify(relay_api)
    assert [(d["kind"], d["id"], d["expected"], d["found"]) for d in report["drift"]] == [
        ("reserved", account_id, 0, 5)
    ]
    Account(account_id).update(
        actions=[
            Account.reserved_units.add(-5),
            Account.remaining_units.add(5 - 9),
            Account.used_units.add(9),
        ]
    )
    report = _verify(relay_api)
    assert [(d["kind"], d["id"], d["expected"], d["found"]) for d in report["drift"]] == [
        ("logged", account_id, used, used + 9)
    ]


def test_a_reservation_older_than_any_live_call_is_reported_as_stale(relay_api: Any) -> None:
    # GIVEN a reservation made long ago by a call that never settled
    created = _account_with_calls(relay_api, calls=0)
    token = created["default_token"]
    long_ago = int(time.time()) - 7200
    reservation = ledger.Reservation("req_stale", token["id"], token["account_id"], 40)
    check = ledger.KeyCheck(token["id"], keys.hash_key(token["key"]), 0, "default")
    assert ledger.reserve(reservation, check, long_ago) is None
    # WHEN the verifier runs
    report = _verify(relay_api)
    # THEN both items name the stale request and its units
    stale = sorted(
        (d["item"], d["request_id"], d["found"])
        for d in report["drift"]
        if d["kind"] == "stale_pending"
    )
    assert stale == [("account", "req_stale", 40), ("token", "req_stale", 40)]


def test_the_verifier_never_writes(relay_api: Any) -> None:
    created = _account_with_calls(relay_api)
    Token(created["default_token"]["id"]).update(actions=[Token.remaining_units.add(-1)])
    before = _snapshot()
    assert _verify(relay_api)["ok"] is False
    assert _snapshot() == before


def test_a_run_out_of_time_hands_back_a_cursor_that_finishes_the_job(
    relay_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three accounts and a verifier that reads one per page and has no time to spare
    for _ in range(3):
        _account_with_calls(relay_api, calls=0)
    monkeypatch.setattr(ledger_verify, "PAGE_SIZE", 1)
    seen, cursor, runs = 0, None, 0
    # WHEN it is run again from each cursor until complete (bounded)
    while runs < 10:
        run = ledger_verify.verify(int(time.time()), deadline=lambda: 0.0, cursor=cursor)
        seen, cursor, runs = seen + run.accounts, run.next_cursor, runs + 1
        if cursor is None:
            break
    # THEN every account was checked exactly once
    assert (seen, cursor) == (3, None)


def test_sluice_ledger_verify_exits_1_on_drift(relay_api: Any) -> None:
    from chalicelib.cli.main import cli

    created = _account_with_calls(relay_api, calls=1)
    assert CliRunner().invoke(cli, ["ledger", "verify"]).exit_code == 0
    Token(created["default_token"]["id"]).update(actions=[Token.remaining_units.add(-3)])
    result = CliRunner().invoke(cli, ["ledger", "verify"])
    assert result.exit_code == 1
    assert f"DRIFT counters: token {created['default_token']['id']}" in result.output
