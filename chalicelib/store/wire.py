"""A lean client for AWS's JSON APIs: every DynamoDB call of a relayed request, and the SSM read
of a channel's key.

Why: each relayed call makes five writes (two reservations, its log record, two settles), and
botocore spends 3 ms of CPU on every one of them here: its event hooks, endpoint rules, request
and response models, urllib3 and http.client. The requests are already in DynamoDB's own JSON,
so all they need is a SigV4 signature and a kept-alive connection: about a tenth of the CPU, and
on DynamoDB Local a quarter of the latency of the same write through botocore (``make bench``
figure 0 measures both side by side). And the relay need not import botocore at all, which is
most of a cold start (figure 8).

What it keeps from botocore, so that nothing about the money changes:

* the credentials: Lambda's, from the environment, as botocore's first provider reads them, or
  else the botocore client's own (``store/common.py`` decides), so role credentials refresh as
  they always did, and DynamoDB Local, which keeps a namespace per access key, sees the same
  tables;
* where it sends: the endpoint and signing region botocore resolves (``store/common.py``);
* the retries of botocore's legacy mode for DynamoDB, with the same five attempts: throttling,
  5xx answers, a broken or timed-out connection, a CRC32 that does not match the body. Only
  idempotent requests may be sent here, as botocore retries them in the same cases: every write
  of the ledger and the log record is conditional on its request id;
* the error codes: a refused write raises ``WireError`` with the code botocore's ``ClientError``
  would carry (``ConditionalCheckFailedException``...) and the item DynamoDB sent back with it.

Hooks, for tests and benchmarks that inject faults or count calls (the production path has none
registered and pays one empty check per event)::

    before-call.dynamodb.<Operation>   params, context      once, before the first attempt
    before-send.dynamodb.<Operation>   request, attempt     each attempt; may answer instead
    after-call.dynamodb.<Operation>    params, parsed, context, status   once, with the answer

A handler registered for ``before-send.dynamodb`` hears every operation, as with botocore.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import select
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Service:
    """An AWS JSON API: its signing name (also the hooks' prefix), target and content type."""

    name: str
    target_prefix: str
    content_type: str


DYNAMODB = Service("dynamodb", "DynamoDB_20120810.", "application/x-amz-json-1.0")
# SSM speaks the same protocol: the relay reads channel keys (SecureString) with GetParameter.
SSM = Service("ssm", "AmazonSSM.", "application/x-amz-json-1.1")
MAX_ATTEMPTS = 5
# botocore's legacy policy for DynamoDB backs off from 50 ms, doubling; here with full jitter,
# so writes that were throttled together do not all come back at the same instant.
BASE_DELAY_SECONDS = 0.05
# Codes botocore's legacy retry handler treats as throttling (its _retry.json), for DynamoDB.
THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
    }
)
RETRIED_STATUS = frozenset({429, 500, 502, 503, 504, 509})
# A kept-alive connection unused this long is replaced rather than trusted (botocore's urllib3
# only checks that the server has not closed it; a silent drop would cost a read timeout).
IDLE_SECONDS = 30.0


class _Closed(ConnectionError):
    """The server closed the connection before a whole answer came."""


class _Garbled(ConnectionError):
    """What came back is not an HTTP/1.1 answer: the connection is dropped, the call retried."""


class _NotSent(ConnectionError):
    """The connection failed while the request was being written: it never left."""


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


