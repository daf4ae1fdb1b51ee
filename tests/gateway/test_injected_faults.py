"""DynamoDB misbehaving under the ledger: throttling, and writes whose answer is lost.

Faults are injected with the ``before-send`` hook of both clients the store sends through
(botocore's, and the lean one that carries every call of a relayed request), so their own retry
logic runs exactly as it would against AWS. DynamoDB Local never throttles and never loses a
response by itself.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from botocore.awsrequest import AWSResponse
from support import ADMIN_KEY, on_dynamodb

from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store

pytestmark = pytest.mark.ddb_local

FLAT = {"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}
FLAT_UNITS = 1000


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _response(status: int, body: bytes) -> AWSResponse:
    return AWSResponse("http://127.0.0.1", status, {"x-amzn-requestid": "injected"}, _Raw(body))


class Injector:
    """Every write's first attempt fails: throttled (not applied) or lost (applied, answer lost)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.seen: set[bytes] = set()
        self.injected = 0
        self.lock = threading.Lock()

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if not target.endswith(("UpdateItem", "PutItem")):
            return None
        with self.lock:
            if request.body in self.seen:
                return None  # botocore's retry of the same request: let it through
            self.seen.add(request.body)
            self.injected += 1
        if self.mode == "lost":
            # The write reaches DynamoDB and is applied; only its answer is lost.
            httpx.post(request.url, headers=dict(request.headers.items()), content=request.body)
            return _response(500, b'{"__type":"InternalServerError","message":"injected"}')
        return _response(
            400,
            b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException",'
            b'"message":"injected throttling"}',
        )


@pytest.fixture(params=["throttled", "lost"])
def injector(request: pytest.FixtureRequest) -> Any:
    injector = Injector(request.param)
    with on_dynamodb("before-send.dynamodb", injector.before_send, "inject", first=True):
        yield injector


def _setup(server: str) -> tuple[dict[str, Any], dict[str, Any]]:
    created = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "faulty", "quota_units": 100 * FLAT_UNITS},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    token = httpx.post(
        f"{server}/tokens",
        json={"name": "k", "quota_units": 20 * FLAT_UNITS},
        headers={"Authorization": f"Bearer {created['management_key']}"},
    ).json()["data"][0]
    return created, token


def test_every_write_failing_once_still_charges_each_call_exactly_once(
    server: str, injector: Injector
) -> None:
    # GIVEN a key worth 20 calls, and a DynamoDB whose every write fails on its first attempt
    created, token = _setup(server)

    # WHEN 40 calls race on it with 16 clients
    gate = threading.Event()

    def call(_: int) -> int:
        gate.wait(timeout=30)
        return httpx.post(
            f"{server}/v1/chat/completions",
            json=FLAT,
            headers={"Authorization": f"Bearer {token['key']}"},
            timeout=60,
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(call, i) for i in range(40)]
        gate.set()
        statuses = [f.result(timeout=300) for f in futures]

    # THEN faults were injected, exactly 20 calls were answered, and every counter is exact:
    # no reservation applied twice, no settle applied twice, nothing left reserved
    # (each of the 40 calls makes at least its two reservation writes, each failed once)
    assert injector.injected >= 2 * 40, injector.injected
    assert statuses.count(200) == 20 and statuses.count(429) == 20, statuses
    stored = token_store.get(token["id"])
    account = account_store.get(created["account"]["id"])
    assert stored is not None and account is not None
    assert (stored.used_units, stored.reserved_units, stored.remaining_units) == (
        20 * FLAT_UNITS,
        0,
        0,
    )
    assert (account.used_units, account.reserved_units) == (20 * FLAT_UNITS, 0)
    assert account.remaining_units == 80 * FLAT_UNITS
