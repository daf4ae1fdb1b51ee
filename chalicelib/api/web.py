"""The HTTP edge: turn results and ``GatewayError``s into Chalice responses.

``routes(app)`` returns a decorator like ``app.route`` whose handlers may raise any
``GatewayError``; it becomes OpenAI-shaped JSON here and nowhere else. Anything unexpected becomes
a 500 in the same shape, logged with its traceback but never with request headers or bodies
(which carry keys).
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Chalice, Response
from chalice.app import Request, _matches_content_type

from chalicelib.core import audit, observe
from chalicelib.core.errors import (
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    error_body,
)

MAX_BODY_BYTES = 4 * 1024 * 1024
CATCH_ALL = "/{proxy+}"  # the catch-all route (app.py): any other path, answered 404
# Accept what clients really send: curl without -H sends form-urlencoded, some SDKs add charset.
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    from chalicelib.core import payloads  # imported on first use: not a cold-start cost

    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if not payloads.is_text(text):
        # A lone surrogate somewhere (an old stored value, say) cannot be sent as UTF-8, and the
        # server would drop the connection; \u escapes carry the same JSON in ASCII.
        text = json.dumps(body, separators=(",", ":"))
    return Response(
        body=text,
        status_code=status,
        headers={"Content-Type": "application/json", **SECURITY_HEADERS, **(headers or {})},
    )


def error_response(error: GatewayError) -> Response:
    return json_response(error_body(error), error.status, error.headers)


def now() -> int:
    return int(time.time())


def request_id(app: Chalice | Blueprint) -> str:
    context = getattr(app.current_request, "context", None) or {}
    return str(context.get("requestId") or uuid.uuid4().hex)


def routes(
    app: Chalice | Blueprint,
) -> Callable[..., Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """``app.route`` with our error mapping; works on the app and on blueprints alike."""

    def route(path: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        # Chalice's own check would answer a type it was not told of in its own error shape;
        # it lets every type through, and ``_check_media_type`` refuses in ours.
        accepted = options.setdefault("content_types", ["*/*"])
        creates = "PUT" in options.get("methods", ["GET"])

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(handler)
            def view(**uri_params: Any) -> Response:
                from chalicelib.core import payloads  # imported on first use, like the above

                try:
                    if accepted == ["*/*"] and path != CATCH_ALL:  # an unknown path: its 404
                        _check_media_type(_request(app))
                    for name, value in uri_params.items():
                        if name != "proxy":  # the catch-all 404 takes any path
                            payloads.check_id(value, name, creates=creates)
                    # Nobody acts until auth names the caller (the audit's actor).
                    with audit.request_scope():
                        result = handler(**uri_params)
                except GatewayError as exc:
                    return error_response(exc)
                except Exception as exc:
                    observe.log("unhandled_error", level="ERROR", error=exc, route=path)
                    return error_response(GatewayError())
                if isinstance(result, Response):
                    result.headers = {**SECURITY_HEADERS, **result.headers}
                    return result
                return json_response(result)

            app.route(path, **options)(view)
            return handler

        return register

    return route


def _check_media_type(request: Request) -> None:
    """A body is read as JSON under any type clients really send (``CONTENT_TYPES``); another
    type is refused before anything is done. A request without a body (GET, DELETE) may
    declare anything: some libraries declare form-urlencoded on every request."""
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    declared = request.headers.get("content-type", "application/json")
    # Matched by Chalice's own rule (any part of the header, ``*/*`` too), as its check did.
    if declared.strip() and not _matches_content_type(declared, CONTENT_TYPES):
        media_type = declared.split(";", 1)[0].strip().lower()
        raise UnsupportedMediaType(
            f"Unsupported media type '{media_type}': send the body as JSON "
            "(Content-Type: application/json)."
        )


def _request(app: Chalice | Blueprint) -> Request:
    request = app.current_request
    assert request is not None, "only called while handling a request"
    return request


def raw_body(app: Chalice | Blueprint) -> bytes:
    """The body as bytes, refusing oversize ones before any parsing."""
    raw = _request(app).raw_body or b""
    raw = raw.encode() if isinstance(raw, str) else raw
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The request body exceeds {MAX_BODY_BYTES // (1024 * 1024)} MB.")
    return raw


def query(app: Chalice | Blueprint, name: str) -> str | None:
    params: Any = _request(app).query_params or {}
    return params.get(name)


def only_query(app: Chalice | Blueprint, *allowed: str) -> None:
    """Refuse unknown query parameters: a typo must not silently widen a listing. A parameter
    given twice is refused too: only one of its values would be read."""
    params: Any = _request(app).query_params or {}
    for name in params:
        if name not in allowed:
            raise InvalidRequest(f"Unknown query parameter '{name}'.", param=name)
        if hasattr(params, "getlist") and len(params.getlist(name)) > 1:
            raise InvalidRequest(f"Query parameter '{name}' is given more than once.", param=name)


def header(app: Chalice | Blueprint, name: str) -> str | None:
    value = _request(app).headers.get(name)
    return None if value is None else str(value)


def source_ip(app: Chalice | Blueprint) -> str:
    context = _request(app).context or {}
    return str((context.get("identity") or {}).get("sourceIp") or "")
