"""The container's HTTP client: explicit timeouts, no proxies from the environment, reuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from chalicelib.upstream.client import get_http_client


def test_client_has_explicit_timeouts_and_ignores_proxy_variables(
    env: Callable[..., Any],
) -> None:
    # GIVEN configured timeouts and a proxy in the environment
    env(
        SLUICE_UPSTREAM_CONNECT_TIMEOUT="3",
        SLUICE_UPSTREAM_READ_TIMEOUT="20",
        HTTPS_PROXY="http://proxy.invalid:3128",
    )
    # WHEN the client is built
    client = get_http_client()
    # THEN it uses exactly those timeouts, no proxy, and never follows redirects
    assert client.timeout == httpx.Timeout(connect=3.0, read=20.0, write=10.0, pool=5.0)
    assert client.trust_env is False
    assert client.follow_redirects is False


def test_client_is_reused_until_the_settings_change(env: Callable[..., Any]) -> None:
    # GIVEN a client built for the current settings
    first = get_http_client()
    # WHEN it is asked for again  THEN it is the same pooled client
    assert get_http_client() is first
    # WHEN the settings change  THEN a new client with the new read timeout replaces it
    env(SLUICE_UPSTREAM_READ_TIMEOUT="7")
    second = get_http_client()
    assert second is not first
    assert second.timeout.read == 7.0
    assert first.is_closed
