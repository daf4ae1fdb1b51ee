"""Figure 6: the ledger under random faults, then swept and verified (a soak, not a test).

2,000 calls on 20 keys (of one account each, with quotas that run out), from 8 threads, on
DynamoDB Local, with faults drawn at random: a DynamoDB write throttled (not applied) or applied
with its answer lost (botocore retries both), an upstream that fails (a fault model of the demo
upstream, for a quarter of the calls), or the process killed at a random point of a call (a
BaseException nothing catches, raised from botocore's hooks before a write is sent or after it
landed). Then
the sweeper runs past the sweep age and the verifier reads everything: the figure is the drift
it finds and the units still reserved, both of which must be 0. Bounded in count and time.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.procs import sluice_env

CALLS = 2000
KEYS = 20
THREADS = 8
SECONDS = 240.0
UPSTREAM_KEY = "soak-upstream-" + "u" * 20
FLAT = b'{"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}'
CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'
FAILING = b'{"model": "fail-500", "messages": [{"role": "user", "content": "hi"}]}'


class Killed(BaseException):
    """The process dying mid-call."""


class Faults:
    """Random faults per DynamoDB write, applied by botocore hooks in whichever thread writes.

    Each write is throttled (not applied), or applied with its answer lost, or the process is
    killed just before it is sent or just after it landed, with small probabilities; botocore's
    retry of a faulted request goes through untouched.
    """

    def __init__(self, seed: int, fault_rate: float = 0.03, kill_rate: float = 0.01) -> None:
        self.rng = random.Random(seed)
        self.fault_rate = fault_rate
        self.kill_rate = kill_rate
        self.seen: set[bytes] = set()
        self.counts = {"throttled": 0, "lost": 0, "killed": 0}
        self.lock = threading.Lock()

    def _draw(self) -> float:
        with self.lock:
            return self.rng.random()

    def before_send(self, request: Any, **_: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if not target.endswith(("UpdateItem", "PutItem")):
            return None
        roll = self._draw()
        if roll >= 2 * self.fault_rate:
            return None
        mode = "throttled" if roll < self.fault_rate else "lost"
        with self.lock:
            if request.body in self.seen:
                return None  # botocore's retry of the same request: let it through
            self.seen.add(request.body)
            self.counts[mode] += 1

        class Raw:
            def __init__(self, body: bytes) -> None:
                self.body = body

            def stream(self, **_: Any) -> Any:
                yield self.body

        if mode == "lost":
            import httpx

            httpx.post(request.url, headers=dict(request.headers.items()), content=request.body)
            body = b'{"__type":"InternalServerError","message":"injected"}'
            return AWSResponse("http://127.0.0.1", 500, {}, Raw(body))  # type: ignore[arg-type]
        body = b'{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"x"}'
        return AWSResponse("http://127.0.0.1", 400, {}, Raw(body))  # type: ignore[arg-type]

    def maybe_kill(self, **_: Any) -> None:
        if self._draw() < self.kill_rate:
            with self.lock:
                self.counts["killed"] += 1
            raise Killed()


def run(
    endpoint: str, calls: int = CALLS, keys: int = KEYS, seconds: float = SECONDS, seed: int = 7
) -> dict[str, Any]:
    from bench.inprocess import store_bound_to
    from devtools.mock_upstream import MockUpstream

    env = sluice_env(endpoint, "soak-admin-" + secrets.token_urlsafe(8))
    env["SLUICE_TABLE_PREFIX"] = "soak" + secrets.token_hex(3)
    with MockUpstream(api_key=UPSTREAM_KEY) as upstream, store_bound_to(env) as settings:
        from chalicelib.core.channels import Channel
        from chalicelib.services import gateway, ledger_verify, management, schemas, sweeper
        from chalicelib.store import config as config_store
        from chalicelib.store import models
        from chalicelib.store.common import hook_registries
        from chalicelib.store.models import Account, Token
        from devtools.demo_seed import DEMO_PRICES, register_demo

        models.create_tables()
        try:
            register_demo(upstream.base_url, UPSTREAM_KEY)
            now = int(time.time())
            faults_channel = Channel(
                id="faults", name="faults", base_url=upstream.base_url, models=("fail-500",)
            )
            config_store.put_channel(faults_channel, UPSTREAM_KEY, now)
            config_store.set_price("fail-500", DEMO_PRICES["gpt-4o-mini"], now)
            key_list = []
            for index in range(keys):
                created = management.create_account(
                    schemas.CreateAccount(name=f"soak-{index}", quota_units=60_000), now
                )
                account_id = created["account"]["id"]
                body = schemas.CreateTokens(name="k", quota_units=40_000)
                key_list.append(management.create_tokens(account_id, body, now)["data"][0])

            faults = Faults(seed)
            # Both clients the store sends through: botocore's, and the lean one that carries
            # every call of a relayed request (its "before-call" is botocore's
            # provide-client-params).
            botocore_events, lean_hooks = hook_registries()
            hooked: list[tuple[Any, str]] = [
                (botocore_events, "provide-client-params"),
                (lean_hooks, "before-call"),
            ]
            for events, kill_in in hooked:
                events.register_first("before-send.dynamodb", faults.before_send, unique_id="soak")
                for op in ("UpdateItem", "PutItem"):
                    events.register(f"{kill_in}.dynamodb.{op}", faults.maybe_kill,
                                    unique_id=f"soak-in-{op}")  # fmt: skip
                    events.register(f"after-call.dynamodb.{op}", faults.maybe_kill,
                                    unique_id=f"soak-out-{op}")  # fmt: skip
            stop_at = time.monotonic() + seconds
            outcomes = {"ok": 0, "refused": 0, "failed": 0, "killed": 0}
            lock = threading.Lock()

            def one(index: int) -> None:
                if time.monotonic() > stop_at:
                    return
                rng = random.Random(seed * 100_003 + index)
                token = key_list[rng.randrange(len(key_list))]
                body = rng.choice([FLAT, FLAT, CHAT, FAILING])
                try:
                    result = gateway.relay_call("chat", body, f"Bearer {token['key']}", "127.0.0.1")
                    assert isinstance(result, gateway.CallResult)  # these calls do not stream
                    name = "ok" if result.status < 400 else "failed"
                except Killed:
                    name = "killed"
                except Exception as exc:
                    name = "refused" if getattr(exc, "status", 500) == 429 else "failed"
                with lock:
                    outcomes[name] += 1

            started = time.monotonic()
            with ThreadPoolExecutor(THREADS) as pool:
                list(pool.map(one, range(calls)))
            elapsed = time.monotonic() - started
            for events, kill_in in hooked:
                events.unregister("before-send.dynamodb", unique_id="soak")
                for op in ("UpdateItem", "PutItem"):
                    events.unregister(f"{kill_in}.dynamodb.{op}", unique_id=f"soak-in-{op}")
                    events.unregister(f"after-call.dynamodb.{op}", unique_id=f"soak-out-{op}")

            later = int(time.time()) + settings.reservation_max_age_seconds + 1
            swept = sweeper.sweep(later)
            report = ledger_verify.verify(later)
            leaked = sum(int(t.reserved_units or 0) for t in Token.scan()) + sum(
                int(a.reserved_units or 0) for a in Account.scan()
            )  # a benchmark's own check at the end, not a request path
            return {
                "calls": sum(outcomes.values()),
                "keys": keys,
                "seconds": round(elapsed, 1),
                "outcomes": outcomes,
                "faults": {**faults.counts, "upstream_failures": outcomes["failed"]},
                "swept": {"refunded": swept.refunded, "settled": swept.settled},
                "drift": len(report.drift),
                "drift_examples": [d.to_json() for d in report.drift[:5]],
                "leaked_units": leaked,
            }
        finally:
            models.delete_tables()
