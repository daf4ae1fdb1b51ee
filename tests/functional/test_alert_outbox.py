"""Budget alert deliveries survive a handler dying between its claim and its POST (moto).

The claim puts the delivery in the outbox (store/alert_outbox.py); the ``retry_alerts`` job
(``services.alerts.retry_pending``) sends what a dead handler left once its lease is over, and
each crossing still fires exactly once in the normal path. Delivery under concurrency and to a
real receiver is proven on DynamoDB Local in tests/gateway/test_budget_alerts.py.
"""

from __future__ import annotations

from typing import Any

import pytest

URL = "https://hooks.example.com/sluice"
T0 = 1_800_000_000
LEASE = 600  # store.alert_outbox.RETRY_AFTER_SECONDS


class Crash(BaseException):
    """The Lambda being killed (a timeout, out of memory): nothing below it runs."""


class Receiver:
    """Stands in for ``webhooks.post``: records each POST, or dies in it while ``crash``."""

    def __init__(self) -> None:
        self.posts: list[tuple[bytes, str]] = []
        self.crash = False

    def post(self, url: str, body: bytes, signature: str, timeout: float, delivery_id: str) -> Any:
        from chalicelib.upstream import webhooks

        if self.crash:
            raise Crash()
        self.posts.append((body, delivery_id))
        return webhooks.Attempt(delivered=True, status=200)


@pytest.fixture
def receiver(tables: Any, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    from chalicelib.upstream import webhooks

    fake = Receiver()
    monkeypatch.setattr(webhooks, "post", fake.post)
    return fake


def _account_with_alerts() -> str:
    from chalicelib.services import alerts, management, schemas

    created = management.create_account(schemas.CreateAccount(name="acme", quota_units=1000), T0)
    account_id = str(created["account"]["id"])
    settings = schemas.AlertSettings(webhook_url=URL, thresholds=[100])
    alerts.put_alerts("account", account_id, settings, T0)
    return account_id


def _used_up(account_id: str) -> tuple[str, Any, Any]:
    """The stream record of the account's usage reaching its quota."""
    from chalicelib.store.common import client_of
    from chalicelib.store.models import Account

    old = client_of(Account).get_item(
        TableName=Account.Meta.table_name, Key={"id": {"S": account_id}}, ConsistentRead=True
    )["Item"]
    return ("MODIFY", old, {**old, "used_units": {"N": "1000"}})


def _handle(record: tuple[str, Any, Any], at: int) -> Any:
    from chalicelib.services import alerts

    return alerts.handle_records("account", [record], now=lambda: at, sleep=lambda _: None)


def _retry(at: int) -> Any:
    from chalicelib.services import alerts

    return alerts.retry_pending(now=lambda: at, sleep=lambda _: None)


def _marker_state(account_id: str) -> str:
    from chalicelib.store.models import Event

    [marker] = Event.query(f"alert#account#{account_id}")
    return str(marker.body.as_dict()["state"])


def test_the_normal_path_delivers_once_and_leaves_nothing_for_the_retry_job(
    receiver: Receiver,
) -> None:
    # GIVEN an account with an alert at 100 %
    account_id = _account_with_alerts()
    record = _used_up(account_id)

    # WHEN the record is handled, handled again (a replayed batch), and the retry job runs late
    first = _handle(record, T0 + 1)
    replay = _handle(record, T0 + 2)
    late = _retry(T0 + 10 * LEASE)

    # THEN one delivery, marked delivered; the replay claimed nothing and nothing was pending
    assert first.as_json() == {"delivered": 1, "dead_lettered": 0, "duplicates": 0}
    assert replay.as_json() == {"delivered": 0, "dead_lettered": 0, "duplicates": 1}
    assert late.as_json() == {"delivered": 0, "dead_lettered": 0, "duplicates": 0}
    assert len(receiver.posts) == 1
    assert _marker_state(account_id) == "delivered"


def test_a_handler_dying_between_claim_and_post_is_made_good_once_by_the_retry_job(
    receiver: Receiver,
) -> None:
    # GIVEN an account with an alert at 100 %, and a handler that dies in its POST
    account_id = _account_with_alerts()
    record = _used_up(account_id)
    receiver.crash = True
    with pytest.raises(Crash):
        _handle(record, T0 + 1)
    receiver.crash = False

    # WHEN Lambda replays the batch, the retry job runs before the lease is over, after it,
    # and once more
    replay = _handle(record, T0 + 2)
    early = _retry(T0 + LEASE - 1)
    due = _retry(T0 + LEASE + 1)
    again = _retry(T0 + 10 * LEASE)

    # THEN only the run after the lease sent it, once, with the body claimed and a stable id
    assert replay.duplicates == 1 and early.as_json()["delivered"] == 0
    assert due.as_json() == {"delivered": 1, "dead_lettered": 0, "duplicates": 0}
    assert again.as_json() == {"delivered": 0, "dead_lettered": 0, "duplicates": 0}
    [(body, delivery_id)] = receiver.posts
    assert b'"threshold":100' in body and b'"used_units":1000' in body
    assert delivery_id == f"account:{account_id}:1000:100"
    assert _marker_state(account_id) == "delivered"


def test_two_retriers_lease_a_stranded_delivery_to_one_only(receiver: Receiver) -> None:
    # GIVEN a delivery stranded by a dead handler
    from chalicelib.store import alert_outbox

    account_id = _account_with_alerts()
    receiver.crash = True
    with pytest.raises(Crash):
        _handle(_used_up(account_id), T0 + 1)
    [stranded] = alert_outbox.stale(T0 + LEASE + 1)

    # WHEN two retriers try to take it at the same moment
    taken = [alert_outbox.take(stranded, T0 + LEASE + 1) for _ in range(2)]

    # THEN the first has it (one more run counted), the second does not; nor is it stale now
    assert taken[0] is not None and taken[0].runs == 2 and taken[1] is None
    assert alert_outbox.stale(T0 + LEASE + 2) == []


def test_a_delivery_whose_senders_keep_dying_is_dead_lettered_not_retried_forever(
    receiver: Receiver,
) -> None:
    # GIVEN a delivery whose handler and two retriers all died in their POST
    from chalicelib.services import alerts

    account_id = _account_with_alerts()
    receiver.crash = True
    with pytest.raises(Crash):
        _handle(_used_up(account_id), T0 + 1)
    for run in (1, 2):
        with pytest.raises(Crash):
            _retry(T0 + run * (LEASE + 1))

    # WHEN the retry job takes it a third time
    last = _retry(T0 + 3 * (LEASE + 1))

    # THEN it is dead-lettered without another POST, and nothing is left to retry
    assert last.as_json() == {"delivered": 0, "dead_lettered": 1, "duplicates": 0}
    assert receiver.posts == []
    [dead] = alerts.list_dead_letters(10, None)["data"]
    assert dead["last_error"] == "abandoned after 3 runs" and dead["threshold"] == 100
    assert _marker_state(account_id) == "dead_letter"
    assert _retry(T0 + 100 * LEASE).as_json()["dead_lettered"] == 0
