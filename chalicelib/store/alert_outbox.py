"""Budget alert deliveries in DynamoDB: the claim, the outbox, and the dead letters.

A threshold crossed in an epoch (see core/alerts.py) is *claimed* by one transaction of two
new items of the events table, so a delivery is never lost between its claim and its POST::

    marker   alert#<kind>#<id>   "<epoch>#<threshold, 3 digits>"    the level was claimed (once)
    outbox   alerts#outbox       "<claimed ms, 13 digits>#<kind>#<id>#<epoch>#<threshold>"

The marker's key is fixed by what was crossed, and its Put is conditional on its absence: one
writer wins, so a replayed stream record, a retried batch or a second poller claims nothing.
The outbox entry holds the body to send (resent byte for byte) and a *lease*: until
``lease_until`` nobody else may send it. Neither touches the key's or account's own item, so
the claim never contends with the relay's reservations on a hot key.

Life of a delivery::

    claimed (marker + outbox, one transaction, leased RETRY_AFTER_SECONDS)
      |-- sent (2xx)              --> marker "delivered",   outbox entry deleted   (one transaction)
      |-- every attempt failed    --> marker "dead_letter", outbox entry deleted, dead letter kept
      |-- no settings any more    --> marker "dropped",     outbox entry deleted
      '-- the handler died        --> the entry stays; once its lease is over, ``stale`` lists it,
                                      ``take`` leases it again to one retrier, which sends it
                                      (counting the runs: after MAX_RUNS it is dead-lettered)

So a crossing is delivered at least once; twice only if a handler dies after the receiver
answered and before its settle landed, and then with the same body (and delivery id header),
never sooner than the lease allows. The outbox partition only ever holds deliveries in flight
or stranded, so listing it is one small Query.
"""

from __future__ import annotations

import secrets as random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.core.errors import InvalidRequest
from chalicelib.core.records import Page
from chalicelib.store.common import (
    Refused,
    cancelled_by_condition,
    client_of,
    conditional,
    decode_cursor,
    encode_cursor,
    transact,
    translated,
)
from chalicelib.store.models import Event

OUTBOX = "alerts#outbox"
DEAD_LETTERS = "alerts#dead-letters"
DEAD_LETTER_DAYS = 30
# A marker must outlive every copy of the stream record that crossed (a stream keeps its
# records 24 hours); a stranded outbox entry is dead-lettered long before this.
DELIVERY_DAYS = 35
# Longer than a stream handler may run (120 s, .chalice/config.json) with all its attempts, so
# a delivery still being sent is never taken over; the retry job runs every 5 minutes.
RETRY_AFTER_SECONDS = 600
# A delivery whose senders died this many times is dead-lettered, not sent again.
MAX_RUNS = 3


@dataclass(frozen=True)
class Delivery:
    """One threshold crossed in one epoch of one key or account, as claimed."""

    kind: str
    item_id: str
    account_id: str
    epoch: str
    threshold: int
    payload: str  # the body, exactly as signed and sent
    claimed_ms: int
    runs: int = 1  # senders that took it: the first handler, then each retrier

    @property
    def id(self) -> str:
        """Stable across resends: receivers may use it (``X-Sluice-Delivery``) to drop copies."""
        return f"{self.kind}:{self.item_id}:{self.epoch}:{self.threshold}"

    @property
    def token_id(self) -> str | None:
        return self.item_id if self.kind == "token" else None


def _marker(delivery: Delivery) -> Event:
    return Event(
        f"alert#{delivery.kind}#{delivery.item_id}",
        f"{delivery.epoch}#{delivery.threshold:03d}",
    )


def _outbox_key(delivery: Delivery) -> str:
    return (
        f"{delivery.claimed_ms:013d}#{delivery.kind}#{delivery.item_id}"
        f"#{delivery.epoch}#{delivery.threshold:03d}"
    )


def _expiry(now_ms: int, days: int) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000 + days * 86_400, UTC)


def claim(delivery: Delivery) -> bool:
    """Claim ``delivery`` and put it in the outbox, leased; False if it was claimed before."""
    marker = _marker(delivery)
    marker.kind = "alert.claim"
    marker.body = {"state": "pending", "claimed_ms": delivery.claimed_ms}
    marker.expire_at = _expiry(delivery.claimed_ms, DELIVERY_DAYS)
    entry = Event(
        OUTBOX,
        _outbox_key(delivery),
        kind="alert.pending",
        body={
            "kind": delivery.kind,
            "item_id": delivery.item_id,
            "account_id": delivery.account_id,
            "epoch": delivery.epoch,
            "threshold": delivery.threshold,
            "payload": delivery.payload,
            "runs": delivery.runs,
            "lease_until": delivery.claimed_ms // 1000 + RETRY_AFTER_SECONDS,
        },
        expire_at=_expiry(delivery.claimed_ms, DELIVERY_DAYS),
    )

    def build(transaction: TransactWrite) -> None:
        transaction.save(marker, condition=Event.at_id.does_not_exist())
        transaction.save(entry)

    with translated():
        try:
            transact(build)
        except TransactWriteError as exc:
            if cancelled_by_condition(exc):
                return False
            raise
    return True


