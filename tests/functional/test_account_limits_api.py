"""Limits on an account (all its keys together) as fields: created, shown, edited, removed,
through the API and the CLI; bad values refused with ``param``, nothing written.

Enforcement is proven on DynamoDB Local (tests/gateway/test_account_limits.py).
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from chalicelib.cli.main import cli

LIMITS = {"rpm_limit": 60, "tpm_limit": 40_000, "max_concurrency": 4}


def account_item(account_id: str) -> Any:
    from chalicelib.store.models import Account

    return Account.get(account_id, consistent_read=True)


def test_account_limits_are_stored_shown_edited_and_removed(api: Any) -> None:
    # GIVEN an account created with all three limits
    created = api.new_account("acme", quota_units=1000, **LIMITS)["account"]
    account_id = created["id"]

    # WHEN one is lowered and one removed, then the CLI sets one back
    status, patched = api.admin(
        "PATCH", f"/admin/accounts/{account_id}", {"rpm_limit": 10, "tpm_limit": None}
    )
    result = CliRunner().invoke(
        cli, ["accounts", "limits", account_id, "--tpm-limit", "500", "--json"]
    )

    # THEN the account JSON shows each step, and the item has the window maps the
    # reservation counts into
    assert {name: created[name] for name in LIMITS} == LIMITS
    assert status == 200
    assert (patched["rpm_limit"], patched["tpm_limit"], patched["max_concurrency"]) == (10, None, 4)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tpm_limit"] == 500
    item = account_item(account_id)
    assert (item.rpm_limit, item.tpm_limit, item.max_concurrency) == (10, 500, 4)
    assert item.requests_by_minute.as_dict() == {} and item.tokens_by_minute.as_dict() == {}


def test_an_account_without_limits_shows_nulls(api: Any) -> None:
    account = api.new_account("plain")["account"]
    assert {name: account[name] for name in LIMITS} == dict.fromkeys(LIMITS)


def test_bad_account_limits_are_refused_with_their_param_and_nothing_is_written(api: Any) -> None:
    # GIVEN an account without limits
    account_id = api.new_account("acme")["account"]["id"]
    bad = [
        {"rpm_limit": 0},
        {"rpm_limit": "5"},
        {"tpm_limit": -1},
        {"tpm_limit": 1.5},
        {"max_concurrency": 100_000},
        {"max_concurrency": True},
    ]

    # WHEN each bad value is sent on create and on patch
    answers = [
        (field, api.admin("POST", "/admin/accounts", {"name": "x", **field})) for field in bad
    ] + [(field, api.admin("PATCH", f"/admin/accounts/{account_id}", field)) for field in bad]

    # THEN each is a 400 naming the field, and nothing changed
    for field, (status, error) in answers:
        assert status == 400, (field, error)
        assert error["error"]["param"] == next(iter(field))
    item = account_item(account_id)
    assert (item.rpm_limit, item.tpm_limit, item.max_concurrency) == (None, None, None)
    _, listing = api.admin("GET", "/admin/accounts")
    assert [a["name"] for a in listing["data"]] == ["acme"]
