"""One delivery of an alert body to the stack's own SNS topic or EventBridge bus.

Like ``webhooks.post``: delivered or why not, never an exception, so the caller's attempts and
backoff apply to every target alike. botocore's own retries are cut to one try for the same
reason. Only the stack's topic and bus are ever named here (core.alerts checks the settings;
the alert handlers' role allows nothing else).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.alerts import EVENT_TYPE
from chalicelib.upstream.webhooks import Attempt

SOURCE = "sluice"  # the EventBridge ``source`` of every alert event


@lru_cache(maxsize=4)
def _client(service: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5)
    make: Any = boto3.client  # the service is a variable: the typed overloads cannot apply
    return make(service, region_name=region, config=config)


def _failed(exc: Exception) -> Attempt:
    if isinstance(exc, ClientError):
        return Attempt(delivered=False, error=str(exc.response.get("Error", {}).get("Code")))
    return Attempt(delivered=False, error=type(exc).__name__)


def publish_sns(topic_arn: str, body: bytes, region: str) -> Attempt:
    """Publish the body as the message; ``type`` is an attribute, for subscription filters."""
    try:
        _client("sns", region).publish(
            TopicArn=topic_arn,
            Message=body.decode(),
            MessageAttributes={"type": {"DataType": "String", "StringValue": EVENT_TYPE}},
        )
    except (BotoCoreError, ClientError) as exc:
        return _failed(exc)
    return Attempt(delivered=True)


def put_event(event_bus: str, body: bytes, region: str) -> Attempt:
    """One event, ``source`` sluice and ``detail-type`` the body's type, the body its detail."""
    entry = {
        "Source": SOURCE,
        "DetailType": EVENT_TYPE,
        "Detail": body.decode(),
        "EventBusName": event_bus,
    }
    try:
        answer = _client("events", region).put_events(Entries=[entry])
    except (BotoCoreError, ClientError) as exc:
        return _failed(exc)
    if answer.get("FailedEntryCount"):
        [result] = answer.get("Entries", [{}])
        return Attempt(delivered=False, error=str(result.get("ErrorCode", "FailedEntry")))
    return Attempt(delivered=True)
