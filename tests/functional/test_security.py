"""Authentication, key kinds, account isolation and secrets kept out of responses and logs."""

from __future__ import annotations

import json
import logging
import os
import re
from typing import Any

import pytest

SECRET_SHAPE = re.compile(r"(?:sk|mk)-[A-Za-z0-9]{48}")
NO_SUCH_TOKEN = "ZZZZZZZZZZZZZZZZ"

MANAGEMENT_ROUTES = [
    ("GET", "/account", None),
    ("POST", "/tokens", {"name": "x"}),
    ("GET", "/tokens", None),
    ("GET", "/tokens/{token}", None),
    ("PATCH", "/tokens/{token}", {"name": "x"}),
    ("DELETE", "/tokens/{token}", None),
    ("POST", "/tokens/{token}/regenerate", None),
]
ADMIN_ROUTES = [
    ("POST", "/admin/accounts", {"name": "x"}),
    ("GET", "/admin/accounts", None),
    ("GET", "/admin/accounts/{account}", None),
    ("PATCH", "/admin/accounts/{account}", {"name": "x"}),
    ("POST", "/admin/accounts/{account}/credit", {"quota_units": 5}),
]


def snapshot() -> dict[str, list[str]]:
    from chalicelib.store.models import TABLES

    return {
        name: sorted(json.dumps(item.serialize(), sort_keys=True) for item in model.scan())
        for name, model in TABLES.items()
    }


def admin_key() -> str:
    return os.environ["SLUICE_ADMIN_KEY"]


class Tenant:
    def __init__(self, api: Any, name: str) -> None:
        created = api.new_account(name, quota_units=1_000)
        self.api = api
        self.id: str = created["account"]["id"]
        self.mk: str = created["management_key"]
        self.sk: str = created["default_token"]["key"]
        status, body = api.call("POST", "/tokens", key=self.mk, body={"name": f"{name}-t"})
        assert status == 201
        self.token: str = body["data"][0]["id"]
        self.token_key: str = body["data"][0]["key"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.api.call(method, path, key=self.mk, body=body)

    def fill(self, path: str) -> str:
        return path.format(token=self.token, account=self.id)


@pytest.fixture
def alice(api: Any) -> Tenant:
    return Tenant(api, "alice")


@pytest.fixture
def bob(api: Any) -> Tenant:
    return Tenant(api, "bob")


# --- 401 / 403 ------------------------------------------------------------------------------


BAD_AUTHORIZATIONS = [
    None,
    "",
    "Bearer",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer not-a-key",
    "Bearer mk-" + "A" * 48,  # well-shaped, no such account
    "Bearer " + "x" * 3000,
]


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT_ROUTES + ADMIN_ROUTES)
def test_missing_or_unknown_keys_get_401_and_nothing_is_written(
    api: Any, alice: Tenant, method: str, path: str, body: Any
) -> None:
    before = snapshot()
    for authorization in BAD_AUTHORIZATIONS:
        headers = {} if authorization is None else {"Authorization": authorization}
        status, error = api.call(method, alice.fill(path), body=body, headers=headers)
        assert status == 401, authorization
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["code"] == "invalid_api_key"
    assert snapshot() == before


def test_a_wrong_secret_and_an_unknown_account_get_the_same_401(api: Any, alice: Tenant) -> None:
    # GIVEN alice's real account id with a wrong secret, and an account id that does not exist
    wrong_secret = alice.mk[:19] + ("a" if alice.mk[19] != "a" else "b") + alice.mk[20:]
    unknown = "mk-" + "Q" * 16 + alice.mk[19:]
    # WHEN both are presented
    first = api.call("GET", "/account", key=wrong_secret)
    second = api.call("GET", "/account", key=unknown)
    # THEN both are the same 401: nothing tells which part was wrong
    assert first[0] == second[0] == 401
    assert first[1] == second[1]
    assert wrong_secret not in json.dumps(first[1])


