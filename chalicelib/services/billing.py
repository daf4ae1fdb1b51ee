"""The key's own view of its balance: GET /v1/key and the one-api-compatible billing routes.

Clients such as ChatGPT-Next-Web and LobeChat read ``/v1/dashboard/billing/subscription`` (the
limit) and ``/v1/dashboard/billing/usage`` (``total_usage`` in US cents) to show a balance, as
``limit - usage``. What a key can still spend is the smaller of its own remaining quota and its
account's balance, so the limit reported is ``usage + that``: a client shows exactly what the
next call can use. The status is the effective one too: a key of a disabled account is disabled.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chalicelib.core import views
from chalicelib.core.pricing import UNITS_PER_USD, units_to_usd
from chalicelib.core.records import AccountRecord, TokenRecord
from chalicelib.services import gateway
from chalicelib.store import account_reads as account_store

UNLIMITED_USD = 100_000_000.0  # what one-api reports for "no limit"


@dataclass(frozen=True)
class Balance:
    """What the key has used and can still spend (None: no limit at all)."""

    used_units: int
    spendable_units: int | None


def balance(token: TokenRecord, account: AccountRecord | None) -> Balance:
    """A key with its own quota reports its own use; an unlimited key its account's."""
    limits = []
    if not token.unlimited:
        limits.append(max(token.remaining_units, 0))
    if account is not None and not account.unlimited:
        limits.append(max(account.remaining_units, 0))
    used = token.used_units if not token.unlimited or account is None else account.used_units
    return Balance(used, min(limits) if limits else None)


def key_json(authorization: str | None, source_ip: str, now: int) -> dict[str, Any]:
    """The key's JSON with what it can really spend and its effective status."""
    token = gateway.key_for_route(authorization, source_ip)
    account = account_store.get(token.account_id)
    body = views.token_json(token, now)
    spendable = balance(token, account).spendable_units
    body["remaining_units"] = spendable
    body["remaining_usd"] = units_to_usd(spendable)
    if body["status"] == "enabled" and (account is None or account.status != "enabled"):
        body["status"] = "disabled"
    elif body["status"] == "enabled" and spendable == 0:
        body["status"] = "exhausted"
    return body


def _usd(units: int) -> float:
    return float(Decimal(units) / UNITS_PER_USD)


def subscription(authorization: str | None, source_ip: str) -> dict[str, Any]:
    token = gateway.key_for_route(authorization, source_ip)
    held = balance(token, account_store.get(token.account_id))
    limit_usd = (
        UNLIMITED_USD
        if held.spendable_units is None
        else _usd(held.used_units + held.spendable_units)
    )
    return {
        "object": "billing_subscription",
        "has_payment_method": True,
        "soft_limit_usd": limit_usd,
        "hard_limit_usd": limit_usd,
        "system_hard_limit_usd": limit_usd,
        "access_until": token.expires_at,
    }


def usage(authorization: str | None, source_ip: str) -> dict[str, Any]:
    token = gateway.key_for_route(authorization, source_ip)
    held = balance(token, account_store.get(token.account_id))
    # In cents, from the exact decimal (a float's ``* 100`` would show 0.0038000000000000004).
    return {"object": "list", "total_usage": float(Decimal(held.used_units) * 100 / UNITS_PER_USD)}
