"""The relay's ASGI app: every OpenAI-compatible route under ``/v1/`` (thin).

Each handler reads the request, calls one use case of ``chalicelib.services`` and returns its
result. ``stream: true`` answers (chat, legacy completions, Responses) are handed on event by
event (``StreamingResponse``): the reason this edge exists, since Chalice cannot stream
(aws/chalice#2078). Every relayed kind takes the same ``_relay``: what differs between kinds is
described once, in ``core.payloads`` (fields, output cap, streaming) and ``upstream`` (path,
usage). Stored responses (``/v1/responses/{id}...``) go through ``services.objects``, and
conversations (``/v1/conversations...``) through ``services.conversations``.

Errors are mapped once, in ``_served``: a ``GatewayError`` becomes ``core.errors.error_body``
JSON with its status and headers; anything unexpected becomes a 500 in the same shape, logged
with its traceback and the path only, never with request headers or bodies (which carry keys).

The blocking use cases (DynamoDB, the buffered upstream call) run in Starlette's threadpool;
a stream's events, read upstream on a thread of its own, are handed on from the event loop
(``woken_by``), which leaves the threadpool only the steps that write. Importing this module
pulls in neither Chalice nor pydantic, to keep the relay's cold start short.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import inspect
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from chalicelib.core import observe
from chalicelib.core.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    error_body,
)
from chalicelib.core.settings import get_settings
from chalicelib.relay import media_routes
from chalicelib.services import billing, conversations, gateway, objects, streaming
from chalicelib.store import configure_store

# The same limit as the management API's (``api.web.MAX_BODY_BYTES``).
MAX_BODY_BYTES = 4 * 1024 * 1024
# Chat UIs that run in a browser (ChatGPT-Next-Web, LobeChat) call the API from their own
# origin. Any origin may: a call is authorised by its key alone, never by a cookie, so a page
# can do nothing with the API its user could not do with the key it was given.
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": ", ".join(
        (
            "X-Request-Id",
            "X-Sluice-Cost-Units",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
            "Retry-After",
        )
    ),
}
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, OpenAI-Organization, "
    "OpenAI-Project, OpenAI-Beta, X-Stainless-Lang, X-Stainless-Package-Version, "
    "X-Stainless-OS, X-Stainless-Arch, X-Stainless-Runtime, X-Stainless-Runtime-Version, "
    "X-Stainless-Retry-Count, X-Stainless-Timeout",
    "Access-Control-Max-Age": "86400",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    **CORS_HEADERS,
}
# Lambda Web Adapter passes API Gateway's request context in this header, as JSON.
REQUEST_CONTEXT_HEADER = "x-amzn-request-context"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        headers={**SECURITY_HEADERS, **(headers or {})},
        media_type="application/json",
    )


def error_response(error: GatewayError) -> Response:
    return json_response(error_body(error), error.status, error.headers)


# Reading the request ------------------------------------------------------------------------
def authorization(request: Request) -> str | None:
    return request.headers.get("authorization")


def client_ip(request: Request) -> str:
    """The caller's IP: API Gateway's ``sourceIp`` when behind it, else the socket's peer.

    Only behind API Gateway are the headers trusted (there the socket's peer is Web Adapter
    itself); anywhere else a client could write them.
    """
    if get_settings().behind_api_gateway:
        try:
            context = json.loads(request.headers.get(REQUEST_CONTEXT_HEADER) or "{}")
        except ValueError:
            context = {}
        identity = context.get("identity") if isinstance(context, dict) else None
        source = identity.get("sourceIp") if isinstance(identity, dict) else None
        if isinstance(source, str) and source:
            return source
        # Without the context: the hop API Gateway appended, the last. Those before it are
        # whatever the client sent in its own X-Forwarded-For (a REGIONAL endpoint has no
        # CloudFront hop after the client's).
        forwarded = request.headers.get("x-forwarded-for", "")
        if forwarded.strip():
            return forwarded.split(",")[-1].strip()
    return request.client.host if request.client else ""


async def raw_body(request: Request) -> bytes:
    """The body as bytes, refusing oversize ones before reading them whole."""
    too_large = PayloadTooLarge(f"The request body exceeds {MAX_BODY_BYTES // (1024 * 1024)} MB.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# Responses ----------------------------------------------------------------------------------
class BodyStream(StreamingResponse):
    """A body handed on as upstream sends it (a stream's events, a video file, transcription
    events); ``close`` (upstream hung up on, a stream settled) runs however the response ends.

    Each ``next()`` runs in the threadpool (it waits on upstream, or writes); a stream's plain
    events are taken on the event loop instead (``woken_by``), and its ``next()`` only makes
    the writes (its end and settle). A client that hangs up cancels the response: the
    cancellation lands at once while the loop waits for events, else when the current
    ``next()`` returns, and the shielded ``close()`` then hangs up on upstream and settles the
    call before the app returns.
    """

    def __init__(
        self,
        chunks: Any,
        status: int,
        content_type: str,
        headers: dict[str, str],
        close: Callable[[], None] | None = None,
    ) -> None:
        self.source = chunks
        self.close_source = close or chunks.close
        super().__init__(
            self._chunks(),
            status_code=status,
            headers={**SECURITY_HEADERS, **headers},
            media_type=content_type,
        )

    async def _chunks(self) -> AsyncIterator[bytes]:
        if isinstance(self.source, streaming.StreamDelivery):
            async for event in self._events(self.source):
                yield event
            return
        while True:
            chunk = await run_in_threadpool(next, self.source, None)
            if chunk is None:
                return
            if chunk:  # b"": upstream was silent for a moment, nothing to send
                yield chunk

    @staticmethod
    async def _events(delivery: streaming.StreamDelivery) -> AsyncIterator[bytes]:
        """A stream's events, taken on the loop as they come; ``next()`` (a thread) only for
        what writes."""
        arrived = woken_by(delivery)
        while True:
            arrived.clear()
            chunk = delivery.at_hand()
            if chunk is None:
                if delivery.finished:
                    return  # settled with its last bytes: no thread for the end's StopIteration
                chunk = await run_in_threadpool(next, delivery, None)
                if chunk is None:
                    return
            elif not chunk:  # nothing yet: wait to be told, or a tick for keepalive and deadline
                with anyio.move_on_after(streaming.TICK_SECONDS):
                    await arrived.wait()
            if chunk:
                yield chunk

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self.close_source)


def woken_by(source: Any) -> asyncio.Event:
    """An event set each time ``source`` (a stream's reader) hands more on, from its thread.

    A stream's items are taken on the event loop as they come (``StreamOpening.decided``,
    ``StreamDelivery.at_hand``), not through a thread of the pool each: under load that hop
    was a quarter of the relay's time. Only what writes (a refund, the settle) goes to a thread.
    """
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def wake() -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(arrived.set)

    source.listen(wake)
    return arrived


async def answered(opening: streaming.StreamOpening) -> gateway.CallResult | streaming.StreamedCall:
    """A stream's answer, once its first item came or the provider was silent long enough for
    a keepalive; abandoned (upstream hung up on, the hold given back) if the wait is cancelled
    or an answer that does not write fails."""
    arrived = woken_by(opening)
    try:
        while not opening.decided():
            with anyio.move_on_after(opening.seconds_to_keepalive()):
                await arrived.wait()
            arrived.clear()
        if not opening.writes():
            return opening.answer()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(opening.abandon)
        raise
    return await run_in_threadpool(opening.answer)  # (it settles or refunds, raising or not)


def relayed(result: gateway.CallResult | streaming.StreamedCall) -> Response:
    if isinstance(result, streaming.StreamedCall):
        headers = {"X-Accel-Buffering": "no", **result.headers}
        return BodyStream(result.chunks, result.status, result.content_type, headers)
    return Response(
        result.body,
        status_code=result.status,
        headers={**SECURITY_HEADERS, **result.headers},
        media_type=result.content_type,
    )


# Routes -------------------------------------------------------------------------------------
async def chat_completions(request: Request) -> Response:
    return await _relay(request, "chat")


async def embeddings(request: Request) -> Response:
    return await _relay(request, "embeddings")


async def _relay(request: Request, kind: Any) -> Response:
    deadline = gateway.call_deadline(time.monotonic())  # the clock starts when the call arrives
    body = await raw_body(request)
    result = await run_in_threadpool(
        gateway.one_call(gateway.relay_call),
        kind,
        body,
        authorization(request),
        client_ip(request),
        deadline=deadline,
    )
    if isinstance(result, streaming.StreamOpening):
        return relayed(await answered(result))
    return relayed(result)


def models(request: Request) -> Response:
    token = gateway.usable_key(authorization(request), client_ip(request))
    return json_response({"object": "list", "data": gateway.model_list(token)})


def one_model(request: Request) -> Response:
    """``GET /v1/models/{model}`` (the SDK's ``models.retrieve``): as the list shows it."""
    token = gateway.usable_key(authorization(request), client_ip(request))
    return json_response(gateway.one_model(token, request.path_params["model"]))


# The Responses API, legacy completions, moderations -----------------------------------------
async def responses(request: Request) -> Response:
    return await _relay(request, "responses")


async def completions(request: Request) -> Response:
    return await _relay(request, "completions")


async def moderations(request: Request) -> Response:
    return await _relay(request, "moderations")


async def stored_response(request: Request) -> Response:
    """GET / DELETE /v1/responses/{id}, POST .../cancel, GET .../input_items."""
    object_id = request.path_params["id"]
    suffix = request.url.path.rstrip("/").split("/" + object_id, 1)[1]
    body = await raw_body(request) if request.method == "POST" else None
    result = await run_in_threadpool(
        gateway.one_call(objects.object_call),
        "response",
        object_id,
        request.method,
        suffix,
        authorization(request),
        client_ip(request),
        query=request.url.query,
        body=body or None,
    )
    return relayed(result)


async def create_conversation(request: Request) -> Response:
    body = await raw_body(request)
    result = await run_in_threadpool(
        gateway.one_call(conversations.create), body, authorization(request), client_ip(request)
    )
    return relayed(result)


async def on_conversation(request: Request) -> Response:
    """GET / POST / DELETE /v1/conversations/{id}, its /items and /items/{item_id}."""
    body = await raw_body(request) if request.method == "POST" else None
    result = await run_in_threadpool(
        gateway.one_call(conversations.call),
        request.path_params["id"],
        request.method,
        request.path_params.get("item_id"),
        request.url.path.rstrip("/").endswith("/items"),
        request.query_params.multi_items(),
        body,
        authorization(request),
        client_ip(request),
    )
    return relayed(result)


def own_key(request: Request) -> Response:
    return json_response(
        billing.key_json(authorization(request), client_ip(request), int(time.time()))
    )


def billing_subscription(request: Request) -> Response:
    return json_response(billing.subscription(authorization(request), client_ip(request)))


def billing_usage(request: Request) -> Response:
    return json_response(billing.usage(authorization(request), client_ip(request)))


Handler = Callable[[Request], Any]
ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/chat/completions": {"POST": chat_completions},
    "/v1/embeddings": {"POST": embeddings},
    "/v1/responses": {"POST": responses},
    "/v1/completions": {"POST": completions},
    "/v1/moderations": {"POST": moderations},
    "/v1/conversations": {"POST": create_conversation},
    "/v1/models": {"GET": models},
    "/v1/key": {"GET": own_key},
    "/v1/dashboard/billing/subscription": {"GET": billing_subscription},
    "/v1/dashboard/billing/usage": {"GET": billing_usage},
}
# Paths with ids in them; ``{id}`` and ``{item_id}`` (one path segment each) become
# ``request.path_params["id"]`` and ``["item_id"]``.
_ON_CONVERSATION: dict[str, Handler] = {
    "GET": on_conversation,
    "POST": on_conversation,
    "DELETE": on_conversation,
}
ID_ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/models/{model}": {"GET": one_model},
    "/v1/responses/{id}": {"GET": stored_response, "DELETE": stored_response},
    "/v1/responses/{id}/cancel": {"POST": stored_response},
    "/v1/responses/{id}/input_items": {"GET": stored_response},
    "/v1/conversations/{id}": _ON_CONVERSATION,
    "/v1/conversations/{id}/items": {"GET": on_conversation, "POST": on_conversation},
    "/v1/conversations/{id}/items/{item_id}": {"GET": on_conversation, "DELETE": on_conversation},
}


