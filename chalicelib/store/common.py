"""Helpers shared by the store modules: cursors, error translation, low-level calls."""

from __future__ import annotations

import base64
import binascii
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from chalicelib.core.errors import InvalidRequest, ServiceUnavailable, TooManyRequests
from chalicelib.core.records import Page
from chalicelib.core.settings import Settings
from chalicelib.store import tables, wire

# PynamoDB and botocore are imported where they are used, never at the top: the relay sends
# every call through ``send`` on the lean client and never loads them (see tables.py).
if TYPE_CHECKING:
    from pynamodb.connection import Connection
    from pynamodb.models import Model
    from pynamodb.transactions import TransactWrite

THROTTLE_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
}


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, expected: dict[str, str] | None = None) -> dict | None:
    """The ExclusiveStartKey behind a cursor; 400 if it was not made by us for this listing.

    ``expected`` pins attributes (e.g. the account id) so a cursor from another account's listing
    cannot be replayed here.
    """
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not valid.", param="cursor") from exc
    if not isinstance(key, dict) or not all(
        isinstance(v, dict) and len(v) == 1 for v in key.values()
    ):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    for name, value in (expected or {}).items():
        if key.get(name) != {"S": value}:
            raise InvalidRequest("cursor is not valid.", param="cursor")
    return key


_INTEGER = re.compile(r"-?[0-9]{1,20}")


def is_listing_position(
    key: dict[str, Any], *, strings: tuple[str, ...], numbers: tuple[str, ...]
) -> bool:
    """True if a decoded cursor has exactly the attributes of a GSI position, typed as such.

    Anything else would reach DynamoDB as an ExclusiveStartKey it refuses with a
    ValidationException, i.e. a 5xx for what is really a bad cursor.
    """
    if set(key) != {*strings, *numbers}:
        return False
    for name in strings:
        value = key[name].get("S")
        if not isinstance(value, str) or not 0 < len(value) <= 256:
            return False
    for name in numbers:
        value = key[name].get("N")
        if not isinstance(value, str) or not _INTEGER.fullmatch(value):
            return False
    return True


M = TypeVar("M")
R = TypeVar("R")


def take_page(
    results: Iterable[M],
    limit: int,
    convert: Callable[[M], R],
    position: Callable[[M], dict[str, Any]],
) -> Page:
    """Up to ``limit`` items of a Query, and a cursor just after the last one *returned*.

    Not DynamoDB's LastEvaluatedKey: with a filter or a page size above ``limit`` that points
    past items the caller never saw, and the next page would skip them.
    """
    items: list[R] = []
    for item in results:
        items.append(convert(item))
        if len(items) == limit:
            return Page(items=items, next_cursor=encode_cursor(position(item)))
    return Page(items=items, next_cursor=None)


