"""A local OpenAI-compatible upstream for the demo, tests and benchmarks.

It answers deterministically (so tests can assert exact token counts and costs), can
inject upstream failures chosen by the request's model name (so tests can drive them
through the gateway without extra plumbing), and can add a fixed latency (so benchmarks
measure the gateway rather than a real provider). Standard library only, so it starts
in milliseconds and has nothing to install.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import re
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from devtools import mock_media

DEMO_MODELS = ("demo-chat", "demo-chat-large", "demo-embedding", "demo-slow")
# ``demo-slow`` streams its answer one word at a time, this far apart, so streaming can be seen
# with ``curl -N`` or in the console's Playground.
SLOW_WORD_SECONDS = 0.3
# A request can make ``demo-slow`` take this many seconds in all (OpenAI's ``metadata`` carries
# string values, and gateways pass it on): streamed, its words are spread over that time;
# whole, the answer comes after it. Long calls are then tried per request, not per server.
SLOW_DURATION_METADATA = "demo_duration_seconds"
MAX_SLOW_DURATION_SECONDS = 900.0
FAULT_MODELS = (
    "fail-500",
    "fail-429",
    "fail-timeout",
    "fail-reset",
    "fail-badjson",
    "fail-nousage",
    "fail-cut",
)
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3
REPLY_PREFIX = "Hello from the Sluice demo upstream. You said: "
ECHO_CHARS = 60
WORDS_PER_CHUNK = 3
EMBEDDING_DIMS = 8
MAX_BODY_BYTES = 10 * 1024 * 1024
SYSTEM_FINGERPRINT = "fp_sluice_demo"


def count_tokens(text: str) -> int:
    """The mock's whole tokenizer: one token per started group of four characters."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def message_text(message: Any) -> str:
    """Text of one chat message, whether ``content`` is a string or a list of parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        return "".join(parts)
    return ""


def prompt_tokens(messages: list[Any]) -> int:
    """Deterministic prompt size: a fixed overhead per message plus its text tokens."""
    return sum(TOKENS_PER_MESSAGE + count_tokens(message_text(m)) for m in messages)


def reply_for(messages: list[Any]) -> str:
    """Canned reply echoing the start of the last user message, so tests can tell calls apart."""
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            last_user = message_text(message)
            break
    return REPLY_PREFIX + last_user[:ECHO_CHARS]


def embedding_for(text: str) -> list[float]:
    """Eight stable floats in [-1, 1) derived from a hash of the input."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    values = struct.unpack(f">{EMBEDDING_DIMS}I", digest[: 4 * EMBEDDING_DIMS])
    return [round(v / 2**31 - 1.0, 6) for v in values]


def embedding_inputs(raw: Any) -> list[tuple[str, int]]:
    """Normalise every accepted ``input`` form to (hashable text, token count) pairs."""
    items: list[Any] = raw if isinstance(raw, list) else [raw]
    if items and all(isinstance(i, int) for i in items):
        # A single pre-tokenised input (list of token ids).
        return [(json.dumps(items), len(items))]
    out: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, str):
            out.append((item, count_tokens(item)))
        elif isinstance(item, list):
            out.append((json.dumps(item), len(item)))
        else:
            out.append((json.dumps(item), 1))
    return out


def slow_duration(body: dict[str, Any]) -> float | None:
    """The seconds ``demo-slow`` should take for this request, if the request says."""
    metadata = body.get("metadata")
    raw = metadata.get(SLOW_DURATION_METADATA) if isinstance(metadata, dict) else None
    try:
        seconds = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_SLOW_DURATION_SECONDS)


def split_pieces(text: str, words_per_piece: int = WORDS_PER_CHUNK) -> list[str]:
    """Split text into pieces of a few words each; joining them gives the text back."""
    words = re.findall(r"\s*\S+\s*", text)
    if not words:
        return [text] if text else []
    return ["".join(words[i : i + words_per_piece]) for i in range(0, len(words), words_per_piece)]


