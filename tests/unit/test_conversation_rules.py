"""Where a conversation is created, and what its calls may send on (pure)."""

from __future__ import annotations

import pytest

from chalicelib.core.channels import Channel, conversation_channel
from chalicelib.core.conversations import query_string
from chalicelib.core.errors import InvalidRequest


def _channel(channel_id: str, group: str, models: tuple[str, ...], **fields: object) -> Channel:
    return Channel(id=channel_id, name=channel_id, base_url="http://127.0.0.1:1/v1",
                   models=models, group=group, **fields)  # type: ignore[arg-type]  # fmt: skip


def test_a_conversation_goes_to_the_first_group_with_a_responses_channel_the_key_may_use() -> None:
    # GIVEN vip with only an embeddings channel and a chat-only one, default with two that fit
    channels = [
        _channel("embed", "vip", ("text-embedding-3-small",)),
        _channel("chat-only", "vip", ("gpt-4o",), endpoints=("chat/completions",)),
        _channel("b", "default", ("gpt-4o",), priority=5),
        _channel("a", "default", ("gpt-4o",), priority=5),
        _channel("low", "default", ("gpt-4o",), priority=1),
        _channel("off", "default", ("gpt-4o",), priority=9, enabled=False),
    ]

    # WHEN a key of groups vip then default asks  THEN default's highest priority, lowest id
    chosen = conversation_channel(channels, ["vip", "default"], lambda model: True)
    assert chosen is not None and chosen.id == "a"
    # AND a key that may not use gpt-4o has no channel at all
    assert conversation_channel(channels, ["vip", "default"], lambda m: m != "gpt-4o") is None


def test_only_documented_query_names_go_on_with_limit_and_order_checked() -> None:
    pairs = [("limit", "5"), ("order", "asc"), ("include[]", "a.b"), ("after", "")]
    allowed = ("after", "limit", "order", "include")
    assert query_string(pairs, allowed) == "limit=5&order=asc&include%5B%5D=a.b"
    for bad, param in (
        (("limit", "101"), "limit"),
        (("limit", "٣"), "limit"),
        (("order", "up"), "order"),
        (("cursor", "x"), "cursor"),
    ):
        with pytest.raises(InvalidRequest) as refused:
            query_string([bad], allowed)
        assert refused.value.param == param
