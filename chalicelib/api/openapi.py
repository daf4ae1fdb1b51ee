"""The OpenAPI 3.1 document of every route, built from the app's own route table.

Request bodies come from the pydantic classes in ``chalicelib.services.schemas`` and the relay's
field table in ``chalicelib.core.payloads`` (the code that validates them), so what is validated
and what is documented cannot drift apart. Responses are plain JSON Schema written here against
``chalicelib.core.views`` and friends; they are strict (``additionalProperties: false``) so the
schemathesis suite notices a new field, or a key leaking into a listing.

``OPERATIONS`` maps every (path, method) to its documentation in one entry; who may call it, its
implicit query parameters and its usual errors follow from the path (``_audience``), and the
scope an operator key needs for it from ``chalicelib.api.scopes`` (the table ``auth`` enforces).
A route registered in the app but missing there still appears in the document, with a generic
schema and the flag ``x-undocumented: true``, and ``undocumented_routes()`` lists it so the test
suite fails until someone writes its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from chalicelib.api import scopes as route_scopes
from chalicelib.api.web import CATCH_ALL
from chalicelib.core import audit, channels, conversations, payloads
from chalicelib.core.media import (
    MAX_IMAGES,
    MAX_SPEECH_CHARS,
    MAX_VIDEO_SECONDS,
    TRANSCRIPT_FORMATS,
)
from chalicelib.core.pricing import MAX_AUDIO_SECONDS_FIELD, MAX_AUDIO_SECONDS_LIMIT, PRICE_FIELDS
from chalicelib.core.scopes import SCOPES
from chalicelib.services import schemas

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"
JSON = "application/json"
MULTIPART = "multipart/form-data"
PAGE = ("limit", "cursor")

# Who may call an operation; each name is a security scheme below. Operations with a scope in
# ``chalicelib.api.scopes`` also take an operator key holding it (``OPERATOR_KEY``).
OPERATOR_KEY = "operatorKey"
ADMIN = ("adminKey",)
ACCOUNT = ("managementKey", "adminKey")
API_KEY = ("apiKey",)
PUBLIC: tuple[str, ...] = ()
PUBLIC_PATHS = ("/health", "/openapi.json")
STATIC_MEDIA = ("text/html", "text/css", "text/javascript", "image/svg+xml")

# Errors every authenticated operation can answer; 404 comes with a path parameter, 413 with a
# request body.
AUTH_ERRORS = (400, 401, 403, 429, 500, 503)
UPSTREAM_ERRORS = (404, 502, 504)


@dataclass(frozen=True)
class Op:
    """The documentation of one operation.

    ``request`` and ``response`` name a schema of ``REQUESTS``/``RESPONSES`` or a pydantic class in
    ``chalicelib.services.schemas`` or ``chalicelib.services.schemas_config``; ``response=None``
    means no body
    (204). Who may call it follows from the path (see ``_audience``); ``errors`` lists statuses
    beyond the usual ones.
    """

    summary: str
    response: str | None
    status: int = 200
    request: str | None = None
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    events: bool = False  # also answers text/event-stream (stream: true)
    media: tuple[str, ...] = (JSON,)  # of the success body; anything but JSON is text or bytes
    request_media: tuple[str, ...] = (JSON,)  # the request body's (multipart: uploads)
    redirects: bool = False  # may answer 308 with a Location (and no body)


# One line per route, in the order of app.py.
OPERATIONS: dict[tuple[str, str], Op] = {
    ("/health", "GET"): Op("Liveness probe", "Health"),
    ("/openapi.json", "GET"): Op("This document", "Document"),
    ("/admin/accounts", "POST"): Op(
        "Create an account, its management key and its default API key",
        "AccountCreated",
        201,
        "CreateAccount",
    ),
    ("/admin/accounts", "GET"): Op("List accounts, newest first", "AccountList", query=PAGE),
    ("/admin/accounts/{account_id}", "GET"): Op("Read an account", "Account"),
    ("/admin/accounts/{account_id}", "PATCH"): Op(
        "Rename, disable or enable an account; set its limits", "Account", request="PatchAccount"
    ),
    ("/admin/accounts/{account_id}/credit", "POST"): Op(
        "Add balance to an account", "Account", request="CreditAccount"
    ),
    ("/admin/accounts/{account_id}/credits", "GET"): Op(
        "The account's credits, newest first, with their notes", "CreditList"
    ),
    ("/admin/accounts/{account_id}/management-key", "POST"): Op(
        "Issue a new management key (shown once); the old one stops at once", "ManagementKey"
    ),
    ("/account", "GET"): Op("Read the caller's account", "OwnAccount", errors=(404,)),
    ("/tokens", "POST"): Op(
        "Create API keys; the full keys appear in this response only",
        "TokensCreated",
        201,
        "CreateTokens",
        errors=(404,),
    ),
    ("/tokens", "GET"): Op("List API keys, newest first", "TokenList", query=(*PAGE, "status")),
    ("/tokens/{token_id}", "GET"): Op("Read an API key", "Token"),
    ("/tokens/{token_id}", "PATCH"): Op(
        "Edit an API key: name, status, expiry, quota, reset, group, models, IPs, rate limits",
        "Token",
        request="PatchToken",
        errors=(409,),
    ),
    ("/tokens/{token_id}", "DELETE"): Op("Delete an API key", None, 204),
    ("/tokens/{token_id}/regenerate", "POST"): Op(
        "Replace an API key's secret; the old key stops working at once", "TokenWithKey"
    ),
    ("/v1/chat/completions", "POST"): Op(
        "Chat completion, OpenAI-compatible; stream: true answers text/event-stream",
        "ChatCompletion",
        request="ChatCompletionRequest",
        errors=UPSTREAM_ERRORS,
        events=True,
    ),
    ("/v1/embeddings", "POST"): Op(
        "Embeddings, OpenAI-compatible",
        "Embeddings",
        request="EmbeddingsRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/responses", "POST"): Op(
        "Responses API, OpenAI-compatible; stream: true answers OpenAI's typed events",
        "Response",
        request="ResponseRequest",
        errors=UPSTREAM_ERRORS,
        events=True,
    ),
    ("/v1/responses/{id}", "GET"): Op(
        "A stored response made with this key's account", "Response", errors=UPSTREAM_ERRORS
    ),
    ("/v1/responses/{id}", "DELETE"): Op(
        "Delete a stored response", "ResponseDeleted", errors=UPSTREAM_ERRORS
    ),
    ("/v1/responses/{id}/cancel", "POST"): Op(
        "Cancel a response", "Response", errors=UPSTREAM_ERRORS
    ),
    ("/v1/responses/{id}/input_items", "GET"): Op(
        "A stored response's input items", "ProviderList", errors=UPSTREAM_ERRORS
    ),
    ("/v1/conversations", "POST"): Op(
        "Create a conversation (optional items and metadata) on the key's conversation channel; "
        "not billed",
        "Conversation",
        request="ConversationCreateRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}", "GET"): Op(
        "A conversation of this key's account (another account's is 404)",
        "Conversation",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}", "POST"): Op(
        "Replace a conversation's metadata",
        "Conversation",
        request="ConversationUpdateRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}", "DELETE"): Op(
        "Delete a conversation", "ConversationDeleted", errors=UPSTREAM_ERRORS
    ),
    ("/v1/conversations/{id}/items", "POST"): Op(
        "Add items to a conversation (billed as input of the responses made in it)",
        "ProviderList",
        request="ConversationItemsRequest",
        query=("include",),
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}/items", "GET"): Op(
        "A conversation's items",
        "ProviderList",
        query=("limit:items", "after:items", "order:items", "include"),
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}/items/{item_id}", "GET"): Op(
        "One item of a conversation",
        "ConversationItem",
        query=("include",),
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/conversations/{id}/items/{item_id}", "DELETE"): Op(
        "Delete an item of a conversation; answers the conversation",
        "Conversation",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/completions", "POST"): Op(
        "Legacy completion, OpenAI-compatible; stream: true answers text/event-stream",
        "Completion",
        request="CompletionRequest",
        errors=UPSTREAM_ERRORS,
        events=True,
    ),
    ("/v1/moderations", "POST"): Op(
        "Moderation, OpenAI-compatible",
        "Moderation",
        request="ModerationRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/images/generations", "POST"): Op(
        "Image generation, OpenAI-compatible; charged per image returned (and tokens)",
        "Images",
        request="ImageGenerationRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/images/edits", "POST"): Op(
        "Image edit (multipart: the images and mask reach the provider byte for byte)",
        "Images",
        request="ImageEditRequest",
        errors=UPSTREAM_ERRORS,
        request_media=(MULTIPART,),
    ),
    ("/v1/audio/speech", "POST"): Op(
        "Text to speech: the provider's audio, in its content type; charged per character",
        "Binary",
        request="SpeechRequest",
        errors=UPSTREAM_ERRORS,
        media=("audio/*",),
    ),
    ("/v1/audio/transcriptions", "POST"): Op(
        "Transcription (multipart upload); json, text, srt, vtt or verbose_json; stream=true "
        "answers the provider's events",
        "Transcription",
        request="TranscriptionRequest",
        errors=UPSTREAM_ERRORS,
        events=True,
        media=(JSON, "text/plain"),
        request_media=(MULTIPART,),
    ),
    ("/v1/audio/translations", "POST"): Op(
        "Translation to English (multipart upload); json, text, srt, vtt or verbose_json",
        "Transcription",
        request="TranslationRequest",
        errors=UPSTREAM_ERRORS,
        media=(JSON, "text/plain"),
        request_media=(MULTIPART,),
    ),
    ("/v1/videos", "POST"): Op(
        "Create a video job (JSON, or multipart with an input_reference); seconds x price is "
        "reserved now and charged once, when the job completes",
        "Video",
        request="VideoRequest",
        errors=UPSTREAM_ERRORS,
        request_media=(JSON, MULTIPART),
    ),
    ("/v1/videos", "GET"): Op(
        "This account's video jobs, newest first",
        "VideoList",
        query=("limit:videos", "after", "order:videos"),
        errors=(404,),
    ),
    ("/v1/videos/{id}", "GET"): Op(
        "A video job of this account (another account's is 404)", "Video", errors=UPSTREAM_ERRORS
    ),
    ("/v1/videos/{id}", "DELETE"): Op(
        "Delete a video job; one not completed is refunded", "VideoDeleted", errors=UPSTREAM_ERRORS
    ),
    ("/v1/videos/{id}/content", "GET"): Op(
        "A completed video's file (or its thumbnail or spritesheet), as the provider sends it",
        "Binary",
        query=("variant",),
        errors=UPSTREAM_ERRORS,
        media=("video/*", "image/*", "application/octet-stream"),
    ),
    ("/v1/videos/{id}/remix", "POST"): Op(
        "A new job from a completed one, on the same channel, as long as it",
        "Video",
        request="VideoRemixRequest",
        errors=UPSTREAM_ERRORS,
    ),
    ("/v1/models", "GET"): Op(
        "Models this key may use, with the endpoints each serves", "ModelList"
    ),
    ("/v1/models/{model}", "GET"): Op("One model this key may use, as the list shows it", "Model"),
    ("/v1/key", "GET"): Op("The calling key's own quota and use", "Token"),
    ("/v1/dashboard/billing/subscription", "GET"): Op("Limit in US$", "Subscription"),
    ("/v1/dashboard/billing/usage", "GET"): Op("Spend in US cents", "BillingUsage"),
    ("/console", "GET"): Op("The web console", "Text", media=("text/html",), redirects=True),
    ("/console/{asset}", "GET"): Op("A file of the web console", "Text", media=STATIC_MEDIA),
    ("/admin/channels", "POST"): Op(
        "Add an upstream channel", "Channel", 201, "CreateChannel", errors=(409,)
    ),
    ("/admin/channels", "GET"): Op("List channels", "ChannelList"),
    ("/admin/channels/{channel_id}", "GET"): Op("Read a channel", "Channel"),
    ("/admin/channels/{channel_id}", "PATCH"): Op(
        "Edit a channel", "Channel", request="PatchChannel", errors=(409,)
    ),
    ("/admin/channels/{channel_id}", "DELETE"): Op("Delete a channel", None, 204),
    ("/admin/models", "GET"): Op("List model prices", "PriceList"),
    ("/admin/models/{model}", "PUT"): Op("Set a model's price", "Price", request="SetPrice"),
    ("/admin/models/{model}", "DELETE"): Op("Delete a model's price", None, 204),
    ("/admin/groups", "GET"): Op("List group price ratios", "GroupList"),
    ("/admin/groups/{group}", "PUT"): Op(
        "Set a group's price ratio; for the group 'auto', the order its keys pick groups in",
        "GroupRatioOrAutoOrder",
        request="SetGroupRatioOrAutoOrder",
    ),
    ("/admin/resets/run", "POST"): Op("Run due quota resets now", "ResetRun"),
    ("/admin/sweeper/run", "POST"): Op(
        "Finish reservations left pending by a process that died, now", "SweepRun"
    ),
    ("/admin/keys", "POST"): Op(
        "Create an operator key (ops-); the key appears in this response only",
        "OperatorKeyWithKey",
        201,
        "CreateOperatorKey",
    ),
    ("/admin/keys", "GET"): Op("List operator keys", "OperatorKeyList", query=PAGE),
    ("/admin/keys/{key_id}", "GET"): Op("Read an operator key", "OperatorKey"),
    ("/admin/keys/{key_id}", "PATCH"): Op(
        "Rename, re-scope, disable or enable an operator key",
        "OperatorKey",
        request="PatchOperatorKey",
        errors=(409,),
    ),
    ("/admin/keys/{key_id}", "DELETE"): Op(
        "Delete an operator key; it is refused from its next request", None, 204
    ),
    ("/admin/ledger/verify", "POST"): Op(
        "Check every key and account against the ledger's invariants (reads only)",
        "LedgerReport",
        query=("cursor",),
    ),
    ("/account/alerts", "GET"): Op("Read the caller's budget alerts", "Alerts"),
    ("/account/alerts", "PUT"): Op(
        "Set budget alerts; the first time, the answer holds the signing secret (shown once)",
        "AlertsMaybeSecret",
        request="AlertSettings",
        errors=(404,),
    ),
    ("/account/alerts", "DELETE"): Op("Turn budget alerts off", None, 204, errors=(404,)),
    ("/account/alerts/rotate-secret", "POST"): Op(
        "Issue a new webhook signing secret (shown once)", "AlertsWithSecret"
    ),
    ("/tokens/{token_id}/alerts", "GET"): Op("Read an API key's budget alerts", "Alerts"),
    ("/tokens/{token_id}/alerts", "PUT"): Op(
        "Set an API key's budget alerts; the first time, with the signing secret (shown once)",
        "AlertsMaybeSecret",
        request="AlertSettings",
    ),
    ("/tokens/{token_id}/alerts", "DELETE"): Op("Turn an API key's budget alerts off", None, 204),
    ("/tokens/{token_id}/alerts/rotate-secret", "POST"): Op(
        "Issue a new signing secret for an API key's alerts (shown once)",
        "AlertsWithSecret",
    ),
    ("/admin/accounts/{account_id}/alerts", "GET"): Op("Read an account's budget alerts", "Alerts"),
    ("/admin/accounts/{account_id}/alerts", "PUT"): Op(
        "Set an account's budget alerts; the first time, with the signing secret (shown once)",
        "AlertsMaybeSecret",
        request="AlertSettings",
    ),
    ("/admin/accounts/{account_id}/alerts", "DELETE"): Op(
        "Turn an account's budget alerts off", None, 204
    ),
    ("/admin/accounts/{account_id}/alerts/rotate-secret", "POST"): Op(
        "Issue a new signing secret for an account's alerts (shown once)",
        "AlertsWithSecret",
    ),
    ("/admin/alerts/dead-letters", "GET"): Op(
        "Alert deliveries that failed every attempt, newest first", "DeadLetterList", query=PAGE
    ),
    ("/logs", "GET"): Op(
        "One line per relayed request, newest first",
        "LogList",
        query=(*PAGE, "start", "end", "token_id", "model", "status:log", "request_id"),
    ),
    ("/usage", "GET"): Op(
        "Requests, tokens and cost per day, key or model, with the filters of /logs",
        "UsageReport",
        query=("start", "end", "group_by", "token_id", "model", "status:log"),
    ),
    ("/audit", "GET"): Op(
        "Who changed what, newest first: every management action (a management key sees its "
        "own account's; account_id is an optional filter for the admin and operator keys)",
        "AuditList",
        query=(*PAGE, "start", "end", "target_type", "target_id", "action"),
    ),
}


def _audience(path: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(tag, security schemes, implicit query parameters) of a path, as app.py wires them."""
    if path in PUBLIC_PATHS:
        return "meta", PUBLIC, ()
    if path == "/console" or path.startswith("/console/"):
        return "console", PUBLIC, ()
    if path.startswith("/admin/"):
        return "admin", ADMIN, ()
    if path.startswith("/v1/"):
        return "relay", API_KEY, ()
    # Account routes act on the caller's account, or on ?account_id= for the admin key.
    return "account", ACCOUNT, ("account_id",)