def _settle(
    delivery: Delivery, state: str, now_ms: int, dead_letter: dict[str, Any] | None = None
) -> None:
    """The delivery leaves the outbox, and its marker says how, in one transaction."""

    def build(transaction: TransactWrite) -> None:
        transaction.delete(Event(OUTBOX, _outbox_key(delivery)))
        transaction.update(
            _marker(delivery),
            actions=[Event.body.set({"state": state, "settled_ms": now_ms})],
        )
        if dead_letter is not None:
            transaction.save(
                Event(
                    DEAD_LETTERS,
                    f"{now_ms:013d}#{random.token_hex(4)}",
                    kind="alert.dead_letter",
                    body=dead_letter,
                    expire_at=_expiry(now_ms, DEAD_LETTER_DAYS),
                )
            )

    with translated():
        transact(build)


def delivered(delivery: Delivery, now_ms: int) -> None:
    _settle(delivery, "delivered", now_ms)


def dropped(delivery: Delivery, now_ms: int) -> None:
    """Alerts were turned off since the crossing: nowhere to send it."""
    _settle(delivery, "dropped", now_ms)


def dead_lettered(delivery: Delivery, body: dict[str, Any], now_ms: int) -> None:
    """Every attempt failed: keep it for the operator to see (and replay)."""
    _settle(delivery, "dead_letter", now_ms, body)


# The retry path -----------------------------------------------------------------------------
def _from_entry(item: Event) -> Delivery:
    body = item.body.as_dict()
    return Delivery(
        kind=str(body["kind"]),
        item_id=str(body["item_id"]),
        account_id=str(body["account_id"]),
        epoch=str(body["epoch"]),
        threshold=int(body["threshold"]),
        payload=str(body["payload"]),
        claimed_ms=int(item.at_id[:13]),
        runs=int(body.get("runs", 1)),
    )


def stale(now: int, limit: int = 100) -> list[Delivery]:
    """Outbox entries whose lease is over (claimed at least a lease ago, to narrow the Query)."""
    cutoff = f"{(now - RETRY_AFTER_SECONDS + 1) * 1000:013d}"
    with translated():
        found = Event.query(
            OUTBOX,
            Event.at_id < cutoff,
            filter_condition=Event.body["lease_until"] <= now,
            consistent_read=True,
            limit=limit,
        )
        return [_from_entry(item) for item in found]


def take(delivery: Delivery, now: int) -> Delivery | None:
    """Lease a stale entry to this retrier (one wins), counting the run; None if lost."""
    table = Event.Meta.table_name
    with translated():
        written = conditional(
            lambda: client_of(Event).update_item(
                TableName=table,
                Key={"subject": {"S": OUTBOX}, "at_id": {"S": _outbox_key(delivery)}},
                UpdateExpression="SET body.lease_until = :until, body.runs = :runs",
                ConditionExpression="attribute_exists(at_id) AND body.lease_until <= :now",
                ExpressionAttributeValues={
                    ":until": {"N": str(now + RETRY_AFTER_SECONDS)},
                    ":runs": {"N": str(delivery.runs + 1)},
                    ":now": {"N": str(now)},
                },
            )
        )
    if isinstance(written, Refused):
        return None
    return replace(delivery, runs=delivery.runs + 1)


# Dead letters -------------------------------------------------------------------------------
def dead_letters(limit: int, cursor: str | None) -> Page:
    start = decode_cursor(cursor, expected={"subject": DEAD_LETTERS})
    if start is not None and (set(start) != {"subject", "at_id"} or "S" not in start["at_id"]):
        raise InvalidRequest("cursor is not valid.", param="cursor")
    with translated():
        results = Event.query(
            DEAD_LETTERS, scan_index_forward=False, limit=limit, last_evaluated_key=start
        )
        items = [{"at_ms": int(e.at_id.split("#")[0]), **e.body.as_dict()} for e in results]
        last = results.last_evaluated_key
    return Page(items=items, next_cursor=encode_cursor(last) if len(items) == limit else None)
