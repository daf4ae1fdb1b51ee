"""What the local stand-ins cost by themselves, so the gateway's figures can be read against them.

* DynamoDB Local: the latency of one UpdateItem, one GetItem, and three UpdateItems on three
  tables sent side by side (what one Sluice round trip is), plus the botocore client's own CPU
  per call. In AWS a single-item write takes a few milliseconds and three in parallel take about
  as long as one; DynamoDB Local on two shared cores serializes much of it.
* chalice local: ``GET /health`` (no DynamoDB, no upstream) is the dev server's own floor.
"""

from __future__ import annotations

import secrets
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.load import percentile
from bench.procs import cpu_seconds

CALLS = 200
# The write every floor figure times: one counter up by one.
COUNT_ONE = {
    "UpdateExpression": "ADD used_units :one",
    "ExpressionAttributeValues": {":one": {"N": "1"}},
}


def _ms(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def dynamodb(endpoint: str, calls: int = CALLS) -> dict[str, Any]:
    import boto3
    from botocore.config import Config

    client: Any = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=8, parameter_validation=False),
    )
    prefix = "floor" + secrets.token_hex(3)
    tables = [f"{prefix}-{n}" for n in range(3)]
    for table in tables:
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    key = {"id": {"S": "item"}}

    def update(table: str) -> None:
        client.update_item(TableName=table, Key=key, **COUNT_ONE)

    try:
        for _ in range(calls // 2):  # warm the JVM's code paths first
            update(tables[0])
        single, cpu_per_call = _timed(lambda: update(tables[0]), calls)
        reads, _ = _timed(
            lambda: client.get_item(TableName=tables[0], Key=key, ConsistentRead=True), calls
        )
        with ThreadPoolExecutor(3) as pool:
            parallel, _ = _timed(lambda: list(pool.map(update, tables)), calls)
        # Signed as boto3 signs: DynamoDB Local keeps its tables per access key.
        frozen = client._request_signer._credentials.get_frozen_credentials()
        lean = _lean_updates(endpoint, {"TableName": tables[0], "Key": key}, calls, frozen)
    finally:
        for table in tables:
            client.delete_table(TableName=table)
    return {
        "update_p50_ms": _ms(single),
        "get_p50_ms": _ms(reads),
        "three_parallel_updates_p50_ms": _ms(parallel),
        "client_cpu_ms_per_call": round(cpu_per_call, 2),
        "wall_ms_per_call": round(sum(single) / calls, 2),
        "calls": calls,
        **lean,
    }


def _timed(call: Callable[[], Any], calls: int) -> tuple[list[float], float]:
    """Each call's latency (ms), and this process's CPU per call (ms)."""
    latencies = []
    cpu_started = time.process_time()
    for _ in range(calls):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies, (time.process_time() - cpu_started) / calls * 1000


def _lean_updates(endpoint: str, item: dict[str, Any], calls: int, frozen: Any) -> dict[str, Any]:
    """The same UpdateItem over the store's lean client (``chalicelib/store/wire.py``), which
    carries every call of a relayed request: its latency and its own CPU per call."""
    from chalicelib.store import wire

    keys = wire.Credentials(frozen.access_key, frozen.secret_key, frozen.token)
    client = wire.Wire(endpoint, "us-east-1", lambda: keys)
    request = {**item, **COUNT_ONE}
    for _ in range(calls // 2):
        client.call("UpdateItem", request)
    latencies, cpu_per_call = _timed(lambda: client.call("UpdateItem", request), calls)
    return {
        "lean_update_p50_ms": _ms(latencies),
        "lean_cpu_ms_per_call": round(cpu_per_call, 2),
    }


def http_get(
    url: str, calls: int = CALLS, headers: dict[str, str] | None = None, pid: int | None = None
) -> dict[str, Any]:
    """Sequential GETs on one keep-alive connection: the server's own floor (and its CPU)."""
    latencies = []
    cpu_before = cpu_seconds(pid) if pid else 0.0
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(calls):
            started = time.perf_counter()
            client.get(url, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
    figures = {
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
    }
    if pid:
        figures["server_cpu_ms_per_request"] = round(
            (cpu_seconds(pid) - cpu_before) / calls * 1000, 2
        )
    return figures