@pytest.mark.parametrize(("method", "path", "body"), MANAGEMENT_ROUTES + ADMIN_ROUTES)
def test_an_sk_key_on_management_routes_is_403(
    api: Any, alice: Tenant, method: str, path: str, body: Any
) -> None:
    before = snapshot()
    status, error = api.call(method, alice.fill(path), key=alice.sk, body=body)
    assert status == 403
    assert error["error"]["code"] == "wrong_key_kind"
    assert alice.sk not in json.dumps(error)
    assert snapshot() == before


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_an_mk_key_on_admin_routes_is_403(
    api: Any, alice: Tenant, method: str, path: str, body: Any
) -> None:
    before = snapshot()
    status, error = api.call(method, alice.fill(path), key=alice.mk, body=body)
    assert status == 403
    assert error["error"]["type"] == "invalid_request_error"
    assert alice.mk not in json.dumps(error)
    assert snapshot() == before


def test_an_almost_right_admin_key_is_401(api: Any) -> None:
    status, _ = api.call("GET", "/admin/accounts", key=admin_key() + "x")
    assert status == 401
    status, _ = api.call("GET", "/admin/accounts", key=admin_key()[:-1])
    assert status == 401


# --- isolation between accounts ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/tokens/{token}", None),
        ("PATCH", "/tokens/{token}", {"name": "pwned", "status": "disabled"}),
        ("DELETE", "/tokens/{token}", None),
        ("POST", "/tokens/{token}/regenerate", None),
    ],
)
def test_another_accounts_token_looks_exactly_like_a_missing_one(
    alice: Tenant, bob: Tenant, method: str, path: str, body: Any
) -> None:
    # GIVEN bob's management key and alice's token id
    before = snapshot()
    # WHEN bob acts on alice's token, and on an id that does not exist
    theirs = bob.call(method, path.format(token=alice.token), body)
    missing = bob.call(method, path.format(token=NO_SUCH_TOKEN), body)
    # THEN both are the same 404, and alice's token is untouched
    assert theirs[0] == missing[0] == 404
    assert theirs[1] == missing[1]
    assert alice.token not in json.dumps(theirs[1])
    assert snapshot() == before


def test_an_absurdly_long_id_is_a_plain_404(api: Any, alice: Tenant) -> None:
    long_id = "x" * 3000
    for method, path in (
        ("GET", f"/tokens/{long_id}"),
        ("DELETE", f"/tokens/{long_id}"),
        ("POST", f"/tokens/{long_id}/regenerate"),
    ):
        assert alice.call(method, path)[0] == 404, method
    assert api.admin("GET", f"/admin/accounts/{long_id}")[0] == 404
    assert api.admin("PATCH", f"/admin/accounts/{long_id}", {"name": "x"})[0] == 404


def test_listing_shows_only_the_callers_tokens_even_when_asking_for_another_account(
    alice: Tenant, bob: Tenant
) -> None:
    alice.call("POST", "/tokens", {"count": 5})
    for path in ("/tokens?limit=100", f"/tokens?limit=100&account_id={alice.id}"):
        status, body = bob.call("GET", path)
        assert status == 200
        assert {t["account_id"] for t in body["data"]} == {bob.id}
        assert len(body["data"]) == 2


def test_another_accounts_cursor_is_refused(alice: Tenant, bob: Tenant) -> None:
    alice.call("POST", "/tokens", {"count": 3})
    _, page = alice.call("GET", "/tokens?limit=1")
    assert page["next_cursor"]
    status, body = bob.call("GET", f"/tokens?cursor={page['next_cursor']}")
    assert status == 400
    assert body["error"]["param"] == "cursor"
    assert "data" not in body


def test_account_id_in_the_query_cannot_redirect_a_management_key(
    alice: Tenant, bob: Tenant
) -> None:
    from chalicelib.store.models import Token

    # WHEN bob asks for alice's account and creates a token naming her account
    status, body = bob.call("GET", f"/account?account_id={alice.id}")
    assert (status, body["id"]) == (200, bob.id)
    status, body = bob.call("POST", f"/tokens?account_id={alice.id}", {"name": "sneaky"})
    # THEN the token belongs to bob
    assert status == 201
    assert body["data"][0]["account_id"] == bob.id
    assert Token.get(body["data"][0]["id"]).account_id == bob.id
    assert sum(1 for t in Token.scan() if t.account_id == alice.id) == 2


def test_a_disabled_account_cannot_manage_its_tokens(api: Any, alice: Tenant) -> None:
    api.admin("PATCH", f"/admin/accounts/{alice.id}", {"status": "disabled"})
    before = snapshot()
    for method, path, body in MANAGEMENT_ROUTES:
        status, _ = alice.call(method, alice.fill(path), body)
        assert status == 401, (method, path)
    assert snapshot() == before


