"""Transactions (account creation, credits, key batches) under conflicts and lost answers.

DynamoDB cancels a transaction with TransactionConflict when another write touches one of its
items at that moment (a busy account); botocore does not retry that. DynamoDB Local never
raises it, so it is injected here with botocore's ``before-send`` hook.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from botocore.awsrequest import AWSResponse

from chalicelib.services import management, schemas
from chalicelib.store import accounts as account_store
from chalicelib.store.common import connection

pytestmark = pytest.mark.ddb_local


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Any:
        yield self.body


def _conflict(request: Any) -> AWSResponse:
    items = len(json.loads(request.body)["TransactItems"])
    body = {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
        "CancellationReasons": [{"Code": "TransactionConflict"}] * items,
    }
    raw = _Raw(json.dumps(body).encode())
    return AWSResponse("http://127.0.0.1", 400, {"x-amzn-requestid": "injected"}, raw)


class Injector:
    """The first ``times`` TransactWriteItems fail: with a conflict, or applied but unanswered."""

    def __init__(self, mode: str, times: int) -> None:
        self.mode, self.left, self.lock = mode, times, threading.Lock()

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        with self.lock:
            if not target.endswith("TransactWriteItems") or self.left == 0:
                return None
            self.left -= 1
        if self.mode == "lost":
            httpx.post(request.url, headers=dict(request.headers.items()), content=request.body)
            raw = _Raw(b'{"__type":"InternalServerError","message":"injected"}')
            return AWSResponse("http://127.0.0.1", 500, {}, raw)
        return _conflict(request)


def _inject(mode: str, times: int) -> Any:
    injector = Injector(mode, times)
    events = connection().client.meta.events
    events.register_first("before-send.dynamodb", injector.before_send, unique_id="tx-inject")
    return injector


@pytest.fixture(autouse=True)
def _unregister() -> Any:
    yield
    connection().client.meta.events.unregister("before-send.dynamodb", unique_id="tx-inject")


@pytest.mark.parametrize("mode", ["conflict", "lost"])
def test_a_credit_lands_exactly_once_through_conflicts_and_lost_answers(
    ddb_local: Any, mode: str
) -> None:
    # GIVEN an account with US$1
    now = int(time.time())
    body = schemas.CreateAccount.model_validate({"name": "busy", "quota_units": 500_000})
    account_id = management.create_account(body, now)["account"]["id"]

    # WHEN a credit of 1,000 units meets two conflicts (or its first answer is lost)
    injector = _inject(mode, 2 if mode == "conflict" else 1)
    credit = schemas.CreditAccount.model_validate({"quota_units": 1000, "note": "x"})
    management.credit_account(account_id, credit, now)

    # THEN it was retried and applied exactly once
    assert injector.left == 0
    account = account_store.get(account_id)
    assert account is not None
    assert (account.quota_units, account.remaining_units) == (501_000, 501_000)
    assert [e["units"] for e in account_store.events(account_id)] == [1000]


def test_a_batch_of_keys_is_created_once_through_a_conflict(ddb_local: Any) -> None:
    now = int(time.time())
    body = schemas.CreateAccount.model_validate({"name": "batch", "unlimited": True})
    account_id = management.create_account(body, now)["account"]["id"]
    _inject("conflict", 1)

    made = management.create_tokens(
        account_id, schemas.CreateTokens.model_validate({"name": "b", "count": 5}), now
    )["data"]

    listed = management.list_tokens(account_id, 100, None, None, now)["data"]
    assert len(made) == 5 and len(listed) == 6  # the five, plus the default key
