"""The official OpenAI SDK against Sluice over HTTP: it works, errors map to its classes."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from support import ADMIN_KEY

pytestmark = pytest.mark.ddb_local


def _sdk(server: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)


def _account(server: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "sdk", **fields},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert response.status_code == 201, response.text
    return response.json()


def _token(server: str, mk: str, **fields: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server}/tokens", json={"name": "t", **fields}, headers={"Authorization": f"Bearer {mk}"}
    )
    assert response.status_code == 201, response.text
    return response.json()["data"][0]


def test_plain_completion_through_the_sdk(server: str) -> None:
    key = _account(server, quota_usd="5")["default_token"]["key"]
    completion = _sdk(server, key).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}]
    )
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_streamed_completion_through_the_sdk(server: str) -> None:
    key = _account(server, quota_usd="5")["default_token"]["key"]
    stream = _sdk(server, key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "Hello!"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text.startswith("Hello from the Sluice demo upstream")
    assert usage is not None and usage.completion_tokens > 0


def test_embeddings_and_models_through_the_sdk(server: str) -> None:
    key = _account(server, quota_usd="5")["default_token"]["key"]
    client = _sdk(server, key)
    embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(embedding.data[0].embedding) > 0
    assert "gpt-4o-mini" in {m.id for m in client.models.list()}


def test_sdk_raises_its_own_exception_classes(server: str) -> None:
    created = _account(server, quota_units=1500)
    mk = created["management_key"]
    hello = [{"role": "user", "content": "Hello!"}]

    with pytest.raises(openai.AuthenticationError) as unknown:
        _sdk(server, "sk-" + "x" * 48).chat.completions.create(model="gpt-4o-mini", messages=hello)
    assert unknown.value.code == "invalid_api_key"

    limited = _token(server, mk, models=["gpt-4o"])
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _sdk(server, limited["key"]).chat.completions.create(model="gpt-4o-mini", messages=hello)
    assert denied.value.code == "model_not_allowed"

    key = created["default_token"]["key"]
    with pytest.raises(openai.NotFoundError):
        _sdk(server, key).chat.completions.create(model="no-such-model", messages=hello)
    with pytest.raises(openai.BadRequestError):
        _sdk(server, key).chat.completions.create(model="gpt-4o-mini", messages=[])

    _sdk(server, key).chat.completions.create(model="demo-flat", messages=hello)
    with pytest.raises(openai.RateLimitError) as poor:
        _sdk(server, key).chat.completions.create(model="demo-flat", messages=hello)
    assert poor.value.code == "account_quota_exhausted"
    assert poor.value.type == "insufficient_quota"

    with pytest.raises(openai.InternalServerError) as upstream:
        _sdk(server, key).chat.completions.create(model="fail-500", messages=hello)
    assert upstream.value.status_code == 502


def test_32_concurrent_connections_are_all_served(server: str) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    key = _account(server, unlimited=True)["default_token"]["key"]
    gate = threading.Event()

    def call(_: int) -> int:
        gate.wait(timeout=30)
        with httpx.Client(timeout=60) as client:
            response = client.post(
                f"{server}/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                headers={"Authorization": f"Bearer {key}"},
            )
        return response.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(call, i) for i in range(32)]
        gate.set()
        assert [f.result(timeout=120) for f in futures] == [200] * 32
