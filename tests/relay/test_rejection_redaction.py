"""Upstream 4xx text reaching a tenant: credential shapes and private hosts are redacted (pure)."""

from __future__ import annotations

import json

import pytest

from chalicelib.upstream.rejections import REDACTED, rejection_body, sanitize


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("header was Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        ("basic   YWxhZGRpbjpvcGVuc2VzYW1l rejected", "YWxhZGRpbjpvcGVuc2VzYW1l"),
        ("signed with AKIAIOSFODNN7EXAMPLE for s3", "AKIAIOSFODNN7EXAMPLE"),
        ("session key ASIAY34FZKBOKMUTVV7A expired", "ASIAY34FZKBOKMUTVV7A"),
        (
            "bad token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpM",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpM",
        ),
        ("unsigned eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0. refused", "eyJzdWIiOiJ4In0"),
        ("dsn postgres?password=hunter2&x=1", "hunter2"),
        ("login failed: pwd=s3cr3t!", "s3cr3t!"),
        ("config secret: 'abc123xyz'", "abc123xyz"),
        ("callback ?token=tkn_998877 rejected", "tkn_998877"),
        ('{"api_key": "plainvalue42"}', "plainvalue42"),
    ],
)
def test_credential_shapes_are_redacted(message: str, secret: str) -> None:
    # GIVEN an upstream message quoting a credential  WHEN it is sanitized
    clean = sanitize(message, [])
    # THEN the credential is gone and the marker says something was removed
    assert secret not in clean
    assert REDACTED in clean


@pytest.mark.parametrize(
    ("message", "host"),
    [
        ("could not reach llm.prod.internal:8080", "llm.prod.internal"),
        ("proxy gateway.local refused", "gateway.local"),
        ("upstream vllm.models.svc.cluster.local timed out", "vllm.models.svc.cluster.local"),
        ("connect to localhost:11434 failed", "localhost"),
        ("from 10.2.3.4", "10.2.3.4"),
        ("via 172.16.0.9 and 172.31.255.1", "172.16.0.9"),
        ("via 172.31.255.1", "172.31.255.1"),
        ("host 192.168.1.20:443", "192.168.1.20"),
        ("loopback 127.0.0.1", "127.0.0.1"),
        ("metadata at http://169.254.169.254/latest", "169.254.169.254"),
        ("ipv6 fd12:3456:789a::1 refused", "fd12:3456:789a::1"),
        ("ipv6 [fc00::5]:8000 refused", "fc00::5"),
        ("ipv6 loopback ::1 refused", "::1"),
        ("link-local fe80::1%eth0", "fe80::1"),
    ],
)
def test_private_hosts_are_redacted(message: str, host: str) -> None:
    clean = sanitize(message, [])
    assert host not in clean, clean
    assert REDACTED in clean


@pytest.mark.parametrize(
    "message",
    [
        "This model's maximum context length is 128000 tokens. You requested 130000 tokens.",
        "Invalid value for 'temperature': 3.5 is greater than 2.",
        "Model gpt-4o-2024-08-06 does not support tools; see platform.openai.com/docs",
        "Retry at 12:30:45 UTC or contact 8.8.8.8 support",
        "max_tokens is too large: 1000000. This model supports at most 16384 completion tokens.",
        "Invalid 'messages[0].content': string too long. Expected at most 10485760.",
        "This is a basic requirement of the API; token: 4096 is over the limit.",
    ],
)
def test_ordinary_provider_messages_are_left_alone(message: str) -> None:
    assert sanitize(message, []) == message


def test_rejection_body_redacts_every_shape_before_the_tenant_sees_it() -> None:
    # GIVEN an upstream 400 whose message quotes a JWT, a password and an internal address
    raw = json.dumps(
        {
            "error": {
                "message": "auth eyJa.eyJb.c1 password=pw1 from http://10.0.0.7:9000/v1",
                "param": "messages",
                "code": "bad",
            }
        }
    ).encode()
    # WHEN it is rebuilt for the client
    error = json.loads(rejection_body(400, raw, "https://api.example.com/v1", "sk-provider"))
    # THEN none of them reaches it, and param and code survive
    message = error["error"]["message"]
    for leaked in ("eyJa", "pw1", "10.0.0.7"):
        assert leaked not in message
    assert (error["error"]["param"], error["error"]["code"]) == ("messages", "bad")
