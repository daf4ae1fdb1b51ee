"""Operator keys (ops-): scoped admin access, managed over /admin/keys, checked on every call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

T0 = datetime(2027, 5, 4, 9, 30, tzinfo=UTC)
PAST = (T0 - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
OPERATOR_KEY_FIELDS = {
    "id",
    "name",
    "scopes",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
    "key_preview",
}


def snapshot() -> dict[str, list[str]]:
    from chalicelib.store.models import TABLES

    return {
        name: sorted(json.dumps(item.serialize(), sort_keys=True) for item in model.scan())
        for name, model in TABLES.items()
    }


@pytest.fixture
def frozen() -> Iterator[Any]:
    """The clock stopped at T0: ``last_used_at`` is written once, so snapshots compare equal."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def new_key(api: Any, *scopes: str, **fields: Any) -> dict[str, Any]:
    body = {"name": "k", "scopes": list(scopes), **fields}
    status, created = api.admin("POST", "/admin/keys", body)
    assert status == 201, created
    return created


def used(api: Any, key: str) -> None:
    """One successful call, so the key's first-use write is behind us."""
    status, body = api.call("POST", "/admin/resets/run", key=key)
    assert status == 200, body


def test_a_resets_only_key_runs_resets_and_is_refused_everything_else(
    api: Any, frozen: Any
) -> None:
    # GIVEN an account and an operator key holding only resets:run
    account_id = api.new_account("acme")["account"]["id"]
    key = new_key(api, "resets:run", name="nightly cron", expires_in_days=90)["key"]

    # WHEN it runs the reset job, then tries accounts, credit, channels and logs
    run = api.call("POST", "/admin/resets/run", key=key)
    before = snapshot()
    refused = [
        ("accounts:write", api.call("POST", "/admin/accounts", key=key, body={"name": "x"})),
        (
            "accounts:write",
            api.call(
                "POST", f"/admin/accounts/{account_id}/credit", key=key, body={"quota_units": 5}
            ),
        ),
        (
            "config:write",
            api.call(
                "POST", "/admin/channels", key=key, body={"name": "c", "base_url": "http://x"}
            ),
        ),
        ("logs:read", api.call("GET", f"/logs?account_id={account_id}", key=key)),
    ]

    # THEN the job ran; each other call is a 403 naming the scope it needs, and wrote nothing
    assert run[0] == 200 and run[1]["complete"] is True
    for scope, (status, error) in refused:
        assert status == 403, (scope, error)
        assert error["error"]["code"] == "insufficient_scope"
        assert f"'{scope}'" in error["error"]["message"]
        assert key not in json.dumps(error)
    assert snapshot() == before


def test_a_deleted_key_is_refused_on_its_very_next_call(api: Any) -> None:
    # GIVEN an operator key that works
    created = new_key(api, "resets:run")
    used(api, created["key"])

    # WHEN it is deleted, and then used
    deleted = api.admin("DELETE", f"/admin/keys/{created['id']}")
    status, error = api.call("POST", "/admin/resets/run", key=created["key"])

    # THEN the delete is a 204, the very next call a 401, and the key is gone from the store
    from chalicelib.store import operator_keys as key_store

    assert deleted == (204, None)
    assert status == 401 and error["error"]["code"] == "invalid_api_key"
    assert key_store.get(created["id"]) is None
    assert api.admin("GET", f"/admin/keys/{created['id']}")[0] == 404


def test_listing_shows_last_used_at_and_never_a_secret_or_hash(api: Any, frozen: Any) -> None:
    # GIVEN two operator keys, one of them used
    first = new_key(api, "resets:run", name="cron")
    second = new_key(api, "accounts:read", "logs:read", name="support")
    used(api, first["key"])

    # WHEN the keys are listed and read
    status, listing = api.admin("GET", "/admin/keys")
    one = api.admin("GET", f"/admin/keys/{first['id']}")[1]

    # THEN each shows its record and preview, never the key or its hash
    from chalicelib.core import keys

    text = json.dumps(listing) + json.dumps(one)
    assert status == 200 and listing["next_cursor"] is None
    by_id = {item["id"]: item for item in listing["data"]}
    assert set(by_id) == {first["id"], second["id"]}
    assert all(set(item) == OPERATOR_KEY_FIELDS for item in listing["data"])
    assert by_id[first["id"]]["last_used_at"] == T0.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by_id[second["id"]]["last_used_at"] is None
    assert one == by_id[first["id"]]
    for created in (first, second):
        assert created["key"] not in text
        assert keys.hash_key(created["key"]) not in text
        assert created["key"].startswith("ops-") and len(created["key"]) == 52
        assert created["key_preview"] == keys.preview(created["key"])


