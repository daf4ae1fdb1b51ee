"""What a tenant may do is the operator's to grant, and every change of it counts at once.

Observed against `make run` as a hostile tenant: a management key could move its keys to any
group (another customer's discounted channels), edits of a key's models / IPs / group waited for
the 10 s key cache, `allow_ips` did not cover the key's own routes, billing routes showed a limit
the key could not spend, and a client sending two different output caps was billed for one while
the provider honoured the other.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from chalicelib.core.channels import Channel
from chalicelib.store import accounts as account_store
from chalicelib.store import config as config_store
from chalicelib.store import tokens as token_store
from chalicelib.store.models import UsageRecord

CHAT = "/v1/chat/completions"
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _serve_group(upstream: Any, group: str) -> None:
    """A channel of ``group`` on the demo upstream, serving the demo chat model."""
    config_store.put_channel(
        Channel(
            id=f"ch-{group}",
            name=f"{group}-channel",
            base_url=upstream.base_url,
            models=("gpt-4o-mini",),
            group=group,
        ),
        upstream.api_key,
        int(time.time()),
    )


def _spent(token_id: str, account_id: str) -> tuple[int, int, int, int]:
    token = token_store.get(token_id)
    account = account_store.get(account_id)
    assert token is not None and account is not None
    return token.used_units, token.reserved_units, account.used_units, account.reserved_units


def _tokens_of(account_id: str) -> list[Any]:
    return token_store.list_for_account(account_id, 100, None).items


# 1. Groups belong to the operator --------------------------------------------------------------
def test_a_tenant_cannot_create_a_key_in_a_group_it_was_not_granted(relay_api: Any) -> None:
    # GIVEN an account granted only the default group (one key so far)
    created = relay_api.new_account("acme", quota_usd="10")
    account_id, mk = created["account"]["id"], created["management_key"]
    assert created["account"]["groups"] == ["default"]
    # WHEN its management key creates a key in the operator's discounted group
    status, body = relay_api.call(
        "POST", "/tokens", key=mk, body={"name": "cheap", "group": "partner-internal"}
    )
    # THEN 403 group_not_allowed naming the field, and nothing was written
    assert status == 403, body
    assert (body["error"]["code"], body["error"]["param"]) == ("group_not_allowed", "group")
    assert len(_tokens_of(account_id)) == 1


def test_a_tenant_cannot_move_a_key_to_a_group_until_the_operator_grants_it(
    relay_api: Any,
) -> None:
    # GIVEN an account and its default key
    created = relay_api.new_account("acme", quota_usd="10")
    account_id, mk = created["account"]["id"], created["management_key"]
    token_id = created["default_token"]["id"]
    # WHEN the tenant moves the key to "vip" before the operator granted it
    path = f"/tokens/{token_id}"
    status, body = relay_api.call("PATCH", path, key=mk, body={"group": "vip"})
    # THEN 403, and the key is unchanged
    assert status == 403 and body["error"]["code"] == "group_not_allowed", body
    stored = token_store.get(token_id)
    assert stored is not None and stored.group == "default"
    # WHEN the operator grants "vip" (GET /account shows it), the same PATCH is accepted
    status, body = relay_api.admin(
        "PATCH", f"/admin/accounts/{account_id}", {"groups": ["default", "vip"]}
    )
    assert status == 200 and body["groups"] == ["default", "vip"], body
    assert relay_api.call("GET", "/account", key=mk)[1]["groups"] == ["default", "vip"]
    status, body = relay_api.call("PATCH", path, key=mk, body={"group": "vip"})
    assert status == 200 and body["group"] == "vip", body


def test_a_key_in_a_revoked_group_is_refused_on_its_next_call(
    relay_api: Any, upstream: Any
) -> None:
    # GIVEN an account granted "vip", a key in it, and a vip channel; the key has just been used
    # (key and account are in the container's cache)
    _serve_group(upstream, "vip")
    created = relay_api.new_account("acme", quota_usd="10", groups=["default", "vip"])
    account_id, mk = created["account"]["id"], created["management_key"]
    status, body = relay_api.call("POST", "/tokens", key=mk, body={"group": "vip"})
    assert status == 201, body
    token = body["data"][0]
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    spent = _spent(token["id"], account_id)
    # WHEN the operator takes "vip" away from the account
    status, _ = relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"groups": ["default"]})
    assert status == 200
    # THEN the very next call is refused, and nothing more is charged
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 403 and body["error"]["code"] == "group_not_allowed", body
    assert _spent(token["id"], account_id) == spent


@pytest.mark.parametrize("groups", [[], ["bad group"], ["vip", "vip"], "vip"])
def test_bad_account_groups_are_400_and_change_nothing(relay_api: Any, groups: Any) -> None:
    created = relay_api.new_account("acme")
    account_id = created["account"]["id"]
    status, body = relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"groups": groups})
    assert status == 400 and body["error"]["param"].startswith("groups"), body
    stored = account_store.get(account_id)
    assert stored is not None and stored.groups == ("default",)


# 2. The output cap the provider sees is the one that was reserved -----------------------------
def test_two_different_output_caps_are_refused_before_anything_is_reserved(
    relay_api: Any,
) -> None:
    created = relay_api.new_account("acme", quota_usd="10")
    token = created["default_token"]
    body = {**HELLO, "max_completion_tokens": 1, "max_tokens": 100_000}
    status, answer = relay_api.call("POST", CHAT, key=token["key"], body=body)
    assert status == 400 and answer["error"]["param"] == "max_tokens", answer
    assert _spent(token["id"], created["account"]["id"]) == (0, 0, 0, 0)
    assert list(UsageRecord.scan()) == []


def test_the_provider_receives_the_reserved_cap_in_every_cap_field(
    relay_api: Any, upstream: Any
) -> None:
    # GIVEN a key with 100 units left (~300 output tokens of gpt-4o-mini)
    created = relay_api.new_account("acme", quota_usd="10")
    mk = created["management_key"]
    status, body = relay_api.call("POST", "/tokens", key=mk, body={"quota_units": 100})
    token = body["data"][0]
    # WHEN the client asks for far more output, in both fields
    ask = {**HELLO, "max_completion_tokens": 100_000, "max_tokens": 100_000}
    status, answer = relay_api.call("POST", CHAT, key=token["key"], body=ask)
    # THEN both fields reach the provider lowered to the same, affordable cap
    assert status == 200, answer
    sent = upstream.last_body
    assert sent["max_tokens"] == sent["max_completion_tokens"] < 400


# 6. What a key may do changes on the next request --------------------------------------------
@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"models": ["gpt-4o"]}, "model_not_allowed"),
        ({"allow_ips": ["10.0.0.0/8"]}, "ip_not_allowed"),
    ],
)
def test_an_edit_of_what_a_key_may_do_counts_on_its_very_next_call(
    relay_api: Any, change: dict[str, Any], code: str
) -> None:
    # GIVEN a key that has just been used (cached in the container for 10 s)
    created = relay_api.new_account("acme", quota_usd="10")
    token, mk = created["default_token"], created["management_key"]
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200
    spent = _spent(token["id"], created["account"]["id"])
    # WHEN its permissions are narrowed
    assert relay_api.call("PATCH", f"/tokens/{token['id']}", key=mk, body=change)[0] == 200
    # THEN the next call is refused at once, nothing charged
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    assert status == 403 and body["error"]["code"] == code, body
    assert _spent(token["id"], created["account"]["id"]) == spent


def test_a_widened_key_works_on_its_very_next_call(relay_api: Any) -> None:
    created = relay_api.new_account("acme", quota_usd="10")
    mk = created["management_key"]
    _, body = relay_api.call("POST", "/tokens", key=mk, body={"models": ["gpt-4o"]})
    token = body["data"][0]
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 403
    patch = {"models": ["gpt-4o", "gpt-4o-mini"]}
    assert relay_api.call("PATCH", f"/tokens/{token['id']}", key=mk, body=patch)[0] == 200
    assert relay_api.call("POST", CHAT, key=token["key"], body=HELLO)[0] == 200


@pytest.mark.parametrize(
    "path", ["/v1/key", "/v1/models", "/v1/dashboard/billing/subscription",
             "/v1/dashboard/billing/usage"],
)  # fmt: skip
def test_allowed_ips_cover_every_route_of_the_key(relay_api: Any, path: str) -> None:
    created = relay_api.new_account("acme", quota_usd="10")
    mk = created["management_key"]
    status, body = relay_api.call("POST", "/tokens", key=mk, body={"allow_ips": ["10.0.0.0/8"]})
    token = body["data"][0]
    status, body = relay_api.call("GET", path, key=token["key"])
    assert status == 403 and body["error"]["code"] == "ip_not_allowed", body


def test_billing_shows_what_an_unlimited_key_of_a_poor_account_can_spend(relay_api: Any) -> None:
    # GIVEN an unlimited key whose account has one unit (US$0.000002) left
    created = relay_api.new_account("acme", quota_units=1)
    token = created["default_token"]
    # WHEN a billing client reads the limit
    status, sub = relay_api.call("GET", "/v1/dashboard/billing/subscription", key=token["key"])
    # THEN the limit is what the account can still pay, not "unlimited"
    assert status == 200 and sub["hard_limit_usd"] == pytest.approx(0.000002), sub
    status, key = relay_api.call("GET", "/v1/key", key=token["key"])
    assert (key["remaining_units"], key["status"]) == (1, "enabled")


def test_the_key_shows_disabled_while_its_account_is_disabled(relay_api: Any) -> None:
    created = relay_api.new_account("acme", quota_usd="10")
    token, account_id = created["default_token"], created["account"]["id"]
    assert (
        relay_api.admin("PATCH", f"/admin/accounts/{account_id}", {"status": "disabled"})[0] == 200
    )
    status, key = relay_api.call("GET", "/v1/key", key=token["key"])
    assert status == 200 and key["status"] == "disabled", key


def test_a_key_still_due_for_reset_after_every_try_is_not_called_invalid(
    relay_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a daily key past its boundary whose reset never lands (another writer keeps it due)
    from chalicelib.services import resets

    created = relay_api.new_account("acme", quota_usd="10")
    mk = created["management_key"]
    status, body = relay_api.call("POST", "/tokens", key=mk, body={"reset_period": "daily"})
    token = body["data"][0]
    token_store.Token(token["id"]).update(actions=[token_store.Token.next_reset_at.set(1)])
    monkeypatch.setattr(resets, "reset_if_due", lambda token, now: None)
    # WHEN it is used
    status, body = relay_api.call("POST", CHAT, key=token["key"], body=HELLO)
    # THEN the answer says "retry", not "your key is invalid"
    assert status == 429 and body["error"]["code"] == "rate_limited", body