QUERY_PARAMETERS: dict[str, dict[str, Any]] = {
    "limit": {
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "cursor": {
        "description": "The next_cursor of the previous page; empty: the first page.",
        "schema": {"type": "string"},
    },
    "status": {
        "description": "Only keys in this effective status.",
        "schema": {"type": "string", "enum": ["enabled", "disabled", "expired", "exhausted"]},
    },
    "account_id": {
        "description": (
            "The account to act on; required with the admin or an operator key, ignored otherwise."
        ),
        "schema": {"type": "string"},
    },
    "start": {
        "description": "ISO-8601 date or date-time (UTC if no offset), or epoch seconds.",
        "schema": {"type": "string"},
    },
    "end": {"description": "Like start; default now.", "schema": {"type": "string"}},
    "token_id": {"description": "Only this key's requests.", "schema": {"type": "string"}},
    "model": {"description": "Only this model's requests.", "schema": {"type": "string"}},
    "status:log": {
        "description": "Only requests with this outcome.",
        "schema": {
            "type": "string",
            "enum": ["ok", "upstream_error", "deadline_exceeded", "rejected"],
        },
    },
    "request_id": {
        "description": "Only the request with this id (still within the other filters).",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_\\-]{1,128}$"},
    },
    "limit:videos": {
        "description": "Jobs per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "after": {
        "description": "The id of the last job of the previous page.",
        "schema": {"type": "string"},
    },
    "order:videos": {
        "description": "Newest first, the only order served.",
        "schema": {"type": "string", "enum": ["desc"], "default": "desc"},
    },
    "limit:items": {
        "description": "Items per page.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
    },
    "after:items": {
        "description": "The id of the last item of the previous page.",
        "schema": {"type": "string"},
    },
    "order:items": {
        "description": "Oldest (asc) or newest (desc) first.",
        "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
    },
    "include": {
        "description": "Extra output data to include, passed on to the provider (OpenAI's SDKs "
        "send include[]=..., also accepted).",
        "schema": {"type": "array", "items": {"type": "string"}},
        "style": "form",
        "explode": True,
    },
    "variant": {
        "description": "Which file of the job.",
        "schema": {"type": "string", "enum": ["video", "thumbnail", "spritesheet"]},
    },
    "group_by": {"schema": {"type": "string", "enum": ["day", "token", "model"], "default": "day"}},
    "target_type": {
        "description": "Only records about this kind of target.",
        "schema": {"type": "string", "enum": list(audit.TARGET_TYPES)},
    },
    "target_id": {
        "description": "Only records about this target (needs target_type).",
        "schema": {"type": "string"},
    },
    "action": {
        "description": "Only this action.",
        "schema": {"type": "string", "enum": list(audit.ACTIONS)},
    },
}
# The handlers read an empty value (?limit=) as an absent one; only a status filter must be real.
for _name, _parameter in QUERY_PARAMETERS.items():
    if _name not in ("status", "status:log"):
        _parameter["allowEmptyValue"] = True

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    name: {"type": "http", "scheme": "bearer", "description": description}
    for name, description in (
        ("adminKey", "The operator's admin key: every scope."),
        (
            OPERATOR_KEY,
            "An operator key (ops-...), for the operations whose security requirement lists a "
            "scope it holds. Scopes: "
            + "; ".join(f"{name}: {meaning}" for name, meaning in SCOPES.items())
            + ".",
        ),
        ("managementKey", "An account's management key (mk-...)."),
        ("apiKey", "An API key (sk-...), for the OpenAI-compatible /v1 routes."),
    )
}


