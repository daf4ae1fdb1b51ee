"""Request bodies, one declarative schema each (pydantic v2, strict, unknown fields refused).

The same classes give the JSON Schemas of the OpenAPI document, so what is validated and what is
documented cannot drift apart. Cross-field rules that need the clock (a date in the past) live in
``management.py``, which passes ``now``.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from chalicelib.core import alerts, limits, payloads, text
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.pricing import MAX_AUDIO_SECONDS_LIMIT, PRICE_FIELDS
from chalicelib.core.scopes import SCOPES


def _plain_text(value: Any) -> Any:
    # Before stripping: a name must not lose a control character silently either.
    if isinstance(value, str) and text.has_unsafe(value):
        raise ValueError("must not contain control characters or bidirectional overrides")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    BeforeValidator(_plain_text),
]
Group = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a group")
    return values


# The channel groups an account's keys may use (granted by the operator only).
Groups = Annotated[list[Group], Field(min_length=1, max_length=50), AfterValidator(_distinct)]
Units = Annotated[int, Field(ge=0, le=10**15)]
PositiveUnits = Annotated[int, Field(ge=1, le=10**15)]


def _usd(value: str) -> str:
    if not re.fullmatch(r"\s*\d{1,10}(\.\d{1,12})?\s*", value):
        raise ValueError('must be a non-negative decimal string such as "1.50"')
    return value.strip()


UsdString = Annotated[str, StringConstraints(max_length=32), AfterValidator(_usd)]


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise ValueError(f"'{value}' is not an IP address or CIDR block") from exc


Cidr = Annotated[str, StringConstraints(max_length=64), AfterValidator(_cidr)]


# Date and time are both required: pydantic alone would also take "1900000000" (epoch seconds)
# or a bare date, neither of which says unambiguously which instant is meant.
_ISO_DATETIME = re.compile(r"\s*\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str) or not _ISO_DATETIME.match(value):
        raise ValueError("must be an ISO-8601 date-time string such as 2027-01-31T00:00:00Z")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must include a UTC offset, e.g. 2027-01-31T00:00:00Z")
    return value


IsoDatetime = Annotated[
    datetime, BeforeValidator(_iso_string), AfterValidator(_aware), Field(strict=False)
]
RequestsPerMinute = Annotated[int, Field(ge=1, le=limits.MAX_RPM)]
TokensPerMinute = Annotated[int, Field(ge=1, le=limits.MAX_TPM)]
Concurrency = Annotated[int, Field(ge=1, le=limits.MAX_CONCURRENCY)]
ResetPeriod = Literal["never", "daily", "weekly", "monthly"]
Status = Literal["enabled", "disabled"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_max_length=4096)


class FieldError(ValueError):
    """A cross-field rule broken; ``param`` names the field to point the user at."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def _only_one(values: dict[str, Any], *names: str) -> None:
    given = [n for n in names if n in values]
    if len(given) > 1:
        raise FieldError(given[-1], f"give only one of {', '.join(names)}")


