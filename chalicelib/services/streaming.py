"""A ``stream: true`` call (chat, completions, Responses) after ``gateway.reserve``: the events
handed on as they arrive.

``relay_stream`` opens the stream upstream; ``StreamDelivery`` hands its events to the client
and settles the call, through ``gateway``'s same charge and ``finish``, once the stream ends,
breaks or the client hangs up, charged for what was delivered.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib import upstream
from chalicelib.core import errors, observe, payloads
from chalicelib.core.settings import get_settings
from chalicelib.core.token_count import estimate_completion_tokens
from chalicelib.services.gateway import (
    Call,
    CallResult,
    Delivered,
    Held,
    capped,
    charge,
    rate_headers,
    refund_failed,
    refunded_on_error,
    remember_objects,
    settle,
)


@dataclass(frozen=True)
class StreamedCall:
    """A stream under way: the response's headers, then ``chunks`` as they come."""

    headers: dict[str, str]
    chunks: StreamDelivery
    status: int = 200
    content_type: str = "text/event-stream; charset=utf-8"


KEEPALIVE = b": keepalive\n\n"
DONE_EVENT = b"data: [DONE]\n\n"
# How long one ``next()`` waits for upstream before it returns an empty chunk, and how long the
# edge's loop waits to be told of more before it looks again: that often, a silent stream is
# checked for its keepalive and its deadline.
TICK_SECONDS = 0.5
# A stream that outlives its deadline by this much is ended here, whatever the reader does.
DEADLINE_GRACE_SECONDS = 2.0


def relay_stream(call: Call, held: Held) -> StreamOpening:
    """The stream opened upstream; its first item decides the answer (``StreamOpening``)."""
    payload = capped(call, held)
    with refunded_on_error(call, held):
        source = upstream.open_stream(
            payload,
            group=call.group,
            client_wants_usage=payloads.client_wants_usage(payload),
            request_id=held.record.request_id,
            budget_seconds=call.seconds_left(),
            kind=call.kind,
            channel_id=call.channel_id,
        )
    return StreamOpening(call, held, source)


