"""Forward one call to an upstream channel, failing over to the next one when it breaks.

For each candidate channel, in ``channels.failover_order``::

    send ──> connection error / timeout / 429 / 5xx / 401,402,403,408 ──> next channel
         ──> 200 but not JSON, or a stream cut before [DONE] ────────────> next channel
         ──> other 4xx (the request itself is wrong) ──> passed to the client, usage 0, no retry
         ──> 200 with a complete body ──> UpstreamReply with upstream's usage (or an estimate)

Here nothing reaches the client before the whole answer is in, so a failed attempt is invisible
to it and the next channel can simply be tried (``upstream.streaming`` streams events on as they
come, and fails over only until the first one was handed on). When every attempt
failed, the call raises ``UpstreamTimeout`` (504) if the last failure was a timeout and
``UpstreamError`` (502) otherwise; the gateway then refunds the reservation. A stream cut mid-way
is such a failure too: the content is incomplete, and charging for a reply the client never got
whole would be wrong, even if upstream may bill the tokens it sent (that gap is the operator's).

Upstream 401/402/403 are treated as the *channel's* failure, not the client's: they mean the
provider key is wrong or out of credit, which the client can neither see nor fix.

A channel that hung up before its status line (``ChannelFailure.unanswered``: typically a
kept-alive connection it closed just as it was reused) said nothing of itself. With another
channel left, failover covers it like any failure; the last channel left gets one more attempt
at once (``Attempts``), rather than fail a call for a connection. One that answered and then
broke off is never asked twice: it may be generating, and billing, already.

All attempts share one budget, the call's deadline minus a margin to settle, so failover never
outlives the request; the read timeout follows it unless ``upstream_read_timeout`` sets a
shorter silence limit. Server logs name channels by name; messages a tenant can read say "the
upstream provider" and number the attempts instead. Provider keys and URLs appear in neither.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from chalicelib.core import observe
from chalicelib.core.channels import Channel, failover_order
from chalicelib.core.errors import (
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ResponseTooLarge,
    UpstreamError,
    UpstreamTimeout,
)
from chalicelib.core.settings import Settings, get_settings
from chalicelib.core.token_count import estimate_completion_tokens, prompt_tokens_upper_bound
from chalicelib.store import config_reads as config_store
from chalicelib.upstream import Kind, UpstreamReply
from chalicelib.upstream.client import POOL_TIMEOUT_SECONDS, WRITE_TIMEOUT_SECONDS, get_http_client
from chalicelib.upstream.rejections import rejection_body
from chalicelib.upstream.sse import (
    MAX_RESPONSE_BYTES,
    SseAssembler,
    StreamCut,
    StreamFailed,
    StreamTooLarge,
    encoded_size,
    generated_text,
    response_text,
    usage_counts,
)

PATHS: dict[str, str] = {
    "chat": "/chat/completions",
    "embeddings": "/embeddings",
    "responses": "/responses",
    "completions": "/completions",
    "moderations": "/moderations",
}
# The list a complete answer of each kind must hold to be an answer at all.
ANSWER_LISTS: dict[str, str] = {
    "chat": "choices",
    "completions": "choices",
    "embeddings": "data",
    "responses": "output",
    "moderations": "results",
}
# The kinds whose streams carry chat-style chunks, ``stream_options`` and ``data: [DONE]``.
CHUNK_STREAMS = ("chat", "completions")
# Kept free at the end of the relay's time budget to settle and log after the last attempt.
SETTLE_MARGIN_SECONDS = 5.0
MIN_ATTEMPT_SECONDS = 0.05
CHANNEL_FAULT_STATUSES = frozenset({401, 402, 403, 408, 429})
MAX_ERROR_BODY_BYTES = 64 * 1024
# How a connection fails that carried no answer: closed without a byte, reset, or broken while
# the request was going out (a connect error is the channel being down: no second try).
HUNG_UP = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
_rng = random.Random()


@dataclass(frozen=True)
class ChannelRequest:
    url: str
    headers: dict[str, str]
    content: bytes
    api_key: str | None = field(repr=False)
    upstream_model: str


class ChannelFailure(Exception):
    """One attempt failed in a way the next channel may not share; ``unanswered`` when the
    provider hung up before its status line (see the module docstring)."""

    def __init__(self, reason: str, *, timeout: bool = False, unanswered: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.timeout = timeout
        self.unanswered = unanswered


def hung_up(exc: httpx.HTTPError, answered: bool) -> ChannelFailure:
    """The failure of an attempt whose connection broke (``answered``: after the status line)."""
    return ChannelFailure(
        f"could not be reached or hung up ({type(exc).__name__})",
        unanswered=not answered and isinstance(exc, HUNG_UP),
    )


class Attempts:
    """A call's attempts, numbered: each candidate channel in turn, then the last one once
    more if it hung up before answering. Tell it of each failure (``failed``)."""

    def __init__(self, candidates: list[Channel]) -> None:
        self.candidates = candidates
        self._unanswered = False

    def __iter__(self) -> Iterator[tuple[int, Channel]]:
        for number, channel in enumerate(self.candidates, start=1):
            self._unanswered = False
            yield number, channel
        if self.candidates and self._unanswered:
            yield len(self.candidates) + 1, self.candidates[-1]

    def failed(self, failure: ChannelFailure) -> None:
        self._unanswered = failure.unanswered


def forward(
    kind: Kind,
    payload: dict[str, Any],
    *,
    group: str,
    stream: bool,
    client_wants_usage: bool,
    request_id: str,
    rng: random.Random | None = None,
    budget_seconds: float | None = None,
    channel_id: str | None = None,
) -> UpstreamReply:
    call, candidates = plan_call(
        kind,
        payload,
        group=group,
        stream=stream,
        client_wants_usage=client_wants_usage,
        rng=rng,
        budget_seconds=budget_seconds,
        channel_id=channel_id,
    )
    failures: list[str] = []
    last = ChannelFailure("no attempt was made", timeout=True)
    attempts = Attempts(candidates)
    for number, channel in attempts:
        if call.seconds_left() < MIN_ATTEMPT_SECONDS:
            last = ChannelFailure("the request's time budget ran out", timeout=True)
            failures.append(last.reason)
            break
        try:
            return call.attempt(channel)
        except ChannelFailure as failure:
            failures.append(channel_failed(request_id, number, channel, failure))
            attempts.failed(failure)
            last = failure
    raise all_failed(failures, last)


def channel_failed(request_id: str, number: int, channel: Channel, failure: ChannelFailure) -> str:
    """Log a failed attempt with its channel (for the operator); the tenant's words for it."""
    observe.log(
        "relay_channel_failed",
        level="WARNING",
        request_id=request_id,
        channel=channel.name,
        reason=failure.reason,
    )
    # Channel names are the operator's topology: the tenant reads only attempt numbers.
    return f"attempt {number} {failure.reason}"


