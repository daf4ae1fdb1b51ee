"""Fixtures for the reset tests: the app with the resets blueprint, the schedule as an invoker.

Until app.py registers ``chalicelib.api.reset_routes.bp`` itself, these tests register it on the
shared app for the duration of each test only, so other suites (e.g. the OpenAPI coverage test)
see the app exactly as app.py builds it. Chalice cannot register one blueprint twice
(registration consumes its route options), so the entries it adds are captured once and put back
per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

_added: dict[str, Any] = {}


@contextmanager
def _resets_registered() -> Iterator[Any]:
    from app import app
    from chalicelib.api import reset_routes as routes_resets

    if "reset_quotas" in app.handler_map and not _added:
        yield app  # app.py registers the blueprint: nothing to do
        return
    if not _added:
        routes = {path: dict(methods) for path, methods in app.routes.items()}
        handlers, sources = dict(app.handler_map), list(app.event_sources)
        app.register_blueprint(routes_resets.bp)
        _added["routes"] = {
            path: {m: e for m, e in methods.items() if m not in routes.get(path, {})}
            for path, methods in app.routes.items()
        }
        _added["handlers"] = {k: v for k, v in app.handler_map.items() if k not in handlers}
        _added["sources"] = [s for s in app.event_sources if s not in sources]
    else:
        for path, methods in _added["routes"].items():
            app.routes[path].update(methods)
        app.handler_map.update(_added["handlers"])
        app.event_sources.extend(_added["sources"])
    try:
        yield app
    finally:
        for path, methods in _added["routes"].items():
            for method in methods:
                app.routes[path].pop(method, None)
            if not app.routes[path]:
                del app.routes[path]
        for name in _added["handlers"]:
            app.handler_map.pop(name, None)
        for source in _added["sources"]:
            app.event_sources.remove(source)


@pytest.fixture(autouse=True)
def one_reset_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The schedule, route and CLI write with several threads; moto is not thread-safe.

    Tests that exercise concurrent writers pass ``workers`` explicitly on DynamoDB Local.
    """
    from chalicelib.services import resets as jobs

    monkeypatch.setattr(jobs, "SCHEDULE_WORKERS", 1)


@pytest.fixture
def client(tables: Any) -> Iterator[Any]:
    """The chalice test client on moto, over an app that serves the resets routes."""
    from chalice.test import Client

    with _resets_registered() as app, Client(app) as test_client:
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