# Response schemas ------------------------------------------------------------------------------
def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_TIME = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}
_USD = {"type": "string", "pattern": r"^\d+\.\d{6}$", "description": "US dollars, 6 decimals"}
_NULLABLE_TIME = {**_TIME, "type": ["string", "null"]}
# The JSON types of the field tables in ``chalicelib.core`` (e.g. ``channels.PUBLIC_FIELDS``).
_FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "boolean": {"type": "boolean"},
    "string list": {"type": "array", "items": {"type": "string"}},
    "string map": {"type": "object", "additionalProperties": {"type": "string"}},
    "time": _NULLABLE_TIME,
}
_NULLABLE_USD = {**_USD, "type": ["string", "null"], "description": "US dollars; null: unlimited"}

_ACCOUNT = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "status": {"type": "string", "enum": ["enabled", "disabled"]},
    "quota_units": _nullable("integer", description="Total granted; null: unlimited"),
    "quota_usd": _NULLABLE_USD,
    "used_units": {"type": "integer"},
    "used_usd": _USD,
    "reserved_units": {"type": "integer", "description": "Held by requests in flight"},
    "remaining_units": _nullable("integer", minimum=0),
    "remaining_usd": _NULLABLE_USD,
    "created_at": _TIME,
    "groups": {
        "type": "array",
        "items": {"type": "string"},
        "description": "The channel groups this account's keys may use (granted by the operator)",
    },
    "rpm_limit": _nullable(
        "integer", minimum=1, description="Requests per UTC minute, all keys together; null: none"
    ),
    "tpm_limit": _nullable(
        "integer", minimum=1, description="Tokens per UTC minute, all keys together; null: none"
    ),
    "max_concurrency": _nullable(
        "integer", minimum=1, description="Calls in flight, all keys together; null: none"
    ),
}