def _pattern(template: str) -> re.Pattern[str]:
    escaped = re.escape(template)
    for name in ("id", "item_id"):
        escaped = escaped.replace(re.escape("{" + name + "}"), f"(?P<{name}>[^/]+)")
    # A model's name may hold slashes, as some providers' do ("org/model").
    escaped = escaped.replace(re.escape("{model}"), "(?P<model>.+)")
    return re.compile(escaped)


_ID_PATTERNS = [(_pattern(template), methods) for template, methods in ID_ROUTES.items()]
ANSWERED_HERE = {models, one_model, own_key, billing_subscription, billing_usage}


def _methods_for(request: Request, path: str) -> dict[str, Handler] | None:
    methods = ROUTES.get(path)
    if methods is not None:
        return methods
    for pattern, by_method in _ID_PATTERNS:
        matched = pattern.fullmatch(path)
        if matched:
            request.scope["path_params"] = matched.groupdict()
            return by_method
    return None


_frozen = False


def _freeze_once() -> None:
    """At the first request (Web Adapter's readiness check, in Lambda), what the process loaded
    to start (the libraries, the app, the server) lives as long as the container: keep it out
    of the collector's way. Its full passes otherwise walk all of it every few hundred calls,
    pausing whichever call is under way (15 ms here for the relay alone, 50-100 ms with the
    management app beside it, as locally)."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


async def _served(request: Request) -> Response:
    """Route ``/v1/...`` and map every error, once."""
    _freeze_once()
    path = request.url.path.rstrip("/") or "/"
    if request.method == "OPTIONS":
        # A browser's preflight carries no key: answered for any path, it says nothing. The
        # headers it asks for are allowed as asked (SDKs add their own, openai-node's
        # X-Stainless-* among them); Authorization is never covered by a wildcard.
        asked = request.headers.get("access-control-request-headers", "")
        allowed = {"Access-Control-Allow-Headers": asked} if asked.strip() else {}
        return Response(status_code=204, headers={**PREFLIGHT_HEADERS, **allowed})
    try:
        methods = _methods_for(request, path) or media_routes.match(path)
        if methods is None:
            # Never the framework's own 404: nothing of the request is repeated back.
            raise NotFound("Unknown path. See /openapi.json for the routes Sluice serves.")
        handler = methods.get(request.method)
        if request.method == "HEAD" and methods.get("GET") in ANSWERED_HERE:
            # GET without the body (uvicorn leaves it out of a HEAD answer). Only for what the
            # relay answers itself: a route that goes upstream would send the provider a GET
            # (or a whole video) for an answer nobody reads.
            handler = methods["GET"]
        if handler is None:
            raise MethodNotAllowed(
                f"Use {' or '.join(sorted(methods))} on this path.",
                headers={"Allow": ", ".join(sorted(methods))},
            )
        if inspect.iscoroutinefunction(handler):
            result: Response = await handler(request)
        else:
            result = await run_in_threadpool(gateway.one_call(handler), request)
        return result
    except GatewayError as exc:
        return error_response(exc)
    except Exception as exc:
        # Never the request's headers or body: they carry the key.
        observe.log("unhandled_error", level="ERROR", route=path, error=exc)
        return error_response(GatewayError())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The relay's ASGI app: every HTTP request to ``_served``, whatever its path or method
    (unknown ones get our 404 and 405, never a framework's), and the lifespan acknowledged.

    A bare ASGI callable, not a Starlette application: one route with its own error mapping
    needs none of the application's routing and middleware, whose import was a few percent of
    every cold start."""
    if scope["type"] == "http":
        response = await _served(Request(scope, receive))
        await response(scope, receive, send)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


configure_store()
