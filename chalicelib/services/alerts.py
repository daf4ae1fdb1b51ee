"""Budget alerts: the settings a management key edits, and the stream handler that delivers.

Settings: ``PUT`` stores thresholds and a webhook URL for an account or one of its keys; the
first ``PUT`` (and every rotation) answers the signing secret once, which is then only ever used
to sign. Bad input is refused before anything is written.

Delivery happens off the request path: DynamoDB Streams carry every change of a key or account
item (old and new image) to ``handle_records``; in AWS through the Lambda event source mapping
(app.py), locally through ``devtools.streams``' poller. Per record::

    thresholds on the item?  -- no --> nothing
    crossed (core.alerts)?   -- none --> nothing
    for each crossed one:    claim it, with its outbox entry -- lost --> nothing (a duplicate)
                             POST, signed; retry with backoff; all failed --> dead letter
                             either way its outbox entry goes (store/alert_outbox.py)

Claiming before sending makes a crossing fire once even when records are replayed; the claim's
outbox entry makes it fire at least once even when the handler dies between its claim and its
POST: ``retry_pending`` (the ``retry_alerts`` schedule) sends what a dead handler left, once
its lease is over. A failed POST never fails the batch: Lambda would replay it, and the claim
would then (rightly) refuse to send twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib.core import alerts, audit, observe, views
from chalicelib.core.errors import InvalidRequest
from chalicelib.core.settings import get_settings
from chalicelib.services import schemas
from chalicelib.store import accounts as account_store
from chalicelib.store import alert_outbox as outbox
from chalicelib.store import alerts as alert_store
from chalicelib.store import tokens as token_store
from chalicelib.upstream import stack_targets, webhooks

# (event name, old image, new image) of one stream record, images as DynamoDB JSON.
Record = tuple[str, dict[str, Any] | None, dict[str, Any] | None]


# Settings -------------------------------------------------------------------------------------
def _check_subject(kind: alert_store.Kind, account_id: str, token_id: str | None) -> str:
    if kind == "token":
        assert token_id is not None
        token_store.get_owned(token_id, account_id)
        return token_id
    account_store.require(account_id)
    return account_id


def _json(
    settings: alert_store.AlertSettings | None, kind: str, item_id: str, account_id: str
) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "token_id": item_id if kind == "token" else None,
        "thresholds": list(settings.thresholds if settings else alerts.DEFAULT_THRESHOLDS),
        "webhook_url": settings.webhook_url if settings else None,
        "sns_topic_arn": settings.sns_topic_arn if settings else None,
        "event_bus": settings.event_bus if settings else None,
        "enabled": settings is not None,
        "updated_at": views.iso(settings.updated_at) if settings else None,
    }


def get_alerts(
    kind: alert_store.Kind, account_id: str, token_id: str | None = None
) -> dict[str, Any]:
    item_id = _check_subject(kind, account_id, token_id)
    return _json(alert_store.get(kind, item_id), kind, item_id, account_id)


def _audited(settings: alert_store.AlertSettings | None) -> dict[str, Any] | None:
    """The fields of ``settings`` the audit compares (``core.audit.alert_changes`` shows them)."""
    if settings is None:
        return None
    return {
        "thresholds": list(settings.thresholds),
        "webhook_url": settings.webhook_url,
        "sns_topic_arn": settings.sns_topic_arn,
        "event_bus": settings.event_bus,
    }


def _entry(
    action: str,
    kind: alert_store.Kind,
    item_id: str,
    account_id: str,
    old: alert_store.AlertSettings | None,
    new: alert_store.AlertSettings | None,
    *,
    new_secret: bool,
) -> audit.AuditEntry:
    changes = audit.alert_changes(_audited(old), _audited(new), new_secret=new_secret)
    return audit.entry(action, audit.alert_target(kind, item_id), changes, account_id=account_id)


def put_alerts(
    kind: alert_store.Kind,
    account_id: str,
    body: schemas.AlertSettings,
    now: int,
    token_id: str | None = None,
) -> dict[str, Any]:
    """Store the settings; the answer holds ``webhook_secret`` only when one was just made."""
    config = get_settings()
    if body.webhook_url is None and body.sns_topic_arn is None and body.event_bus is None:
        raise InvalidRequest(
            "Give webhook_url (or, deployed, sns_topic_arn or event_bus).", param="webhook_url"
        )
    url = body.webhook_url and alerts.checked_webhook_url(
        body.webhook_url, allow_plain_loopback=config.alert_allow_http_loopback
    )
    stack, region = config.alert_targets_name, config.region
    topic = body.sns_topic_arn and alerts.checked_sns_topic_arn(
        body.sns_topic_arn, stack_name=stack, region=region
    )
    bus = body.event_bus and alerts.checked_event_bus(
        body.event_bus, stack_name=stack, region=region
    )
    thresholds = alerts.thresholds_from(body.thresholds)
    item_id = _check_subject(kind, account_id, token_id)
    current = alert_store.get(kind, item_id)
    secret = alert_store.new_secret() if current is None else None
    settings = alert_store.AlertSettings(
        kind, item_id, account_id, thresholds, url, now, sns_topic_arn=topic, event_bus=bus
    )
    entry = _entry(
        "alerts.update", kind, item_id, account_id, current, settings, new_secret=bool(secret)
    )
    stored = alert_store.put(settings, secret, audit=entry)
    answer = _json(stored, kind, item_id, account_id)
    return answer | ({"webhook_secret": secret} if secret else {})


def rotate_secret(
    kind: alert_store.Kind, account_id: str, now: int, token_id: str | None = None
) -> dict[str, Any]:
    """A new signing secret, shown once; the old one signs nothing from now on."""
    item_id = _check_subject(kind, account_id, token_id)
    current = alert_store.get(kind, item_id)
    if current is None:
        raise InvalidRequest(
            "Alerts are not set up here: PUT the settings first.", param="webhook_url"
        )
    secret = alert_store.new_secret()
    settings = replace(current, updated_at=now, secret=None, secret_parameter=None)
    entry = _entry(
        "alerts.rotate_secret", kind, item_id, account_id, current, settings, new_secret=True
    )
    stored = alert_store.put(settings, secret, audit=entry)
    return _json(stored, kind, item_id, account_id) | {"webhook_secret": secret}


def delete_alerts(kind: alert_store.Kind, account_id: str, token_id: str | None = None) -> None:
    item_id = _check_subject(kind, account_id, token_id)
    current = alert_store.get(kind, item_id)
    entry = _entry("alerts.delete", kind, item_id, account_id, current, None, new_secret=False)
    alert_store.delete(kind, item_id, account_id, audit=entry)


def list_dead_letters(limit: int, cursor: str | None) -> dict[str, Any]:
    page = outbox.dead_letters(limit, cursor)
    return {
        "data": [_dead_letter_json(entry) for entry in page.items],
        "next_cursor": page.next_cursor,
    }


def _dead_letter_json(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "at": views.iso(int(entry["at_ms"]) // 1000),
        "account_id": entry.get("account_id"),
        "token_id": entry.get("token_id"),
        "threshold": entry.get("threshold"),
        "webhook_url": entry.get("webhook_url"),
        "attempts": entry.get("attempts"),
        "last_error": entry.get("last_error"),
        "payload": entry.get("payload"),
    }


# The stream handler ---------------------------------------------------------------------------
@dataclass
class AlertRun:
    """What one batch of stream records (or one retry run) did."""

    delivered: list[tuple[str, int]] = field(default_factory=list)  # (item id, threshold)
    dead_lettered: list[tuple[str, int]] = field(default_factory=list)
    duplicates: int = 0  # crossings claimed before (replays), or retries another run took

    def as_json(self) -> dict[str, int]:
        return {
            "delivered": len(self.delivered),
            "dead_lettered": len(self.dead_lettered),
            "duplicates": self.duplicates,
        }


def handle_records(
    kind: alert_store.Kind,
    records: Iterable[Record],
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> AlertRun:
    """Deliver every threshold the records crossed, once each (see the module docstring)."""
    run = AlertRun()
    for event_name, old_image, new_image in records:
        if event_name == "REMOVE" or not new_image:
            continue
        thresholds = alert_store.thresholds_of(new_image)
        if not thresholds:
            continue
        new = alert_store.budget_of(kind, new_image)
        old = alert_store.budget_of(kind, old_image) if old_image else None
        crossed = alerts.crossed(thresholds, old, new, alert_store.sent_of(new_image))
        if not crossed or new is None:
            continue
        item_id = str(new_image["id"]["S"])
        account_id = alert_store.account_of(kind, new_image)
        claimed_ms = int(now() * 1000)
        for threshold in crossed:
            body = alerts.payload(
                account_id=account_id,
                token_id=item_id if kind == "token" else None,
                threshold=threshold,
                budget=new,
                at=views.iso(claimed_ms // 1000) or "",
            )
            delivery = outbox.Delivery(
                kind, item_id, account_id, new.epoch, threshold, body.decode(), claimed_ms
            )
            if not outbox.claim(delivery):
                run.duplicates += 1
                continue
            observe.log("alert_claimed", kind=kind, item_id=item_id, threshold=threshold)
            _send(delivery, now, sleep, run)
    return run


def retry_pending(
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    deadline: Callable[[], float] | None = None,
) -> AlertRun:
    """Send the deliveries whose handler died after claiming them (the ``retry_alerts`` job).

    Only entries whose lease ran out are listed, and each is leased again to one retrier
    before it is sent, so two runs (or a run and a late handler) never both send it.
    """
    run = AlertRun()
    for number, stranded in enumerate(outbox.stale(int(now()))):
        if number and deadline is not None and deadline() < RETRY_MARGIN_SECONDS:
            break  # the next run finishes it (every run gets at least one through)
        delivery = outbox.take(stranded, int(now()))
        if delivery is None:
            run.duplicates += 1
            continue
        observe.log("alert_retried", item_id=delivery.item_id, threshold=delivery.threshold)
        if delivery.runs > outbox.MAX_RUNS:
            _dead_letter(delivery, None, 0, f"abandoned after {outbox.MAX_RUNS} runs", now, run)
            continue
        _send(delivery, now, sleep, run)
    return run


# Enough for one delivery's attempts at the default settings (4 x 5 s timeouts + 7 s of waits).
RETRY_MARGIN_SECONDS = 30.0


def _send(
    delivery: outbox.Delivery,
    now: Callable[[], float],
    sleep: Callable[[float], None],
    run: AlertRun,
) -> None:
    """Deliver the claimed body to each target, with backoff; then settle it.

    Delivered when every target took it; otherwise a dead letter naming the targets that did
    not (a resend after a crash goes to all of them again: at least once).
    """
    settings = alert_store.get(delivery.kind, delivery.item_id)  # type: ignore[arg-type]
    if settings is None:
        outbox.dropped(delivery, int(now() * 1000))  # turned off since: nowhere to send
        return
    config = get_settings()
    failed: dict[str, str | None] = {}
    for target, send in _targets(settings, delivery, now):
        attempt = _attempts(send, config.alert_delivery_attempts, sleep)
        if not attempt.delivered:
            failed[target] = attempt.error
    if not failed:
        outbox.delivered(delivery, int(now() * 1000))
        run.delivered.append((delivery.item_id, delivery.threshold))
        observe.log("alert_delivered", item_id=delivery.item_id, threshold=delivery.threshold)
        return
    if list(failed) == ["webhook"]:
        error = failed["webhook"]
    else:
        error = "; ".join(f"{target}: {why}" for target, why in failed.items())
    _dead_letter(delivery, settings.webhook_url, config.alert_delivery_attempts, error, now, run)


Send = Callable[[], webhooks.Attempt]


def _targets(
    settings: alert_store.AlertSettings, delivery: outbox.Delivery, now: Callable[[], float]
) -> list[tuple[str, Send]]:
    config = get_settings()
    body = delivery.payload.encode()
    targets: list[tuple[str, Send]] = []
    if settings.webhook_url:
        url, secret = settings.webhook_url, alert_store.signing_secret(settings)

        def webhook() -> webhooks.Attempt:
            signature = alerts.signature(secret, body, int(now()))
            return webhooks.post(url, body, signature, config.alert_timeout_seconds, delivery.id)

        targets.append(("webhook", webhook))
    if settings.sns_topic_arn:
        topic = settings.sns_topic_arn
        targets.append(("sns", lambda: stack_targets.publish_sns(topic, body, config.region)))
    if settings.event_bus:
        bus = settings.event_bus
        targets.append(("eventbridge", lambda: stack_targets.put_event(bus, body, config.region)))
    return targets


def _attempts(send: Send, attempts: int, sleep: Callable[[float], None]) -> webhooks.Attempt:
    """Up to ``attempts`` tries, waiting ``core.alerts.backoff`` between them."""
    waits = alerts.backoff(attempts, get_settings().alert_backoff_seconds)
    attempt = webhooks.Attempt(delivered=False, error="no attempt")
    for number in range(attempts):
        if number:
            sleep(waits[number - 1])
        attempt = send()
        if attempt.delivered:
            break
    return attempt


def _dead_letter(
    delivery: outbox.Delivery,
    webhook_url: str | None,
    attempts: int,
    error: str | None,
    now: Callable[[], float],
    run: AlertRun,
) -> None:
    observe.log(
        "alert_dead_lettered",
        level="WARNING",
        item_id=delivery.item_id,
        threshold=delivery.threshold,
        last_error=error,
    )
    body = {
        "account_id": delivery.account_id,
        "token_id": delivery.token_id,
        "threshold": delivery.threshold,
        "webhook_url": webhook_url,
        "attempts": attempts,
        "last_error": error,
        "payload": delivery.payload,
    }
    outbox.dead_lettered(delivery, body, int(now() * 1000))
    run.dead_lettered.append((delivery.item_id, delivery.threshold))