_TOKEN = {
    "id": {"type": "string"},
    "account_id": {"type": "string"},
    "name": {"type": "string"},
    "key_preview": {"type": "string", "description": "Enough of the key to recognise it"},
    "status": {"type": "string", "enum": ["enabled", "disabled", "expired", "exhausted"]},
    "created_at": _TIME,
    "expires_at": {**_TIME, "type": ["string", "null"], "description": "null: never"},
    "quota_units": _nullable("integer", description="null: unlimited"),
    "quota_usd": _NULLABLE_USD,
    "used_units": {"type": "integer", "description": "Since the last reset"},
    "used_usd": _USD,
    "reserved_units": {"type": "integer"},
    "remaining_units": _nullable("integer", minimum=0),
    "remaining_usd": _NULLABLE_USD,
    "total_used_units": {"type": "integer", "description": "Since creation"},
    "reset_period": {"type": "string", "enum": ["never", "daily", "weekly", "monthly"]},
    "next_reset_at": {**_TIME, "type": ["string", "null"]},
    "group": {"type": "string"},
    "models": {"type": "array", "items": {"type": "string"}, "description": "[]: any model"},
    "allow_ips": {"type": "array", "items": {"type": "string"}, "description": "[]: any IP"},
    "last_used_at": {**_TIME, "type": ["string", "null"]},
    "rpm_limit": _nullable("integer", minimum=1, description="Requests per UTC minute; null: none"),
    "tpm_limit": _nullable(
        "integer", minimum=1, description="Tokens (prompt + completion) per UTC minute; null: none"
    ),
    "max_concurrency": _nullable("integer", minimum=1, description="Calls in flight; null: none"),
}

_KEY = {"type": "string", "pattern": "^sk-", "description": "The full key, shown once"}

_OPERATOR_KEY = {
    "id": {"type": "string"},
    "name": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string", "enum": list(SCOPES)}},
    "status": {"type": "string", "enum": ["enabled", "disabled", "expired"]},
    "created_at": _TIME,
    "expires_at": {**_TIME, "type": ["string", "null"], "description": "null: never"},
    "last_used_at": {**_TIME, "type": ["string", "null"], "description": "To the minute"},
    "key_preview": {"type": "string", "description": "Enough of the key to recognise it"},
}


_ALERTS = {
    "account_id": {"type": "string"},
    "token_id": _nullable("string", description="null: the account's own alerts"),
    "thresholds": {
        "type": "array",
        "items": {"type": "integer", "minimum": 1, "maximum": 100},
        "description": "Percent of the quota (a key's per reset period; an account's granted)",
    },
    "webhook_url": _nullable("string", description="null: alerts are not set up"),
    "sns_topic_arn": _nullable("string", description="The stack's alert topic (deployed)"),
    "event_bus": _nullable("string", description="The stack's alert bus (deployed)"),
    "enabled": {"type": "boolean"},
    "updated_at": {**_TIME, "type": ["string", "null"]},
}
_WEBHOOK_SECRET = {
    "type": "string",
    "pattern": "^whsec_",
    "description": (
        "Signs each delivery: X-Sluice-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "
        '"<t>.<raw body>">. Shown once'
    ),
}


def _alerts_with_secret(required: bool) -> dict[str, Any]:
    schema = _object({**_ALERTS, "webhook_secret": _WEBHOOK_SECRET})
    if not required:
        schema["required"] = list(_ALERTS)
        schema["description"] = "webhook_secret only when this call created the settings"
    return schema


