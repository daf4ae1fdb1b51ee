"""The audit trail on moto: one record per management action, its changes, who may read what."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from support import ADMIN_KEY

from chalicelib.core import keys

PROVIDER_KEY = "provider-secret-" + "p" * 24


def audit(api: Any, query: str = "", key: str = ADMIN_KEY) -> list[dict[str, Any]]:
    status, body = api.call("GET", f"/audit{query}", key=key)
    assert status == 200, body
    assert set(body) == {"data", "next_cursor"}
    return list(body["data"])


def actions(records: list[dict[str, Any]]) -> list[str]:
    return [record["action"] for record in records]


def stored_audit_items() -> list[dict[str, Any]]:
    from chalicelib.store.models import AuditRecord

    return [item.serialize() for item in AuditRecord.scan()]


def ok(result: tuple[int, Any], status: int = 200) -> Any:
    assert result[0] == status, result
    return result[1]


def test_every_account_action_leaves_one_record_naming_the_admin_and_its_changes(
    api: Any,
) -> None:
    # GIVEN an account
    created = api.new_account("acme", quota_units=1000)
    account_id = created["account"]["id"]

    # WHEN the admin renames it, credits it and rotates its management key
    ok(api.admin("PATCH", f"/admin/accounts/{account_id}", {"name": "acme-2"}))
    ok(api.admin("POST", f"/admin/accounts/{account_id}/credit", {"quota_units": 50, "note": "x"}))
    ok(api.admin("POST", f"/admin/accounts/{account_id}/management-key"))

    # THEN four records, newest first, each naming the admin, the target and what changed
    records = audit(api, f"?account_id={account_id}")
    assert actions(records) == [
        "account.rotate_key",
        "account.credit",
        "account.update",
        "account.create",
    ]
    assert {r["actor"] for r in records} == {"admin"}
    assert {(r["target_type"], r["target_id"]) for r in records} == {("account", account_id)}
    assert all(r["request_id"] and r["at"].endswith("Z") for r in records)
    rotate, credit, update, create = (r["changes"] for r in records)
    assert rotate == {"management_key": {"old": "[secret]", "new": "[secret]"}}
    assert credit == {
        "credited_units": {"old": None, "new": 50},
        "note": {"old": None, "new": "x"},
    }
    assert update == {"name": {"old": "acme", "new": "acme-2"}}
    assert create["name"] == {"old": None, "new": "acme"}
    assert create["quota_units"] == {"old": None, "new": 1000}
    assert create["default_token_id"]["new"] == created["default_token"]["id"]


def test_key_actions_by_a_management_key_name_its_account_and_never_a_secret(api: Any) -> None:
    # GIVEN an account's management key
    created = api.new_account("acme")
    account_id, mk = created["account"]["id"], created["management_key"]

    # WHEN it creates a key, disables it, regenerates it and deletes it
    token = ok(api.call("POST", "/tokens", key=mk, body={"name": "ci"}), 201)["data"][0]
    ok(api.call("PATCH", f"/tokens/{token['id']}", key=mk, body={"status": "disabled"}))
    regenerated = ok(api.call("POST", f"/tokens/{token['id']}/regenerate", key=mk))
    ok(api.call("DELETE", f"/tokens/{token['id']}", key=mk), 204)

    # THEN the key's trail is create -> update -> regenerate -> delete, by the account
    records = audit(api, f"?target_type=token&target_id={token['id']}", key=mk)
    assert actions(records) == ["token.delete", "token.regenerate", "token.update", "token.create"]
    assert {r["actor"] for r in records} == {account_id}
    delete, regenerate, update, create = (r["changes"] for r in records)
    assert update == {"status": {"old": "enabled", "new": "disabled"}}
    assert regenerate == {"key": {"old": "[secret]", "new": "[secret]"}}
    assert create["name"] == {"old": None, "new": "ci"}
    assert delete["status"] == {"old": "disabled", "new": None}
    # AND no key, hash of a key, or preview is stored anywhere in the table
    stored = json.dumps(stored_audit_items())
    for secret in (mk, token["key"], regenerated["key"], created["default_token"]["key"]):
        assert secret not in stored
        assert keys.hash_key(secret) not in stored
        assert keys.hash_key(secret)[:12] not in stored
        assert keys.preview(secret) not in stored


def test_a_batch_of_sixty_keys_writes_one_record_per_key(api: Any) -> None:
    # GIVEN an account  WHEN it creates 60 keys at once (more than one transaction holds)
    created = api.new_account("acme")
    made = ok(api.call("POST", "/tokens", key=created["management_key"], body={"count": 60}), 201)

    # THEN each key has its own token.create record
    records = audit(api, "?action=token.create&limit=100")
    assert sorted(r["target_id"] for r in records) == sorted(t["id"] for t in made["data"])


def test_a_batch_failing_part_way_takes_its_first_keys_back_and_records_it(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.core.errors import ServiceUnavailable
    from chalicelib.store import tokens as token_store

    # GIVEN an account, and a store whose second transaction of a batch fails
    created = api.new_account("acme")
    real, calls = token_store._create_chunk, []

    def second_fails(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise ServiceUnavailable()
        real(*args)

    monkeypatch.setattr(token_store, "_create_chunk", second_fails)

    # WHEN it asks for 60 keys
    status, _ = api.call("POST", "/tokens", key=created["management_key"], body={"count": 60})

    # THEN it is told to retry, no key of the batch is left, and the trail says so
    listed = ok(api.call("GET", "/tokens?limit=100", key=created["management_key"]))["data"]
    records = audit(api, f"?account_id={created['account']['id']}&limit=100")
    assert status == 503 and [t["name"] for t in listed] == ["default"]
    made = {r["target_id"] for r in records if r["action"] == "token.create"}
    taken_back = {r["target_id"] for r in records if r["action"] == "token.delete"}
    assert len(made) == 50 and taken_back == made


def test_configuration_and_operator_key_actions_are_recorded_without_the_provider_key(
    api: Any,
) -> None:
    # GIVEN the admin  WHEN it edits channels, prices, groups and operator keys
    channel = {"id": "c1", "name": "one", "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}
    ok(api.admin("POST", "/admin/channels", {**channel, "api_key": PROVIDER_KEY}), 201)
    ok(api.admin("PATCH", "/admin/channels/c1", {"priority": 5, "api_key": PROVIDER_KEY + "2"}))
    ok(api.admin("DELETE", "/admin/channels/c1"), 204)
    ok(api.admin("PUT", "/admin/models/m", {"usd_per_request": "0.001"}))
    ok(api.admin("PUT", "/admin/models/m", {"usd_per_request": "0.002"}))
    ok(api.admin("DELETE", "/admin/models/m"), 204)
    ok(api.admin("PUT", "/admin/groups/vip", {"ratio": "1.5"}))
    opkey = ok(api.admin("POST", "/admin/keys", {"name": "cron", "scopes": ["resets:run"]}), 201)
    ok(api.admin("PATCH", f"/admin/keys/{opkey['id']}", {"status": "disabled"}))
    ok(api.admin("DELETE", f"/admin/keys/{opkey['id']}"), 204)

    # THEN one record each, newest first, with what changed
    records = audit(api)
    assert actions(records) == [
        "opkey.delete",
        "opkey.update",
        "opkey.create",
        "group.update",
        "price.delete",
        "price.update",
        "price.update",
        "channel.delete",
        "channel.update",
        "channel.create",
    ]
    by_action = {r["action"]: r["changes"] for r in reversed(records)}
    assert by_action["channel.update"] == {
        "priority": {"old": 0, "new": 5},
        "api_key": {"old": "[secret]", "new": "[secret]"},
    }
    assert by_action["price.update"] == {"usd_per_request": {"old": "0.001", "new": "0.002"}}
    assert by_action["group.update"] == {"ratio": {"old": None, "new": "1.5"}}
    assert by_action["opkey.update"] == {"status": {"old": "enabled", "new": "disabled"}}
    assert by_action["opkey.create"]["scopes"] == {"old": None, "new": ["resets:run"]}
    stored = json.dumps(stored_audit_items())
    assert PROVIDER_KEY not in stored and opkey["key"] not in stored
    assert keys.hash_key(opkey["key"]) not in stored and opkey["key_preview"] not in stored


def test_alert_settings_changes_are_recorded_without_the_secret_or_the_urls_path_and_query(
    api: Any,
) -> None:
    # GIVEN an account, its key, and a webhook URL that carries a token in its path and query
    created = api.new_account("acme")
    account_id, mk = created["account"]["id"], created["management_key"]
    token_id = created["default_token"]["id"]
    url = "https://hooks.example.com/services/team-0/B0/pathsecret?token=querysecret"

    # WHEN the account sets alerts, the admin edits them, the key gets its own, both secrets are
    # rotated, the URL changes only in its query, and the key's alerts are turned off
    first = ok(api.call("PUT", "/account/alerts", key=mk, body={"webhook_url": url}))
    ok(
        api.admin(
            "PUT", f"/admin/accounts/{account_id}/alerts", {"webhook_url": url, "thresholds": [90]}
        )
    )
    own = ok(api.call("PUT", f"/tokens/{token_id}/alerts", key=mk, body={"webhook_url": url}))
    rotated = ok(api.admin("POST", f"/admin/accounts/{account_id}/alerts/rotate-secret"))
    again = ok(api.call("POST", f"/tokens/{token_id}/alerts/rotate-secret", key=mk))
    moved = {"webhook_url": url.replace("querysecret", "other"), "thresholds": [90]}
    ok(api.call("PUT", "/account/alerts", key=mk, body=moved))
    ok(api.call("DELETE", f"/tokens/{token_id}/alerts", key=mk), 204)

    # THEN one record per action, newest first, by whoever acted, on the account or the key
    records = audit(api, f"?target_type=alerts&account_id={account_id}")
    assert [(r["action"], r["target_id"], r["actor"]) for r in records] == [
        ("alerts.delete", f"token:{token_id}", account_id),
        ("alerts.update", f"account:{account_id}", account_id),
        ("alerts.rotate_secret", f"token:{token_id}", account_id),
        ("alerts.rotate_secret", f"account:{account_id}", "admin"),
        ("alerts.update", f"token:{token_id}", account_id),
        ("alerts.update", f"account:{account_id}", "admin"),
        ("alerts.update", f"account:{account_id}", account_id),
    ]
    deleted, moved_url, rotated_key, rotated_account, key_set, edited, set_up = (
        r["changes"] for r in records
    )
    shown = "https://hooks.example.com/…"
    assert set_up == {
        "thresholds": {"old": None, "new": [50, 80, 100]},
        "webhook_url": {"old": None, "new": shown},
        "webhook_secret": {"old": None, "new": "[secret]"},
    }
    assert edited == {"thresholds": {"old": [50, 80, 100], "new": [90]}}
    assert key_set["webhook_secret"] == {"old": None, "new": "[secret]"}
    assert (
        rotated_account == rotated_key == {"webhook_secret": {"old": "[secret]", "new": "[secret]"}}
    )
    # a URL that changed where it is not shown is still recorded as changed
    assert moved_url == {"webhook_url": {"old": shown, "new": shown}}
    assert deleted == {
        "thresholds": {"old": [50, 80, 100], "new": None},
        "webhook_url": {"old": shown, "new": None},
        "webhook_secret": {"old": "[secret]", "new": None},
    }
    # AND no secret, hash of one, path or query of the URL is stored anywhere in the trail
    stored = json.dumps(stored_audit_items())
    for secret in (first, own, rotated, again):
        assert secret["webhook_secret"] not in stored
        assert keys.hash_key(secret["webhook_secret"]) not in stored
    # (ids are random letters and digits: these path words hold a hyphen, no id can match them)
    assert "pathsecret" not in stored and "querysecret" not in stored
    assert "team-0" not in stored and "/services" not in stored


def test_a_refused_alert_change_writes_no_record(api: Any) -> None:
    # GIVEN two accounts and the trail so far
    first, second = api.new_account("a"), api.new_account("b")
    mk, other_token = first["management_key"], second["default_token"]["id"]
    before = stored_audit_items()
    body = {"webhook_url": "https://hooks.example.com/x"}

    # WHEN alert changes are refused: another account's key, bad input, nothing to rotate
    assert api.call("PUT", f"/tokens/{other_token}/alerts", key=mk, body=body)[0] == 404
    assert api.call("PUT", "/account/alerts", key=mk, body={"webhook_url": "ftp://x"})[0] == 400
    assert api.call("POST", "/account/alerts/rotate-secret", key=mk)[0] == 400
    assert api.call("DELETE", f"/tokens/{other_token}/alerts", key=mk)[0] == 404

    # THEN the trail is exactly as it was
    assert stored_audit_items() == before


def test_refused_changes_write_no_record(api: Any) -> None:
    # GIVEN two accounts, one key each, and the trail so far
    first, second = api.new_account("a"), api.new_account("b")
    mk, other_token = first["management_key"], second["default_token"]["id"]
    before = stored_audit_items()

    # WHEN changes are refused: another account's key, an ungranted group, an unknown account,
    # a taken channel id, bad input
    assert api.call("PATCH", f"/tokens/{other_token}", key=mk, body={"name": "x"})[0] == 404
    assert api.call("DELETE", f"/tokens/{other_token}", key=mk)[0] == 404
    token_id = first["default_token"]["id"]
    assert api.call("PATCH", f"/tokens/{token_id}", key=mk, body={"group": "vip"})[0] == 403
    assert api.admin("POST", "/admin/accounts/nope/credit", {"quota_units": 5})[0] == 404
    assert api.call("PATCH", f"/tokens/{token_id}", key=mk, body={"rpm_limit": -1})[0] == 400

    # THEN the trail is exactly as it was
    assert stored_audit_items() == before


def test_a_management_key_sees_only_its_own_account(api: Any) -> None:
    # GIVEN two accounts that each changed their keys
    first, second = api.new_account("a"), api.new_account("b")
    for account in (first, second):
        mk, token_id = account["management_key"], account["default_token"]["id"]
        ok(api.call("PATCH", f"/tokens/{token_id}", key=mk, body={"name": "renamed"}))
    mk = first["management_key"]
    other = second["default_token"]["id"]

    # WHEN the first lists the trail, asks for the other account, and for the other's key
    own = audit(api, key=mk)
    asked_other = audit(api, f"?account_id={second['account']['id']}", key=mk)
    other_key = audit(api, f"?target_type=token&target_id={other}", key=mk)

    # THEN it only ever sees its own account's records
    ids = {first["account"]["id"], first["default_token"]["id"]}
    assert actions(own) == ["token.update", "account.create"]
    assert {r["target_id"] for r in own} <= ids
    assert asked_other == own
    assert other_key == []
    # AND a cursor from the other account's listing is refused
    page = ok(api.call("GET", "/audit?limit=1", key=second["management_key"]))
    status, body = api.call("GET", f"/audit?limit=1&cursor={page['next_cursor']}", key=mk)
    assert status == 400 and body["error"]["param"] == "cursor"


def test_pages_walk_back_across_months_newest_first_without_gaps(api: Any) -> None:
    # GIVEN records made in three different months
    for when, name in (("2026-10-15", "oct"), ("2026-11-15", "nov"), ("2026-12-01", "dec")):
        for i in range(2):
            at = datetime.fromisoformat(f"{when}T00:00:0{i}+00:00")
            with time_machine.travel(at, tick=False):
                ok(api.admin("PUT", f"/admin/groups/{name}{i}", {"ratio": "1"}))

    # WHEN the whole trail is read one or four records at a time, with the clock in December
    with time_machine.travel(datetime(2026, 12, 2, tzinfo=UTC), tick=False):
        pages: dict[int, list[str]] = {}
        for limit in (1, 4):
            seen, cursor = [], ""
            for _ in range(10):
                body = ok(api.admin("GET", f"/audit?limit={limit}&cursor={cursor}"))
                seen += [r["target_id"] for r in body["data"]]
                cursor = body["next_cursor"]
                if not cursor:
                    break
            pages[limit] = seen

    # THEN every record comes once, newest first
    expected = ["dec1", "dec0", "nov1", "nov0", "oct1", "oct0"]
    assert pages == {1: expected, 4: expected}


def test_filters_narrow_by_action_target_type_account_and_time(api: Any) -> None:
    # GIVEN an account's changes on two days, and a group ratio
    with time_machine.travel(datetime(2026, 11, 10, tzinfo=UTC), tick=False):
        created = api.new_account("a")
    account_id, mk = created["account"]["id"], created["management_key"]
    token_id = created["default_token"]["id"]
    with time_machine.travel(datetime(2026, 11, 20, tzinfo=UTC), tick=False):
        ok(api.call("PATCH", f"/tokens/{token_id}", key=mk, body={"name": "x"}))
    with time_machine.travel(datetime(2026, 11, 20, 0, 0, 1, tzinfo=UTC), tick=False):
        ok(api.admin("PUT", "/admin/groups/vip", {"ratio": "2"}))

    with time_machine.travel(datetime(2026, 11, 21, tzinfo=UTC), tick=False):
        # WHEN the admin filters
        by_action = audit(api, "?action=group.update")
        by_type = audit(api, "?target_type=token")
        by_account = audit(api, f"?account_id={account_id}")
        by_time = audit(api, "?start=2026-11-15&end=2026-11-21")
        before = audit(api, "?end=2026-11-15")

    # THEN each filter keeps exactly its records
    assert [(r["action"], r["target_id"]) for r in by_action] == [("group.update", "vip")]
    assert actions(by_type) == ["token.update"]
    assert actions(by_account) == ["token.update", "account.create"]
    assert actions(by_time) == ["group.update", "token.update"]
    assert actions(before) == ["account.create"]


def _forged(cursor: dict[str, Any]) -> str:
    raw = json.dumps(cursor, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _record_key(bucket: str, at_id: str) -> str:
    return _forged({"bucket": {"S": bucket}, "at_id": {"S": at_id}})


BAD_QUERIES = [
    ("?action=token.explode", "action"),
    ("?target_type=spaceship", "target_type"),
    ("?target_id=abc", "target_type"),
    ("?start=yesterday", "start"),
    ("?start=2026-11-02&end=2026-11-01", "start"),
    ("?limit=0", "limit"),
    ("?sort=asc", "sort"),
    ("?cursor=not-a-cursor", "cursor"),
    (f"?cursor={_record_key('2026-11', 'x')}", "cursor"),
    # a well-formed key whose month is not its own partition, and one from long ago
    (f"?cursor={_record_key('2026-10', '1795000000000#00000000')}", "cursor"),
    (f"?cursor={_record_key('2001-09', '1000000000000#00000000')}", "cursor"),
    (f"?cursor={_forged({'kind': {'S': 'account'}})}", "cursor"),
]


def test_bad_input_is_a_400_naming_the_parameter(api: Any) -> None:
    # GIVEN the admin key  WHEN each bad query is sent
    answers = {query: api.admin("GET", f"/audit{query}") for query, _ in BAD_QUERIES}

    # THEN each is a 400 naming its parameter
    for query, param in BAD_QUERIES:
        status, body = answers[query]
        assert (status, body["error"]["param"]) == (400, param), (query, body)


def test_an_operator_key_is_named_by_its_id_and_needs_audit_read(api: Any) -> None:
    # GIVEN an operator key that may edit accounts but not read the trail, and one that may
    account_id = api.new_account("a")["account"]["id"]
    writer = ok(api.admin("POST", "/admin/keys", {"name": "w", "scopes": ["accounts:write"]}), 201)
    reader = ok(api.admin("POST", "/admin/keys", {"name": "r", "scopes": ["audit:read"]}), 201)

    # WHEN the writer credits the account and both ask for the trail
    credit = {"quota_units": 5}
    ok(api.call("POST", f"/admin/accounts/{account_id}/credit", key=writer["key"], body=credit))
    refused = api.call("GET", "/audit", key=writer["key"])
    records = audit(api, f"?account_id={account_id}", key=reader["key"])

    # THEN the credit names the writer's id; the writer may not read the trail
    assert records[0]["action"] == "account.credit"
    assert records[0]["actor"] == f"ops:{writer['id']}"
    assert refused[0] == 403 and refused[1]["error"]["code"] == "insufficient_scope"


def test_the_cli_lists_the_trail_and_records_its_own_changes_as_the_admin(tables: Any) -> None:
    from click.testing import CliRunner

    from chalicelib.cli.main import cli

    # GIVEN an account created from the command line
    runner = CliRunner()
    made = runner.invoke(cli, ["accounts", "create", "acme", "--json"], catch_exceptions=False)
    account_id = json.loads(made.stdout)["account"]["id"]

    # WHEN the trail is listed, as JSON and as a table
    listed = runner.invoke(cli, ["audit", "--account", account_id, "--json"])
    shown = runner.invoke(cli, ["audit", "--action", "account.create"])

    # THEN the creation is there, by the admin, from the command line
    [record] = json.loads(listed.stdout)["data"]
    assert record["action"] == "account.create" and record["actor"] == "admin"
    assert record["request_id"].startswith("cli-")
    assert shown.exit_code == 0 and "account.create" in shown.stdout and account_id in shown.stdout
