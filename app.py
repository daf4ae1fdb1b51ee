"""Sluice: routes, schedules and their wiring. No business logic lives here.

Management modules (pydantic schemas, use cases) are imported on first use, so the relay's cold
start does not pay for them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from chalice import Chalice, Rate, Response

from chalicelib.api import auth, console, web
from chalicelib.api import config_routes as routes_config
from chalicelib.api import reset_routes as routes_resets
from chalicelib.store import configure_store

app = Chalice(app_name="sluice")
route = web.routes(app)
configure_store()
app.register_blueprint(console.bp)  # /console: the web console's static files
app.register_blueprint(routes_config.bp)  # /admin/channels, /admin/models, /admin/groups
app.register_blueprint(routes_resets.bp)  # /admin/resets/run and the hourly reset_quotas


def _management() -> ModuleType:
    from chalicelib.services import management

    return management


def _schemas() -> ModuleType:
    from chalicelib.services import schemas

    return schemas


def _body(schema_name: str) -> Any:
    schemas = _schemas()
    return schemas.parse(getattr(schemas, schema_name), web.raw_body(app))


def _caller() -> auth.Caller:
    return auth.authenticate(web.header(app, "authorization"))


def _admin() -> None:
    auth.require_admin(web.header(app, "authorization"))


# Health & docs --------------------------------------------------------------------------------
@route("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@route("/openapi.json")
def openapi() -> dict[str, Any]:
    from chalicelib.api.openapi import document

    return document(app)


# Admin: accounts ------------------------------------------------------------------------------
@route("/admin/accounts", methods=["POST"])
def create_account() -> Response:
    _admin()
    body = _body("CreateAccount")
    return web.json_response(_management().create_account(body, web.now()), status=201)


@route("/admin/accounts", methods=["GET"])
def list_accounts() -> dict[str, Any]:
    _admin()
    web.only_query(app, "limit", "cursor")
    m = _management()
    return m.list_accounts(m.parse_limit(web.query(app, "limit")), web.query(app, "cursor"))


@route("/admin/accounts/{account_id}", methods=["GET"])
def get_account(account_id: str) -> dict[str, Any]:
    _admin()
    web.only_query(app)
    return _management().get_account(account_id)


@route("/admin/accounts/{account_id}", methods=["PATCH"])
def patch_account(account_id: str) -> dict[str, Any]:
    _admin()
    web.only_query(app)
    return _management().patch_account(account_id, _body("PatchAccount"))


@route("/admin/accounts/{account_id}/credit", methods=["POST"])
def credit_account(account_id: str) -> dict[str, Any]:
    _admin()
    web.only_query(app)
    return _management().credit_account(account_id, _body("CreditAccount"), web.now())


@route("/admin/accounts/{account_id}/management-key", methods=["POST"])
def regenerate_management_key(account_id: str) -> dict[str, Any]:
    _admin()
    web.only_query(app)
    return _management().regenerate_management_key(account_id)


# Account (management key) ---------------------------------------------------------------------
@route("/account", methods=["GET"])
def own_account() -> dict[str, Any]:
    caller = _caller()
    web.only_query(app, "account_id")
    return _management().get_account(caller.account_for(web.query(app, "account_id")))


@route("/tokens", methods=["POST"])
def create_tokens() -> Response:
    caller = _caller()
    web.only_query(app, "account_id")
    account_id = caller.account_for(web.query(app, "account_id"))
    body = _body("CreateTokens")
    return web.json_response(_management().create_tokens(account_id, body, web.now()), status=201)


@route("/tokens", methods=["GET"])
def list_tokens() -> dict[str, Any]:
    caller = _caller()
    web.only_query(app, "account_id", "limit", "cursor", "status")
    m = _management()
    return m.list_tokens(
        caller.account_for(web.query(app, "account_id")),
        m.parse_limit(web.query(app, "limit")),
        web.query(app, "cursor"),
        web.query(app, "status"),
        web.now(),
    )


@route("/tokens/{token_id}", methods=["GET"])
def get_token(token_id: str) -> dict[str, Any]:
    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    return _management().get_token(account_id, token_id, web.now())


@route("/tokens/{token_id}", methods=["PATCH"])
def patch_token(token_id: str) -> dict[str, Any]:
    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    return _management().patch_token(account_id, token_id, _body("PatchToken"), web.now())


@route("/tokens/{token_id}", methods=["DELETE"])
def delete_token(token_id: str) -> Response:
    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    _management().delete_token(account_id, token_id)
    return Response(body="", status_code=204)


@route("/tokens/{token_id}/regenerate", methods=["POST"])
def regenerate_token(token_id: str) -> dict[str, Any]:
    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    return _management().regenerate_token(account_id, token_id, web.now())


# OpenAI-compatible relay (Bearer sk-…) --------------------------------------------------------
def _relay(kind: str) -> Response:
    from chalicelib.services import gateway

    result = gateway.relay_call(
        kind,  # type: ignore[arg-type]
        web.raw_body(app),
        web.header(app, "authorization"),
        web.source_ip(app),
        web.request_id(app),
    )
    return Response(
        body=result.body.decode("utf-8"),
        status_code=result.status,
        headers={"Content-Type": result.content_type, **result.headers},
    )


@route("/v1/chat/completions", methods=["POST"])
def chat_completions() -> Response:
    return _relay("chat")


@route("/v1/embeddings", methods=["POST"])
def embeddings() -> Response:
    return _relay("embeddings")


@route("/v1/models", methods=["GET"])
def models() -> dict[str, Any]:
    from chalicelib.services import gateway

    token = gateway.authenticate(web.header(app, "authorization")).token
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "sluice"}
            for m in gateway.models_for(token)
        ],
    }


@route("/v1/key", methods=["GET"])
def own_key() -> dict[str, Any]:
    from chalicelib.services import billing

    return billing.key_json(web.header(app, "authorization"), web.now())


@route("/v1/dashboard/billing/subscription", methods=["GET"])
def billing_subscription() -> dict[str, Any]:
    from chalicelib.services import billing

    return billing.subscription(web.header(app, "authorization"), web.now())


@route("/v1/dashboard/billing/usage", methods=["GET"])
def billing_usage() -> dict[str, Any]:
    from chalicelib.services import billing

    return billing.usage(web.header(app, "authorization"), web.now())


# Logs and usage (management key, or admin with ?account_id=) ----------------------------------
@route("/logs", methods=["GET"])
def logs() -> dict[str, Any]:
    from chalicelib.services import reports

    caller = _caller()
    account_id = caller.account_for(web.query(app, "account_id"))
    web.only_query(app, "account_id", "limit", "cursor", "start", "end", "token_id", "model")
    return reports.logs(
        account_id,
        _management().parse_limit(web.query(app, "limit")),
        web.query(app, "cursor"),
        start=web.query(app, "start"),
        end=web.query(app, "end"),
        token_id=web.query(app, "token_id"),
        model=web.query(app, "model"),
        now=web.now(),
        show_channel=caller.is_admin,
    )


@route("/usage", methods=["GET"])
def usage() -> dict[str, Any]:
    from chalicelib.services import reports

    account_id = _caller().account_for(web.query(app, "account_id"))
    web.only_query(app, "account_id", "start", "end", "group_by")
    return reports.usage(
        account_id,
        start=web.query(app, "start"),
        end=web.query(app, "end"),
        group_by=web.query(app, "group_by"),
        now=web.now(),
    )


# Scheduled jobs -------------------------------------------------------------------------------
@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_reservations")
def sweep_reservations(event: Any) -> dict[str, Any]:
    from chalicelib.services import sweeper

    context = getattr(event, "context", None)
    remaining = (
        (lambda: context.get_remaining_time_in_millis() / 1000) if context is not None else None
    )
    run = sweeper.sweep(web.now(), remaining)
    return {"refunded": run.refunded, "skipped": run.skipped, "complete": run.complete}


# Anything else ----------------------------------------------------------------------------------
# API Gateway (and chalice local) answer unknown paths themselves with a message that quotes the
# request's Authorization header, i.e. the caller's key. A greedy route keeps every unknown path
# inside the app: an OpenAI-shaped 404 that repeats nothing.
@route("/{proxy+}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found() -> Response:
    from chalicelib.core.errors import NotFound

    raise NotFound("Unknown path. See /openapi.json for the routes Sluice serves.")
