"""Calls on an object one channel's provider keeps (a stored response): to that channel only.

``call_object(channel, method, path, ...)`` sends one request to the channel that holds the
object, with its key, and returns the answer whole (JSON, a few KB). There is no failover: no
other provider knows the object. Upstream's 4xx is passed on without secrets, like any
rejection; a 5xx, a timeout or an unreachable channel is our 502/504. The model name is put back
to the client's when the channel maps it to another one.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from chalicelib.core.channels import Channel
from chalicelib.core.errors import GatewayError, UpstreamError, UpstreamTimeout
from chalicelib.core.settings import get_settings
from chalicelib.store import config_reads as config_store
from chalicelib.upstream import UpstreamReply
from chalicelib.upstream.client import get_http_client
from chalicelib.upstream.rejections import rejection_body
from chalicelib.upstream.sse import MAX_RESPONSE_BYTES

MAX_OBJECT_SECONDS = 30.0


def call_object(
    channel: Channel,
    method: str,
    path: str,
    *,
    query: str = "",
    body: bytes | None = None,
    budget_seconds: float | None = None,
) -> UpstreamReply:
    """``method path`` (e.g. ``GET /responses/resp_1``) on ``channel``, answered whole."""
    try:
        api_key = config_store.api_key_for(channel)
    except GatewayError as exc:
        raise UpstreamError("The upstream provider could not be called.") from exc
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    if body is not None:
        headers["Content-Type"] = "application/json"
    url = channel.base_url.rstrip("/") + path + (f"?{query}" if query else "")
    seconds = min(budget_seconds or MAX_OBJECT_SECONDS, get_settings().relay_timeout_seconds)
    try:
        response = get_http_client().request(
            method, url, headers=headers, content=body, timeout=seconds
        )
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("The upstream provider did not answer in time.") from exc
    except httpx.HTTPError as exc:
        raise UpstreamError("The upstream provider could not be reached.") from exc
    status = response.status_code
    if status >= 500 or status in (401, 402, 403, 408, 429) or 300 <= status < 400:
        raise UpstreamError(f"The upstream provider failed to answer (HTTP {status}).")
    raw = response.content
    if len(raw) > MAX_RESPONSE_BYTES:
        raise UpstreamError("The upstream provider's answer is too large.")
    if status >= 400:
        raw = rejection_body(status, raw, channel.base_url, api_key)
    else:
        raw = _client_model_names(raw, channel)
    return UpstreamReply(
        status=status,
        body=raw,
        content_type=response.headers.get("content-type", "application/json"),
        prompt_tokens=0,
        completion_tokens=0,
        usage_estimated=False,
        channel=channel.name,
        model="",
        channel_id=channel.id,
    )


def _client_model_names(raw: bytes, channel: Channel) -> bytes:
    """The answer with the channel's upstream model names put back to the client's."""
    if not channel.model_map:
        return raw
    reverse = {upstream: client for client, upstream in channel.model_map.items()}
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict) and data.get("model") in reverse:
        data["model"] = reverse[data["model"]]
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return raw
