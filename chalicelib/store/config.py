"""Relay configuration: channels, model prices and group ratios, one ``ConfigItem`` each.

Items are keyed ``(kind, name)``: ``("channel", <channel id>)``, ``("price", <model>)`` and
``("group", <group>)``, so each kind is one partition and is read with one Query (never a Scan).

The relay reads them on every call, so ``channels()``, ``price()`` and ``group_ratio()`` serve a
per-container copy for ``settings.key_cache_seconds``. Writes through this module ``invalidate()``
this container's copy at once; other containers see the change when their copy expires. That
delay is harmless for money: prices and ratios are read *before* the reservation, and the charge
is computed from the same price the reservation was sized with.

Provider keys are secrets. Deployed (``settings.channel_secret_ssm_prefix`` set) a key lives in
an SSM SecureString parameter ``<prefix><channel id>`` and the item keeps only ``name:version``,
so a rotated key is picked up through the config cache although each container caches parameter
values forever. Locally the key sits in the item. No function here returns it except
``api_key_for``, which the forwarder calls right before it sends a request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.transactions import TransactWrite

from chalicelib.core import observe
from chalicelib.core.audit import AuditEntry
from chalicelib.core.channels import PUBLIC_FIELDS, Channel
from chalicelib.core.errors import Conflict, NotFound, ServiceUnavailable
from chalicelib.core.pricing import ModelPrice
from chalicelib.core.settings import get_settings
from chalicelib.store import audit as audit_store
from chalicelib.store import secrets
from chalicelib.store.cache import AheadCache
from chalicelib.store.common import error_code, translated
from chalicelib.store.models import ConfigItem

CHANNEL, PRICE, GROUP = "channel", "price", "group"
# The ``auto`` group's order (core/groups.py): one item, its own kind so it is cached like the rest.
AUTO_ORDER, AUTO_ORDER_NAME = "auto_order", "auto"
DEFAULT_RATIO = Decimal(1)
KEEP: Any = object()  # "leave the channel's api key as it is"

T = TypeVar("T")
_clock: Callable[[], float] = time.monotonic


# The per-container cache ------------------------------------------------------------------------
# Refreshed ahead of its expiry while the relay is busy (store/cache.py).
_cache = AheadCache(lambda: get_settings().key_cache_seconds, clock=lambda: _clock())


def invalidate() -> None:
    """Forget every cached kind (called after each write, and by tests)."""
    _cache.clear()


def _cached(kind: str, load: Callable[[], T]) -> T:
    value: T = _cache.fetch((ConfigItem.Meta.table_name, kind), load)
    return value


def channels() -> list[Channel]:
    return _cached(CHANNEL, load_channels)


def price(model: str) -> ModelPrice | None:
    return _cached(PRICE, load_prices).get(model)


def group_ratio(group: str) -> Decimal:
    return _cached(GROUP, load_group_ratios).get(group, DEFAULT_RATIO)


def _query(kind: str) -> list[ConfigItem]:
    with translated():
        return list(ConfigItem.query(kind, consistent_read=True))


# Channels ---------------------------------------------------------------------------------------
# The body of a channel's item: its public fields but those the item keeps elsewhere (the id is
# the item's key, updated_at its own attribute, api_key_set follows from the key), the revision,
# and apart from these the key or the name of its SSM parameter.
_BODY_FIELDS: dict[str, str] = {
    **{
        name: kind
        for name, kind in PUBLIC_FIELDS.items()
        if name not in ("id", "updated_at", "api_key_set")
    },
    "revision": "integer",
}
_READ: dict[str, Callable[[Any], Any]] = {
    "string": str,
    "integer": int,
    "boolean": bool,
    "string list": lambda value: tuple(str(item) for item in value),
    "string map": lambda value: {str(k): str(v) for k, v in value.items()},
    "time": int,
}
_WRITE: dict[str, Callable[[Any], Any]] = {"string list": list, "string map": dict}


def _as_is(value: Any) -> Any:
    return value


def _to_channel(item: ConfigItem) -> Channel:
    """The channel in an item; a field missing or empty in it takes ``Channel``'s default (a
    boolean only when missing), so items written before a field existed still load."""
    body = item.body.as_dict()
    stored = {
        name: _READ[kind](body[name])
        for name, kind in _BODY_FIELDS.items()
        if (name in body if kind == "boolean" else body.get(name))
    }
    values = {"name": item.name, "models": (), **stored, "base_url": str(body["base_url"])}
    values["weight"] = max(values.get("weight", 1), 1)
    return Channel(
        **values,
        id=item.name,
        api_key=body.get("api_key"),
        api_key_parameter=body.get("api_key_parameter"),
        updated_at=int(item.updated_at or 0),
    )


def _channel_body(channel: Channel) -> dict[str, Any]:
    body: dict[str, Any] = {
        name: _WRITE.get(kind, _as_is)(getattr(channel, name))
        for name, kind in _BODY_FIELDS.items()
    }
    if channel.api_key_parameter:
        body["api_key_parameter"] = channel.api_key_parameter
    elif channel.api_key:
        body["api_key"] = channel.api_key
    return body


def load_channels() -> list[Channel]:
    """Every channel, read now (admin listings; the relay uses the cached ``channels()``)."""
    loaded = []
    for item in _query(CHANNEL):
        try:
            loaded.append(_to_channel(item))
        except (KeyError, TypeError, ValueError):
            observe.log("config_channel_malformed", level="WARNING", channel_id=item.name)
    return loaded


def get_channel(channel_id: str) -> Channel | None:
    with translated():
        try:
            return _to_channel(ConfigItem.get(CHANNEL, channel_id, consistent_read=True))
        except ConfigItem.DoesNotExist:
            return None


def require_channel(channel_id: str) -> Channel:
    channel = get_channel(channel_id)
    if channel is None:
        raise NotFound("No channel with this id.", param="id")
    return channel


def _ssm() -> Any:
    import boto3  # only deployed stages with a prefix ever need it

    return boto3.client("ssm", region_name=get_settings().region)


def _with_key(channel: Channel, api_key: str | None) -> Channel:
    """``channel`` holding ``api_key``: in SSM when deployed, in the item locally."""
    prefix = get_settings().channel_secret_ssm_prefix
    if api_key is None:
        return replace(channel, api_key=None, api_key_parameter=None)
    if not prefix:
        return replace(channel, api_key=api_key, api_key_parameter=None)
    name = f"{prefix}{channel.id}"
    try:
        version = _ssm().put_parameter(
            Name=name, Value=api_key, Type="SecureString", Overwrite=True
        )["Version"]
    except (BotoCoreError, ClientError) as exc:
        raise ServiceUnavailable("The channel's key could not be stored; retry.") from exc
    return replace(channel, api_key=None, api_key_parameter=f"{name}:{version}")


def _drop_parameter(parameter: str | None) -> None:
    """Delete a channel's SSM parameter; a missing one is already what we want."""
    if not parameter:
        return
    try:
        _ssm().delete_parameter(Name=parameter.rsplit(":", 1)[0])
    except (BotoCoreError, ClientError) as exc:
        if error_code(exc) != "ParameterNotFound":
            observe.log(
                "config_key_parameter_not_deleted", level="WARNING", error_code=error_code(exc)
            )


