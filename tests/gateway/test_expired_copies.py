"""After a quiet spell a call reserves on its expired copies of key and account: what changed
behind them meanwhile (another container's write) is still refused, and never mis-charged.
(And a key edited elsewhere while the copy is fresh: decided again, and logged, as edited.)

The copies are checked where it counts: the reservation is conditional on the key's hash,
revision, status, expiry and balance, and on the account's status, grants and balance. A change
the copy missed refuses the reservation, and the call is decided again on what is stored. The
one thing no condition checks, the output cap a low balance sets, is decided on what is stored
whenever a balance caps the call and a copy is out of date.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY, quiet_spell

from chalicelib.core.channels import Channel
from chalicelib.store import config as config_store
from chalicelib.store import tables
from chalicelib.store.common import send
from chalicelib.store.models import UsageRecord
from devtools.mock_upstream import MockUpstream

pytestmark = pytest.mark.ddb_local

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _account(server: str) -> dict[str, Any]:
    response = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "copies", "quota_usd": "5"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _chat(server: str, key: str) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/chat/completions",
        json=HELLO,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def _behind_the_back(table: str, item_id: str, update: str, values: dict[str, Any]) -> None:
    """A write this container never hears of (another container's, or the CLI's)."""
    names = {
        "ExpressionAttributeNames": {
            name: attribute
            for name, attribute in (("#status", "status"), ("#groups", "groups"), ("#name", "name"))
            if name in update
        }
    }
    names = names if names["ExpressionAttributeNames"] else {}
    send(
        "UpdateItem",
        {
            "TableName": tables.name(table),
            "Key": {"id": {"S": item_id}},
            "UpdateExpression": update,
            "ExpressionAttributeValues": values,
            **names,
        },
    )


def _used_then_disabled_during_a_quiet_spell(server: str) -> dict[str, Any]:
    """A key used once, then a quiet spell during which it was disabled elsewhere."""
    token = _account(server)["default_token"]
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    _behind_the_back(
        tables.TOKENS, token["id"], "SET #status = :off ADD revision :one",
        {":off": {"S": "disabled"}, ":one": {"N": "1"}},
    )  # fmt: skip
    return token


def _reserved(table: str, item_id: str) -> int:
    item = send("GetItem", {"TableName": tables.name(table), "Key": {"id": {"S": item_id}}})
    return int(item["Item"]["reserved_units"]["N"])


@pytest.mark.parametrize(
    ("table", "status", "code"),
    [(tables.TOKENS, 401, "key_disabled"), (tables.ACCOUNTS, 401, "account_disabled")],
)
def test_a_key_or_account_disabled_during_a_quiet_spell_is_refused_holding_nothing(
    server: str, table: str, status: int, code: str
) -> None:
    # GIVEN a key used once, then a quiet spell during which its key (or its account) was
    # disabled by a write this container did not see
    created = _account(server)
    token, account_id = created["default_token"], created["account"]["id"]
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    item_id = token["id"] if table == tables.TOKENS else account_id
    _behind_the_back(table, item_id, "SET #status = :off", {":off": {"S": "disabled"}})
    # WHEN it calls on the container's expired copies
    response = _chat(server, token["key"])
    # THEN it is refused as a disabled key (account) is, and nothing stays reserved
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert (_reserved(tables.TOKENS, token["id"]), _reserved(tables.ACCOUNTS, account_id)) == (0, 0)
    # AND so is the next call, now decided on what is stored
    again = _chat(server, token["key"])
    assert (again.status_code, again.json()["error"]) == (status, response.json()["error"])


def test_a_key_edited_during_a_quiet_spell_is_decided_again_on_its_new_revision(
    server: str,
) -> None:
    # GIVEN a key used once, then a quiet spell during which it was limited to another model
    # (an edit: a new revision) by a write this container did not see
    created = _account(server)
    token = created["default_token"]
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    _behind_the_back(
        tables.TOKENS,
        token["id"],
        "SET models = :models ADD revision :one",
        {":models": {"L": [{"S": "gpt-4o"}]}, ":one": {"N": "1"}},
    )
    # WHEN it calls for the model it may no longer use  THEN it is refused for that model
    response = _chat(server, token["key"])
    assert response.status_code == 403, response.text
    assert response.json()["error"]["param"] == "model"
    assert _reserved(tables.TOKENS, token["id"]) == 0


def test_a_key_topped_up_during_a_quiet_spell_is_not_capped_by_its_old_balance(
    server: str, upstream: MockUpstream
) -> None:
    # GIVEN a key whose small balance caps its calls' output, used once
    created = _account(server)
    made = httpx.post(
        f"{server}/tokens",
        json={"name": "small", "quota_units": 100},
        headers={"Authorization": f"Bearer {created['management_key']}"},
    )
    assert made.status_code == 201, made.text
    token = made.json()["data"][0]
    assert _chat(server, token["key"]).status_code == 200
    capped = upstream.last_body["max_tokens"]
    assert capped < 400
    # AND a quiet spell during which it was topped up by a write this container did not see
    quiet_spell()
    _behind_the_back(
        tables.TOKENS,
        token["id"],
        "ADD remaining_units :more, quota_units :more",
        {":more": {"N": "5000000"}},
    )
    # WHEN it calls again  THEN upstream is asked for the output the new balance affords
    assert _chat(server, token["key"]).status_code == 200
    assert upstream.last_body.get("max_tokens", capped + 1) > capped


def _admin(server: str, method: str, path: str, body: Any) -> httpx.Response:
    return httpx.request(
        method, f"{server}{path}", json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )


def _edited_elsewhere(table: str, item_id: str, update: str, values: dict[str, Any]) -> None:
    """An edit of a key or an account another container made: as every edit of either does
    (tokens.update, accounts.update), it moves the item's revision."""
    _behind_the_back(table, item_id, update + " ADD revision :one", {**values, ":one": {"N": "1"}})