def _page(item: str) -> dict[str, Any]:
    return _object(
        {
            "data": {"type": "array", "items": _ref(item)},
            "next_cursor": _nullable("string", description="null on the last page"),
        }
    )


RESPONSES: dict[str, dict[str, Any]] = {
    "Error": _object(
        {
            "error": _object(
                {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "param": _nullable("string"),
                    "code": _nullable("string"),
                }
            )
        },
        "The OpenAI error shape; every error of this API has it.",
    ),
    "Health": _object({"status": {"const": "ok"}}),
    "Document": {"type": "object", "required": ["openapi", "paths"]},
    "Account": _object(_ACCOUNT),
    "AccountList": _page("Account"),
    "OwnAccount": _object(
        {
            **_ACCOUNT,
            "group_models": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
                "description": "How many models the enabled channels of each group serve",
            },
        }
    ),
    "CreditList": _object(
        {
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "at": _TIME,
                        "units": {"type": "integer"},
                        "usd": _USD,
                        "note": {"type": "string"},
                    }
                ),
            }
        }
    ),
    "Token": _object(_TOKEN, "An API key; the secret itself is never listed."),
    "TokenWithKey": _object({**_TOKEN, "key": _KEY}, "An API key just created or regenerated."),
    "TokenList": _page("Token"),
    "TokensCreated": _object({"data": {"type": "array", "items": _ref("TokenWithKey")}}),
    "AccountCreated": _object(
        {
            "account": _ref("Account"),
            "management_key": {"type": "string", "pattern": "^mk-", "description": "Shown once"},
            "default_token": _ref("TokenWithKey"),
        }
    ),
    "ManagementKey": _object(
        {
            "account": _ref("Account"),
            "management_key": {"type": "string", "pattern": "^mk-", "description": "Shown once"},
        }
    ),
    "ChatCompletion": {
        "type": "object",
        "required": ["choices"],
        "description": "The provider's chat.completion object, as it answered.",
    },
    "Embeddings": {"type": "object", "required": ["data"], "description": "As the provider sent"},
    "Response": {
        "type": "object",
        "required": ["id"],
        "description": "The provider's response object, as it answered.",
    },
    "ResponseDeleted": {
        "type": "object",
        "required": ["id"],
        "description": "As the provider sent",
    },
    "ProviderList": {"type": "object", "required": ["data"], "description": "As the provider sent"},
    "Conversation": {
        "type": "object",
        "required": ["id"],
        "description": "The provider's conversation object, as it answered.",
    },
    "ConversationDeleted": {
        "type": "object",
        "required": ["id"],
        "description": "As the provider sent",
    },
    "ConversationItem": {"type": "object", "description": "As the provider sent"},
    "Completion": {
        "type": "object",
        "required": ["choices"],
        "description": "As the provider sent",
    },
    "Moderation": {
        "type": "object",
        "required": ["results"],
        "description": "As the provider sent",
    },
    "Images": {
        "type": "object",
        "required": ["data"],
        "description": "As the provider sent: each image as b64_json or url, and usage if any.",
    },
    "Transcription": {
        "type": "object",
        "required": ["text"],
        "description": "json or verbose_json, as the provider sent (text, srt, vtt: text/plain).",
    },
    "Video": {
        "type": "object",
        "required": ["id"],
        "description": "The provider's video job, as it answered.",
    },
    "VideoList": {
        "type": "object",
        "required": ["data"],
        "description": "This account's jobs as the provider reports them.",
    },
    "VideoDeleted": {"type": "object", "required": ["id"], "description": "As the provider sent"},
    "Binary": {"type": "string", "format": "binary"},
    "Model": _object(
        {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
            "endpoints": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Paths under /v1 the model is served on",
            },
        }
    ),
    "ModelList": _object(
        {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _ref("Model")},
        }
    ),
    "Subscription": _object(
        {
            "object": {"const": "billing_subscription"},
            "has_payment_method": {"type": "boolean"},
            "soft_limit_usd": {"type": "number"},
            "hard_limit_usd": {"type": "number"},
            "system_hard_limit_usd": {"type": "number"},
            "access_until": {"type": "integer", "description": "Epoch seconds; 0: never"},
        }
    ),
    "BillingUsage": _object(
        {"object": {"const": "list"}, "total_usage": {"type": "number", "description": "cents"}}
    ),
    "Log": _object(
        {
            "request_id": {"type": "string"},
            "created_at": _TIME,
            "account_id": {"type": "string"},
            "token_id": {"type": "string"},
            "token_name": {"type": "string"},
            "model": {"type": "string"},
            "group": _nullable(
                "string",
                description="The channel group the call used (for an 'auto' key, the one picked)",
            ),
            "channel": _nullable(
                "string",
                description="The channel that answered; null unless read with the admin key",
            ),
            "prompt_tokens": {"type": "integer"},
            "completion_tokens": {"type": "integer"},
            "cost_units": {"type": "integer"},
            "cost_usd": _USD,
            "reserved_units": {"type": "integer"},
            "status": {"type": "string"},
            "state": {"type": "string", "enum": ["pending", "settled", "refunded", "rejected"]},
            "latency_ms": {"type": "integer"},
            "stream": {"type": "boolean"},
            "usage_estimated": {"type": "boolean"},
            "detail": _nullable("string"),
        }
    ),
    "LogList": _page("Log"),
    "AuditRecord": _object(
        {
            "at": {"type": "string", "format": "date-time", "description": "UTC, to the ms"},
            "actor": {
                "type": "string",
                "description": "admin, ops:<operator key id>, or the account id of an mk- key",
            },
            "action": {"type": "string", "enum": list(audit.ACTIONS)},
            "target_type": {"type": "string", "enum": list(audit.TARGET_TYPES)},
            "target_id": {"type": "string"},
            "changes": {
                "type": "object",
                "description": (
                    'Per field {"old": ..., "new": ...} (null: absent). A secret that changed is '
                    f'named with "{audit.SECRET}" for its values; no key, hash or preview.'
                ),
                "additionalProperties": _object({"old": {}, "new": {}}),
            },
            "source_ip": {"type": "string"},
            "request_id": {"type": "string"},
        },
        "One management action, written in the same transaction as the change.",
    ),
    "AuditList": _page("AuditRecord"),
    "UsageReport": _object(
        {
            "data": {
                "type": "array",
                "items": _object(
                    {
                        "key": {"type": "string", "description": "Day, key id or model"},
                        "requests": {"type": "integer"},
                        "prompt_tokens": {"type": "integer"},
                        "completion_tokens": {"type": "integer"},
                        "cost_units": {"type": "integer"},
                        "cost_usd": _USD,
                    }
                ),
            },
            "group_by": {"type": "string", "enum": ["day", "token", "model"]},
            "start": _TIME,
            "end": _TIME,
        }
    ),
    "Channel": _object(
        {
            name: {
                **_FIELD_SCHEMAS[kind],
                **(
                    {"description": "The key itself is never shown"}
                    if name == "api_key_set"
                    else {}
                ),
            }
            for name, kind in channels.PUBLIC_FIELDS.items()
        },
        "An upstream provider.",
    ),
    "ChannelList": _page("Channel"),
    "Price": {
        "type": "object",
        "required": ["model"],
        "additionalProperties": False,
        "properties": {
            "model": {"type": "string"},
            **{name: {"type": "string"} for name in PRICE_FIELDS},
            MAX_AUDIO_SECONDS_FIELD: {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_AUDIO_SECONDS_LIMIT,
                "description": "Longest audio a transcription is reserved for (default: "
                "SLUICE_MAX_AUDIO_SECONDS, 1800).",
            },
        },
        "description": (
            "US$ as decimal strings; any combination, at least one: per million input, cached "
            "input and output tokens, per request, per image, per million characters of speech "
            "input, per minute of transcribed audio, per second of generated video."
        ),
    },
    "PriceList": _page("Price"),
    "GroupRatio": _object({"group": {"type": "string"}, "ratio": {"type": "string"}}),
    "AutoOrder": _object(
        {"group": {"const": "auto"}, "order": {"type": "array", "items": {"type": "string"}}}
    ),
    "GroupRatioOrAutoOrder": {
        "oneOf": [
            {"$ref": "#/components/schemas/GroupRatio"},
            {"$ref": "#/components/schemas/AutoOrder"},
        ]
    },
    "GroupList": _object(
        {
            "data": {"type": "array", "items": _ref("GroupRatio")},
            "next_cursor": _nullable("string", description="null on the last page"),
            "auto": _object(
                {"order": {"type": "array", "items": {"type": "string"}}},
                "The order 'auto' keys pick groups in (empty until set)",
            ),
        }
    ),
    "LedgerReport": _object(
        {
            "ok": {"type": "boolean"},
            "drift": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {
                            "type": "string",
                            "enum": ["counters", "reserved", "stale_pending", "logged"],
                        },
                        "item": {"type": "string", "enum": ["token", "account"]},
                        "id": {"type": "string"},
                        "expected": {"type": "integer"},
                        "found": {"type": "integer"},
                        "request_id": {"type": "string"},
                    },
                    "required": ["kind", "item", "id", "expected", "found"],
                    "additionalProperties": False,
                },
            },
            "accounts": {"type": "integer"},
            "tokens": {"type": "integer"},
            "complete": {"type": "boolean"},
            "next_cursor": _nullable("string", description="Continue from here when incomplete"),
        }
    ),
    "ResetRun": _object(
        {
            "reset": {"type": "integer"},
            "skipped": {"type": "integer"},
            "pages": {"type": "integer"},
            "complete": {"type": "boolean", "description": "false: call again to finish"},
        }
    ),
    "SweepRun": _object(
        {
            "refunded": {"type": "integer"},
            "settled": {"type": "integer"},
            "skipped": {"type": "integer"},
            "complete": {"type": "boolean", "description": "false: call again to finish"},
        }
    ),
    "OperatorKey": _object(_OPERATOR_KEY, "An operator key; the key itself is never listed."),
    "OperatorKeyWithKey": _object(
        {
            **_OPERATOR_KEY,
            "key": {"type": "string", "pattern": "^ops-", "description": "The key, shown once"},
        },
        "An operator key just created.",
    ),
    "OperatorKeyList": _page("OperatorKey"),
    "Alerts": _object(_ALERTS),
    "AlertsWithSecret": _alerts_with_secret(True),
    "AlertsMaybeSecret": _alerts_with_secret(False),
    "DeadLetter": _object(
        {
            "at": _TIME,
            "account_id": {"type": "string"},
            "token_id": _nullable("string"),
            "threshold": {"type": "integer"},
            "webhook_url": {"type": "string"},
            "attempts": {"type": "integer"},
            "last_error": _nullable("string"),
            "payload": {"type": "string", "description": "The body that was signed and sent"},
        }
    ),
    "DeadLetterList": _page("DeadLetter"),
    "Text": {"type": "string"},
    "Any": {"description": "Not documented yet."},
}

