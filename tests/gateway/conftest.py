"""Fixtures for the relay: a demo upstream on 127.0.0.1, registered as the only channel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import free_port

from devtools.mock_upstream import FAULT_MODELS, MockUpstream

UPSTREAM_KEY = "upstream-secret-" + "u" * 20


@pytest.fixture
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream(api_key=UPSTREAM_KEY, hang_seconds=5).start() as server:
        yield server


def _register(upstream: MockUpstream) -> None:
    from chalicelib.core.channels import Channel
    from chalicelib.services import gateway
    from chalicelib.store import config as config_store
    from devtools.demo_seed import DEMO_PRICES, register_demo

    register_demo(upstream.base_url, UPSTREAM_KEY)
    # The demo upstream fails on purpose for these model names; serve and price them too.
    now = int(time.time())
    config_store.put_channel(
        Channel(
            id="faults",
            name="faults",
            base_url=upstream.base_url,
            models=FAULT_MODELS,
            group="default",
            priority=0,
            weight=1,
            enabled=True,
        ),
        UPSTREAM_KEY,
        now,
    )
    for model in FAULT_MODELS:
        config_store.set_price(model, DEMO_PRICES["gpt-4o-mini"], now)
    config_store.invalidate()
    gateway.cache().entries.clear()


@pytest.fixture
def relay_api(api: Any, upstream: MockUpstream, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The chalice test client on moto, with the demo upstream as channel and seeded prices."""
    monkeypatch.setenv("SLUICE_UPSTREAM_READ_TIMEOUT", "1")
    from chalicelib.core.settings import reset_settings
    from chalicelib.upstream.client import reset_http_client

    reset_settings()
    reset_http_client()
    _register(upstream)
    yield api
    reset_http_client()


@pytest.fixture
def relay_local(ddb_local: Any, upstream: MockUpstream) -> MockUpstream:
    """The same, on DynamoDB Local (for concurrency)."""
    _register(upstream)
    return upstream


@pytest.fixture
def server(relay_local: Any) -> Iterator[str]:
    """The stack over HTTP in-process, as `make run` serves it: the relay and a proxy to the
    app under `chalice local`, on one port."""
    from chalice import local
    from chalice.config import Config

    from app import app
    from devtools.front import front_for

    # What `chalice local` does to the app: make current_request thread-local.
    if not isinstance(app, local.LocalChalice):
        local.CustomLocalChalice.__bases__ = (local.LocalChalice, type(app))
        app.__class__ = local.CustomLocalChalice
    internal = free_port()
    dev = local.LocalDevServer(app, Config.create(), "127.0.0.1", internal)
    thread = threading.Thread(target=dev.serve_forever, daemon=True)
    thread.start()
    port = free_port()
    try:
        with front_for(f"http://127.0.0.1:{internal}", "127.0.0.1", port):
            yield f"http://127.0.0.1:{port}"
    finally:
        dev.shutdown()
        thread.join(timeout=10)
