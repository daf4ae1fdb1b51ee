"""Each operator-facing route has its scope in chalicelib/api/scopes.py, enforced and documented."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import app
from chalicelib.api import openapi
from chalicelib.api import scopes as route_scopes
from chalicelib.core.scopes import ALL_SCOPES

# Routes no operator key calls: public, the console's static files, the relay (sk- keys only).
NOT_FOR_OPERATORS = ("/health", "/openapi.json", "/console", openapi.CATCH_ALL)


def _routes() -> set[tuple[str, str]]:
    return {(path, method) for path, methods in app.routes.items() for method in methods}


def _for_operators(path: str) -> bool:
    return not (
        path in NOT_FOR_OPERATORS or path.startswith("/console/") or path.startswith("/v1/")
    )


def test_every_admin_and_account_route_declares_its_scope() -> None:
    # GIVEN every route of the Chalice app
    routes = _routes()

    # WHEN each one an operator can call is looked up in the scope table
    admin_missing = sorted(
        r for r in routes if r[0].startswith("/admin/") and r not in route_scopes.ADMIN_ROUTES
    )
    account_missing = sorted(
        r
        for r in routes
        if _for_operators(r[0])
        and not r[0].startswith("/admin/")
        and r not in route_scopes.ACCOUNT_ROUTES
    )

    # THEN none is missing, no entry names a route that does not exist, every scope is real
    assert admin_missing == [], f"declare a scope in chalicelib/api/scopes.py: {admin_missing}"
    assert account_missing == [], f"declare a scope in chalicelib/api/scopes.py: {account_missing}"
    assert sorted(set(route_scopes.ROUTE_SCOPES) - routes) == []
    assert set(route_scopes.ROUTE_SCOPES.values()) <= ALL_SCOPES
    assert set(route_scopes.ROUTE_SCOPES.values()) == ALL_SCOPES  # each scope opens something


def test_the_document_shows_each_operations_scope(api: Any) -> None:
    # GIVEN the served OpenAPI document
    document = api.call("GET", "/openapi.json")[1]

    # WHEN each operation's security requirements are read
    required = {
        (path, method.upper()): operation["security"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }

    # THEN each scoped route offers the operator key with exactly its scope, and no other does
    for route, security in required.items():
        scope = route_scopes.ROUTE_SCOPES.get(route)
        offered = [req[openapi.OPERATOR_KEY] for req in security if openapi.OPERATOR_KEY in req]
        assert offered == ([[scope]] if scope else []), route
    assert required[("/admin/resets/run", "POST")] == [
        {"adminKey": []},
        {openapi.OPERATOR_KEY: ["resets:run"]},
    ]
    assert openapi.OPERATOR_KEY in document["components"]["securitySchemes"]


def _fill(path: str) -> str:
    return path.replace("{account_id}", "A" * 16).replace("{", "").replace("}", "")


@pytest.mark.parametrize(("path", "method"), sorted(route_scopes.ROUTE_SCOPES))
def test_a_key_holding_every_other_scope_is_refused_the_route(
    api: Any, path: str, method: str
) -> None:
    # GIVEN an operator key holding every scope but the one this route needs
    needed = route_scopes.ROUTE_SCOPES[(path, method)]
    others = sorted(ALL_SCOPES - {needed})
    status, created = api.admin("POST", "/admin/keys", {"name": "all-but", "scopes": others})
    assert status == 201, created

    # WHEN it calls the route (as an operator, naming an account where one is needed)
    query = "" if path.startswith("/admin/") else "?account_id=" + "A" * 16
    status, error = api.call(method, _fill(path) + query, key=created["key"], body={})

    # THEN 403 insufficient_scope, naming the scope the route needs
    assert status == 403, error
    assert error["error"]["code"] == "insufficient_scope"
    assert f"'{needed}'" in error["error"]["message"]
    assert created["key"] not in json.dumps(error)
