"""A lean DynamoDB client for the writes on every relayed call's path.

Why: each relayed call makes five writes (two reservations, its log record, two settles), and
botocore spends 2-3 ms of CPU on every one of them: its event hooks, endpoint rules, request and
response models, urllib3. The requests are already in DynamoDB's own JSON, so all they need is a
SigV4 signature and a kept-alive connection: a quarter of the CPU, and on DynamoDB Local half the
latency of the same write through botocore (``bench`` figure 0 measures both).

What it keeps from botocore, so that nothing about the money changes:

* the credentials: the botocore client's own (``store/common.py`` passes them in), so role
  credentials refresh as they always did, and DynamoDB Local, which keeps a namespace per access
  key, sees the same tables;
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
import http.client
import json
import random
import ssl
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
SERVICE = "dynamodb"
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
RETRIED_STATUS = frozenset({500, 502, 503, 504})
# A kept-alive connection the server has closed meanwhile fails like this on its next use.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


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
    """DynamoDB's JSON API over one kept-alive HTTP connection per thread."""

    def __init__(
        self,
        endpoint: str,
        region: str,
        credentials: Callable[[], Credentials],
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        max_attempts: int = MAX_ATTEMPTS,
        ca_file: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an HTTP endpoint: {endpoint!r}")
        self.url = endpoint.rstrip("/") + "/"
        self.region = region
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
        self._ssl = ssl.create_default_context(cafile=ca_file) if self._https else None
        self._signing_key: tuple[tuple[str, str], bytes] | None = None

    def serves(self, endpoint: str, region: str) -> bool:
        return (self.url, self.region) == (endpoint.rstrip("/") + "/", region)

    # The call --------------------------------------------------------------------------------
    def call(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send one request, retried as botocore would; its parsed answer, or ``WireError``."""
        context: dict[str, Any] = {}
        hooks.emit(f"before-call.dynamodb.{operation}", params=params, context=context)
        body = json.dumps(params, separators=(",", ":")).encode()
        attempt = 0
        while True:
            attempt += 1
            request = self._signed(operation, body)
            status, parsed, retry = self._attempt(operation, request, attempt)
            if not retry or attempt >= self._max_attempts:
                break
            self._sleep(random.uniform(0, BASE_DELAY_SECONDS * 2 ** (attempt - 1)))
        hooks.emit(
            f"after-call.dynamodb.{operation}",
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
        injected = hooks.emit(f"before-send.dynamodb.{operation}", request=request, attempt=attempt)
        try:
            if injected is not None:
                status, crc, data = injected.status_code, None, bytes(injected.content)
            else:
                status, crc, data = self._send(request)
        except (OSError, http.client.HTTPException) as exc:
            return 0, {"__type": "ConnectionError", "message": type(exc).__name__}, True
        if crc is not None and crc != str(zlib.crc32(data) & 0xFFFFFFFF):
            return 0, {"__type": "CRC32Mismatch", "message": "the answer was damaged"}, True
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {"__type": "UnparsableAnswer", "message": data[:200].decode(errors="replace")}
            return status or 0, parsed, status >= 500
        if not isinstance(parsed, dict):
            parsed = {}
        if status == 200:
            return status, parsed, False
        code = _code(parsed)
        return status, parsed, status in RETRIED_STATUS or code in THROTTLED

    # Signing (AWS Signature Version 4) --------------------------------------------------------
    def _signed(self, operation: str, body: bytes) -> Request:
        credentials = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = amz_date[:8]
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": self._host,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": TARGET_PREFIX + operation,
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
        scope = f"{day}/{self.region}/{SERVICE}/aws4_request"
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
        for part in (self.region, SERVICE, "aws4_request"):
            key = _hmac(key, part)
        self._signing_key = ((secret, day), key)
        return key

    # The connection ---------------------------------------------------------------------------
    def _send(self, request: Request) -> tuple[int, str | None, bytes]:
        connection, reused = self._connection()
        try:
            return self._exchange(connection, request)
        except _STALE:
            self._drop()
            if not reused:
                raise
        # The server had closed the kept-alive connection: nothing was sent, try a fresh one.
        connection, _ = self._connection()
        try:
            return self._exchange(connection, request)
        except BaseException:
            self._drop()
            raise

    def _exchange(
        self, connection: http.client.HTTPConnection, request: Request
    ) -> tuple[int, str | None, bytes]:
        try:
            connection.request("POST", "/", body=request.body, headers=request.headers)
            response = connection.getresponse()
            data = response.read()
        except BaseException:
            self._drop()
            raise
        if response.will_close:
            self._drop()
        return response.status, response.getheader("x-amz-crc32"), data

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        existing = getattr(self._local, "connection", None)
        if existing is not None:
            return existing, True
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._hostname, self._port, timeout=self._connect_timeout, context=self._ssl
            )
        else:
            connection = http.client.HTTPConnection(
                self._hostname, self._port, timeout=self._connect_timeout
            )
        connection.connect()
        if connection.sock is not None:
            connection.sock.settimeout(self._read_timeout)
        self._local.connection = connection
        return connection, False

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


def _code(parsed: dict[str, Any]) -> str:
    return str(parsed.get("__type", "")).rsplit("#", 1)[-1]


def _error(status: int, parsed: dict[str, Any]) -> WireError:
    message = parsed.get("message") or parsed.get("Message") or ""
    return WireError(_code(parsed) or f"HTTP{status}", str(message), status, parsed)


def default_endpoint(region: str) -> str:
    """DynamoDB's regional endpoint (the China regions have a domain of their own)."""
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"https://dynamodb.{region}.{domain}"
