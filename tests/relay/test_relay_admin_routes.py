"""Admin routes for channels, prices and group ratios (chalice test client on moto)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from chalicelib.core.pricing import ModelPrice
from chalicelib.store import config as config_store
from chalicelib.store.models import ConfigItem

PROVIDER_KEY = "sk-provider-" + "s" * 30
CHANNEL = {
    "id": "openai-main",
    "name": "OpenAI main",
    "base_url": "https://api.openai.com/v1/",
    "api_key": PROVIDER_KEY,
    "models": ["gpt-4o-mini", "gpt-4o"],
    "model_map": {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"},
    "priority": 10,
    "weight": 3,
}


def test_created_channel_is_shown_without_its_key_and_stored(config_api: Any) -> None:
    # GIVEN the admin key
    # WHEN a channel is created
    status, body = config_api.call("POST", "/admin/channels", CHANNEL)
    # THEN 201 with the channel, a flag for the key, and no trace of the key itself
    assert status == 201, body
    assert body["id"] == "openai-main"
    assert body["base_url"] == "https://api.openai.com/v1"
    assert (body["priority"], body["weight"], body["enabled"], body["group"]) == (
        10,
        3,
        True,
        "default",
    )
    assert body["api_key_set"] is True
    assert PROVIDER_KEY not in str(body) and "api_key" not in body
    # AND the store serves it to the relay with the key
    stored = config_store.get_channel("openai-main")
    assert stored is not None and config_store.api_key_for(stored) == PROVIDER_KEY


def test_channel_listing_and_reading_never_show_the_key(config_api: Any) -> None:
    # GIVEN a channel
    config_api.call("POST", "/admin/channels", CHANNEL)
    # WHEN it is listed and read
    list_status, listing = config_api.call("GET", "/admin/channels")
    get_status, single = config_api.call("GET", "/admin/channels/openai-main")
    # THEN both show it, one page, no key
    assert (list_status, get_status) == (200, 200)
    assert [c["id"] for c in listing["data"]] == ["openai-main"]
    assert listing["next_cursor"] is None
    assert single == listing["data"][0]
    assert PROVIDER_KEY not in str(listing) + str(single)


def test_channel_id_is_generated_when_not_given(config_api: Any) -> None:
    # GIVEN a body without id  WHEN created  THEN an id is generated and readable
    body = {k: v for k, v in CHANNEL.items() if k != "id"}
    status, created = config_api.call("POST", "/admin/channels", body)
    assert status == 201
    assert config_api.call("GET", f"/admin/channels/{created['id']}")[0] == 200


def test_duplicate_channel_id_is_409(config_api: Any) -> None:
    # GIVEN a channel  WHEN created again  THEN 409 naming the id
    config_api.call("POST", "/admin/channels", CHANNEL)
    status, body = config_api.call("POST", "/admin/channels", CHANNEL)
    assert status == 409
    assert body["error"]["param"] == "id"


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"base_url": "ftp://example.com/v1"}, "base_url"),
        ({"base_url": "https://user:pw@example.com/v1"}, "base_url"),
        ({"base_url": "not a url"}, "base_url"),
        ({"models": []}, "models"),
        ({"models": [""]}, "models.0"),
        ({"models": ["gpt-4o", "gpt-4o"]}, "models"),
        ({"weight": 0}, "weight"),
        ({"priority": "high"}, "priority"),
        ({"model_map": {"other": "x"}}, "model_map"),
        ({"group": "has space"}, "group"),
        ({"wieght": 2}, "wieght"),
        ({"id": "bad id!"}, "id"),
    ],
)
def test_invalid_channel_is_400_naming_the_field_and_stores_nothing(
    change: dict[str, Any], param: str, config_api: Any
) -> None:
    # GIVEN a channel body with one bad field
    # WHEN it is posted
    status, body = config_api.call("POST", "/admin/channels", {**CHANNEL, **change})
    # THEN 400 in the OpenAI shape naming the field, and nothing stored
    assert status == 400, body
    assert body["error"]["param"] == param
    assert body["error"]["type"] == "invalid_request_error"
    assert list(ConfigItem.query("channel")) == []


def test_patch_changes_only_the_given_fields_and_keeps_the_key(config_api: Any) -> None:
    # GIVEN a channel
    config_api.call("POST", "/admin/channels", CHANNEL)
    # WHEN it is disabled and re-weighted
    status, body = config_api.call(
        "PATCH", "/admin/channels/openai-main", {"enabled": False, "weight": 7}
    )
    # THEN only those fields changed, and the key is still there
    assert status == 200, body
    assert (body["enabled"], body["weight"], body["priority"]) == (False, 7, 10)
    stored = config_store.get_channel("openai-main")
    assert stored is not None
    assert (stored.enabled, stored.weight, stored.revision) == (False, 7, 2)
    assert config_store.api_key_for(stored) == PROVIDER_KEY


def test_patch_with_null_api_key_removes_it_but_other_nulls_are_refused(config_api: Any) -> None:
    # GIVEN a channel with a key
    config_api.call("POST", "/admin/channels", CHANNEL)
    # WHEN the key is set to null
    status, body = config_api.call("PATCH", "/admin/channels/openai-main", {"api_key": None})
    # THEN it is gone
    assert (status, body["api_key_set"]) == (200, False)
    # AND a null weight is a 400
    status, body = config_api.call("PATCH", "/admin/channels/openai-main", {"weight": None})
    assert (status, body["error"]["param"]) == (400, "weight")


def test_patch_that_orphans_a_model_mapping_is_refused(config_api: Any) -> None:
    # GIVEN a channel mapping gpt-4o-mini
    config_api.call("POST", "/admin/channels", CHANNEL)
    # WHEN gpt-4o-mini is removed from its models
    status, body = config_api.call("PATCH", "/admin/channels/openai-main", {"models": ["gpt-4o"]})
    # THEN 400 naming model_map, and the stored models are unchanged
    assert (status, body["error"]["param"]) == (400, "model_map")
    stored = config_store.get_channel("openai-main")
    assert stored is not None and stored.models == ("gpt-4o-mini", "gpt-4o")


def test_unknown_channel_is_404_for_read_patch_and_delete(config_api: Any) -> None:
    # GIVEN no channel  WHEN it is read, patched or deleted  THEN 404 each time
    for method, body in (("GET", None), ("PATCH", {"weight": 2}), ("DELETE", None)):
        status, answer = config_api.call(method, "/admin/channels/nope", body)
        assert status == 404, (method, answer)
        assert answer["error"]["code"] == "not_found"


def test_deleted_channel_is_gone(config_api: Any) -> None:
    # GIVEN a channel  WHEN deleted  THEN 204, and the store no longer has it
    config_api.call("POST", "/admin/channels", CHANNEL)
    status, _ = config_api.call("DELETE", "/admin/channels/openai-main")
    assert status == 204
    assert config_store.get_channel("openai-main") is None


def test_prices_are_set_listed_and_deleted(config_api: Any) -> None:
    # GIVEN the admin key
    # WHEN a per-token and a flat price are set
    per_token = {"input_usd_per_mtok": "0.15", "output_usd_per_mtok": "0.60"}
    s1, b1 = config_api.call("PUT", "/admin/models/gpt-4o-mini", per_token)
    s2, b2 = config_api.call("PUT", "/admin/models/demo-flat", {"usd_per_request": "0.002"})
    # THEN both answer with the price, and the listing shows them sorted
    assert (s1, s2) == (200, 200)
    assert b1 == {"model": "gpt-4o-mini", **per_token}
    assert b2 == {"model": "demo-flat", "usd_per_request": "0.002"}
    _, listing = config_api.call("GET", "/admin/models")
    assert [p["model"] for p in listing["data"]] == ["demo-flat", "gpt-4o-mini"]
    # AND a deleted price is gone from the relay's view
    assert config_api.call("DELETE", "/admin/models/demo-flat")[0] == 204
    assert config_store.price("demo-flat") is None
    assert config_api.call("DELETE", "/admin/models/demo-flat")[0] == 404


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"usd_per_request": "-1"},
        {"usd_per_request": 0.002},
        {"usd_per_image": "abc"},
        {"usd_per_pixel": "0.01"},
    ],
    ids=["empty", "negative", "float", "not-decimal", "unknown-field"],
)
def test_invalid_price_is_400_and_stores_nothing(body: dict[str, Any], config_api: Any) -> None:
    # GIVEN an invalid price body  WHEN put  THEN 400 and nothing stored
    status, answer = config_api.call("PUT", "/admin/models/gpt-4o", body)
    assert status == 400, answer
    assert answer["error"]["param"] is not None
    assert config_store.price("gpt-4o") is None


def test_price_fields_combine_and_read_back_exactly(config_api: Any) -> None:
    # GIVEN an image model billed per image and by tokens, with a cached-input price
    body = {
        "input_usd_per_mtok": "5",
        "cached_input_usd_per_mtok": "1.25",
        "usd_per_image": "0.04",
        "usd_per_request": "0.001",
    }
    # WHEN put  THEN it answers and stores exactly those fields (output defaults to free)
    status, answer = config_api.call("PUT", "/admin/models/gpt-image-1", body)
    assert status == 200, answer
    assert answer == {"model": "gpt-image-1", "output_usd_per_mtok": "0", **body}
    assert config_store.price("gpt-image-1") == ModelPrice(
        input_usd_per_mtok=Decimal("5"),
        output_usd_per_mtok=Decimal("0"),
        cached_input_usd_per_mtok=Decimal("1.25"),
        usd_per_image=Decimal("0.04"),
        usd_per_request=Decimal("0.001"),
    )
    # AND a speech model's per-character price alone is a valid price
    status, answer = config_api.call("PUT", "/admin/models/tts-1", {"usd_per_mchar": "15"})
    assert (status, answer) == (200, {"model": "tts-1", "usd_per_mchar": "15"})


def test_a_models_max_audio_seconds_is_stored_with_its_price_and_dropped_with_it(
    config_api: Any,
) -> None:
    # GIVEN a per-minute transcription price with a maximum duration of its own
    body = {"usd_per_minute": "0.006", "max_audio_seconds": 600}
    # WHEN put  THEN it answers and stores the maximum as an integer beside the price
    status, answer = config_api.call("PUT", "/admin/models/whisper-1", body)
    assert (status, answer) == (200, {"model": "whisper-1", **body})
    assert config_store.price("whisper-1") == ModelPrice(
        usd_per_minute=Decimal("0.006"), max_audio_seconds=600
    )
    assert config_api.call("GET", "/admin/models")[1]["data"] == [{"model": "whisper-1", **body}]
    # AND a later price without it drops it (the setting applies again)
    config_api.call("PUT", "/admin/models/whisper-1", {"usd_per_minute": "0.006"})
    assert config_store.price("whisper-1") == ModelPrice(usd_per_minute=Decimal("0.006"))


@pytest.mark.parametrize(
    "seconds",
    [0, -5, "600", 1.5, True, None, 86_401],
    ids=["zero", "negative", "string", "float", "bool", "alone", "over-a-day"],
)
def test_max_audio_seconds_must_be_a_positive_integer_and_bad_ones_store_nothing(
    seconds: Any, config_api: Any
) -> None:
    # GIVEN a price with a bad maximum duration (or the maximum alone, which prices nothing)
    body = {"usd_per_minute": "0.006", "max_audio_seconds": seconds}
    if seconds is None:
        body = {"max_audio_seconds": 600}
    # WHEN put  THEN an OpenAI-shaped 400 names the field, and nothing is stored
    status, answer = config_api.call("PUT", "/admin/models/whisper-1", body)
    assert status == 400, answer
    assert answer["error"]["type"] == "invalid_request_error"
    expected = "input_usd_per_mtok" if seconds is None else "max_audio_seconds"
    assert answer["error"]["param"] == expected
    assert config_store.price("whisper-1") is None


def test_group_ratio_is_set_and_listed(config_api: Any) -> None:
    # GIVEN the admin key  WHEN a group ratio is set
    status, body = config_api.call("PUT", "/admin/groups/vip", {"ratio": "1.5"})
    # THEN it is answered, listed and used by the relay's reader
    assert (status, body) == (200, {"group": "vip", "ratio": "1.5"})
    assert config_api.call("GET", "/admin/groups")[1]["data"] == [{"group": "vip", "ratio": "1.5"}]
    assert str(config_store.group_ratio("vip")) == "1.5"


@pytest.mark.parametrize("ratio", ["0", "-1", "abc"])
def test_group_ratio_must_be_a_positive_decimal(ratio: str, config_api: Any) -> None:
    # GIVEN a bad ratio  WHEN put  THEN 400 naming ratio, nothing stored
    status, body = config_api.call("PUT", "/admin/groups/vip", {"ratio": ratio})
    assert (status, body["error"]["param"]) == (400, "ratio")
    assert config_store.load_group_ratios() == {}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/channels"),
        ("POST", "/admin/channels"),
        ("PUT", "/admin/models/gpt-4o"),
        ("GET", "/admin/groups"),
    ],
)
def test_configuration_routes_need_the_admin_key(method: str, path: str, config_api: Any) -> None:
    # GIVEN no key, then a key that is not the admin's
    # WHEN a configuration route is called  THEN 401 without a key and 401 with a wrong one
    assert config_api.call(method, path, {"ratio": "1"}, key=None)[0] == 401
    assert config_api.call(method, path, {"ratio": "1"}, key="sk-nope")[0] == 401
    assert list(ConfigItem.query("price")) == []
