"""DynamoDB round trips of a relayed call on a warm container, counted with the hooks of both
clients the store sends through (botocore's and the lean one).

Budget: two writes before upstream (token and account reservations, side by side: one round
trip), three after (the call's record, which decides its outcome, then both settles side by
side), no Scan, no read on the warm path. Writes meant to go out side by side are proven
parallel: each one waits at a barrier for its sibling, which only works if both are in flight.
After a quiet spell, a call reserves on its expired copies of key and account (the reservation
checks them) and reads only the configuration's stamp first. On a busy container, the
refreshes a call finds due wait until its reservation was answered.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from support import ADMIN_KEY, half_spent, on_dynamodb, quiet_spell

from chalicelib import upstream as relay
from chalicelib.services import gateway
from chalicelib.store import config_reads, tables
from chalicelib.store.cache import background

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


def _operation_on(event_name: str, params: dict[str, Any]) -> tuple[str, str]:
    """(operation, table) of a ``before-call`` hook's call. The lean client hands over the
    request; botocore, the serialized one (its body)."""
    request = params if "body" not in params else json.loads(params["body"])
    return event_name.rsplit(".", 1)[-1], request.get("TableName", "")


class Recorder:
    """Records, per phase, each call's start and end: ("call", operation) and ("done", ...)."""

    def __init__(self) -> None:
        self.phase = "before"
        self.events: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()

    def before_call(self, event_name: str, **_: Any) -> None:
        self._note("call", event_name)

    def after_call(self, event_name: str, **_: Any) -> None:
        self._note("done", event_name)

    def _note(self, what: str, event_name: str) -> None:
        with self.lock:
            self.events.append((self.phase, what, event_name.rsplit(".", 1)[-1]))

    def upstream_called(self) -> None:
        with self.lock:
            self.phase = "after"

    def seen(self, phase: str) -> list[str]:
        return [f"{what} {op}" for p, what, op in self.events if p == phase]


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
    with (
        on_dynamodb("before-call.dynamodb", recorder.before_call, unique_id="rt-in"),
        on_dynamodb("after-call.dynamodb", recorder.after_call, unique_id="rt-out"),
    ):
        # WHEN it calls again
        response = _chat(server, key)

    # THEN two writes went out together before upstream (both under way before either was
    # answered); after it, the record first, then the two settles together
    assert response.status_code == 200, response.text
    if limits:
        assert {"x-ratelimit-remaining-requests", "x-ratelimit-remaining-tokens"} <= set(
            response.headers
        )
    both = ["call UpdateItem", "call UpdateItem", "done UpdateItem", "done UpdateItem"]
    assert recorder.seen("before") == both
    assert recorder.seen("after") == ["call PutItem", "done PutItem", *both]


