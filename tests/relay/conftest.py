"""Fixtures for the relay's tests: demo upstreams, channels in the store, the admin API, the SDK."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from devtools.mock_upstream import MockUpstream


@pytest.fixture(autouse=True)
def _fresh_relay_state() -> Iterator[None]:
    """No cached config, HTTP client or secret survives a test."""
    from chalicelib.store import config as config_store
    from chalicelib.store import secrets
    from chalicelib.upstream import client

    yield
    config_store.invalidate()
    client.reset_http_client()
    secrets.forget()


@pytest.fixture
def upstreams() -> Iterator[Callable[..., MockUpstream]]:
    """Start demo upstreams on 127.0.0.1 (any number); all are stopped after the test."""
    started: list[MockUpstream] = []

    def start(**options: Any) -> MockUpstream:
        options.setdefault("hang_seconds", 10.0)
        upstream = MockUpstream(host="127.0.0.1", port=0, **options).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


@pytest.fixture
def add_channel(tables: Any) -> Callable[..., Any]:
    """Store a channel with sensible defaults (on moto); returns the stored ``Channel``."""
    from chalicelib.core.channels import Channel
    from chalicelib.store import config as config_store

    def add(
        channel_id: str,
        base_url: str,
        *,
        models: tuple[str, ...] = ("gpt-4o-mini",),
        api_key: str | None = None,
        **fields: Any,
    ) -> Channel:
        channel = Channel(
            id=channel_id,
            name=fields.pop("name", channel_id),
            base_url=base_url,
            models=models,
            **fields,
        )
        return config_store.create_channel(channel, api_key, now=1_700_000_000)

    return add


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tables: Any) -> Callable[..., Any]:
    """Change settings mid-test (timeouts, SSM prefix); the store keeps its tables."""
    from chalicelib.core.settings import get_settings, reset_settings
    from chalicelib.store import configure_store

    def apply(**variables: str) -> Any:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        reset_settings()
        configure_store(get_settings())
        return get_settings()

    return apply


@pytest.fixture
def sdk_chunks() -> Callable[[bytes], list[Any]]:
    """Parse an event-stream body with the official OpenAI SDK, exactly as a client would."""

    def parse(body: bytes) -> list[Any]:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

        http_client = httpx.Client(transport=httpx.MockTransport(handler))
        sdk = openai.OpenAI(
            base_url="http://127.0.0.1:1/v1", api_key="unused", http_client=http_client
        )
        stream = sdk.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return list(stream)

    return parse


class ConfigApi:
    """JSON calls to the configuration routes with chalice's test client."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.admin_key = os.environ["SLUICE_ADMIN_KEY"]

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = "admin"
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {self.admin_key if key == 'admin' else key}"
        payload = None if body is None else json.dumps(body)
        response = getattr(self.client.http, method.lower())(path, headers=headers, body=payload)
        text = response.body.decode() if isinstance(response.body, bytes) else response.body
        return response.status_code, (json.loads(text) if text else None)


_config_app: Any = None


def _app_with_config_routes() -> Any:
    """The app's own routes once it registers the blueprint; until then a bare app with it.

    Chalice consumes a blueprint's route options when it registers them, so the bare app is
    built once per session.
    """
    global _config_app
    from chalice import Chalice

    from app import app as main_app
    from chalicelib.api import config_routes as routes_config

    if any(path == "/admin/channels" for path in main_app.routes):
        return main_app
    if _config_app is None:
        _config_app = Chalice(app_name="sluice-config-test")
        _config_app.register_blueprint(routes_config.bp)
    return _config_app


@pytest.fixture
def config_api(tables: Any) -> Iterator[ConfigApi]:
    from chalice.test import Client

    with Client(_app_with_config_routes()) as client:
        yield ConfigApi(client)
