"""An upstream whose stream the test paces: it sends the first events, then waits for the test.

Modes (per server):
- ``hold``: role + first content event, then waits for ``release`` (or for the relay to hang
  up, which it records in ``hung_up``), then the rest, usage if asked, ``[DONE]``;
- ``silent``: headers, then nothing until ``release``, then the whole stream;
- ``cut``: role + first content event, then the connection just closes;
- ``cut_early``: headers, then the connection closes before any event;
- ``fail``: HTTP 500.
"""

from __future__ import annotations

import json
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ["Streaming ", "words ", "arrive ", "one ", "by ", "one."]
USAGE = {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
WAIT_LIMIT_SECONDS = 30.0  # never hold a test for ever


class HeldUpstream:
    def __init__(self, mode: str = "hold") -> None:
        self.mode = mode
        self.release = threading.Event()
        self.hung_up = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                with owner._lock:
                    owner.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                owner.serve(self, body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> HeldUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    # One call ------------------------------------------------------------------------------
    def serve(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if self.mode == "fail":
            payload = b'{"error":{"message":"boom","type":"server_error"}}'
            handler.send_response(500)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        model = str(body.get("model"))
        events = [_chunk(model, {"role": "assistant", "content": ""})]
        events += [_chunk(model, {"content": word}) for word in WORDS]
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            events.append({**_chunk(model, None), "choices": [], "usage": USAGE})
        try:
            if self.mode == "cut_early":
                return
            if self.mode == "silent":
                self.release.wait(WAIT_LIMIT_SECONDS)
                self._write_all(handler, events, last=True)
                return
            self._write_all(handler, events[:2], last=False)
            if self.mode == "cut":
                return
            if not self._hold(handler.connection):
                self.hung_up.set()
                return
            self._write_all(handler, events[2:], last=True)
        except OSError:
            self.hung_up.set()

    def _hold(self, connection: socket.socket) -> bool:
        """Wait for ``release``; False as soon as the client (the relay) hangs up."""
        for _ in range(int(WAIT_LIMIT_SECONDS / 0.05)):
            if self.release.wait(0.05):
                return True
            readable, _, _ = select.select([connection], [], [], 0)
            if readable and connection.recv(1, socket.MSG_PEEK) == b"":
                return False
        return True

    def _write_all(
        self, handler: BaseHTTPRequestHandler, events: list[dict[str, Any]], *, last: bool
    ) -> None:
        for event in events:
            _write_chunk(handler, b"data: " + json.dumps(event).encode() + b"\n\n")
        if last:
            _write_chunk(handler, b"data: [DONE]\n\n")
            _write_chunk(handler, b"")


def _write_chunk(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _chunk(model: str, delta: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-held",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": None}],
    }
