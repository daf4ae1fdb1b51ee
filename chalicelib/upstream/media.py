"""Images, audio and video upstream: bodies relayed as bytes, answers handed back as bytes.

Unlike chat, these calls carry files (multipart uploads) and answer with files (audio, video)
or large JSON (base64 images). The body the gateway built is sent as is (``body_for`` only
gives each channel its own model name), the answer comes back with the provider's status and
content type.

* ``send``: a new call (image, speech, transcription, video job), failed over between the
  channels serving the model exactly as ``forwarder`` does (connection errors, timeouts, 429,
  5xx and 401/402/403/408 move on; another 4xx is the request's fault and is passed on,
  without secrets);
* ``send_to`` / ``open_to``: a call about an existing video job, which only the channel that
  created it knows: no failover; ``open_to`` hands the answer on as it arrives (video files).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from chalicelib.core.channels import Channel, failover_order
from chalicelib.core.errors import (
    GatewayError,
    ModelNotFound,
    NotFound,
    ResponseTooLarge,
    UpstreamError,
)
from chalicelib.core.settings import get_settings
from chalicelib.store import config_reads as config_store
from chalicelib.upstream.client import POOL_TIMEOUT_SECONDS, WRITE_TIMEOUT_SECONDS, get_http_client
from chalicelib.upstream.forwarder import (
    CHANNEL_FAULT_STATUSES,
    MAX_ERROR_BODY_BYTES,
    MIN_ATTEMPT_SECONDS,
    Attempts,
    ChannelFailure,
    _rng,
    all_failed,
    channel_failed,
    hung_up,
)
from chalicelib.upstream.rejections import rejection_body

# Ten 1536x1024 images in base64 are about 40 MB: anything above this is not an answer.
MAX_MEDIA_RESPONSE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class MediaReply:
    status: int
    body: bytes
    content_type: str
    channel: str  # the channel's name, for the log
    channel_id: str  # the channel's id, for a job's later calls
    upstream_model: str = ""


def _timeout(left: float) -> httpx.Timeout:
    settings = get_settings()
    left = max(left, MIN_ATTEMPT_SECONDS)
    idle = settings.upstream_read_timeout
    return httpx.Timeout(
        connect=min(settings.upstream_connect_timeout, left),
        read=left if idle is None else min(idle, left),
        write=min(WRITE_TIMEOUT_SECONDS, left),
        pool=min(POOL_TIMEOUT_SECONDS, left),
    )


def _headers(channel: Channel, content_type: str | None, accept: str) -> dict[str, str]:
    try:
        api_key = config_store.api_key_for(channel)
    except GatewayError as exc:
        raise ChannelFailure("has no readable provider key") from exc
    headers = {"Accept": accept}
    if content_type:
        headers["Content-Type"] = content_type
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _read_all(response: httpx.Response, limit: int, deadline: float) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise ResponseTooLarge()
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise ChannelFailure("took longer than the request's time budget", timeout=True)
    return b"".join(chunks)


def _refused(response: httpx.Response, channel: Channel, deadline: float) -> MediaReply | None:
    """None if the provider accepted; its sanitized 4xx if the request was wrong; raises
    ``ChannelFailure`` if the channel is at fault."""
    status = response.status_code
    if status in CHANNEL_FAULT_STATUSES or status >= 500 or status < 200 or 300 <= status < 400:
        raise ChannelFailure(f"answered HTTP {status}")
    if status < 400:
        return None
    raw = _read_all(response, MAX_ERROR_BODY_BYTES * 4, deadline)[:MAX_ERROR_BODY_BYTES]
    body = rejection_body(status, raw, channel.base_url, config_store.api_key_for(channel))
    return MediaReply(status, body, "application/json", channel.name, channel.id)


def _url(channel: Channel, path: str) -> str:
    return channel.base_url.rstrip("/") + path


def _attempt(
    channel: Channel,
    method: str,
    path: str,
    content: bytes | None,
    content_type: str | None,
    deadline: float,
    upstream_model: str = "",
) -> MediaReply:
    headers = _headers(channel, content_type, "*/*")
    answered = False
    try:
        with get_http_client().stream(
            method,
            _url(channel, path),
            content=content,
            headers=headers,
            timeout=_timeout(deadline - time.monotonic()),
        ) as response:
            answered = True
            rejection = _refused(response, channel, deadline)
            if rejection is not None:
                return rejection
            body = _read_all(response, MAX_MEDIA_RESPONSE_BYTES, deadline)
            kind = response.headers.get("content-type", "application/octet-stream")
    except httpx.TimeoutException as exc:
        raise ChannelFailure("timed out", timeout=True) from exc
    except httpx.HTTPError as exc:
        raise hung_up(exc, answered) from exc
    return MediaReply(response.status_code, body, kind, channel.name, channel.id, upstream_model)


def _candidates(model: str, group: str) -> list[Channel]:
    """The channels to try for ``model`` in ``group``, best first (none: 404)."""
    candidates = failover_order(
        config_store.channels(), model, group, _rng, get_settings().upstream_max_attempts
    )
    if not candidates:
        raise ModelNotFound(
            f"The model '{model}' does not exist or no upstream serves it.", param="model"
        )
    return candidates


def send(
    path: str,
    *,
    model: str,
    group: str,
    body_for: Callable[[str], bytes],
    content_type: str,
    request_id: str,
    budget_seconds: float,
    accepted: Callable[[MediaReply], bool] = lambda reply: True,
) -> MediaReply:
    """POST a new call to the best channel serving ``model``, failing over as chat does.

    ``accepted`` tells a complete answer from one the next channel may do better (e.g. a
    JSON answer that is not JSON).
    """
    candidates = _candidates(model, group)
    deadline = time.monotonic() + budget_seconds
    failures: list[str] = []
    last = ChannelFailure("no attempt was made", timeout=True)
    attempts = Attempts(candidates)
    for number, channel in attempts:
        if deadline - time.monotonic() < MIN_ATTEMPT_SECONDS:
            last = ChannelFailure("the request's time budget ran out", timeout=True)
            failures.append(last.reason)
            break
        upstream_model = channel.upstream_model(model)
        try:
            reply = _attempt(
                channel,
                "POST",
                path,
                body_for(upstream_model),
                content_type,
                deadline,
                upstream_model,
            )
            if reply.status >= 400 or accepted(reply):
                return reply
            raise ChannelFailure("answered with an error or an unexpected body")
        except ChannelFailure as failure:
            failures.append(channel_failed(request_id, number, channel, failure))
            attempts.failed(failure)
            last = failure
    raise all_failed(failures, last)


def job_channel(channel_id: str) -> Channel:
    """The channel a job was created on, enabled or not (the job lives there)."""
    for channel in config_store.channels():
        if channel.id == channel_id:
            return channel
    found = config_store.get_channel(channel_id)
    if found is None:
        raise NotFound("The upstream that holds this job no longer exists.", param="video_id")
    return found


def send_to(
    channel_id: str,
    method: str,
    path: str,
    *,
    budget_seconds: float,
    content: bytes | None = None,
    content_type: str | None = None,
) -> MediaReply:
    """One call to the channel that holds a job; its failure is the client's 502/504."""
    channel = job_channel(channel_id)
    try:
        return _attempt(
            channel, method, path, content, content_type, time.monotonic() + budget_seconds
        )
    except ChannelFailure as failure:
        raise all_failed([channel_failed("", 1, channel, failure)], failure) from failure


