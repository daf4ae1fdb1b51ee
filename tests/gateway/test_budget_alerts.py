"""Budget alerts end to end on DynamoDB Local: the stream handler, driven one poll at a time.

A webhook receiver on 127.0.0.1 checks every signature and counts deliveries. The stream is
read by ``devtools.streams.StreamPoller.poll()`` (what `make run`'s thread and, in AWS, Lambda's
event source mapping do), called directly so that no test waits on the clock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from chalicelib.core import alerts
from devtools.streams import StreamPoller

pytestmark = pytest.mark.ddb_local

FLAT = {"model": "demo-flat", "messages": [{"role": "user", "content": "hi"}]}
FLAT_UNITS = 1000  # demo-flat costs US$0.002 a call


class Receiver:
    """A webhook endpoint: answers ``status``, keeps each delivery and whether it verified."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.secrets: list[str] = []
        self.deliveries: list[tuple[dict[str, Any], bool]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                header = self.headers.get(alerts.SIGNATURE_HEADER, "")
                signed = any(
                    alerts.verify(secret, body, header, int(time.time()))
                    for secret in receiver.secrets
                )
                with receiver.lock:
                    receiver.deliveries.append((json.loads(body), signed))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def crossings(self) -> Counter[tuple[str | None, int]]:
        return Counter((d["token_id"], d["threshold"]) for d, _ in self.deliveries)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _set_alerts(
    receiver: Receiver, kind: str, account_id: str, token_id: str | None, thresholds: list[int]
) -> None:
    from chalicelib.services import alerts as alert_service
    from chalicelib.services import schemas

    body = schemas.AlertSettings(webhook_url=receiver.url, thresholds=thresholds)
    answer = alert_service.put_alerts(kind, account_id, body, int(time.time()), token_id)  # type: ignore[arg-type]
    receiver.secrets.append(answer["webhook_secret"])


def _account(quota_units: int, token_quota: int | None = None, **token: Any) -> dict[str, Any]:
    """An account and one key of it, through the services (keys, ids, management key)."""
    from chalicelib.services import management, schemas

    now = int(time.time())
    created = management.create_account(
        schemas.CreateAccount(name="acme", quota_units=quota_units), now
    )
    account_id = created["account"]["id"]
    fields = {"name": "k", "quota_units": token_quota, **token}
    made = management.create_tokens(account_id, schemas.CreateTokens(**fields), now)
    return {"account_id": account_id, "mk": created["management_key"], **made["data"][0]}


def _charge(token: dict[str, Any], units: int, now: int | None = None) -> None:
    """One call's money writes (reserve, then settle at ``units``), as the gateway makes them."""
    import secrets

    from chalicelib.core import keys
    from chalicelib.store import ledger
    from chalicelib.store import tokens as token_store

    now = now or int(time.time())
    current = token_store.get(token["id"])
    assert current is not None
    r = ledger.Reservation("req_" + secrets.token_hex(6), token["id"], token["account_id"], units)
    check = ledger.KeyCheck(token["id"], keys.hash_key(token["key"]), current.revision, "default")
    assert ledger.reserve(r, check, now) is None
    assert ledger.release(r, units) == (True, True)


def test_fifty_concurrent_calls_deliver_each_crossed_threshold_exactly_once(
    server: str, receiver: Receiver
) -> None:
    # GIVEN a key whose quota is 50 calls, alerts at 50/80/100 % on it and at 50 % on its
    # account (quota 100 calls)
    token = _account(quota_units=100 * FLAT_UNITS, token_quota=50 * FLAT_UNITS)
    _set_alerts(receiver, "token", token["account_id"], token["id"], [50, 80, 100])
    _set_alerts(receiver, "account", token["account_id"], None, [50])
    poller = StreamPoller()
    poller.poll()  # the settings' own changes: nothing crosses

    # WHEN 50 relayed calls run at once, and the streams are read (then re-read from the start,
    # as a replayed batch or a second poller would, including the handler's own claim writes)
    gate = threading.Event()

    def call(_: int) -> int:
        gate.wait(timeout=30)
        headers = {"Authorization": f"Bearer {token['key']}"}
        url = server + "/v1/chat/completions"
        return httpx.post(url, json=FLAT, headers=headers, timeout=60).status_code

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(call, i) for i in range(50)]
        gate.set()
        statuses = [f.result() for f in futures]
    first = poller.poll()
    poller.poll()
    StreamPoller().poll()

    # THEN every call passed, and each threshold was delivered once, signed, with its figures
    assert statuses == [200] * 50
    assert first >= 100  # a reservation and a settle per call, on each table
    assert receiver.crossings() == Counter(
        {(token["id"], 50): 1, (token["id"], 80): 1, (token["id"], 100): 1, (None, 50): 1}
    )
    assert all(signed for _, signed in receiver.deliveries)
    by_threshold = {(d["token_id"], d["threshold"]): d for d, _ in receiver.deliveries}
    hundred = by_threshold[(token["id"], 100)]
    assert hundred["type"] == "budget.threshold_crossed"
    assert (hundred["used_units"], hundred["quota_units"]) == (50 * FLAT_UNITS, 50 * FLAT_UNITS)
    assert hundred["account_id"] == token["account_id"]
    assert by_threshold[(None, 50)]["quota_units"] == 100 * FLAT_UNITS


