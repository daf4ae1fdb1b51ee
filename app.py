"""Sluice: routes, schedules and their wiring. No business logic lives here.

Use cases and their pydantic schemas are imported inside the handlers that need them (a local
``from chalicelib.services import management`` keeps mypy's types), so the relay's cold start
does not pay for them.

Every ``@app.schedule`` is declared here and nowhere else: Chalice gives each schedule its own
Lambda whose handler is ``app.<name>``, so each one imports this module and finds the store
configured below, without a second ``configure_store()`` of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Chalice, Cron, Rate, Response

from chalicelib.api import (
    alert_routes,
    auth,
    config_routes,
    console,
    key_routes,
    reset_routes,
    web,
)
from chalicelib.core.media import UPLOAD_MEDIA_TYPES
from chalicelib.store import configure_store

app = Chalice(app_name="sluice")
# Bodies API Gateway must hand on as bytes (base64 in the event), not as text: uploads to the
# relay's image, audio and video routes, and the audio and video it answers with.
app.api.binary_types.extend(UPLOAD_MEDIA_TYPES)
route = web.routes(app)
configure_store()
app.register_blueprint(console.bp)  # /console: the web console's static files
app.register_blueprint(config_routes.bp)  # /admin/channels, /admin/models, /admin/groups
app.register_blueprint(reset_routes.bp)  # /admin/resets/run, /admin/sweeper/run
app.register_blueprint(key_routes.bp)  # /admin/keys: operator keys
app.register_blueprint(alert_routes.bp)  # budget alerts: /account/alerts, /tokens/{id}/alerts


def _caller() -> auth.Caller:
    """A management key, or an operator with the route's scope (see chalicelib/api/scopes.py)."""
    return auth.caller(app)


def _admin() -> None:
    """The admin key, or an operator key with the route's scope (see chalicelib/api/scopes.py)."""
    auth.operator(app)


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
    from chalicelib.services import management, schemas

    _admin()
    body = schemas.parse(schemas.CreateAccount, web.raw_body(app))
    return web.json_response(management.create_account(body, web.now()), status=201)


@route("/admin/accounts", methods=["GET"])
def list_accounts() -> dict[str, Any]:
    from chalicelib.services import management

    _admin()
    web.only_query(app, "limit", "cursor")
    limit = management.parse_limit(web.query(app, "limit"))
    return management.list_accounts(limit, web.query(app, "cursor"))


@route("/admin/accounts/{account_id}", methods=["GET"])
def get_account(account_id: str) -> dict[str, Any]:
    from chalicelib.services import management

    _admin()
    web.only_query(app)
    return management.get_account(account_id)


@route("/admin/accounts/{account_id}", methods=["PATCH"])
def patch_account(account_id: str) -> dict[str, Any]:
    from chalicelib.services import management, schemas

    _admin()
    web.only_query(app)
    body = schemas.parse(schemas.PatchAccount, web.raw_body(app))
    return management.patch_account(account_id, body)


@route("/admin/accounts/{account_id}/credit", methods=["POST"])
def credit_account(account_id: str) -> dict[str, Any]:
    from chalicelib.services import management, schemas

    _admin()
    web.only_query(app)
    body = schemas.parse(schemas.CreditAccount, web.raw_body(app))
    return management.credit_account(account_id, body, web.now())


@route("/admin/accounts/{account_id}/credits", methods=["GET"])
def list_credits(account_id: str) -> dict[str, Any]:
    from chalicelib.services import management

    _admin()
    web.only_query(app)
    return management.credits(account_id)


@route("/admin/accounts/{account_id}/management-key", methods=["POST"])
def regenerate_management_key(account_id: str) -> dict[str, Any]:
    from chalicelib.services import management

    _admin()
    web.only_query(app)
    return management.regenerate_management_key(account_id)


# Admin: the ledger verifier, on demand ----------------------------------------------------------
# API Gateway gives up on a request after 29 s; stop well before and hand back a cursor.
HTTP_BUDGET_SECONDS = 20.0


@route("/admin/ledger/verify", methods=["POST"])
def verify_ledger_now() -> dict[str, Any]:
    from chalicelib.services import ledger_verify

    _admin()
    web.only_query(app, "cursor")
    started = time.monotonic()
    run = ledger_verify.verify(
        web.now(),
        deadline=lambda: HTTP_BUDGET_SECONDS - (time.monotonic() - started),
        cursor=web.query(app, "cursor"),
    )
    return run.as_json()