@dataclass
class OpenedBody:
    """An answer whose headers are in; ``chunks`` hands its body on as it arrives."""

    status: int
    content_type: str
    headers: dict[str, str]
    chunks: Iterator[bytes]
    close: Callable[[], None]
    channel: str = ""  # the channel's name, for the log


def open_to(channel_id: str, path: str, *, budget_seconds: float) -> OpenedBody | MediaReply:
    """GET ``path`` on the job's channel, streamed: an ``OpenedBody`` when it answers 2xx,
    its (buffered, sanitized) refusal otherwise."""
    channel = job_channel(channel_id)
    deadline = time.monotonic() + budget_seconds
    client = get_http_client()
    try:
        request = client.build_request(
            "GET",
            _url(channel, path),
            headers=_headers(channel, None, "*/*"),
            timeout=_timeout(budget_seconds),
        )
        response = client.send(request, stream=True)
    except ChannelFailure as failure:
        raise all_failed([channel_failed("", 1, channel, failure)], failure) from failure
    except httpx.HTTPError as exc:
        unreachable = ChannelFailure(f"could not be reached ({type(exc).__name__})")
        raise all_failed([channel_failed("", 1, channel, unreachable)], unreachable) from exc
    try:
        rejection = _refused(response, channel, deadline)
    except (ChannelFailure, httpx.HTTPError) as exc:
        response.close()
        broken = exc if isinstance(exc, ChannelFailure) else ChannelFailure("hung up")
        raise all_failed([channel_failed("", 1, channel, broken)], broken) from exc
    if rejection is not None:
        response.close()
        return rejection
    passed = {
        name: response.headers[name]
        for name in ("content-length", "content-disposition")
        if name in response.headers
    }
    return OpenedBody(
        status=response.status_code,
        content_type=response.headers.get("content-type", "application/octet-stream"),
        headers=passed,
        chunks=_relayed(response),
        close=response.close,
    )