def test_after_a_quiet_spell_a_call_reads_only_the_configuration_stamp_before_it_reserves(
    server: str,
) -> None:
    # GIVEN a key used on a container that has read the configuration twice (its first copy
    # confirms nothing), then a quiet spell that expired every cached entry
    key = _key(server)
    assert _chat(server, key).status_code == 200
    quiet_spell()
    assert _chat(server, key).status_code == 200
    quiet_spell()
    tokens, accounts, config = (
        tables.name(t) for t in (tables.TOKENS, tables.ACCOUNTS, tables.CONFIG)
    )
    before: list[tuple[str, str]] = []
    reserving = threading.Event()
    refreshed = {tokens: threading.Event(), accounts: threading.Event()}

    def before_call(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation, table = _operation_on(event_name, params)
        if operation == "UpdateItem":
            reserving.set()
        elif not reserving.is_set():
            before.append((operation, table))
        elif operation == "GetItem" and table in refreshed:
            refreshed[table].set()

    with on_dynamodb("before-call.dynamodb", before_call, unique_id="rt-expired-copies"):
        # WHEN it calls again
        response = _chat(server, key)
        # THEN the key and the account are read again, in the background, after it reserved
        assert all(event.wait(timeout=10) for event in refreshed.values())

    # AND the call succeeded on the expired copies of key and account: before its reservation
    # it read only the configuration's stamp
    assert response.status_code == 200, response.text
    assert before == [("GetItem", config)]


def test_a_wrong_secret_for_a_known_key_id_is_refused_after_a_quiet_spell(server: str) -> None:
    # GIVEN a key used once, then a quiet spell
    key = _key(server)
    assert _chat(server, key).status_code == 200
    quiet_spell()
    wrong = key[:-1] + ("a" if key[-1] != "a" else "b")  # same key id, another secret
    tokens, accounts = (tables.name(t) for t in (tables.TOKENS, tables.ACCOUNTS))
    reads: list[str] = []

    def before_call(event_name: str, params: dict[str, Any], **_: Any) -> None:
        operation, table = _operation_on(event_name, params)
        if operation == "GetItem" and table in (tokens, accounts):
            reads.append(table)

    # WHEN someone presents that key id with a wrong secret
    with on_dynamodb("before-call.dynamodb", before_call, unique_id="rt-wrong-secret"):
        response = _chat(server, wrong)

    # THEN it is refused on the key as stored (read again, not taken from the expired copy),
    # and nothing of its account was read; the right secret still calls
    assert response.status_code == 401, response.text
    assert reads == [tokens]
    assert _chat(server, key).status_code == 200


def test_refreshes_a_call_finds_due_start_after_its_reservation_was_answered(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a key in use whose cached key, account and configuration are due for a refresh
    key = _key(server)
    assert _chat(server, key).status_code == 200
    assert _chat(server, key).status_code == 200  # a second copy of the configuration is kept
    half_spent()
    answered: list[str] = []  # the reservation's writes answered so far
    refreshes_started: list[int] = []  # how many of them were answered as each refresh started
    refreshed = threading.Semaphore(0)

    def after_call(event_name: str, **_: Any) -> None:
        if event_name.endswith(".UpdateItem"):
            answered.append(event_name)

    def submit(fn: Any, *args: Any) -> Any:
        refreshes_started.append(len(answered))

        def run() -> None:
            try:
                fn(*args)
            finally:
                refreshed.release()

        return background().submit(run)

    for cache in (gateway.cache(), config_reads._cache):
        monkeypatch.setattr(cache, "submit", submit)
    with on_dynamodb("after-call.dynamodb", after_call, unique_id="rt-refresh-order"):
        # WHEN it calls again
        response = _chat(server, key)
        for _ in refreshes_started:
            assert refreshed.acquire(timeout=10)

    # THEN the call succeeded, and the key's, the account's and the configuration's refreshes
    # all started once both reservation writes were answered, before the settles
    assert response.status_code == 200, response.text
    assert refreshes_started == [2, 2, 2]


def test_calls_that_find_no_copy_of_the_key_at_once_read_it_once(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a key used once, then a new container (no copy of anything); the first read of the
    # key is held until every call of a burst has found no copy of it
    key = _key(server)
    assert _chat(server, key).status_code == 200
    gateway.cache().clear()
    burst = 6
    cache = gateway.cache()
    found_expired: set[int] = set()  # the threads (one per call) that found the key's entry empty
    all_found = threading.Event()
    lock = threading.Lock()
    look_up = cache.get

    def counted_get(entry: Any, refresh: Any = None) -> Any:
        value = look_up(entry, refresh=refresh)
        if str(entry).startswith("t:") and value is None:
            with lock:
                found_expired.add(threading.get_ident())
                if len(found_expired) == burst:
                    all_found.set()
        return value

    monkeypatch.setattr(cache, "get", counted_get)
    tokens = tables.name(tables.TOKENS)
    key_reads: list[bool] = []

    def before_call(event_name: str, params: dict[str, Any], **_: Any) -> None:
        if _operation_on(event_name, params) == ("GetItem", tokens):
            with lock:
                key_reads.append(True)
                first = len(key_reads) == 1
            if first:
                all_found.wait(timeout=10)

    # WHEN the burst comes at once
    with on_dynamodb("before-call.dynamodb", before_call, unique_id="rt-burst"):
        threads = [
            threading.Thread(target=lambda: statuses.append(_chat(server, key).status_code))
            for _ in range(burst)
        ]
        statuses: list[int] = []
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    # THEN every call was answered, and the key was read once for all of them
    assert statuses == [200] * burst
    assert len(found_expired) == burst
    assert key_reads == [True]
