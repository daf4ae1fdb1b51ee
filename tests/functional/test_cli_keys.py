"""``sluice keys``: operator keys from a shell, over the same use cases as /admin/keys."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result

from chalicelib.cli.main import cli
from chalicelib.core import keys
from chalicelib.store import operator_keys as key_store


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def run_json(*args: str) -> Any:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_create_prints_the_key_once_and_the_listing_only_its_preview(tables: Any) -> None:
    # GIVEN a stage
    # WHEN a key is created for people to read, then listed
    created = run(
        "keys", "create", "nightly cron", "--scope", "resets:run", "--expires-in-days", "90"
    )
    listed = run("keys", "list")

    # THEN the creation shows the full key (once); the listing shows its preview, never the key
    assert created.exit_code == 0, created.output
    line = next(word for word in created.stdout.split() if word.startswith("ops-"))
    record = key_store.require(line[4:20])
    assert keys.hashes_match(line, record.key_hash)
    assert record.scopes == ("resets:run",) and record.name == "nightly cron"
    assert "shown only once" in created.stdout
    assert listed.exit_code == 0
    assert line not in listed.stdout and record.key_preview in listed.stdout


def test_update_and_delete_act_on_the_next_use(tables: Any) -> None:
    # GIVEN a key
    key_id = run_json("keys", "create", "ci", "--scope", "resets:run")["id"]

    # WHEN it is re-scoped and disabled, then deleted
    updated = run_json(
        "keys",
        "update",
        key_id,
        "--scope",
        "sweeper:run",
        "--scope",
        "resets:run",
        "--status",
        "disabled",
    )
    deleted = run_json("keys", "delete", key_id)

    # THEN the store followed each step
    assert updated["scopes"] == ["sweeper:run", "resets:run"]
    assert updated["status"] == "disabled"
    assert deleted == {"id": key_id, "deleted": True}
    assert key_store.get(key_id) is None


def test_bad_input_is_a_clean_error_that_writes_nothing(tables: Any) -> None:
    # GIVEN a stage  WHEN keys are asked for with no scope, a repeated one, and an unknown one
    no_scope = run("keys", "create", "x")
    repeated = run("keys", "create", "x", "--scope", "resets:run", "--scope", "resets:run")
    unknown = run("keys", "create", "x", "--scope", "root")
    missing = run("keys", "delete", "Z" * 16)

    # THEN each is refused with a message naming the option, and no key exists
    assert no_scope.exit_code == repeated.exit_code == missing.exit_code == 1
    assert no_scope.stderr.startswith("Error: --scope")
    assert "must not repeat a scope" in repeated.stderr
    assert unknown.exit_code == 2 and "root" in unknown.stderr
    assert "No operator key" in missing.stderr
    assert key_store.list_page(10, None).items == []
