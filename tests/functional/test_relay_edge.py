"""The relay's ASGI edge (Starlette's test client on moto): routing, errors, client IP, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.core.settings import reset_settings

SECRET = "sk-" + "s" * 48


@pytest.fixture(autouse=True)
def _settings_forgotten_after() -> Iterator[None]:
    """Tests here change settings through the environment: forget them afterwards."""
    yield
    from chalicelib.core.settings import reset_settings

    reset_settings()


def _key_for(api: Any, **fields: Any) -> str:
    created = api.new_account("edge", quota_usd="1")
    status, body = api.call(
        "POST", "/tokens", key=created["management_key"], body={"name": "k", **fields}
    )
    assert status == 201, body
    return str(body["data"][0]["key"])


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/chat/completions/extra", "/v1", "/elsewhere"])
def test_unknown_paths_are_an_openai_404_that_repeats_nothing(relay_client: Any, path: str) -> None:
    response = relay_client.get(path, headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 404
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert SECRET not in response.text
    assert response.headers["Cache-Control"] == "no-store"


def test_a_known_path_with_the_wrong_method_is_an_openai_405(relay_client: Any) -> None:
    response = relay_client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == "POST"


def test_an_oversize_body_is_refused_before_it_is_read(relay_client: Any) -> None:
    response = relay_client.post(
        "/v1/chat/completions",
        content=b"x" * (4 * 1024 * 1024 + 1),
        headers={"Authorization": f"Bearer {SECRET}"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_an_unexpected_error_is_a_500_in_the_same_shape_and_logs_no_secret(
    relay_client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from chalicelib.services import gateway

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(gateway, "key_for_route", broken)
    response = relay_client.get("/v1/models", headers={"Authorization": f"Bearer {SECRET}"})
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    logged = capsys.readouterr().out
    assert SECRET not in logged and "/v1/models" in logged


def _context(source_ip: str) -> str:
    return json.dumps({"requestId": "r1", "identity": {"sourceIp": source_ip}})


def _own_key(relay_client: Any, key: str, headers: dict[str, str]) -> Any:
    return relay_client.get("/v1/key", headers={"Authorization": f"Bearer {key}", **headers})


def test_the_client_ip_is_the_socket_peer_unless_behind_api_gateway(
    api: Any, relay_client: Any
) -> None:
    # GIVEN a key allowed from one address only, and no API Gateway in front
    key = _key_for(api, allow_ips=["203.0.113.7/32"])
    headers = {"x-amzn-request-context": _context("203.0.113.7"), "X-Forwarded-For": "203.0.113.7"}
    # WHEN a client on 127.0.0.1 claims that address in headers
    response = _own_key(relay_client, key, headers)
    # THEN the claim is ignored
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "ip_not_allowed"


def test_behind_api_gateway_the_request_contexts_source_ip_counts(
    api: Any, relay_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = _key_for(api, allow_ips=["203.0.113.7/32"])
    monkeypatch.setenv("SLUICE_BEHIND_API_GATEWAY", "true")
    reset_settings()
    # sourceIp wins over X-Forwarded-For
    allowed = {"x-amzn-request-context": _context("203.0.113.7"), "X-Forwarded-For": "198.51.100.1"}
    assert _own_key(relay_client, key, allowed).status_code == 200
    refused = {"x-amzn-request-context": _context("198.51.100.1"), "X-Forwarded-For": "203.0.113.7"}
    assert _own_key(relay_client, key, refused).status_code == 403
    # without a context, the hop API Gateway appended (the last): the ones before it are
    # whatever the client wrote, so claiming the allowed address there does not pass
    spoofed = {"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}
    assert _own_key(relay_client, key, spoofed).status_code == 403
    forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}
    assert _own_key(relay_client, key, forwarded).status_code == 200


def test_a_browser_may_call_the_relay_from_another_origin(api: Any, relay_client: Any) -> None:
    # Chat UIs that run in the browser (ChatGPT-Next-Web, LobeChat) call the API from their own
    # origin: the preflight is answered without a key, and every answer may be read there.
    preflight = relay_client.options(
        "/v1/chat/completions",
        headers={
            "Origin": "https://chat.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, "
            "x-stainless-helper-method",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-stainless-helper-method"} <= {
        name.strip() for name in allowed.split(",")
    }
    key = _key_for(api)
    answered = relay_client.get(
        "/v1/models", headers={"Authorization": f"Bearer {key}", "Origin": "https://chat.example"}
    )
    assert answered.status_code == 200
    assert answered.headers["access-control-allow-origin"] == "*"
    refused = relay_client.get("/v1/models", headers={"Origin": "https://chat.example"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"
    # AND the headers a client reads (request id, cost, rate limits) may be read there too
    exposed = answered.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "x-sluice-cost-units", "x-ratelimit-remaining-requests"} <= {
        name.strip() for name in exposed.split(",")
    }


def test_head_on_a_get_route_answers_as_get_would(api: Any, relay_client: Any) -> None:
    key = _key_for(api)
    headers = {"Authorization": f"Bearer {key}"}
    got = relay_client.get("/v1/models", headers=headers)
    head = relay_client.head("/v1/models", headers=headers)
    assert (head.status_code, got.status_code) == (200, 200)
    assert head.headers["content-type"] == got.headers["content-type"]
    assert relay_client.head("/v1/models").status_code == 401
    # a route without GET still refuses it, naming what it allows; so does one that would go
    # upstream for it (a stored response, a video's content)
    refused = relay_client.head("/v1/chat/completions", headers=headers)
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    for upstream_route in ("/v1/responses/resp_1", "/v1/videos/video_1/content"):
        assert relay_client.head(upstream_route, headers=headers).status_code == 405
