"""Point this process's store at a benchmark's tables, then give it back as it was."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

# Names that would send the app to SSM or AWS instead of the local tables and the given key.
UNSET_FOR_LOCAL = (
    "SLUICE_ADMIN_KEY_SSM_PARAMETER",
    "SLUICE_ADMIN_KEY_SECRET_ID",
    "SLUICE_CHANNEL_SECRET_SSM_PREFIX",
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
)


@contextlib.contextmanager
def store_bound_to(env: dict[str, str]) -> Iterator[Any]:
    """Run with ``env`` applied to ``os.environ`` and the store (and its caches) bound to it."""
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import configure_store

    names = set(env) | set(UNSET_FOR_LOCAL)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in UNSET_FOR_LOCAL:
            os.environ.pop(name, None)
        os.environ.update({k: v for k, v in env.items() if k not in UNSET_FOR_LOCAL})
        reset_settings()
        configure_store(get_settings())
        _forget_caches()
        yield get_settings()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reset_settings()
        _forget_caches()


def _forget_caches() -> None:
    """Per-container caches (config, key metadata, HTTP client) belong to the previous binding."""
    from chalicelib.services import gateway
    from chalicelib.store import config as config_store
    from chalicelib.upstream.client import reset_http_client

    config_store.invalidate()
    gateway.cache().entries.clear()
    reset_http_client()