def test_the_listing_pages_with_a_cursor(api: Any) -> None:
    # GIVEN three operator keys
    ids = {new_key(api, "resets:run")["id"] for _ in range(3)}

    # WHEN they are listed two at a time
    first = api.admin("GET", "/admin/keys?limit=2")[1]
    second = api.admin("GET", f"/admin/keys?limit=2&cursor={first['next_cursor']}")[1]

    # THEN the two pages hold each key once, and the last one says it is the last
    assert len(first["data"]) == 2 and first["next_cursor"]
    assert second["next_cursor"] is None
    assert {item["id"] for item in first["data"] + second["data"]} == ids


def test_a_keys_admin_key_cannot_grant_a_scope_it_does_not_hold(api: Any, frozen: Any) -> None:
    # GIVEN a key that manages keys and holds resets:run, but not accounts:write
    manager = new_key(api, "keys:admin", "resets:run")["key"]
    used(api, manager)
    before = snapshot()

    # WHEN it asks for a key with accounts:write, and for one with resets:run
    refused = api.call(
        "POST", "/admin/keys", key=manager, body={"name": "x", "scopes": ["accounts:write"]}
    )
    after_refusal = snapshot()
    allowed = api.call(
        "POST", "/admin/keys", key=manager, body={"name": "y", "scopes": ["resets:run"]}
    )

    # THEN the first is a 403 naming the scope, writing nothing; the second is created
    assert refused[0] == 403
    assert refused[1]["error"]["code"] == "insufficient_scope"
    assert refused[1]["error"]["param"] == "scopes"
    assert "'accounts:write'" in refused[1]["error"]["message"]
    assert after_refusal == before
    assert allowed[0] == 201 and allowed[1]["scopes"] == ["resets:run"]


def test_a_keys_admin_key_cannot_widen_edit_or_delete_beyond_its_scopes(api: Any) -> None:
    # GIVEN a manager holding keys:admin and resets:run, a narrower key and a broader one
    manager = new_key(api, "keys:admin", "resets:run")["key"]
    narrow = new_key(api, "resets:run")["id"]
    broad = new_key(api, "accounts:write")["id"]

    # WHEN it widens the narrow key, and disables and deletes the broad one
    widen = api.call(
        "PATCH", f"/admin/keys/{narrow}", key=manager, body={"scopes": ["ledger:verify"]}
    )
    disable = api.call("PATCH", f"/admin/keys/{broad}", key=manager, body={"status": "disabled"})
    delete = api.call("DELETE", f"/admin/keys/{broad}", key=manager)
    rename = api.call("PATCH", f"/admin/keys/{narrow}", key=manager, body={"name": "renamed"})

    # THEN all but the rename are refused, and the broad key is untouched
    assert [r[0] for r in (widen, disable, delete)] == [403, 403, 403]
    assert all(r[1]["error"]["code"] == "insufficient_scope" for r in (widen, disable, delete))
    assert "'ledger:verify'" in widen[1]["error"]["message"]
    assert "'accounts:write'" in delete[1]["error"]["message"]
    assert rename[0] == 200 and rename[1]["name"] == "renamed"
    assert api.admin("GET", f"/admin/keys/{broad}")[1]["status"] == "enabled"


def test_scope_and_status_changes_apply_on_the_next_request(api: Any) -> None:
    # GIVEN a working key without accounts:read
    created = new_key(api, "resets:run")
    key, key_id = created["key"], created["id"]
    assert api.call("GET", "/admin/accounts", key=key)[0] == 403

    # WHEN accounts:read is granted, then the key disabled, then enabled again
    granted = api.admin(
        "PATCH", f"/admin/keys/{key_id}", {"scopes": ["resets:run", "accounts:read"]}
    )
    after_grant = api.call("GET", "/admin/accounts", key=key)
    api.admin("PATCH", f"/admin/keys/{key_id}", {"status": "disabled"})
    while_disabled = api.call("GET", "/admin/accounts", key=key)
    api.admin("PATCH", f"/admin/keys/{key_id}", {"status": "enabled"})
    after_enable = api.call("GET", "/admin/accounts", key=key)

    # THEN each change is in force on the very next call
    assert granted[0] == 200 and granted[1]["scopes"] == ["resets:run", "accounts:read"]
    assert after_grant[0] == 200
    assert while_disabled[0] == 401 and while_disabled[1]["error"]["code"] == "key_disabled"
    assert after_enable[0] == 200