class WireError(Exception):
    """DynamoDB's refusal (``code`` as botocore names it), or no answer at all (status 0)."""

    def __init__(
        self, code: str, message: str, status: int, response: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status
        self.response = response or {}


@dataclass
class Request:
    """One signed attempt, as a ``before-send`` hook sees it."""

    url: str
    headers: dict[str, str]
    body: bytes


class Hooks:
    """Handlers by event name, botocore-style: ``a.b`` also hears ``a.b.c``."""

    def __init__(self) -> None:
        self._handlers: list[tuple[str, str | None, Callable[..., Any]]] = []
        self._lock = threading.Lock()

    def register(
        self, event: str, handler: Callable[..., Any], unique_id: str | None = None
    ) -> None:
        with self._lock:
            self._handlers = [*self._handlers, (event, unique_id, handler)]

    def register_first(
        self, event: str, handler: Callable[..., Any], unique_id: str | None = None
    ) -> None:
        with self._lock:
            self._handlers = [(event, unique_id, handler), *self._handlers]

    def unregister(
        self,
        event: str,
        handler: Callable[..., Any] | None = None,
        unique_id: str | None = None,
    ) -> None:
        with self._lock:
            self._handlers = [
                entry
                for entry in self._handlers
                if not (
                    entry[0] == event
                    and (unique_id is None or entry[1] == unique_id)
                    and (handler is None or entry[2] == handler)
                )
            ]

    def emit(self, event: str, **kwargs: Any) -> Any:
        """Call every matching handler in order; the first answer that is not None wins."""
        handlers = self._handlers  # replaced, never mutated: safe to read without the lock
        if not handlers:
            return None
        for name, _, handler in handlers:
            if event == name or event.startswith(name + "."):
                answer = handler(event_name=event, **kwargs)
                if answer is not None:
                    return answer
        return None


hooks = Hooks()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


class Wire:
    """One AWS JSON API (DynamoDB's unless told) over a kept-alive connection per thread."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = MAX_ATTEMPTS,
        ca_file: str | Callable[[], str | None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        service: Service = DYNAMODB,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an HTTP endpoint: {endpoint!r}")
        self.url = endpoint.rstrip("/") + "/"
        self.region = region
        self.service = service
        self._https = parts.scheme == "https"
        self._hostname = parts.hostname
        self._port = parts.port
        self._host = parts.netloc  # the Host header, signed as sent
        self._credentials = credentials
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_attempts = max(max_attempts, 1)
        self._sleep = sleep
        self._local = threading.local()
        self._ca_file = ca_file
        self._ssl: ssl.SSLContext | None = None  # made on the first connection (see _socket)
        self._signing_key: tuple[tuple[str, str], bytes] | None = None

    # The call --------------------------------------------------------------------------------
    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request, retried as botocore would; its parsed answer, or ``WireError``."""
        body, context = self._begun(operation, params)
        status, parsed = self._retried(operation, body)
        return self._ended(operation, params, context, status, parsed)

    def call_both(
        self, first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]]
    ) -> tuple[dict[str, Any] | WireError, dict[str, Any] | WireError]:
        """Two requests side by side from this one thread: both sent, each on a kept-alive
        connection of its own, then both answers read.

        A second thread would send the other just as well, but it must be woken first, and on
        busy cores that took up to 3 ms. Each request is retried on its own afterwards if its
        first attempt calls for it, as ``call`` retries it. Each parsed answer, or the
        ``WireError`` ``call`` would have raised for it; anything else (a hook's own
        exception) raises, as from ``call``.
        """
        pairs = (first, second)
        begun = [self._begun(operation, params) for operation, params in pairs]
        try:
            sent = [
                self._posted(operation, self._signed(operation, body), 1, slot)
                for slot, ((operation, _), (body, _)) in enumerate(zip(pairs, begun, strict=True))
            ]
            outcomes = [
                out if isinstance(out, tuple) else self._answered(out, slot)
                for slot, out in enumerate(sent)
            ]
        except BaseException:
            # (a hook's exception) An answer may be on its way on either connection: neither
            # may carry another request, which would read that answer as its own.
            self._drop(0)
            self._drop(1)
            raise
        answers: list[dict[str, Any] | WireError] = []
        for (operation, params), (body, context), outcome in zip(
            pairs, begun, outcomes, strict=True
        ):
            status, parsed = self._retried(operation, body, outcome)
            try:
                answers.append(self._ended(operation, params, context, status, parsed))
            except WireError as refused:
                answers.append(refused)
        return answers[0], answers[1]

    def _begun(self, operation: str, params: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        context: dict[str, Any] = {}
        hooks.emit(f"before-call.{self.service.name}.{operation}", params=params, context=context)
        return json.dumps(params, separators=(",", ":")).encode(), context

    def _retried(
        self, operation: str, body: bytes, first: tuple[int, dict[str, Any], bool] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """(status, parsed body) once an attempt needs no retry or the attempts ran out;
        ``first`` is the first attempt's outcome if it was made already."""
        attempt = 1
        outcome = first or self._attempt(operation, self._signed(operation, body), attempt)
        while outcome[2] and attempt < self._max_attempts:
            self._sleep(random.uniform(0, BASE_DELAY_SECONDS * 2 ** (attempt - 1)))
            attempt += 1
            outcome = self._attempt(operation, self._signed(operation, body), attempt)
        return outcome[0], outcome[1]

    def _ended(
        self,
        operation: str,
        params: dict[str, Any],
        context: dict[str, Any],
        status: int,
        parsed: dict[str, Any],
    ) -> dict[str, Any]:
        hooks.emit(
            f"after-call.{self.service.name}.{operation}",
            params=params,
            parsed=parsed,
            context=context,
            status=status,
        )
        if status == 200:
            return parsed
        raise _error(status, parsed)

    def _attempt(
        self, operation: str, request: Request, attempt: int
    ) -> tuple[int, dict[str, Any], bool]:
        """(status, parsed body, worth retrying) of one attempt; status 0 when nothing came."""
        sent = self._posted(operation, request, attempt, 0)
        return sent if isinstance(sent, tuple) else self._answered(sent, 0)

    def _posted(
        self, operation: str, request: Request, attempt: int, slot: int
    ) -> tuple[int, dict[str, Any], bool] | socket.socket:
        """The connection ``request`` went out on, or the attempt's outcome if it has one
        already (a hook answered, or the request could not be sent)."""
        event = f"before-send.{self.service.name}.{operation}"
        injected = hooks.emit(event, request=request, attempt=attempt)
        if injected is not None:
            return _outcome(injected.status_code, None, bytes(injected.content))
        try:
            return self._post(request, slot)
        except (OSError, ValueError) as exc:
            return _no_answer(exc)

    def _answered(self, sock: socket.socket, slot: int) -> tuple[int, dict[str, Any], bool]:
        try:
            status, crc, data = self._read(sock, slot)
        except (OSError, ValueError) as exc:  # ValueError: a length or chunk size not a number
            return _no_answer(exc)
        return _outcome(status, crc, data)

    # Signing (AWS Signature Version 4) --------------------------------------------------------
    def _signed(self, operation: str, body: bytes) -> Request:
        credentials = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers = {
            "Content-Type": self.service.content_type,
            "Host": self._host,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": self.service.target_prefix + operation,
        }
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        signed = sorted(name.lower() for name in headers)
        by_name = {name.lower(): value.strip() for name, value in headers.items()}
        canonical = "\n".join(
            [
                "POST",
                "/",
                "",
                "".join(f"{name}:{by_name[name]}\n" for name in signed),
                ";".join(signed),
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{day}/{self.region}/{self.service.name}/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = self._key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        )
        return Request(url=self.url, headers=headers, body=body)

    def _key(self, secret: str, day: str) -> bytes:
        """The day's signing key, derived once per day and secret (credentials rotate)."""
        cached = self._signing_key
        if cached is not None and cached[0] == (secret, day):
            return cached[1]
        key = _hmac(("AWS4" + secret).encode(), day)
        for part in (self.region, self.service.name, "aws4_request"):
            key = _hmac(key, part)
        self._signing_key = ((secret, day), key)
        return key

    # The connection ---------------------------------------------------------------------------
    # HTTP/1.1 by hand on a kept-alive socket: http.client parses each answer's headers with the
    # email package, which cost more CPU than everything else here. DynamoDB answers with a
    # Content-Length; chunked bodies are read too, anything else until the server closes.
    def _post(self, request: Request, slot: int = 0) -> socket.socket:
        """Write ``request`` on the thread's connection number ``slot``; that connection."""
        sock, reused = self._socket(slot)
        try:
            self._write(sock, request, slot)
            return sock
        except _NotSent:
            if not reused:
                raise
        # The kept-alive connection refused the request itself (the server had closed it), so
        # DynamoDB never saw it: a fresh connection, not a new attempt. Anything that fails once
        # the request is out is an attempt like any other: the write may have landed.
        sock, _ = self._socket(slot)
        self._write(sock, request, slot)
        return sock

    def _write(self, sock: socket.socket, request: Request, slot: int) -> None:
        head = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
        message = (
            f"POST / HTTP/1.1\r\n{head}Content-Length: {len(request.body)}\r\n\r\n".encode()
            + request.body
        )
        try:
            sock.sendall(message)
        except (ConnectionResetError, BrokenPipeError) as exc:
            self._drop(slot)
            raise _NotSent(str(exc)) from exc
        except BaseException:
            self._drop(slot)
            raise

    def _read(self, sock: socket.socket, slot: int) -> tuple[int, str | None, bytes]:
        try:
            status, headers, body = _read_response(sock)
        except BaseException:
            self._drop(slot)
            raise
        if headers.get("connection", "").lower() == "close":
            self._drop(slot)
        return status, headers.get("x-amz-crc32"), body

    def _socket(self, slot: int = 0) -> tuple[socket.socket, bool]:
        connections: dict[int, tuple[socket.socket, float]] | None = getattr(
            self._local, "connections", None
        )
        if connections is None:
            connections = self._local.connections = {}
        existing = connections.get(slot)
        if existing is not None:
            sock, used_at = existing
            if time.monotonic() - used_at < IDLE_SECONDS and not _readable(sock):
                connections[slot] = (sock, time.monotonic())
                return sock, True
            # Closed by the server (it sent its FIN, so the socket reads), or idle long enough
            # that a NAT or a frozen Lambda may have lost it without a word: a fresh one.
            self._drop(slot)
        sock = socket.create_connection(
            (self._hostname, self._port or (443 if self._https else 80)),
            timeout=self._connect_timeout,
        )
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                sock = self._tls().wrap_socket(sock, server_hostname=self._hostname)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        connections[slot] = (sock, time.monotonic())
        return sock, False

    def _tls(self) -> ssl.SSLContext:
        """Made when first needed: loading the certificate authorities takes tens of
        milliseconds, which a cold start should not pay before its first request."""
        if self._ssl is None:
            ca_file = self._ca_file() if callable(self._ca_file) else self._ca_file
            self._ssl = ssl.create_default_context(cafile=ca_file)
        return self._ssl

    def _drop(self, slot: int = 0) -> None:
        connections = getattr(self._local, "connections", None) or {}
        existing = connections.pop(slot, None)
        if existing is not None:
            existing[0].close()


def _no_answer(exc: BaseException) -> tuple[int, dict[str, Any], bool]:
    return 0, {"__type": "ConnectionError", "message": type(exc).__name__}, True


def _outcome(status: int, crc: str | None, data: bytes) -> tuple[int, dict[str, Any], bool]:
    """(status, parsed body, worth retrying) of an answer that came."""
    if crc is not None and crc != str(zlib.crc32(data) & 0xFFFFFFFF):
        return 0, {"__type": "CRC32Mismatch", "message": "the answer was damaged"}, True
    try:
        parsed = json.loads(data)
    except ValueError:  # (an empty body too: DynamoDB always answers with a JSON object)
        # A 200's body is never quoted: it may be a secret (an SSM parameter's value).
        shown = "" if status == 200 else data[:200].decode(errors="replace")
        parsed = {"__type": "UnparsableAnswer", "message": shown}
        # A success whose body cannot be read is no answer at all: retried, never returned.
        return (0 if status == 200 else status), parsed, status in {200, *RETRIED_STATUS}
    if not isinstance(parsed, dict):
        parsed = {}
    if status == 200:
        return status, parsed, False
    code = _code(parsed)
    return status, parsed, status in RETRIED_STATUS or code in THROTTLED


def _readable(sock: socket.socket) -> bool:
    """True if an idle kept-alive socket has something to read: the server's FIN (or junk)."""
    try:
        poller = select.poll()  # not select.select: it fails on descriptors past 1023
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """(status, headers by lower-case name, body) of one HTTP/1.1 answer."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        buffer += _recv(sock)
        if len(buffer) > 65536 and b"\r\n\r\n" not in buffer:
            raise _Garbled("an answer's headers over 64 KiB")
    raw_head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = raw_head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise _Garbled(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        body = _read_exactly(sock, rest, int(length))
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _read_chunked(sock, rest)
    else:
        body = _read_to_close(sock, rest)
        headers["connection"] = "close"
    return int(parts[1]), headers, body


def _read_exactly(sock: socket.socket, have: bytes, size: int) -> bytes:
    parts, got = [have], len(have)
    while got < size:
        chunk = _recv(sock)
        parts.append(chunk)
        got += len(chunk)
    data = b"".join(parts)
    if len(data) > size:
        raise _Garbled("more bytes than the answer's Content-Length")
    return data


def _read_chunked(sock: socket.socket, have: bytes) -> bytes:
    body: list[bytes] = []
    buffer = have
    while True:
        while b"\r\n" not in buffer:
            buffer += _recv(sock)
        size_line, _, buffer = buffer.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        while len(buffer) < size + 2:
            buffer += _recv(sock)
        if size == 0:
            # The last chunk; no trailers are expected from DynamoDB (the CRLF that ends them).
            while not buffer.startswith(b"\r\n") and b"\r\n\r\n" not in buffer:
                buffer += _recv(sock)
            return b"".join(body)
        body.append(buffer[:size])
        buffer = buffer[size + 2 :]


def _read_to_close(sock: socket.socket, have: bytes) -> bytes:
    parts = [have]
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def _recv(sock: socket.socket) -> bytes:
    """What the socket has (up to 64 KiB); the server closing before the answer ended is an
    error, never an empty read taken as the end."""
    chunk = sock.recv(65536)
    if not chunk:
        raise _Closed("closed before the whole answer came")
    return chunk


def _code(parsed: dict[str, Any]) -> str:
    return str(parsed.get("__type", "")).rsplit("#", 1)[-1]


def _error(status: int, parsed: dict[str, Any]) -> WireError:
    message = parsed.get("message") or parsed.get("Message") or ""
    code = _code(parsed) or f"HTTP{status}"
    if status == 429 and code not in THROTTLED:
        code = "ThrottlingException"  # (a 429 without DynamoDB's code: a proxy's, say)
    return WireError(code, str(message), status, parsed)
