"""The local front door (devtools.front): /v1/* to the relay, the rest proxied and streamed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from support import free_port

from devtools.front import Front, Served, serve_in_thread

RELEASE_LIMIT_SECONDS = 30.0


class Backend:
    """A management API stand-in: GET /slow sends a first chunk, then waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.seen.append(
                    ("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                if self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self._chunk(b"first,")
                    owner.release.wait(RELEASE_LIMIT_SECONDS)
                    self._chunk(b"second")
                    self._chunk(b"")
                    return
                self._json(201, b'{"where":"backend"}', X_Backend="yes")

            def do_HEAD(self) -> None:
                # As chalice local answers HEAD: a 405 that carries a body, which a HEAD
                # response must not (RFC 9110 9.3.2), left on the connection for the next answer.
                owner.seen.append(("HEAD", self.path, {}))
                self._json(405, b'{"Code":"MethodNotAllowedError"}')

            def do_PUT(self) -> None:
                # As chalice local answers a method the path does not have.
                self._json(405, b'{"Code":"MethodNotAllowedError","Message":"Unsupported method"}')

            def _json(self, status: int, body: bytes, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


async def fake_relay(scope: Any, receive: Any, send: Any) -> None:
    body = f"relay saw {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@pytest.fixture
def backend() -> Iterator[Backend]:
    running = Backend()
    yield running
    running.stop()


@pytest.fixture
def front(backend: Backend) -> Iterator[str]:
    port = free_port()
    served: Served = serve_in_thread(Front(fake_relay, backend.url), "127.0.0.1", port)
    yield f"http://127.0.0.1:{port}"
    served.stop()


def test_v1_paths_go_to_the_relay_and_the_rest_to_the_backend(front: str, backend: Backend) -> None:
    relayed = httpx.get(f"{front}/v1/models", timeout=10)
    proxied = httpx.get(f"{front}/account?x=1", headers={"Authorization": "Bearer k"}, timeout=10)
    assert relayed.text == "relay saw /v1/models"
    assert (proxied.status_code, proxied.json()) == (201, {"where": "backend"})
    assert proxied.headers["X-Backend"] == "yes"
    [(method, path, headers)] = backend.seen
    assert (method, path, headers["authorization"]) == ("GET", "/account?x=1", "Bearer k")


def test_a_proxied_body_is_streamed_through_as_it_comes(front: str, backend: Backend) -> None:
    # GIVEN a backend that sends a first chunk and holds the rest
    with httpx.stream("GET", f"{front}/slow", timeout=10) as response:
        chunks = response.iter_raw()
        # THEN the first chunk arrives while the backend still holds the rest
        assert next(chunks) == b"first,"
        assert not backend.release.is_set()
        backend.release.set()
        assert b"".join(chunks) == b"second"


def test_a_backend_that_is_down_is_an_openai_shaped_503(backend: Backend) -> None:
    port = free_port()
    served = serve_in_thread(
        Front(fake_relay, f"http://127.0.0.1:{free_port()}"), "127.0.0.1", port
    )
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        served.stop()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"


def test_head_is_answered_as_get_without_a_body_and_the_next_call_is_unharmed(
    front: str, backend: Backend
) -> None:
    with httpx.Client(timeout=10, trust_env=False) as client:
        # WHEN a client asks HEAD (curl -I, a link checker, a load balancer's probe)
        head = client.head(f"{front}/console")
        # THEN it gets what GET would answer, headers only
        assert (head.status_code, head.content) == (201, b"")
        assert head.headers["X-Backend"] == "yes"
        # AND the calls after it on the front are answered as ever
        for _ in range(3):
            after = client.get(f"{front}/account")
            assert (after.status_code, after.json()) == (201, {"where": "backend"})
    assert [method for method, _, _ in backend.seen] == ["GET"] * 4


def test_a_backend_that_breaks_off_an_answer_is_a_502_not_not_up_yet(backend: Backend) -> None:
    # A request that reached the backend may have been carried out: "not up yet" would be false.
    front = Front(fake_relay, backend.url)
    port = free_port()

    class Broken(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise httpx.RemoteProtocolError("the server closed the connection mid-answer")

    front._client = httpx.AsyncClient(transport=Broken())
    served = serve_in_thread(front, "127.0.0.1", port)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/tokens", json={}, timeout=10)
    finally:
        served.stop()
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "bad_gateway" and "may have been carried out" in error["message"]


def test_a_method_the_path_lacks_is_answered_as_api_gateway_answers_it(front: str) -> None:
    # Deployed, API Gateway answers a method a path does not define itself (the template's
    # gateway response), before chalice's handler could: the local front answers the same.
    response = httpx.put(f"{front}/tokens", json={}, timeout=10)
    assert response.status_code == 404
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "not_found" and "Unknown path or method" in error["message"]


def test_a_forwarded_for_header_does_not_change_who_the_relay_sees_calling() -> None:
    # A key's IP allow-list is checked against the client the relay sees: a header a client
    # writes itself must not name it (deployed, the relay reads API Gateway's sourceIp).
    seen: list[Any] = []

    async def relay(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["client"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    port = free_port()
    served = serve_in_thread(Front(relay, "http://127.0.0.1:9"), "127.0.0.1", port)
    try:
        headers = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https"}
        httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=headers, timeout=10)
    finally:
        served.stop()
    [(host, _port)] = seen
    assert host == "127.0.0.1"


def test_a_proxied_answer_carries_one_date_and_one_server_header(front: str) -> None:
    # The front's server writes its own; the backend's are not passed on besides
    response = httpx.get(f"{front}/account", timeout=10)
    assert response.status_code == 201
    assert len(response.headers.get_list("date")) == 1
    assert len(response.headers.get_list("server")) == 1
