"""The ``sluice`` CLI on moto: the API's use cases and validation, readable or JSON output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result

from chalicelib.cli.main import cli, table
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store

FULL_KEY = re.compile(r"\b(sk|mk)-[A-Za-z0-9]{40,}")
NEXT_YEAR = f"{datetime.now(UTC).year + 1}-01-01T00:00:00Z"


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def account(tables: Any) -> dict[str, Any]:
    return run_json(
        "accounts", "create", "acme", "--quota-usd", "10", "--group", "default", "--group", "vip"
    )


def assert_clean_error(result: Result, *fragments: str) -> None:
    """Exit code 1, one 'Error: ...' line on stderr, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


# Tables -----------------------------------------------------------------------------------------
@pytest.fixture
def empty_stage(settings: Any) -> Iterator[Any]:
    from moto import mock_aws

    from chalicelib.store import models

    with mock_aws():
        models.configure(settings)
        yield settings


def test_tables_create_makes_every_table_once(empty_stage: Any) -> None:
    # GIVEN a stage without tables
    from chalicelib.store import models

    # WHEN tables are created twice
    first = run("tables", "create")
    second = run("tables", "create")

    # THEN the first run creates all of them, the second none, and they all exist
    assert first.exit_code == 0, first.output
    assert first.stdout.count("Created ") == len(models.TABLES)
    assert second.exit_code == 0
    assert "Created " not in second.stdout
    assert f"{len(models.TABLES)} tables ready (0 created)" in second.stdout
    assert all(model.exists() for model in models.TABLES.values())


def test_a_missing_table_is_a_clean_error_that_names_the_cause(empty_stage: Any) -> None:
    # GIVEN a stage whose tables were never created
    # WHEN accounts are listed
    result = run("accounts", "list")

    # THEN one error line says why, without a traceback
    assert_clean_error(result, "temporarily unavailable", "ResourceNotFound")


# Accounts ---------------------------------------------------------------------------------------
def test_accounts_create_shows_both_keys_once_and_stores_the_balance(tables: Any) -> None:
    # GIVEN an empty stage  WHEN an account is created with US$12.50
    result = run("accounts", "create", "acme", "--quota-usd", "12.50")

    # THEN the output shows the account, its management key and default API key
    assert result.exit_code == 0, result.output
    management_key = re.search(r"Management key: (mk-\S+)", result.stdout)
    default_key = re.search(r"Default API key: (sk-\S+)", result.stdout)
    assert management_key and default_key
    assert "$12.500000" in result.stdout
    # AND the store holds the account with 6,250,000 units and its default token
    account_id = management_key.group(1)[3:19]
    stored = account_store.require(account_id)
    assert (stored.name, stored.quota_units, stored.remaining_units) == (
        "acme",
        6_250_000,
        6_250_000,
    )
    token = token_store.get(default_key.group(1)[3:19])
    assert token is not None and token.account_id == account_id


def test_accounts_create_json_is_the_api_body(tables: Any) -> None:
    # GIVEN an empty stage  WHEN an unlimited account is created with --json
    created = run_json("accounts", "create", "ops", "--unlimited")

    # THEN the JSON has the API's shape and the store agrees
    assert set(created) == {"account", "management_key", "default_token"}
    assert created["account"]["quota_units"] is None
    assert created["default_token"]["key"].startswith("sk-")
    assert account_store.require(created["account"]["id"]).unlimited is True


def test_two_quotas_at_once_are_refused_like_the_api_and_nothing_is_written(tables: Any) -> None:
    # GIVEN an empty stage
    # WHEN an account is given both a dollar and a unit quota
    result = run("accounts", "create", "acme", "--quota-usd", "1", "--quota-units", "5")

    # THEN the schema's message comes back, naming the option, and no account exists
    assert_clean_error(result, "--quota-usd: give only one of quota_units, quota_usd")
    assert account_store.list_page(10, None).items == []


