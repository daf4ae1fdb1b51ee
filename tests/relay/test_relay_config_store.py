"""The configuration store on moto and DynamoDB Local: channels, prices, ratios, cache, SSM."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest

from chalicelib.core.channels import Channel
from chalicelib.core.errors import Conflict, NotFound
from chalicelib.core.pricing import ModelPrice
from chalicelib.store import config as config_store
from chalicelib.store import config_reads
from chalicelib.store.models import ConfigItem

NOW = 1_700_000_000
KEY = "sk-provider-" + "p" * 30


def demo_channel(channel_id: str = "ch1", **fields: Any) -> Channel:
    defaults: dict[str, Any] = {
        "name": "primary",
        "base_url": "http://127.0.0.1:9000/v1",
        "models": ("gpt-4o-mini", "gpt-4o"),
        "model_map": {"gpt-4o-mini": "demo-chat"},
        "priority": 5,
        "weight": 2,
    }
    return Channel(id=channel_id, **{**defaults, **fields})


def raw_item(kind: str, name: str) -> dict[str, Any]:
    return ConfigItem.get(kind, name, consistent_read=True).body.as_dict()


def test_created_channel_reads_back_with_every_field(backend: Any) -> None:
    # GIVEN a channel with a key, a model map, a priority and a weight
    # WHEN it is created
    stored = config_store.create_channel(demo_channel(), KEY, NOW)
    # THEN it reads back identical, at revision 1, through both readers
    loaded = config_store.get_channel("ch1")
    assert loaded == stored
    assert loaded is not None
    assert loaded.model_map == {"gpt-4o-mini": "demo-chat"}
    assert (loaded.priority, loaded.weight, loaded.revision) == (5, 2, 1)
    assert config_store.load_channels() == [stored]
    assert config_store.api_key_for(loaded) == KEY


def test_creating_a_channel_with_a_taken_id_is_a_conflict(backend: Any) -> None:
    # GIVEN an existing channel
    config_store.create_channel(demo_channel(), KEY, NOW)
    # WHEN another is created with the same id
    with pytest.raises(Conflict):
        config_store.create_channel(demo_channel(name="impostor"), "sk-other-key-123", NOW + 1)
    # THEN the first one is untouched
    assert raw_item("channel", "ch1")["name"] == "primary"
    assert raw_item("channel", "ch1")["api_key"] == KEY


def test_update_bumps_the_revision_and_refuses_a_stale_write(backend: Any) -> None:
    # GIVEN a channel read by two admins
    current = config_store.create_channel(demo_channel(), KEY, NOW)
    # WHEN the first saves a change
    first = config_store.update_channel(
        current, Channel(**{**current.__dict__, "weight": 9}), config_store.KEEP, NOW + 5
    )
    # THEN it is stored at revision 2 with the key kept
    assert (first.weight, first.revision, first.updated_at) == (9, 2, NOW + 5)
    assert raw_item("channel", "ch1")["api_key"] == KEY
    # AND the second admin's write, based on revision 1, is refused
    with pytest.raises(Conflict):
        config_store.update_channel(
            current, Channel(**{**current.__dict__, "weight": 1}), config_store.KEEP, NOW + 6
        )
    assert raw_item("channel", "ch1")["weight"] == 9


def test_update_with_no_key_removes_the_stored_key(backend: Any) -> None:
    # GIVEN a channel with a key
    current = config_store.create_channel(demo_channel(), KEY, NOW)
    # WHEN it is updated with api_key None
    updated = config_store.update_channel(current, current, None, NOW + 1)
    # THEN the item no longer holds a key
    assert updated.has_api_key is False
    assert "api_key" not in raw_item("channel", "ch1")


def test_deleting_a_channel_removes_it_and_a_second_delete_is_not_found(backend: Any) -> None:
    # GIVEN a channel
    config_store.create_channel(demo_channel(), KEY, NOW)
    # WHEN it is deleted
    config_store.delete_channel("ch1")
    # THEN it is gone, and deleting again is a 404
    assert config_store.get_channel("ch1") is None
    with pytest.raises(NotFound):
        config_store.delete_channel("ch1")


def test_prices_and_group_ratios_read_back_exactly(backend: Any) -> None:
    # GIVEN a per-token price, a flat price and a group ratio
    config_store.set_price("gpt-4o-mini", ModelPrice(Decimal("0.15"), Decimal("0.60")), NOW)
    config_store.set_price("demo-flat", ModelPrice(usd_per_request=Decimal("0.002")), NOW)
    config_store.set_group_ratio("vip", Decimal("1.5"), NOW)
    # WHEN they are read through the cached readers
    # THEN the decimals are exact and an unknown group pays 1x
    assert config_store.price("gpt-4o-mini") == ModelPrice(Decimal("0.15"), Decimal("0.60"))
    assert config_store.price("demo-flat") == ModelPrice(usd_per_request=Decimal("0.002"))
    assert config_store.price("unknown") is None
    assert config_store.group_ratio("vip") == Decimal("1.5")
    assert config_store.group_ratio("nobody") == Decimal(1)
    assert raw_item("price", "gpt-4o-mini") == {
        "input_usd_per_mtok": "0.15",
        "output_usd_per_mtok": "0.60",
    }


def test_deleting_a_missing_price_is_not_found(backend: Any) -> None:
    # GIVEN no price  WHEN deleted  THEN 404 naming the model
    with pytest.raises(NotFound) as raised:
        config_store.delete_price("gpt-4o")
    assert raised.value.param == "model"


def test_cached_readers_serve_the_copy_until_invalidated_or_expired(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a clock under test control and a cached price
    clock = {"now": 1000.0}
    monkeypatch.setattr(config_reads, "_clock", lambda: clock["now"])
    config_store.set_price("m", ModelPrice(Decimal("1"), Decimal("1")), NOW)
    assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))
    # WHEN the item changes behind the cache's back (another container's write)
    ConfigItem("price", "m", body={"usd_per_request": "0.5"}, updated_at=NOW).save()
    # THEN the copy is served while it is fresh
    assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))
    # AND the new value is read once the cache time has passed
    clock["now"] += backend.key_cache_seconds + 0.001
    assert config_store.price("m") == ModelPrice(usd_per_request=Decimal("0.5"))


def test_writes_through_the_store_invalidate_this_containers_cache(backend: Any) -> None:
    # GIVEN cached channels (none yet)
    assert config_store.channels() == []
    # WHEN a channel is created through the store
    config_store.create_channel(demo_channel(), KEY, NOW)
    # THEN the cached reader sees it at once
    assert [c.id for c in config_store.channels()] == ["ch1"]


def test_malformed_channel_items_are_skipped_not_fatal(backend: Any) -> None:
    # GIVEN a good channel and a hand-edited item without base_url
    config_store.create_channel(demo_channel(), KEY, NOW)
    ConfigItem("channel", "broken", body={"name": "x"}, updated_at=NOW).save()
    # WHEN channels are loaded  THEN the good one is served
    assert [c.id for c in config_store.load_channels()] == ["ch1"]


def test_deployed_key_lives_in_ssm_and_only_its_name_in_dynamodb(
    tables: Any, env: Callable[..., Any]
) -> None:
    # GIVEN a deployed stage with an SSM prefix (SSM is moto's here)
    env(SLUICE_CHANNEL_SECRET_SSM_PREFIX="/sluice/test/channels/")
    # WHEN a channel is created, then its key rotated
    stored = config_store.create_channel(demo_channel(), KEY, NOW)
    rotated = config_store.update_channel(stored, stored, "sk-rotated-" + "r" * 20, NOW + 1)
    # THEN DynamoDB holds only the parameter's name and version, never the key
    item = raw_item("channel", "ch1")
    assert "api_key" not in item
    assert item["api_key_parameter"] == "/sluice/test/channels/ch1:2"
    assert KEY not in repr(item) and "sk-rotated" not in repr(item)
    # AND the SSM parameter is a SecureString with the latest key
    ssm = boto3.client("ssm", region_name="us-east-1")
    parameter = ssm.get_parameter(Name="/sluice/test/channels/ch1", WithDecryption=True)
    assert parameter["Parameter"]["Type"] == "SecureString"
    assert parameter["Parameter"]["Value"] == "sk-rotated-" + "r" * 20
    # AND the relay reads the version the item points at (old containers' cache cannot serve it)
    assert config_store.api_key_for(stored) == KEY
    assert config_store.api_key_for(rotated) == "sk-rotated-" + "r" * 20


def test_deleting_a_deployed_channel_deletes_its_parameter(
    tables: Any, env: Callable[..., Any]
) -> None:
    # GIVEN a deployed channel with its key in SSM
    env(SLUICE_CHANNEL_SECRET_SSM_PREFIX="/sluice/test/channels/")
    config_store.create_channel(demo_channel(), KEY, NOW)
    # WHEN the channel is deleted
    config_store.delete_channel("ch1")
    # THEN the parameter is gone too
    ssm = boto3.client("ssm", region_name="us-east-1")
    assert ssm.describe_parameters()["Parameters"] == []


def test_a_cold_copy_is_read_in_one_round_of_queries_side_by_side(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support import on_dynamodb

    # GIVEN a price and a channel, and a container whose copy has expired (a quiet spell)
    config_store.create_channel(demo_channel(), KEY, NOW)
    config_store.set_price("m", ModelPrice(Decimal("1"), Decimal("1")), NOW)
    config_store.invalidate()
    queried: list[str] = []
    together = threading.Barrier(4)

    def count(params: dict[str, Any], **_: Any) -> None:
        # The lean client hands over the request; botocore, the serialized one (its body).
        request = params if "body" not in params else json.loads(params["body"])
        queried.append(request["ExpressionAttributeValues"][":kind"]["S"])
        # Each Query waits here for the other three: only kinds read side by side get past.
        together.wait(timeout=10)

    with on_dynamodb("before-call.dynamodb.Query", count, "count"):
        # WHEN a call reads the channels, then the price, the ratio and the auto order
        assert [c.id for c in config_store.channels()] == ["ch1"]
        assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))
        assert config_store.group_ratio("default") == Decimal(1)
        assert config_store.auto_order() == ()

    # THEN the four kinds were read side by side, once each, by the first reader (the copy
    # holds them all)
    assert not together.broken
    assert sorted(queried) == ["auto_order", "channel", "group", "price"]


def _reads(queried: list[str]) -> Any:
    """Records each configuration read: "stamp" for the stamp's GetItem, else the kind queried."""
    from support import on_dynamodb

    def record(event_name: str, params: dict[str, Any], **_: Any) -> None:
        request = params if "body" not in params else json.loads(params["body"])
        if event_name.endswith(".Query"):
            queried.append(request["ExpressionAttributeValues"][":kind"]["S"])
        elif request["Key"]["kind"]["S"] == config_reads.STAMP:
            queried.append("stamp")

    return on_dynamodb("before-call.dynamodb", record, "config-reads")


