"""Request body validation (chalicelib.services.schemas): each rule and the ``param`` it reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.core.errors import InvalidRequest
from chalicelib.services import schemas


def rejected(schema: type[schemas.Body], raw: bytes | str) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        schemas.parse(schema, raw)
    error = caught.value
    assert error.status == 400
    assert error.type == "invalid_request_error"
    return error


def body(**fields: Any) -> str:
    return json.dumps(fields)


# --- the body as a whole --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"{bad", b'{"name": "x",}', b"\xff\xfe", "{'name': 'x'}"])
def test_malformed_json_is_refused_without_a_param(raw: bytes | str) -> None:
    error = rejected(schemas.CreateTokens, raw)
    assert error.param is None
    assert "JSON" in error.message


@pytest.mark.parametrize("raw", [b"null", b"[]", b'"text"', b"42", b"true"])
def test_a_body_that_is_not_an_object_is_refused(raw: bytes) -> None:
    error = rejected(schemas.CreateTokens, raw)
    assert error.param is None
    assert error.message == "The request body must be a JSON object."


@pytest.mark.parametrize("raw", [None, b"", b"  \n", ""])
def test_an_empty_body_means_all_defaults(raw: bytes | str | None) -> None:
    parsed = schemas.parse(schemas.CreateTokens, raw)
    assert parsed.name == "default"
    assert parsed.count == 1
    assert parsed.model_fields_set == set()


VALID: dict[type[schemas.Body], dict[str, Any]] = {
    schemas.CreateTokens: {"name": "ci"},
    schemas.PatchToken: {"name": "ci"},
    schemas.CreateAccount: {"name": "acme"},
    schemas.PatchAccount: {"name": "acme"},
    schemas.CreditAccount: {"quota_units": 5},
}


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        (schemas.CreateTokens, "nme"),
        (schemas.CreateTokens, "status"),  # only PATCH may set the status
        (schemas.PatchToken, "count"),  # only POST creates several
        (schemas.PatchToken, "key"),
        (schemas.CreateAccount, "status"),
        (schemas.PatchAccount, "quota_units"),  # balance changes go through /credit
        (schemas.CreditAccount, "name"),
    ],
)
def test_unknown_fields_are_refused_and_named(schema: type[schemas.Body], field: str) -> None:
    # GIVEN an otherwise valid body with one field the schema does not know
    error = rejected(schema, body(**VALID[schema], **{field: "x"}))
    assert error.param == field
    assert "Unknown field" in error.message


# --- token fields ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"name": 5}, "name"),
        ({"name": None}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 65}, "name"),
        ({"count": 0}, "count"),
        ({"count": 101}, "count"),
        ({"count": "5"}, "count"),
        ({"count": 5.0}, "count"),
        ({"count": True}, "count"),
        ({"quota_units": -1}, "quota_units"),
        ({"quota_units": 10**15 + 1}, "quota_units"),
        ({"quota_units": "100"}, "quota_units"),
        ({"quota_units": 1.5}, "quota_units"),
        ({"quota_usd": "-1"}, "quota_usd"),
        ({"quota_usd": "1e3"}, "quota_usd"),
        ({"quota_usd": 1.5}, "quota_usd"),
        ({"quota_usd": "abc"}, "quota_usd"),
        ({"quota_units": 1, "quota_usd": "1"}, "quota_usd"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": "3"}, "expires_in_days"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # naive: which zone?
        ({"expires_at": "2030-01-01"}, "expires_at"),
        ({"expires_at": "1900000000"}, "expires_at"),  # epoch seconds are not ISO-8601
        ({"expires_at": 1900000000}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2030-02-30T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2030-01-01T00:00:00Z", "expires_in_days": 3}, "expires_in_days"),
        ({"reset_period": "hourly"}, "reset_period"),
        ({"reset_period": "Daily"}, "reset_period"),
        ({"group": ""}, "group"),
        ({"group": "a b"}, "group"),
        ({"group": "x" * 65}, "group"),
        ({"models": "gpt-4o"}, "models"),
        ({"models": [""]}, "models.0"),
        ({"models": ["m"] * 101}, "models"),
        ({"allow_ips": "10.0.0.1"}, "allow_ips"),
        ({"allow_ips": ["10.0.0.0/33"]}, "allow_ips.0"),
        ({"allow_ips": ["10.0.0.1", "not-an-ip"]}, "allow_ips.1"),
        ({"allow_ips": ["300.1.1.1"]}, "allow_ips.0"),
        ({"allow_ips": ["10.0.0.1"] * 51}, "allow_ips"),
    ],
)
def test_each_bad_token_field_is_refused_and_named(fields: dict[str, Any], param: str) -> None:
    error = rejected(schemas.CreateTokens, body(**fields))
    assert error.param == param
    assert error.message.startswith(f"{param}: ")


def test_a_valid_creation_body_is_parsed_and_normalised() -> None:
    parsed = schemas.parse(
        schemas.CreateTokens,
        body(
            name="  ci  ",
            expires_at="2030-01-01T02:00:00+02:00",
            quota_usd=" 1.50 ",
            reset_period="monthly",
            count=100,
            group="vip.eu-1",
            models=["gpt-4o"],
            allow_ips=["10.1.2.3/8", "2001:db8::1"],
        ),
    )
    assert parsed.name == "ci"
    assert parsed.expires_at == datetime(2030, 1, 1, tzinfo=UTC)
    assert parsed.quota_usd == "1.50"
    assert parsed.count == 100
    # CIDRs are normalised to their network; single addresses become /32 or /128
    assert parsed.allow_ips == ["10.0.0.0/8", "2001:db8::1/128"]


@pytest.mark.parametrize("name", ["x", "x" * 64, "Üñïçødé key"])
def test_names_of_1_to_64_characters_are_accepted(name: str) -> None:
    assert schemas.parse(schemas.CreateTokens, body(name=name)).name == name


def test_patch_accepts_null_for_expiry_and_quota_meaning_never_and_unlimited() -> None:
    parsed = schemas.parse(schemas.PatchToken, body(expires_at=None, quota_units=None))
    assert parsed.expires_at is None
    assert parsed.quota_units is None
    assert parsed.model_fields_set == {"expires_at", "quota_units"}


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"status": "expired"}, "status"),
        ({"status": "exhausted"}, "status"),
        ({"status": True}, "status"),
        ({"quota_units": -5}, "quota_units"),
        ({"quota_units": 1, "quota_usd": "1"}, "quota_usd"),
    ],
)
def test_each_bad_patch_field_is_refused_and_named(fields: dict[str, Any], param: str) -> None:
    assert rejected(schemas.PatchToken, body(**fields)).param == param


# --- accounts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "fields", "param"),
    [
        (schemas.CreateAccount, {}, "name"),
        (schemas.CreateAccount, {"name": "a", "quota_units": -1}, "quota_units"),
        (schemas.CreateAccount, {"name": "a", "quota_units": 1, "quota_usd": "1"}, "quota_usd"),
        (schemas.CreateAccount, {"name": "a", "unlimited": True, "quota_units": 5}, "unlimited"),
        (schemas.CreateAccount, {"name": "a", "unlimited": True, "quota_usd": "5"}, "unlimited"),
        (schemas.CreateAccount, {"name": "a", "unlimited": "yes"}, "unlimited"),
        (schemas.PatchAccount, {"status": "deleted"}, "status"),
        (schemas.PatchAccount, {"name": "x" * 65}, "name"),
        (schemas.CreditAccount, {}, "quota_units"),
        (schemas.CreditAccount, {"note": "n"}, "quota_units"),
        (schemas.CreditAccount, {"quota_units": 0}, "quota_units"),
        (schemas.CreditAccount, {"quota_units": -10}, "quota_units"),
        (schemas.CreditAccount, {"quota_units": 3, "quota_usd": "1"}, "quota_usd"),
        (schemas.CreditAccount, {"quota_usd": "-1"}, "quota_usd"),
        (schemas.CreditAccount, {"quota_units": 3, "note": 5}, "note"),
        (schemas.CreditAccount, {"quota_units": 3, "note": "n" * 257}, "note"),
    ],
)
def test_each_bad_account_field_is_refused_and_named(
    schema: type[schemas.Body], fields: dict[str, Any], param: str
) -> None:
    assert rejected(schema, body(**fields)).param == param


def test_an_unlimited_account_with_null_quota_is_accepted() -> None:
    parsed = schemas.parse(schemas.CreateAccount, body(name="a", unlimited=True, quota_units=None))
    assert parsed.unlimited is True
    assert parsed.quota_units is None


def test_error_messages_do_not_echo_pydantic_urls_or_prefixes() -> None:
    error = rejected(schemas.CreateTokens, body(allow_ips=["nope"]))
    assert "errors.pydantic.dev" not in error.message
    assert "Value error" not in error.message


# --- names are text, not terminal commands --------------------------------------------------
UNSAFE_NAMES = [
    "a\u0000b",
    "red\u001b[31m",
    "two\r\nlines",
    "bell\u0007",
    "next\u0085line",
    "\u0085leading",
    "tab\there",
    "del\u007f",
    *[f"bidi{chr(c)}x" for c in range(0x202A, 0x202F)],
    *[f"isolate{chr(c)}x" for c in range(0x2066, 0x206A)],
]


@pytest.mark.parametrize("name", UNSAFE_NAMES, ids=ascii)
@pytest.mark.parametrize(
    ("schema", "extra"),
    [
        (schemas.CreateAccount, {}),
        (schemas.PatchAccount, {}),
        (schemas.CreateTokens, {}),
        (schemas.PatchToken, {}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_names_with_control_or_bidi_characters_are_refused(
    schema: type[schemas.Body], extra: dict[str, Any], name: str
) -> None:
    error = rejected(schema, body(name=name, **extra))
    assert error.param == "name"


@pytest.mark.parametrize("name", UNSAFE_NAMES[:4], ids=ascii)
def test_channel_names_with_control_characters_are_refused(name: str) -> None:
    from chalicelib.services import schemas_config

    channel = {"name": name, "base_url": "http://127.0.0.1:9/v1", "models": ["m"]}
    assert rejected(schemas_config.CreateChannel, body(**channel)).param == "name"
    assert rejected(schemas_config.PatchChannel, body(name=name)).param == "name"


@pytest.mark.parametrize("name", ["Ünïcödé ok", "名前", "emoji 😀", "a-b_c.d (prod)", "عربى"])
def test_ordinary_unicode_names_are_accepted(name: str) -> None:
    assert schemas.parse(schemas.CreateAccount, body(name=name)).name == name
