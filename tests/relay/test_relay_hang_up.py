"""A provider that hangs up before it answers: the last channel left is tried once more.

A kept-alive connection the provider closed at the moment it was reused fails a call that never
reached the model (httpx: "Server disconnected without sending a response"). With another
channel left, failover handles it as it handles any failure; with none, the call would fail for
nothing, so that channel gets one more attempt. A provider that answered (its status line came)
and then broke off is never asked twice: it may be generating, and billing, already.
"""

from __future__ import annotations

import json
import random
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib import upstream as relay
from chalicelib.core.errors import UpstreamError
from chalicelib.upstream import media
from chalicelib.upstream.streaming import open_stream
from devtools.mock_upstream import MockUpstream

PAYLOAD = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "delta": {"content": "Paris"}, "finish_reason": None}],
}
USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Paris"}, "finish_reason": "stop"}
    ],
    "usage": USAGE,
}


class HangingUpUpstream:
    """An upstream on 127.0.0.1 that reads each request whole, then for the first ``drops``
    requests closes the connection without a byte (``mode="silent"``) or after a 200 status
    line and headers (``mode="after_headers"``); later requests get a proper answer."""

    def __init__(self, drops: int, mode: str = "silent") -> None:
        self.drops = drops
        self.mode = mode
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                while owner._one_request(self):
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _one_request(self, handler: socketserver.StreamRequestHandler) -> bool:
        """Serve one request on the connection; False once it is closed."""
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = handler.rfile.readline()
            if not line:
                return False
            head += line
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        body = json.loads(handler.rfile.read(length))
        with self._lock:
            self.requests += 1
            drop = self.requests <= self.drops
        if drop and self.mode == "after_headers":
            handler.wfile.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            handler.wfile.flush()
        if drop:
            handler.connection.shutdown(socket.SHUT_RDWR)
            return False
        if body.get("stream"):
            events = [
                f"data: {json.dumps(CHUNK)}\n\n",
                f"data: {json.dumps({**CHUNK, 'choices': [], 'usage': USAGE})}\n\n",
                "data: [DONE]\n\n",
            ]
            payload = "".join(events).encode()
            content_type = b"text/event-stream"
        else:
            payload = json.dumps(COMPLETION).encode()
            content_type = b"application/json"
        handler.wfile.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n"
            b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
        )
        handler.wfile.flush()
        return True

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def hanging_up() -> Iterator[Callable[..., HangingUpUpstream]]:
    started: list[HangingUpUpstream] = []

    def start(drops: int, mode: str = "silent") -> HangingUpUpstream:
        upstream = HangingUpUpstream(drops, mode)
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        upstream.stop()


def forward(stream: bool = False) -> relay.UpstreamReply:
    return relay.forward(
        "chat",
        {**PAYLOAD, "stream": stream},
        group="default",
        stream=stream,
        client_wants_usage=False,
        request_id="req_test",
        rng=random.Random(0),
    )


def streamed() -> list[Any]:
    """Every item a streamed call hands on, up to its last."""
    stream = open_stream(
        {**PAYLOAD, "stream": True},
        group="default",
        client_wants_usage=False,
        request_id="req_test",
    )
    items = []
    while not items or items[-1].kind == "event":
        item = stream.next_item(10.0)
        assert item is not None, "the stream handed nothing on within 10 s"
        items.append(item)
    return items


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_channel_that_hangs_up_before_answering_gets_one_more_attempt(
    stream: bool, hanging_up: Callable[..., HangingUpUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN the only channel, whose provider closes the first connection without answering
    upstream = hanging_up(drops=1)
    add_channel("only", upstream.base_url)
    # WHEN a call is forwarded (buffered, or assembled from a stream)
    reply = forward(stream)
    # THEN it is answered, after exactly two attempts
    assert (reply.status, reply.channel) == (200, "only")
    assert (reply.prompt_tokens, reply.completion_tokens) == (3, 1)
    assert upstream.requests == 2


def test_a_lone_channel_that_hangs_up_before_streaming_gets_one_more_attempt(
    hanging_up: Callable[..., HangingUpUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN the only channel, whose provider closes the first connection without answering
    upstream = hanging_up(drops=1)
    add_channel("only", upstream.base_url)
    # WHEN a call streams through the relay's reader
    items = streamed()
    # THEN its events come from the second attempt, and it ends well
    assert [item.kind for item in items] == ["event", "event", "done"]
    assert items[0].text == "Paris"
    assert upstream.requests == 2


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_channel_that_keeps_hanging_up_fails_after_two_attempts(
    stream: bool, hanging_up: Callable[..., HangingUpUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN the only channel, whose provider hangs up on every request
    upstream = hanging_up(drops=100)
    add_channel("only", upstream.base_url)
    # WHEN a call is forwarded  THEN it fails as a 502 naming both attempts, and no third is made
    with pytest.raises(UpstreamError) as raised:
        forward(stream)
    assert "attempt 1" in raised.value.message and "attempt 2" in raised.value.message
    assert upstream.requests == 2


def test_a_provider_that_answered_and_then_hung_up_is_not_asked_twice(
    hanging_up: Callable[..., HangingUpUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN the only channel, whose provider sends its status line and then closes
    upstream = hanging_up(drops=1, mode="after_headers")
    add_channel("only", upstream.base_url)
    # WHEN a call streams  THEN the stream fails (502) after one attempt: it may be generating
    items = streamed()
    assert [item.kind for item in items] == ["failed"]
    assert isinstance(items[0].error, UpstreamError)
    assert upstream.requests == 1


def test_with_another_channel_left_a_hang_up_fails_over_instead(
    hanging_up: Callable[..., HangingUpUpstream],
    upstreams: Callable[..., MockUpstream],
    add_channel: Callable[..., Any],
) -> None:
    # GIVEN a preferred channel that hangs up before answering, and a healthy fallback
    broken, healthy = hanging_up(drops=1), upstreams()
    add_channel("broken", broken.base_url, priority=10)
    add_channel("healthy", healthy.base_url, priority=0)
    # WHEN a call is forwarded  THEN the fallback answers; the broken channel had one attempt
    reply = forward()
    assert (reply.status, reply.channel) == (200, "healthy")
    assert (broken.requests, healthy.requests) == (1, 1)


def test_a_lone_media_channel_that_hangs_up_before_answering_gets_one_more_attempt(
    hanging_up: Callable[..., HangingUpUpstream], add_channel: Callable[..., Any]
) -> None:
    # GIVEN the only image channel, whose provider closes the first connection without answering
    upstream = hanging_up(drops=1)
    add_channel("only", upstream.base_url, models=("gpt-image-1",))
    # WHEN an image call is sent
    reply = media.send(
        "/images/generations",
        model="gpt-image-1",
        group="default",
        body_for=lambda model: json.dumps({"model": model, "prompt": "a cat"}).encode(),
        content_type="application/json",
        request_id="req_test",
        budget_seconds=30.0,
    )
    # THEN it is answered, after exactly two attempts
    assert (reply.status, reply.channel) == (200, "only")
    assert upstream.requests == 2
