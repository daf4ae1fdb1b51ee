"""Configuration use cases: channels, model prices and group ratios (validated input -> store).

Shared by the admin routes (``chalicelib.api.config_routes``) and the CLI
(``chalicelib.cli.config``), so both validate and answer alike. The JSON of a channel shows whether
it has a provider key (``api_key_set``), never the key or any part of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from chalicelib.core import audit, keys
from chalicelib.core.channels import PUBLIC_FIELDS, Channel
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.groups import AUTO_GROUP
from chalicelib.core.pricing import PRICE_FIELDS, ModelPrice, MoneyError, parse_decimal
from chalicelib.core.views import iso
from chalicelib.services import schemas, schemas_config
from chalicelib.store import config as config_store

GROUP_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
MODEL_PATTERN = re.compile(r"^\S{1,128}$")


def _page(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Configuration is small: one page holds all of it, so the cursor is always null."""
    return {"data": items, "next_cursor": None}


# Channels ---------------------------------------------------------------------------------------
# How a ``PUBLIC_FIELDS`` type is rendered; the others are JSON values already.
_RENDER: dict[str, Callable[[Any], Any]] = {"string list": list, "string map": dict, "time": iso}


def _as_is(value: Any) -> Any:
    return value


def channel_json(channel: Channel) -> dict[str, Any]:
    """The fields of ``PUBLIC_FIELDS``, nothing else: a provider key cannot slip in."""
    return {
        name: _RENDER.get(kind, _as_is)(
            channel.has_api_key if name == "api_key_set" else getattr(channel, name)
        )
        for name, kind in PUBLIC_FIELDS.items()
    }


# What a channel looks like in the audit: its settings, not its key nor its bookkeeping.
_NOT_AUDITED = ("id", "api_key_set", "created_at", "updated_at")


def _audited(channel: Channel) -> dict[str, Any]:
    shown = channel_json(channel)
    return {name: value for name, value in shown.items() if name not in _NOT_AUDITED}


def create_channel(body: schemas_config.CreateChannel, now: int) -> dict[str, Any]:
    channel = Channel(
        id=body.id or keys.new_id(),
        name=body.name,
        base_url=body.base_url,
        models=tuple(body.models),
        model_map=dict(body.model_map),
        endpoints=tuple(dict.fromkeys(body.endpoints)),
        group=body.group,
        priority=body.priority,
        weight=body.weight,
        enabled=body.enabled,
    )
    changes = audit.created(_audited(channel))
    if body.api_key is not None:
        changes["api_key"] = audit.secret(False, True)
    entry = audit.entry("channel.create", channel.id, changes)
    return channel_json(config_store.create_channel(channel, body.api_key, now, audit=entry))


def list_channels() -> dict[str, Any]:
    ordered = sorted(
        config_store.load_channels(), key=lambda c: (c.group, -c.priority, c.name, c.id)
    )
    return _page([channel_json(channel) for channel in ordered])


def get_channel(channel_id: str) -> dict[str, Any]:
    return channel_json(config_store.require_channel(channel_id))


def patch_channel(channel_id: str, body: schemas_config.PatchChannel, now: int) -> dict[str, Any]:
    fields = body.model_fields_set
    current = config_store.require_channel(channel_id)
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("name", "base_url", "group", "priority", "weight", "enabled")
        if name in fields
    }
    if "models" in fields and body.models is not None:
        changes["models"] = tuple(body.models)
    if "model_map" in fields and body.model_map is not None:
        changes["model_map"] = dict(body.model_map)
    if "endpoints" in fields and body.endpoints is not None:
        changes["endpoints"] = tuple(dict.fromkeys(body.endpoints))
    changed = replace(current, **changes)
    try:
        schemas_config.check_models(changed.models, changed.model_map)
    except schemas.FieldError as exc:
        raise InvalidRequest(f"{exc.param}: {exc}", param=exc.param) from exc
    api_key = body.api_key if "api_key" in fields else config_store.KEEP
    changes = audit.diff(_audited(current), _audited(changed))
    if "api_key" in fields:
        changes["api_key"] = audit.secret(current.has_api_key, body.api_key is not None)
    entry = audit.entry("channel.update", channel_id, changes)
    return channel_json(config_store.update_channel(current, changed, api_key, now, audit=entry))


def set_channel_enabled(channel_id: str, enabled: bool, now: int) -> dict[str, Any]:
    return patch_channel(channel_id, schemas_config.PatchChannel(enabled=enabled), now)


