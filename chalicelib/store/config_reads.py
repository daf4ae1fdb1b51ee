"""The relay's configuration reads: channels, model prices, group ratios, the ``auto`` order.

The relay reads them on every call, so ``channels()``, ``price()``, ``group_ratio()`` and
``auto_order()`` serve a per-container copy for ``settings.key_cache_seconds``, refreshed ahead
of its expiry while the relay is busy (``cache.py``). Writes (``config.py``) ``invalidate()``
this container's copy at once and bump the stamp; other containers see the change when their
copy expires, by reading the stamp (one GetItem, the kinds again only if it moved). That delay
is harmless for money: prices and ratios are read *before* the reservation, and the charge is
computed from the same price the reservation was sized with.

Raw items (``items.py``) over ``common.send``, without PynamoDB (see ``tables.py``);
``models.ConfigItem`` declares the table, and ``config.py`` writes it and reads through here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalicelib.core import observe
from chalicelib.core.channels import PUBLIC_FIELDS, Channel
from chalicelib.core.errors import ServiceUnavailable
from chalicelib.core.pricing import ModelPrice
from chalicelib.core.settings import get_settings
from chalicelib.store import items, secrets, tables
from chalicelib.store.cache import AheadCache, threads
from chalicelib.store.common import aws_errors, get_item, query, translated

CHANNEL, PRICE, GROUP = "channel", "price", "group"
# The ``auto`` group's order (core/groups.py): one item, its own kind so it is cached like the rest.
AUTO_ORDER, AUTO_ORDER_NAME = "auto_order", "auto"
DEFAULT_RATIO = Decimal(1)
# One item counts the configuration's writes, so a container can tell its copy is current from
# one GetItem (``_load``).
STAMP, STAMP_NAME = "stamp", "relay"
MAX_COPY_AGE_SECONDS = 60.0

_clock: Callable[[], float] = time.monotonic


# The per-container copy ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Copy:
    """Every kind the relay caches, as one copy: a call sees one configuration, not a mix."""

    channels: list[Channel]
    prices: dict[str, ModelPrice]
    ratios: dict[str, Decimal]
    auto_order: tuple[str, ...]
    # The stamp read before these kinds were (None: read beside them, so it confirms nothing),
    # and when they were read.
    stamp: int | None
    read_at: float


def _served_until(copy: _Copy) -> float:
    """No copy is served once it is ``MAX_COPY_AGE_SECONDS`` old, however often it is kept."""
    return copy.read_at + MAX_COPY_AGE_SECONDS


_cache = AheadCache(
    lambda: get_settings().key_cache_seconds, clock=lambda: _clock(), expires=_served_until
)


def invalidate() -> None:
    """Forget this container's copy (called after each write, and by tests)."""
    _cache.clear()


def read_ahead() -> None:
    """Start reading the configuration in the background if this container's copy expired (a
    quiet spell longer than the cache's life); the call that needs it next waits for that read
    rather than starting its own (``cache.py``)."""
    _cache.read_ahead(_copy_key(), _load_for_a_call)


def _copy() -> _Copy:
    copy: _Copy = _cache.fetch(_copy_key(), _load_for_a_call, refresh=_load)
    return copy


def _copy_key() -> tuple[str, str]:
    return (tables.name(tables.CONFIG), "copy")


def _load_for_a_call() -> _Copy:
    """``_load`` for a call that waits for it: a copy the stamp confirms is kept while it may
    still be served at all, not only if it may be served for another whole life."""
    return _load(for_a_call=True)


def _load(*, for_a_call: bool = False) -> _Copy:
    """The configuration as stored now, in the fewest round trips.

    The copy at hand is kept if the stamp is what it was when that copy was read: one GetItem,
    where the kinds are four Queries. The stamp is read first and the kinds after it, so a copy
    never holds less than its stamp says (a write bumps the stamp after its item,
    ``config.py``). A container's first copy is read without the stamp, in one round trip, so
    it confirms nothing and is read again whole next time. Whatever the stamp says, no copy is
    served once it is ``MAX_COPY_AGE_SECONDS`` old (``_served_until``): an edit made outside
    Sluice bumps no stamp. A refresh in the background keeps a copy only for another whole
    life; a call that waits (``for_a_call``: its copy expired in a quiet spell) keeps it for
    what is left of its age, which is short, so the next call starts the refresh that reads
    it again whole, in the background, instead of this one reading it before its answer.
    """
    last: _Copy | None = _cache.stale(_copy_key())
    if last is None:
        return _read_kinds(stamp=None)
    stamp = read_stamp()
    left = _served_until(last) - _clock()
    if stamp == last.stamp and left > (0 if for_a_call else _cache.life()):
        return last
    return _read_kinds(stamp)