class CreateAccount(Body):
    name: Name
    quota_units: Units | None = None
    quota_usd: UsdString | None = None
    unlimited: bool = False
    groups: Groups | None = None
    # Limits on all the account's keys together; null: none (see chalicelib/core/limits.py).
    rpm_limit: RequestsPerMinute | None = None
    tpm_limit: TokensPerMinute | None = None
    max_concurrency: Concurrency | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_quota(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _only_one(values, "quota_units", "quota_usd")
            if values.get("unlimited") is True and (
                values.get("quota_units") is not None or values.get("quota_usd") is not None
            ):
                raise FieldError(
                    "unlimited", "an unlimited account takes no quota_units or quota_usd"
                )
        return values


class PatchAccount(Body):
    """``rpm_limit: null`` (and the other limits) removes the limit."""

    name: Name | None = None
    status: Status | None = None
    groups: Groups | None = None
    rpm_limit: RequestsPerMinute | None = None
    tpm_limit: TokensPerMinute | None = None
    max_concurrency: Concurrency | None = None


class CreditAccount(Body):
    quota_units: PositiveUnits | None = None
    quota_usd: UsdString | None = None
    note: Annotated[str, StringConstraints(max_length=256)] = ""

    @model_validator(mode="before")
    @classmethod
    def _one_amount(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _only_one(values, "quota_units", "quota_usd")
            if values.get("quota_units") is None and values.get("quota_usd") is None:
                raise FieldError("quota_units", "give quota_units or quota_usd")
        return values


class TokenFields(Body):
    """Fields shared by create and patch."""

    name: Name | None = None
    expires_at: IsoDatetime | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None
    quota_units: Units | None = None
    quota_usd: UsdString | None = None
    reset_period: ResetPeriod | None = None
    group: Group | None = None
    models: Annotated[list[ModelName], Field(max_length=100)] | None = None
    allow_ips: Annotated[list[Cidr], Field(max_length=50)] | None = None
    # Rate limits; null: none (see chalicelib/core/limits.py).
    rpm_limit: RequestsPerMinute | None = None
    tpm_limit: TokensPerMinute | None = None
    max_concurrency: Concurrency | None = None

    @model_validator(mode="before")
    @classmethod
    def _exclusive(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _only_one(values, "expires_at", "expires_in_days")
            _only_one(values, "quota_units", "quota_usd")
        return values


class CreateTokens(TokenFields):
    name: Name = "default"
    count: Annotated[int, Field(ge=1, le=100)] = 1


class PatchToken(TokenFields):
    """``expires_at: null`` means never; ``quota_units: null`` means unlimited."""

    status: Status | None = None


class SetPrice(Body):
    """Any combination of the price fields (``core.pricing.PRICE_FIELDS``), at least one."""

    input_usd_per_mtok: UsdString | None = None
    output_usd_per_mtok: UsdString | None = None
    cached_input_usd_per_mtok: UsdString | None = None
    usd_per_request: UsdString | None = None
    usd_per_image: UsdString | None = None
    usd_per_mchar: UsdString | None = None
    usd_per_minute: UsdString | None = None
    usd_per_second: UsdString | None = None
    # Not a price: the longest audio a transcription is reserved for (unset: the setting).
    max_audio_seconds: Annotated[int, Field(ge=1, le=MAX_AUDIO_SECONDS_LIMIT)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _some_price(cls, values: Any) -> Any:
        if isinstance(values, dict) and all(values.get(k) is None for k in PRICE_FIELDS):
            raise FieldError(
                "input_usd_per_mtok", "give at least one price field: " + ", ".join(PRICE_FIELDS)
            )
        return values


class SetGroupRatio(Body):
    ratio: UsdString


def _no_auto_in_order(values: list[str]) -> list[str]:
    if "auto" in values:
        raise ValueError("must name real groups, not 'auto' itself")
    return values


class SetAutoOrder(Body):
    """``PUT /admin/groups/auto``: the groups ``auto`` keys try, first one first."""

    order: Annotated[Groups, AfterValidator(_no_auto_in_order)]


def _known_scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"'{value}' is not a scope; the scopes are {', '.join(SCOPES)}")
    return value


def _distinct_scopes(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a scope")
    return values


Scope = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_scope)]
Scopes = Annotated[
    list[Scope], Field(min_length=1, max_length=len(SCOPES)), AfterValidator(_distinct_scopes)
]


class CreateOperatorKey(Body):
    """An operator key (ops-): what it may do, and until when (no expiry: never)."""

    name: Name
    scopes: Scopes
    expires_at: IsoDatetime | None = None
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_expiry(cls, values: Any) -> Any:
        if isinstance(values, dict):
            _only_one(values, "expires_at", "expires_in_days")
        return values


class PatchOperatorKey(Body):
    name: Name | None = None
    scopes: Scopes | None = None
    status: Status | None = None


def _distinct_thresholds(values: list[int]) -> list[int]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a threshold")
    return values


Threshold = Annotated[int, Field(ge=1, le=100)]


class AlertSettings(Body):
    """Budget alerts of an account or key: percentages of its quota, and where to POST."""

    thresholds: (
        Annotated[
            list[Threshold],
            Field(min_length=1, max_length=alerts.MAX_THRESHOLDS),
            AfterValidator(_distinct_thresholds),
        ]
        | None
    ) = None
    # At least one target (the use case checks): a webhook, and deployed the stack's own SNS
    # topic or EventBridge bus.
    webhook_url: (
        Annotated[str, StringConstraints(min_length=1, max_length=alerts.MAX_URL_LENGTH)] | None
    ) = None
    sns_topic_arn: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    event_bus: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


def parse(schema: type[Body], raw: bytes | str | None) -> Any:
    """Validate a raw JSON body; any failure is a 400 naming the first offending field."""
    if raw is None or (isinstance(raw, bytes | str) and not raw.strip()):
        raw = b"{}"
    # The limits every edge shares (depth, lone surrogates, non-finite numbers), before pydantic.
    payloads.load_json(raw)
    try:
        return schema.model_validate_json(raw)
    except ValidationError as exc:
        raise validation_error(exc) from exc


def validation_error(exc: ValidationError) -> InvalidRequest:
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    kind = first.get("type", "")
    message = str(first.get("msg", "invalid value"))
    if kind == "json_invalid":
        return InvalidRequest("The request body is not valid JSON.", param=None)
    if kind == "extra_forbidden":
        message = "Unknown field."
    elif kind == "model_type" and not loc:
        return InvalidRequest("The request body must be a JSON object.", param=None)
    message = message.removeprefix("Value error, ")
    param = ".".join(loc) or None
    cause = (first.get("ctx") or {}).get("error")
    if isinstance(cause, FieldError):
        param = cause.param
    return InvalidRequest(f"{param}: {message}" if param else message, param=param)