_JSON_TYPES = {str: "string", list: "array", bool: "boolean", int: "integer", dict: "object"}


def _relay_request(kind: payloads.Kind, description: str) -> dict[str, Any]:
    """The relay's own field table as JSON Schema; other fields pass through to the provider."""
    fields = payloads.FIELDS[kind]
    properties: dict[str, Any] = {}
    for name, (types, _) in fields.items():
        kinds = [_JSON_TYPES[t] for t in types]
        properties[name] = {"type": kinds[0] if len(kinds) == 1 else kinds}
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": [name for name, (_, required) in fields.items() if required],
    }


_STRING = {"type": "string"}
_FILE = {"type": "string", "format": "binary", "description": "An uploaded file"}
# Form fields arrive as text whatever they hold; the relay checks them itself.
_FORM_TEXT = {"type": "string"}
_DIGITS = {"type": "string", "pattern": r"^\s*\d+\s*$"}
# null reads as absent (the default).
_COUNT_OR_DIGITS = {
    "anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_IMAGES}, _DIGITS, {"type": "null"}],
    "description": f"1 to {MAX_IMAGES} images (default 1)",
}
_SECONDS_OR_DIGITS = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_VIDEO_SECONDS},
        _DIGITS,
        {"type": "null"},
    ],
    "description": f'1 to {MAX_VIDEO_SECONDS} seconds (OpenAI sends a string such as "4")',
}


