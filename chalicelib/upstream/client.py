"""The one HTTP client a container uses to reach upstream providers.

Created on first use and kept for the life of the container, so warm invocations reuse pooled
keep-alive connections instead of paying a TCP and TLS handshake per call. Timeouts are explicit;
each request sets them to what is left of its own deadline (see ``forwarder``), the read timeout
too unless ``upstream_read_timeout`` sets a shorter silence limit. Proxy variables from the
environment are ignored (``trust_env=False``): a provider key must never travel through a proxy
nobody configured for it, and tests must only ever talk to 127.0.0.1. Redirects are not followed,
so a key is never replayed to another host.
"""

from __future__ import annotations

import httpx

from chalicelib.core.settings import Settings, get_settings

WRITE_TIMEOUT_SECONDS = 10.0
POOL_TIMEOUT_SECONDS = 5.0
# ``chalice local`` and a Lambda container serve requests concurrently or one at a time; 100
# connections covers the former without letting one container exhaust a provider's limits.
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_SECONDS = 30.0

_client: httpx.Client | None = None
_client_settings: Settings | None = None


def default_timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(
        connect=settings.upstream_connect_timeout,
        read=settings.upstream_read_timeout,
        write=WRITE_TIMEOUT_SECONDS,
        pool=POOL_TIMEOUT_SECONDS,
    )


def get_http_client() -> httpx.Client:
    """The container's client; rebuilt only when the settings changed (tests swap them)."""
    global _client, _client_settings
    settings = get_settings()
    if _client is None or _client_settings != settings:
        reset_http_client()
        _client = httpx.Client(
            timeout=default_timeout(settings),
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_SECONDS,
            ),
            trust_env=False,
            follow_redirects=False,
        )
        _client_settings = settings
    return _client


def set_http_client(client: httpx.Client | None) -> None:
    """Use ``client`` from now on (tests plug in an ``httpx.MockTransport``); None forgets it."""
    global _client, _client_settings
    _client = client
    _client_settings = get_settings() if client is not None else None


def reset_http_client() -> None:
    global _client, _client_settings
    if _client is not None:
        _client.close()
    _client, _client_settings = None, None