def plan_call(
    kind: Kind,
    payload: dict[str, Any],
    *,
    group: str,
    stream: bool,
    client_wants_usage: bool,
    rng: random.Random | None = None,
    budget_seconds: float | None = None,
    channel_id: str | None = None,
) -> tuple[UpstreamCall, list[Channel]]:
    """The call as every attempt needs it, and the channels to try, in order.

    ``channel_id`` pins the call to that one channel (it continues an object only that channel's
    provider holds, such as a stored response): no failover, since no other provider knows it.
    """
    settings = get_settings()
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model")
    channels = config_store.channels()
    if channel_id is not None:
        channels = [channel for channel in channels if channel.id == channel_id]
    candidates = failover_order(
        channels, model, group, rng or _rng, settings.upstream_max_attempts, kind
    )
    if not candidates and channel_id is not None:
        raise InvalidRequest(
            f"The model '{model}' is not served where the previous response is kept.",
            param="model",
        )
    if not candidates:
        raise ModelNotFound(
            f"The model '{model}' does not exist or no upstream serves it.", param="model"
        )
    if budget_seconds is None:
        budget_seconds = settings.relay_timeout_seconds - SETTLE_MARGIN_SECONDS
    call = UpstreamCall(
        kind=kind,
        payload=payload,
        model=model,
        stream=stream and kind in ("chat", "completions", "responses"),
        client_wants_usage=client_wants_usage,
        prompt_bound=prompt_tokens_upper_bound(kind, payload),
        deadline=time.monotonic() + budget_seconds,
        settings=settings,
    )
    return call, candidates