def test_a_malformed_amount_names_the_option(tables: Any) -> None:
    # GIVEN an empty stage  WHEN the amount is not a decimal
    result = run("accounts", "create", "acme", "--quota-usd", "ten")

    # THEN the error names --quota-usd, and nothing was written
    assert_clean_error(result, "--quota-usd: must be a non-negative decimal string")
    assert account_store.list_page(10, None).items == []


def test_accounts_list_is_an_aligned_table(tables: Any) -> None:
    # GIVEN two accounts
    first = run_json("accounts", "create", "first", "--quota-usd", "1")
    second = run_json("accounts", "create", "second-with-a-long-name", "--unlimited")

    # WHEN they are listed
    result = run("accounts", "list")

    # THEN a header and one row each, with every column starting at the header's offset
    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert lines[0].split() == ["ID", "NAME", "STATUS", "REMAINING", "USED", "RESERVED", "CREATED"]
    assert len(lines) == 3
    status_at = lines[0].index("STATUS")
    assert {line[status_at:].split()[0] for line in lines[1:]} == {"enabled"}
    assert {line.split()[0] for line in lines[1:]} == {
        first["account"]["id"],
        second["account"]["id"],
    }
    assert "unlimited" in result.stdout
    assert not FULL_KEY.search(result.stdout)


def test_accounts_credit_adds_balance(account: dict[str, Any]) -> None:
    # GIVEN an account with US$10
    account_id = account["account"]["id"]

    # WHEN 1,000 units are credited with a note
    credited = run_json("accounts", "credit", account_id, "--quota-units", "1000", "--note", "hi")

    # THEN the answer and the store both show the new balance
    assert credited["quota_units"] == 5_001_000
    assert account_store.require(account_id).remaining_units == 5_001_000
    assert account_store.events(account_id)[0]["note"] == "hi"


def test_crediting_an_unknown_account_is_a_clean_error(tables: Any) -> None:
    # GIVEN no such account  WHEN it is credited
    result = run("accounts", "credit", "nope", "--quota-usd", "1")

    # THEN the API's 404 message, exit code 1
    assert_clean_error(result, "No account with this id.")


# Tokens -----------------------------------------------------------------------------------------
def test_tokens_create_passes_every_option_to_the_schema(account: dict[str, Any]) -> None:
    # GIVEN an account
    account_id = account["account"]["id"]

    # WHEN two keys are created with every option
    created = run_json(
        "tokens", "create", "--account", account_id, "--name", "ci", "--count", "2",
        "--quota-usd", "0.50", "--reset-period", "daily", "--group", "vip",
        "--expires-at", NEXT_YEAR,
        "--model", "gpt-4o-mini", "--model", "gpt-4o", "--allow-ip", "10.0.0.0/8",
    )  # fmt: skip

    # THEN both are stored with exactly those settings
    assert len(created["data"]) == 2
    for number, token in enumerate(created["data"], start=1):
        stored = token_store.get_owned(token["id"], account_id)
        assert stored.name == f"ci-{number}"
        assert (stored.unlimited, stored.quota_units) == (False, 250_000)
        assert (stored.reset_period, stored.group) == ("daily", "vip")
        assert stored.models == ("gpt-4o-mini", "gpt-4o")
        assert stored.allow_ips == ("10.0.0.0/8",)
        assert token["expires_at"] == NEXT_YEAR


def test_tokens_create_shows_each_full_key_once_in_a_table(account: dict[str, Any]) -> None:
    # GIVEN an account  WHEN a key is created without --json
    result = run("tokens", "create", "--account", account["account"]["id"], "--name", "laptop")

    # THEN its full key is in the table, with the warning that it is shown once
    assert result.exit_code == 0, result.output
    keys = FULL_KEY.findall(result.stdout)
    assert len(keys) == 1
    assert "shown only once" in result.stdout


