"""Small helpers shared by test modules (importable as ``support``: tests/ is on pythonpath)."""

from __future__ import annotations

import socket

ADMIN_KEY = "test-admin-" + "k" * 24


def is_relay_path(path: str) -> bool:
    """What API Gateway sends to the relay function rather than to Chalice."""
    route = path.split("?", 1)[0]
    return route == "/v1" or route.startswith("/v1/")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The JSON contract of a token and an account (field names are part of the public API).
TOKEN_CONTRACT_FIELDS = frozenset(
    {
        "id",
        "account_id",
        "name",
        "key_preview",
        "status",
        "created_at",
        "expires_at",
        "quota_units",
        "quota_usd",
        "used_units",
        "remaining_units",
        "total_used_units",
        "reset_period",
        "next_reset_at",
        "group",
        "models",
        "allow_ips",
        "last_used_at",
        "rpm_limit",
        "tpm_limit",
        "max_concurrency",
    }
)
TOKEN_EXTRA_FIELDS = frozenset({"used_usd", "remaining_usd", "reserved_units"})
TOKEN_FIELDS = TOKEN_CONTRACT_FIELDS | TOKEN_EXTRA_FIELDS
ACCOUNT_FIELDS = frozenset(
    {
        "id",
        "name",
        "status",
        "quota_units",
        "quota_usd",
        "used_units",
        "used_usd",
        "reserved_units",
        "remaining_units",
        "remaining_usd",
        "created_at",
        "groups",
        # Limits on all the account's keys together (null: none)
        "rpm_limit",
        "tpm_limit",
        "max_concurrency",
    }
)