def _read_kinds(stamp: int | None) -> _Copy:
    """The four kinds, read side by side (three on threads of their own, one here)."""
    read_at = _clock()
    pool = threads("config-kinds", 3)
    prices, ratios, order = (
        pool.submit(load_prices),
        pool.submit(load_group_ratios),
        pool.submit(load_auto_order),
    )
    return _Copy(
        channels=load_channels(),
        prices=prices.result(),
        ratios=ratios.result(),
        auto_order=order.result(),
        stamp=stamp,
        read_at=read_at,
    )


def read_stamp() -> int:
    """How many writes the configuration has had (0 before the first one)."""
    key = {"kind": {"S": STAMP}, "name": {"S": STAMP_NAME}}
    with translated():
        found = get_item(tables.name(tables.CONFIG), key)
    return int(items.plain(found).get("revision") or 0) if found is not None else 0


def channels() -> list[Channel]:
    return _copy().channels


def price(model: str) -> ModelPrice | None:
    return _copy().prices.get(model)


def group_ratio(group: str) -> Decimal:
    return _copy().ratios.get(group, DEFAULT_RATIO)


def auto_order() -> tuple[str, ...]:
    """The order ``auto`` keys try groups in (empty until the operator sets one)."""
    return _copy().auto_order


def _query(kind: str) -> list[dict[str, Any]]:
    """Every item of ``kind``, plain: one Query on its partition, never a Scan."""
    request = {
        "TableName": tables.name(tables.CONFIG),
        "KeyConditionExpression": "kind = :kind",
        "ExpressionAttributeValues": {":kind": {"S": kind}},
        "ConsistentRead": True,
    }
    with translated():
        return [items.plain(raw) for raw in query(request)]


# Channels ---------------------------------------------------------------------------------------
# The body of a channel's item: its public fields but those the item keeps elsewhere (the id is
# the item's key, updated_at its own attribute, api_key_set follows from the key), the revision,
# and apart from these the key or the name of its SSM parameter.
BODY_FIELDS: dict[str, str] = {
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


def channel(item: dict[str, Any]) -> Channel:
    """The channel in a plain item; a field missing or empty in it takes ``Channel``'s default
    (a boolean only when missing), so items written before a field existed still load."""
    body = item.get("body") or {}
    stored = {
        name: _READ[kind](body[name])
        for name, kind in BODY_FIELDS.items()
        if (name in body if kind == "boolean" else body.get(name))
    }
    values = {"name": item["name"], "models": (), **stored, "base_url": str(body["base_url"])}
    values["weight"] = max(values.get("weight", 1), 1)
    return Channel(
        **values,
        id=item["name"],
        api_key=body.get("api_key"),
        api_key_parameter=body.get("api_key_parameter"),
        updated_at=int(item.get("updated_at") or 0),
    )


def load_channels() -> list[Channel]:
    """Every channel, read now (admin listings; the relay uses the cached ``channels()``)."""
    loaded = []
    for item in _query(CHANNEL):
        try:
            loaded.append(channel(item))
        except (KeyError, TypeError, ValueError):
            observe.log("config_channel_malformed", level="WARNING", channel_id=item.get("name"))
    return loaded


def get_channel(channel_id: str) -> Channel | None:
    key = {"kind": {"S": CHANNEL}, "name": {"S": channel_id}}
    with translated():
        found = get_item(tables.name(tables.CONFIG), key)
    return None if found is None else channel(items.plain(found))


def api_key_for(found: Channel) -> str | None:
    """The provider key to send; read from SSM once per container and key version."""
    if not found.api_key_parameter:
        return found.api_key
    try:
        return secrets.ssm_parameter(found.api_key_parameter, get_settings())
    except aws_errors() as exc:
        raise ServiceUnavailable("The channel's key could not be read.") from exc


# Prices, group ratios, the auto order -------------------------------------------------------------
def load_prices() -> dict[str, ModelPrice]:
    return {item["name"]: ModelPrice.from_json(item.get("body") or {}) for item in _query(PRICE)}


def load_group_ratios() -> dict[str, Decimal]:
    return {item["name"]: Decimal(str(item["body"]["ratio"])) for item in _query(GROUP)}


def load_auto_order() -> tuple[str, ...]:
    """The order ``auto`` keys try groups in, read now (empty until the operator sets one)."""
    for item in _query(AUTO_ORDER):
        order = (item.get("body") or {}).get("order") or []
        return tuple(str(group) for group in order)
    return ()