def test_disabled_and_expired_keys_are_401(api: Any) -> None:
    # GIVEN a disabled key and a key that expires in a day
    with time_machine.travel(T0, tick=False):
        disabled = new_key(api, "resets:run")
        api.admin("PATCH", f"/admin/keys/{disabled['id']}", {"status": "disabled"})
        expiring = new_key(api, "resets:run", expires_in_days=1)
        used(api, expiring["key"])

    # WHEN both are used two days later
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        refused_disabled = api.call("POST", "/admin/resets/run", key=disabled["key"])
        refused_expired = api.call("POST", "/admin/resets/run", key=expiring["key"])
        listed = {k["id"]: k["status"] for k in api.admin("GET", "/admin/keys")[1]["data"]}

    # THEN both are 401, each saying why, and the listing shows their states
    assert refused_disabled[0] == 401 and refused_disabled[1]["error"]["code"] == "key_disabled"
    assert refused_expired[0] == 401 and refused_expired[1]["error"]["code"] == "key_expired"
    assert listed == {disabled["id"]: "disabled", expiring["id"]: "expired"}


def test_a_wrong_secret_and_an_unknown_id_get_the_same_401(api: Any) -> None:
    # GIVEN a real key's id with a wrong secret, and a well-formed key of no stored id
    key = new_key(api, "resets:run")["key"]
    wrong_secret = key[:-1] + ("a" if key[-1] != "a" else "b")
    unknown = "ops-" + "Q" * 16 + key[20:]

    # WHEN both are presented  THEN both get the same 401
    first = api.call("POST", "/admin/resets/run", key=wrong_secret)
    second = api.call("POST", "/admin/resets/run", key=unknown)
    assert first[0] == second[0] == 401
    assert first[1] == second[1]


