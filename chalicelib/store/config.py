"""Relay configuration: channels, model prices, group ratios and the ``auto`` order, one
``ConfigItem`` each.

Items are keyed ``(kind, name)``: ``("channel", <channel id>)``, ``("price", <model>)``,
``("group", <group>)`` and ``("auto_order", "auto")``, so each kind is one partition and is read
with one Query (never a Scan); ``("stamp", "relay")`` counts their writes.

The relay reads them through ``config_reads.py`` (a per-container copy, without PynamoDB); the
readers are named here too, for management callers. Every write here ``invalidate()``s this
container's copy at once, then bumps the stamp: other containers see the change when their copy
expires and they find the stamp moved.

Provider keys are secrets. Deployed (``settings.channel_secret_ssm_prefix`` set) a key lives in
an SSM SecureString parameter ``<prefix><channel id>`` and the item keeps only ``name:version``,
so a rotated key is picked up through the config cache although each container caches parameter
values forever. Locally the key sits in the item. No function here returns it except
``api_key_for``, which the forwarder calls right before it sends a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.transactions import TransactWrite

from chalicelib.core import observe
from chalicelib.core.audit import AuditEntry
from chalicelib.core.channels import Channel
from chalicelib.core.errors import Conflict, NotFound, ServiceUnavailable
from chalicelib.core.pricing import ModelPrice
from chalicelib.core.settings import get_settings
from chalicelib.store import audit as audit_store
from chalicelib.store import config_reads
from chalicelib.store.common import aws_errors, error_code
from chalicelib.store.models import ConfigItem

CHANNEL, PRICE, GROUP = config_reads.CHANNEL, config_reads.PRICE, config_reads.GROUP
AUTO_ORDER, AUTO_ORDER_NAME = config_reads.AUTO_ORDER, config_reads.AUTO_ORDER_NAME
DEFAULT_RATIO = config_reads.DEFAULT_RATIO
KEEP: Any = object()  # "leave the channel's api key as it is"

invalidate = config_reads.invalidate
channels = config_reads.channels
price = config_reads.price
group_ratio = config_reads.group_ratio
auto_order = config_reads.auto_order
api_key_for = config_reads.api_key_for
load_channels = config_reads.load_channels
load_prices = config_reads.load_prices
load_group_ratios = config_reads.load_group_ratios
load_auto_order = config_reads.load_auto_order
get_channel = config_reads.get_channel

_WRITE: dict[str, Callable[[Any], Any]] = {"string list": list, "string map": dict}


def _as_is(value: Any) -> Any:
    return value


def _channel_body(channel: Channel) -> dict[str, Any]:
    body: dict[str, Any] = {
        name: _WRITE.get(kind, _as_is)(getattr(channel, name))
        for name, kind in config_reads.BODY_FIELDS.items()
    }
    if channel.api_key_parameter:
        body["api_key_parameter"] = channel.api_key_parameter
    elif channel.api_key:
        body["api_key"] = channel.api_key
    return body


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


def _written() -> None:
    """After a write: this container's copy is dropped, and the stamp tells every other one.

    The bump comes after the item, never before (what ``config_reads._load`` relies on). It is
    not part of the write's transaction, so two writes never conflict over it; if it fails,
    the write stands and the relay sees it once its copies reach their age limit.
    """
    invalidate()
    try:
        ConfigItem(config_reads.STAMP, config_reads.STAMP_NAME).update(
            actions=[ConfigItem.revision.add(1)]
        )
    except aws_errors() as exc:
        observe.log("config_stamp_not_bumped", level="WARNING", error_code=error_code(exc))


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
    _written()
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
    _written()
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
    _written()
    return stored


def delete_channel(channel_id: str, *, audit: AuditEntry | None = None) -> None:
    current = require_channel(channel_id)
    _delete(CHANNEL, channel_id, audit, NotFound("No channel with this id.", param="id"))
    _drop_parameter(current.api_key_parameter)
    _written()


# Prices -----------------------------------------------------------------------------------------
def set_price(
    model: str, model_price: ModelPrice, now: int, *, audit: AuditEntry | None = None
) -> None:
    """Decimal strings, never floats: a price must read back exactly as it was written."""
    _put(ConfigItem(PRICE, model, body=model_price.to_json(), updated_at=now), None, audit, None)
    _written()


def delete_price(model: str, *, audit: AuditEntry | None = None) -> None:
    _delete(PRICE, model, audit, NotFound("No price is set for this model.", param="model"))
    _written()


# Group ratios -----------------------------------------------------------------------------------
def set_group_ratio(
    group: str, ratio: Decimal, now: int, *, audit: AuditEntry | None = None
) -> None:
    _put(ConfigItem(GROUP, group, body={"ratio": str(ratio)}, updated_at=now), None, audit, None)
    _written()


# The auto group's order -------------------------------------------------------------------------
def set_auto_order(order: tuple[str, ...], now: int, *, audit: AuditEntry | None = None) -> None:
    item = ConfigItem(AUTO_ORDER, AUTO_ORDER_NAME, body={"order": list(order)}, updated_at=now)
    _put(item, None, audit, None)
    _written()
