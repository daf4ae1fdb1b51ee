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


def test_the_read_timeout_follows_the_calls_deadline_unless_set(env: Callable[..., Any]) -> None:
    # GIVEN a channel and no silence limit configured
    from chalicelib.core.channels import Channel
    from chalicelib.store import config as config_store
    from chalicelib.upstream.forwarder import plan_call

    config_store.put_channel(
        Channel(id="c", name="c", base_url="http://127.0.0.1:9/v1", models=("m",)), None, 1
    )
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    # WHEN a call with 300 s left plans its attempts
    call, _ = plan_call(
        "chat", payload, group="default", stream=False, client_wants_usage=False, budget_seconds=300
    )
    # THEN upstream may stay silent for all of it (a buffered answer is silent until complete)
    assert 290 < call.timeout().read <= 300
    # AND a configured silence limit still applies
    env(SLUICE_UPSTREAM_READ_TIMEOUT="7")
    call, _ = plan_call(
        "chat", payload, group="default", stream=False, client_wants_usage=False, budget_seconds=300
    )
    assert call.timeout().read == 7.0


def test_the_relays_budget_defaults_to_its_timeout_minus_a_settle_margin(
    env: Callable[..., Any],
) -> None:
    from chalicelib.services import gateway

    env(SLUICE_RELAY_TIMEOUT_SECONDS="900")
    assert gateway.call_deadline(1000.0).at == 1000.0 + 900 - gateway.SETTLE_MARGIN_SECONDS