def test_every_write_through_the_store_bumps_the_stamp_after_its_item(backend: Any) -> None:
    # GIVEN no configuration yet
    assert config_reads.read_stamp() == 0
    # WHEN each kind of write is made
    writes: list[Callable[[], Any]] = [
        lambda: config_store.create_channel(demo_channel(), KEY, NOW),
        lambda: config_store.put_channel(demo_channel(), KEY, NOW),
        lambda: config_store.update_channel(
            config_store.require_channel("ch1"),
            demo_channel(name="renamed"),
            config_store.KEEP,
            NOW,
        ),
        lambda: config_store.set_price("m", ModelPrice(Decimal("1"), Decimal("1")), NOW),
        lambda: config_store.delete_price("m"),
        lambda: config_store.set_group_ratio("vip", Decimal("0.5"), NOW),
        lambda: config_store.set_auto_order(("vip", "default"), NOW),
        lambda: config_store.delete_channel("ch1"),
    ]
    for done, write in enumerate(writes, start=1):
        write()
        # THEN the stamp counts it
        assert config_reads.read_stamp() == done
    # AND a refused write does not
    with pytest.raises(NotFound):
        config_store.delete_price("m")
    assert config_reads.read_stamp() == len(writes)


def _confirmed_copy(backend: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """A container that has read the configuration (a price) twice, so that its copy is
    confirmed by the stamp (a first copy confirms nothing), under a clock the test moves."""
    clock = {"now": 1000.0}
    monkeypatch.setattr(config_reads, "_clock", lambda: clock["now"])
    config_store.set_price("m", ModelPrice(Decimal("1"), Decimal("1")), NOW)
    assert config_store.price("m") is not None
    clock["now"] += backend.key_cache_seconds
    assert config_store.price("m") is not None
    return clock


def test_an_expired_copy_is_kept_on_one_read_of_the_stamp_while_nothing_was_written(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a container with a confirmed copy
    clock = _confirmed_copy(backend, monkeypatch)
    queried: list[str] = []

    # WHEN its copy expires, with nothing written meanwhile
    clock["now"] += backend.key_cache_seconds
    with _reads(queried):
        assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))

    # THEN the stamp alone was read, and the copy kept
    assert queried == ["stamp"]