def test_invalid_token_options_are_refused_by_the_schema(account: dict[str, Any]) -> None:
    # GIVEN an account
    account_id = account["account"]["id"]

    # WHEN the expiry lacks a UTC offset, and an IP is not an address
    naive = run("tokens", "create", "--account", account_id, "--expires-at", "2099-01-01T00:00")
    bad_ip = run("tokens", "create", "--account", account_id, "--allow-ip", "300.1.1.1")

    # THEN both are refused with the schema's messages, and only the default key exists
    assert_clean_error(naive, "--expires-at", "UTC offset")
    assert_clean_error(bad_ip, "is not an IP address or CIDR block")
    assert len(token_store.list_for_account(account_id, 10, None).items) == 1


def test_tokens_list_shows_previews_never_keys(account: dict[str, Any]) -> None:
    # GIVEN an account with its default key and one more
    account_id = account["account"]["id"]
    extra = run_json("tokens", "create", "--account", account_id, "--name", "extra")["data"][0]

    # WHEN its keys are listed, as a table and as JSON
    result = run("tokens", "list", "--account", account_id)
    listed = run_json("tokens", "list", "--account", account_id)

    # THEN both keys appear by preview, never in full
    assert result.exit_code == 0
    assert extra["key_preview"] in result.stdout
    assert account["default_token"]["key_preview"] in result.stdout
    assert not FULL_KEY.search(result.stdout + json.dumps(listed))
    assert {t["id"] for t in listed["data"]} == {extra["id"], account["default_token"]["id"]}


def test_tokens_disable_enable_and_filter_by_status(account: dict[str, Any]) -> None:
    # GIVEN an account's default key
    account_id = account["account"]["id"]
    token_id = account["default_token"]["id"]

    # WHEN it is disabled
    disabled = run_json("tokens", "disable", "--account", account_id, token_id)

    # THEN the store says disabled, and the status filter finds it
    assert disabled["status"] == "disabled"
    assert token_store.get_owned(token_id, account_id).status == "disabled"
    only_disabled = run_json("tokens", "list", "--account", account_id, "--status", "disabled")
    assert [t["id"] for t in only_disabled["data"]] == [token_id]

    # AND enabling it again is stored too
    assert run_json("tokens", "enable", "--account", account_id, token_id)["status"] == "enabled"
    assert token_store.get_owned(token_id, account_id).status == "enabled"


def test_tokens_delete_removes_the_key_and_a_second_delete_fails_cleanly(
    account: dict[str, Any],
) -> None:
    # GIVEN an account's default key
    account_id = account["account"]["id"]
    token_id = account["default_token"]["id"]

    # WHEN it is deleted twice
    first = run("tokens", "delete", "--account", account_id, token_id)
    second = run("tokens", "delete", "--account", account_id, token_id)

    # THEN it is gone from the store, and the second delete is the API's 404
    assert first.exit_code == 0 and f"Deleted {token_id}." in first.stdout
    assert token_store.get(token_id) is None
    assert_clean_error(second, "No token with this id.")


def test_a_key_of_another_account_cannot_be_touched(account: dict[str, Any]) -> None:
    # GIVEN a second account
    other = run_json("accounts", "create", "other", "--quota-usd", "1")

    # WHEN the first account's key is disabled through the other account
    result = run(
        "tokens", "disable", "--account", other["account"]["id"], account["default_token"]["id"]
    )

    # THEN it is reported as missing and stays enabled
    assert_clean_error(result, "No token with this id.")
    assert token_store.get(account["default_token"]["id"]).status == "enabled"  # type: ignore[union-attr]


def test_listing_keys_of_an_unknown_account_is_a_clean_error(tables: Any) -> None:
    # GIVEN no such account  WHEN its keys are listed
    result = run("tokens", "list", "--account", "nope")

    # THEN a 404 message, not an empty table
    assert_clean_error(result, "No account with this id.")