def test_an_account_limit_set_during_a_quiet_spell_holds_from_the_first_call(
    server: str,
) -> None:
    # GIVEN a key used once, then a quiet spell during which its account was limited to one
    # request a minute, and that minute's request already made (an edit elsewhere)
    created = _account(server)
    token, account_id = created["default_token"], created["account"]["id"]
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    minute = str(int(time.time()) // 60)
    _edited_elsewhere(
        tables.ACCOUNTS,
        account_id,
        "SET rpm_limit = :one, requests_by_minute = :seen, tokens_by_minute = :none",
        {":seen": {"M": {minute: {"N": "1"}}}, ":none": {"M": {}}},
    )
    # WHEN it calls on the expired copies  THEN the account's limit refuses it
    response = _chat(server, token["key"])
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert (_reserved(tables.TOKENS, token["id"]), _reserved(tables.ACCOUNTS, account_id)) == (0, 0)


def test_an_auto_key_whose_group_was_revoked_during_a_quiet_spell_takes_the_next_one(
    server: str, upstream: MockUpstream
) -> None:
    # GIVEN auto's order vip then default, a vip channel, and an auto key of an account
    # granted both, used once (on vip)
    created = _granted_vip_and_default(server, upstream)
    account_id = created["account"]["id"]
    key = _key_of(server, created, group="auto")["key"]
    assert _chat(server, key).status_code == 200
    # AND a quiet spell during which the account lost vip (an edit elsewhere)
    quiet_spell()
    _edited_elsewhere(tables.ACCOUNTS, account_id, "SET #groups = :groups", {
        ":groups": {"L": [{"S": "default"}]}
    })  # fmt: skip
    # WHEN it calls on the expired copies  THEN it is answered, through default
    response = _chat(server, key)
    assert response.status_code == 200, response.text
    assert _reserved(tables.ACCOUNTS, account_id) == 0


def test_a_key_disabled_during_a_quiet_spell_hears_so_before_what_is_wrong_with_its_request(
    server: str,
) -> None:
    # GIVEN a key used once, then a quiet spell during which it was disabled elsewhere
    token = _used_then_disabled_during_a_quiet_spell(server)
    # WHEN it sends a request that is not JSON  THEN it hears that the key is disabled
    response = httpx.post(
        f"{server}/v1/chat/completions",
        content=b"{not json",
        headers={"Authorization": f"Bearer {token['key']}", "Content-Type": "application/json"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "key_disabled"


def test_every_edit_of_an_account_moves_its_revision(server: str) -> None:
    # GIVEN an account
    account_id = _account(server)["account"]["id"]

    def revision() -> int:
        item = send(
            "GetItem", {"TableName": tables.name(tables.ACCOUNTS), "Key": {"id": {"S": account_id}}}
        )
        return int(item["Item"].get("revision", {"N": "0"})["N"])

    # WHEN it is edited three ways  THEN each edit moves its revision by one
    before = revision()
    for edit in ({"rpm_limit": 5}, {"groups": ["default"]}, {"status": "disabled"}):
        assert _admin(server, "PATCH", f"/admin/accounts/{account_id}", edit).status_code == 200
    assert revision() == before + 3


def _vip_and_auto(server: str, upstream: MockUpstream) -> None:
    """A vip group at twice the price with a channel for the model; auto tries vip first."""
    assert _admin(server, "PUT", "/admin/groups/vip", {"ratio": "2"}).status_code == 200
    assert _admin(server, "PUT", "/admin/groups/auto", {"order": ["vip", "default"]}).is_success
    config_store.put_channel(
        Channel(id="vip", name="vip", base_url=upstream.base_url, models=("gpt-4o-mini",),
                group="vip"),
        upstream.api_key,
        1_700_000_000,
    )  # fmt: skip


def _granted_vip_and_default(server: str, upstream: MockUpstream) -> dict[str, Any]:
    """A new account granted vip and default (``_vip_and_auto``), as created."""
    _vip_and_auto(server, upstream)
    created = _account(server)
    path = f"/admin/accounts/{created['account']['id']}"
    granted = _admin(server, "PATCH", path, {"groups": ["default", "vip"]})
    assert granted.status_code == 200, granted.text
    return created


def _key_of(server: str, created: dict[str, Any], **fields: Any) -> dict[str, Any]:
    made = httpx.post(
        f"{server}/tokens",
        json={"name": "k", **fields},
        headers={"Authorization": f"Bearer {created['management_key']}"},
    )
    assert made.status_code == 201, made.text
    return dict(made.json()["data"][0])


def test_an_auto_key_due_for_its_reset_whose_group_was_revoked_takes_the_next_one(
    server: str, upstream: MockUpstream
) -> None:
    # GIVEN an auto key with a daily reset on an account granted vip and default, used once
    created = _granted_vip_and_default(server, upstream)
    account_id = created["account"]["id"]
    token = _key_of(server, created, group="auto", quota_units=10_000_000, reset_period="daily")
    assert _chat(server, token["key"]).status_code == 200
    # AND a quiet spell during which its reset came due and the account lost vip
    quiet_spell()
    _behind_the_back(
        tables.TOKENS, token["id"], "SET next_reset_at = :past",
        {":past": {"N": str(int(time.time()) - 5)}},
    )  # fmt: skip
    _edited_elsewhere(tables.ACCOUNTS, account_id, "SET #groups = :groups", {
        ":groups": {"L": [{"S": "default"}]}
    })  # fmt: skip
    # WHEN it calls on the expired copies  THEN it is reset and answered, through default
    response = _chat(server, token["key"])
    assert response.status_code == 200, response.text


def test_an_account_disabled_during_a_quiet_spell_is_refused_as_a_fresh_container_would(
    server: str, upstream: MockUpstream
) -> None:
    # GIVEN a vip key, used once, of an account disabled during a quiet spell that also lost vip
    created = _granted_vip_and_default(server, upstream)
    account_id = created["account"]["id"]
    token = _key_of(server, created, group="vip")
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    _edited_elsewhere(
        tables.ACCOUNTS, account_id, "SET #groups = :groups, #status = :off",
        {":groups": {"L": [{"S": "default"}]}, ":off": {"S": "disabled"}},
    )  # fmt: skip
    # WHEN it calls on the expired copies  THEN it hears that its account is disabled
    response = _chat(server, token["key"])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "account_disabled"


def test_a_call_refused_twice_over_after_a_quiet_spell_leaves_one_rejected_record(
    server: str, upstream: MockUpstream
) -> None:
    # GIVEN a key used once, disabled during a quiet spell, and a model a channel serves
    # without a price
    config_store.put_channel(
        Channel(id="np", name="np", base_url=upstream.base_url, models=("unpriced-x",)),
        upstream.api_key,
        1_700_000_000,
    )
    token = _used_then_disabled_during_a_quiet_spell(server)
    # WHEN it asks for that model  THEN it hears that it is disabled, logged once
    response = httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "unpriced-x", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {token['key']}"},
    )
    assert response.json()["error"]["code"] == "key_disabled", response.text
    rejected = [
        record.detail
        for record in UsageRecord.scan()
        if record.token_id == token["id"] and record.state == "rejected"
    ]
    assert rejected == ["key_disabled"]


def test_a_key_at_its_rate_limit_whose_account_was_disabled_hears_of_the_account(
    server: str,
) -> None:
    # GIVEN a key limited to one request a minute, which made it, of an account disabled
    # during a quiet spell
    created = _account(server)
    account_id = created["account"]["id"]
    token = _key_of(server, created, rpm_limit=1)
    assert _chat(server, token["key"]).status_code == 200
    quiet_spell()
    _edited_elsewhere(
        tables.ACCOUNTS, account_id, "SET #status = :off", {":off": {"S": "disabled"}}
    )
    # WHEN it calls again on the expired copies  THEN it hears that its account is disabled
    response = _chat(server, token["key"])
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "account_disabled"


# A key edited while the container's copy is still fresh ------------------------------------
def _records(token_id: str) -> list[tuple[str, str, str]]:
    """(state, status or the refusal's code, key name) of each of the key's log records."""
    return sorted(
        (record.state, record.detail or record.status, record.token_name)
        for record in UsageRecord.scan()
        if record.token_id == token_id
    )


def test_a_call_refused_on_the_key_as_edited_is_logged_as_rejected(server: str) -> None:
    # GIVEN a key in use (its copy cached), then limited to another model elsewhere
    token = _account(server)["default_token"]
    assert _chat(server, token["key"]).status_code == 200
    _edited_elsewhere(
        tables.TOKENS, token["id"], "SET models = :models", {":models": {"L": [{"S": "gpt-4o"}]}}
    )
    # WHEN it calls for the model it may no longer use, on the cached copy
    response = _chat(server, token["key"])
    # THEN it is refused for that model, and the refusal is in the key's log
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert [r for r in _records(token["id"]) if r[0] == "rejected"] == [
        ("rejected", "model_not_allowed", token["name"])
    ]


def test_a_call_decided_again_on_the_edited_key_is_logged_as_that_key(server: str) -> None:
    # GIVEN a key in use (its copy cached), then renamed elsewhere
    token = _account(server)["default_token"]
    assert _chat(server, token["key"]).status_code == 200
    _edited_elsewhere(tables.TOKENS, token["id"], "SET #name = :name", {":name": {"S": "renamed"}})
    # WHEN it calls on the cached copy  THEN it is answered, and logged under its new name
    assert _chat(server, token["key"]).status_code == 200
    assert _records(token["id"]) == [
        ("settled", "ok", token["name"]),
        ("settled", "ok", "renamed"),
    ]
