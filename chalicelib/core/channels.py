"""Upstream channels and the order in which a request tries them (pure).

A channel is one OpenAI-compatible provider endpoint with its own key, the models it serves and
the group of API keys that may use it. For one request the candidates are the enabled channels of
the key's group that serve the model; they are tried highest ``priority`` first, and among equal
priorities in a weighted random order, so traffic spreads by ``weight`` while a failing channel
hands over to the next one. The whole order is drawn up front, which makes the failover sequence
a plain list that tests can predict from a seeded ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import groupby

# The channel as the admin API and the CLI show it: each field, in output order, and its JSON
# type ("time" is an ISO 8601 UTC string or null). The JSON renderer, the OpenAPI schema and the
# stored item are derived from this table. The provider key is not in it, only whether one is set
# (``api_key_set``, from ``Channel.has_api_key``), and must never be.
PUBLIC_FIELDS: dict[str, str] = {
    "id": "string",
    "name": "string",
    "base_url": "string",
    "models": "string list",
    "model_map": "string map",
    "group": "string",
    "priority": "integer",
    "weight": "integer",
    "enabled": "boolean",
    "api_key_set": "boolean",
    "created_at": "time",
    "updated_at": "time",
}


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    base_url: str
    models: tuple[str, ...]
    model_map: dict[str, str] = field(default_factory=dict)
    group: str = "default"
    priority: int = 0
    weight: int = 1
    enabled: bool = True
    # Locally the provider key itself; when deployed only ``api_key_parameter`` is set: the SSM
    # parameter (name:version) that holds it. Neither is ever rendered by an API.
    api_key: str | None = field(default=None, repr=False)
    api_key_parameter: str | None = None
    created_at: int = 0
    updated_at: int = 0
    # Bumped on every write; edits are conditional on it so two admins cannot interleave.
    revision: int = 0

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key or self.api_key_parameter)

    def serves(self, model: str, group: str) -> bool:
        return self.enabled and self.group == group and model in self.models

    def upstream_model(self, model: str) -> str:
        """The name upstream knows ``model`` by (``model_map``), or the same name."""
        return self.model_map.get(model, model)


def weighted_order(channels: Sequence[Channel], rng: random.Random) -> list[Channel]:
    """All of ``channels`` in a random order where each draw is proportional to ``weight``."""
    left = list(channels)
    ordered: list[Channel] = []
    while left:
        total = sum(max(channel.weight, 1) for channel in left)
        point = rng.random() * total
        for index, channel in enumerate(left):
            point -= max(channel.weight, 1)
            if point < 0 or index == len(left) - 1:
                ordered.append(left.pop(index))
                break
    return ordered


def failover_order(
    channels: Iterable[Channel], model: str, group: str, rng: random.Random, limit: int
) -> list[Channel]:
    """The channels to try for ``model`` in ``group``, in order, at most ``limit`` of them."""
    eligible = sorted(
        (channel for channel in channels if channel.serves(model, group)),
        key=lambda channel: (-channel.priority, channel.id),
    )
    ordered: list[Channel] = []
    for _, same_priority in groupby(eligible, key=lambda channel: channel.priority):
        ordered += weighted_order(list(same_priority), rng)
    return ordered[: max(limit, 1)]


def models_for_group(channels: Iterable[Channel], group: str) -> list[str]:
    """Every model some enabled channel of ``group`` serves, sorted."""
    return sorted(
        {
            model
            for channel in channels
            if channel.enabled and channel.group == group
            for model in channel.models
        }
    )