def _save(
    channel: Channel,
    now: int,
    condition: Any,
    conflict: Exception | None = None,
    audit: AuditEntry | None = None,
) -> None:
    """Put the channel's item and its audit record; a failed ``condition`` raises ``conflict``."""
    item = ConfigItem(CHANNEL, channel.id, body=_channel_body(channel), updated_at=now)
    _put(item, condition, audit, conflict)


def _put(
    item: ConfigItem, condition: Any, audit: AuditEntry | None, refused: Exception | None
) -> None:
    def build(transaction: TransactWrite) -> None:
        transaction.save(item, condition=condition)

    audit_store.write(build, audit, refused)


def _delete(kind: str, name: str, audit: AuditEntry | None, missing: Exception) -> None:
    def build(transaction: TransactWrite) -> None:
        transaction.delete(ConfigItem(kind, name), condition=ConfigItem.name.exists())

    audit_store.write(build, audit, missing)


def create_channel(
    channel: Channel, api_key: str | None, now: int, *, audit: AuditEntry | None = None
) -> Channel:
    """Store a new channel; 409 if the id is taken (checked before the key is written)."""
    if get_channel(channel.id) is not None:
        raise Conflict("A channel with this id already exists.", param="id")
    stored = replace(_with_key(channel, api_key), created_at=now, updated_at=now, revision=1)
    _save(
        stored,
        now,
        ConfigItem.name.does_not_exist(),
        Conflict("A channel with this id already exists.", param="id"),
        audit,
    )
    invalidate()
    return stored


