"""Small helpers shared by test modules (importable as ``support``: tests/ is on pythonpath)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ADMIN_KEY = "test-admin-" + "k" * 24


def is_relay_path(path: str) -> bool:
    """What API Gateway sends to the relay function rather than to Chalice."""
    route = path.split("?", 1)[0]
    return route == "/v1" or route.startswith("/v1/")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fresh_key(relay_api: Any, name: str = "acme") -> tuple[str, str, str]:
    """(key, token id, account id) of a fresh account with US$10 (``relay_api`` fixture)."""
    created = relay_api.new_account(name, quota_usd="10")
    token = created["default_token"]
    return token["key"], token["id"], created["account"]["id"]


def spent(token_id: str, account_id: str) -> tuple[int, int, int, int]:
    """(key used, key reserved, account used, account reserved), as stored now."""
    from chalicelib.store import accounts as account_store
    from chalicelib.store import tokens as token_store

    token, account = token_store.get(token_id), account_store.get(account_id)
    assert token is not None and account is not None
    return token.used_units, token.reserved_units, account.used_units, account.reserved_units


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


@contextmanager
def on_dynamodb(
    event: str, handler: Callable[..., Any], unique_id: str, *, first: bool = False
) -> Iterator[None]:
    """``handler`` on both clients the store sends through, for ``event`` ("before-send.dynamodb",
    "before-call.dynamodb.PutItem"...): botocore's (PynamoDB's calls) and the lean client that
    carries every call of a relayed request (``chalicelib/store/wire.py``). Both pass the
    handler ``event_name``; ``before-send`` handlers get a ``request`` with ``url``, ``headers``
    and ``body`` on both, and may answer it with a botocore ``AWSResponse``."""
    from chalicelib.store.common import hook_registries

    targets = hook_registries()
    for events in targets:
        register = events.register_first if first else events.register
        register(event, handler, unique_id=unique_id)
    try:
        yield
    finally:
        for events in targets:
            events.unregister(event, unique_id=unique_id)


def half_spent() -> None:
    """What steady traffic leaves in a relay container now and then: its key, account and
    configuration entries still fresh, but past half their life (due for a refresh)."""
    from chalicelib.services import gateway
    from chalicelib.store import config_reads

    for cache in (gateway.cache(), config_reads._cache):
        for entry in list(cache.entries.values()):
            entry.loaded = cache.clock() - cache.life() * 0.6
            entry.until = entry.loaded + cache.life()


def quiet_spell() -> None:
    """What a quiet spell longer than the caches' life leaves in a relay container: its key,
    account and configuration entries, all expired."""
    from chalicelib.services import gateway
    from chalicelib.store import config_reads

    for cache in (gateway.cache(), config_reads._cache):
        for entry in list(cache.entries.values()):
            entry.loaded = entry.until = cache.clock() - 1
