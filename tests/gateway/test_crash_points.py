"""The crash-point matrix: a relayed call killed at every step of its life, on DynamoDB Local.

A kill is an exception nothing in Sluice catches (a ``BaseException``), raised from the hooks of
the lean DynamoDB client that carries these writes (``store/wire.py``) just before a write is
sent or just after its answer came back (it landed), or from the upstream call. For every
point, once the sweeper has run past the sweep age: nothing is left reserved on the key or the
account, the verifier finds no drift, key and account were charged the same, either the call's
cost or nothing, and the one log record says exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from chalicelib import upstream
from chalicelib.core import errors
from chalicelib.core.deadline import Deadline
from chalicelib.core.settings import get_settings
from chalicelib.services import gateway, ledger_verify, management, schemas, sweeper
from chalicelib.store import accounts as account_store
from chalicelib.store import tokens as token_store
from chalicelib.store import wire
from chalicelib.store.models import UsageRecord

pytestmark = pytest.mark.ddb_local

FLAT_UNITS = 1000  # demo-flat costs US$0.002 a call
FLAT = b'{"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}'


class Killed(BaseException):
    """The process dying: nothing catches a BaseException that is not an Exception."""


def _is(params: dict[str, Any], table: str, *, reservation: bool | None = None) -> bool:
    if not str(params.get("TableName", "")).endswith(f"-{table}"):
        return False
    if reservation is None:
        return True
    return ("SET pending.#rid" in str(params.get("UpdateExpression", ""))) is reservation


# (name, when, which call: operation, table, reservation or settle; expected extra charge, or
# None where nothing of the call was written: the two reservations go out side by side, both
# prepared before either is sent, so a kill before either sends neither and leaves no record)
RESERVE_TOKEN = ("UpdateItem", "tokens", True)
RESERVE_ACCOUNT = ("UpdateItem", "accounts", True)
RECORD = ("PutItem", "usage", None)
SETTLE_TOKEN = ("UpdateItem", "tokens", False)
SETTLE_ACCOUNT = ("UpdateItem", "accounts", False)
POINTS = [
    ("before the token reservation", "before-call", RESERVE_TOKEN, None),
    ("after the token reservation landed", "after-call", RESERVE_TOKEN, 0),
    ("before the account reservation", "before-call", RESERVE_ACCOUNT, None),
    ("after the account reservation landed", "after-call", RESERVE_ACCOUNT, 0),
    ("during upstream", "upstream", None, 0),
    ("before the record write", "before-call", RECORD, 0),
    ("after the record write", "after-call", RECORD, FLAT_UNITS),
    ("between the token and the account settle", "before-call", SETTLE_ACCOUNT, FLAT_UNITS),
    ("after the token settle landed", "after-call", SETTLE_TOKEN, FLAT_UNITS),
    ("after both settles", "after-call", SETTLE_ACCOUNT, FLAT_UNITS),
]


@contextmanager
def kill_at(event: str, target: tuple[str, str, bool | None] | None) -> Iterator[None]:
    """Kill the call at the first matching DynamoDB call (or in upstream for ``upstream``).

    ``before-call``: the write is never sent. ``after-call``: it landed and its answer is in.
    """
    if event == "upstream":

        def dying_forward(*_: Any, **__: Any) -> Any:
            raise Killed("during upstream")

        original = upstream.forward
        upstream.forward = dying_forward  # type: ignore[assignment]
        try:
            yield
        finally:
            upstream.forward = original  # type: ignore[assignment]
        return
    assert target is not None
    operation, table, reservation = target
    fired: list[bool] = []

    def matches(params: dict[str, Any]) -> bool:
        return not fired and _is(params, table, reservation=reservation)

    def before(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if event == "before-call" and matches(params):
            fired.append(True)
            raise Killed(f"before {operation} {table}")
        context["crash_point"] = event == "after-call" and matches(params)

    def after(context: dict[str, Any], **_: Any) -> None:
        if context.get("crash_point") and not fired:
            fired.append(True)
            raise Killed(f"after {operation} {table}")

    wire.hooks.register(f"before-call.dynamodb.{operation}", before, unique_id="crash-in")
    wire.hooks.register(f"after-call.dynamodb.{operation}", after, unique_id="crash-out")
    try:
        yield
    finally:
        wire.hooks.unregister(f"before-call.dynamodb.{operation}", unique_id="crash-in")
        wire.hooks.unregister(f"after-call.dynamodb.{operation}", unique_id="crash-out")
    assert fired, f"the kill point {event} {operation} {table} was never reached"


def _new_key(quota_units: int | None = None) -> tuple[str, str, str]:
    created = management.create_account(
        schemas.CreateAccount(name="crash", quota_units=100 * FLAT_UNITS), int(time.time())
    )
    account_id = created["account"]["id"]
    if quota_units is None:
        token = created["default_token"]
    else:
        body = schemas.CreateTokens(name="k", quota_units=quota_units)
        token = management.create_tokens(account_id, body, int(time.time()))["data"][0]
    return account_id, token["id"], token["key"]


def _call(key: str, raw: bytes = FLAT) -> gateway.CallResult:
    result = gateway.relay_call("chat", raw, f"Bearer {key}", "127.0.0.1")
    assert isinstance(result, gateway.CallResult)  # these calls do not stream
    return result


def _drain() -> None:
    """Let the writes the killed call left in flight on the store's pool finish first (botocore
    sends the second of two side-by-side writes there; the lean client sends both from the
    calling thread and leaves none behind).

    A dead process's parallel write may land or not; either is covered, but the test must not
    sweep while one is still on its way (it would land after the sweeper looked).
    """
    from chalicelib.store import common

    if common._pool is not None:
        common._pool.shutdown(wait=True)
        common._pool = None


def _after_sweep(account_id: str, token_id: str) -> tuple[int, int, Any, list[Any]]:
    later = int(time.time()) + get_settings().reservation_max_age_seconds + 1
    sweeper.sweep(later)
    token = token_store.get(token_id)
    account = account_store.get(account_id)
    assert token is not None and account is not None
    assert (token.reserved_units, account.reserved_units) == (0, 0)
    report = ledger_verify.verify(later)
    assert report.ok, [d.to_json() for d in report.drift]
    records = [r for r in UsageRecord.by_account.query(account_id) if r.token_id == token_id]
    return token.used_units, account.used_units, report, records


@pytest.mark.parametrize(
    ("point", "event", "target", "charged"), POINTS, ids=[p[0] for p in POINTS]
)
def test_a_call_killed_at_any_point_is_charged_its_cost_or_nothing_and_logged_so(
    relay_local: Any,
    point: str,
    event: str,
    target: tuple[str, str, bool | None] | None,
    charged: int | None,
) -> None:
    # GIVEN a key on a warm container (one call already made)
    account_id, token_id, key = _new_key()
    assert _call(key).status == 200
    # WHEN the next call is killed at this point
    with kill_at(event, target), pytest.raises(Killed):
        _call(key)
    _drain()
    # THEN after the sweeper, key and account were charged the same, its cost or nothing
    extra = charged or 0
    token_used, account_used, _report, records = _after_sweep(account_id, token_id)
    assert (token_used, account_used) == (FLAT_UNITS + extra, FLAT_UNITS + extra), point
    # AND exactly one record of the killed call says what was charged (none if nothing of it
    # was written)
    killed = [r for r in records if r.cost_units != FLAT_UNITS or r.state != "settled"]
    if charged is None:
        assert killed == [] and len(records) == 1, point
    elif charged:
        assert len(records) == 2 and all(r.state == "settled" for r in records), point
    else:
        assert [(r.state, r.cost_units) for r in killed] == [("refunded", 0)], point


def test_a_call_killed_after_a_smaller_re_plan_gives_back_exactly_what_it_holds(
    relay_local: Any,
) -> None:
    # GIVEN a key whose cached budget is stale: a call elsewhere spent most of it
    _account_id, token_id, key = _new_key(quota_units=3000)
    hello = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
    assert _call(key, hello).status == 200  # caches the key with ~3000 units left
    token_store.Token(token_id).update(
        actions=[
            token_store.Token.used_units.add(2500),
            token_store.Token.total_used_units.add(2500),
            token_store.Token.remaining_units.add(-2500),
        ]
    )
    # WHEN the next call is refused, re-planned smaller, reserved, and killed upstream
    with kill_at("upstream", None), pytest.raises(Killed):
        _call(key, hello)
    _drain()
    # THEN the sweeper gives back exactly the smaller reservation: counters exact, not inflated
    later = int(time.time()) + get_settings().reservation_max_age_seconds + 1
    sweeper.sweep(later)
    token = token_store.get(token_id)
    assert token is not None
    assert token.reserved_units == 0
    assert token.remaining_units == 3000 - token.used_units


def test_a_call_past_its_deadline_is_refunded_not_charged(relay_local: Any) -> None:
    # GIVEN a call whose deadline passes while upstream answers (a clock the test moves)
    account_id, token_id, key = _new_key()
    clock = [0.0]
    deadline = Deadline(100.0, lambda: clock[0])
    call = gateway.admit(
        "chat", FLAT, f"Bearer {key}", "127.0.0.1", started=time.monotonic(), deadline=deadline
    )
    held = gateway.reserve(call, "127.0.0.1")
    reply = gateway.forward(call, held)
    clock[0] = 200.0
    # WHEN it settles
    with pytest.raises(errors.UpstreamTimeout):
        gateway.settle(call, held, reply)
    # THEN nothing was charged, nothing is held, and the record says why
    token = token_store.get(token_id)
    assert token is not None and (token.used_units, token.reserved_units) == (0, 0)
    [record] = list(UsageRecord.by_account.query(account_id))
    assert (record.state, record.status, record.cost_units) == (
        "refunded",
        "deadline_exceeded",
        0,
    )
