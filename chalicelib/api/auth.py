"""Who is calling the management API, and whether they may call this route.

Three kinds of caller: the operator's admin key (every scope), an operator key (``ops-``, the
scopes it was given) and one account's management key (``mk-``). Which scope a route needs is
declared once, in ``chalicelib.api.scopes``; ``operator()`` and ``caller()`` look the current
route up there.

Keys are compared in constant time, and an unknown key, a wrong secret and a disabled account all
get the same 401, so the answer reveals nothing about which part was wrong. Operator keys are
read with a strongly consistent GetItem on every request (never cached), so a change to one is
in force on its next call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from chalice import Blueprint, Chalice

from chalicelib.api import scopes as route_scopes
from chalicelib.api import web
from chalicelib.core import audit, keys, observe, scopes
from chalicelib.core.errors import Forbidden, InsufficientScope, InvalidRequest, Unauthenticated
from chalicelib.core.settings import get_settings
from chalicelib.store import accounts as account_store
from chalicelib.store import secrets

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Caller:
    kind: str  # "admin" | "operator" | "account"
    account_id: str | None = None
    operator_key_id: str | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        """The admin key itself."""
        return self.kind == "admin"

    @property
    def is_operator(self) -> bool:
        """The admin key or an operator key: someone acting for the deployment, not an account."""
        return self.kind in ("admin", "operator")

    @property
    def actor(self) -> str:
        """Who to name in logs and the audit trail: never a key, only an id.

        ``admin``, ``ops:<operator key id>``, or the account id of a management key.
        """
        if self.kind == "operator":
            return f"ops:{self.operator_key_id}"
        if self.kind == "account":
            assert self.account_id is not None
            return self.account_id
        return audit.ADMIN

    def require(self, scope: str | None) -> None:
        """403 ``insufficient_scope`` unless this operator holds ``scope``.

        ``None`` (a route with no declared scope) is for the admin key alone.
        """
        if self.is_admin:
            return
        if scope is None:
            raise InsufficientScope("This route is for the admin key only.")
        scopes.require(self.scopes, scope, who="This operator key")

    def account_for(self, requested: str | None) -> str:
        """The account a call acts on: the caller's own, or an operator's ``?account_id=``."""
        if not self.is_operator:
            assert self.account_id is not None
            return self.account_id
        if not requested:
            raise InvalidRequest(
                "account_id is required with the admin key or an operator key.",
                param="account_id",
            )
        return requested


ADMIN = Caller(kind="admin", scopes=scopes.ALL_SCOPES)


def authenticate(authorization: str | None, now: int | None = None) -> Caller:
    """Admin, operator or management key; a ``sk-`` key here is the wrong kind (403)."""
    presented = keys.bearer_token(authorization)
    if presented is None:
        raise Unauthenticated(
            "Missing or malformed Authorization header. Send 'Authorization: Bearer <key>'."
        )
    admin_key = secrets.admin_key(get_settings())
    if admin_key and keys.secrets_match(presented, admin_key):
        return ADMIN
    parsed = keys.parse_key(presented)
    if parsed is None:
        raise Unauthenticated()
    if parsed.kind == "token":
        raise Forbidden("API keys (sk-) call /v1; use the management key (mk-) for this route.")
    if parsed.kind == "operator":
        from chalicelib.services import operator_keys  # only operator calls pay for it

        record = operator_keys.verify(presented, parsed.owner_id, now or int(time.time()))
        return Caller(kind="operator", operator_key_id=record.id, scopes=frozenset(record.scopes))
    account = account_store.get(parsed.owner_id)
    if account is None or not keys.hashes_match(presented, account.management_key_hash):
        raise Unauthenticated()
    if account.status != "enabled":
        raise Unauthenticated("The account is disabled.", code="account_disabled")
    return Caller(kind="account", account_id=account.id)


def require_scope(authorization: str | None, scope: str | None) -> Caller:
    """The admin key, or an operator key holding ``scope``; 403 for any other key."""
    caller = authenticate(authorization)
    if not caller.is_operator:
        raise Forbidden("This route needs the admin key or an operator key (ops-).")
    caller.require(scope)
    return caller


def _log_write(app: Chalice | Blueprint, caller: Caller, scope: str | None) -> None:
    """Name the operator behind every write it was allowed to attempt (the audit hook)."""
    route, _ = route_scopes.of_request(app)
    if route[1] in WRITE_METHODS:
        observe.log(
            "admin_write_authorized",
            actor=caller.actor,
            method=route[1],
            route=route[0],
            scope=scope,
        )


def _acting(app: Chalice | Blueprint, who: Caller) -> Caller:
    """Name ``who`` as the actor of whatever this request changes (see core/audit.py)."""
    audit.act_as(audit.Actor(who.actor, web.source_ip(app), web.request_id(app)))
    return who


def operator(app: Chalice | Blueprint) -> Caller:
    """For ``/admin/*`` handlers: the admin key or an operator key with the route's scope."""
    _, scope = route_scopes.of_request(app)
    who = require_scope(web.header(app, "authorization"), scope)
    _log_write(app, who, scope)
    return _acting(app, who)


def caller(app: Chalice | Blueprint) -> Caller:
    """For account routes: the account's management key, or an operator with the route's scope."""
    _, scope = route_scopes.of_request(app)
    who = authenticate(web.header(app, "authorization"))
    if who.is_operator:
        who.require(scope)
        _log_write(app, who, scope)
    return _acting(app, who)
