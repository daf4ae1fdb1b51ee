"""A key's rate limits as fields: created, shown, edited and cleared through the API and the CLI.

Enforcement is proven on DynamoDB Local (tests/gateway/test_rate_limits.py); bad values are in
tests/functional/test_bad_input.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from chalicelib.cli.main import cli

LIMITS = {"rpm_limit": 60, "tpm_limit": 40_000, "max_concurrency": 4}
NO_LIMITS = dict.fromkeys(LIMITS)


def token_item(token_id: str) -> Any:
    from chalicelib.store.models import Token

    return Token.get(token_id, consistent_read=True)


@pytest.fixture
def owner(api: Any) -> tuple[Any, str]:
    created = api.new_account("acme", quota_units=1_000_000)
    return api, created["management_key"]


def _create(owner: tuple[Any, str], **fields: Any) -> dict[str, Any]:
    api, mk = owner
    status, body = api.call("POST", "/tokens", key=mk, body={"name": "k", **fields})
    assert status == 201, body
    return dict(body["data"][0])


def _patch(owner: tuple[Any, str], token_id: str, **fields: Any) -> tuple[int, Any]:
    api, mk = owner
    return api.call("PATCH", f"/tokens/{token_id}", key=mk, body=fields)


def test_a_new_key_has_no_limits_unless_asked(owner: tuple[Any, str]) -> None:
    token = _create(owner)

    assert {name: token[name] for name in LIMITS} == NO_LIMITS
    item = token_item(token["id"])
    assert (item.rpm_limit, item.tpm_limit, item.max_concurrency) == (None, None, None)


def test_limits_given_at_creation_are_stored_and_shown(owner: tuple[Any, str]) -> None:
    token = _create(owner, count=2, **LIMITS)

    assert {name: token[name] for name in LIMITS} == LIMITS
    item = token_item(token["id"])
    assert (item.rpm_limit, item.tpm_limit, item.max_concurrency) == (60, 40_000, 4)
    # The minute windows the reservation writes into exist from the start.
    assert item.requests_by_minute.as_dict() == {} and item.tokens_by_minute.as_dict() == {}
    api, mk = owner
    status, again = api.call("GET", f"/tokens/{token['id']}", key=mk)
    assert status == 200 and {name: again[name] for name in LIMITS} == LIMITS


def test_a_patch_sets_changes_and_clears_limits_and_bumps_the_revision(
    owner: tuple[Any, str],
) -> None:
    token = _create(owner, rpm_limit=10)
    revision = int(token_item(token["id"]).revision or 0)

    status, body = _patch(owner, token["id"], rpm_limit=20, max_concurrency=2)
    assert status == 200, body
    assert (body["rpm_limit"], body["tpm_limit"], body["max_concurrency"]) == (20, None, 2)
    assert int(token_item(token["id"]).revision) == revision + 1

    status, body = _patch(owner, token["id"], rpm_limit=None, tpm_limit=500)
    assert status == 200, body
    assert (body["rpm_limit"], body["tpm_limit"], body["max_concurrency"]) == (None, 500, 2)
    item = token_item(token["id"])
    assert item.rpm_limit is None and int(item.tpm_limit) == 500
    assert int(item.revision) == revision + 2


def test_setting_a_limit_on_a_key_older_than_limits_creates_its_windows(
    owner: tuple[Any, str],
) -> None:
    # GIVEN a key stored before limits existed (no window maps)
    from chalicelib.store.models import Token

    token = _create(owner)
    Token(token["id"]).update(
        actions=[Token.requests_by_minute.remove(), Token.tokens_by_minute.remove()]
    )
    assert token_item(token["id"]).requests_by_minute is None

    # WHEN a limit is set
    status, body = _patch(owner, token["id"], tpm_limit=1000)

    # THEN both maps exist (empty), and a second edit leaves them as they are
    assert status == 200, body
    item = token_item(token["id"])
    assert item.requests_by_minute.as_dict() == {} and item.tokens_by_minute.as_dict() == {}
    Token(token["id"]).update(actions=[Token.tokens_by_minute["29000000"].set(7)])
    assert _patch(owner, token["id"], rpm_limit=5)[0] == 200
    assert token_item(token["id"]).tokens_by_minute.as_dict() == {"29000000": 7}


# --- the CLI ---------------------------------------------------------------------------------
def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _run_json(*args: str) -> Any:
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_cli_creates_updates_and_clears_limits(tables: Any) -> None:
    account = _run_json("accounts", "create", "acme", "--quota-usd", "10")["account"]["id"]

    [token] = _run_json(
        "tokens", "create", "--account", account, "--rpm-limit", "30", "--max-concurrency", "2"
    )["data"]
    assert (token["rpm_limit"], token["tpm_limit"], token["max_concurrency"]) == (30, None, 2)

    updated = _run_json(
        "tokens", "update", "--account", account, token["id"],
        "--rpm-limit", "none", "--tpm-limit", "9000",
    )  # fmt: skip
    assert (updated["rpm_limit"], updated["tpm_limit"], updated["max_concurrency"]) == (
        None,
        9000,
        2,
    )


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "lots", "1000001"])
def test_the_cli_refuses_a_bad_limit_naming_the_option_and_writes_nothing(
    tables: Any, value: str
) -> None:
    account = _run_json("accounts", "create", "acme", "--quota-usd", "10")["account"]["id"]
    [token] = _run_json("tokens", "create", "--account", account, "--rpm-limit", "30")["data"]
    before = token_item(token["id"]).serialize()

    result = _run("tokens", "update", "--account", account, token["id"], "--rpm-limit", value)

    assert result.exit_code == 1
    assert "--rpm-limit" in result.output
    assert token_item(token["id"]).serialize() == before
