"""Read a chat stream from upstream and hand its events on as they arrive.

``open_stream(...)`` starts a reader thread and returns a ``ChatStream``; the caller takes items
with ``next_item(timeout)`` (None when upstream was silent that long) or, without waiting,
``next_item_now()``, may ``listen(callback)`` to be told of each item as it is handed on, and may
``close()`` it at any time. The reader thread::

    for each channel in failover order:
        connect ──> channel fault (connection, timeout, 429, 5xx, 401-403, not an event stream,
                    an error event, a cut) before any event was handed on ─────────> next channel
                ──> other 4xx (the request itself is wrong) ──> "rejected" (passed on, usage 0)
                ──> events ──> one "event" item each, translated for the client (sse.py)
                    ──> [DONE] ──> "done" (with our usage chunk first if the client needs it)
                    ──> any failure after the first event ──> "failed" (no failover: the
                        client already has part of this channel's answer)
    the last channel hung up before its status line ──> that channel once more (forwarder.py)
    every channel failed ──> "failed" (504 if the last one timed out, else 502)

A thread (rather than reading in the caller) lets the caller wait with a timeout, to send
keepalives while a provider thinks and to notice a client that hung up, whatever upstream does.
``close()`` stops the reader and shuts the upstream connection down, so the provider sees the
hang-up and stops generating.
"""

from __future__ import annotations

import contextlib
import queue
import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from chalicelib.core import observe
from chalicelib.core.channels import Channel
from chalicelib.core.errors import GatewayError, ResponseTooLarge, UpstreamError, UpstreamTimeout
from chalicelib.upstream import Kind, UpstreamReply
from chalicelib.upstream.client import get_http_client
from chalicelib.upstream.forwarder import (
    Attempts,
    ChannelFailure,
    UpstreamCall,
    all_failed,
    channel_failed,
    hung_up,
    plan_call,
)
from chalicelib.upstream.sse import SseTranslator, StreamFailed
from chalicelib.upstream.typed_sse import ResponsesTranslator

# What one stream may carry in total; API Gateway's streaming limit is 200 MB.
MAX_STREAM_BYTES = 190 * 1024 * 1024


@dataclass(frozen=True)
class StreamItem:
    """One thing the reader hands on.

    * ``event``: ``data`` is an event for the client (``usage`` set if the chunk carried it; a
      usage-only chunk the client did not ask for comes with empty ``data``);
    * ``done``: ``data`` is what closes the stream (``data: [DONE]``, after our usage chunk);
    * ``rejected``: upstream refused the request itself, before any event (``reply``);
    * ``failed``: the stream cannot go on (``error``).
    """

    kind: Literal["event", "done", "rejected", "failed"]
    data: bytes = b""
    text: str = ""
    usage: tuple[int, int] | None = None
    estimated_usage: tuple[int, int] | None = None
    error: GatewayError | None = None
    reply: UpstreamReply | None = None
    channel: str = ""
    # On "done": the cached part of the prompt, the channel's id, and (a Responses stream) the
    # ids of the response the provider keeps and of its conversation.
    cached_tokens: int = 0
    channel_id: str = ""
    object_id: str = ""
    conversation_id: str = ""


class _Stopped(Exception):
    """The consumer closed the stream."""


