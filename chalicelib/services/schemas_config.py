"""Request bodies of the relay's configuration API (channels), in the style of ``schemas``.

Strict and closed (unknown fields are refused), so a typo such as ``"wieght"`` is a 400 naming the
field instead of a silently ignored setting. Prices and group ratios use ``schemas.SetPrice`` and
``schemas.SetGroupRatio``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from chalicelib.core.channels import ENDPOINTS
from chalicelib.services.schemas import Body, FieldError, Group, Name

ChannelId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
# Model names are opaque to us but never contain whitespace.
ModelId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S+$")]
ApiKey = Annotated[str, StringConstraints(min_length=1, max_length=2048, pattern=r"^\S+$")]
Priority = Annotated[int, Field(ge=-1000, le=1000)]
Weight = Annotated[int, Field(ge=1, le=1000)]
Models = Annotated[list[ModelId], Field(min_length=1, max_length=200)]
ModelMap = Annotated[dict[ModelId, ModelId], Field(max_length=200)]


def _not_auto(value: str) -> str:
    if value == "auto":
        raise ValueError("'auto' is not a channel group: auto keys pick among real groups")
    return value


ChannelGroup = Annotated[Group, AfterValidator(_not_auto)]
Endpoint = Literal[ENDPOINTS]  # type: ignore[valid-type]
Endpoints = Annotated[list[Endpoint], Field(max_length=len(ENDPOINTS))]


def _base_url(value: str) -> str:
    """An OpenAI-compatible base URL such as http://127.0.0.1:9000/v1.

    Credentials in the URL are refused: listings show the URL, and a key belongs in ``api_key``.
    """
    try:
        parts = urlsplit(value.strip())
        port_ok = parts.port is None or parts.port > 0
    except ValueError as exc:
        raise ValueError("must be an http(s) URL such as https://api.openai.com/v1") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
        raise ValueError("must be an http(s) URL such as https://api.openai.com/v1")
    if parts.username or parts.password:
        raise ValueError("must not contain credentials; put the provider key in api_key")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment")
    return value.strip().rstrip("/")


BaseUrl = Annotated[str, StringConstraints(max_length=512), AfterValidator(_base_url)]


def check_models(models: list[str] | tuple[str, ...], model_map: dict[str, str]) -> None:
    """The cross-field rules of a channel, shared by create and (after merging) patch."""
    if len(set(models)) != len(models):
        raise FieldError("models", "must not repeat a name")
    for client_model in model_map:
        if client_model not in models:
            raise FieldError("model_map", f"maps '{client_model}', which is not in models")


class CreateChannel(Body):
    id: ChannelId | None = None
    name: Name
    base_url: BaseUrl
    api_key: ApiKey | None = None
    models: Models
    model_map: ModelMap = Field(default_factory=dict)
    endpoints: Endpoints = Field(default_factory=list)
    group: ChannelGroup = "default"
    priority: Priority = 0
    weight: Weight = 1
    enabled: bool = True

    @model_validator(mode="after")
    def _models_consistent(self) -> CreateChannel:
        check_models(self.models, self.model_map)
        return self


class PatchChannel(Body):
    """Only the fields given change; ``api_key: null`` removes the key, other nulls are refused."""

    name: Name | None = None
    base_url: BaseUrl | None = None
    api_key: ApiKey | None = None
    models: Models | None = None
    model_map: ModelMap | None = None
    endpoints: Endpoints | None = None
    group: ChannelGroup | None = None
    priority: Priority | None = None
    weight: Weight | None = None
    enabled: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for name, value in values.items():
                if value is None and name != "api_key" and name in cls.model_fields:
                    raise FieldError(name, f"{name} cannot be null")
        return values
