"""Benchmark: the hourly quota reset over 10,000 due keys on DynamoDB Local.

What it shows: the DynamoDB calls the reset makes, by operation, counted with a botocore
``before-call`` hook on the clients PynamoDB uses -- writes per key (the target is at most one),
index pages, Scans (the target is none) -- and keys reset per second. Seeding (BatchWriteItem,
a few threads) is not counted. Every key is then read back: none is still due, and each holds
exactly the state one reset leaves (with one UpdateItem per key, none can have had two).

Run: ``python -m bench.bench_resets [--keys N]``; ``run()`` returns the figures as a dict.
Bounded: the reset run stops itself after ``max_seconds`` and reports ``complete: False``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chalicelib.core import calendar as resets
from chalicelib.core.records import TokenRecord
from chalicelib.core.settings import Settings
from chalicelib.services import resets as jobs
from chalicelib.store import configure_store, models
from chalicelib.store import resets as reset_store
from chalicelib.store import tokens as token_store
from chalicelib.store.common import client_of

DEFAULT_KEYS = 10_000
BOUNDARY = 1_804_723_200  # 2027-03-11T00:00:00Z, a daily boundary
NOW = BOUNDARY + 600  # the hourly run, ten minutes later
SEED_THREADS = 4
BATCH = 25  # BatchWriteItem's limit
WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}


def _seed(count: int) -> list[str]:
    """``count`` due daily keys, 250 units used of 100,000 each; returns their ids."""
    items, ids = [], []
    for n in range(count):
        token_id = f"bench{n:011d}"
        record = TokenRecord(
            id=token_id,
            account_id="bench-account",
            name="bench",
            key_hash="0" * 64,
            created_at=BOUNDARY - 86_400,
            unlimited=False,
            quota_units=100_000,
            reset_period="daily",
            next_reset_at=BOUNDARY,
        )
        item = token_store.new_item(record)
        item.used_units = item.total_used_units = 250
        item.remaining_units = 100_000 - 250
        items.append(item.serialize())
        ids.append(token_id)
    client, table = client_of(models.Token), models.Token.Meta.table_name

    def write(batch: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        for _ in range(20):  # unprocessed items are rare locally; bounded anyway
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
            if not request:
                return
        raise RuntimeError("BatchWriteItem kept returning unprocessed items")

    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)]
    with ThreadPoolExecutor(SEED_THREADS) as pool:
        list(pool.map(write, batches))
    return ids


def _count_calls(counter: Counter[str]) -> list[tuple[Any, Any]]:
    """Count every DynamoDB call on the clients PynamoDB uses; returns what to unregister."""

    def on_call(model: Any, **_: Any) -> None:
        counter[model.name] += 1

    hooks: list[tuple[Any, Any]] = []
    for model in models.TABLES.values():
        events = client_of(model).meta.events
        if all(events is not seen for seen, _ in hooks):
            events.register("before-call.dynamodb", on_call)
            hooks.append((events, on_call))
    return hooks


def _check(ids: list[str]) -> tuple[int, int]:
    """(keys still due, keys reset as expected) after the run, read strongly consistently."""
    still_due, _ = reset_store.due_token_ids(NOW, 100)
    expected_next = resets.next_boundary("daily", NOW)
    good = 0
    for start in range(0, len(ids), 100):
        for item in models.Token.batch_get(ids[start : start + 100], consistent_read=True):
            if (
                item.used_units == 0
                and item.remaining_units == 100_000
                and item.next_reset_at == expected_next
                and item.last_reset_at == NOW
            ):
                good += 1
    return len(still_due), good


def run(
    keys: int = DEFAULT_KEYS,
    page_size: int = jobs.DEFAULT_PAGE_SIZE,
    max_seconds: float = 120.0,
    endpoint: str | None = None,
    workers: int = jobs.SCHEDULE_WORKERS,
) -> dict[str, Any]:
    """Seed ``keys`` due keys, reset them with one ``run_resets``, and return the figures."""
    from devtools.ddblocal import start_local_dynamodb

    for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(name, value)
    server = None if endpoint else start_local_dynamodb()
    settings = Settings(
        table_prefix="bench" + secrets.token_hex(3),
        dynamodb_endpoint=endpoint or (server.endpoint if server else None),
    )
    configure_store(settings)
    try:
        models.create_tables()
        started = time.perf_counter()
        ids = _seed(keys)
        seed_seconds = time.perf_counter() - started

        calls: Counter[str] = Counter()
        hooks = _count_calls(calls)
        started = time.perf_counter()
        result = jobs.run_resets(
            NOW,
            lambda: max_seconds - (time.perf_counter() - started),
            page_size=page_size,
            workers=workers,
        )
        seconds = time.perf_counter() - started
        for events, handler in hooks:
            events.unregister("before-call.dynamodb", handler)

        still_due, verified = _check(ids)
        writes = sum(n for op, n in calls.items() if op in WRITE_OPERATIONS)
        figures: dict[str, Any] = {
            "backend": server.kind if server else "external",
            "keys": keys,
            "workers": workers,
            "reset": result.reset,
            "complete": result.complete,
            "seconds": round(seconds, 2),
            "keys_per_second": round(result.reset / seconds, 1) if seconds else 0.0,
            "writes": writes,
            "writes_per_key": round(writes / max(result.reset, 1), 3),
            "index_pages": calls["Query"],
            "batch_gets": calls["BatchGetItem"],
            "scans": calls["Scan"],
            "calls": dict(sorted(calls.items())),
            "still_due_after": still_due,
            "verified_keys": verified,
            "seed_seconds": round(seed_seconds, 2),
        }
        _print_table(figures)
        return figures
    finally:
        models.delete_tables()
        if server is not None:
            server.stop()


def _print_table(figures: dict[str, Any]) -> None:
    rows = [
        ("backend", figures["backend"]),
        ("keys due / reset", f"{figures['keys']} / {figures['reset']}"),
        ("concurrent writers", figures["workers"]),
        ("complete", figures["complete"]),
        ("seconds (reset run)", figures["seconds"]),
        ("seconds (seeding, not counted)", figures["seed_seconds"]),
        ("keys per second", figures["keys_per_second"]),
        ("writes per key (target <= 1)", figures["writes_per_key"]),
        ("index pages (Query)", figures["index_pages"]),
        ("BatchGetItem calls", figures["batch_gets"]),
        ("Scans (target 0)", figures["scans"]),
        ("keys still due after the run", figures["still_due_after"]),
        ("keys verified reset", figures["verified_keys"]),
    ]
    rows += [(f"  calls: {op}", n) for op, n in figures["calls"].items()]
    width = max(len(label) for label, _ in rows)
    print(f"\nQuota reset benchmark ({figures['keys']} due keys)")
    for label, value in rows:
        print(f"  {label.ljust(width)}  {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the scheduled quota reset.")
    parser.add_argument("--keys", type=int, default=DEFAULT_KEYS)
    parser.add_argument("--page-size", type=int, default=jobs.DEFAULT_PAGE_SIZE)
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--workers", type=int, default=jobs.SCHEDULE_WORKERS)
    parser.add_argument("--endpoint", default=None, help="an already running DynamoDB Local")
    args = parser.parse_args(argv)
    figures = run(args.keys, args.page_size, args.max_seconds, args.endpoint, args.workers)
    return 0 if figures["complete"] and figures["still_due_after"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
