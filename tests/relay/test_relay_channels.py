"""Channel choice: priority first, weighted random within a priority, bounded failover."""

from __future__ import annotations

import random
from collections import Counter

from chalicelib.core.channels import Channel, failover_order, models_for_group, weighted_order


def channel(channel_id: str, **fields: object) -> Channel:
    defaults: dict[str, object] = {
        "name": channel_id,
        "base_url": "http://127.0.0.1:9/v1",
        "models": ("gpt-4o-mini",),
    }
    return Channel(id=channel_id, **{**defaults, **fields})  # type: ignore[arg-type]


def test_higher_priority_channels_come_first_whatever_their_weight() -> None:
    # GIVEN a heavy low-priority channel and two light high-priority ones
    channels = [
        channel("low", priority=0, weight=1000),
        channel("high-a", priority=10),
        channel("high-b", priority=10),
    ]
    # WHEN the order is drawn 200 times
    rng = random.Random(1)
    orders = [failover_order(channels, "gpt-4o-mini", "default", rng, 3) for _ in range(200)]
    # THEN the low-priority channel is always last, and both high ones lead sometimes
    assert all(order[-1].id == "low" for order in orders)
    assert {order[0].id for order in orders} == {"high-a", "high-b"}


def test_equal_priority_channels_are_drawn_in_proportion_to_weight() -> None:
    # GIVEN weights 3 : 1 at the same priority
    channels = [channel("heavy", weight=3), channel("light", weight=1)]
    # WHEN 4,000 orders are drawn with a seeded generator
    rng = random.Random(42)
    firsts = Counter(
        failover_order(channels, "gpt-4o-mini", "default", rng, 2)[0].id for _ in range(4_000)
    )
    # THEN the heavy one leads about 75 % of the time
    share = firsts["heavy"] / 4_000
    assert 0.72 <= share <= 0.78


def test_failover_order_lists_every_channel_once_after_the_first() -> None:
    # GIVEN five channels at one priority
    channels = [channel(f"c{i}", weight=i + 1) for i in range(5)]
    # WHEN an order is drawn
    order = weighted_order(channels, random.Random(3))
    # THEN it is a permutation: every channel exactly once
    assert sorted(c.id for c in order) == [f"c{i}" for i in range(5)]


def test_failover_is_bounded_by_the_attempt_limit() -> None:
    # GIVEN six channels serving the model
    channels = [channel(f"c{i}", priority=i) for i in range(6)]
    # WHEN the order is limited to 3 attempts
    order = failover_order(channels, "gpt-4o-mini", "default", random.Random(0), 3)
    # THEN only the three highest priorities are tried, highest first
    assert [c.id for c in order] == ["c5", "c4", "c3"]


def test_only_enabled_channels_of_the_group_serving_the_model_are_candidates() -> None:
    # GIVEN channels that differ in model, group and state
    channels = [
        channel("ok"),
        channel("disabled", enabled=False),
        channel("other-group", group="vip"),
        channel("other-model", models=("gpt-4o",)),
    ]
    # WHEN candidates are chosen for gpt-4o-mini in the default group
    order = failover_order(channels, "gpt-4o-mini", "default", random.Random(0), 10)
    # THEN only the matching channel is left
    assert [c.id for c in order] == ["ok"]


def test_no_candidate_gives_an_empty_order() -> None:
    # GIVEN a channel for another model  WHEN asked for gpt-4o  THEN nothing to try
    assert failover_order([channel("a")], "gpt-4o", "default", random.Random(0), 3) == []


def test_model_map_renames_only_mapped_models() -> None:
    # GIVEN a channel mapping one model to the provider's name
    mapped = channel("a", models=("gpt-4o-mini", "gpt-4o"), model_map={"gpt-4o-mini": "demo-chat"})
    # WHEN the upstream names are asked for  THEN mapped and unmapped names come out right
    assert mapped.upstream_model("gpt-4o-mini") == "demo-chat"
    assert mapped.upstream_model("gpt-4o") == "gpt-4o"


def test_models_for_group_lists_enabled_channels_models_once_sorted() -> None:
    # GIVEN overlapping channels in two groups, one disabled
    channels = [
        channel("a", models=("gpt-4o", "gpt-4o-mini")),
        channel("b", models=("gpt-4o-mini", "text-embedding-3-small")),
        channel("c", models=("secret-model",), enabled=False),
        channel("d", models=("vip-model",), group="vip"),
    ]
    # WHEN the default group's models are listed
    listed = models_for_group(channels, "default")
    # THEN each model served by an enabled default channel appears once, sorted
    assert listed == ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"]