def test_a_write_in_another_container_is_seen_once_the_copy_expires(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a container with a confirmed copy
    clock = _confirmed_copy(backend, monkeypatch)
    # WHEN another container writes (through the store: its item, then the stamp) and this
    # one's copy is not dropped by it
    monkeypatch.setattr(config_reads._cache, "clear", lambda: None)
    config_store.set_price("m", ModelPrice(usd_per_request=Decimal("0.5")), NOW + 1)
    queried: list[str] = []

    # THEN this container serves its copy while it is fresh
    assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))
    # AND once it expires, finds the stamp moved and reads every kind again
    clock["now"] += backend.key_cache_seconds
    with _reads(queried):
        assert config_store.price("m") == ModelPrice(usd_per_request=Decimal("0.5"))
    assert queried[0] == "stamp"
    assert sorted(queried[1:]) == ["auto_order", "channel", "group", "price"]


def test_an_edit_made_outside_sluice_is_seen_once_the_copy_reaches_its_age_limit(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a container with a confirmed copy
    clock = _confirmed_copy(backend, monkeypatch)
    confirmed_at = clock["now"]
    # WHEN the item is edited by hand (the DynamoDB console: no stamp is bumped)
    ConfigItem("price", "m", body={"usd_per_request": "0.5"}, updated_at=NOW).save()

    # THEN the copy is kept while the stamp stands and the copy is young enough
    clock["now"] = confirmed_at + backend.key_cache_seconds + 1
    assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))
    # AND never served past the age limit: read again whole once it is reached
    clock["now"] = confirmed_at + config_reads.MAX_COPY_AGE_SECONDS
    assert config_store.price("m") == ModelPrice(usd_per_request=Decimal("0.5"))


