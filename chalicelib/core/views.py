"""JSON shapes of tokens, accounts and operator keys (pure). Field names are a public contract.

Nothing here can print a secret: records carry only hashes and previews, and the full key is
passed in explicitly by the one response that creates or regenerates it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.core.pricing import units_to_usd
from chalicelib.core.records import NEVER, AccountRecord, OperatorKeyRecord, TokenRecord


def iso(epoch: int | None) -> str | None:
    if epoch is None or epoch == NEVER:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_json(token: TokenRecord, now: int, key: str | None = None) -> dict[str, Any]:
    quota = None if token.unlimited else token.quota_units
    remaining = None if token.unlimited else max(token.remaining_units, 0)
    body: dict[str, Any] = {
        "id": token.id,
        "account_id": token.account_id,
        "name": token.name,
        "key_preview": token.key_preview,
        "status": token.effective_status(now),
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "quota_units": quota,
        "quota_usd": units_to_usd(quota),
        "used_units": token.used_units,
        "used_usd": units_to_usd(token.used_units),
        "reserved_units": token.reserved_units,
        "remaining_units": remaining,
        "remaining_usd": units_to_usd(remaining),
        "total_used_units": token.total_used_units,
        "reset_period": token.reset_period,
        "next_reset_at": iso(token.next_reset_at),
        "group": token.group,
        "models": list(token.models),
        "allow_ips": list(token.allow_ips),
        "last_used_at": iso(token.last_used_at),
        "rpm_limit": token.rpm_limit,
        "tpm_limit": token.tpm_limit,
        "max_concurrency": token.max_concurrency,
    }
    if key is not None:
        body["key"] = key
    return body


def account_json(account: AccountRecord) -> dict[str, Any]:
    quota = None if account.unlimited else account.quota_units
    remaining = None if account.unlimited else max(account.remaining_units, 0)
    return {
        "id": account.id,
        "name": account.name,
        "status": account.status,
        "quota_units": quota,
        "quota_usd": units_to_usd(quota),
        "used_units": account.used_units,
        "used_usd": units_to_usd(account.used_units),
        "reserved_units": account.reserved_units,
        "remaining_units": remaining,
        "remaining_usd": units_to_usd(remaining),
        "created_at": iso(account.created_at),
        "groups": list(account.groups),
        "rpm_limit": account.rpm_limit,
        "tpm_limit": account.tpm_limit,
        "max_concurrency": account.max_concurrency,
    }


def operator_key_json(
    operator_key: OperatorKeyRecord, now: int, key: str | None = None
) -> dict[str, Any]:
    """An operator key as listed: its preview, never its hash; ``key`` only when just created."""
    body: dict[str, Any] = {
        "id": operator_key.id,
        "name": operator_key.name,
        "scopes": list(operator_key.scopes),
        "status": operator_key.effective_status(now),
        "created_at": iso(operator_key.created_at),
        "expires_at": iso(operator_key.expires_at),
        "last_used_at": iso(operator_key.last_used_at),
        "key_preview": operator_key.key_preview,
    }
    if key is not None:
        body["key"] = key
    return body