def openai_error(message: str, err_type: str, code: str | None = None) -> dict[str, Any]:
    """Error body in the exact shape the OpenAI API uses, so client SDKs parse it."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}


class _Server(ThreadingHTTPServer):
    """Threaded server tuned for many short local connections."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    owner: MockUpstream

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a stream it left, a call it gave up on) is the normal end of
        a connection here, not a traceback in ``make run``'s output; anything else is one."""
        if isinstance(sys.exc_info()[1], ConnectionError):  # BrokenPipe, ConnectionReset...
            return
        super().handle_error(request, client_address)

    def close_open_connections(self) -> None:
        """Hang up idle keep-alive connections so a stopped server really stops answering."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Routes the few OpenAI endpoints the gateway proxies."""

    protocol_version = "HTTP/1.1"  # keep-alive, so benchmarks do not measure TCP handshakes
    server_version = "SluiceMockUpstream/1.0"
    sys_version = ""
    disable_nagle_algorithm = True  # avoids 40 ms delayed-ACK stalls on small writes
    timeout = 120  # idle keep-alive connections are dropped after this many seconds
    server: _Server

    # --- plumbing -----------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; it costs time and clutters test output."""

    def address_string(self) -> str:
        """Never reverse-resolve the client address."""
        return str(self.client_address[0])

    @property
    def owner(self) -> MockUpstream:
        return self.server.owner

    def _send_json(
        self, status: int, body: Any, extra_headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps(body).encode("utf-8")
        self._send_bytes(status, payload, "application/json", extra_headers)

    def _send_bytes(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes | None:
        """Read the request body; None (after answering 4xx) when it cannot be read."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(400, openai_error("Bad Content-Length.", "invalid_request_error"))
            return None
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        key = self.owner.api_key
        if key is None or self.headers.get("Authorization", "") == f"Bearer {key}":
            return True
        self._send_json(
            401,
            openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
        )
        return False

    def _reset_connection(self) -> None:
        """Drop the connection with a TCP RST, like a crashed load balancer would."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The fd is only really closed once the reader made by makefile() is closed too.
            self.rfile.close()
            self.connection.close()

    def _send_truncated(self, status: int, payload: bytes, content_type: str) -> None:
        """Promise a full body, send half, then hang up."""
        self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload[: len(payload) // 2])
        # A graceful FIN (not RST) so the client surely receives the half it was sent.
        self.close_connection = True

    # --- routing ------------------------------------------------------------------------

    def _media(self, method: str) -> bool:
        """Images, audio and video (``devtools.mock_media``); True when the path was one."""
        path = self.path.split("?", 1)[0].rstrip("/")
        if not mock_media.handles(path):
            return False
        raw = self._read_body() if method != "GET" else b""
        if raw is not None and self._authorized():
            mock_media.MediaEndpoints(self).serve(method, path, raw)
        return True

    def do_GET(self) -> None:
        self.owner._count()
        if self._media("GET"):
            return
        if not self._authorized():
            return
        if self.path.rstrip("/") == "/v1/models":
            created = int(time.time())
            data = [
                {"id": m, "object": "model", "created": created, "owned_by": "sluice-demo"}
                for m in DEMO_MODELS
            ]
            self._send_json(200, {"object": "list", "data": data})
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/responses/"):
            from devtools import mock_surface

            mock_surface.stored_response(self, "GET", path)
            return
        from devtools import mock_conversations  # imports this module's helpers

        if mock_conversations.handles(path):
            mock_conversations.serve(self, "GET", None)
            return
        self._send_json(404, openai_error(f"Unknown path {self.path}", "invalid_request_error"))

    def do_DELETE(self) -> None:
        from devtools import mock_surface

        self.owner._count()
        if self._media("DELETE"):
            return
        if not self._authorized():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith(mock_surface.RESPONSES_PREFIX):
            mock_surface.stored_response(self, "DELETE", path)
            return
        from devtools import mock_conversations  # imports this module's helpers

        if mock_conversations.handles(path):
            mock_conversations.serve(self, "DELETE", None)
            return
        self._send_json(404, openai_error(f"Unknown path {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        self.owner._count()
        if self._media("POST"):
            return
        raw = self._read_body()
        if raw is None:
            return
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        self.owner._remember(body)
        if not self._authorized():
            return
        if not isinstance(body, dict):
            self._send_json(
                400, openai_error("We could not parse the JSON body.", "invalid_request_error")
            )
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        from devtools import mock_conversations  # imports this module's helpers

        if mock_conversations.handles(path):
            mock_conversations.serve(self, "POST", body)
            return
        from devtools import mock_surface  # the Responses API, completions, moderations

        surface = mock_surface.handles(path)
        if path not in ("/v1/chat/completions", "/v1/embeddings") and not surface:
            self._send_json(404, openai_error(f"Unknown path {self.path}", "invalid_request_error"))
            return
        if not self.owner._pause(self.owner.delay_ms / 1000.0) or not self.owner._held():
            self._reset_connection()
            return
        model = str(body.get("model") or "")
        if self._generic_fault(model):
            return
        if surface:
            mock_surface.post(self, path, body, model)
        elif path == "/v1/chat/completions":
            self._chat(body, model)
        else:
            self._embeddings(body, model)

    def _generic_fault(self, model: str) -> bool:
        """Apply the faults that look the same on every endpoint; True when one was applied."""
        if model == "fail-500":
            self._send_json(
                500,
                openai_error(
                    "The server had an error while processing your request.", "server_error"
                ),
            )
        elif model == "fail-429":
            self._send_json(
                429,
                openai_error("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
            )
        elif model == "fail-timeout":
            if not self.owner._pause(self.owner.hang_seconds):
                self._reset_connection()
                return True
            return False  # a client patient enough gets a normal answer
        elif model == "fail-reset":
            self._reset_connection()
        elif model == "fail-badjson":
            self._send_bytes(200, b"<html>upstream proxy error</html>{not json", "application/json")
        else:
            return False
        return True

    # --- endpoints ----------------------------------------------------------------------

    def _chat(self, body: dict[str, Any], model: str) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._send_json(
                400,
                openai_error("'messages' must be a non-empty array.", "invalid_request_error"),
            )
            return
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            self._send_json(
                400,
                openai_error("max_tokens must be a positive integer.", "invalid_request_error"),
            )
            return
        reply = reply_for(messages)
        finish_reason = "stop"
        if limit is not None and count_tokens(reply) > limit:
            reply = reply[: limit * CHARS_PER_TOKEN]
            finish_reason = "length"
        p_tokens = prompt_tokens(messages)
        c_tokens = count_tokens(reply)
        usage = {
            "prompt_tokens": p_tokens,
            "completion_tokens": c_tokens,
            "total_tokens": p_tokens + c_tokens,
        }
        with_usage = model != "fail-nousage"
        duration = slow_duration(body) if model == "demo-slow" else None
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        if body.get("stream") is True:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            self._stream_chat(
                completion_id,
                created,
                model,
                reply,
                finish_reason,
                usage if (include_usage and with_usage) else None,
                cut=model == "fail-cut",
                duration=duration,
            )
            return
        if duration is not None and not self.owner._pause(duration):
            self._reset_connection()
            return
        response: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if with_usage:
            response["usage"] = usage
        if model == "fail-cut":
            self._send_truncated(200, json.dumps(response).encode("utf-8"), "application/json")
            return
        self._send_json(200, response)

    def _stream_chat(
        self,
        completion_id: str,
        created: int,
        model: str,
        reply: str,
        finish_reason: str,
        usage: dict[str, int] | None,
        cut: bool,
        duration: float | None = None,
    ) -> None:
        """Server-sent events with chunked transfer encoding, as the OpenAI API sends them."""

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": SYSTEM_FINGERPRINT,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        # Paced streams go a word per event, a gap apart after the first: ``demo-slow``'s, and
        # every one on a server started with ``stream_word_seconds`` (the benchmarks').
        paced_server = self.owner.stream_word_seconds
        slow = model == "demo-slow" or paced_server is not None
        events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": ""}, None)]
        pieces = split_pieces(reply, 1 if slow else WORDS_PER_CHUNK)
        events += [chunk({"content": piece}, None) for piece in pieces]
        if duration is not None:
            gap = duration / max(1, len(pieces) - 1)
        else:
            gap = SLOW_WORD_SECONDS if model == "demo-slow" else (paced_server or 0.0)
        events.append(chunk({}, finish_reason))
        if usage is not None:
            events.append({**chunk({}, None), "choices": [], "usage": usage})

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if cut:
            # Role chunk plus two content chunks, then the connection just goes away.
            for event in events[:3]:
                self._write_event(event)
            self.close_connection = True
            return
        for index, event in enumerate(events):
            if slow and 1 < index <= len(pieces) and not self.owner._pause(gap):
                self.close_connection = True
                return
            self._write_event(event)
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _write_event(self, event: dict[str, Any]) -> None:
        self._write_chunk(b"data: " + json.dumps(event).encode("utf-8") + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk per write so each SSE event reaches the client immediately."""
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")

    def _embeddings(self, body: dict[str, Any], model: str) -> None:
        if "input" not in body:
            self._send_json(400, openai_error("'input' is required.", "invalid_request_error"))
            return
        inputs = embedding_inputs(body["input"])
        data = [
            {"object": "embedding", "index": i, "embedding": embedding_for(text)}
            for i, (text, _) in enumerate(inputs)
        ]
        tokens = sum(n for _, n in inputs)
        response: dict[str, Any] = {"object": "list", "data": data, "model": model}
        if model != "fail-nousage":
            response["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        if model == "fail-cut":
            self._send_truncated(200, json.dumps(response).encode("utf-8"), "application/json")
            return
        self._send_json(200, response)


class MockUpstream:
    """An in-process fake OpenAI upstream served from a daemon thread."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        delay_ms: int = 0,
        hang_seconds: float = 30.0,
        stream_word_seconds: float | None = None,
    ) -> None:
        self.host = host
        self.stream_word_seconds = stream_word_seconds
        self.port = port
        self.api_key = api_key
        self.delay_ms = delay_ms
        self.hang_seconds = hang_seconds
        self.last_body: Any = None
        # Images, audio and video (devtools.mock_media): the last upload's files, the jobs,
        # and how many retrievals a video job takes to complete.
        self.last_files: dict[str, bytes] = {}
        self.video_jobs: dict[str, dict[str, Any]] = {}
        self.video_polls = 2
        # Stored Responses (devtools/mock_surface.py): id -> (response, input items).
        self.responses: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        # Conversations (devtools/mock_conversations.py): id -> its object and items.
        self.conversations: dict[str, dict[str, Any]] = {}
        self._requests = 0
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._release: threading.Event | None = None
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- state shared with handler threads ----------------------------------------------

    @property
    def requests(self) -> int:
        """How many HTTP requests arrived (including faulted and unauthorised ones)."""
        with self._lock:
            return self._requests

    def _count(self) -> None:
        with self._lock:
            self._requests += 1
            self._arrived.notify_all()

    def hold_calls(self) -> threading.Event:
        """From now on every POST waits (up to ``hang_seconds``) until the returned event is
        set: calls stay in flight for as long as a test needs them to."""
        release = threading.Event()
        with self._lock:
            self._release = release
        return release

    def wait_for_requests(self, count: int, timeout: float) -> bool:
        """True once ``count`` requests have arrived; False if ``timeout`` seconds pass first."""
        with self._lock:
            return self._arrived.wait_for(lambda: self._requests >= count, timeout)

    def _held(self) -> bool:
        """Wait for a test's release, if one is holding calls; False when the server stops."""
        with self._lock:
            release = self._release
        if release is not None:
            release.wait(self.hang_seconds)
        return not self._stopping.is_set()

    def _remember(self, body: Any) -> None:
        with self._lock:
            self.last_body = body

    def _pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; False when the server is stopping (cut the sleep short)."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def reset(self) -> None:
        """Forget counters and the last body, so one server can be shared by many tests."""
        with self._lock:
            self._requests = 0
            self.last_body = None

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The OpenAI-style base URL, including ``/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> MockUpstream:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port))
        server.owner = self
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mock-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port; hanging fault handlers wake up and exit."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def __enter__(self) -> MockUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM (``make run`` uses this as the demo provider)."""
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible demo upstream.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--api-key", default=None, help="require this bearer token")
    parser.add_argument("--delay-ms", type=int, default=0, help="fixed latency per request")
    parser.add_argument("--hang-seconds", type=float, default=30.0, help="for fail-timeout")
    parser.add_argument(
        "--stream-word-ms",
        type=float,
        default=None,
        help="stream every chat answer a word per event, this far apart (like demo-slow)",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=24 * 3600.0, help="exit after this long anyway"
    )
    args = parser.parse_args(argv)
    done = threading.Event()

    def _on_signal(signum: int, frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    upstream = MockUpstream(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        delay_ms=args.delay_ms,
        hang_seconds=args.hang_seconds,
        stream_word_seconds=None if args.stream_word_ms is None else args.stream_word_ms / 1000,
    ).start()
    print(upstream.base_url, flush=True)
    try:
        done.wait(timeout=args.max_seconds)
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
