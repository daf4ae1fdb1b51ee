"""Budget alert settings through the API (moto): the secret shown once, stored to sign, never
listed; per key and per account; bad input refused with ``param`` and nothing written.

Deliveries (the stream handler, concurrency, retries) are proven on DynamoDB Local in
tests/gateway/test_budget_alerts.py; a handler dying after its claim in test_alert_outbox.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

URL = "https://hooks.example.com/sluice"


def config_item(name: str) -> Any:
    from chalicelib.store.models import ConfigItem

    try:
        return ConfigItem.get("alert", name, consistent_read=True)
    except ConfigItem.DoesNotExist:
        return None


@pytest.fixture
def owner(api: Any) -> tuple[Any, dict[str, Any]]:
    return api, api.new_account("acme", quota_units=1_000_000)


def test_first_put_shows_the_secret_once_and_get_never_does(
    owner: tuple[Any, dict[str, Any]],
) -> None:
    # GIVEN an account's management key
    api, created = owner
    mk, account_id = created["management_key"], created["account"]["id"]

    # WHEN it sets alerts with the default thresholds, then again with its own
    status, first = api.call("PUT", "/account/alerts", key=mk, body={"webhook_url": URL})
    again_body = {"webhook_url": URL, "thresholds": [90, 25]}
    status_again, again = api.call("PUT", "/account/alerts", key=mk, body=again_body)
    _, read = api.call("GET", "/account/alerts", key=mk)

    # THEN the first answer holds the secret, the second and the read do not
    assert status == status_again == 200
    assert first["webhook_secret"].startswith("whsec_")
    assert first["thresholds"] == [50, 80, 100] and first["token_id"] is None
    assert "webhook_secret" not in again and "webhook_secret" not in read
    assert read == again and read["thresholds"] == [25, 90] and read["enabled"] is True
    # AND the secret is kept (to sign), unchanged by the second PUT; the item has the thresholds
    assert config_item(f"account#{account_id}").body.as_dict()["secret"] == first["webhook_secret"]
    from chalicelib.store.models import Account

    assert Account.get(account_id).alert_thresholds == [25, 90]


def test_rotation_shows_a_new_secret_and_the_operator_reaches_the_same_settings(
    owner: tuple[Any, dict[str, Any]],
) -> None:
    # GIVEN alerts set by the account
    api, created = owner
    mk, account_id = created["management_key"], created["account"]["id"]
    _, first = api.call("PUT", "/account/alerts", key=mk, body={"webhook_url": URL})

    # WHEN the operator rotates the secret and reads the settings
    status, rotated = api.admin("POST", f"/admin/accounts/{account_id}/alerts/rotate-secret")
    _, read = api.admin("GET", f"/admin/accounts/{account_id}/alerts")

    # THEN a new secret is shown once, and the settings are the account's
    assert status == 200
    assert rotated["webhook_secret"] not in (None, first["webhook_secret"])
    assert read["webhook_url"] == URL and "webhook_secret" not in read
    stored = config_item(f"account#{account_id}").body.as_dict()["secret"]
    assert stored == rotated["webhook_secret"]


def test_a_key_has_its_own_alerts_and_delete_turns_them_off(
    owner: tuple[Any, dict[str, Any]],
) -> None:
    # GIVEN a key of the account, with no alerts yet
    api, created = owner
    mk, token_id = created["management_key"], created["default_token"]["id"]
    _, before = api.call("GET", f"/tokens/{token_id}/alerts", key=mk)

    # WHEN alerts are set on the key, then deleted
    body = {"webhook_url": URL, "thresholds": [75]}
    status, put = api.call("PUT", f"/tokens/{token_id}/alerts", key=mk, body=body)
    deleted, _ = api.call("DELETE", f"/tokens/{token_id}/alerts", key=mk)
    _, after = api.call("GET", f"/tokens/{token_id}/alerts", key=mk)

    # THEN the key's settings came and went, with its own secret
    assert before["enabled"] is False and before["webhook_url"] is None
    assert status == 200 and put["token_id"] == token_id and put["thresholds"] == [75]
    assert put["webhook_secret"].startswith("whsec_")
    assert deleted == 204 and after["enabled"] is False
    assert config_item(f"token#{token_id}") is None
    from chalicelib.store.models import Token

    assert Token.get(token_id).alert_thresholds is None


def test_another_accounts_key_is_not_found_and_nothing_is_written(
    owner: tuple[Any, dict[str, Any]],
) -> None:
    # GIVEN a key of another account
    api, created = owner
    other = api.new_account("other")["default_token"]["id"]

    # WHEN the first account sets alerts on it
    body = {"webhook_url": URL}
    status, error = api.call(
        "PUT", f"/tokens/{other}/alerts", key=created["management_key"], body=body
    )

    # THEN 404, as for a missing key, and nothing is stored
    assert status == 404 and error["error"]["param"] == "id"
    assert config_item(f"token#{other}") is None


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "webhook_url"),
    ({"webhook_url": "http://hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "http://127.0.0.1:9/x"}, "webhook_url"),  # not a local stack
    ({"webhook_url": "ftp://hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "https://user:pw@hooks.example.com/x"}, "webhook_url"),
    ({"webhook_url": "https://"}, "webhook_url"),
    ({"webhook_url": "https://h.example.com:99999/x"}, "webhook_url"),
    ({"webhook_url": "https://h.example.com/" + "x" * 2100}, "webhook_url"),
    ({"webhook_url": 7}, "webhook_url"),
    ({"webhook_url": URL, "thresholds": []}, "thresholds"),
    ({"webhook_url": URL, "thresholds": [0]}, "thresholds.0"),
    ({"webhook_url": URL, "thresholds": [101]}, "thresholds.0"),
    ({"webhook_url": URL, "thresholds": [50, 50]}, "thresholds"),
    ({"webhook_url": URL, "thresholds": ["50"]}, "thresholds.0"),
    ({"webhook_url": URL, "thresholds": [50.5]}, "thresholds.0"),
    ({"webhook_url": URL, "thresholds": list(range(1, 12))}, "thresholds"),
    ({"webhook_url": URL, "thresholds": 50}, "thresholds"),
    ({"webhook_url": URL, "webhook_secret": "mine"}, "webhook_secret"),
]


def test_bad_alert_settings_are_refused_with_their_param_and_nothing_is_written(
    owner: tuple[Any, dict[str, Any]],
) -> None:
    # GIVEN an account without alerts, and one of its keys
    api, created = owner
    account_id, token_id = created["account"]["id"], created["default_token"]["id"]
    paths = (
        "/account/alerts",
        f"/tokens/{token_id}/alerts",
        f"/admin/accounts/{account_id}/alerts",
    )

    # WHEN each bad body is sent to each of the three settings routes
    answers = [
        (path, param, *api.call("PUT", path, key=created["management_key"], body=body))
        if not path.startswith("/admin")
        else (path, param, *api.admin("PUT", path, body))
        for body, param in BAD_BODIES
        for path in paths
    ]

    # THEN each is a 400 in the OpenAI shape naming the field, and nothing is stored
    for path, param, status, error in answers:
        assert status == 400, (path, error)
        assert error["error"]["param"] == param, (path, error)
        assert error["error"]["type"] == "invalid_request_error"
    assert config_item(f"account#{account_id}") is None
    assert config_item(f"token#{token_id}") is None


def test_rotating_before_setting_up_is_refused(owner: tuple[Any, dict[str, Any]]) -> None:
    api, created = owner

    status, error = api.call("POST", "/account/alerts/rotate-secret", key=created["management_key"])

    assert status == 400 and error["error"]["param"] == "webhook_url"


def test_plain_http_loopback_is_allowed_when_the_setting_says_so(
    owner: tuple[Any, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a stack that allows plain-HTTP loopback webhooks (a local one)
    from chalicelib.core.settings import reset_settings

    monkeypatch.setenv("SLUICE_ALERT_ALLOW_HTTP_LOOPBACK", "1")
    reset_settings()
    api, created = owner

    # WHEN a loopback URL and a public plain-HTTP URL are set
    loopback = {"webhook_url": "http://127.0.0.1:8765/hook"}
    ok, _ = api.call("PUT", "/account/alerts", key=created["management_key"], body=loopback)
    public = {"webhook_url": "http://hooks.example.com/hook"}
    refused, _ = api.call("PUT", "/account/alerts", key=created["management_key"], body=public)

    # THEN only the loopback one is taken
    assert (ok, refused) == (200, 400)


def test_dead_letters_are_listed_for_the_operator_only(owner: tuple[Any, dict[str, Any]]) -> None:
    # GIVEN two failed deliveries kept as dead letters
    from chalicelib.store import alert_outbox

    api, created = owner
    for n in range(2):
        delivery = alert_outbox.Delivery(
            "account", "a", "a", "1000", 50 + n, json.dumps({"n": n}), 1_800_000_000_000
        )
        assert alert_outbox.claim(delivery)
        body = {
            "account_id": "a",
            "token_id": None,
            "threshold": 50 + n,
            "webhook_url": URL,
            "attempts": 4,
            "last_error": "HTTP 500",
            "payload": delivery.payload,
        }
        alert_outbox.dead_lettered(delivery, body, 1_800_000_000_000 + n)

    # WHEN the operator lists them one per page, and the account tries
    _, first = api.admin("GET", "/admin/alerts/dead-letters?limit=1")
    _, second = api.admin(
        "GET", f"/admin/alerts/dead-letters?limit=1&cursor={first['next_cursor']}"
    )
    status, _ = api.call("GET", "/admin/alerts/dead-letters", key=created["management_key"])

    # THEN newest first, paginated; the management key is refused
    assert [d["threshold"] for d in first["data"] + second["data"]] == [51, 50]
    assert first["data"][0]["last_error"] == "HTTP 500"
    assert status in (401, 403)


def test_the_cli_sets_shows_rotates_and_turns_off_alerts(owner: tuple[Any, dict[str, Any]]) -> None:
    # GIVEN an account, from the operator's shell
    from click.testing import CliRunner

    from chalicelib.cli.main import cli

    _, created = owner
    account_id, token_id = created["account"]["id"], created["default_token"]["id"]

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, ["alerts", *args], catch_exceptions=False)

    # WHEN alerts are set on the account and a key, shown, rotated, refused and turned off
    first = run("set", account_id, "--url", URL, "--threshold", "90", "--json")
    shown = run("show", account_id)
    keyed = run("set", account_id, "--token", token_id, "--url", URL)
    rotated = run("rotate-secret", account_id, "--json")
    bad = run("set", account_id, "--url", "http://hooks.example.com/x")
    off = run("off", account_id)
    after = run("show", account_id, "--json")
    dead = run("dead-letters")

    # THEN the secret is printed by set (the first time) and rotate only
    secret = json.loads(first.output)["webhook_secret"]
    assert "whsec_" not in shown.output and "90%" in shown.output
    assert "Signing secret (shown once): whsec_" in keyed.output
    assert json.loads(rotated.output)["webhook_secret"] not in (None, secret)
    assert bad.exit_code == 1 and "--webhook-url must use https" in bad.output
    assert off.exit_code == 0 and json.loads(after.output)["enabled"] is False
    assert dead.output.strip() == "(none)"
