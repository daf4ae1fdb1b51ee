"""Figure 4: one key, 64 concurrent clients, over HTTP on chalice local and DynamoDB Local.

Every relayed call reserves on, and settles on, the same token item and the same account item,
so this is the worst case for the single-item conditional writes. What must hold: no errors, and
the token's ``used_units`` grows by exactly the sum of the ``X-Sluice-Cost-Units`` headers the
clients received. While the load runs, the token item is read now and then (a consistent
GetItem) to see how large its ``pending`` map makes it: DynamoDB bills a write per started KB.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from typing import Any

import httpx

from bench.inprocess import store_bound_to
from bench.overhead import BODY
from bench.procs import Proc, sluice_stats

CLIENTS = 64
SECONDS = 30.0
MAX_REQUESTS = 50_000  # far above what 30 s can serve here; the count bound of the loop
SAMPLE_EVERY_SECONDS = 0.5
QUOTA_USD = "500"


# DynamoDB's documented item-size rules -----------------------------------------------------
def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB's wire form (``{"S": ...}``, ``{"M": ...}``)."""
    ((kind, raw),) = value.items()
    if kind == "S":
        return len(raw.encode())
    if kind == "N":
        return _number_size(raw)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "B":
        return len(raw) if isinstance(raw, bytes) else len(raw) * 3 // 4
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in raw.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in raw)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in raw)
    return 0


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


# The run ---------------------------------------------------------------------------------------
def _new_key(
    base_url: str, admin_key: str, max_concurrency: int | None = None
) -> tuple[str, str, str]:
    """A fresh account and key with a finite quota, so the reservation's condition is real
    (and, with ``max_concurrency``, the key limited to that many calls in flight)."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    made = httpx.post(
        f"{base_url}/admin/accounts",
        json={"name": "hot", "quota_usd": QUOTA_USD},
        headers=headers,
        timeout=30,
        trust_env=False,
    )
    made.raise_for_status()
    body = made.json()
    token_id = body["default_token"]["id"]
    if max_concurrency is not None:
        patched = httpx.patch(
            f"{base_url}/tokens/{token_id}",
            json={"max_concurrency": max_concurrency},
            headers={"Authorization": f"Bearer {body['management_key']}"},
            timeout=30,
            trust_env=False,
        )
        patched.raise_for_status()
    return body["default_token"]["key"], token_id, body["account"]["id"]


def _read_item(table: str, item_id: str) -> dict[str, Any]:
    from chalicelib.store.common import connection

    client: Any = connection().client
    response = client.get_item(TableName=table, Key={"id": {"S": item_id}}, ConsistentRead=True)
    return dict(response.get("Item") or {})


def run(
    sluice: Proc,
    clients: int = CLIENTS,
    seconds: float = SECONDS,
    max_concurrency: int | None = None,
) -> dict[str, Any]:
    """``max_concurrency`` below ``clients``: the calls over it are refused (429
    ``rate_limit_exceeded``), counted apart from errors; the pending map, sampled, must never
    hold more than the limit."""
    env: dict[str, str] = sluice.extra["env"]
    key, token_id, account_id = _new_key(sluice.base_url, env["SLUICE_ADMIN_KEY"], max_concurrency)
    url = f"{sluice.base_url}/v1/chat/completions"
    headers = {"Authorization": f"Bearer {key}"}
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    charged = [0]
    errors = [0]
    limited = [0]
    error_samples: list[str] = []
    issued = iter(range(MAX_REQUESTS))
    stop = threading.Event()

    def client_loop() -> None:
        with httpx.Client(timeout=60, trust_env=False) as http:
            while not stop.is_set():
                with lock:
                    if next(issued, None) is None:
                        return
                try:
                    response = http.post(url, json=BODY, headers=headers)
                except httpx.HTTPError:
                    with lock:
                        errors[0] += 1
                    continue
                cost = int(response.headers.get("x-sluice-cost-units") or 0)
                refused = max_concurrency is not None and _rate_limited(response)
                with lock:
                    statuses[response.status_code] += 1
                    charged[0] += cost
                    limited[0] += refused
                    if response.status_code != 200 and not refused and len(error_samples) < 5:
                        error_samples.append(_error_message(response))

    with store_bound_to(env):
        from chalicelib.store.models import Account, Token

        token_table, account_table = Token.Meta.table_name, Account.Meta.table_name
        before = _read_item(token_table, token_id)
        account_before = _read_item(account_table, account_id)
        sluice_stats(sluice)
        sizes: list[int] = []
        pending: list[int] = []
        threads = [threading.Thread(target=client_loop) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            item = _read_item(token_table, token_id)
            sizes.append(item_size(item))
            pending.append(len(item.get("pending", {}).get("M", {})))
            time.sleep(SAMPLE_EVERY_SECONDS)  # pacing the sampler, not waiting for an outcome
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        elapsed = time.perf_counter() - started
        stats = sluice_stats(sluice)
        after = _read_item(token_table, token_id)
        account_after = _read_item(account_table, account_id)

    def units(item: dict[str, Any], name: str) -> int:
        return int(item.get(name, {}).get("N", "0"))

    used = units(after, "used_units") - units(before, "used_units")
    account_used = units(account_after, "used_units") - units(account_before, "used_units")
    ok = statuses.get(200, 0)
    ddb = stats["dynamodb"]
    largest = max(sizes, default=0)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": sum(statuses.values()) + errors[0],
        "ok": ok,
        "throughput_rps": round(ok / elapsed, 1) if elapsed else 0.0,
        "non_200": {str(code): n for code, n in statuses.items() if code != 200},
        "max_concurrency": max_concurrency,
        "refused_over_limit": limited[0],
        "errors": errors[0] + sum(n for code, n in statuses.items() if code != 200) - limited[0],
        "charged_units_sum": charged[0],
        "token_used_units_delta": used,
        "account_used_units_delta": account_used,
        "exact": used == charged[0] == account_used,
        "reserved_after": units(after, "reserved_units"),
        "pending_after": len(after.get("pending", {}).get("M", {})),
        "item_bytes_idle": item_size(before),
        "item_bytes_max_under_load": largest,
        "item_bytes_median_under_load": sorted(sizes)[len(sizes) // 2] if sizes else 0,
        "pending_max_under_load": max(pending, default=0),
        "write_units_per_write_at_max": math.ceil(largest / 1024) if largest else 0,
        "item_samples": len(sizes),
        "botocore_retries": ddb["botocore_retries"],
        "store_retries": ddb["store_retries"],
        "dynamodb_calls": ddb["by_operation"],
        "scans": ddb["by_operation"].get("Scan", 0),
        "error_samples": error_samples,
    }


def _rate_limited(response: httpx.Response) -> bool:
    """A 429 refusal of the concurrency limit (not quota exhaustion, not a throttled store)."""
    if response.status_code != 429:
        return False
    try:
        return bool(response.json()["error"]["code"] == "rate_limit_exceeded")
    except (ValueError, KeyError, TypeError):
        return False


def _error_message(response: httpx.Response) -> str:
    """The OpenAI-shaped error's message (it names channels, never keys), for the report."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return f"HTTP {response.status_code}: {str(message)[:300]}"