# Account (management key) ---------------------------------------------------------------------
@route("/account", methods=["GET"])
def own_account() -> dict[str, Any]:
    from chalicelib.services import management

    caller = _caller()
    web.only_query(app, "account_id")
    return management.get_account(caller.account_for(web.query(app, "account_id")))


@route("/tokens", methods=["POST"])
def create_tokens() -> Response:
    from chalicelib.services import management, schemas

    caller = _caller()
    web.only_query(app, "account_id")
    account_id = caller.account_for(web.query(app, "account_id"))
    body = schemas.parse(schemas.CreateTokens, web.raw_body(app))
    return web.json_response(management.create_tokens(account_id, body, web.now()), status=201)


@route("/tokens", methods=["GET"])
def list_tokens() -> dict[str, Any]:
    from chalicelib.services import management

    caller = _caller()
    web.only_query(app, "account_id", "limit", "cursor", "status")
    return management.list_tokens(
        caller.account_for(web.query(app, "account_id")),
        management.parse_limit(web.query(app, "limit")),
        web.query(app, "cursor"),
        web.query(app, "status"),
        web.now(),
    )


@route("/tokens/{token_id}", methods=["GET"])
def get_token(token_id: str) -> dict[str, Any]:
    from chalicelib.services import management

    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    return management.get_token(account_id, token_id, web.now())


@route("/tokens/{token_id}", methods=["PATCH"])
def patch_token(token_id: str) -> dict[str, Any]:
    from chalicelib.services import management, schemas

    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    body = schemas.parse(schemas.PatchToken, web.raw_body(app))
    return management.patch_token(account_id, token_id, body, web.now())


@route("/tokens/{token_id}", methods=["DELETE"])
def delete_token(token_id: str) -> Response:
    from chalicelib.services import management

    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    management.delete_token(account_id, token_id)
    return Response(body="", status_code=204)


@route("/tokens/{token_id}/regenerate", methods=["POST"])
def regenerate_token(token_id: str) -> dict[str, Any]:
    from chalicelib.services import management

    web.only_query(app, "account_id")
    account_id = _caller().account_for(web.query(app, "account_id"))
    return management.regenerate_token(account_id, token_id, web.now())


# The OpenAI-compatible relay (/v1/*) is its own function: chalicelib/relay (API Gateway routes
# /v1/{proxy+} there, `make run`'s front does the same locally). Chalice cannot stream.


# Logs and usage (management key, or an operator with ?account_id=) ---------------------------
@route("/logs", methods=["GET"])
def logs() -> dict[str, Any]:
    from chalicelib.services import management, reports

    caller = _caller()
    account_id = caller.account_for(web.query(app, "account_id"))
    web.only_query(
        app,
        "account_id",
        "limit",
        "cursor",
        "start",
        "end",
        "token_id",
        "model",
        "status",
        "request_id",
    )
    return reports.logs(
        account_id,
        management.parse_limit(web.query(app, "limit")),
        web.query(app, "cursor"),
        start=web.query(app, "start"),
        end=web.query(app, "end"),
        token_id=web.query(app, "token_id"),
        model=web.query(app, "model"),
        now=web.now(),
        show_channel=caller.is_operator,
        status=web.query(app, "status"),
        request_id=web.query(app, "request_id"),
    )


@route("/usage", methods=["GET"])
def usage() -> dict[str, Any]:
    from chalicelib.services import reports

    account_id = _caller().account_for(web.query(app, "account_id"))
    web.only_query(app, "account_id", "start", "end", "group_by", "token_id", "model", "status")
    return reports.usage(
        account_id,
        start=web.query(app, "start"),
        end=web.query(app, "end"),
        group_by=web.query(app, "group_by"),
        now=web.now(),
        token_id=web.query(app, "token_id"),
        model=web.query(app, "model"),
        status=web.query(app, "status"),
    )