def aws_errors() -> tuple[type[Exception], ...]:
    """What a failed AWS call raises (DynamoDB's, or SSM's for a secret): the lean client's
    ``WireError``, and botocore's and PynamoDB's exceptions once those libraries are loaded.
    Looked up, not imported: until they are loaded nothing can raise them, and the relay never
    loads them."""
    errors: list[type[Exception]] = [wire.WireError]
    botocore_errors = sys.modules.get("botocore.exceptions")
    if botocore_errors is not None:
        # BotoCoreError: no answer at all (a timeout, a refused connection, no credentials),
        # which PynamoDB wrapped like a ClientError before ``send`` called botocore directly.
        errors += [botocore_errors.ClientError, botocore_errors.BotoCoreError]
    pynamodb_errors = sys.modules.get("pynamodb.exceptions")
    if pynamodb_errors is not None:
        errors.append(pynamodb_errors.PynamoDBException)
    return tuple(errors)


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code behind a pynamodb, botocore or lean-client exception, if any."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, wire.WireError):
            return cause.code
        if isinstance(cause, aws_errors()):
            code = getattr(cause, "cause_response_code", None)  # PynamoDB's
            if code:
                return str(code)
            response = getattr(cause, "response", None)  # botocore's ClientError
            if isinstance(response, dict) and "Error" in response:
                return str(response["Error"].get("Code"))
        cause = cause.__cause__
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Turn DynamoDB failures nobody handled into our errors, keeping ``__cause__``."""
    try:
        yield
    except aws_errors() as exc:
        if error_code(exc) in THROTTLE_CODES:
            raise TooManyRequests() from exc
        raise ServiceUnavailable() from exc


def connection() -> Connection:
    """The low-level PynamoDB connection (one botocore client) shared by every table."""
    from chalicelib.store.models import Token

    return Token._get_connection().connection


# The lean client (``wire.py``) for every call of a relayed request. Made on first use: from the
# environment where that says all (Lambda's), else from what botocore resolved; None until then,
# or for good when botocore must carry every call.
_lean: wire.Wire | None = None
_lean_wanted = False
_lean_settings: Settings | None = None
_lean_lock = threading.Lock()
_METHODS = {
    "UpdateItem": "update_item",
    "PutItem": "put_item",
    "GetItem": "get_item",
    "DeleteItem": "delete_item",
    "Query": "query",
    "BatchGetItem": "batch_get_item",
}


def configure_wire(settings: Settings) -> None:
    """Use the lean client unless the settings chose botocore (made at the first call)."""
    global _lean, _lean_wanted, _lean_settings
    with _lean_lock:
        _lean, _lean_wanted = None, settings.dynamodb_client != "botocore"
        _lean_settings = settings


def _lean_client() -> wire.Wire | None:
    global _lean, _lean_wanted
    if _lean is not None or not _lean_wanted:
        return _lean
    with _lean_lock:
        if _lean is None and _lean_wanted:
            _lean = _wire_from_environment(_lean_settings) or _wire_like_botocore()
            _lean_wanted = _lean is not None
    return _lean


# What would make botocore resolve credentials, endpoint or TLS differently from the plain
# environment: a profile or config file, FIPS or dual-stack endpoints, configured endpoints
# turned off. With any of them set, botocore resolves and the lean client follows it.
_BOTOCORE_DECIDES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
# The regions of the aws and aws-cn partitions, whose DynamoDB endpoint is a plain pattern
# (tests compare it with botocore's resolver); any other partition is left to botocore.
_PLAIN_REGION = re.compile(r"(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-[0-9]+")
_CHINA_REGION = re.compile(r"cn-[a-z]+-[0-9]+")


def _wire_from_environment(settings: Settings | None) -> wire.Wire | None:
    """A lean DynamoDB client made without botocore, as in Lambda (see ``from_environment``);
    ``SLUICE_DYNAMODB_ENDPOINT`` first, as PynamoDB hands it to botocore."""
    if settings is None:
        return None
    return from_environment(wire.DYNAMODB, settings.region, settings.dynamodb_endpoint)


def from_environment(
    service: wire.Service, region: str, endpoint: str | None = None
) -> wire.Wire | None:
    """A lean client for ``service`` made without botocore, as in Lambda: credentials in the
    environment, the endpoint ``endpoint``, ``AWS_ENDPOINT_URL_<SERVICE>`` / ``AWS_ENDPOINT_URL``
    or the region's own, ``AWS_CA_BUNDLE`` or certifi's authorities (botocore's defaults). None
    where botocore would decide otherwise: a profile or config file, FIPS or dual-stack, another
    partition, a proxy. Importing botocore is most of the relay's cold start."""
    env = os.environ
    if not (env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY")):
        return None
    if any(env.get(name) for name in _BOTOCORE_DECIDES):
        return None
    if os.path.exists(os.path.expanduser(os.path.join("~", ".aws", "config"))):
        return None
    endpoint = (
        endpoint
        or env.get(f"AWS_ENDPOINT_URL_{service.name.upper()}")
        or env.get("AWS_ENDPOINT_URL")
        or _regional_endpoint(service.name, region)
    )
    if endpoint is None or _proxied(endpoint):
        return None
    # As botocore's environment provider reads them, the legacy AWS_SECURITY_TOKEN included.
    token = env.get("AWS_SESSION_TOKEN") or env.get("AWS_SECURITY_TOKEN") or None
    credentials = wire.Credentials(env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"], token)
    return wire.Wire(
        endpoint,
        region,
        lambda: credentials,
        connect_timeout=tables.CONNECT_TIMEOUT_SECONDS,
        read_timeout=tables.READ_TIMEOUT_SECONDS,
        max_attempts=tables.MAX_ATTEMPTS,
        ca_file=env.get("AWS_CA_BUNDLE") or _certifi_bundle(),
        service=service,
    )


def _regional_endpoint(service: str, region: str) -> str | None:
    if _PLAIN_REGION.fullmatch(region):
        return f"https://{service}.{region}.amazonaws.com"
    if _CHINA_REGION.fullmatch(region):
        return f"https://{service}.{region}.amazonaws.com.cn"
    return None


def _proxied(endpoint: str) -> bool:
    """True if the environment sends ``endpoint`` through a proxy (as botocore reads it)."""
    from urllib.parse import urlsplit
    from urllib.request import getproxies, proxy_bypass

    parts = urlsplit(endpoint)
    proxies = getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass(parts.netloc)


def _certifi_bundle() -> str | None:
    """botocore's default certificate authorities: certifi's, when it is installed."""
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def _wire_like_botocore() -> wire.Wire | None:
    """A lean client aimed where the shared botocore client is: the endpoint botocore resolved
    (``SLUICE_DYNAMODB_ENDPOINT``, ``AWS_ENDPOINT_URL_DYNAMODB``, FIPS, dual-stack, the
    partition's domain) and its signing region, with its timeouts, attempts and certificate
    authorities. None (botocore carries every call) when botocore would go through a proxy,
    which the lean client does not speak."""
    from botocore.utils import get_environ_proxies

    client = connection().client
    endpoint = str(client.meta.endpoint_url)
    if getattr(client.meta.config, "proxies", None) or get_environ_proxies(endpoint):
        return None
    return wire.Wire(
        endpoint,
        str(client.meta.region_name),
        _signing_credentials,
        connect_timeout=tables.CONNECT_TIMEOUT_SECONDS,
        read_timeout=tables.READ_TIMEOUT_SECONDS,
        max_attempts=tables.MAX_ATTEMPTS,
        ca_file=_ca_bundle,
    )


def _ca_bundle() -> str | None:
    """The certificate authorities botocore verifies DynamoDB with: AWS_CA_BUNDLE or the
    ca_bundle of the AWS config when set, else its default bundle."""
    from botocore.httpsession import get_cert_path

    configured = connection().session.get_config_variable("ca_bundle")
    return str(configured) if configured else (get_cert_path(True) or None)


def _signing_credentials() -> wire.Credentials:
    """The very credentials the shared botocore client signs with (botocore refreshes them)."""
    credentials = connection().client._request_signer._credentials
    if credentials is None:
        raise wire.WireError("NoCredentials", "no AWS credentials were found", 0)
    frozen = credentials.get_frozen_credentials()
    return wire.Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)


def hook_registries() -> tuple[Any, wire.Hooks]:
    """The event hooks of both clients the store sends through, botocore's and the lean one
    (same registration calls, same ``before-send`` / ``after-call`` names): for tests and
    benchmarks that count calls or inject faults."""
    return connection().client.meta.events, wire.hooks


def send(operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """One low-level DynamoDB call, in DynamoDB's JSON: on the lean client unless it is off."""
    lean = _lean_client()
    if lean is not None:
        return lean.call(operation, request)
    answer: dict[str, Any] = getattr(connection().client, _METHODS[operation])(**request)
    return answer


Call = tuple[str, dict[str, Any]]
_pool: ThreadPoolExecutor | None = None


def send_both(first: Call, second: Call) -> tuple[Any, Any]:
    """Two low-level calls side by side, (operation, request) each: each one's answer, or the
    exception its call raised (a refused condition among them), to be looked at in turn.

    On the lean client both go out from this thread, over two connections (``Wire.call_both``):
    no second thread to wake. Through botocore the second runs on a small pool.
    """
    lean = _lean_client()
    if lean is not None:
        return lean.call_both(first, second)
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddb")
    later = _pool.submit(send, *second)
    return _answer_or_error(lambda: send(*first)), _answer_or_error(later.result)


def _answer_or_error(call: Callable[[], dict[str, Any]]) -> Any:
    try:
        return call()
    except aws_errors() as exc:
        return exc


def raised(answer: Any) -> dict[str, Any]:
    """An answer of ``send_both``, or the exception it stands for raised here."""
    if isinstance(answer, BaseException):
        raise answer
    return answer  # type: ignore[no-any-return]


def get_item(table: str, key: dict[str, Any], **request: Any) -> dict[str, Any] | None:
    """One item by its key, strongly consistent, in DynamoDB's JSON; None if there is none."""
    found = send("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True, **request})
    item = found.get("Item")
    return item if isinstance(item, dict) else None


def query(request: dict[str, Any], limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The items of a Query in DynamoDB's JSON, page after page, at most ``limit`` (lazy)."""
    taken = 0
    page = dict(request)
    while True:
        answer = send("Query", page)
        for item in answer.get("Items", []):
            yield item
            taken += 1
            if limit is not None and taken >= limit:
                return
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        page = {**request, "ExclusiveStartKey": last}


T = TypeVar("T")


def transact(build: Callable[[TransactWrite], None], attempts: int = 5) -> None:
    """Run one TransactWriteItems, retrying with full jitter when it loses a TransactionConflict.

    DynamoDB cancels a transaction that touches an item another write is changing at the same
    moment (a busy account, say); botocore does not retry that. The client request token makes
    a retry after a lost response idempotent.
    """
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.transactions import TransactWrite

    token = uuid.uuid4().hex
    for attempt in range(attempts):
        try:
            with TransactWrite(connection=connection(), client_request_token=token) as write:
                build(write)
            return
        except TransactWriteError as exc:
            reasons = {reason.code for reason in (exc.cancellation_reasons or []) if reason}
            if "TransactionConflict" not in reasons or attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0, 0.02 * 2**attempt))


def cancelled_by_condition(exc: BaseException) -> bool:
    """True if a transaction was cancelled because one of its conditions failed."""
    from pynamodb.exceptions import TransactWriteError

    return isinstance(exc, TransactWriteError) and any(
        reason is not None and reason.code == "ConditionalCheckFailed"
        for reason in exc.cancellation_reasons
    )


def client_of(model: type[Model]) -> Any:
    """The botocore client PynamoDB uses for ``model``'s table (for calls PynamoDB can't make)."""
    return model._get_connection().connection.client


def old_item(exc: BaseException) -> dict[str, Any] | None:
    """The item DynamoDB returned with ReturnValuesOnConditionCheckFailure=ALL_OLD, if any."""
    response = getattr(exc, "response", None) if isinstance(exc, aws_errors()) else None
    item = response.get("Item") if isinstance(response, dict) else None
    return item if isinstance(item, dict) else None


CONDITION_FAILED = "ConditionalCheckFailedException"


def _condition_failed(exc: BaseException) -> bool:
    return error_code(exc) == CONDITION_FAILED


@dataclass(frozen=True)
class Refused:
    """A conditional write that DynamoDB refused: its condition was false, nothing changed."""

    cause: Exception

    @property
    def old_item(self) -> dict[str, Any] | None:
        """The item as it was, when the write asked for ``ReturnValuesOnConditionCheckFailure``."""
        return old_item(self.cause)


def conditional(write: Callable[[], T]) -> T | Refused:
    """Run one conditional write: what it returned if it landed, ``Refused`` if its condition
    failed. Any other failure propagates (inside ``translated()`` it becomes our error)."""
    try:
        return write()
    except aws_errors() as exc:
        if _condition_failed(exc):
            return Refused(exc)
        raise


@contextmanager
def refused_as(error: Exception) -> Iterator[None]:
    """Inside, a write whose condition fails raises ``error`` instead, with ``__cause__`` kept.

    For the writes whose condition *is* a domain rule ("the account exists", "nobody edited it
    since it was read"); anything else DynamoDB raises passes through unchanged.
    """
    try:
        yield
    except aws_errors() as exc:
        if _condition_failed(exc):
            raise error from exc
        raise