def delete_channel(channel_id: str) -> None:
    current = config_store.require_channel(channel_id)
    changes = audit.removed(_audited(current))
    config_store.delete_channel(
        channel_id, audit=audit.entry("channel.delete", channel_id, changes)
    )


# Prices -----------------------------------------------------------------------------------------
def _model_name(model: str) -> str:
    if not MODEL_PATTERN.fullmatch(model):
        raise InvalidRequest("model must be 1 to 128 characters without spaces.", param="model")
    return model


def _amount(text: str | None, param: str) -> Any:
    try:
        return parse_decimal(text or "0")
    except MoneyError as exc:
        raise InvalidRequest(f"{param} {exc}.", param=param) from exc


def price_json(model: str, model_price: ModelPrice) -> dict[str, Any]:
    return {"model": model, **model_price.to_json()}


def set_price(model: str, body: schemas.SetPrice, now: int) -> dict[str, Any]:
    model = _model_name(model)
    given = {
        name: _amount(text, name)
        for name in PRICE_FIELDS
        if (text := getattr(body, name)) is not None
    }
    # A per-token price names both directions, as it always has: the one left out is free.
    if "input_usd_per_mtok" in given or "output_usd_per_mtok" in given:
        given.setdefault("input_usd_per_mtok", Decimal(0))
        given.setdefault("output_usd_per_mtok", Decimal(0))
    model_price = ModelPrice(**given, max_audio_seconds=body.max_audio_seconds)
    before = config_store.load_prices().get(model)
    changes = audit.diff({} if before is None else before.to_json(), model_price.to_json())
    changes |= {name: {"old": value, "new": None} for name, value in _dropped(before, model_price)}
    entry = audit.entry("price.update", model, changes)
    config_store.set_price(model, model_price, now, audit=entry)
    return price_json(model, model_price)


def _dropped(before: ModelPrice | None, after: ModelPrice) -> list[tuple[str, str | int]]:
    """Price fields the old price had and the new one does not (flat <-> per token)."""
    if before is None:
        return []
    return [(k, v) for k, v in before.to_json().items() if k not in after.to_json()]


def list_prices() -> dict[str, Any]:
    prices = config_store.load_prices()
    return _page([price_json(model, prices[model]) for model in sorted(prices)])


def delete_price(model: str) -> None:
    model = _model_name(model)
    before = config_store.load_prices().get(model)
    changes = audit.removed({} if before is None else before.to_json())
    config_store.delete_price(model, audit=audit.entry("price.delete", model, changes))


# Group ratios -----------------------------------------------------------------------------------
def set_group_ratio(group: str, body: schemas.SetGroupRatio, now: int) -> dict[str, Any]:
    if group == AUTO_GROUP:
        # auto prices each call with the ratio of the group it picked; it has none of its own.
        raise InvalidRequest(
            "'auto' has no ratio of its own; PUT /admin/groups/auto takes {\"order\": [...]}.",
            param="group",
        )
    if not GROUP_PATTERN.fullmatch(group):
        raise InvalidRequest(
            "group must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.', '-'.", param="group"
        )
    try:
        ratio = parse_decimal(body.ratio, allow_zero=False)
    except MoneyError as exc:
        raise InvalidRequest(f"ratio {exc}.", param="ratio") from exc
    before = config_store.load_group_ratios().get(group)
    changes = audit.diff({"ratio": None if before is None else str(before)}, {"ratio": str(ratio)})
    entry = audit.entry("group.update", group, changes)
    config_store.set_group_ratio(group, ratio, now, audit=entry)
    return {"group": group, "ratio": str(ratio)}


def list_group_ratios() -> dict[str, Any]:
    ratios = config_store.load_group_ratios()
    listed = _page([{"group": group, "ratio": str(ratios[group])} for group in sorted(ratios)])
    return {**listed, "auto": {"order": list(config_store.load_auto_order())}}


def set_auto_order(body: schemas.SetAutoOrder, now: int) -> dict[str, Any]:
    """The order ``auto`` keys pick their group in (see ``core.groups``)."""
    order = tuple(body.order)
    before = list(config_store.load_auto_order())
    entry = audit.entry(
        "group.update", AUTO_GROUP, audit.diff({"order": before}, {"order": list(order)})
    )
    config_store.set_auto_order(order, now, audit=entry)
    return {"group": AUTO_GROUP, "order": list(order)}
