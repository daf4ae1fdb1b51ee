"""Behaviour of money conversion and call pricing (chalicelib.core.pricing, pure)."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from chalicelib.core.pricing import (
    PRICE_FIELDS,
    UNITS_PER_USD,
    Metered,
    ModelPrice,
    MoneyError,
    ceil_units,
    cost_units,
    max_affordable_output,
    metered_cost_units,
    price_usd,
    units_to_usd,
    usd_to_units,
)

GPT = ModelPrice(input_usd_per_mtok=Decimal("2.50"), output_usd_per_mtok=Decimal("10"))
FLAT = ModelPrice(usd_per_request=Decimal("0.04"))


# --- usd_to_units ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usd", "units"),
    [
        ("1", 500_000),
        ("1.00", 500_000),
        ("0.000002", 1),
        ("0.000004", 2),
        ("0", 0),
        ("0.5", 250_000),
        ("12.345678", 6_172_839),
        (" 2 ", 1_000_000),
        ("1000000", 500_000_000_000),
    ],
)
def test_usd_to_units_is_exact(usd: str, units: int) -> None:
    assert usd_to_units(usd) == units
    assert isinstance(usd_to_units(usd), int)


@pytest.mark.parametrize("usd", ["0.000001", "0.0000021", "1.0000001", "0.123456789"])
def test_usd_to_units_refuses_amounts_finer_than_one_unit(usd: str) -> None:
    with pytest.raises(MoneyError, match="precision"):
        usd_to_units(usd)


@pytest.mark.parametrize("usd", ["-1", "-0.000002", "abc", "", "1e", "NaN", "Infinity", "1,5"])
def test_usd_to_units_refuses_negative_and_non_numbers(usd: str) -> None:
    with pytest.raises(MoneyError):
        usd_to_units(usd)


def test_usd_to_units_refuses_a_float() -> None:
    with pytest.raises(MoneyError):
        usd_to_units(1.5)  # type: ignore[arg-type]


# --- units_to_usd ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "usd"),
    [
        (500_000, "1.000000"),
        (1, "0.000002"),
        (0, "0.000000"),
        (6_172_839, "12.345678"),
        (-500_000, "-1.000000"),
        (None, None),
    ],
)
def test_units_to_usd_is_a_six_place_decimal_string(units: int | None, usd: str | None) -> None:
    assert units_to_usd(units) == usd


def test_units_round_trip_through_usd_exactly() -> None:
    for units in (*range(0, 2_000, 7), 10**12 + 3, 499_999, 500_001):
        text = units_to_usd(units)
        assert text is not None
        assert usd_to_units(text) == units


# --- cost_units -----------------------------------------------------------------------------


def test_cost_of_a_per_token_call_is_exact_when_it_lands_on_a_unit() -> None:
    # 1M input tokens at $2.50 + 100k output at $10/M = 2.50 + 1.00 = $3.50
    assert cost_units(GPT, 1_000_000, 100_000) == 3.5 * UNITS_PER_USD


def test_cost_rounds_up_to_the_next_unit() -> None:
    # 1 input token costs $0.0000025 = 1.25 units -> 2 units
    assert cost_units(GPT, 1, 0) == 2
    # 1 output token costs $0.00001 = 5 units exactly
    assert cost_units(GPT, 0, 1) == 5
    # nothing costs nothing
    assert cost_units(GPT, 0, 0) == 0


def test_cost_applies_the_group_ratio_before_rounding() -> None:
    # 1000 input tokens = $0.0025 = 1250 units; x1.5 = 1875; x0.3333 = 416.625 -> 417
    assert cost_units(GPT, 1000, 0) == 1250
    assert cost_units(GPT, 1000, 0, Decimal("1.5")) == 1875
    assert cost_units(GPT, 1000, 0, Decimal("0.3333")) == 417
    assert cost_units(GPT, 1000, 0, Decimal(0)) == 0


def test_flat_price_ignores_token_counts() -> None:
    assert cost_units(FLAT, 0, 0) == 20_000
    assert cost_units(FLAT, 10**6, 10**6) == 20_000
    assert cost_units(FLAT, 5, 5, Decimal("2")) == 40_000


def test_many_small_calls_never_cost_less_than_one_big_call() -> None:
    one_big = cost_units(GPT, 1000, 1000)
    many_small = sum(cost_units(GPT, 1, 1) for _ in range(1000))
    assert many_small >= one_big


def test_price_json_shows_one_kind() -> None:
    assert FLAT.to_json() == {"usd_per_request": "0.04"}
    assert GPT.to_json() == {"input_usd_per_mtok": "2.50", "output_usd_per_mtok": "10"}
    assert ModelPrice().to_json() == {}


def test_price_json_round_trips_every_field() -> None:
    every = ModelPrice(
        **{name: Decimal(f"0.{i + 1}") for i, name in enumerate(PRICE_FIELDS)}  # type: ignore[arg-type]
    )
    assert ModelPrice.from_json(every.to_json()) == every
    assert ModelPrice.from_json({"usd_per_image": "0.04", "legacy": "x"}) == ModelPrice(
        usd_per_image=Decimal("0.04")
    )


# --- metered costs: every billed dimension --------------------------------------------------


@pytest.mark.parametrize(
    ("price", "used", "usd"),
    [
        # cached prompt tokens are a subset of the prompt, at their own price
        (
            ModelPrice(
                input_usd_per_mtok=Decimal("2"),
                cached_input_usd_per_mtok=Decimal("0.5"),
                output_usd_per_mtok=Decimal("8"),
            ),
            Metered(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=500_000),
            Decimal("1.2") + Decimal("0.2") + Decimal("4"),
        ),
        # without a cached price, cached tokens cost the input price
        (GPT, Metered(input_tokens=1_000_000, cached_input_tokens=999), Decimal("2.5")),
        # more cached than prompt (a provider's bad report) never bills below zero
        (GPT, Metered(input_tokens=10, cached_input_tokens=50), Decimal("0.000025")),
        (ModelPrice(usd_per_image=Decimal("0.04")), Metered(images=3), Decimal("0.12")),
        (ModelPrice(usd_per_mchar=Decimal("15")), Metered(characters=2_000), Decimal("0.03")),
        (
            ModelPrice(usd_per_minute=Decimal("0.006")),
            Metered(audio_seconds=Decimal("90")),
            Decimal("0.009"),
        ),
        (
            ModelPrice(usd_per_second=Decimal("0.10")),
            Metered(video_seconds=Decimal("8")),
            Decimal("0.8"),
        ),
        # combined: per image, by tokens and a flat fee
        (
            ModelPrice(
                usd_per_image=Decimal("0.01"),
                input_usd_per_mtok=Decimal("5"),
                usd_per_request=Decimal("0.002"),
            ),
            Metered(images=2, input_tokens=1_000),
            Decimal("0.02") + Decimal("0.005") + Decimal("0.002"),
        ),
    ],
    ids=["cached", "cached-at-input", "cached-over", "images", "chars", "minutes", "video", "mix"],
)
def test_metered_cost_is_exact(price: ModelPrice, used: Metered, usd: Decimal) -> None:
    assert price_usd(price, used) == usd
    assert metered_cost_units(price, used) == ceil_units(usd)
    assert metered_cost_units(price, used, Decimal("1.5")) == ceil_units(usd * Decimal("1.5"))


def test_token_cost_is_the_metered_cost_of_tokens() -> None:
    assert cost_units(GPT, 123, 456) == metered_cost_units(
        GPT, Metered(input_tokens=123, output_tokens=456)
    )
    # a flat fee applies once whatever the tokens
    assert cost_units(FLAT, 10**6, 10**6) == usd_to_units("0.04")


def test_affordable_output_counts_a_per_request_fee() -> None:
    price = ModelPrice(output_usd_per_mtok=Decimal("10"), usd_per_request=Decimal("0.01"))
    budget = usd_to_units("0.02")
    tokens = max_affordable_output(price, 0, budget)
    assert cost_units(price, 0, tokens) <= budget < cost_units(price, 0, tokens + 1)
    assert tokens == 1_000


# --- max_affordable_output ------------------------------------------------------------------

PRICES = [
    GPT,
    ModelPrice(input_usd_per_mtok=Decimal("0.15"), output_usd_per_mtok=Decimal("0.60")),
    ModelPrice(input_usd_per_mtok=Decimal("3"), output_usd_per_mtok=Decimal("15")),
    ModelPrice(input_usd_per_mtok=Decimal("0.07"), output_usd_per_mtok=Decimal("0.3")),
    ModelPrice(input_usd_per_mtok=Decimal("0"), output_usd_per_mtok=Decimal("0.1")),
]
RATIOS = [Decimal(1), Decimal("0.5"), Decimal("1.3"), Decimal("2")]
PROMPTS = [0, 1, 7, 100, 1_234]
BUDGETS = [0, 1, 2, 3, 5, 17, 100, 999, 1_000, 12_345, 50_000]


def test_max_affordable_output_never_exceeds_the_budget_exhaustively() -> None:
    # GIVEN a bounded grid of prices, ratios, prompt sizes and budgets (1100 cases)
    for price, ratio, prompt, budget in itertools.product(PRICES, RATIOS, PROMPTS, BUDGETS):
        # WHEN the cap is computed
        tokens = max_affordable_output(price, prompt, budget, ratio)
        case = (price, ratio, prompt, budget, tokens)
        # THEN a call with that many output tokens fits the budget (0 means: send nothing)
        assert tokens >= 0, case
        if tokens > 0:
            assert cost_units(price, prompt, tokens, ratio) <= budget, case


def test_max_affordable_output_is_the_largest_count_that_fits_exhaustively() -> None:
    # GIVEN the same grid
    for price, ratio, prompt, budget in itertools.product(PRICES, RATIOS, PROMPTS, BUDGETS):
        tokens = max_affordable_output(price, prompt, budget, ratio)
        # THEN one more output token would not fit (no false refusals of affordable calls)
        assert cost_units(price, prompt, tokens + 1, ratio) > budget, (price, ratio, prompt)


def test_max_affordable_output_is_zero_when_the_prompt_alone_exceeds_the_budget() -> None:
    assert cost_units(GPT, 1_000, 0) == 1_250
    assert max_affordable_output(GPT, 1_000, 1_249) == 0
    assert max_affordable_output(GPT, 1_000, 0) == 0


def test_max_affordable_output_is_unbounded_when_output_is_free() -> None:
    free_output = ModelPrice(input_usd_per_mtok=Decimal("1"), output_usd_per_mtok=Decimal("0"))
    assert max_affordable_output(free_output, 10, 100) == 2**31 - 1
    assert max_affordable_output(FLAT, 10, 100) == 2**31 - 1
