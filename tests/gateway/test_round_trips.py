"""DynamoDB round trips of a relayed call on a warm container, counted with the hooks of both
clients the store sends through (botocore's and the lean one).

Budget: two writes before upstream (token and account reservations, side by side: one round
trip), three after (the call's record, which decides its outcome, then both settles side by
side), no Scan, no read on the warm path. Writes meant to go out side by side are proven
parallel: each one waits at a barrier for its sibling, which only works if both are in flight.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY, on_dynamodb

from chalicelib import upstream as relay

pytestmark = pytest.mark.ddb_local

HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}


def _key(server: str, **limits: int) -> str:
    response = httpx.post(
        f"{server}/admin/accounts",
        json={"name": "rt", "quota_usd": "5"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    created = response.json()
    if not limits:
        return str(created["default_token"]["key"])
    made = httpx.post(
        f"{server}/tokens",
        json={"name": "limited", **limits},
        headers={"Authorization": f"Bearer {created['management_key']}"},
    )
    return str(made.json()["data"][0]["key"])


def _chat(server: str, key: str, body: Any = HELLO) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


class Recorder:
    """Records (phase, operation) and makes each phase's writes meet at a barrier."""

    def __init__(self) -> None:
        self.phase = "before"
        self.calls: list[tuple[str, str]] = []
        self.barriers = {"before": threading.Barrier(2), "after": threading.Barrier(2)}
        self.lock = threading.Lock()

    def before_call(self, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self.lock:
            phase = self.phase
            self.calls.append((phase, operation))
        if operation == "UpdateItem":
            # Raises BrokenBarrierError (failing the call) if the siblings never come.
            self.barriers[phase].wait(timeout=10)

    def upstream_called(self) -> None:
        with self.lock:
            self.phase = "after"


@pytest.mark.parametrize(
    "limits",
    [{}, {"rpm_limit": 100, "tpm_limit": 100_000, "max_concurrency": 5}],
    ids=["no-limits", "all-rate-limits"],
)
def test_warm_call_is_two_parallel_writes_before_and_a_record_then_two_after(
    server: str, monkeypatch: pytest.MonkeyPatch, limits: dict[str, int]
) -> None:
    # GIVEN a key (with or without rate limits: they are part of the reservation's own write)
    # that has been used once (the container is warm)
    key = _key(server, **limits)
    assert _chat(server, key).status_code == 200
    recorder = Recorder()
    forward = relay.forward

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        recorder.upstream_called()
        return forward(*args, **kwargs)

    monkeypatch.setattr(relay, "forward", recording_forward)
    with on_dynamodb("before-call.dynamodb", recorder.before_call, unique_id="rt-recorder"):
        # WHEN it calls again
        response = _chat(server, key)

    # THEN two writes went out together before upstream; after it, the record first, then the
    # two settles together
    assert response.status_code == 200, response.text
    if limits:
        assert {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} <= set(
            response.headers
        )
    before = [op for phase, op in recorder.calls if phase == "before"]
    after = [op for phase, op in recorder.calls if phase == "after"]
    assert before == ["UpdateItem", "UpdateItem"]
    assert after == ["PutItem", "UpdateItem", "UpdateItem"]
    assert not any(op in {"Scan", "Query", "GetItem"} for _, op in recorder.calls)