def test_a_failed_stamp_bump_leaves_the_write_standing_and_says_so(
    backend: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from botocore.exceptions import ClientError

    # GIVEN a stamp that cannot be bumped
    def refuse(*_: Any, **__: Any) -> None:
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}
        raise ClientError(error, "UpdateItem")

    monkeypatch.setattr(ConfigItem, "update", refuse)
    # WHEN a price is set
    config_store.set_price("m", ModelPrice(Decimal("1"), Decimal("1")), NOW)
    # THEN the price is stored, the stamp did not move, and a warning names the failure
    assert config_store.load_prices() == {"m": ModelPrice(Decimal("1"), Decimal("1"))}
    assert config_reads.read_stamp() == 0
    assert "config_stamp_not_bumped" in capsys.readouterr().out


def test_a_call_after_a_quiet_spell_keeps_a_copy_near_its_age_limit_on_the_stamp_alone(
    backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a container with a confirmed copy, then a quiet spell that leaves it expired and
    # less than a life from its age limit
    clock = _confirmed_copy(backend, monkeypatch)
    confirmed_at = clock["now"]
    clock["now"] = confirmed_at + config_reads.MAX_COPY_AGE_SECONDS - backend.key_cache_seconds / 2
    queried: list[str] = []

    # WHEN the next call needs it
    with _reads(queried):
        assert config_store.price("m") == ModelPrice(Decimal("1"), Decimal("1"))

    # THEN the stamp alone was read before its answer: the copy is kept for what is left of
    # its age (the whole read is the next refresh's, in the background)
    assert queried == ["stamp"]
    # AND it is never served past the age limit
    ConfigItem("price", "m", body={"usd_per_request": "0.5"}, updated_at=NOW).save()
    clock["now"] = confirmed_at + config_reads.MAX_COPY_AGE_SECONDS
    assert config_store.price("m") == ModelPrice(usd_per_request=Decimal("0.5"))
