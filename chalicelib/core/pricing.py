"""Money in integer units (pure): 500,000 units = US$1.00, so one unit is US$0.000002.

Every amount stored or compared is an ``int`` of units. US dollars appear only at the edges, as
decimal strings parsed with ``Decimal`` (never floats). A cost is rounded *up* to the next unit so
that many small calls can never add up to less than what upstream billed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation

UNITS_PER_USD = 500_000
USD_PLACES = Decimal("0.000001")
MTOK = 1_000_000


class MoneyError(ValueError):
    """A decimal string that is not a valid amount (the caller names the field)."""


def parse_decimal(text: str, *, allow_zero: bool = True) -> Decimal:
    if not isinstance(text, str):
        raise MoneyError('must be a decimal string such as "1.50"')
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise MoneyError('must be a decimal string such as "1.50"') from exc
    if not value.is_finite():
        raise MoneyError("must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise MoneyError("must be positive" if not allow_zero else "must not be negative")
    return value


def usd_to_units(usd: str) -> int:
    """Exact conversion of a USD decimal string; refuses amounts finer than one unit."""
    value = parse_decimal(usd) * UNITS_PER_USD
    if value != value.to_integral_value():
        raise MoneyError("has more precision than one unit (US$0.000002)")
    return int(value)


def units_to_usd(units: int | None) -> str | None:
    if units is None:
        return None
    return str((Decimal(units) / UNITS_PER_USD).quantize(USD_PLACES))


def ceil_units(usd: Decimal) -> int:
    return int((usd * UNITS_PER_USD).to_integral_value(rounding=ROUND_CEILING))


# Every way a provider bills, as ``PUT /admin/models/{model}`` names it. A model may combine them,
# as providers do (an image model billed per image and by tokens; a call with a flat fee on top).
TOKEN_FIELDS = ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok")
PRICE_FIELDS = (
    *TOKEN_FIELDS,
    "usd_per_request",
    "usd_per_image",
    "usd_per_mchar",
    "usd_per_minute",
    "usd_per_second",
)
MCHAR = 1_000_000
SECONDS_PER_MINUTE = 60
# Not a price but a bound stored with it: the longest audio a transcription of this model is
# reserved for (unset: the deployment's SLUICE_MAX_AUDIO_SECONDS). A whole number of seconds.
MAX_AUDIO_SECONDS_FIELD = "max_audio_seconds"
MAX_AUDIO_SECONDS_LIMIT = 86_400


@dataclass(frozen=True)
class ModelPrice:
    """A model's prices in US$; a field left None is not billed.

    ``cached_input_usd_per_mtok`` prices the cached part of the prompt (providers report it as a
    subset of the prompt tokens); unset, cached tokens cost the input price.
    """

    input_usd_per_mtok: Decimal | None = None
    output_usd_per_mtok: Decimal | None = None
    cached_input_usd_per_mtok: Decimal | None = None
    usd_per_request: Decimal | None = None
    usd_per_image: Decimal | None = None
    usd_per_mchar: Decimal | None = None
    usd_per_minute: Decimal | None = None
    usd_per_second: Decimal | None = None
    max_audio_seconds: int | None = None

    def audio_seconds_bound(self, default: int) -> int:
        """The longest audio a transcription is reserved for: this model's, else ``default``."""
        return self.max_audio_seconds if self.max_audio_seconds is not None else default

    @property
    def is_flat(self) -> bool:
        """No part of the price depends on tokens: the output cap cannot change the cost."""
        return all(getattr(self, name) is None for name in TOKEN_FIELDS)

    def to_json(self) -> dict[str, str | int]:
        """Prices as decimal strings; ``max_audio_seconds`` (when set) as an integer."""
        found: dict[str, str | int] = {
            name: str(value) for name in PRICE_FIELDS if (value := getattr(self, name)) is not None
        }
        if self.max_audio_seconds is not None:
            found[MAX_AUDIO_SECONDS_FIELD] = self.max_audio_seconds
        return found

    @classmethod
    def from_json(cls, body: dict[str, object]) -> ModelPrice:
        """The stored form back (written by ``to_json``); unknown keys ignored."""
        seconds = body.get(MAX_AUDIO_SECONDS_FIELD)
        return cls(
            **{
                name: Decimal(str(body[name]))
                for name in PRICE_FIELDS
                if body.get(name) is not None
            },
            # DynamoDB hands numbers back as Decimal.
            max_audio_seconds=None if seconds is None else int(Decimal(str(seconds))),
        )


@dataclass(frozen=True)
class Metered:
    """What one call consumed, in each billed dimension (``input_tokens`` includes the cached)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    requests: int = 1
    images: int = 0
    characters: int = 0
    audio_seconds: Decimal = Decimal(0)
    video_seconds: Decimal = Decimal(0)


def _rate(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


def price_usd(price: ModelPrice, used: Metered) -> Decimal:
    """The exact US$ of one call, before the group ratio and rounding."""
    cached = min(max(used.cached_input_tokens, 0), used.input_tokens)
    cached_rate = (
        price.cached_input_usd_per_mtok
        if price.cached_input_usd_per_mtok is not None
        else price.input_usd_per_mtok
    )
    tokens = (
        Decimal(used.input_tokens - cached) * _rate(price.input_usd_per_mtok)
        + Decimal(cached) * _rate(cached_rate)
        + Decimal(used.output_tokens) * _rate(price.output_usd_per_mtok)
    ) / MTOK
    return (
        tokens
        + used.requests * _rate(price.usd_per_request)
        + used.images * _rate(price.usd_per_image)
        + Decimal(used.characters) * _rate(price.usd_per_mchar) / MCHAR
        + used.audio_seconds * _rate(price.usd_per_minute) / SECONDS_PER_MINUTE
        + used.video_seconds * _rate(price.usd_per_second)
    )


def metered_cost_units(price: ModelPrice, used: Metered, ratio: Decimal = Decimal(1)) -> int:
    """ceil(USD x 500,000 x group ratio) for one call, whatever it consumed."""
    return ceil_units(price_usd(price, used) * ratio)


def cost_units(
    price: ModelPrice, prompt_tokens: int, completion_tokens: int, ratio: Decimal = Decimal(1)
) -> int:
    """ceil(USD x 500,000 x group ratio) for one call billed by its tokens (and per request)."""
    return metered_cost_units(
        price, Metered(input_tokens=prompt_tokens, output_tokens=completion_tokens), ratio
    )


def max_affordable_output(
    price: ModelPrice, prompt_tokens: int, budget_units: int, ratio: Decimal = Decimal(1)
) -> int:
    """The most completion tokens whose worst-case cost, with the prompt, fits ``budget_units``.

    ``quota.plan`` caps the ``max_tokens`` sent upstream with it -- the client's own value or,
    when it set none, the model default -- so that a call can never cost more than what the key
    and account have left.
    """
    per_output = (price.output_usd_per_mtok or Decimal(0)) * ratio * UNITS_PER_USD / MTOK
    if per_output <= 0:
        return 2**31 - 1
    # The prompt's (and any per-request fee's) exact cost, not rounded up on its own: only the
    # total is rounded.
    prompt_cost = price_usd(price, Metered(input_tokens=prompt_tokens)) * ratio * UNITS_PER_USD
    left = Decimal(budget_units) - prompt_cost
    if left <= 0:
        return 0
    tokens = math.floor(left / per_output)
    # ceil() of the total may add one unit; step down until the exact cost fits.
    while tokens > 0 and cost_units(price, prompt_tokens, tokens, ratio) > budget_units:
        tokens -= 1
    return tokens
