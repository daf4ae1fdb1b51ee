"""Budget alerts: settings per account and per key, and the operator's dead letters.

``/account/alerts`` and ``/tokens/{token_id}/alerts`` are the management key's (an operator may
call them on ``?account_id=``); ``/admin/accounts/{account_id}/alerts`` are the operator's
equivalents. A ``PUT`` that creates the settings, and every ``rotate-secret``, answers the
signing secret once. The use cases are ``chalicelib.services.alerts``.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import auth, web

bp = Blueprint(__name__)
route = web.routes(bp)


def _own_account() -> str:
    web.only_query(bp, "account_id")
    return auth.caller(bp).account_for(web.query(bp, "account_id"))


def _operator_on(account_id: str) -> str:
    auth.operator(bp)
    web.only_query(bp)
    return account_id


def _put(account_id: str, token_id: str | None = None) -> Response:
    from chalicelib.services import alerts, schemas

    body = schemas.parse(schemas.AlertSettings, web.raw_body(bp))
    if token_id is None:
        return web.json_response(alerts.put_alerts("account", account_id, body, web.now()))
    return web.json_response(alerts.put_alerts("token", account_id, body, web.now(), token_id))


# The caller's account ---------------------------------------------------------------------------
@route("/account/alerts", methods=["GET"])
def get_account_alerts() -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.get_alerts("account", _own_account())


@route("/account/alerts", methods=["PUT"])
def put_account_alerts() -> Response:
    return _put(_own_account())


@route("/account/alerts", methods=["DELETE"])
def delete_account_alerts() -> Response:
    from chalicelib.services import alerts

    alerts.delete_alerts("account", _own_account())
    return Response(body="", status_code=204)


@route("/account/alerts/rotate-secret", methods=["POST"])
def rotate_account_alert_secret() -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.rotate_secret("account", _own_account(), web.now())


# One key of the caller's account ----------------------------------------------------------------
@route("/tokens/{token_id}/alerts", methods=["GET"])
def get_token_alerts(token_id: str) -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.get_alerts("token", _own_account(), token_id)


@route("/tokens/{token_id}/alerts", methods=["PUT"])
def put_token_alerts(token_id: str) -> Response:
    return _put(_own_account(), token_id)


@route("/tokens/{token_id}/alerts", methods=["DELETE"])
def delete_token_alerts(token_id: str) -> Response:
    from chalicelib.services import alerts

    alerts.delete_alerts("token", _own_account(), token_id)
    return Response(body="", status_code=204)


@route("/tokens/{token_id}/alerts/rotate-secret", methods=["POST"])
def rotate_token_alert_secret(token_id: str) -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.rotate_secret("token", _own_account(), web.now(), token_id)


# The operator's ---------------------------------------------------------------------------------
@route("/admin/accounts/{account_id}/alerts", methods=["GET"])
def admin_get_account_alerts(account_id: str) -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.get_alerts("account", _operator_on(account_id))


@route("/admin/accounts/{account_id}/alerts", methods=["PUT"])
def admin_put_account_alerts(account_id: str) -> Response:
    return _put(_operator_on(account_id))


@route("/admin/accounts/{account_id}/alerts", methods=["DELETE"])
def admin_delete_account_alerts(account_id: str) -> Response:
    from chalicelib.services import alerts

    alerts.delete_alerts("account", _operator_on(account_id))
    return Response(body="", status_code=204)


@route("/admin/accounts/{account_id}/alerts/rotate-secret", methods=["POST"])
def admin_rotate_account_alert_secret(account_id: str) -> dict[str, Any]:
    from chalicelib.services import alerts

    return alerts.rotate_secret("account", _operator_on(account_id), web.now())


@route("/admin/alerts/dead-letters", methods=["GET"])
def list_alert_dead_letters() -> dict[str, Any]:
    from chalicelib.services import alerts, management

    auth.operator(bp)
    web.only_query(bp, "limit", "cursor")
    limit = management.parse_limit(web.query(bp, "limit"))
    return alerts.list_dead_letters(limit, web.query(bp, "cursor"))
