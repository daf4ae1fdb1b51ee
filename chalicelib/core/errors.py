"""One error hierarchy, rendered as OpenAI-shaped JSON in exactly one place (``error_body``).

Every failure a client can see is a ``GatewayError`` subclass carrying its HTTP status, the OpenAI
``type`` and ``code``, a human message and, for validation errors, the offending ``param``. Library
errors (pynamodb, botocore, httpx) are caught where they happen and re-raised as one of these with
``__cause__`` kept, so ``app.py`` never sees a ``ConditionalCheckFailed``.

Messages never contain secrets: callers pass ids and previews, not keys.
"""

from __future__ import annotations

from typing import Any, ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None
    default_message: ClassVar[str] = "The server had an error while processing your request."

    def __init__(
        self,
        message: str | None = None,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.param = param
        self.instance_code = code or self.code
        self.headers = headers or {}
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self)


def error_body(error: GatewayError) -> dict[str, Any]:
    """The only place error JSON is built."""
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.instance_code,
        }
    }


# 400 ---------------------------------------------------------------------------------------------
class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    default_message = "The request is invalid."


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(GatewayError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"
    default_message = "Send the body as JSON (Content-Type: application/json)."


# 401 ---------------------------------------------------------------------------------------------
class Unauthenticated(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"
    default_message = (
        "Incorrect API key provided. Send 'Authorization: Bearer <key>' with a valid key."
    )


class InvalidKey(Unauthenticated):
    pass


class KeyExpired(Unauthenticated):
    code = "key_expired"
    default_message = "This API key has expired."


class KeyDisabled(Unauthenticated):
    code = "key_disabled"
    default_message = "This API key is disabled."


class AccountDisabled(Unauthenticated):
    code = "account_disabled"
    default_message = "The account that owns this API key is disabled."


# 403 ---------------------------------------------------------------------------------------------
class Forbidden(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "wrong_key_kind"
    default_message = "This key is not allowed to use this endpoint."


class ModelNotAllowed(Forbidden):
    code = "model_not_allowed"
    default_message = "This API key is not allowed to use this model."


class GroupNotAllowed(Forbidden):
    code = "group_not_allowed"
    default_message = "This account may not use this channel group."


class IpNotAllowed(Forbidden):
    code = "ip_not_allowed"
    default_message = "This API key may not be used from this IP address."


class InsufficientScope(Forbidden):
    """An operator key without the scope a route needs; ``needed`` names that scope."""

    code = "insufficient_scope"
    default_message = "This operator key lacks the scope this route needs."

    def __init__(
        self, message: str | None = None, *, needed: str | None = None, param: str | None = None
    ) -> None:
        super().__init__(message, param=param)
        self.needed = needed


# 404 ---------------------------------------------------------------------------------------------
class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"
    default_message = "Not found."


class ModelNotFound(NotFound):
    code = "model_not_found"
    default_message = "The model does not exist or no upstream serves it."


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"
    default_message = "Method not allowed."


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"
    default_message = "The resource was changed by another request; retry."


# 429 ---------------------------------------------------------------------------------------------
class QuotaExhausted(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    default_message = "You exceeded your current quota."


class KeyQuotaExhausted(QuotaExhausted):
    code = "key_quota_exhausted"
    default_message = "This API key's quota is exhausted (its account may still have balance)."


class AccountQuotaExhausted(QuotaExhausted):
    code = "account_quota_exhausted"
    default_message = "The account's balance is exhausted."


class RateLimited(GatewayError):
    """A key's own rate limit (requests per minute, or calls in flight): retry after a while.

    Unlike ``QuotaExhausted`` (which clients must not retry), the OpenAI SDK retries this one,
    honouring ``Retry-After``.
    """

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"
    default_message = "Rate limit reached for requests."


class TokenRateLimited(RateLimited):
    type = "tokens"
    default_message = "Rate limit reached for tokens."


class TooManyRequests(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limited"
    default_message = "Too many concurrent updates; retry shortly."


# 5xx ---------------------------------------------------------------------------------------------
class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "bad_gateway"
    default_message = "The upstream provider failed to answer."


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    default_message = "The upstream provider did not answer in time."


class ResponseTooLarge(UpstreamError):
    code = "response_too_large"
    default_message = "The upstream response exceeds the 6 MB limit of a buffered response."


class ServiceUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable; retry shortly."
