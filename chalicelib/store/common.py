"""Helpers shared by the store modules: cursors, error translation, low-level calls."""

from __future__ import annotations

import base64
import binascii
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.core.errors import InvalidRequest, ServiceUnavailable, TooManyRequests
from chalicelib.core.records import Page
from chalicelib.core.settings import Settings
from chalicelib.store import wire

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


# What a failed DynamoDB call raises: through PynamoDB, botocore, or the lean client.
DYNAMO_ERRORS = (PynamoDBException, ClientError, wire.WireError)


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code behind a pynamodb, botocore or lean-client exception, if any."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, wire.WireError):
            return cause.code
        if isinstance(cause, PynamoDBException) and cause.cause_response_code:
            return cause.cause_response_code
        if isinstance(cause, ClientError):
            return str(cause.response.get("Error", {}).get("Code"))
        cause = cause.__cause__
    return None


@contextmanager
def translated() -> Iterator[None]:
    """Turn DynamoDB failures nobody handled into our errors, keeping ``__cause__``."""
    try:
        yield
    except DYNAMO_ERRORS as exc:
        if error_code(exc) in THROTTLE_CODES:
            raise TooManyRequests() from exc
        raise ServiceUnavailable() from exc


def connection() -> Connection:
    """The low-level PynamoDB connection (one botocore client) shared by every table."""
    from chalicelib.store.models import Token

    return Token._get_connection().connection


# The lean client (``wire.py``) for the calls of every relayed request. Made on first use, from
# what botocore resolved: None until then, or for good when botocore must carry every call.
_lean: wire.Wire | None = None
_lean_wanted = False
_lean_lock = threading.Lock()
_METHODS = {"UpdateItem": "update_item", "PutItem": "put_item"}


def configure_wire(settings: Settings) -> None:
    """Use the lean client unless the settings chose botocore (made at the first call)."""
    global _lean, _lean_wanted
    with _lean_lock:
        _lean, _lean_wanted = None, settings.dynamodb_client != "botocore"


def _lean_client() -> wire.Wire | None:
    global _lean, _lean_wanted
    if _lean is not None or not _lean_wanted:
        return _lean
    with _lean_lock:
        if _lean is None and _lean_wanted:
            _lean = _wire_like_botocore()
            _lean_wanted = _lean is not None
    return _lean


def _wire_like_botocore() -> wire.Wire | None:
    """A lean client aimed where the shared botocore client is: the endpoint botocore resolved
    (``SLUICE_DYNAMODB_ENDPOINT``, ``AWS_ENDPOINT_URL_DYNAMODB``, FIPS, dual-stack, the
    partition's domain) and its signing region, with its timeouts, attempts and certificate
    authorities. None (botocore carries every call) when botocore would go through a proxy,
    which the lean client does not speak."""
    from botocore.utils import get_environ_proxies

    from chalicelib.store.models import RETRIES, _Meta

    client = connection().client
    endpoint = str(client.meta.endpoint_url)
    if getattr(client.meta.config, "proxies", None) or get_environ_proxies(endpoint):
        return None
    return wire.Wire(
        endpoint,
        str(client.meta.region_name),
        _signing_credentials,
        connect_timeout=_Meta.connect_timeout_seconds,
        read_timeout=_Meta.read_timeout_seconds,
        max_attempts=int(RETRIES["total_max_attempts"]),
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


T = TypeVar("T")


def transact(build: Callable[[TransactWrite], None], attempts: int = 5) -> None:
    """Run one TransactWriteItems, retrying with full jitter when it loses a TransactionConflict.

    DynamoDB cancels a transaction that touches an item another write is changing at the same
    moment (a busy account, say); botocore does not retry that. The client request token makes
    a retry after a lost response idempotent.
    """
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
    return isinstance(exc, TransactWriteError) and any(
        reason is not None and reason.code == "ConditionalCheckFailed"
        for reason in exc.cancellation_reasons
    )


def client_of(model: type[Model]) -> Any:
    """The botocore client PynamoDB uses for ``model``'s table (for calls PynamoDB can't make)."""
    return model._get_connection().connection.client


def old_item(exc: BaseException) -> dict[str, Any] | None:
    """The item DynamoDB returned with ReturnValuesOnConditionCheckFailure=ALL_OLD, if any."""
    if isinstance(exc, ClientError | wire.WireError):
        item = exc.response.get("Item")
        return item if isinstance(item, dict) else None
    return None


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
    except DYNAMO_ERRORS as exc:
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
    except DYNAMO_ERRORS as exc:
        if _condition_failed(exc):
            raise error from exc
        raise
