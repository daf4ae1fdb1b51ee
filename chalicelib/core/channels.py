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
from collections.abc import Callable, Iterable, Sequence
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
    "endpoints": "string list",
    "group": "string",
    "priority": "integer",
    "weight": "integer",
    "enabled": "boolean",
    "api_key_set": "boolean",
    "created_at": "time",
    "updated_at": "time",
}


# The endpoints a model can be served on, named by their path under /v1 (``GET /v1/models``
# lists them per model). A call's kind is one of them.
ENDPOINTS = (
    "chat/completions",
    "responses",
    "completions",
    "embeddings",
    "moderations",
    "images/generations",
    "images/edits",
    "audio/speech",
    "audio/transcriptions",
    "audio/translations",
    "videos",
)
KIND_ENDPOINTS = {
    "chat": "chat/completions",
    "responses": "responses",
    "completions": "completions",
    "embeddings": "embeddings",
    "moderations": "moderations",
}
CHAT_ENDPOINTS = ("chat/completions", "responses", "completions")
# When a channel names no endpoints, a model's are guessed from its name (the first hint that
# appears in it), else it is a chat model. The guess only informs ``GET /v1/models``; routing
# filters by endpoint only where the operator listed them.
NAME_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("embed", ("embeddings",)),
    ("moderation", ("moderations",)),
    ("dall-e", ("images/generations", "images/edits")),
    ("image", ("images/generations", "images/edits")),
    ("tts", ("audio/speech",)),
    ("whisper", ("audio/transcriptions", "audio/translations")),
    ("transcribe", ("audio/transcriptions",)),
    ("sora", ("videos",)),
    ("video", ("videos",)),
)


def default_endpoints(model: str) -> tuple[str, ...]:
    lowered = model.lower()
    for hint, endpoints in NAME_HINTS:
        if hint in lowered:
            return endpoints
    return CHAT_ENDPOINTS


@dataclass(frozen=True)
class Channel:
    id: str
    name: str
    base_url: str
    models: tuple[str, ...]
    model_map: dict[str, str] = field(default_factory=dict)
    # The endpoints (``ENDPOINTS``) this channel serves its models on; empty: guessed per model.
    endpoints: tuple[str, ...] = ()
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

    def serves(self, model: str, group: str, kind: str | None = None) -> bool:
        """Enabled, in ``group``, serving ``model`` (and, when the operator listed this
        channel's endpoints, serving the ``kind`` of call on one of them)."""
        if not (self.enabled and self.group == group and model in self.models):
            return False
        endpoint = KIND_ENDPOINTS.get(kind or "")
        return not (self.endpoints and endpoint and endpoint not in self.endpoints)

    def endpoints_for(self, model: str) -> tuple[str, ...]:
        return self.endpoints or default_endpoints(model)

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
    channels: Iterable[Channel],
    model: str,
    group: str,
    rng: random.Random,
    limit: int,
    kind: str | None = None,
) -> list[Channel]:
    """The channels to try for ``model`` in ``group``, in order, at most ``limit`` of them."""
    eligible = sorted(
        (channel for channel in channels if channel.serves(model, group, kind)),
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


def endpoints_by_model(channels: Iterable[Channel], groups: Iterable[str]) -> dict[str, list[str]]:
    """Every model the enabled channels of ``groups`` serve, with its endpoints (in
    ``ENDPOINTS`` order), for ``GET /v1/models``."""
    wanted = set(groups)
    found: dict[str, set[str]] = {}
    for channel in channels:
        if channel.enabled and channel.group in wanted:
            for model in channel.models:
                found.setdefault(model, set()).update(channel.endpoints_for(model))
    return {
        model: [e for e in ENDPOINTS if e in found[model]]
        + sorted(e for e in found[model] if e not in ENDPOINTS)
        for model in sorted(found)
    }


def conversation_channel(
    channels: Iterable[Channel], groups: Sequence[str], may_use: Callable[[str], bool]
) -> Channel | None:
    """The channel a new conversation is created on, or None if no channel fits.

    A conversation names no model, yet only the provider that made it can use it, and every
    response in it must go there. So it is created where a response of this key could run:
    the first of ``groups`` (the key's group, or an ``auto`` key's ordered ones) with an
    enabled channel serving a Responses model the key ``may_use``; in that group, the channel
    a call would try first (highest ``priority``, then id). Deterministic rather than weighted:
    the choice binds the conversation for good, and an operator can predict (and steer) it by
    priority.
    """
    listed = list(channels)
    for group in groups:
        eligible = [
            channel
            for channel in listed
            if channel.enabled
            and channel.group == group
            and any(
                "responses" in channel.endpoints_for(model) and may_use(model)
                for model in channel.models
            )
        ]
        if eligible:
            return min(eligible, key=lambda channel: (-channel.priority, channel.id))
    return None