def put_channel(channel: Channel, api_key: str | None, now: int) -> Channel:
    """Create or replace a channel whatever its state (bootstrap scripts, the demo)."""
    current = get_channel(channel.id)
    stored = replace(
        _with_key(channel, api_key),
        created_at=current.created_at if current else now,
        updated_at=now,
        revision=(current.revision if current else 0) + 1,
    )
    _save(stored, now, None)
    if current is not None and current.api_key_parameter and not stored.api_key_parameter:
        _drop_parameter(current.api_key_parameter)
    invalidate()
    return stored


def update_channel(
    current: Channel, changed: Channel, api_key: Any, now: int, *, audit: AuditEntry | None = None
) -> Channel:
    """Write ``changed`` over ``current``; 409 if someone else wrote it since it was read.

    ``api_key`` is the new key, None to remove it, or ``KEEP``.
    """
    with_key = changed if api_key is KEEP else _with_key(changed, api_key)
    stored = replace(
        with_key, created_at=current.created_at, updated_at=now, revision=current.revision + 1
    )
    _save(
        stored,
        now,
        ConfigItem.body["revision"] == current.revision,
        Conflict("The channel changed or was deleted while it was being edited; retry."),
        audit,
    )
    if api_key is not KEEP and api_key is None:
        _drop_parameter(current.api_key_parameter)
    invalidate()
    return stored


def delete_channel(channel_id: str, *, audit: AuditEntry | None = None) -> None:
    current = require_channel(channel_id)
    _delete(CHANNEL, channel_id, audit, NotFound("No channel with this id.", param="id"))
    _drop_parameter(current.api_key_parameter)
    invalidate()


def api_key_for(channel: Channel) -> str | None:
    """The provider key to send; read from SSM once per container and key version."""
    if channel.api_key_parameter:
        try:
            return secrets.ssm_parameter(channel.api_key_parameter, get_settings())
        except (BotoCoreError, ClientError) as exc:
            raise ServiceUnavailable("The channel's key could not be read.") from exc
    return channel.api_key


# Prices -----------------------------------------------------------------------------------------
def load_prices() -> dict[str, ModelPrice]:
    return {item.name: ModelPrice.from_json(item.body.as_dict()) for item in _query(PRICE)}


def set_price(
    model: str, model_price: ModelPrice, now: int, *, audit: AuditEntry | None = None
) -> None:
    """Decimal strings, never floats: a price must read back exactly as it was written."""
    _put(ConfigItem(PRICE, model, body=model_price.to_json(), updated_at=now), None, audit, None)
    invalidate()


def delete_price(model: str, *, audit: AuditEntry | None = None) -> None:
    _delete(PRICE, model, audit, NotFound("No price is set for this model.", param="model"))
    invalidate()


# Group ratios -----------------------------------------------------------------------------------
def load_group_ratios() -> dict[str, Decimal]:
    return {item.name: Decimal(str(item.body.as_dict()["ratio"])) for item in _query(GROUP)}


def set_group_ratio(
    group: str, ratio: Decimal, now: int, *, audit: AuditEntry | None = None
) -> None:
    _put(ConfigItem(GROUP, group, body={"ratio": str(ratio)}, updated_at=now), None, audit, None)
    invalidate()


# The auto group's order -------------------------------------------------------------------------
def load_auto_order() -> tuple[str, ...]:
    """The order ``auto`` keys try groups in, read now (empty until the operator sets one)."""
    for item in _query(AUTO_ORDER):
        order = item.body.as_dict().get("order") or []
        return tuple(str(group) for group in order)
    return ()


def auto_order() -> tuple[str, ...]:
    """The same, from the per-container copy (the relay's path)."""
    return _cached(AUTO_ORDER, load_auto_order)


def set_auto_order(order: tuple[str, ...], now: int, *, audit: AuditEntry | None = None) -> None:
    item = ConfigItem(AUTO_ORDER, AUTO_ORDER_NAME, body={"order": list(order)}, updated_at=now)
    _put(item, None, audit, None)
    invalidate()
