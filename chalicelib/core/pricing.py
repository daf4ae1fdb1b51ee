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


@dataclass(frozen=True)
class ModelPrice:
    """Either per-token (input/output per million tokens) or a flat price per request."""

    input_usd_per_mtok: Decimal | None = None
    output_usd_per_mtok: Decimal | None = None
    usd_per_request: Decimal | None = None

    @property
    def is_flat(self) -> bool:
        return self.usd_per_request is not None

    def to_json(self) -> dict[str, str]:
        if self.is_flat:
            return {"usd_per_request": str(self.usd_per_request)}
        return {
            "input_usd_per_mtok": str(self.input_usd_per_mtok or 0),
            "output_usd_per_mtok": str(self.output_usd_per_mtok or 0),
        }


def cost_units(
    price: ModelPrice, prompt_tokens: int, completion_tokens: int, ratio: Decimal = Decimal(1)
) -> int:
    """ceil(USD x 500,000 x group ratio) for one call."""
    if price.is_flat:
        usd = price.usd_per_request or Decimal(0)
    else:
        usd = (
            Decimal(prompt_tokens) * (price.input_usd_per_mtok or 0)
            + Decimal(completion_tokens) * (price.output_usd_per_mtok or 0)
        ) / MTOK
    return ceil_units(usd * ratio)


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
    # The prompt's exact cost, not rounded up on its own: only the total is rounded.
    prompt_cost = (
        Decimal(prompt_tokens) * (price.input_usd_per_mtok or 0) * ratio * UNITS_PER_USD / MTOK
    )
    left = Decimal(budget_units) - prompt_cost
    if left <= 0:
        return 0
    tokens = math.floor(left / per_output)
    # ceil() of the total may add one unit; step down until the exact cost fits.
    while tokens > 0 and cost_units(price, prompt_tokens, tokens, ratio) > budget_units:
        tokens -= 1
    return tokens
