"""Which scope each route needs from an operator: the one table ``auth`` and the OpenAPI read.

``ADMIN_ROUTES`` are the ``/admin/*`` routes, for the admin key or an operator key (``ops-``)
holding the scope. ``ACCOUNT_ROUTES`` are the routes an account calls with its management key;
an operator may call them too, on ``?account_id=``, with the scope listed. A route missing here
is refused to every operator key (only the admin key holds "no scope"), and a test walks the
app's route table so that no route is ever missing.
"""

from __future__ import annotations

from chalice import Blueprint, Chalice

ADMIN_ROUTES: dict[tuple[str, str], str] = {
    # Accounts
    ("/admin/accounts", "POST"): "accounts:write",
    ("/admin/accounts", "GET"): "accounts:read",
    ("/admin/accounts/{account_id}", "GET"): "accounts:read",
    ("/admin/accounts/{account_id}", "PATCH"): "accounts:write",
    ("/admin/accounts/{account_id}/credit", "POST"): "accounts:write",
    ("/admin/accounts/{account_id}/credits", "GET"): "accounts:read",
    ("/admin/accounts/{account_id}/management-key", "POST"): "accounts:write",
    # On-demand jobs
    ("/admin/resets/run", "POST"): "resets:run",
    ("/admin/sweeper/run", "POST"): "sweeper:run",
    ("/admin/ledger/verify", "POST"): "ledger:verify",
    # Relay configuration
    ("/admin/channels", "POST"): "config:write",
    ("/admin/channels", "GET"): "config:read",
    ("/admin/channels/{channel_id}", "GET"): "config:read",
    ("/admin/channels/{channel_id}", "PATCH"): "config:write",
    ("/admin/channels/{channel_id}", "DELETE"): "config:write",
    ("/admin/models", "GET"): "config:read",
    ("/admin/models/{model}", "PUT"): "config:write",
    ("/admin/models/{model}", "DELETE"): "config:write",
    ("/admin/groups", "GET"): "config:read",
    ("/admin/groups/{group}", "PUT"): "config:write",
    # Operator keys
    ("/admin/keys", "POST"): "keys:admin",
    ("/admin/keys", "GET"): "keys:admin",
    ("/admin/keys/{key_id}", "GET"): "keys:admin",
    ("/admin/keys/{key_id}", "PATCH"): "keys:admin",
    ("/admin/keys/{key_id}", "DELETE"): "keys:admin",
    # Budget alerts
    ("/admin/accounts/{account_id}/alerts", "GET"): "accounts:read",
    ("/admin/accounts/{account_id}/alerts", "PUT"): "accounts:write",
    ("/admin/accounts/{account_id}/alerts", "DELETE"): "accounts:write",
    ("/admin/accounts/{account_id}/alerts/rotate-secret", "POST"): "accounts:write",
    ("/admin/alerts/dead-letters", "GET"): "accounts:read",
}

ACCOUNT_ROUTES: dict[tuple[str, str], str] = {
    ("/account", "GET"): "accounts:read",
    ("/tokens", "POST"): "accounts:write",
    ("/tokens", "GET"): "logs:read",
    ("/tokens/{token_id}", "GET"): "logs:read",
    ("/tokens/{token_id}", "PATCH"): "accounts:write",
    ("/tokens/{token_id}", "DELETE"): "accounts:write",
    ("/tokens/{token_id}/regenerate", "POST"): "accounts:write",
    ("/logs", "GET"): "logs:read",
    ("/usage", "GET"): "logs:read",
    ("/audit", "GET"): "audit:read",
    ("/account/alerts", "GET"): "accounts:read",
    ("/account/alerts", "PUT"): "accounts:write",
    ("/account/alerts", "DELETE"): "accounts:write",
    ("/account/alerts/rotate-secret", "POST"): "accounts:write",
    ("/tokens/{token_id}/alerts", "GET"): "accounts:read",
    ("/tokens/{token_id}/alerts", "PUT"): "accounts:write",
    ("/tokens/{token_id}/alerts", "DELETE"): "accounts:write",
    ("/tokens/{token_id}/alerts/rotate-secret", "POST"): "accounts:write",
}

ROUTE_SCOPES: dict[tuple[str, str], str] = {**ADMIN_ROUTES, **ACCOUNT_ROUTES}


def of_request(app: Chalice | Blueprint) -> tuple[tuple[str, str], str | None]:
    """The current request's route (as declared, e.g. ``/tokens/{token_id}``) and its scope."""
    request = app.current_request
    assert request is not None, "only called while handling a request"
    route = (str((request.context or {}).get("resourcePath") or ""), str(request.method))
    return route, ROUTE_SCOPES.get(route)