def all_failed(failures: list[str], last: ChannelFailure) -> UpstreamError:
    """The client's error once every channel failed: 504 if the last one timed out."""
    summary = "; ".join(failures)
    if last.timeout:
        return UpstreamTimeout(f"The upstream provider did not answer in time ({summary}).")
    return UpstreamError(f"The upstream provider failed to answer ({summary}).")


@dataclass(frozen=True)
class UpstreamCall:
    """One client request and what every attempt at it needs."""

    kind: Kind
    payload: dict[str, Any]
    model: str
    stream: bool
    client_wants_usage: bool
    prompt_bound: int
    deadline: float
    settings: Settings

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()

    def timeout(self) -> httpx.Timeout:
        """The configured timeouts, cut to what is left of the request's budget."""
        left = max(self.seconds_left(), MIN_ATTEMPT_SECONDS)
        idle = self.settings.upstream_read_timeout
        return httpx.Timeout(
            connect=min(self.settings.upstream_connect_timeout, left),
            read=left if idle is None else min(idle, left),
            write=min(WRITE_TIMEOUT_SECONDS, left),
            pool=min(POOL_TIMEOUT_SECONDS, left),
        )

    def upstream_body(self, upstream_model: str) -> dict[str, Any]:
        """The client's payload with the channel's model name and our stream options.

        Everything else (including the gateway's ``max_tokens`` cap) goes through untouched.
        """
        body = {**self.payload, "model": upstream_model}
        if self.kind in CHUNK_STREAMS and self.stream:
            options = body.get("stream_options")
            body["stream"] = True
            body["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,  # always: usage is what the charge is computed from
            }
        elif self.kind in CHUNK_STREAMS:
            body.pop("stream", None)
            body.pop("stream_options", None)
        elif self.kind == "responses":
            # Responses always carry their usage (in ``response.completed`` when streamed).
            body["stream"] = self.stream
            if not self.stream:
                body.pop("stream", None)
        return body

    # One attempt ------------------------------------------------------------------------------
    def request_for(self, channel: Channel) -> ChannelRequest:
        """The HTTP request to ``channel`` (raises ``ChannelFailure`` if its key cannot be read)."""
        try:
            api_key = config_store.api_key_for(channel)
        except GatewayError as exc:
            raise ChannelFailure("has no readable provider key") from exc
        upstream_model = channel.upstream_model(self.model)
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if self.stream else "application/json",
        }
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        content = json.dumps(self.upstream_body(upstream_model), ensure_ascii=False).encode()
        url = channel.base_url.rstrip("/") + PATHS[self.kind]
        return ChannelRequest(url, headers, content, api_key, upstream_model)

    def refused(
        self, response: httpx.Response, channel: Channel, api_key: str | None
    ) -> UpstreamReply | None:
        """None when upstream accepted the call; its rejection when the request itself is wrong;
        raises ``ChannelFailure`` when the channel is at fault (the next one may do better)."""
        status = response.status_code
        if status in CHANNEL_FAULT_STATUSES or status >= 500 or status < 200:
            raise ChannelFailure(f"answered HTTP {status}")
        if 300 <= status < 400:
            raise ChannelFailure(f"answered with a redirect (HTTP {status})")
        if status >= 400:
            raw = self._read(response, MAX_ERROR_BODY_BYTES, truncate=True)
            return self._rejected(status, raw, channel, api_key)
        return None

    def attempt(self, channel: Channel) -> UpstreamReply:
        request = self.request_for(channel)
        answered = False
        try:
            with get_http_client().stream(
                "POST",
                request.url,
                content=request.content,
                headers=request.headers,
                timeout=self.timeout(),
            ) as response:
                answered = True
                rejection = self.refused(response, channel, request.api_key)
                if rejection is not None:
                    return rejection
                if self.stream:
                    return self._read_stream(response, channel, request.upstream_model)
                raw = self._read(response, MAX_RESPONSE_BYTES, truncate=False)
        except httpx.TimeoutException as exc:
            raise ChannelFailure("timed out", timeout=True) from exc
        except httpx.HTTPError as exc:
            raise hung_up(exc, answered) from exc
        return self._reply(raw, channel, request.upstream_model)

    def _read(self, response: httpx.Response, limit: int, *, truncate: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > limit:
                if truncate:
                    break
                raise ResponseTooLarge()
            chunks.append(chunk)
            if self.seconds_left() <= 0:
                raise ChannelFailure("took longer than the request's time budget", timeout=True)
        return b"".join(chunks)

    def _reply(self, raw: bytes, channel: Channel, upstream_model: str) -> UpstreamReply:
        """A complete JSON answer: its usage, or an estimate flagged as such."""
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ChannelFailure("answered with a body that is not JSON") from exc
        expected = ANSWER_LISTS[self.kind]
        if not isinstance(data, dict) or not isinstance(data.get(expected), list):
            raise ChannelFailure("answered with an error or an unexpected body")
        usage = usage_counts(data.get("usage"))
        estimated = usage is None
        cached = 0
        if usage is not None:
            prompt, completion, cached = usage
        elif self.kind in CHUNK_STREAMS:
            prompt = self.prompt_bound
            completion = estimate_completion_tokens(generated_text(data["choices"], "message"))
        elif self.kind == "responses":
            prompt = self.prompt_bound
            completion = estimate_completion_tokens(response_text(data["output"]))
        else:
            prompt, completion = self.prompt_bound, 0
        if self.kind in ("embeddings", "moderations"):
            completion = 0
        if upstream_model != self.model and data.get("model") == upstream_model:
            data["model"] = self.model
            raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        if encoded_size(raw.decode("utf-8", errors="replace")) > MAX_RESPONSE_BYTES:
            raise ResponseTooLarge()
        reply = self._result(200, raw, "application/json", channel, prompt, completion, estimated)
        object_id, conversation_id = created_objects(self.kind, data)
        return replace(
            reply,
            cached_tokens=cached,
            object_id=object_id,
            conversation_id=conversation_id,
        )

    def _read_stream(
        self, response: httpx.Response, channel: Channel, upstream_model: str
    ) -> UpstreamReply:
        content_type = response.headers.get("content-type", "")
        if "text/event-stream" not in content_type:
            raise ChannelFailure("did not answer with an event stream")
        assembler = SseAssembler(
            client_model=self.model,
            upstream_model=upstream_model,
            client_wants_usage=self.client_wants_usage,
        )
        raw_size = 0
        try:
            for line in response.iter_lines():
                raw_size += len(line) + 1
                if raw_size > 2 * MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge()
                assembler.feed(line)
                if self.seconds_left() <= 0:
                    raise ChannelFailure("took longer than the request's time budget", timeout=True)
            assembled = assembler.finish(self.prompt_bound)
        except httpx.TimeoutException as exc:
            raise ChannelFailure("stalled mid-stream", timeout=True) from exc
        except (httpx.HTTPError, StreamCut) as exc:
            raise ChannelFailure("cut the stream before it finished") from exc
        except StreamFailed as exc:
            raise ChannelFailure(str(exc)) from exc
        except StreamTooLarge as exc:
            raise ResponseTooLarge() from exc
        return self._result(
            200,
            assembled.body,
            "text/event-stream",
            channel,
            assembled.prompt_tokens,
            assembled.completion_tokens,
            assembled.usage_estimated,
        )

    def _rejected(
        self, status: int, raw: bytes, channel: Channel, api_key: str | None
    ) -> UpstreamReply:
        """Upstream refused the request itself: pass its error on, minus anything secret."""
        body = rejection_body(status, raw, channel.base_url, api_key)
        return self._result(status, body, "application/json", channel, 0, 0, False)

    def _result(
        self,
        status: int,
        body: bytes,
        content_type: str,
        channel: Channel,
        prompt: int,
        completion: int,
        estimated: bool,
    ) -> UpstreamReply:
        return UpstreamReply(
            status=status,
            body=body,
            content_type=content_type,
            prompt_tokens=prompt,
            completion_tokens=completion,
            usage_estimated=estimated,
            channel=channel.name,
            model=self.model,
            channel_id=channel.id,
        )


def created_objects(kind: str, answer: Any) -> tuple[str, str]:
    """The ids a Responses answer leaves at the provider: (response id, conversation id), each
    "" when there is none (``store: false``, no conversation, another kind)."""
    if kind != "responses" or not isinstance(answer, dict):
        return "", ""
    stored = isinstance(answer.get("id"), str) and answer.get("store", True) is not False
    conversation = answer.get("conversation")
    in_conversation = isinstance(conversation, dict) and isinstance(conversation.get("id"), str)
    return (
        answer["id"] if stored else "",
        conversation["id"] if in_conversation else "",  # type: ignore[index]
    )
