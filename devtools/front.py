"""The local front door: the relay and the management API on one port, as API Gateway routes them.

Deployed, API Gateway sends ``/v1/*`` to the relay function (Starlette, streaming) and every
other path to Chalice. Locally this ASGI app does the same on one port: ``/v1/*`` is served by
the relay's app in this process, anything else is proxied to ``chalice local`` on an internal
port, its body streamed through as it comes::

    python -m devtools.front --host 127.0.0.1 --port 8000 --stage dev

starts ``chalice local`` (``devtools.chalice_local``) as a child on a free port, then serves. It
exits when that child does, so whoever started it notices.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from devtools.package import GATEWAY_RESPONSES

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are not passed on.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# Nor the backend's Date and Server: the front's own server writes its own.
NOT_PASSED_ON = HOP_BY_HOP | {"date", "server"}
BACKEND_UNAVAILABLE = b'{"error":{"message":"The management API is not up yet.","type":"server_error","param":null,"code":"service_unavailable"}}'  # noqa: E501
# Deployed, API Gateway answers a method a path does not define itself, before chalice's
# handler could (devtools.package's gateway responses); chalice local answers it in chalice's
# own shape. The front answers as API Gateway does.
UNKNOWN_ROUTE = GATEWAY_RESPONSES["MISSING_AUTHENTICATION_TOKEN"]["responseTemplates"][
    "application/json"
].encode()
# The request reached the management API, which broke off its answer: it may have been carried
# out (a key created, whose secret is then lost), so this is never "not up yet".
BACKEND_BROKE_OFF = b'{"error":{"message":"The management API broke off its answer; the request may have been carried out.","type":"server_error","param":null,"code":"bad_gateway"}}'  # noqa: E501


def is_relay_path(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class Front:
    """An ASGI app: ``/v1/*`` to ``relay``, everything else proxied to ``backend_url``."""

    def __init__(self, relay: Any, backend_url: str) -> None:
        self.relay = relay
        self.backend_url = backend_url.rstrip("/")
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            # Never through a proxy from the environment; chalice local may take its time.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(60.0), trust_env=False, follow_redirects=False
            )
        return self._client

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http" and is_relay_path(scope["path"]):
            await self.relay(scope, receive, send)
        elif scope["type"] == "http":
            await self._proxy(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._client is not None:
                    await self._client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _proxy(self, scope: Any, receive: Any, send: Any) -> None:
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        url = self.backend_url + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [
            (name, value)
            for name, value in scope["headers"]
            if name.decode("latin-1").lower() not in HOP_BY_HOP
        ]
        # HEAD goes on as GET and its body is dropped here: chalice local answers HEAD with a
        # 405 that carries a body, which the pooled connection would hand the next request as
        # its answer.
        head = scope["method"] == "HEAD"
        request = self.client().build_request(
            "GET" if head else scope["method"], url, headers=headers, content=bytes(body)
        )
        try:
            response = await self.client().send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):  # never reached it
            await _answer(send, 503, BACKEND_UNAVAILABLE)
            return
        except httpx.HTTPError:
            await _answer(send, 502, BACKEND_BROKE_OFF)
            return
        if response.status_code == 405:
            refused = await response.aread()
            await response.aclose()
            if b"MethodNotAllowedError" in refused:
                await _answer(send, 404, UNKNOWN_ROUTE)
            else:
                await _answer(send, 405, refused)
            return
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (name, value)
                        for name, value in response.headers.raw
                        if name.decode("latin-1").lower() not in NOT_PASSED_ON
                    ],
                }
            )
            async for chunk in response.aiter_raw():
                if not head:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()


async def _answer(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# Serving ------------------------------------------------------------------------------------
@dataclass
class Served:
    """A uvicorn server running in a thread of this process."""

    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app: Any, host: str, port: int) -> Served:
    """Serve ``app`` from a daemon thread; returns once it listens."""
    server = uvicorn.Server(_config(app, host, port))
    thread = threading.Thread(target=server.run, name=f"front-{port}", daemon=True)
    thread.start()
    for _ in range(200):  # up to 10 s: uvicorn binds in milliseconds
        if server.started or not thread.is_alive():
            break
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError(f"the front did not start on {host}:{port}")
    return Served(server, thread)


def _config(app: Any, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # Clients keep connections open between calls, as SDKs do; 32 at once must all be served.
        backlog=512,
        timeout_keep_alive=30,
        # The client is the socket's peer: a key's IP allow-list must not be met by an
        # X-Forwarded-For header the client writes itself (uvicorn trusts it from 127.0.0.1).
        proxy_headers=False,
    )


@contextlib.contextmanager
def front_for(backend_url: str, host: str, port: int) -> Iterator[Served]:
    """The relay plus a proxy to ``backend_url``, served on ``host:port`` while in the block."""
    from chalicelib.relay.app import app as relay_app

    served = serve_in_thread(Front(relay_app, backend_url), host, port)
    try:
        yield served
    finally:
        served.stop()


def main(argv: list[str] | None = None) -> int:
    from devtools.ddblocal import free_port
    from devtools.stack import REPO_ROOT, chalice_stage_environment

    parser = argparse.ArgumentParser(description="Sluice's relay and management API, one port.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--stage", default="dev")
    args = parser.parse_args(argv)

    internal = free_port()
    command = [sys.executable, "-m", "devtools.chalice_local", "--host", "127.0.0.1"]
    command += ["--port", str(internal), "--stage", args.stage, "--no-autoreload"]
    backend = subprocess.Popen(command, cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL)
    # The relay reads the same stage settings chalice local applies to the management API.
    os.environ.update(chalice_stage_environment(args.stage))
    from chalicelib.core.settings import reset_settings

    reset_settings()
    from chalicelib.relay.app import app as relay_app

    # Budget alerts: the tables' streams to the same handler Lambda runs in AWS, in a process of
    # its own as in AWS (a thread here would take the relay's interpreter lock while it polls).
    streams = subprocess.Popen(
        [sys.executable, "-m", "devtools.streams"], cwd=str(REPO_ROOT), stdin=subprocess.DEVNULL
    )
    server = uvicorn.Server(
        _config(Front(relay_app, f"http://127.0.0.1:{internal}"), args.host, args.port)
    )

    def watch_backend() -> None:
        backend.wait()
        server.should_exit = True

    threading.Thread(target=watch_backend, daemon=True).start()
    try:
        server.run()
    finally:
        for child in (streams, backend):
            if child.poll() is None:
                child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
