"""Figure 1: DynamoDB calls and round trips per operation, counted in this process.

The app runs in-process (``chalice.test.Client``) on DynamoDB Local with its own table prefix,
against an in-process demo upstream with no delay. A ``CallCounter`` on the store's shared client
records every call; ``relay.forward`` is wrapped so calls are labelled before / during / after
the upstream call. Parallel writes overlap in time and count as one round trip.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bench.ddb_calls import CallCounter
from bench.procs import sluice_env

UPSTREAM_KEY = "bench-upstream-" + secrets.token_hex(8)
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
SWEPT_RESERVATIONS = 10
BOUNDARY = 1_804_723_200  # a daily boundary (2027-03-11T00:00:00Z); `now` is passed explicitly
PENDING_UNITS = 1_000


def _row(counter: CallCounter, phase: str | None = None) -> dict[str, Any]:
    ops = counter.operations(phase)
    return {"calls": sum(ops.values()), "round_trips": counter.round_trips(phase), "ops": ops}


@contextmanager
def _phased(counter: CallCounter) -> Iterator[None]:
    """Label calls "before" until upstream is called, "upstream" during, "after" once back.

    A stream is "back" when the relay closes it, the first thing its settle does.
    """
    from chalicelib import upstream as relay

    original, original_stream = relay.forward, relay.open_stream

    def forward(*args: Any, **kwargs: Any) -> Any:
        counter.phase = "upstream"
        try:
            return original(*args, **kwargs)
        finally:
            counter.phase = "after"

    def open_stream(*args: Any, **kwargs: Any) -> Any:
        counter.phase = "upstream"
        stream = original_stream(*args, **kwargs)
        close = stream.close

        def closed() -> None:
            counter.phase = "after"
            close()

        stream.close = closed  # type: ignore[method-assign]
        return stream

    relay.forward = forward  # type: ignore[assignment]
    relay.open_stream = open_stream  # type: ignore[assignment]
    try:
        yield
    finally:
        relay.forward = original  # type: ignore[assignment]
        relay.open_stream = original_stream  # type: ignore[assignment]


def _relayed(counter: CallCounter, send: Callable[[], Any]) -> dict[str, Any]:
    counter.reset("before")
    with _phased(counter):
        response = send()
    if response.status_code != 200:
        raise RuntimeError(f"relayed call answered {response.status_code}: {response.body!r}")
    return {
        "before": _row(counter, "before"),
        "upstream": _row(counter, "upstream"),
        "after": _row(counter, "after"),
        "total": _row(counter),
    }


def _measured(counter: CallCounter, action: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    counter.reset("main")
    result = action()
    return _row(counter), result


def _due_token(account_id: str, name: str) -> Any:
    from chalicelib.core import keys
    from chalicelib.core.records import TokenRecord
    from chalicelib.store import tokens as token_store

    record = TokenRecord(
        id=keys.new_id(),
        account_id=account_id,
        name=name,
        key_hash="0" * 64,
        created_at=BOUNDARY - 86_400,
        unlimited=False,
        quota_units=100_000,
        remaining_units=100_000,
        reset_period="daily",
        next_reset_at=BOUNDARY,
    )
    token_store.create_many([record])
    return record


def _pending_reservations(account_id: str, token: Any, key: str, now: int) -> list[str]:
    """Reservations whose process "died" before settling: reserved, no record, stale."""
    from chalicelib.core import keys
    from chalicelib.store import ledger

    rids = []
    for _ in range(SWEPT_RESERVATIONS):
        rid = f"req_{uuid.uuid4().hex}"
        reservation = ledger.Reservation(rid, token["id"], account_id, PENDING_UNITS, "gpt-4o-mini")
        refusal = ledger.reserve(
            reservation,
            ledger.KeyCheck(reservation.token_id, keys.hash_key(key), 0, "default"),
            now - 3600,
        )
        if refusal is not None:
            raise RuntimeError(f"seeding a pending reservation was refused: {refusal}")
        rids.append(rid)
    return rids


@dataclass(frozen=True)
class _Answer:
    """A relay answer shaped like chalice's test response (what ``measure`` reads of it)."""

    status_code: int
    body: bytes


@contextmanager
def _in_process(ddb_endpoint: str) -> Iterator[tuple[Callable[[str, str, Any], Any], str]]:
    """The app and the relay in-process on fresh tables, with the demo upstream registered:
    ``post(path, key, body)`` and the admin key. The tables go when the block ends."""
    from chalice.test import Client
    from starlette.testclient import TestClient

    from bench.inprocess import store_bound_to
    from devtools.mock_upstream import MockUpstream

    admin_key = "bench-admin-" + secrets.token_urlsafe(12)
    env = sluice_env(ddb_endpoint, admin_key)
    env["SLUICE_TABLE_PREFIX"] = "benchrt" + secrets.token_hex(3)
    with MockUpstream(api_key=UPSTREAM_KEY) as upstream, store_bound_to(env):
        from app import app
        from chalicelib.relay.app import app as relay_app
        from chalicelib.store import models
        from devtools.demo_seed import register_demo

        models.create_tables()
        try:
            register_demo(upstream.base_url, UPSTREAM_KEY)
            with (
                Client(app) as client,
                TestClient(relay_app, client=("127.0.0.1", 50000)) as relay,
            ):

                def post(path: str, key: str, body: Any) -> Any:
                    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
                    if path.startswith("/v1/"):  # the relay's function, as API Gateway routes it
                        answer = relay.post(path, headers=headers, content=json.dumps(body))
                        return _Answer(answer.status_code, answer.content)
                    return client.http.post(path, headers=headers, body=json.dumps(body))

                yield post, admin_key
        finally:
            models.delete_tables()


