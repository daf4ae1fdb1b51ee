"""Property: any body is either accepted or refused with a 4xx ``GatewayError``, nothing else.

Drives the relay's ``core.payloads.parse`` (both kinds) and every management and channel schema
with arbitrary JSON: deep nesting, lone surrogates, huge integers, non-finite floats, and bodies
close enough to valid ones to reach the field checks. What is accepted must be sendable (UTF-8
encodable, within the output limit); what is refused must be an answer that can be sent too.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.core import payloads
from chalicelib.core.errors import GatewayError
from chalicelib.services import schemas, schemas_config

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Every code point, lone surrogates included (json.dumps escapes them as \udXXX).
any_text = st.text(st.characters(blacklist_categories=()), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**30, max_value=10**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e45, -0.0, 1e308, 16.0]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, any_text)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def deeply_nested(draw: st.DrawFn) -> bytes:
    """Text, not a value: json.dumps itself could not encode past the recursion limit."""
    depth = draw(st.integers(min_value=50, max_value=3_000))
    opening, closing = draw(st.sampled_from([("[", "]"), ('{"k":', "}")]))
    inner = json.dumps(draw(scalars))
    closed = draw(st.booleans())
    return (opening * depth + inner + (closing * depth if closed else "")).encode()


def _near(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the schema's own field names, each holding a plausible or arbitrary value."""
    return st.fixed_dictionaries(
        {}, optional={name: st.one_of(plausible, json_values) for name, plausible in fields.items()}
    )


messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system"])}, optional={"content": json_values}
    ),
    max_size=3,
)
chat_bodies = _near(
    {
        "model": st.sampled_from(["gpt-4o-mini", "gpt\ud800", "", "m" * 300]),
        "messages": messages,
        "stream": st.booleans(),
        "stream_options": st.just({"include_usage": True}),
        "max_tokens": numbers,
        "max_completion_tokens": numbers,
        "n": numbers,
    }
)
embedding_bodies = _near(
    {
        "model": st.sampled_from(["text-embedding-3-small", "\udfff"]),
        "input": st.one_of(any_text, st.lists(any_text, max_size=3)),
    }
)
management_bodies = _near(
    {
        "name": any_text,
        "quota_units": numbers,
        "quota_usd": st.sampled_from(["1.50", "1e9", "NaN", "-1"]),
        "unlimited": st.booleans(),
        "status": st.sampled_from(["enabled", "disabled", "x"]),
        "note": any_text,
        "expires_at": st.sampled_from(["2030-01-01T00:00:00Z", "2030-01-01T00:00:00", "99999"]),
        "expires_in_days": numbers,
        "count": numbers,
        "group": any_text,
        "models": st.lists(any_text, max_size=3),
        "model_map": st.dictionaries(any_text, any_text, max_size=2),
        "allow_ips": st.lists(st.sampled_from(["10.0.0.0/8", "::1", "x"]), max_size=2),
        "base_url": st.sampled_from(["http://127.0.0.1:9/v1", "ftp://x", "http://u:p@h/v1"]),
        "api_key": any_text,
        "priority": numbers,
        "weight": numbers,
        "enabled": st.booleans(),
        "id": any_text,
        "input_usd_per_mtok": st.sampled_from(["0.15", "x"]),
        "output_usd_per_mtok": st.sampled_from(["0.60", "x"]),
        "usd_per_request": st.sampled_from(["0.01", ""]),
        "ratio": st.sampled_from(["1", "0.5", "-2"]),
    }
)


def raw_bodies(near: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    encoded = st.one_of(near, json_values).map(lambda value: json.dumps(value).encode())
    return st.one_of(encoded, deeply_nested(), st.binary(max_size=40))


def _assert_client_error(error: GatewayError) -> None:
    assert 400 <= error.status < 500, error
    # The refusal must itself be sendable: no lone surrogate echoed back.
    json.dumps(error.body(), ensure_ascii=False).encode("utf-8")


def _parses_or_refuses(kind: payloads.Kind, raw: bytes) -> None:
    try:
        payload = payloads.parse(kind, raw)
    except GatewayError as error:
        _assert_client_error(error)
        return
    json.dumps(payload, ensure_ascii=False).encode("utf-8")
    output = payloads.requested_output(payload) if kind == "chat" else None
    assert output is None or 1 <= output <= payloads.MAX_OUTPUT_TOKENS


@PROPERTY
@given(raw=raw_bodies(chat_bodies))
def test_chat_bodies_are_accepted_or_refused_with_a_4xx(raw: bytes) -> None:
    _parses_or_refuses("chat", raw)


@PROPERTY
@given(raw=raw_bodies(embedding_bodies))
def test_embedding_bodies_are_accepted_or_refused_with_a_4xx(raw: bytes) -> None:
    _parses_or_refuses("embeddings", raw)


BODY_CLASSES = sorted(
    {
        value
        for module in (schemas, schemas_config)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, schemas.Body) and value is not schemas.Body
    },
    key=lambda cls: cls.__name__,
)


def test_every_body_class_is_covered() -> None:
    names = {cls.__name__ for cls in BODY_CLASSES}
    assert {"CreateAccount", "CreateTokens", "CreateChannel", "PatchChannel"} <= names


# Every schema gets the same strategy (all the schemas' field names, arbitrary JSON, deep nesting,
# raw bytes), and the front door (``schemas.parse``) is shared: across the schemas that is still
# hundreds of examples of each kind, and 25 per schema reach its own field checks.
@pytest.mark.parametrize("schema", BODY_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=raw_bodies(management_bodies))
def test_management_bodies_are_accepted_or_refused_with_a_4xx(
    schema: type[schemas.Body], raw: bytes
) -> None:
    try:
        body = schemas.parse(schema, raw)
    except GatewayError as error:
        _assert_client_error(error)
        return
    body.model_dump_json().encode("utf-8")


@PROPERTY
@given(value=any_text)
def test_path_ids_are_accepted_or_refused_with_a_4xx(value: str) -> None:
    try:
        payloads.check_id(value)
    except GatewayError as error:
        _assert_client_error(error)
        return
    value.encode("utf-8")
