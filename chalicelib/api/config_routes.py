"""Admin routes for the relay's configuration: channels, model prices, group ratios.

A Chalice blueprint, so ``app.register_blueprint(routes_config.bp)`` is all the wiring it needs.
Every route needs the admin key; every handler is one use case from
``chalicelib.services.channel_admin``.
The use cases and their pydantic schemas are imported on first use, as in ``app.py``, so the
relay's cold start does not pay for them.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import auth, web

bp = Blueprint(__name__)
route = web.routes(bp)


def _admin() -> ModuleType:
    """Check the admin key (and refuse query parameters); returns the use cases."""
    auth.require_admin(web.header(bp, "authorization"))
    web.only_query(bp)
    from chalicelib.services import channel_admin as admin

    return admin


def _body(schema_name: str) -> Any:
    from chalicelib.services import schemas, schemas_config

    schema = getattr(schemas_config, schema_name, None) or getattr(schemas, schema_name)
    return schemas.parse(schema, web.raw_body(bp))


def _no_content() -> Response:
    return Response(body="", status_code=204)


# Channels ---------------------------------------------------------------------------------------
@route("/admin/channels", methods=["POST"])
def create_channel() -> Response:
    admin = _admin()
    body = _body("CreateChannel")
    return web.json_response(admin.create_channel(body, web.now()), status=201)


@route("/admin/channels", methods=["GET"])
def list_channels() -> dict[str, Any]:
    return _admin().list_channels()


@route("/admin/channels/{channel_id}", methods=["GET"])
def get_channel(channel_id: str) -> dict[str, Any]:
    return _admin().get_channel(channel_id)


@route("/admin/channels/{channel_id}", methods=["PATCH"])
def patch_channel(channel_id: str) -> dict[str, Any]:
    return _admin().patch_channel(channel_id, _body("PatchChannel"), web.now())


@route("/admin/channels/{channel_id}", methods=["DELETE"])
def delete_channel(channel_id: str) -> Response:
    admin = _admin()
    admin.delete_channel(channel_id)
    return _no_content()


# Model prices -----------------------------------------------------------------------------------
@route("/admin/models", methods=["GET"])
def list_prices() -> dict[str, Any]:
    return _admin().list_prices()


@route("/admin/models/{model}", methods=["PUT"])
def set_price(model: str) -> dict[str, Any]:
    return _admin().set_price(model, _body("SetPrice"), web.now())


@route("/admin/models/{model}", methods=["DELETE"])
def delete_price(model: str) -> Response:
    admin = _admin()
    admin.delete_price(model)
    return _no_content()


# Group ratios -----------------------------------------------------------------------------------
@route("/admin/groups", methods=["GET"])
def list_groups() -> dict[str, Any]:
    return _admin().list_group_ratios()


@route("/admin/groups/{group}", methods=["PUT"])
def set_group_ratio(group: str) -> dict[str, Any]:
    return _admin().set_group_ratio(group, _body("SetGroupRatio"), web.now())