# --- secrets stay secret ----------------------------------------------------------------------


def test_no_secret_reaches_a_log_line_during_the_whole_lifecycle(
    api: Any, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN every logger captured at DEBUG (botocore, pynamodb, chalice), and ours on stdout
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [admin_key()]
    # WHEN an account and its tokens go through their whole lifecycle, errors included
    created = api.new_account("acme", quota_units=1000)
    mk = created["management_key"]
    secrets += [mk, created["default_token"]["key"]]
    status, body = api.call("POST", "/tokens", key=mk, body={"count": 3, "quota_usd": "1"})
    assert status == 201
    secrets += [t["key"] for t in body["data"]]
    token_id = body["data"][0]["id"]
    assert api.call("GET", "/tokens?limit=2", key=mk)[0] == 200
    assert api.call("GET", f"/tokens/{token_id}", key=mk)[0] == 200
    assert api.call("PATCH", f"/tokens/{token_id}", key=mk, body={"status": "disabled"})[0] == 200
    status, body = api.call("POST", f"/tokens/{token_id}/regenerate", key=mk)
    assert status == 200
    secrets.append(body["key"])
    assert api.call("DELETE", f"/tokens/{token_id}", key=mk)[0] == 204
    assert (
        api.admin("POST", f"/admin/accounts/{created['account']['id']}/credit", {"quota_units": 5})[
            0
        ]
        == 200
    )
    assert api.call("GET", "/tokens", key=body["key"])[0] == 403  # sk- on a management route
    wrong = mk[:-1] + ("1" if mk.endswith("0") else "0")  # (a key ending in 0 stayed right)
    assert api.call("GET", "/account", key=wrong)[0] == 401  # wrong secret
    assert api.call("GET", "/tokens", key=mk, raw=b"")[0] == 200
    assert api.call("POST", "/tokens", key=mk, raw=b"{bad")[0] == 400
    assert api.call("GET", "/admin/accounts", key=mk)[0] == 403
    # THEN logging did happen, but no record carries any secret, formatted or raw
    assert caplog.records, "the flow should have logged something at DEBUG"
    logged = caplog.text + "".join(repr(r.args) + str(r.msg) for r in caplog.records)
    logged += capsys.readouterr().out
    for secret in secrets:
        assert secret not in logged
    assert not SECRET_SHAPE.search(logged)


def test_no_response_of_the_lifecycle_carries_a_secret_except_where_it_is_issued(
    api: Any, alice: Tenant
) -> None:
    secrets = [admin_key(), alice.mk, alice.sk, alice.token_key]
    responses = [
        api.admin("GET", "/admin/accounts?limit=100"),
        api.admin("GET", f"/admin/accounts/{alice.id}"),
        api.admin("PATCH", f"/admin/accounts/{alice.id}", {"name": "renamed"}),
        api.admin("POST", f"/admin/accounts/{alice.id}/credit", {"quota_units": 1}),
        alice.call("GET", "/account"),
        alice.call("GET", "/tokens?limit=100"),
        alice.call("GET", f"/tokens/{alice.token}"),
        alice.call("PATCH", f"/tokens/{alice.token}", {"name": "n"}),
        alice.call("PATCH", f"/tokens/{alice.token}", {"name": "x" * 100}),
        alice.call("GET", f"/tokens/{NO_SUCH_TOKEN}"),
        api.call("GET", "/tokens", key=alice.sk),
        api.call("GET", "/admin/accounts", key=alice.mk),
    ]
    for status, body in responses:
        text = json.dumps(body)
        for secret in secrets:
            assert secret not in text, (status, body)
        assert not SECRET_SHAPE.search(text)


def test_error_responses_carry_the_security_headers(client: Any, alice: Tenant) -> None:
    response = client.http.get(
        f"/tokens/{NO_SUCH_TOKEN}", headers={"Authorization": f"Bearer {alice.mk}"}
    )
    assert response.status_code == 404
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_response_that_issues_a_key_is_not_cacheable(client: Any, alice: Tenant) -> None:
    response = client.http.post(
        "/tokens",
        headers={"Authorization": f"Bearer {alice.mk}", "Content-Type": "application/json"},
        body=b"{}",
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