class ChatStream:
    """A stream being read from upstream in its own thread (see the module docstring)."""

    def __init__(self, call: UpstreamCall, candidates: list[Channel], request_id: str) -> None:
        self.call = call
        self.candidates = candidates
        self.request_id = request_id
        self._items: queue.Queue[StreamItem] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._response: httpx.Response | None = None
        self._listener: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._read, name=f"stream-{request_id}", daemon=True)

    def start(self) -> ChatStream:
        self._thread.start()
        return self

    def next_item(self, timeout: float) -> StreamItem | None:
        """The next item, or None if there was none within ``timeout`` seconds."""
        try:
            return self._items.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None

    def next_item_now(self) -> StreamItem | None:
        """The next item if one was handed on already, else None (never waits)."""
        try:
            return self._items.get_nowait()
        except queue.Empty:
            return None

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each item is handed on (from the reader thread, so it must
        only signal), and at once, here, if some are waiting already; it replaces any callback
        given before."""
        self._listener = callback
        if not self._items.empty():
            callback()

    def close(self) -> None:
        """Stop reading and hang up on upstream (idempotent, from any thread)."""
        self._stop.set()
        with self._lock:
            response = self._response
        if response is not None:
            _shut_down(response)

    def join(self, timeout: float) -> bool:
        """Wait for the reader thread to end; True if it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # The reader thread ---------------------------------------------------------------------
    def _read(self) -> None:
        failures: list[str] = []
        last = ChannelFailure("no attempt was made", timeout=True)
        attempts = Attempts(self.candidates)
        for number, channel in attempts:
            if self._stop.is_set():
                return
            if self.call.seconds_left() <= 0:
                last = ChannelFailure("the request's time budget ran out", timeout=True)
                failures.append(last.reason)
                break
            handed_on = [False]
            try:
                self._attempt(channel, handed_on)
                return
            except _Stopped:
                return
            except ChannelFailure as failure:
                if self._stop.is_set():
                    return
                told = channel_failed(self.request_id, number, channel, failure)
                if handed_on[0]:
                    self._fail(_mid_stream_error(failure), channel)
                    return
                failures.append(told)
                attempts.failed(failure)
                last = failure
            except GatewayError as error:  # e.g. ResponseTooLarge: not the channel's fault
                self._fail(error, channel)
                return
            except Exception as exc:  # never leave the consumer waiting for an item
                observe.log(
                    "relay_stream_reader_failed",
                    level="ERROR",
                    request_id=self.request_id,
                    error=exc,
                )
                self._fail(UpstreamError(), channel)
                return
        self._fail(all_failed(failures, last), None)

    def _attempt(self, channel: Channel, handed_on: list[bool]) -> None:
        request = self.call.request_for(channel)
        answered = False
        try:
            with get_http_client().stream(
                "POST",
                request.url,
                content=request.content,
                headers=request.headers,
                timeout=self.call.timeout(),
            ) as response:
                answered = True
                with self._lock:
                    self._response = response
                if self._stop.is_set():
                    raise _Stopped()
                rejection = self.call.refused(response, channel, request.api_key)
                if rejection is not None:
                    self._put(StreamItem("rejected", reply=rejection, channel=channel.name))
                    return
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    raise ChannelFailure("did not answer with an event stream")
                self._relay_events(response, channel, request.upstream_model, handed_on)
        except httpx.TimeoutException as exc:
            self._check_stopped()
            reason = "stalled mid-stream" if handed_on[0] else "timed out"
            raise ChannelFailure(reason, timeout=True) from exc
        except httpx.HTTPError as exc:
            self._check_stopped()
            if handed_on[0]:
                raise ChannelFailure("cut the stream before it finished") from exc
            raise hung_up(exc, answered) from exc
        finally:
            with self._lock:
                self._response = None

    def _relay_events(
        self, response: httpx.Response, channel: Channel, upstream_model: str, handed_on: list[bool]
    ) -> None:
        translating = ResponsesTranslator if self.call.kind == "responses" else SseTranslator
        translator = translating(
            client_model=self.call.model,
            upstream_model=upstream_model,
            client_wants_usage=self.call.client_wants_usage,
        )
        size = 0
        try:
            for line in response.iter_lines():
                self._check_stopped()
                size += len(line) + 1
                if size > MAX_STREAM_BYTES:
                    raise ResponseTooLarge("The upstream stream exceeds the relay's size limit.")
                translated = translator.feed(line)
                if translated is None:
                    continue
                data = (translated.event or "").encode("utf-8")
                self._put(
                    StreamItem(
                        "event", data, translated.text, translated.usage, channel=channel.name
                    )
                )
                handed_on[0] = handed_on[0] or bool(data)
                if self.call.seconds_left() <= 0:
                    raise ChannelFailure("took longer than the request's time budget", timeout=True)
            self._check_stopped()
            last = translator.flush()
            if last is not None and last.event is not None:
                self._put(
                    StreamItem(
                        "event", last.event.encode(), last.text, last.usage, channel=channel.name
                    )
                )
                handed_on[0] = True
        except StreamFailed as exc:
            raise ChannelFailure(str(exc)) from exc
        if not translator.done:
            raise ChannelFailure("cut the stream before it finished")
        prompt, completion, estimated = translator.final_usage(self.call.prompt_bound)
        closing = "".join(translator.closing_events(self.call.prompt_bound)).encode()
        object_id = conversation_id = ""
        if isinstance(translator, ResponsesTranslator):
            object_id = translator.response_id if translator.stored else ""
            conversation_id = translator.conversation_id
        self._put(
            StreamItem(
                "done",
                closing,
                estimated_usage=(prompt, completion) if estimated else None,
                channel=channel.name,
                cached_tokens=translator.cached_tokens,
                channel_id=channel.id,
                object_id=object_id,
                conversation_id=conversation_id,
            )
        )

    def _check_stopped(self) -> None:
        if self._stop.is_set():
            raise _Stopped()

    def _put(self, item: StreamItem) -> None:
        self._check_stopped()
        self._handed_on(item)

    def _fail(self, error: GatewayError, channel: Channel | None) -> None:
        if not self._stop.is_set():
            self._handed_on(
                StreamItem("failed", error=error, channel=channel.name if channel else "")
            )

    def _handed_on(self, item: StreamItem) -> None:
        self._items.put(item)
        listener = self._listener
        if listener is not None:
            try:
                listener()
            except Exception as exc:  # the item is queued: a missed signal costs a tick
                observe.log("relay_stream_listener_failed", level="ERROR", error=exc)


def _mid_stream_error(failure: ChannelFailure) -> GatewayError:
    # The tenant reads "the upstream provider", never the channel's name (server logs have it).
    message = f"The upstream provider broke off the stream ({failure.reason})."
    return UpstreamTimeout(message) if failure.timeout else UpstreamError(message)


def _shut_down(response: httpx.Response) -> None:
    """Shut the response's socket down, waking a read blocked on it, and tell upstream."""
    stream: Any = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def open_stream(
    payload: dict[str, Any],
    *,
    group: str,
    client_wants_usage: bool,
    request_id: str,
    budget_seconds: float | None = None,
    rng: random.Random | None = None,
    kind: Kind = "chat",
    channel_id: str | None = None,
) -> ChatStream:
    """Start streaming a call upstream (raises before any attempt if nothing serves it)."""
    call, candidates = plan_call(
        kind,
        payload,
        group=group,
        stream=True,
        client_wants_usage=client_wants_usage,
        rng=rng,
        budget_seconds=budget_seconds,
        channel_id=channel_id,
    )
    return ChatStream(call, candidates, request_id).start()