def measure(ddb_endpoint: str) -> dict[str, Any]:
    """Every row of figure 1, as JSON."""
    with _in_process(ddb_endpoint) as (post, admin_key), CallCounter() as counter:
        from chalicelib.services import resets as jobs
        from chalicelib.services import sweeper
        from chalicelib.store import tokens as token_store

        made = post("/admin/accounts", admin_key, {"name": "rt", "quota_usd": "100"})
        created = json.loads(made.body)
        token, mk = created["default_token"], created["management_key"]
        account_id = created["account"]["id"]
        counter.register()
        # A warm container has served a call already: caches hold key and config.
        post("/v1/chat/completions", token["key"], CHAT)
        figures: dict[str, Any] = {
            "chat": _relayed(counter, lambda: post("/v1/chat/completions", token["key"], CHAT)),
            "stream": _relayed(counter, lambda: post("/v1/chat/completions", token["key"], STREAM)),
        }
        figures["create_key"], _ = _measured(counter, lambda: post("/tokens", mk, {"name": "one"}))
        figures["create_100_keys"], batch = _measured(
            counter, lambda: post("/tokens", mk, {"name": "batch", "count": 100})
        )
        if batch.status_code != 201 or len(json.loads(batch.body)["data"]) != 100:
            raise RuntimeError(f"batch of 100 keys failed: {batch.status_code}")
        now = BOUNDARY + 600
        _due_token(account_id, "scheduled")
        figures["reset_scheduled_one_key"], run = _measured(
            counter, lambda: jobs.run_resets(now, workers=1)
        )
        lazy = _due_token(account_id, "lazy")
        figures["reset_on_request_one_key"], _ = _measured(
            counter, lambda: jobs.reset_if_due(lazy, now)
        )
        figures["reset_scheduled_one_key"]["reset"] = run.reset
        wall = int(time.time())
        rids = _pending_reservations(account_id, token, token["key"], wall)
        figures["sweep"], swept = _measured(counter, lambda: sweeper.sweep(wall))
        stored = token_store.get(token["id"])
        figures["sweep"].update(
            reservations=len(rids),
            refunded=swept.refunded,
            reserved_units_after=stored.reserved_units if stored else None,
        )
    return figures


# Generous enough that no call of the measurement is refused: the limits are checked, not hit.
LIMITS = {"rpm_limit": 10_000, "tpm_limit": 10_000_000, "max_concurrency": 64}


def measure_limits(ddb_endpoint: str) -> dict[str, Any]:
    """A relayed call's DynamoDB calls with no limits, then with rpm/tpm/concurrency limits on
    both the key and its account, in the same process on the same tables.

    The limits ride on the reservations' own conditional writes and on the settles, so the two
    columns must be equal: the same calls, in the same round trips.
    """
    with _in_process(ddb_endpoint) as (post, admin_key), CallCounter() as counter:

        def new_key(limited: bool) -> str:
            fields = LIMITS if limited else {}
            name = "limited" if limited else "plain"
            made = post("/admin/accounts", admin_key, {"name": name, "quota_usd": "100", **fields})
            if made.status_code != 201:
                raise RuntimeError(f"account creation answered {made.status_code}: {made.body!r}")
            mk = json.loads(made.body)["management_key"]
            answer = post("/tokens", mk, {"name": name, **fields})
            if answer.status_code != 201:
                raise RuntimeError(f"key creation answered {answer.status_code}: {answer.body!r}")
            made_key = json.loads(answer.body)["data"][0]
            if limited and made_key.get("max_concurrency") != LIMITS["max_concurrency"]:
                raise RuntimeError(f"the key was made without its limits: {made_key}")
            return str(made_key["key"])

        keys = {"no_limits": new_key(False), "limits": new_key(True)}
        counter.register()
        figures: dict[str, Any] = {"limits": LIMITS}
        for variant, key in keys.items():
            post("/v1/chat/completions", key, CHAT)  # warm: key and config cached
            figures[variant] = {
                "chat": _relayed(counter, lambda: post("/v1/chat/completions", key, CHAT)),  # noqa: B023
                "stream": _relayed(counter, lambda: post("/v1/chat/completions", key, STREAM)),  # noqa: B023
            }
    return figures


def scans(figures: dict[str, Any]) -> int:
    """Scans over every measured operation (the goal is none anywhere)."""
    total = 0
    for row in figures.values():
        rows = [row[p] for p in ("before", "upstream", "after")] if "before" in row else [row]
        total += sum(r["ops"].get("Scan", 0) for r in rows)
    return total