CREATE_REFUSALS = [
    ({"name": "x", "scopes": ["resets:run", "root"]}, "scopes.1"),
    ({"name": "x", "scopes": "resets:run"}, "scopes"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": ["resets:run", "resets:run"]}, "scopes"),
    ({"name": "x"}, "scopes"),
    ({"name": "x", "scopes": ["resets:run"], "expires_at": PAST}, "expires_at"),
    ({"name": "x", "scopes": ["resets:run"], "expires_in_days": 0}, "expires_in_days"),
    (
        {"name": "x", "scopes": ["resets:run"], "expires_in_days": 1, "expires_at": PAST},
        "expires_in_days",
    ),
    ({"name": "", "scopes": ["resets:run"]}, "name"),
    ({"name": "a\u202eb", "scopes": ["resets:run"]}, "name"),
    ({"name": 5, "scopes": ["resets:run"]}, "name"),
    ({"scopes": ["resets:run"]}, "name"),
    ({"name": "x", "scopes": ["resets:run"], "key": "ops-mine"}, "key"),
]


@pytest.mark.parametrize(("body", "param"), CREATE_REFUSALS)
def test_bad_key_creation_is_400_with_param_and_writes_nothing(
    api: Any, frozen: Any, body: Any, param: str
) -> None:
    # GIVEN the store as it is
    before = snapshot()

    # WHEN a bad key is asked for
    status, error = api.admin("POST", "/admin/keys", body)

    # THEN 400 naming the field, and nothing written
    assert status == 400, error
    assert error["error"]["param"] == param
    assert snapshot() == before


PATCH_REFUSALS = [
    ({"scopes": ["nope"]}, "scopes.0"),
    ({"scopes": None}, "scopes"),
    ({"scopes": []}, "scopes"),
    ({"status": "expired"}, "status"),
    ({"name": None}, "name"),
    ({"expires_in_days": 3}, "expires_in_days"),
]


@pytest.mark.parametrize(("body", "param"), PATCH_REFUSALS)
def test_bad_key_edits_are_400_with_param_and_write_nothing(
    api: Any, frozen: Any, body: Any, param: str
) -> None:
    # GIVEN an operator key
    key_id = new_key(api, "resets:run")["id"]
    before = snapshot()

    # WHEN a bad edit is sent
    status, error = api.admin("PATCH", f"/admin/keys/{key_id}", body)

    # THEN 400 naming the field, and nothing written
    assert status == 400, error
    assert error["error"]["param"] == param
    assert snapshot() == before


def test_operators_use_account_routes_within_their_scopes(api: Any) -> None:
    # GIVEN an account, a support key (reads) and a provisioning key (account writes)
    account_id = api.new_account("acme")["account"]["id"]
    support = new_key(api, "logs:read", "accounts:read")["key"]
    provisioner = new_key(api, "accounts:write")["key"]

    # WHEN each reads and writes the account's keys and logs
    listed = api.call("GET", f"/tokens?account_id={account_id}", key=support)
    logs = api.call("GET", f"/logs?account_id={account_id}", key=support)
    account = api.call("GET", f"/account?account_id={account_id}", key=support)
    support_create = api.call("POST", f"/tokens?account_id={account_id}", key=support, body={})
    created = api.call("POST", f"/tokens?account_id={account_id}", key=provisioner, body={})
    provisioner_logs = api.call("GET", f"/logs?account_id={account_id}", key=provisioner)

    # THEN each call within the key's scopes works, and each outside them is a 403
    assert (listed[0], logs[0], account[0], created[0]) == (200, 200, 200, 201)
    assert support_create[0] == 403 and "'accounts:write'" in support_create[1]["error"]["message"]
    assert provisioner_logs[0] == 403 and "'logs:read'" in provisioner_logs[1]["error"]["message"]


def test_the_sweeper_runs_on_demand_with_its_scope(api: Any) -> None:
    # GIVEN a key holding only sweeper:run
    key = new_key(api, "sweeper:run")["key"]

    # WHEN it runs the sweeper, and then the reset job
    swept = api.call("POST", "/admin/sweeper/run", key=key)
    resets = api.call("POST", "/admin/resets/run", key=key)

    # THEN the sweep completes (nothing was pending) and the reset job is refused
    assert swept == (200, {"refunded": 0, "settled": 0, "skipped": 0, "complete": True})
    assert resets[0] == 403 and "'resets:run'" in resets[1]["error"]["message"]


def test_other_kinds_of_key_cannot_manage_operator_keys(api: Any) -> None:
    # GIVEN an account's management and API keys, and an operator key
    created = api.new_account("acme")
    key = new_key(api, "resets:run")["key"]
    body = {"name": "x", "scopes": ["resets:run"]}

    # WHEN the management key and the API key ask for an operator key; the ops key calls /v1
    by_mk = api.call("POST", "/admin/keys", key=created["management_key"], body=body)
    by_sk = api.call("POST", "/admin/keys", key=created["default_token"]["key"], body=body)
    on_relay = api.call("GET", "/v1/models", key=key)

    # THEN the first two are the wrong kind of key (403), and an ops key is no API key (401)
    assert by_mk[0] == by_sk[0] == 403
    assert by_mk[1]["error"]["code"] == by_sk[1]["error"]["code"] == "wrong_key_kind"
    assert on_relay[0] == 401


def test_admin_writes_name_their_actor_in_the_logs(
    api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an operator key with accounts:write
    created = new_key(api, "accounts:write")
    capsys.readouterr()

    # WHEN it creates an account, and the admin key then credits it
    account = api.call("POST", "/admin/accounts", key=created["key"], body={"name": "a"})[1]
    api.admin("POST", f"/admin/accounts/{account['account']['id']}/credit", {"quota_units": 5})
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]

    # THEN each write is logged with who made it, by id, never with the key
    writes = [line for line in lines if line["event"] == "admin_write_authorized"]
    assert [(w["actor"], w["method"], w["route"], w["scope"]) for w in writes] == [
        (f"ops:{created['id']}", "POST", "/admin/accounts", "accounts:write"),
        ("admin", "POST", "/admin/accounts/{account_id}/credit", "accounts:write"),
    ]
    assert created["key"] not in json.dumps(lines)


def test_an_empty_edit_answers_the_key_and_writes_nothing(api: Any, frozen: Any) -> None:
    # GIVEN an operator key
    created = new_key(api, "resets:run")
    before = snapshot()

    # WHEN an edit without fields is sent
    status, body = api.admin("PATCH", f"/admin/keys/{created['id']}", {})

    # THEN the key is answered as it is, and nothing was written
    assert status == 200 and body["scopes"] == ["resets:run"]
    assert snapshot() == before


def test_a_failed_last_used_write_does_not_refuse_a_good_key(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a good key, and a table too busy to record its use
    from chalicelib.core.errors import TooManyRequests
    from chalicelib.store import operator_keys as key_store

    key = new_key(api, "resets:run")["key"]

    def busy(*args: Any) -> None:
        raise TooManyRequests()

    monkeypatch.setattr(key_store, "touch", busy)

    # WHEN the key is used  THEN the call goes through all the same
    assert api.call("POST", "/admin/resets/run", key=key)[0] == 200
