"""Budget alerts, the pure part: which thresholds a change crossed, the payload, the signature.

A threshold is a percentage of a quota. For a key the quota is its ``quota_units`` per reset
period; for an account it is everything ever granted (``quota_units``), so a credit lowers the
percentage. A change *crosses* a threshold when the usage before it was below the threshold and
the usage after it is at or above it (``used * 100 >= threshold * quota``, in integers).

Exactly once per crossing
-------------------------
Within one *epoch* usage only grows (settles add, refunds add nothing), so each threshold is
crossed at most once per epoch. The epoch changes exactly when the percentage can fall again:

* a key: its reset (``last_reset_at``) or a quota edit (``quota_units``);
* an account: a credit (``quota_units``).

Stream records can still arrive twice (Lambda retries a failed batch) or be seen by two pollers,
so a delivery happens only after a conditional write claimed it: a marker keyed by the item,
the epoch and the threshold, which one writer creates (store/alert_outbox.py). Items written
before that kept the highest level sent on the item itself (``alert_epoch``, ``alert_level``);
``crossed`` still honours it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from chalicelib.core.errors import InvalidRequest

DEFAULT_THRESHOLDS = (50, 80, 100)
MAX_THRESHOLDS = 10
MAX_URL_LENGTH = 2048
EVENT_TYPE = "budget.threshold_crossed"
SIGNATURE_HEADER = "X-Sluice-Signature"
DELIVERY_HEADER = "X-Sluice-Delivery"
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Budget:
    """Where one key or account stands: usage against its quota, in a given epoch."""

    used_units: int
    quota_units: int
    epoch: str

    def reached(self, threshold: int) -> bool:
        return self.quota_units > 0 and self.used_units * 100 >= threshold * self.quota_units


@dataclass(frozen=True)
class Sent:
    """What the item records as delivered: the highest threshold sent in ``epoch``."""

    epoch: str
    level: int


def crossed(
    thresholds: tuple[int, ...], old: Budget | None, new: Budget | None, sent: Sent | None
) -> tuple[int, ...]:
    """The thresholds this change (``old`` -> ``new``) crossed and that were not sent yet.

    ``None`` for ``new`` means no quota to measure against (unlimited, deleted); for ``old``,
    that the item was just created (usage then started from nothing).
    """
    if new is None or new.quota_units <= 0:
        return ()
    already = sent.level if sent is not None and sent.epoch == new.epoch else 0
    return tuple(
        t
        for t in sorted(set(thresholds))
        if t > already and new.reached(t) and not (old is not None and old.reached(t))
    )


def payload(
    *,
    account_id: str,
    token_id: str | None,
    threshold: int,
    budget: Budget,
    at: str,
) -> bytes:
    """The delivery's body, exactly as it is signed and sent."""
    body = {
        "type": EVENT_TYPE,
        "account_id": account_id,
        "token_id": token_id,
        "threshold": threshold,
        "used_units": budget.used_units,
        "quota_units": budget.quota_units,
        "at": at,
    }
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: str, body: bytes, timestamp: int) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``: the value of the header."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(secret: str, body: bytes, header: str, now: int, tolerance: int = 300) -> bool:
    """What a receiver does: recompute, compare in constant time, refuse stale timestamps."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit() or "v1" not in parts:
        return False
    timestamp = int(parts["t"])
    expected = signature(secret, body, timestamp).split("v1=", 1)[1]
    return abs(now - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


def backoff(attempts: int, base_seconds: float) -> tuple[float, ...]:
    """The waits between ``attempts`` tries: base, 2 x base, 4 x base... (bounded by attempts)."""
    return tuple(base_seconds * 2**n for n in range(max(attempts - 1, 0)))


def thresholds_from(values: list[int] | None) -> tuple[int, ...]:
    """Distinct thresholds, ascending; the defaults when none are given."""
    if values is None:
        return DEFAULT_THRESHOLDS
    return tuple(sorted(set(values)))


def checked_webhook_url(url: str, *, allow_plain_loopback: bool) -> str:
    """The URL if deliveries may go there: HTTPS, or plain HTTP to loopback when allowed.

    The check is on the URL as written; a name that resolves to loopback does not count as
    loopback (except ``localhost``), so a deployed stage cannot be pointed at its own network.
    """
    parts = urlsplit(url)
    try:
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise InvalidRequest("webhook_url is not a valid URL.", param="webhook_url") from exc
    if len(url) > MAX_URL_LENGTH or not host or parts.username or parts.password:
        raise InvalidRequest(
            "webhook_url must be an absolute URL with a host and no credentials.",
            param="webhook_url",
        )
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and allow_plain_loopback and _is_loopback(host):
        return url
    allowed = "https (or http to a loopback address on a local stack)"
    raise InvalidRequest(f"webhook_url must use {allowed}.", param="webhook_url")


_SNS_ARN = re.compile(r"arn:aws[a-z-]*:sns:([a-z0-9-]+):([0-9]{12}):([A-Za-z0-9_-]{1,256})")
_BUS_ARN = re.compile(
    r"arn:aws[a-z-]*:events:([a-z0-9-]+):([0-9]{12}):event-bus/([A-Za-z0-9._/-]{1,256})"
)


def checked_sns_topic_arn(arn: str, *, stack_name: str | None, region: str) -> str:
    """The ARN if it is the stack's own alert topic (the only one its role may publish to)."""
    param = "sns_topic_arn"
    if stack_name is None:
        raise InvalidRequest(f"{param} is only available on a deployed stage.", param=param)
    found = _SNS_ARN.fullmatch(arn)
    if found is None or found.group(1) != region or found.group(3) != stack_name:
        expected = f"arn:aws:sns:{region}:<account>:{stack_name}"
        raise InvalidRequest(f"{param} must be this stack's alert topic, {expected}.", param=param)
    return arn


def checked_event_bus(bus: str, *, stack_name: str | None, region: str) -> str:
    """The bus (name or ARN) if it is the stack's own alert bus."""
    param = "event_bus"
    if stack_name is None:
        raise InvalidRequest(f"{param} is only available on a deployed stage.", param=param)
    found = _BUS_ARN.fullmatch(bus)
    if bus != stack_name and (
        found is None or found.group(1) != region or found.group(3) != stack_name
    ):
        raise InvalidRequest(
            f"{param} must be this stack's alert bus, {stack_name} (or its ARN).", param=param
        )
    return bus


def shown_url(url: str) -> str:
    """The part of a webhook URL that may be shown where the URL itself may not (the audit).

    Only ``scheme://host[:port]``: chat and automation services put their credential in the
    path (``/services/T0/B0/<token>``, ``/api/webhooks/<id>/<token>``) or in the query
    (``?token=``), so anything after the host is replaced by ``/…``.
    """
    parts = urlsplit(url)
    rest = "/…" if parts.path not in ("", "/") or parts.query or parts.fragment else ""
    return f"{parts.scheme}://{parts.netloc}{rest}"


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