def open_stream(
    path: str,
    *,
    model: str,
    group: str,
    body_for: Callable[[str], bytes],
    content_type: str,
    request_id: str,
    budget_seconds: float,
) -> OpenedBody | MediaReply:
    """POST a new call whose answer is handed on as it arrives (a streamed transcription),
    failed over like ``send`` until a channel answers; its refusal (buffered) otherwise."""
    candidates = _candidates(model, group)
    deadline = time.monotonic() + budget_seconds
    client = get_http_client()
    failures: list[str] = []
    last = ChannelFailure("no attempt was made", timeout=True)
    attempts = Attempts(candidates)
    for number, channel in attempts:
        response: httpx.Response | None = None
        try:
            request = client.build_request(
                "POST",
                _url(channel, path),
                content=body_for(channel.upstream_model(model)),
                headers=_headers(channel, content_type, "*/*"),
                timeout=_timeout(deadline - time.monotonic()),
            )
            response = client.send(request, stream=True)
            rejection = _refused(response, channel, deadline)
        except httpx.TimeoutException as exc:
            failure = ChannelFailure("timed out", timeout=True)
            failure.__cause__ = exc
        except httpx.HTTPError as exc:
            failure = hung_up(exc, answered=response is not None)
            failure.__cause__ = exc
        except ChannelFailure as exc:
            failure = exc
        else:
            if rejection is not None:
                response.close()
                return rejection
            return OpenedBody(
                status=response.status_code,
                content_type=response.headers.get("content-type", "application/octet-stream"),
                headers={},
                chunks=_relayed(response),
                close=response.close,
                channel=channel.name,
            )
        if response is not None:
            response.close()
        failures.append(channel_failed(request_id, number, channel, failure))
        attempts.failed(failure)
        last = failure
    raise all_failed(failures, last)


def _relayed(response: httpx.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(CHUNK_BYTES)
    except httpx.HTTPError as exc:
        raise UpstreamError("The upstream provider broke off the file.") from exc
    finally:
        response.close()


def loads(reply: MediaReply) -> Any:
    """The JSON of an answer, or None if it is not JSON."""
    import json

    try:
        return json.loads(reply.body)
    except ValueError:
        return None
