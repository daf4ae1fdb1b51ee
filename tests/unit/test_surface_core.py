"""Pure rules behind the Responses API, completions and the auto group."""

from __future__ import annotations

import json

import pytest

from chalicelib.core import groups, payloads, token_count
from chalicelib.core.channels import Channel, endpoints_by_model
from chalicelib.upstream.sse import StreamFailed, usage_counts
from chalicelib.upstream.typed_sse import ResponsesTranslator


def test_auto_picks_the_first_granted_group_that_serves_the_model() -> None:
    order = ["vip", "default", "cheap"]
    serves = {"default", "cheap"}.__contains__
    assert groups.auto_choice(order, ["cheap", "default"], serves) == "default"
    assert groups.auto_choice(order, ["vip"], serves) is None
    assert groups.may_use_auto(["default"], order)
    assert groups.may_use_auto(["auto"], [])
    assert not groups.may_use_auto(["other"], order)


def test_usage_is_read_in_either_naming_with_its_cached_part() -> None:
    responses = {
        "input_tokens": 10,
        "output_tokens": 3,
        "input_tokens_details": {"cached_tokens": 4},
    }
    chat = {
        "prompt_tokens": 10,
        "completion_tokens": 3,
        "prompt_tokens_details": {"cached_tokens": 99},
    }
    assert usage_counts(responses) == (10, 3, 4)
    assert usage_counts(chat) == (10, 3, 10)  # never more cached than prompt
    assert usage_counts({"input_tokens": "x"}) is None


def test_the_responses_input_bound_covers_instructions_input_and_images() -> None:
    text = {"input": "héllo", "instructions": "be brief"}
    assert token_count.prompt_tokens_upper_bound("responses", text) >= len("héllo".encode()) + 8
    image = {
        "input": [
            {
                "role": "user",
                "content": [{"type": "input_image", "image_url": "data:" + "A" * 900_000}],
            }
        ]
    }
    assert token_count.prompt_tokens_upper_bound("responses", image) < 60_000
    assert token_count.prompt_tokens_upper_bound("completions", {"prompt": [[1, 2, 3], "ab"]}) >= 5


def test_output_caps_per_kind_are_written_where_the_api_reads_them() -> None:
    body: dict[str, object] = {}
    payloads.set_output_cap(body, 50, "responses")
    assert body == {"max_output_tokens": 50}
    body = {}
    payloads.set_output_cap(body, 16, "completions")
    assert body == {"max_tokens": 16}
    assert payloads.requested_output({"max_output_tokens": 7}, "responses") == 7


def _feed(translator: ResponsesTranslator, name: str, data: dict[str, object]) -> str | None:
    translator.feed(f"event: {name}")
    translator.feed("data: " + json.dumps(data))
    out = translator.feed("")
    return out.event if out is not None else None


def test_the_typed_stream_is_passed_on_and_read_for_usage_and_ids() -> None:
    translator = ResponsesTranslator(
        client_model="mine", upstream_model="theirs", client_wants_usage=False
    )
    created = {"type": "response.created", "response": {"id": "resp_1", "model": "theirs"}}
    assert '"model":"mine"' in (_feed(translator, "response.created", created) or "")
    _feed(
        translator,
        "response.output_text.delta",
        {"type": "response.output_text.delta", "delta": "Hi"},
    )
    usage = {"input_tokens": 5, "output_tokens": 1, "input_tokens_details": {"cached_tokens": 2}}
    done = {"type": "response.completed", "response": {"id": "resp_1", "usage": usage}}
    assert (_feed(translator, "response.completed", done) or "").startswith(
        "event: response.completed\n"
    )
    assert translator.done and translator.text == "Hi"
    assert translator.final_usage(100) == (5, 1, False)
    assert (translator.cached_tokens, translator.response_id) == (2, "resp_1")
    assert translator.closing_events(100) == []


def test_an_error_event_fails_the_typed_stream() -> None:
    translator = ResponsesTranslator(client_model="m", upstream_model="m", client_wants_usage=False)
    with pytest.raises(StreamFailed):
        _feed(translator, "error", {"type": "error", "message": "boom"})


def test_models_list_the_endpoints_operators_set_or_guess_them() -> None:
    channels = [
        Channel("a", "a", "http://x", ("gpt-x", "text-embedding-y")),
        Channel("b", "b", "http://x", ("only-chat",), endpoints=("chat/completions",)),
        Channel("c", "c", "http://x", ("elsewhere",), group="vip"),
    ]
    listed = endpoints_by_model(channels, ["default"])
    assert listed == {
        "gpt-x": ["chat/completions", "responses", "completions"],
        "only-chat": ["chat/completions"],
        "text-embedding-y": ["embeddings"],
    }
    assert not channels[1].serves("only-chat", "default", "responses")
    assert channels[0].serves("gpt-x", "default", "responses")


def test_the_reservation_sizes_the_input_at_the_dearer_of_input_and_cached_rates() -> None:
    from decimal import Decimal

    from chalicelib.core import quota
    from chalicelib.core.pricing import Metered, ModelPrice, metered_cost_units

    # A price list where cached input costs more than fresh input (unusual, but configurable)
    odd = ModelPrice(
        input_usd_per_mtok=Decimal("1"),
        cached_input_usd_per_mtok=Decimal("3"),
        output_usd_per_mtok=Decimal("2"),
    )
    plan = quota.plan(odd, Decimal(1), 1000, 10, None)
    all_cached = Metered(input_tokens=1000, cached_input_tokens=1000, output_tokens=10)
    assert plan.reserve_units >= metered_cost_units(odd, all_cached)
