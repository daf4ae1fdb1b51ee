"""Admin routes for the relay's configuration: channels, model prices, group ratios.

A Chalice blueprint, so ``app.register_blueprint(config_routes.bp)`` is all the wiring it needs.
Every route needs the admin key or an operator key with its scope (``chalicelib.api.scopes``);
every handler is one use case from
``chalicelib.services.channel_admin``. The use cases and their pydantic schemas are imported
inside the handlers, as in ``app.py``, so the relay's cold start does not pay for them.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import auth, web

bp = Blueprint(__name__)
route = web.routes(bp)


def _admin() -> None:
    """Check the caller's key and scope, and refuse query parameters (none of these takes any)."""
    auth.operator(bp)
    web.only_query(bp)


def _no_content() -> Response:
    return Response(body="", status_code=204)


# Channels ---------------------------------------------------------------------------------------
@route("/admin/channels", methods=["POST"])
def create_channel() -> Response:
    from chalicelib.services import channel_admin, schemas, schemas_config

    _admin()
    body = schemas.parse(schemas_config.CreateChannel, web.raw_body(bp))
    return web.json_response(channel_admin.create_channel(body, web.now()), status=201)


@route("/admin/channels", methods=["GET"])
def list_channels() -> dict[str, Any]:
    from chalicelib.services import channel_admin

    _admin()
    return channel_admin.list_channels()


@route("/admin/channels/{channel_id}", methods=["GET"])
def get_channel(channel_id: str) -> dict[str, Any]:
    from chalicelib.services import channel_admin

    _admin()
    return channel_admin.get_channel(channel_id)


@route("/admin/channels/{channel_id}", methods=["PATCH"])
def patch_channel(channel_id: str) -> dict[str, Any]:
    from chalicelib.services import channel_admin, schemas, schemas_config

    _admin()
    body = schemas.parse(schemas_config.PatchChannel, web.raw_body(bp))
    return channel_admin.patch_channel(channel_id, body, web.now())


@route("/admin/channels/{channel_id}", methods=["DELETE"])
def delete_channel(channel_id: str) -> Response:
    from chalicelib.services import channel_admin

    _admin()
    channel_admin.delete_channel(channel_id)
    return _no_content()


# Model prices -----------------------------------------------------------------------------------
@route("/admin/models", methods=["GET"])
def list_prices() -> dict[str, Any]:
    from chalicelib.services import channel_admin

    _admin()
    return channel_admin.list_prices()


@route("/admin/models/{model}", methods=["PUT"])
def set_price(model: str) -> dict[str, Any]:
    from chalicelib.services import channel_admin, schemas

    _admin()
    body = schemas.parse(schemas.SetPrice, web.raw_body(bp))
    return channel_admin.set_price(model, body, web.now())


@route("/admin/models/{model}", methods=["DELETE"])
def delete_price(model: str) -> Response:
    from chalicelib.services import channel_admin

    _admin()
    channel_admin.delete_price(model)
    return _no_content()


# Group ratios -----------------------------------------------------------------------------------
@route("/admin/groups", methods=["GET"])
def list_groups() -> dict[str, Any]:
    from chalicelib.services import channel_admin

    _admin()
    return channel_admin.list_group_ratios()


@route("/admin/groups/{group}", methods=["PUT"])
def set_group_ratio(group: str) -> dict[str, Any]:
    """A group's ratio; for ``auto``, the order its keys pick groups in."""
    from chalicelib.services import channel_admin, schemas

    _admin()
    if group == "auto":
        order = schemas.parse(schemas.SetAutoOrder, web.raw_body(bp))
        return channel_admin.set_auto_order(order, web.now())
    body = schemas.parse(schemas.SetGroupRatio, web.raw_body(bp))
    return channel_admin.set_group_ratio(group, body, web.now())
