"""Fixtures for the reset tests: the app's test client and the schedule as an invoker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def one_reset_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule, route and CLI write with several threads; moto is not thread-safe.

    Tests that exercise concurrent writers pass ``workers`` explicitly on DynamoDB Local.
    """
    from chalicelib.services import resets as jobs

    monkeypatch.setattr(jobs, "SCHEDULE_WORKERS", 1)


@pytest.fixture
def client(tables: Any) -> Iterator[Any]:
    """The chalice test client on moto, over the app as app.py builds it."""
    from chalice.test import Client

    from app import app

    with Client(app) as test_client:
        yield test_client


@pytest.fixture
def run_schedule(client: Any) -> Any:
    """Invoke the ``reset_quotas`` Lambda the way EventBridge's hourly rule does."""

    def invoke() -> dict[str, Any]:
        event = client.events.generate_cw_event(
            source="aws.events",
            detail_type="Scheduled Event",
            detail={},
            resources=["arn:aws:events:us-east-1:123456789012:rule/sluice-dev-reset_quotas"],
        )
        return client.lambda_.invoke("reset_quotas", event).payload

    return invoke
