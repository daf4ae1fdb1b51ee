"""``/admin/keys``: operator keys (``ops-``), managed with the admin key or ``keys:admin``.

A key is shown once, in the answer that creates it; listings and reads show its preview, never
the key or its hash. The use cases are ``chalicelib.services.operator_keys``; each takes the
caller's scopes, so a ``keys:admin`` key can neither grant nor touch more than it holds.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import auth, web

bp = Blueprint(__name__)
route = web.routes(bp)


@route("/admin/keys", methods=["POST"])
def create_operator_key() -> Response:
    from chalicelib.services import operator_keys, schemas

    caller = auth.operator(bp)
    web.only_query(bp)
    body = schemas.parse(schemas.CreateOperatorKey, web.raw_body(bp))
    return web.json_response(operator_keys.create_key(body, caller.scopes, web.now()), status=201)


@route("/admin/keys", methods=["GET"])
def list_operator_keys() -> dict[str, Any]:
    from chalicelib.services import management, operator_keys

    auth.operator(bp)
    web.only_query(bp, "limit", "cursor")
    limit = management.parse_limit(web.query(bp, "limit"))
    return operator_keys.list_keys(limit, web.query(bp, "cursor"), web.now())


@route("/admin/keys/{key_id}", methods=["GET"])
def get_operator_key(key_id: str) -> dict[str, Any]:
    from chalicelib.services import operator_keys

    auth.operator(bp)
    web.only_query(bp)
    return operator_keys.get_key(key_id, web.now())


@route("/admin/keys/{key_id}", methods=["PATCH"])
def patch_operator_key(key_id: str) -> dict[str, Any]:
    from chalicelib.services import operator_keys, schemas

    caller = auth.operator(bp)
    web.only_query(bp)
    body = schemas.parse(schemas.PatchOperatorKey, web.raw_body(bp))
    return operator_keys.patch_key(key_id, body, caller.scopes, web.now())


@route("/admin/keys/{key_id}", methods=["DELETE"])
def delete_operator_key(key_id: str) -> Response:
    from chalicelib.services import operator_keys

    caller = auth.operator(bp)
    web.only_query(bp)
    operator_keys.delete_key(key_id, caller.scopes)
    return Response(body="", status_code=204)