_ITEMS = {"type": "array", "items": {"type": "object"}, "maxItems": conversations.MAX_ITEMS}
_METADATA = {
    "type": "object",
    "maxProperties": conversations.MAX_METADATA_PAIRS,
    "propertyNames": {"maxLength": conversations.MAX_METADATA_KEY_CHARS},
    "additionalProperties": {"type": "string", "maxLength": conversations.MAX_METADATA_VALUE_CHARS},
}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _media_request(
    description: str, properties: dict[str, Any], required: tuple[str, ...]
) -> dict[str, Any]:
    """A media route's request: the fields the relay checks; the rest pass through."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(required),
    }


REQUESTS: dict[str, dict[str, Any]] = {
    "ChatCompletionRequest": _relay_request(
        "chat", "OpenAI's chat completion request; fields not listed go to the provider as sent."
    ),
    "EmbeddingsRequest": _relay_request(
        "embeddings", "OpenAI's embeddings request; fields not listed go to the provider as sent."
    ),
    "ResponseRequest": _relay_request(
        "responses", "OpenAI's Responses request; fields not listed go to the provider as sent."
    ),
    "CompletionRequest": _relay_request(
        "completions", "OpenAI's legacy completion request; other fields go to the provider."
    ),
    "ModerationRequest": _relay_request(
        "moderations", "OpenAI's moderation request; fields not listed go to the provider as sent."
    ),
    "ImageGenerationRequest": _media_request(
        "OpenAI's image generation request; fields not listed go to the provider as sent.",
        {"model": _STRING, "prompt": _STRING, "n": _COUNT_OR_DIGITS},
        ("model", "prompt"),
    ),
    "ImageEditRequest": _media_request(
        "OpenAI's image edit form; fields not listed go to the provider as sent.",
        {
            "model": _STRING,
            "prompt": _STRING,
            "n": _FORM_TEXT,
            "image": _FILE,
            "mask": _FILE,
        },
        ("model", "prompt", "image"),
    ),
    "SpeechRequest": _media_request(
        "OpenAI's speech request; fields not listed (response_format, speed...) go to the "
        "provider as sent.",
        {
            "model": _STRING,
            "input": {"type": "string", "maxLength": MAX_SPEECH_CHARS},
            "voice": _STRING,
        },
        ("model", "input", "voice"),
    ),
    "TranscriptionRequest": _media_request(
        "OpenAI's transcription form; the file reaches the provider byte for byte.",
        {
            "model": _STRING,
            "file": _FILE,
            "response_format": {"type": "string", "enum": list(TRANSCRIPT_FORMATS)},
            "stream": _FORM_TEXT,
        },
        ("model", "file"),
    ),
    "TranslationRequest": _media_request(
        "OpenAI's translation form; the file reaches the provider byte for byte.",
        {
            "model": _STRING,
            "file": _FILE,
            "response_format": {"type": "string", "enum": list(TRANSCRIPT_FORMATS)},
        },
        ("model", "file"),
    ),
    "VideoRequest": _media_request(
        "OpenAI's video request (JSON, or a form with an input_reference file); fields not "
        "listed go to the provider as sent.",
        {"model": _STRING, "prompt": _STRING, "seconds": _SECONDS_OR_DIGITS},
        ("model", "prompt"),
    ),
    "VideoRemixRequest": _media_request(
        "The new prompt; the model and length are the source job's.",
        {"prompt": _STRING},
        ("prompt",),
    ),
    "ConversationCreateRequest": _media_request(
        "OpenAI's conversation create request; each item goes to the provider as sent (null "
        "reads as absent).",
        {"items": _or_null(_ITEMS), "metadata": _or_null(_METADATA)},
        (),
    ),
    "ConversationUpdateRequest": _media_request(
        "The conversation's new metadata.", {"metadata": _METADATA}, ("metadata",)
    ),
    "ConversationItemsRequest": _media_request(
        "The items to add; each goes to the provider as sent.",
        {"items": {**_ITEMS, "minItems": 1}},
        ("items",),
    ),
    "SetGroupRatioOrAutoOrder": {
        "description": (
            "{ratio} for a group; for the group 'auto', {order}: the groups its keys try in"
            " order (each call uses the first the account is granted that serves the model)"
        ),
        "oneOf": [
            {"$ref": "#/components/schemas/SetGroupRatio"},
            {"$ref": "#/components/schemas/SetAutoOrder"},
        ],
    },
}

ERROR_DESCRIPTIONS = {
    400: "Invalid request",
    401: "Missing, unknown, expired or disabled key",
    403: "Wrong kind of key, scope not held, model or IP not allowed",
    404: "Not found",
    409: "Changed concurrently; retry",
    413: "Body too large",
    429: (
        "Quota exhausted (insufficient_quota: do not retry), a key's rate limit reached"
        " (rate_limit_exceeded: retry after Retry-After), or too many concurrent updates"
    ),
    500: "Server error",
    502: "Upstream failed",
    503: "Temporarily unavailable",
    504: "Upstream timed out",
}


# The document ----------------------------------------------------------------------------------
class _Components:
    """Collects component schemas: pydantic models with their $defs, and ours."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def model(self, model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            self.schemas.setdefault(name, definition)
        self.schemas[model.__name__] = schema
        return _ref(model.__name__)

    def named(self, name: str) -> dict[str, str]:
        ours = RESPONSES.get(name) or REQUESTS.get(name)
        if ours is not None:
            self.schemas[name] = ours
            # Our schemas refer to each other (a page of tokens); pull those in too.
            for other in _refs(ours):
                self.named(other)
            return _ref(name)
        # The relay's configuration schemas live next to the API's.
        from chalicelib.services import schemas_config

        candidate = getattr(schemas, name, None) or getattr(schemas_config, name, None)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return self.model(candidate)
        raise KeyError(f"no response schema or pydantic class named {name!r}")


def _refs(schema: Any) -> list[str]:
    if isinstance(schema, dict):
        found = [schema["$ref"].rsplit("/", 1)[-1]] if "$ref" in schema else []
        return found + [name for value in schema.values() for name in _refs(value)]
    if isinstance(schema, list):
        return [name for value in schema for name in _refs(value)]
    return []


