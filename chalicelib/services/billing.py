"""The key's own view of its balance: GET /v1/key and the one-api-compatible billing routes.

Clients such as ChatGPT-Next-Web and LobeChat read ``/v1/dashboard/billing/subscription`` (the
limit) and ``/v1/dashboard/billing/usage`` (``total_usage`` in US cents) to show a balance. A
key with its own quota reports that quota; an unlimited key reports its account's balance.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from chalicelib.core import views
from chalicelib.core.pricing import UNITS_PER_USD
from chalicelib.services import gateway
from chalicelib.store import accounts as account_store

UNLIMITED_USD = 100_000_000.0  # what one-api reports for "no limit"


def key_json(authorization: str | None, now: int) -> dict[str, Any]:
    context = gateway.authenticate(authorization)
    return views.token_json(gateway.fresh_token(context), now)


def _limit_and_used(authorization: str | None, now: int) -> tuple[float, int, int]:
    """(limit in USD, used units, expires_at) as an OpenAI billing client should see them."""
    token = gateway.fresh_token(gateway.authenticate(authorization))
    if not token.unlimited:
        return float(Decimal(token.quota_units) / UNITS_PER_USD), token.used_units, token.expires_at
    account = account_store.get(token.account_id)
    if account is None or account.unlimited:
        return UNLIMITED_USD, account.used_units if account else 0, token.expires_at
    return (
        float(Decimal(account.quota_units) / UNITS_PER_USD),
        account.used_units,
        token.expires_at,
    )


def subscription(authorization: str | None, now: int) -> dict[str, Any]:
    limit_usd, _, expires_at = _limit_and_used(authorization, now)
    return {
        "object": "billing_subscription",
        "has_payment_method": True,
        "soft_limit_usd": limit_usd,
        "hard_limit_usd": limit_usd,
        "system_hard_limit_usd": limit_usd,
        "access_until": expires_at,
    }


def usage(authorization: str | None, now: int) -> dict[str, Any]:
    _, used_units, _ = _limit_and_used(authorization, now)
    cents = float(Decimal(used_units) * 100 / UNITS_PER_USD)
    return {"object": "list", "total_usage": cents}