def test_a_failing_receiver_is_retried_with_backoff_then_dead_lettered(
    ddb_local: Any, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a receiver that always fails, and three attempts with no wait between them
    from chalicelib.core.settings import reset_settings
    from chalicelib.services import alerts as alert_service

    monkeypatch.setenv("SLUICE_ALERT_DELIVERY_ATTEMPTS", "3")
    monkeypatch.setenv("SLUICE_ALERT_BACKOFF_SECONDS", "0")
    reset_settings()
    receiver.status = 500
    token = _account(quota_units=10_000, token_quota=1000)
    _set_alerts(receiver, "token", token["account_id"], token["id"], [100])

    # WHEN the key is used up and the stream is read
    _charge(token, 1000)
    StreamPoller().poll()

    # THEN three signed attempts reached the receiver, and the delivery is a dead letter
    assert receiver.crossings() == Counter({(token["id"], 100): 3})
    assert all(signed for _, signed in receiver.deliveries)
    [dead] = alert_service.list_dead_letters(10, None)["data"]
    assert (dead["token_id"], dead["threshold"], dead["attempts"]) == (token["id"], 100, 3)
    assert dead["last_error"] == "HTTP 500" and json.loads(dead["payload"])["threshold"] == 100
    # AND no secret is in it
    assert not any(s in json.dumps(dead) for s in receiver.secrets)


def test_a_periodic_keys_reset_re_arms_its_thresholds(ddb_local: Any, receiver: Receiver) -> None:
    # GIVEN a daily key that crossed 50 % and 100 % today
    from chalicelib.store import resets
    from chalicelib.store import tokens as token_store

    token = _account(quota_units=100_000, token_quota=1000, reset_period="daily")
    _set_alerts(receiver, "token", token["account_id"], token["id"], [50, 100])
    poller = StreamPoller()
    _charge(token, 600)
    _charge(token, 400)
    poller.poll()
    before_reset = receiver.crossings()

    # WHEN its period resets, and it uses 60 % of the new period
    current = token_store.get(token["id"])
    assert current is not None and current.next_reset_at is not None
    after = current.next_reset_at + 1
    assert resets.reset_token(token["id"], current.next_reset_at, "daily", after)
    poller.poll()
    _charge(token, 600, now=after)
    poller.poll()

    # THEN 50 % was delivered once in each period, 100 % once in the first
    assert before_reset == Counter({(token["id"], 50): 1, (token["id"], 100): 1})
    assert receiver.crossings() == Counter({(token["id"], 50): 2, (token["id"], 100): 1})


def test_an_account_credit_re_arms_its_thresholds(ddb_local: Any, receiver: Receiver) -> None:
    # GIVEN an account of 10,000 units at 50 % used, with an alert at 50 %
    from chalicelib.store import accounts as account_store

    token = _account(quota_units=10_000)
    _set_alerts(receiver, "account", token["account_id"], None, [50])
    poller = StreamPoller()
    _charge(token, 5000)
    poller.poll()

    # WHEN it is credited 10,000 more (25 % used), then uses another 5,000 (50 % again)
    account_store.credit(token["account_id"], 10_000, "top-up", int(time.time()))
    poller.poll()
    _charge(token, 5000)
    poller.poll()

    # THEN 50 % was delivered once before the credit and once after it
    assert receiver.crossings() == Counter({(None, 50): 2})
    quotas = [d["quota_units"] for d, _ in receiver.deliveries]
    assert quotas == [10_000, 20_000]