class StreamOpening:
    """A stream opened upstream, until its first item (or the provider's silence) decides the
    answer; charged, at the end, for what was delivered.

    Until the response starts, a failure is an HTTP error like any call's (refunded in full)
    and an upstream rejection is passed on. The response starts with the first event, or with
    a keepalive once the provider was silent for ``stream_keepalive_seconds``; from then on the
    stream can only end with an error event (see ``StreamDelivery``).

    ``answer()`` waits for that if need be. The relay's edge waits on its event loop instead
    (``listen``, ``decided``, ``seconds_to_keepalive``) and runs ``answer()`` in a thread only
    when it ``writes`` (the refund of a failure, the settle of a rejection): an answer that
    starts the stream costs no hop to a thread.
    """

    def __init__(self, call: Call, held: Held, source: upstream.ChatStream) -> None:
        self.call = call
        self.held = held
        self.source = source
        self._first: Any | None = None
        self._keepalive_at = time.monotonic() + get_settings().stream_keepalive_seconds

    def listen(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called (from the reader thread) each time upstream hands on more."""
        self.source.listen(callback)

    def decided(self) -> bool:
        """Whether the answer is known (never waits): the first item came, or the keepalive
        time passed without one."""
        if self._first is None:
            self._first = self.source.next_item_now()
        return self._first is not None or self.seconds_to_keepalive() <= 0

    def seconds_to_keepalive(self) -> float:
        return max(self._keepalive_at - time.monotonic(), 0.0)

    def writes(self) -> bool:
        """Whether ``answer()`` writes (a refund or a settle), once ``decided``."""
        return self._first is not None and self._first.kind in ("failed", "rejected")

    def answer(self) -> CallResult | StreamedCall:
        """The stream to hand on; the upstream rejection passed on; or the failure, raised."""
        first = self._first
        if first is None and self.seconds_to_keepalive() > 0:
            # (Once the keepalive time is up, what comes next is the stream's, never looked
            # at here: the edge, told this answer does not write, runs it on its loop.)
            first = self._first = self.source.next_item(self.seconds_to_keepalive())
        if first is not None and first.kind == "failed" and first.error is not None:
            self.source.close()
            refund_failed(self.call, self.held, first.error)
            raise first.error
        if first is not None and first.kind == "rejected" and first.reply is not None:
            return settle(self.call, self.held, first.reply)
        delivery = StreamDelivery(self.call, self.held, self.source, first)
        # The rate-limit headers go out before the answer: its tokens are not known yet.
        headers = {
            "X-Request-Id": self.held.record.request_id,
            **rate_headers(self.call, self.held, 0),
        }
        return StreamedCall(headers=headers, chunks=delivery)

    def abandon(self) -> None:
        """Nobody waits for the answer any more: hang up on upstream and settle now (nothing
        was delivered, so nothing is charged) rather than leave the hold to the sweeper."""
        StreamDelivery(self.call, self.held, self.source, None).close()


class StreamDelivery:
    """The client's side of a stream: an iterator of bytes that settles exactly once.

    ::

        event ... ──> upstream [DONE] ──> next(): settle "ok", then "data: [DONE]" ──> end
                  ──> upstream breaks ──> error event + "data: [DONE]" ──> next(): settle
                      "upstream_error" at the cost of what was delivered ──> end
        close() before the end (the client hung up) ──> upstream hung up on, settle
                      "client_closed" at the cost of what was delivered

    A stream that ends well is settled inside the ``next()`` that returns its last bytes,
    before they go out, as a whole call is before its answer; one that breaks, in the
    ``next()`` after its error event; one the client leaves, in ``close()``, which the edge
    runs before the response ends. Every settle lands before the response body ends (a Lambda
    is frozen once it does). ``next()`` returns ``b""`` when upstream is silent for a moment,
    so the edge regains control to notice a hang-up. The cost
    of what was delivered is upstream's usage if it sent one, else an estimate from the text
    handed on (flagged ``usage_estimated``); the sweeper is never left to refund it.
    """

    def __init__(
        self, call: Call, held: Held, source: upstream.ChatStream, first: Any | None
    ) -> None:
        self.call = call
        self.held = held
        self.source = source
        self._pending = first
        self._keepalive_now = first is None
        self._last_sent = time.monotonic()
        self._text: list[str] = []
        self._usage: tuple[int, int] | None = None
        self._estimate: tuple[int, int] | None = None
        self._cached_tokens = 0
        self._channel = ""
        self._delivered = False
        self._ending: tuple[str, Any] | None = None
        self._settled = False
        self._lock = threading.Lock()

    def __iter__(self) -> StreamDelivery:
        return self

    def __next__(self) -> bytes:
        if self._ending is not None:
            self._settle(*self._ending)
        if self._settled:
            raise StopIteration
        try:
            return self._next_bytes()
        except Exception as exc:
            self._settle("relay_error", exc)
            raise

    def close(self) -> None:
        """End the stream now (idempotent): the client hung up, or the response was dropped."""
        self._settle(*(self._ending or ("client_closed", None)))

    @property
    def finished(self) -> bool:
        """Settled: there is nothing more to send (``next()`` would stop)."""
        return self._settled

    def at_hand(self) -> bytes | None:
        """What can go to the client now without waiting or writing: the events upstream has
        handed on already, joined (``b""`` if none has come yet); None when the next step
        writes (the stream's end, then its settle), which only ``next()`` does.

        The edge calls this on its event loop, so plain events cost no hop to a thread;
        ``listen(callback)`` tells it when more have come. If it fails, the settle that
        ``close()`` then makes says so (``relay_error``), not that the client left.
        """
        try:
            return self._at_hand()
        except Exception as exc:
            self._ending = ("relay_error", exc)
            raise

    def _at_hand(self) -> bytes | None:
        if self._ending is not None or self._settled:
            return None
        if self._keepalive_now:
            self._keepalive_now = False
            return self._sent(KEEPALIVE)
        chunks: list[bytes] = []
        while True:
            item = self._pending or self.source.next_item_now()
            if item is None:
                break
            if item.kind != "event":
                self._pending = item  # for ``next()``
                break
            self._pending = None
            chunks.append(self._handed_on(item))
        data = b"".join(chunks)  # b"" too if the events carried nothing for the client
        if data:
            return data
        return None if self._pending is not None else self._silence()

    def listen(self, callback: Callable[[], None]) -> None:
        """Have ``callback`` called (from the reader thread) each time upstream hands on more."""
        self.source.listen(callback)

    def _next_bytes(self) -> bytes:
        if self._keepalive_now:
            self._keepalive_now = False
            return self._sent(KEEPALIVE)
        item, self._pending = self._pending or self.source.next_item(TICK_SECONDS), None
        if item is None:
            return self._silence()
        return self._handed_on(item)

    def _handed_on(self, item: Any) -> bytes:
        self._channel = item.channel or self._channel
        if item.kind == "event":
            self._text.append(item.text)
            self._usage = item.usage or self._usage
            self._delivered = self._delivered or bool(item.data)
            return self._sent(item.data) if item.data else b""
        if item.kind == "done":
            self._estimate = item.estimated_usage
            self._cached_tokens = item.cached_tokens
            self._ending = ("ok", None)
            # Before the last bytes go out, so the client's follow-up finds its owner...
            carried = sum(self._usage or item.estimated_usage or (0, 0))
            remember_objects(self.call, item.channel_id, item.object_id,
                             item.conversation_id, carried)  # fmt: skip
            # ... and its key and account charged, their hold on this call released, as after
            # a whole call: an agent that sends its next call on the end is never refused for
            # the worst case this one held, nor sees a balance from before it. A settle that
            # fails is the sweeper's (its writes never raise at the client); anything else
            # that goes wrong in it must not cost the client the end of an answer it has.
            try:
                self._settle(*self._ending)
            except Exception as exc:
                observe.log(
                    "relay_stream_settle_failed",
                    level="ERROR",
                    request_id=self.held.record.request_id,
                    error=exc,
                )
            return self._sent(item.data)
        if item.kind == "rejected" and item.reply is not None:
            # Upstream refused the request after keepalives had started the response.
            self._ending = ("upstream_error", f"upstream answered HTTP {item.reply.status}")
            return self._sent(self._error_event(item.reply.body.decode("utf-8", "replace")))
        return self._end_with(item.error or errors.UpstreamError())

    def _silence(self) -> bytes:
        if self.call.seconds_left() < -DEADLINE_GRACE_SECONDS:
            self.source.close()
            return self._end_with(errors.UpstreamTimeout("The call ran out of time."))
        keepalive = get_settings().stream_keepalive_seconds
        if not self._delivered and time.monotonic() - self._last_sent >= keepalive:
            return self._sent(KEEPALIVE)
        return b""

    def _end_with(self, error: errors.GatewayError) -> bytes:
        """The OpenAI-shaped error event, then [DONE]: how a started stream reports failure."""
        self._ending = ("upstream_error", error)
        body = json.dumps(errors.error_body(error), separators=(",", ":"))
        return self._sent(self._error_event(body))

    def _error_event(self, body: str) -> bytes:
        """An error as the kind's stream says it: chat-style ``data:`` + ``[DONE]``, or the
        Responses API's typed ``error`` event (its streams have no ``[DONE]``)."""
        if self.call.kind != "responses":
            return f"data: {body}\n\n".encode() + DONE_EVENT
        try:
            error = json.loads(body).get("error") or {}
        except (ValueError, AttributeError):
            error = {}
        event = {
            "type": "error",
            "code": error.get("code"),
            "message": error.get("message") or "The upstream provider failed.",
            "param": error.get("param"),
        }
        return f"event: error\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()

    def _sent(self, data: bytes) -> bytes:
        self._last_sent = time.monotonic()
        return data

    def _delivered_usage(self) -> tuple[int, int, bool]:
        if self._usage is not None:
            return (*self._usage, False)
        if self._estimate is not None:
            return (*self._estimate, True)
        text = "".join(self._text)
        return self.call.prompt_bound, estimate_completion_tokens(text), True

    def _settle(self, status: str, detail: Any) -> None:
        with self._lock:
            if self._settled:
                return
            self._settled = True
        self.source.close()
        prompt, completion, estimated = (
            self._delivered_usage() if self._delivered else (0, 0, False)
        )
        cached = self._cached_tokens if self._delivered and not estimated else 0
        charge(
            self.call,
            self.held,
            Delivered(prompt, completion, estimated, cached),
            paid=self._delivered,
            channel=self._channel,
            answer="".join(self._text).encode(),
            status=status,
            detail=detail,
        )