def test_stage_option_points_the_cli_at_that_stage_tables(
    tables: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN tables under the test prefix, and a --stage whose tables do not exist
    monkeypatch.setenv("SLUICE_STAGE", "dev")
    monkeypatch.setenv("SLUICE_TABLE_PREFIX", tables.table_prefix)

    # WHEN accounts are listed on stage "qa"
    result = run("--stage", "qa", "accounts", "list")

    # THEN the CLI looked for sluice-qa-* tables (missing here), not the test ones
    assert_clean_error(result, "ResourceNotFound")
    from chalicelib.store import models

    assert models.Account.Meta.table_name == "sluice-qa-accounts"


def test_table_aligns_columns_of_any_width() -> None:
    # GIVEN rows of different widths  WHEN rendered
    rendered = table(
        [{"a": "x", "b": None}, {"a": "longer", "b": 7}],
        [("a", lambda r: r["a"]), ("b", lambda r: r["b"])],
    )

    # THEN every column starts at the same offset and None is blank
    assert rendered.splitlines() == ["A       B", "x", "longer  7"]


# Model prices -----------------------------------------------------------------------------------
def test_models_set_stores_a_longest_audio_and_refuses_a_bad_one(tables: Any) -> None:
    from chalicelib.store import config as config_store

    # GIVEN an empty stage
    # WHEN a transcription price is set with a longest audio, then with one of zero seconds
    good = run("models", "set", "whisper-1", "--per-minute", "0.006", "--max-audio-seconds", "600")
    bad = run("models", "set", "tts-1", "--per-mchar", "15", "--max-audio-seconds", "0")

    # THEN the first is stored as given; the second is refused naming the field, and not stored
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout) == {
        "model": "whisper-1",
        "usd_per_minute": "0.006",
        "max_audio_seconds": 600,
    }
    assert config_store.load_prices()["whisper-1"].max_audio_seconds == 600
    assert_clean_error(bad, "--max-audio-seconds", "greater than or equal to 1")
    assert "tts-1" not in config_store.load_prices()


def test_a_bad_price_is_named_as_the_option_typed_not_as_the_api_field(tables: Any) -> None:
    from chalicelib.store import config as config_store

    # GIVEN an empty stage  WHEN a price is set with an input price that is not a number
    result = run("models", "set", "gpt-4o", "--input", "cheap")

    # THEN the error names --input (the field behind it is input_usd_per_mtok), and nothing is
    # stored
    assert_clean_error(result, "--input: must be a non-negative decimal string")
    assert "input_usd_per_mtok" not in result.stderr
    assert "gpt-4o" not in config_store.load_prices()


def test_every_resource_has_its_group_including_the_relay_ones() -> None:
    # GIVEN the sluice command  WHEN its help is printed
    result = run("--help")

    # THEN the core groups and the relay's groups are all there
    assert result.exit_code == 0
    for group in ("tables", "accounts", "tokens", "channels", "models", "groups", "resets"):
        assert re.search(rf"^\s+{group}\s", result.stdout, re.MULTILINE), group


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("red\u001b[31m", "red\\x1b[31m"),
        ("two\r\nlines", "two\\r\\nlines"),
        ("nul\u0000bell\u0007", "nul\\x00bell\\x07"),
        ("next\u0085", "next\\x85"),
        ("evil\u202egpj.exe", "evil\\u202egpj.exe"),
        ("iso\u2066x\u2069", "iso\\u2066x\\u2069"),
    ],
)
def test_table_prints_stored_control_and_bidi_characters_escaped(stored: str, shown: str) -> None:
    # GIVEN an item stored before names were checked  WHEN it is printed as a table
    printed = table([{"name": stored}], [("name", lambda row: row["name"])])
    # THEN its control and bidi characters appear as escapes, never raw
    assert printed.splitlines() == ["NAME", shown]


def test_tokens_list_escapes_an_old_name_holding_terminal_escapes(
    account: dict[str, Any],
) -> None:
    # GIVEN a key whose name was stored with an escape sequence (written past the schema)
    token_id = account["default_token"]["id"]
    stored = token_store.get(token_id)
    assert stored is not None
    token_store.update(stored, token_store.TokenChanges(name="x\u001b]0;pwned\u0007"))
    # WHEN the keys are listed as a table
    result = run("tokens", "list", "--account", account["account"]["id"])
    # THEN the name is shown escaped
    assert result.exit_code == 0, result.output
    assert "\u001b" not in result.stdout and "\u0007" not in result.stdout
    assert "x\\x1b]0;pwned\\x07" in result.stdout
