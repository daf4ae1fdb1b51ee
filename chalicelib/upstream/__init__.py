"""The relay's upstream side: which channel serves a call, forwarding it, reading the answer.

What the gateway uses:

* ``forward(kind, payload, ...)`` -> ``UpstreamReply``: sends the call to the best channel, fails
  over on errors, and returns the complete body with the usage upstream reported (or a flagged
  estimate when it reported none);
* ``prompt_tokens_upper_bound(kind, payload)``: prompt tokens upstream can never exceed, to size
  the reservation;
* ``open_stream(payload, ...)`` -> ``ChatStream``: the same for ``stream: true`` chat, handing
  each event on as it arrives (failover only until the first one was handed on);
* ``list_models(group)``: the models the enabled channels of a group serve.

The HTTP machinery is imported on the first ``forward``, so routes that never relay (the admin
and management API) do not pay for it at cold start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.core.payloads import Kind
from chalicelib.core.token_count import prompt_tokens_upper_bound

if TYPE_CHECKING:
    from chalicelib.upstream.streaming import ChatStream


@dataclass(frozen=True)
class UpstreamReply:
    status: int  # HTTP status to return to the client (200 on success)
    body: bytes  # the complete body: JSON, or a complete text/event-stream when streaming
    content_type: str  # "application/json" or "text/event-stream"
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool  # True when upstream sent no usage and it was estimated
    channel: str  # name of the channel that answered (for the log)
    model: str  # the model name the client asked for
    cached_tokens: int = 0  # the part of prompt_tokens the provider served from its cache
    channel_id: str = ""  # id of the channel that answered (where later calls on it must go)
    # A Responses answer: the id of the response the provider keeps, and of its conversation.
    object_id: str = ""
    conversation_id: str = ""


if TYPE_CHECKING:  # the checker sees the real signature; the runtime imports it on first use
    from chalicelib.upstream.forwarder import forward
else:

    def forward(*args: Any, **kwargs: Any) -> UpstreamReply:
        """Send one call upstream: ``chalicelib.upstream.forwarder.forward``, imported on first
        call so that routes which never relay do not load httpx."""
        from chalicelib.upstream import forwarder

        return forwarder.forward(*args, **kwargs)


def open_stream(
    payload: dict[str, Any],
    *,
    group: str,
    client_wants_usage: bool,
    request_id: str,
    **options: Any,
) -> ChatStream:
    """Start a chat stream upstream; see ``chalicelib.upstream.streaming.open_stream``."""
    from chalicelib.upstream import streaming

    return streaming.open_stream(
        payload,
        group=group,
        client_wants_usage=client_wants_usage,
        request_id=request_id,
        **options,
    )


def call_object(*args: Any, **kwargs: Any) -> UpstreamReply:
    """A call on an object one channel keeps: ``chalicelib.upstream.objects.call_object``."""
    from chalicelib.upstream import objects

    return objects.call_object(*args, **kwargs)


def list_models(group: str) -> list[str]:
    """Models served by the enabled channels of ``group`` (cached per container)."""
    from chalicelib.core.channels import models_for_group
    from chalicelib.store import config_reads as config_store

    return models_for_group(config_store.channels(), group)


__all__ = [
    "ChatStream",
    "Kind",
    "UpstreamReply",
    "call_object",
    "forward",
    "list_models",
    "open_stream",
    "prompt_tokens_upper_bound",
]
