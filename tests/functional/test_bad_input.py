"""Every validation failure is a 400 naming the offending ``param``, and writes nothing.

Every case runs against the same two accounts, one with an extra token, made once for the module
(``world``); the whole store is snapshotted (moto, by Scan) before and after each rejected
request and must be identical, so a case that wrongly writes fails itself.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine

T0 = datetime(2027, 5, 4, 9, 30, tzinfo=UTC)
PAST = (T0 - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
NOW_ISO = T0.strftime("%Y-%m-%dT%H:%M:%SZ")
TOO_FAR = (T0 + timedelta(days=3651)).strftime("%Y-%m-%dT%H:%M:%SZ")
MISSING = object()  # the param is reported as null (the body as a whole is wrong)


def snapshot() -> dict[str, list[str]]:
    from chalicelib.store.models import TABLES

    return {
        name: sorted(json.dumps(item.serialize(), sort_keys=True) for item in model.scan())
        for name, model in TABLES.items()
    }


def cursor_of(key: dict[str, Any]) -> str:
    raw = json.dumps(key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class World:
    def __init__(self, api: Any) -> None:
        created = api.new_account("acme", quota_units=1_000)
        other = api.new_account("other")
        self.api = api
        self.account = created["account"]["id"]
        self.mk = created["management_key"]
        status, body = api.call("POST", "/tokens", key=self.mk, body={"name": "t"})
        assert status == 201
        self.token = body["data"][0]["id"]
        self.other_account = other["account"]["id"]

    def fill(self, text: str) -> str:
        return text.format(token=self.token, account=self.account, other=self.other_account)


@pytest.fixture(scope="module")
def world(module_api: Any) -> World:
    with time_machine.travel(T0, tick=False):
        return World(module_api)


def expect_refused(
    world: World, who: str, method: str, path: str, payload: Any, param: Any, status: int = 400
) -> None:
    # GIVEN the store as it is
    before = snapshot()
    key = world.mk if who == "mk" else None
    call = world.api.call if who == "mk" else world.api.admin
    kwargs: dict[str, Any] = {"raw": payload} if isinstance(payload, (bytes, str)) else {}
    if not kwargs and payload is not None:
        kwargs["body"] = payload
    if who == "mk":
        kwargs["key"] = key
    # WHEN the bad request is sent
    with time_machine.travel(T0, tick=False):
        got, body = call(method, world.fill(path), **kwargs)
    # THEN a 4xx (400 unless told) invalid_request_error naming the param, in the OpenAI shape
    assert got == status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"]
    assert body["error"]["param"] == (None if param is MISSING else param)
    # AND nothing was written anywhere
    assert snapshot() == before


TOKEN_CREATION = [
    (b"{not json", MISSING),
    (b'{"name": "x",}', MISSING),
    (b"[]", MISSING),
    (b"null", MISSING),
    ({"nme": "x"}, "nme"),
    ({"name": 7}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": ""}, "name"),
    ({"expires_at": PAST}, "expires_at"),
    ({"expires_at": NOW_ISO}, "expires_at"),
    ({"expires_at": TOO_FAR}, "expires_at"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),
    ({"expires_at": "1900000000"}, "expires_at"),
    ({"expires_in_days": 0}, "expires_in_days"),
    ({"expires_in_days": 3651}, "expires_in_days"),
    ({"expires_at": "2030-01-01T00:00:00Z", "expires_in_days": 1}, "expires_in_days"),
    ({"count": 0}, "count"),
    ({"count": 101}, "count"),
    ({"count": "2"}, "count"),
    ({"allow_ips": ["10.0.0.0/33"]}, "allow_ips.0"),
    ({"allow_ips": ["10.0.0.1", "example.com"]}, "allow_ips.1"),
    ({"quota_units": -1}, "quota_units"),
    ({"quota_usd": "-0.5"}, "quota_usd"),
    ({"quota_usd": "0.000001"}, "quota_usd"),
    ({"quota_units": 5, "quota_usd": "1"}, "quota_usd"),
    ({"reset_period": "hourly"}, "reset_period"),
    ({"group": "has space"}, "group"),
    ({"models": "gpt-4o"}, "models"),
    *[
        ({name: bad}, name)
        for name, huge in (
            ("rpm_limit", 1_000_001),
            ("tpm_limit", 10_000_000_001),
            ("max_concurrency", 1_001),
        )
        for bad in (-1, 0, 2.5, 5.0, "5", True, [5], {"n": 5}, huge, 10**40)
    ],
]


@pytest.mark.parametrize(("payload", "param"), TOKEN_CREATION)
def test_bad_token_creation_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "mk", "POST", "/tokens", payload, param)


@pytest.mark.parametrize(("payload", "param"), TOKEN_CREATION[:10])
def test_bad_token_creation_by_admin_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "admin", "POST", "/tokens?account_id={account}", payload, param)


def test_a_whole_batch_is_refused_when_its_options_are_bad(world: World) -> None:
    # count is valid, one option is not: none of the 50 tokens may appear
    expect_refused(
        world, "mk", "POST", "/tokens", {"count": 50, "allow_ips": ["bad"]}, "allow_ips.0"
    )


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{", MISSING),
        (b'"x"', MISSING),
        ({"count": 2}, "count"),
        ({"key": "sk-x"}, "key"),
        ({"name": None}, "name"),
        ({"status": None}, "status"),
        ({"status": "expired"}, "status"),
        ({"reset_period": None}, "reset_period"),
        ({"group": None}, "group"),
        ({"models": None}, "models"),
        ({"allow_ips": None}, "allow_ips"),
        ({"allow_ips": ["::g"]}, "allow_ips.0"),
        ({"expires_at": PAST}, "expires_at"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": None}, "expires_in_days"),  # null means never only for expires_at
        ({"quota_units": -1}, "quota_units"),
        ({"quota_units": 1, "quota_usd": "1"}, "quota_usd"),
        ({"quota_usd": "1.0000001"}, "quota_usd"),
        ({"name": "ok", "status": "bogus"}, "status"),  # one bad field refuses the whole patch
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"tpm_limit": -5}, "tpm_limit"),
        ({"max_concurrency": 1.5}, "max_concurrency"),
        ({"max_concurrency": "3"}, "max_concurrency"),
        ({"rpm_limit": 10, "tpm_limit": 10**12}, "tpm_limit"),  # one bad limit refuses all
    ],
)
def test_bad_token_patch_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "mk", "PATCH", "/tokens/{token}", payload, param)


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=abc", "limit"),
        ("?limit=2.5", "limit"),
        ("?status=expiredd", "status"),
        ("?status=", "status"),
        ("?statuss=enabled", "statuss"),
        ("?cursor=%%%", "cursor"),
        ("?cursor=bm90LWpzb24", "cursor"),  # base64 of "not-json"
        ("?cursor=WzFd", "cursor"),  # base64 of "[1]"
        ("?cursor=eyJhIjoxfQ", "cursor"),  # base64 of {"a":1}
    ],
)
def test_bad_token_list_query_is_refused(world: World, query: str, param: str) -> None:
    expect_refused(world, "mk", "GET", "/tokens" + query, None, param)


def test_a_cursor_from_another_accounts_listing_is_refused(world: World) -> None:
    cursor = cursor_of(
        {"id": {"S": "A" * 16}, "account_id": {"S": world.other_account}, "created_at": {"N": "1"}}
    )
    expect_refused(world, "mk", "GET", f"/tokens?cursor={cursor}", None, "cursor")


@pytest.mark.parametrize(
    "rest",
    [
        {},
        {"id": {"S": "x"}},
        {"id": {"S": "x"}, "created_at": {"N": "soon"}},
        {"id": {"N": "1"}, "created_at": {"N": "1"}},
        {"id": {"S": "x"}, "created_at": {"S": "1"}},
        {"id": {"S": "x"}, "created_at": {"N": "1"}, "extra": {"S": "y"}},
    ],
)
def test_a_forged_cursor_is_refused_as_a_bad_cursor(world: World, rest: dict[str, Any]) -> None:
    # GIVEN a cursor naming the caller's own account but not shaped like a listing position
    cursor = cursor_of({"account_id": {"S": world.account}, **rest})
    expect_refused(world, "mk", "GET", f"/tokens?cursor={cursor}", None, "cursor")


def test_an_account_listing_cursor_is_refused_by_the_token_listing(world: World) -> None:
    _, page = world.api.admin("GET", "/admin/accounts?limit=1")
    assert page["next_cursor"]
    expect_refused(world, "mk", "GET", f"/tokens?cursor={page['next_cursor']}", None, "cursor")


def test_a_token_listing_cursor_is_refused_by_the_account_listing(world: World) -> None:
    world.api.call("POST", "/tokens", key=world.mk, body={"count": 2})
    _, page = world.api.call("GET", "/tokens?limit=1", key=world.mk)
    assert page["next_cursor"]
    expect_refused(
        world, "admin", "GET", f"/admin/accounts?cursor={page['next_cursor']}", None, "cursor"
    )


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?page=2", "page"),
        ("?cursor=!!", "cursor"),
        ("?cursor=eyJpZCI6eyJTIjoiYSJ9fQ", "cursor"),  # {"id":{"S":"a"}}: no kind
    ],
)
def test_bad_account_list_query_is_refused(world: World, query: str, param: str) -> None:
    expect_refused(world, "admin", "GET", "/admin/accounts" + query, None, param)


def test_a_forged_account_cursor_of_the_right_kind_is_refused(world: World) -> None:
    cursor = cursor_of({"kind": {"S": "account"}, "id": {"S": "x"}})
    expect_refused(world, "admin", "GET", f"/admin/accounts?cursor={cursor}", None, "cursor")


def test_unknown_query_parameter_on_token_creation_is_refused(world: World) -> None:
    expect_refused(world, "mk", "POST", "/tokens?dry_run=1", {"name": "x"}, "dry_run")


def test_admin_token_routes_need_account_id(world: World) -> None:
    expect_refused(world, "admin", "GET", "/tokens", None, "account_id")
    expect_refused(world, "admin", "POST", "/tokens", {"name": "x"}, "account_id")
    expect_refused(world, "admin", "PATCH", "/tokens/{token}", {"name": "x"}, "account_id")


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{", MISSING),
        ({}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"name": "x", "quota_units": -1}, "quota_units"),
        ({"name": "x", "quota_units": 1, "quota_usd": "1"}, "quota_usd"),
        ({"name": "x", "quota_usd": "0.0000001"}, "quota_usd"),
        ({"name": "x", "unlimited": True, "quota_units": 1}, "unlimited"),
        ({"name": "x", "status": "enabled"}, "status"),
    ],
)
def test_bad_account_creation_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "admin", "POST", "/admin/accounts", payload, param)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"status": "closed"}, "status"),
        ({"name": None}, "name"),
        ({"status": None}, "status"),
        ({"quota_units": 5}, "quota_units"),
    ],
)
def test_bad_account_patch_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "admin", "PATCH", "/admin/accounts/{account}", payload, param)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({}, "quota_units"),
        ({"quota_units": 0}, "quota_units"),
        ({"quota_usd": "0"}, "quota_usd"),
        ({"quota_units": -5}, "quota_units"),
        ({"quota_units": 1, "quota_usd": "1"}, "quota_usd"),
        ({"quota_units": 1, "note": "n" * 257}, "note"),
    ],
)
def test_bad_credit_is_refused(world: World, payload: Any, param: Any) -> None:
    expect_refused(world, "admin", "POST", "/admin/accounts/{account}/credit", payload, param)


@pytest.mark.parametrize(
    ("method", "path", "payload"),
    [
        ("GET", "/tokens/{token}?verbose=1", None),
        ("PATCH", "/tokens/{token}?force=1", {"name": "x"}),
        ("DELETE", "/tokens/{token}?force=1", None),
        ("POST", "/tokens/{token}/regenerate?force=1", None),
        ("GET", "/account?verbose=1", None),
    ],
)
def test_unknown_query_parameters_are_refused_on_every_token_route(
    world: World, method: str, path: str, payload: Any
) -> None:
    param = path.split("?")[1].split("=")[0]
    expect_refused(world, "mk", method, path, payload, param)


# Hostile input: limits shared with the relay (chalicelib.core.payloads) ----------------------
DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.parametrize(
    ("who", "method", "path", "payload", "param"),
    [
        ("admin", "POST", "/admin/accounts", '{"name":' + DEEP + "}", MISSING),
        ("admin", "POST", "/admin/accounts", "[" * 100 + "]" * 100, MISSING),
        ("admin", "POST", "/admin/accounts", b'{"name":"a\\ud800"}', "name"),
        ("admin", "POST", "/admin/accounts", b'{"name":"a","\\udc00":1}', MISSING),
        ("admin", "POST", "/admin/accounts", b'{"name":"a","quota_units":NaN}', MISSING),
        (
            "admin",
            "POST",
            "/admin/accounts/{account}/credit",
            b'{"quota_units":1e999}',
            "quota_units",
        ),
        ("mk", "POST", "/tokens", '{"models":' + DEEP + "}", MISSING),
        ("mk", "PATCH", "/tokens/{token}", b'{"models":["gpt\\udfff"]}', "models.0"),
        ("admin", "POST", "/admin/channels", '{"name":"c","models":' + DEEP + "}", MISSING),
        ("admin", "PATCH", "/admin/channels/demo", b'{"name":"\\ud800"}', "name"),
    ],
)
def test_hostile_management_bodies_are_400(
    world: World, who: str, method: str, path: str, payload: Any, param: Any
) -> None:
    expect_refused(world, who, method, path, payload, param)


LONG_ID = "c" * 3000


@pytest.mark.parametrize(
    ("who", "method", "path", "payload"),
    [
        ("admin", "GET", f"/admin/channels/{LONG_ID}", None),
        ("admin", "PATCH", f"/admin/channels/{LONG_ID}", {"name": "x"}),
        ("admin", "DELETE", f"/admin/channels/{LONG_ID}", None),
        ("admin", "GET", f"/admin/accounts/{LONG_ID}", None),
        ("admin", "PATCH", f"/admin/accounts/{LONG_ID}", {"name": "x"}),
        ("admin", "POST", f"/admin/accounts/{LONG_ID}/credit", {"quota_units": 1}),
        ("mk", "GET", f"/tokens/{LONG_ID}", None),
        ("mk", "PATCH", f"/tokens/{LONG_ID}", {"name": "x"}),
        ("mk", "DELETE", f"/tokens/{LONG_ID}", None),
        ("mk", "POST", f"/tokens/{LONG_ID}/regenerate", None),
    ],
)
def test_an_overlong_path_id_is_a_plain_404(
    world: World, who: str, method: str, path: str, payload: Any
) -> None:
    # An id no item can have is as unknown as any other (tests/functional/test_security.py).
    expect_refused(world, who, method, path, payload, "id", status=404)


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [
        (f"/admin/models/{LONG_ID}", {"usd_per_request": "1"}, "model"),
        (f"/admin/groups/{LONG_ID}", {"ratio": "1"}, "group"),
    ],
)
def test_an_overlong_name_for_a_new_item_is_400(
    world: World, path: str, payload: Any, param: str
) -> None:
    expect_refused(world, "admin", "PUT", path, payload, param)


@pytest.mark.parametrize(
    "rest",
    [
        {"request_id": {"S": "x"}},
        {"request_id": {"S": "x"}, "created_ms": {"N": "soon"}},
        {"request_id": {"N": "1"}, "created_ms": {"N": "1"}},
        {"request_id": {"S": "x"}, "created_ms": {"S": "1"}},
        {"request_id": {"S": "x" * 3000}, "created_ms": {"N": "1"}},
        {"request_id": {"S": "x"}, "created_ms": {"N": "1"}, "extra": {"S": "y"}},
    ],
)
def test_a_forged_logs_cursor_is_refused_as_a_bad_cursor(
    world: World, rest: dict[str, Any]
) -> None:
    # GIVEN a cursor naming the caller's own account but not shaped like a usage-log position
    cursor = cursor_of({"account_id": {"S": world.account}, **rest})
    expect_refused(world, "mk", "GET", f"/logs?cursor={cursor}", None, "cursor")