def _operation(path: str, method: str, op: Op, route: Any, comps: _Components) -> dict[str, Any]:
    tag, auth, implicit_query = _audience(path)
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in route.view_args
    ]
    parameters += [
        # "status:log" documents the parameter "status" with the schema of that variant.
        {"name": name.split(":")[0], "in": "query", **QUERY_PARAMETERS[name]}
        for name in (*implicit_query, *op.query)
    ]
    success: dict[str, Any] = {"description": op.summary}
    if op.response is not None:
        success["content"] = {
            media: {"schema": comps.named(op.response) if media == JSON else _body_of(media)}
            for media in op.media
        }
        if op.events:
            success["content"]["text/event-stream"] = {"schema": {"type": "string"}}
    errors = set(op.errors) | ({500} if auth == PUBLIC else set(AUTH_ERRORS))
    if route.view_args:
        errors.add(404)
    if op.request is not None:
        errors.add(413)
    responses: dict[str, Any] = {str(op.status): success}
    if op.redirects:
        responses["308"] = {
            "description": "Redirect to the canonical URL",
            "headers": {"Location": {"schema": {"type": "string"}}},
        }
    for status in sorted(errors):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": {JSON: {"schema": comps.named("Error")}},
        }
    operation: dict[str, Any] = {
        "operationId": f"{method.lower()}_{route.view_name}",
        "summary": op.summary,
        "tags": [tag],
        "security": _security(path, method, auth),
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if op.request is not None:
        # The management API reads an empty body as {}; the relay needs its JSON object.
        operation["requestBody"] = {
            "required": op.request in REQUESTS,
            "content": {media: {"schema": comps.named(op.request)} for media in op.request_media},
        }
    return operation


def _body_of(media: str) -> dict[str, Any]:
    """A non-JSON body: text, or bytes (audio, images, video)."""
    if media.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _security(path: str, method: str, auth: tuple[str, ...]) -> list[dict[str, list[str]]]:
    """Who may call: the path's audience, and an operator key with the route's scope if any."""
    requirements: list[dict[str, list[str]]] = [{scheme: []} for scheme in auth]
    scope = route_scopes.ROUTE_SCOPES.get((path, method))
    if scope is not None:
        requirements.append({OPERATOR_KEY: [scope]})
    return requirements


def _undocumented(path: str, method: str) -> Op:
    return Op(f"{method} {path} (not documented yet)", "Any")


def undocumented_routes(app: Any) -> list[tuple[str, str]]:
    """Routes of ``app`` without a line in ``OPERATIONS`` (the test suite fails on any)."""
    return sorted(
        (path, method)
        for path, methods in app.routes.items()
        for method in methods
        if (path, method) not in OPERATIONS and path != CATCH_ALL
    )


@dataclass(frozen=True)
class _RelayRoute:
    """What ``_operation`` reads of a route, for the relay's, which Chalice does not serve."""

    view_name: str
    view_args: tuple[str, ...] = ()


# The relay function's routes (chalicelib.relay), served under the same API at /v1/{proxy+};
# the names keep the operation ids they had while Chalice served them.
RELAY_ROUTES: dict[tuple[str, str], _RelayRoute] = {
    ("/v1/chat/completions", "POST"): _RelayRoute("chat_completions"),
    ("/v1/embeddings", "POST"): _RelayRoute("embeddings"),
    ("/v1/responses", "POST"): _RelayRoute("responses"),
    ("/v1/responses/{id}", "GET"): _RelayRoute("get_response", ("id",)),
    ("/v1/responses/{id}", "DELETE"): _RelayRoute("delete_response", ("id",)),
    ("/v1/responses/{id}/cancel", "POST"): _RelayRoute("cancel_response", ("id",)),
    ("/v1/responses/{id}/input_items", "GET"): _RelayRoute("response_input_items", ("id",)),
    ("/v1/conversations", "POST"): _RelayRoute("create_conversation"),
    ("/v1/conversations/{id}", "GET"): _RelayRoute("get_conversation", ("id",)),
    ("/v1/conversations/{id}", "POST"): _RelayRoute("update_conversation", ("id",)),
    ("/v1/conversations/{id}", "DELETE"): _RelayRoute("delete_conversation", ("id",)),
    ("/v1/conversations/{id}/items", "POST"): _RelayRoute("add_conversation_items", ("id",)),
    ("/v1/conversations/{id}/items", "GET"): _RelayRoute("conversation_items", ("id",)),
    ("/v1/conversations/{id}/items/{item_id}", "GET"): _RelayRoute(
        "get_conversation_item", ("id", "item_id")
    ),
    ("/v1/conversations/{id}/items/{item_id}", "DELETE"): _RelayRoute(
        "delete_conversation_item", ("id", "item_id")
    ),
    ("/v1/completions", "POST"): _RelayRoute("completions"),
    ("/v1/moderations", "POST"): _RelayRoute("moderations"),
    ("/v1/images/generations", "POST"): _RelayRoute("image_generations"),
    ("/v1/images/edits", "POST"): _RelayRoute("image_edits"),
    ("/v1/audio/speech", "POST"): _RelayRoute("speech"),
    ("/v1/audio/transcriptions", "POST"): _RelayRoute("transcriptions"),
    ("/v1/audio/translations", "POST"): _RelayRoute("translations"),
    ("/v1/videos", "POST"): _RelayRoute("create_video"),
    ("/v1/videos", "GET"): _RelayRoute("list_videos"),
    ("/v1/videos/{id}", "GET"): _RelayRoute("retrieve_video", ("id",)),
    ("/v1/videos/{id}", "DELETE"): _RelayRoute("delete_video", ("id",)),
    ("/v1/videos/{id}/content", "GET"): _RelayRoute("video_content", ("id",)),
    ("/v1/videos/{id}/remix", "POST"): _RelayRoute("remix_video", ("id",)),
    ("/v1/models", "GET"): _RelayRoute("models"),
    ("/v1/models/{model}", "GET"): _RelayRoute("retrieve_model", ("model",)),
    ("/v1/key", "GET"): _RelayRoute("own_key"),
    ("/v1/dashboard/billing/subscription", "GET"): _RelayRoute("billing_subscription"),
    ("/v1/dashboard/billing/usage", "GET"): _RelayRoute("billing_usage"),
}


def _all_routes(app: Any) -> dict[str, dict[str, Any]]:
    routes: dict[str, dict[str, Any]] = {
        path: dict(methods) for path, methods in app.routes.items()
    }
    for (path, method), route in RELAY_ROUTES.items():
        routes.setdefault(path, {}).setdefault(method, route)
    return routes


def document(app: Any) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app`` (a Chalice app) and of the relay."""
    comps = _Components()
    paths: dict[str, dict[str, Any]] = {}
    for path, methods in sorted(_all_routes(app).items()):
        if path == CATCH_ALL:  # the 404 of unknown paths: not an operation to document
            continue
        for method, route in sorted(methods.items()):
            op = OPERATIONS.get((path, method))
            operation = _operation(path, method, op or _undocumented(path, method), route, comps)
            if op is None:
                operation["x-undocumented"] = True
                if method in {"POST", "PUT", "PATCH"}:
                    operation["requestBody"] = {"content": {JSON: {"schema": {}}}}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Sluice",
            "version": API_VERSION,
            "description": (
                "LLM API-key gateway: accounts, API keys with exact quotas, and an "
                "OpenAI-compatible relay. Money is in integer units (500,000 units = US$1.00)."
            ),
        },
        # Relative to this document, so a deployed stage's path prefix (/api) is kept.
        "servers": [{"url": "./"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(comps.schemas.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