# The audit trail (management key: its own account; admin or ops- key with audit:read: all) --
@route("/audit", methods=["GET"])
def audit_log() -> dict[str, Any]:
    from chalicelib.services import audit, management

    caller = _caller()
    web.only_query(
        app, "account_id", "target_type", "target_id", "action", "start", "end", "limit", "cursor"
    )
    selected = audit.filters(
        account_id=web.query(app, "account_id") if caller.is_operator else caller.account_id,
        target_type=web.query(app, "target_type"),
        target_id=web.query(app, "target_id"),
        action=web.query(app, "action"),
        start=web.query(app, "start"),
        end=web.query(app, "end"),
        now=web.now(),
    )
    limit = management.parse_limit(web.query(app, "limit"))
    return audit.list_records(selected, limit, web.query(app, "cursor"))


# Scheduled jobs (each its own Lambda, whose handler is app.<name>) ----------------------------
@app.schedule(Cron(0, "*", "*", "*", "?", "*"), name="reset_quotas")
def reset_quotas(event: Any) -> dict[str, Any]:
    """Hourly at minute 0 UTC; stops cleanly before the Lambda's own time limit.

    Every boundary (daily, Monday, the 1st) falls at 00:00 UTC, so the run at minute 0 covers it;
    the schedule still fires every hour so that a run which failed or stopped early is finished
    within the hour. Until a run reaches a due key, the request path resets it lazily.
    """
    from chalicelib.services import resets

    run = resets.run_resets(web.now(), deadline=_time_left(event), workers=resets.SCHEDULE_WORKERS)
    return run.as_json()


@app.schedule(Rate(5, unit=Rate.MINUTES), name="sweep_reservations")
def sweep_reservations(event: Any) -> dict[str, Any]:
    from chalicelib.services import sweeper

    run = sweeper.sweep(web.now(), _time_left(event))
    return {
        "refunded": run.refunded,
        "settled": run.settled,
        "skipped": run.skipped,
        "complete": run.complete,
    }


@app.schedule(Cron(30, 3, "*", "*", "?", "*"), name="verify_ledger")
def verify_ledger(event: Any) -> dict[str, Any]:
    """Daily at 03:30 UTC: every account and key against the ledger's invariants (reads only)."""
    from chalicelib.services import ledger_verify

    run = ledger_verify.verify(web.now(), _time_left(event))
    return {k: v for k, v in run.as_json().items() if k != "drift"} | {"drift": len(run.drift)}


# Budget alerts: each table's stream (old and new image) to the same service. The stream ARNs
# are the tables' own, wired in by devtools/package.py; locally devtools/streams.py polls the
# streams and calls the same service.
TOKENS_STREAM = "arn:aws:dynamodb:::table/tokens/stream/wired-by-package"
ACCOUNTS_STREAM = "arn:aws:dynamodb:::table/accounts/stream/wired-by-package"


@app.on_dynamodb_record(
    stream_arn=TOKENS_STREAM, name="token_alerts", starting_position="TRIM_HORIZON"
)
def token_alerts(event: Any) -> dict[str, int]:
    from chalicelib.services import alerts

    records = [(r.event_name, r.old_image, r.new_image) for r in event]
    return alerts.handle_records("token", records).as_json()


@app.on_dynamodb_record(
    stream_arn=ACCOUNTS_STREAM, name="account_alerts", starting_position="TRIM_HORIZON"
)
def account_alerts(event: Any) -> dict[str, int]:
    from chalicelib.services import alerts

    records = [(r.event_name, r.old_image, r.new_image) for r in event]
    return alerts.handle_records("account", records).as_json()


@app.schedule(Rate(5, unit=Rate.MINUTES), name="retry_alerts")
def retry_alerts(event: Any) -> dict[str, int]:
    """Every 5 minutes: the alert deliveries a stream handler claimed and died before settling
    (with the alert handlers' role)."""
    from chalicelib.services import alerts

    return alerts.retry_pending(deadline=_time_left(event)).as_json()


def _time_left(event: Any) -> Callable[[], float] | None:
    """Seconds this invocation has left, from the Lambda context (None: no limit known)."""
    context = getattr(event, "context", None)
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return None
    return lambda: float(context.get_remaining_time_in_millis()) / 1000


# Anything else ----------------------------------------------------------------------------------
# API Gateway (and chalice local) answer unknown paths themselves with a message that quotes the
# request's Authorization header, i.e. the caller's key. A greedy route keeps every unknown path
# inside the app: an OpenAI-shaped 404 that repeats nothing.
@route("/{proxy+}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_found() -> Response:
    from chalicelib.core.errors import NotFound

    raise NotFound("Unknown path. See /openapi.json for the routes Sluice serves.")
