"""Count DynamoDB calls, attempts, retries and round trips with the store's clients' hooks.

One ``CallCounter`` is registered on both clients the store sends through: the botocore client
it shares (``chalicelib.store.common.connection().client``) and the lean client that carries
every call of a relayed request (``chalicelib.store.wire.hooks``), which emits the same events. Per
API call it sees ``before-call`` and ``after-call`` (or botocore's ``after-call-error``); per HTTP
attempt it sees ``before-send``, so ``attempts - calls`` is what the clients retried on their own
(the store's one retry layer). A call
whose request repeats an earlier one exactly (same table, key, expression and request id) is
the same write sent again by the code: money writes are keyed by the request id, so an
identical request can only be that.

Each call's CPU is the calling thread's ``thread_time`` between the two hooks: what the client
itself spends to serialize, sign, send and parse (the wait for DynamoDB costs no CPU).

Round trips are measured, not inferred: each call is an interval from ``before-call`` to
``after-call``, and overlapping intervals merge into one round trip. Writes sent side by side
overlap; writes sent one after the other do not.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

HOOK_ID = "sluice-bench-counter"


@dataclass
class Call:
    phase: str
    operation: str
    started: float
    ended: float | None = None
    cpu_started: float = 0.0
    cpu: float = 0.0  # this thread's CPU seconds inside the call: botocore's own work


@dataclass
class CallCounter:
    """Thread-safe record of the calls made while registered; ``phase`` labels new calls."""

    phase: str = "main"
    calls: list[Call] = field(default_factory=list)
    attempts: int = 0
    store_retries: int = 0
    _seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _events: tuple[Any, ...] = ()

    # --- registration ---------------------------------------------------------------------
    def register(self) -> CallCounter:
        """On the hooks of both clients the store sends through."""
        from chalicelib.store.common import hook_registries

        self._events = hook_registries()
        for events in self._events:
            for event, handler, suffix in self._hooks():
                events.register(event, handler, unique_id=HOOK_ID + suffix)
        return self

    def _hooks(self) -> list[tuple[str, Any, str]]:
        return [
            ("before-call.dynamodb", self._before_call, "-bc"),
            ("after-call.dynamodb", self._after_call, "-ac"),
            ("after-call-error.dynamodb", self._after_call, "-ae"),
            ("before-send.dynamodb", self._before_send, "-bs"),
        ]

    def unregister(self) -> None:
        for events in self._events:
            for event, _, suffix in self._hooks():
                events.unregister(event, unique_id=HOOK_ID + suffix)
        self._events = ()

    def __enter__(self) -> CallCounter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()

    # --- hooks ----------------------------------------------------------------------------
    def _before_call(
        self, event_name: str, params: Any = None, context: Any = None, **_: Any
    ) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        call = Call(self.phase, operation, time.perf_counter(), cpu_started=time.thread_time())
        fingerprint = _fingerprint(operation, params)
        with self._lock:
            self.calls.append(call)
            if fingerprint is not None:
                if fingerprint in self._seen:
                    self.store_retries += 1
                self._seen.add(fingerprint)
        if isinstance(context, dict):
            context[HOOK_ID] = call

    def _after_call(self, context: Any = None, **_: Any) -> None:
        call = context.get(HOOK_ID) if isinstance(context, dict) else None
        if isinstance(call, Call):
            call.ended = time.perf_counter()
            call.cpu = time.thread_time() - call.cpu_started

    def _before_send(self, **_: Any) -> None:
        with self._lock:
            self.attempts += 1

    # --- figures --------------------------------------------------------------------------
    def reset(self, phase: str = "main") -> None:
        with self._lock:
            self.calls.clear()
            self._seen.clear()
            self.attempts = 0
            self.store_retries = 0
            self.phase = phase

    def operations(self, phase: str | None = None) -> dict[str, int]:
        with self._lock:
            chosen = [c for c in self.calls if phase is None or c.phase == phase]
        return dict(sorted(Counter(c.operation for c in chosen).items()))

    def round_trips(self, phase: str | None = None) -> int:
        with self._lock:
            chosen = [c for c in self.calls if phase is None or c.phase == phase]
        return count_round_trips([(c.started, c.ended or c.started) for c in chosen])

    def busy_seconds(self) -> float:
        """Wall time with at least one call in flight (parallel calls counted once)."""
        with self._lock:
            intervals = sorted((c.started, c.ended or c.started) for c in self.calls)
        busy = 0.0
        group_start, group_end = None, float("-inf")
        for start, end in intervals:
            if group_start is None or start > group_end:
                if group_start is not None:
                    busy += group_end - group_start
                group_start, group_end = start, end
            else:
                group_end = max(group_end, end)
        if group_start is not None:
            busy += group_end - group_start
        return busy

    def summary(self) -> dict[str, Any]:
        """Totals as JSON: calls by operation, attempts, both kinds of retries."""
        with self._lock:
            calls = len(self.calls)
            by_op = dict(sorted(Counter(c.operation for c in self.calls).items()))
            cpu = sum(c.cpu for c in self.calls)
            attempts, store_retries = self.attempts, self.store_retries
        return {
            "calls": calls,
            "by_operation": by_op,
            "attempts": attempts,
            "botocore_retries": max(attempts - calls, 0),
            "store_retries": store_retries,
            "busy_ms": round(self.busy_seconds() * 1000, 3),
            "client_cpu_ms": round(cpu * 1000, 3),
        }


def count_round_trips(intervals: list[tuple[float, float]]) -> int:
    """How many groups of overlapping [start, end] intervals there are (0 for none)."""
    trips = 0
    group_end = float("-inf")
    for start, end in sorted(intervals):
        if start > group_end:
            trips += 1
            group_end = end
        else:
            group_end = max(group_end, end)
    return trips


def _fingerprint(operation: str, request: Any) -> str | None:
    """What identifies a write's request exactly (reads are not retried by the store)."""
    if operation not in {"PutItem", "UpdateItem", "DeleteItem"} or not isinstance(request, dict):
        return None
    body = request.get("body")
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        return None
    # Timestamps inside the values may differ between two sends of the same write; the table,
    # the item's key, the expression and the names (which carry the request id) do not.
    identity = {
        "op": operation,
        "table": parsed.get("TableName"),
        "key": parsed.get("Key") or _request_id_of(parsed.get("Item")),
        "expression": parsed.get("UpdateExpression"),
        "names": parsed.get("ExpressionAttributeNames"),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _request_id_of(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("request_id") or item.get("id")
    return None
